"""The Study: one editable session — a dataset, a KAN, a training run, and the history of edits.

The UI (one Study per browser tab), the CLI and notebooks all drive a Study through the methods
below and never reach into tensors. Every change of data or model is an *edit*: it is recorded
in the :class:`~kanstudio.core.history.History` with a command spec (for replay and the study
file) and the complete state before and after (for exact undo/redo). Impossible edits raise
``ValueError`` with a message for the scientist and change nothing; edits while a background
training run is going raise :class:`StudyBusy`.

Threading: ``study.lock`` is the training thread's lock (held for each optimiser step). Every
method takes it, so views that call ``snapshot()``, ``formula()``, ... always see a consistent
model. ``version`` bumps on every change (edits, undo/redo, training progress), so results are
cached per version.

>>> study = Study(load_csv("data.csv"), Settings(width="2,5,1", steps=50))
>>> study.train()                       # synchronous; or start_training() in the background
>>> study.auto_prune(); study.auto_symbolic(); study.refit(30)
>>> print(study.formula().sympy_str())
>>> study.undo(); study.save("law.kanstudio"); print(study.replay_script())
"""
from __future__ import annotations

import os
import threading
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .data import Dataset, load_csv
from .discovery_run import DiscoveryRuns
from .history import MAX_UNDO, Entry, History, Memento, State
from .model import KAN, default_width
from .network import format_width, parse_width
# Re-exported (__all__): other code and replay scripts import them from here.
from .runs import StudyBusy, TrainingRuns, active_trainings, max_concurrent_trainings, set_max_concurrent_trainings
from .settings import Settings, _check_lib, _is_int, _is_num

__all__ = ["Study", "Settings", "StudyBusy", "set_max_concurrent_trainings", "max_concurrent_trainings",
           "active_trainings"]

MAX_MESSAGES = 500


# --------------------------------------------------------------------------- the Study

