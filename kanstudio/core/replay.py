"""Export a Study as a Python script that rebuilds it with the public API.

The script replays the recorded command specs of the applied history, in order, on the same data
(embedded as CSV text when it is small, else read from the file it came from) with the same
settings; training is deterministic given data, seed, settings and steps, so the script ends
with the same model and formula. Run it as ``python study_replay.py [predictions.csv]``.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone

from .history import check_spec

__all__ = ["replay_script", "EMBED_LIMIT"]

EMBED_LIMIT = 2 * 2**20  # bytes of CSV text embedded in the script; larger data is read from its file

_TRAIN_FROM_SETTINGS = ("opt", "lr", "lamb", "lamb_l1", "lamb_entropy", "batch", "seed")


def _lit(v) -> str:
    """A Python literal for a JSON-like value (floats round-trip exactly through repr)."""
    if isinstance(v, float) and not math.isfinite(v):
        return f"float({str(v)!r})"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_lit(x) for x in v) + "]"
    if v is None or isinstance(v, (bool, int, float, str)):
        return repr(v)
    raise TypeError(f"cannot write {type(v).__name__} into a replay script")


def _kwargs(d: dict) -> str:
    return ", ".join(f"{k}={_lit(v)}" for k, v in d.items())


def _comment(text: str) -> str:
    return " ".join(str(text).split())


def _text_literal(text: str) -> str:
    safe = ('"""' not in text and "\\" not in text and not text.endswith('"')
            and all(c == "\n" or c >= " " for c in text))
    return '"""\\\n' + text + '"""' if safe else repr(text)


class _Writer:
    def __init__(self):
        self.data_defs: list[str] = []
        self.data_names: dict[int, str] = {}
        self.keep: list = []
        self.uses_dataset_ctor = False

    def dataset_expr(self, ds, source: str | None) -> str:
        """An expression that rebuilds ``ds`` exactly."""
        if id(ds) not in self.data_names:
            name = f"DATA_{len(self.data_names)}"
            self.data_names[id(ds)] = name
            self.keep.append(ds)
            self.data_defs.append(self._define(name, ds, source))
        name = self.data_names[id(ds)]
        return f"{name}_dataset()"

    def _define(self, name: str, ds, source: str | None) -> str:
        from .data import load_csv

        roles = {"target": ds.target, "inputs": list(ds.inputs), "test_fraction": ds.test_fraction,
                 "seed": ds.seed, "name": ds.name}
        text = ds.to_csv()
        big = len(text.encode("utf-8")) >= EMBED_LIMIT
        if big and source:
            return (f"# {ds.n_rows} rows: too large to embed, read from the file it was loaded from\n"
                    f"def {name}_dataset():\n    return load_csv({_lit(source)}, {_kwargs(roles)})\n")
        note = f"# {ds.n_rows} rows x {ds.n_inputs + 1} columns ({_comment(ds.name)})"
        exact = False
        try:
            back = load_csv(text, **roles)
            exact = (list(back.frame.columns) == list(ds.frame.columns)
                     and back.frame.to_numpy().tobytes() == ds.frame.to_numpy().tobytes())
        except Exception:
            exact = False
        if exact:
            return f"{note}\n{name} = {_text_literal(text)}\n\ndef {name}_dataset():\n    return load_csv({name}, {_kwargs(roles)})\n"
        # Column names that a CSV reader would read differently (e.g. numeric names): exact columns.
        self.uses_dataset_ctor = True
        cols = {c: ds.frame[c].to_numpy().tolist() for c in ds.frame.columns}
        body = "{" + ", ".join(f"{c!r}: {_lit(v)}" for c, v in cols.items()) + "}"
        return (f"{note}\n{name} = {body}\n\ndef {name}_dataset():\n"
                f"    return Dataset(pd.DataFrame({name}), {_lit(list(ds.inputs))}, {ds.target!r}, "
                f"{ds.test_fraction!r}, {ds.seed!r}, {ds.name!r})\n")


def _settings_expr(d: dict) -> str:
    from .settings import Settings

    default = Settings().to_dict()
    diff = {k: v for k, v in d.items() if v != default[k]}
    return f"Settings({_kwargs(diff)})"


