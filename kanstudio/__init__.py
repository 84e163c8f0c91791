"""kanstudio: find the law behind your data with Kolmogorov-Arnold Networks.

>>> from kanstudio import KAN, load_csv
>>> ds = load_csv("data.csv", target="y")
>>> model = KAN(width=[2, 5, 1], grid=5, k=3, seed=0).fit(ds, steps=50, lamb=1e-3)
>>> model.prune(); model.auto_symbolic(); model.formula()
"""
from .core.data import DataError, Dataset, load_csv
from .core.discover import DiscoverConfig, discover
from .core.formula import FormulaResult, build_formula
from .core.model import KAN
from .core.train import TrainConfig, Trainer

__all__ = ["KAN", "Dataset", "DataError", "load_csv", "discover", "DiscoverConfig", "FormulaResult",
           "build_formula", "Trainer", "TrainConfig", "Study", "Settings", "StudyBusy"]
__version__ = "0.1.0"


def __getattr__(name):
    # Study pulls in the history and file machinery: load it on first use.
    if name in ("Study", "Settings", "StudyBusy"):
        from .core import study

        return getattr(study, name)
    raise AttributeError(name)