class Study(TrainingRuns, DiscoveryRuns):
    """An editable KAN session over one dataset. See the module docstring for the contract.
    Training methods come from :class:`~kanstudio.core.runs.TrainingRuns`, the unattended search
    (``start_discovery``, ``open_attempt``, ``set_units``) from
    :class:`~kanstudio.core.discovery_run.DiscoveryRuns`."""

    def __init__(self, dataset: Dataset | None = None, settings: Settings | None = None, name: str = "study",
                 *, max_undo: int = MAX_UNDO):
        if dataset is not None and not isinstance(dataset, Dataset):
            raise TypeError(f"dataset must be a kanstudio Dataset (from load_csv), got {type(dataset).__name__}")
        if settings is not None and not isinstance(settings, Settings):
            raise TypeError(f"settings must be a Settings, got {type(settings).__name__}")
        self.lock = threading.RLock()
        self.name = str(name)
        self.settings = settings or Settings()
        self.dataset: Dataset | None = None
        self.model: KAN | None = None
        self.version = 0
        self.messages: list[tuple[str, str]] = []
        self._history = History(max_undo)
        self._init_runs()
        self._init_discovery()
        self.units: dict[str, str] = {}  # column -> unit text; see set_units
        self._cur: tuple[int, State] | None = None  # (version, State) of the current state
        self._cache: dict[str, tuple[int, Any]] = {}
        self._suggest_cache: dict[tuple, list] = {}
        # Where the first recorded edit starts from: the base of replay and the study file.
        self.base_settings = self.settings
        if dataset is not None:
            self._install_data(dataset)
        self.base = self._state()

    # ================================================================ small helpers
    def _log(self, level: str, text: str) -> None:
        self.messages.append((level, text))
        if len(self.messages) > MAX_MESSAGES:
            del self.messages[: len(self.messages) - MAX_MESSAGES]

    def _bump(self) -> None:
        self.version += 1

    def _state(self) -> State:
        """The current (dataset, model) as a State, taken once per version."""
        if self._cur is not None and self._cur[0] == self.version:
            return self._cur[1]
        st = State(self.dataset, Memento.of(self.model) if self.model is not None else None)
        self._cur = (self.version, st)
        return st

    def _apply_state(self, st: State) -> None:
        model = None
        if st.model is not None:
            model = st.model.restore(device=self.settings.device)
            if st.dataset is not None:
                model.set_data(st.dataset)
        self.dataset, self.model = st.dataset, model

    def _restore_quietly(self, st: State) -> None:
        """Put ``st`` back after a run that changed nothing (or failed half-way)."""
        self._apply_state(st)
        self._bump()
        self._cur = (self.version, st)

    def _require_model(self) -> KAN:
        if self.model is None:
            raise ValueError("there is no model yet: load data first")
        return self.model

    def _record(self, label: str, spec: dict, before: State, info: dict | None = None,
                settings: dict | None = None, loss: tuple = ()) -> Entry:
        self._bump()
        entry = Entry(label, spec, settings or self.settings.to_dict(), before, self._state(), info or {},
                      tuple(loss))
        self._history.push(entry)
        return entry

    def _edit(self, fn, label_fn, spec_fn, *, what: str = "edit the model", record_if=None):
        """Run ``fn()`` as one recorded edit; on any error restore the state before it exactly."""
        with self.lock:
            self._check_idle(what)
            before = self._state()
            version = self.version
            try:
                out = fn()
            except BaseException:
                self._apply_state(before)
                self.version = version
                self._cur = (version, before)
                raise
            if record_if is not None and not record_if(out):
                # Nothing changed (e.g. nothing to prune): keep the model exactly as it was.
                self._apply_state(before)
                self._cur = (self.version, before)
                return out
            self._record(label_fn(out), spec_fn(out), before)
            return out

    def _node_name(self, layer: int, idx: int) -> str:
        m = self.model
        if m is not None:
            dims = m.net.dims
            if layer == 0 and m.feature_names_ and idx < len(m.feature_names_):
                return m.feature_names_[idx]
            if layer == len(dims) - 1 and len(dims) > 1:
                return m.target_name_ if dims[-1] == 1 else f"{m.target_name_}[{idx}]"
        return f"n{layer}.{idx}"

    def _edge_name(self, l: int, i: int, j: int) -> str:
        return f"{self._node_name(l, i)} → {self._node_name(l + 1, j)}"

    # ================================================================ data
    def _fresh_model(self, dataset: Dataset) -> KAN:
        """A new KAN from the settings for ``dataset``. A width written for another number of
        inputs keeps its hidden layers and output and takes the data's input count; the
        setting changes with it (so the Width field, Start and the study file agree), said once."""
        s = self.settings
        width = s.width
        if width is not None:
            layers = parse_width(width)
            if layers[0] != (dataset.n_inputs, 0):
                fitted = format_width([(dataset.n_inputs, 0), *layers[1:]])
                self._log("warning", f"the width {width} is for {layers[0][0]} input(s) but the data has "
                                     f"{dataset.n_inputs} ({', '.join(dataset.inputs)}): the width is now "
                                     f"{fitted} (its hidden layers kept)")
                width = fitted
                self.settings = replace(s, width=fitted)
        if width is None:
            width = default_width(dataset.n_inputs)
        model = KAN(width=width if isinstance(width, list) else parse_width(width), grid=s.grid, k=s.k,
                    seed=s.seed, device=s.device)
        return model.set_data(dataset)

    def _install_data(self, dataset: Dataset, keep_model: bool = False) -> None:
        if keep_model and self.model is not None:
            self.model.set_data(dataset)
        else:
            self.model = self._fresh_model(dataset)
        self.dataset = dataset
        for w in dataset.warnings:
            self._log("warning", w)

    def _data_label(self, ds: Dataset, verb: str) -> str:
        return (f"{verb} {ds.name!r}: {ds.n_rows} rows, {', '.join(ds.inputs)} → {ds.target}"
                f" (test {ds.test_fraction:g})")

    def load_data(self, source, *, target: str | None = None, inputs=None, test_fraction: float | None = None,
                  name: str | None = None) -> Dataset:
        """Read a CSV (path, bytes, text or open file) and make it the study's data (an edit).
        A ``DataError`` (a ValueError) leaves the study unchanged."""
        with self.lock:
            self._check_idle("load data")
            kw = {} if test_fraction is None else {"test_fraction": test_fraction}
            ds = load_csv(source, target=target, inputs=inputs, name=name, **kw)
            path = None
            if isinstance(source, (str, os.PathLike)) and "\n" not in str(source) and "\r" not in str(source):
                path = str(Path(source).resolve())
            self._set_data(ds, path, "load")
            return ds

    def set_data(self, dataset: Dataset) -> None:
        """Use ``dataset`` (a new, untrained model is built for it); an edit."""
        if not isinstance(dataset, Dataset):
            raise TypeError(f"set_data expects a Dataset (from load_csv), got {type(dataset).__name__}")
        with self.lock:
            self._check_idle("change the data")
            self._set_data(dataset, None, "set data")

    def _set_data(self, ds: Dataset, path: str | None, verb: str) -> None:
        self._edit(lambda: self._install_data(ds), lambda _: self._data_label(ds, verb),
                   lambda _: {"op": "set_data", "args": {"dataset": ds, "source": path}}, what="change the data")

    def set_roles(self, *, inputs=None, target: str | None = None, test_fraction: float | None = None) -> None:
        """Choose other inputs/target among the loaded columns, or another test fraction (an edit).
        Changing only the test fraction keeps the model; other changes build a fresh one."""
        with self.lock:
            self._check_idle("change the data roles")
            if self.dataset is None:
                raise ValueError("there is no data yet: load a CSV first")
            old = self.dataset
            ds = old.with_roles(inputs=inputs, target=target, test_fraction=test_fraction)
            if ds.inputs == old.inputs and ds.target == old.target and ds.test_fraction == old.test_fraction:
                return
            keep = ds.inputs == old.inputs and ds.target == old.target
            parts = []
            if ds.inputs != old.inputs or ds.target != old.target:
                parts.append(f"{', '.join(ds.inputs)} → {ds.target}")
            if ds.test_fraction != old.test_fraction:
                parts.append(f"test fraction {ds.test_fraction:g}")
            self._edit(lambda: self._install_data(ds, keep_model=keep), lambda _: "roles: " + "; ".join(parts),
                       lambda _: {"op": "set_roles", "args": {"inputs": list(ds.inputs), "target": ds.target,
                                                              "test_fraction": ds.test_fraction}},
                       what="change the data roles")

    # ================================================================ settings
    def update_settings(self, **kw) -> Settings:
        """Change settings (validated; ``ValueError`` names the bad one). Not an undoable edit:
        settings apply to what is done next and are saved in the study file."""
        with self.lock:
            known = {f.name for f in fields(Settings)}
            unknown = sorted(set(kw) - known)
            if unknown:
                raise ValueError(f"unknown setting(s) {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(known))}")
            new = replace(self.settings, **kw)
            if new != self.settings:
                self.settings = new
                self._bump()
            return self.settings

    # ================================================================ model
    def reset_model(self) -> None:
        """A fresh, untrained KAN from the settings and the data (an edit)."""
        with self.lock:
            self._check_idle("reset the model")
            if self.dataset is None:
                raise ValueError("there is no data yet: load a CSV first")
            ds = self.dataset

            def do():
                self.model = self._fresh_model(ds)

            s = self.settings
            self._edit(do, lambda _: f"new model [{self.model.width_str}] grid {s.grid}, k {s.k}, seed {s.seed}",
                       lambda _: {"op": "reset_model", "args": {}}, what="reset the model")

    # ================================================================ training: runs.TrainingRuns
    def close(self) -> None:
        """Stop and join the training and discovery threads (the tab was closed). Safe to call
        twice. A discovery ends after its current attempt (a few seconds at most here)."""
        self.stop_discovery(wait=False)
        self.stop_training(wait=True)
        self.stop_discovery(wait=True, timeout=60)

    def __enter__(self) -> "Study":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ================================================================ edits
    def _check_edge(self, l, i, j) -> None:
        m = self._require_model()
        for name, v in (("l", l), ("i", i), ("j", j)):
            if not _is_int(v):
                raise ValueError(f"edge index {name} must be an integer, got {v!r}")
        m._check_edge(l, i, j)

    def _edge_live(self, l, i, j) -> bool:
        return bool(self.model.net.layers[l].mask[i, j] > 0)

    def snap(self, l: int, i: int, j: int, fn="auto", lib=None):
        """Replace edge ``i -> j`` of layer ``l`` by ``c*f(a*x+b)+d``: ``fn`` is a function name,
        ``'auto'`` (the best candidate) or a :class:`Candidate`. Returns the Candidate used."""
        from .symbolic import Candidate

        with self.lock:
            self._check_idle()
            self._check_edge(l, i, j)
            if not self._edge_live(l, i, j):
                raise ValueError(f"edge {self._edge_name(l, i, j)} is pruned; there is nothing to snap")
            if lib is not None:
                lib = (lib,) if isinstance(lib, str) else tuple(lib)
                _check_lib(lib)
            if isinstance(fn, Candidate):
                fn_spec: Any = {"candidate": {k: getattr(fn, k) for k in
                                              ("name", "a", "b", "c", "d", "r2", "complexity", "score")}}
                _check_lib((fn.name,))
            elif isinstance(fn, str):
                if fn != "auto":
                    _check_lib((fn,))
                fn_spec = fn
            else:
                raise ValueError(f"fn must be a function name, 'auto' or a Candidate, got {type(fn).__name__}")

            def do():
                return self.model.snap(l, i, j, fn, lib=list(lib) if lib else None)

            return self._edit(do, lambda c: f"snap {self._edge_name(l, i, j)} to {c.name} (R² {c.r2:.4f})",
                              lambda c: {"op": "snap", "args": {"l": l, "i": i, "j": j, "fn": fn_spec,
                                                                "lib": list(lib) if lib else None}})

    def unsnap(self, l: int, i: int, j: int) -> None:
        """Put the spline back on a snapped edge (what it learned underneath is kept)."""
        with self.lock:
            self._check_idle()
            self._check_edge(l, i, j)
            name = self.model.net.layers[l].sym_names[i][j]
            if not self._edge_live(l, i, j) or name is None:
                raise ValueError(f"edge {self._edge_name(l, i, j)} is not snapped; there is nothing to unsnap")
            self._edit(lambda: self.model.unsnap(l, i, j), lambda _: f"unsnap {self._edge_name(l, i, j)} ({name})",
                       lambda _: {"op": "unsnap", "args": {"l": l, "i": i, "j": j}})

    def prune_edge(self, l: int, i: int, j: int) -> None:
        """Remove one edge; its mean output stays behind as a bias, so predictions barely move."""
        with self.lock:
            self._check_idle()
            self._check_edge(l, i, j)
            if not self._edge_live(l, i, j):
                raise ValueError(f"edge {self._edge_name(l, i, j)} is already pruned")
            self._edit(lambda: self.model.prune_edge(l, i, j), lambda _: f"prune edge {self._edge_name(l, i, j)}",
                       lambda _: {"op": "prune_edge", "args": {"l": l, "i": i, "j": j}})

    def prune_node(self, l: int, j: int) -> None:
        """Remove hidden node ``j`` of node layer ``l`` (1 .. depth-1) with all its edges."""
        with self.lock:
            self._check_idle()
            m = self._require_model()
            dims = m.net.dims
            if not _is_int(l) or not _is_int(j):
                raise ValueError(f"node indices must be integers, got ({l!r}, {j!r})")
            if not 0 < l < len(dims) - 1:
                raise ValueError(f"only hidden nodes can be pruned: node layers 1..{len(dims) - 2}, got layer {l}"
                                 if len(dims) > 2 else "this network has no hidden nodes to prune")
            if not 0 <= j < dims[l]:
                raise ValueError(f"node layer {l} has {dims[l]} nodes, no node {j}")
            if not bool(m.net.live_nodes()[l][j]):
                raise ValueError(f"node {self._node_name(l, j)} is already pruned")
            self._edit(lambda: m.prune_node(l, j), lambda _: f"prune node {self._node_name(l, j)}",
                       lambda _: {"op": "prune_node", "args": {"l": l, "j": j}})

    def auto_prune(self, node_th: float = 1e-2, edge_th: float | None = None) -> dict:
        """Prune hidden nodes (and with ``edge_th`` edges) scoring below the thresholds.
        Returns ``{'nodes': [(l, j)], 'edges': [(l, i, j)]}``; nothing removed = no entry."""
        if not _is_num(node_th) or node_th < 0:
            raise ValueError(f"node_th must be a number >= 0, got {node_th!r}")
        if edge_th is not None and (not _is_num(edge_th) or edge_th < 0):
            raise ValueError(f"edge_th must be a number >= 0 or None, got {edge_th!r}")
        with self.lock:
            self._check_idle()
            m = self._require_model()

            def label(r):
                return (f"auto-prune (θ={node_th:g}{'' if edge_th is None else f', edges {edge_th:g}'}): "
                        f"{len(r['nodes'])} node(s), {len(r['edges'])} edge(s)")

            out = self._edit(lambda: m.prune(node_th=float(node_th), edge_th=None if edge_th is None else float(edge_th)),
                             label, lambda r: {"op": "auto_prune", "args": {"node_th": float(node_th),
                                                                           "edge_th": None if edge_th is None else float(edge_th)}},
                             record_if=lambda r: bool(r["nodes"] or r["edges"]))
            if not (out["nodes"] or out["edges"]):
                self._log("info", f"auto-prune: nothing scores below {node_th:g}; nothing was removed")
            return out

    def auto_symbolic(self, r2_threshold: float | None = None, lib=None) -> dict:
        """Snap every live spline edge whose best candidate reaches ``r2_threshold`` (default: the
        setting). Returns ``{'snapped': [(l, i, j, Candidate)], 'skipped': [(l, i, j, best_r2)]}``."""
        with self.lock:
            self._check_idle()
            m = self._require_model()
            r2 = self.settings.r2_threshold if r2_threshold is None else r2_threshold
            if not _is_num(r2) or not 0 <= r2 <= 1:
                raise ValueError(f"r2_threshold must be a number between 0 and 1, got {r2!r}")
            lib = self.settings.lib if lib is None else ((lib,) if isinstance(lib, str) else tuple(lib))
            if lib is not None:
                _check_lib(lib)

            def label(r):
                names = ", ".join(sorted({c.name for *_, c in r["snapped"]}))
                return f"auto-symbolic (R² ≥ {r2:g}): {len(r['snapped'])} edge(s) [{names}]"

            out = self._edit(lambda: m.auto_symbolic(r2_threshold=float(r2), lib=list(lib) if lib else None), label,
                             lambda r: {"op": "auto_symbolic", "args": {"r2_threshold": float(r2),
                                                                        "lib": list(lib) if lib else None}},
                             record_if=lambda r: bool(r["snapped"]))
            if not out["snapped"]:
                self._log("info", f"auto-symbolic: no edge reached R² ≥ {r2:g}; nothing was snapped")
            return out

    def refine(self, grid: int) -> None:
        """Grid extension: refit every edge's spline on ``grid`` intervals (functions are kept)."""
        if not _is_int(grid) or not 1 <= grid <= 1000:
            raise ValueError(f"grid must be an integer between 1 and 1000, got {grid!r}")
        with self.lock:
            self._check_idle()
            m = self._require_model()
            old = m.grid
            self._edit(lambda: m.refine(int(grid)), lambda _: f"refine grid {old} → {grid}",
                       lambda _: {"op": "refine", "args": {"grid": int(grid)}})

    def suggest(self, l: int, i: int, j: int, lib=None) -> list:
        """Ranked candidate functions for an edge (best first); cached per version."""
        with self.lock:
            self._check_edge(l, i, j)
            lib = None if lib is None else ((lib,) if isinstance(lib, str) else tuple(lib))
            if lib is not None:
                _check_lib(lib)
            key = (self.version, l, i, j, lib)
            if key not in self._suggest_cache:
                self._suggest_cache = {k: v for k, v in self._suggest_cache.items() if k[0] == self.version}
                self._suggest_cache[key] = self.model.suggest_symbolic(l, i, j, lib=list(lib) if lib else None)
            return list(self._suggest_cache[key])

    # ================================================================ history
    def undo(self) -> str | None:
        """Undo the last edit (data changes included); returns its label, or None."""
        with self.lock:
            self._check_idle("undo")
            e = self._history.undo()
            if e is None:
                return None
            self._apply_state(e.before)
            self._bump()
            self._cur = (self.version, e.before)
            return e.label

    def redo(self) -> str | None:
        with self.lock:
            self._check_idle("redo")
            e = self._history.redo()
            if e is None:
                return None
            self._apply_state(e.after)
            self._bump()
            self._cur = (self.version, e.after)
            return e.label

    @property
    def can_undo(self) -> bool:
        return self._run is None and self._history.can_undo

    @property
    def can_redo(self) -> bool:
        return self._run is None and self._history.can_redo

    @property
    def history_labels(self) -> list[str]:
        return self._history.labels

    @property
    def history_index(self) -> int:
        return self._history.index

    @property
    def history(self) -> History:
        return self._history

    # ================================================================ results
    def _cached(self, key: str, make):
        with self.lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == self.version:
                return hit[1]
            value = make()
            self._cache[key] = (self.version, value)
            return value

    def _cached_unlocked(self, key: str, compute, empty):
        """Like :meth:`_cached`, but the slow part runs outside the lock on a copy of the model,
        so training steps and edits never wait for SymPy. A result is cached only if the study
        did not change meanwhile."""
        with self.lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == self.version:
                return hit[1]
            if self.model is None:
                return empty
            version, model, split = self.version, self.model.copy(), self._test_split()
        value = compute(model, *split)
        with self.lock:
            if self.version == version:
                self._cache[key] = (version, value)
        return value

    def _test_split(self):
        _, _, Xte, yte = self.dataset.split()
        return (Xte, yte) if len(Xte) else (None, None)

    def snapshot(self):
        """A :class:`~kanstudio.core.snapshot.NetworkSnapshot` of the model, or None."""
        from .snapshot import snapshot_network

        def make():
            if self.model is None:
                return None
            m = self.model
            names = m.feature_names_ or [f"x{i}" for i in range(m.net.dims[0])]
            return snapshot_network(m.net, m.X_train_, names, [m.target_name_], self.version)

        return self._cached("snapshot", make)

    def formula(self):
        """The model as a :class:`~kanstudio.core.formula.FormulaResult` (checked on the test
        split), or None without a model."""
        from .formula import build_formula

        return self._cached_unlocked("formula", lambda m, Xte, yte: build_formula(m, Xte, yte), None)

    def pareto(self) -> list:
        """Formulas from simple to exact (``pareto_front``), scored on the test split (the training
        split when there is no test split)."""
        from .formula import pareto_front

        def compute(m, Xte, yte):
            if Xte is None:
                Xte, yte = m.X_train_.cpu().numpy(), m.y_train_.cpu().numpy()[:, 0]
            return pareto_front(m, Xte, yte)

        return self._cached_unlocked("pareto", compute, [])

    def predictions(self) -> pd.DataFrame:
        """Every row: inputs, target, network prediction, formula prediction, split."""
        with self.lock:
            if self.model is None or self.dataset is None:
                raise ValueError("there is no model yet: load data first")
            ds = self.dataset
            X = ds.X
            df = ds.frame[[*ds.inputs, ds.target]].copy()
            df[f"{ds.target}_network"] = self.model.predict(X)
            try:
                f = self.formula()
                df[f"{ds.target}_formula"] = np.asarray(f.evaluate(X), dtype=np.float64).reshape(len(X)) \
                    if f is not None else np.nan
            except ImportError:  # the formula module is not available in this build
                df[f"{ds.target}_formula"] = np.nan
            split = np.full(len(X), "train", dtype=object)
            split[ds.split_indices()[1]] = "test"
            df["split"] = split
            return df

    def predictions_csv(self) -> str:
        return self.predictions().to_csv(index=False, lineterminator="\n")

    # ================================================================ persistence and replay
    def save(self, path) -> None:
        from .studyfile import save_study

        save_study(self, path)

    @classmethod
    def load(cls, path) -> "Study":
        from .studyfile import load_study

        return load_study(path)

    def to_bytes(self) -> bytes:
        from .studyfile import study_to_bytes

        return study_to_bytes(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> "Study":
        from .studyfile import study_from_bytes

        return study_from_bytes(data)

    def replay_script(self) -> str:
        from .replay import replay_script

        return replay_script(self)

    def __repr__(self) -> str:
        data = f"{self.dataset.n_rows} rows" if self.dataset is not None else "no data"
        model = repr(self.model) if self.model is not None else "no model"
        return (f"Study({self.name!r}, {data}, {model}, {self._history.index}/{len(self._history)} edits"
                f"{', training' if self.training else ''})")