def _op_code(spec: dict, settings: dict, w: _Writer) -> str:
    op, a = spec["op"], spec["args"]
    edge = lambda: f"{a['l']}, {a['i']}, {a['j']}"  # noqa: E731
    if op == "set_data":
        return f"study.set_data({w.dataset_expr(a['dataset'], a['source'])})"
    if op == "set_roles":
        return f"study.set_roles({_kwargs(a)})"
    if op == "reset_model":
        return "study.reset_model()"
    if op == "train":
        kw = {"steps": a["steps"]}
        kw.update({k: a[k] for k in _TRAIN_FROM_SETTINGS if a[k] != settings[k]})
        if not a["update_grid"]:
            kw["update_grid"] = False
        return f"study.train({_kwargs(kw)})"
    if op == "snap":
        fn = a["fn"]
        if isinstance(fn, dict):
            c = fn["candidate"]
            fn_code = f"Candidate({_kwargs(c)})"
        else:
            fn_code = _lit(fn)
        lib = f", lib={_lit(a['lib'])}" if a["lib"] is not None else ""
        return f"study.snap({edge()}, {fn_code}{lib})"
    if op in ("unsnap", "prune_edge"):
        return f"study.{op}({edge()})"
    if op == "prune_node":
        return f"study.prune_node({a['l']}, {a['j']})"
    if op == "auto_prune":
        kw = {"node_th": a["node_th"]}
        if a["edge_th"] is not None:
            kw["edge_th"] = a["edge_th"]
        return f"study.auto_prune({_kwargs(kw)})"
    if op == "auto_symbolic":
        kw = {"r2_threshold": a["r2_threshold"]}
        if a["lib"] is not None:
            kw["lib"] = a["lib"]
        return f"study.auto_symbolic({_kwargs(kw)})"
    if op == "refine":
        return f"study.refine({a['grid']})"
    raise ValueError(f"cannot replay command {op!r}")


def replay_script(study) -> str:
    """The Python source of a script that rebuilds ``study`` (its applied edits) and prints the formula."""
    with study.lock:
        study._check_idle("export a replay script")
        entries = list(study.history.applied)
        base = study.base
        base_settings = study.base_settings.to_dict()
        name = study.name
    w = _Writer()
    body: list[str] = []
    for n, e in enumerate(entries, 1):
        problem = check_spec(e.spec)
        if problem:
            raise ValueError(f"history entry {n} cannot be replayed: {problem}")
    base_data = f"{w.dataset_expr(base.dataset, None)}, " if base.dataset is not None else ""
    body.append(f"study = Study({base_data}settings={_settings_expr(base_settings)}, name={name!r})")
    current = base_settings
    uses_candidate = False
    for n, e in enumerate(entries, 1):
        changed = {k: v for k, v in e.settings.items() if current.get(k) != v}
        body.append("")
        body.append(f"# {n}. {_comment(e.label)}")
        if changed:
            body.append(f"study.update_settings({_kwargs(changed)})")
            current = dict(e.settings)
        body.append(_op_code(e.spec, current, w))
        uses_candidate |= e.spec["op"] == "snap" and isinstance(e.spec["args"]["fn"], dict)

    try:
        from importlib.metadata import version

        ver = version("kanstudio")
    except Exception:
        ver = "unknown"
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    imports = ["import sys", ""]
    if w.uses_dataset_ctor:
        imports += ["import pandas as pd", ""]
    imports += ["from kanstudio.core.data import Dataset, load_csv" if w.uses_dataset_ctor
                else "from kanstudio.core.data import load_csv",
                "from kanstudio.core.study import Settings, Study"]
    if uses_candidate:
        imports.append("from kanstudio.core.symbolic import Candidate")
    header = f'''#!/usr/bin/env python
"""Replay of the kanstudio study {_comment(name)!r}: {len(entries)} recorded edit(s).

Generated by kanstudio {ver} on {stamp}. Running it rebuilds the study with the public API
(training is deterministic given the data, seed, settings and steps) and prints the formula;
`python {{this file}} predictions.csv` also writes every row's network and formula predictions.
"""
'''
    footer = '''

if __name__ == "__main__":
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w", encoding="utf-8", newline="") as f:
            f.write(study.predictions_csv())
    formula = study.formula()
    if formula is None:
        print("no model: the study has no data")
    else:
        print(formula.sympy_str())
        print(f"test R2 = {formula.r2_test:.6g} (network {formula.network_r2_test:.6g}), "
              f"complexity {formula.complexity}, exact: {formula.exact}")
'''
    parts = [header, "\n".join(imports), "\n"]
    if w.data_defs:
        parts.append("\n" + "\n\n".join(w.data_defs))
    parts.append("\n\n" + "\n".join(body) + "\n")
    parts.append(footer)
    return "".join(parts)
