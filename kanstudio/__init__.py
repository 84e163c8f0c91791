"""kanstudio: find the law behind your data with Kolmogorov-Arnold Networks.

>>> from kanstudio import KAN, load_csv
>>> ds = load_csv("data.csv", target="y")
>>> model = KAN(width=[2, 5, 1], grid=5, k=3, seed=0).fit(ds, steps=50, lamb=1e-3)
>>> model.prune(); model.auto_symbolic(); model.formula()
"""
# Every name is loaded on first use (PEP 562): `kanstudio --help` and `import kanstudio` must not
# pay for torch and sympy (2-3 s) before anything asks for them.
_WHERE = {
    "DataError": "core.data", "Dataset": "core.data", "load_csv": "core.data",
    "DiscoverConfig": "core.discover", "discover": "core.discover",
    "FormulaResult": "core.formula", "build_formula": "core.formula",
    "KAN": "core.model", "TrainConfig": "core.train", "Trainer": "core.train",
    "Study": "core.study", "Settings": "core.study", "StudyBusy": "core.study",
}

__all__ = ["KAN", "Dataset", "DataError", "load_csv", "discover", "DiscoverConfig", "FormulaResult",
           "build_formula", "Trainer", "TrainConfig", "Study", "Settings", "StudyBusy"]
__version__ = "0.1.0"


def __getattr__(name):
    if name in _WHERE:
        import importlib

        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kanstudio' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
