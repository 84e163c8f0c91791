"""The history of a :class:`~kanstudio.core.study.Study`: recorded edits with undo and redo.

Each :class:`Entry` holds what a person did (``label``), how to do it again (``spec``: an
``{"op", "args"}`` command that :mod:`kanstudio.core.replay` turns into code), the settings in
effect, and the complete state before and after (:class:`State`: the dataset and a
:class:`Memento` of the model). Networks are tiny, so whole-state mementos are simple and exact:
undo puts the "before" state back, redo the "after" state. Consecutive entries share memento
objects (entry n's "after" is entry n+1's "before"), so each state is held once.

The list of entries is never cut for length: an old entry keeps its spec (for replay and the
study file) and only loses its mementos once more than ``max_undo`` entries lie after it, which is
how far back undo reaches. A new entry after an undo drops the redo tail, as in every editor.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Memento", "State", "Entry", "History", "MAX_UNDO"]

MAX_UNDO = 200


@dataclass(frozen=True, eq=False)
class Memento:
    """A model as ``KAN.get_state()`` gives it: JSON-able ``meta`` and CPU ``tensors``.

    Owned exclusively (deep-copied on the way in and out), so later edits of the live model can
    never reach into it.
    """

    meta: dict
    tensors: dict[str, torch.Tensor]

    @classmethod
    def of(cls, model) -> "Memento":
        meta, tensors = model.get_state()
        # get_state() shares lists with the live network (e.g. each layer's sym_names): copy.
        return cls(copy.deepcopy(meta), {k: v.detach().cpu().clone() for k, v in tensors.items()})

    def restore(self, device: str = "cpu"):
        from .model import KAN

        return KAN.from_state(copy.deepcopy(self.meta), self.tensors, device=device)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())


@dataclass(frozen=True, eq=False)
class State:
    """What undo restores: the dataset (immutable, shared) and the model (or ``None``)."""

    dataset: Any  # Dataset | None
    model: Memento | None


@dataclass(eq=False)
class Entry:
    label: str
    spec: dict  # {"op": str, "args": dict}; a data op's args hold the Dataset itself
    settings: dict  # Settings in effect when the edit was made (as a dict)
    before: State | None
    after: State | None
    info: dict = field(default_factory=dict)  # what the edit reported (JSON-able), for display
    # a training's loss events (TrainEvent), so that undo and redo bring its loss curve back;
    # not kept in the study file (a reopened study shows no curve until it trains again)
    loss: tuple = ()

    @property
    def undoable(self) -> bool:
        return self.before is not None and self.after is not None


class History:
    """A linear undo/redo list. ``index`` entries are applied; those after it can be redone."""

    def __init__(self, max_undo: int = MAX_UNDO):
        if max_undo < 1:
            raise ValueError(f"max_undo must be >= 1, got {max_undo}")
        self.max_undo = max_undo
        self.entries: list[Entry] = []
        self.index = 0

    # ---------------------------------------------------------------- queries
    @property
    def applied(self) -> list[Entry]:
        """The entries that lead from the base state to the current one, in order."""
        return self.entries[: self.index]

    @property
    def labels(self) -> list[str]:
        return [e.label for e in self.entries]

    @property
    def can_undo(self) -> bool:
        return self.index > 0 and self.entries[self.index - 1].undoable

    @property
    def can_redo(self) -> bool:
        return self.index < len(self.entries) and self.entries[self.index].undoable

    def __len__(self) -> int:
        return len(self.entries)

    # ---------------------------------------------------------------- changes
    def push(self, entry: Entry) -> None:
        del self.entries[self.index :]
        self.entries.append(entry)
        self.index = len(self.entries)
        self._trim()

    def undo(self) -> Entry | None:
        if not self.can_undo:
            return None
        self.index -= 1
        return self.entries[self.index]

    def redo(self) -> Entry | None:
        if not self.can_redo:
            return None
        self.index += 1
        return self.entries[self.index - 1]

    def _trim(self) -> None:
        """Forget the mementos of entries more than ``max_undo`` steps back (specs stay)."""
        for e in self.entries[: max(0, self.index - self.max_undo)]:
            if e.before is None and e.after is None:
                continue
            e.before = e.after = None

    def clear(self) -> None:
        self.entries.clear()
        self.index = 0


# --------------------------------------------------------------------------- command specs

def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _opt(check):
    return lambda v: v is None or check(v)


def _str_list(v) -> bool:
    return isinstance(v, list) and all(isinstance(s, str) for s in v)


def _nonneg_int(v) -> bool:
    return _int(v) and v >= 0


_CANDIDATE_FIELDS = {"name": lambda v: isinstance(v, str), "a": _num, "b": _num, "c": _num, "d": _num,
                     "r2": _num, "complexity": _int, "score": _num}


def _fn(v) -> bool:
    if isinstance(v, str):
        return True
    if isinstance(v, dict) and set(v) == {"candidate"} and isinstance(v["candidate"], dict):
        c = v["candidate"]
        return set(c) == set(_CANDIDATE_FIELDS) and all(chk(c[k]) for k, chk in _CANDIDATE_FIELDS.items())
    return False


def _is_dataset(v) -> bool:
    from .data import Dataset

    return isinstance(v, Dataset)


_EDGE = {"l": _nonneg_int, "i": _nonneg_int, "j": _nonneg_int}

#: Every command a history entry can hold, with a type check per argument. The study file and
#: the replay script accept nothing else.
OPS: dict[str, dict] = {
    "set_data": {"dataset": _is_dataset, "source": _opt(lambda v: isinstance(v, str))},
    "set_roles": {"inputs": _str_list, "target": lambda v: isinstance(v, str), "test_fraction": _num},
    "reset_model": {},
    "train": {"steps": lambda v: _int(v) and v >= 1, "opt": lambda v: isinstance(v, str), "lr": _opt(_num),
              "lamb": _num, "lamb_l1": _num, "lamb_entropy": _num, "batch": _opt(lambda v: _int(v) and v >= 1),
              "update_grid": lambda v: isinstance(v, bool), "seed": _nonneg_int},
    "snap": {**_EDGE, "fn": _fn, "lib": _opt(_str_list)},
    "unsnap": dict(_EDGE),
    "prune_edge": dict(_EDGE),
    "prune_node": {"l": _nonneg_int, "j": _nonneg_int},
    "auto_prune": {"node_th": _num, "edge_th": _opt(_num)},
    "auto_symbolic": {"r2_threshold": _num, "lib": _opt(_str_list)},
    "refine": {"grid": lambda v: _int(v) and v >= 1},
    # a network from a discovery run (the study file keeps it; a replay script cannot rebuild it)
    "open_attempt": {"index": _nonneg_int, "width": lambda v: isinstance(v, str), "label": lambda v: isinstance(v, str)},
}


def check_spec(spec) -> str | None:
    """``None`` when ``spec`` is a well-formed command, else what is wrong with it."""
    if not isinstance(spec, dict) or set(spec) != {"op", "args"}:
        return "a command must be {'op': ..., 'args': {...}}"
    op, args = spec["op"], spec["args"]
    if op not in OPS:
        return f"unknown command {op!r}"
    if not isinstance(args, dict):
        return f"the arguments of {op!r} must be a mapping"
    want = OPS[op]
    if set(args) != set(want):
        return f"{op!r} takes arguments {sorted(want)}, got {sorted(args)}"
    for k, chk in want.items():
        if not chk(args[k]):
            return f"argument {k!r} of {op!r} has a bad value: {args[k]!r:.80}"
    return None
