"""CSV -> Dataset: the one door through which user data enters kanstudio.

Everything a scientist can get wrong in a CSV ends here either as a ``DataError`` whose message
says what is wrong, where (column, line of the file, the offending value) and what to do, or is
handled and recorded in ``Dataset.warnings``. Nothing past this module has to distrust the data:
a ``Dataset`` always holds >= MIN_ROWS rows of finite float64 values, a numeric non-constant target
and at least one input.

Decisions (see tests/test_data.py for each one exercised):
- at least MIN_ROWS = 5 rows after cleaning: fewer cannot both train and hold out a test row;
- rows with a missing/NaN/inf value in a column in use are dropped with a warning saying how many;
- a column that is mostly numbers with some text is an error naming line and value when it is
  used (never silently coerced: a typo like '12..5' usually means the row is wrong);
- text columns are ignored with a warning unless they are the target or an explicit input;
- duplicate header names are an error (pandas would silently rename them 'a.1');
- a blank header name gets 'unnamed_<column number>' with a warning;
- constant inputs are dropped from default inputs (warning), kept with a warning when asked for
  explicitly; a constant target is an error;
- values beyond +-1e150 are kept (they are finite) with a warning: their squares overflow.

Turning the file into numeric columns (encodings, delimiters, headers, NA tokens) is csvread.py's
job; this module chooses the roles and decides whether the result is a usable Dataset.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

# DataError, MAX_BYTES and sniff_columns are re-exported (__all__): this stays their public home.
from .csvread import MAX_BYTES, Column, DataError, read_columns, sniff_columns

__all__ = ["DataError", "Dataset", "load_csv", "sniff_columns", "MIN_ROWS", "MAX_BYTES"]

MIN_ROWS = 5
MAX_TEST_FRACTION = 0.9
HUGE = 1e150  # |x| above this: x**2 overflows float64, so MSE and batch statistics can blow up


# --------------------------------------------------------------------------- the Dataset

@dataclass(frozen=True, eq=False)
class Dataset:
    """A cleaned numeric table with roles. ``frame`` columns are exactly ``[*inputs, target]``.

    Constructing one validates it (DataError otherwise), so every Dataset in the program is usable.
    """

    frame: pd.DataFrame
    inputs: tuple[str, ...]
    target: str
    test_fraction: float = 0.2
    seed: int = 0
    name: str = "data"
    warnings: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        inputs = tuple(self.inputs) if not isinstance(self.inputs, str) else (self.inputs,)
        frame, extra = _validate(self.frame, inputs, self.target, self.test_fraction, self.seed)
        object.__setattr__(self, "inputs", inputs)
        object.__setattr__(self, "frame", frame)
        object.__setattr__(self, "test_fraction", float(self.test_fraction))
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "name", str(self.name))
        object.__setattr__(self, "warnings", _dedupe(tuple(self.warnings) + extra))

    # ---- shapes and arrays (fresh copies: callers may modify them in place)
    @property
    def n_rows(self) -> int:
        return len(self.frame)

    @property
    def n_inputs(self) -> int:
        return len(self.inputs)

    @property
    def X(self) -> np.ndarray:
        """(n_rows, n_inputs) float64, columns in ``inputs`` order."""
        return self.frame[list(self.inputs)].to_numpy(dtype=np.float64, copy=True)

    @property
    def y(self) -> np.ndarray:
        """(n_rows,) float64."""
        return self.frame[self.target].to_numpy(dtype=np.float64, copy=True)

    def split_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """Row positions (train, test), sorted; a pure function of (n_rows, test_fraction, seed)."""
        n = self.n_rows
        n_test = 0
        if self.test_fraction > 0 and n >= 2:
            n_test = min(n - 1, max(1, int(round(self.test_fraction * n))))
        perm = np.random.default_rng(self.seed).permutation(n)
        return np.sort(perm[n_test:]), np.sort(perm[:n_test])

    def split(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """X_train, y_train, X_test, y_test."""
        train, test = self.split_indices()
        X, y = self.X, self.y
        return X[train], y[train], X[test], y[test]

    # ---- derived datasets
    def with_roles(self, *, inputs: Sequence[str] | None = None, target: str | None = None,
                   test_fraction: float | None = None, seed: int | None = None) -> "Dataset":
        """A copy with other roles among this frame's columns (reload the CSV to use others).

        ``inputs=None`` keeps the inputs when the target is unchanged; with a new target it means
        every other column of the frame.
        """
        new_target = self.target if target is None else target
        if inputs is None:
            if new_target == self.target:
                inputs = self.inputs
            else:
                inputs = tuple(c for c in self.frame.columns if c != new_target)
        inputs = (inputs,) if isinstance(inputs, str) else tuple(inputs)
        _check_roles(list(self.frame.columns), inputs, new_target,
                     hint="with_roles only chooses among the loaded columns; "
                          "call load_csv again to use another column of the file")
        # Warnings about the old roles (constant input, huge values) are recomputed for the new.
        _, old_role_warnings = _validate(self.frame, self.inputs, self.target, 0.0, 0)
        kept = tuple(w for w in self.warnings if w not in old_role_warnings)
        return Dataset(self.frame[[*inputs, new_target]], inputs, new_target,
                       self.test_fraction if test_fraction is None else test_fraction,
                       self.seed if seed is None else seed, self.name, kept)

    @classmethod
    def from_arrays(cls, X: Any, y: Any, names: Sequence[str] | None = None, target: str = "y",
                    **kw: Any) -> "Dataset":
        """Wrap arrays (numpy, torch CPU tensors, pandas) for ``fit(X, y)``; every column of X is
        an input, nothing is dropped, non-finite values are an error. 1-D X is one input."""
        if names is None and isinstance(X, pd.DataFrame):
            names = [str(c) for c in X.columns]
        Xa, ya = _as_float(X, "X"), _as_float(y, "y")
        if Xa.ndim == 1:
            Xa = Xa[:, None]
        if ya.ndim == 2 and ya.shape[1] == 1:
            ya = ya[:, 0]
        if Xa.ndim != 2:
            raise DataError(f"X must be a 2-D array (rows, inputs); got shape {Xa.shape}.")
        if ya.ndim != 1:
            raise DataError(f"y must be a 1-D array with one value per row; got shape {ya.shape}.")
        if len(Xa) != len(ya):
            raise DataError(f"X has {len(Xa)} rows but y has {len(ya)}; they must match.")
        if names is None:
            names = [f"x{i}" for i in range(Xa.shape[1])]
        names = [names] if isinstance(names, str) else list(names)
        if len(names) != Xa.shape[1]:
            raise DataError(f"{len(names)} names given for {Xa.shape[1]} columns of X.")
        for arr, label in ((Xa, "X"), (ya, "y")):
            bad = ~np.isfinite(arr)
            if bad.any():
                row = int(np.argwhere(bad)[0][0])
                raise DataError(f"{label} has {int(bad.sum())} non-finite value(s) (NaN or inf), "
                                f"first in row {row}; remove or fill those rows before fitting.")
        if target in names:
            raise DataError(f"The target name {target!r} is also the name of an input column; "
                            "pass another target= name.")
        _check_roles(names + [target], names, target)
        frame = pd.DataFrame(dict(zip(names, Xa.T)))
        frame[target] = ya
        return cls(frame, tuple(names), target, **kw)

    # ---- exports
    def to_csv(self) -> str:
        """CSV text of the frame (shortest round-trip float repr); ``load_csv`` reads it back exactly,
        target last."""
        return self.frame.to_csv(index=False, lineterminator="\n")

    def describe(self) -> pd.DataFrame:
        """One row per column: min, max, mean, std, n_unique."""
        f = self.frame
        return pd.DataFrame({"min": f.min(), "max": f.max(), "mean": f.mean(), "std": f.std(),
                             "n_unique": f.nunique()}, index=f.columns)

    def to_json_dict(self) -> dict:
        """JSON-ready and lossless: Python floats serialise with round-trip repr."""
        return {"kind": "kanstudio.Dataset", "version": 1, "name": self.name,
                "inputs": list(self.inputs), "target": self.target,
                "test_fraction": self.test_fraction, "seed": self.seed,
                "warnings": list(self.warnings), "columns": list(self.frame.columns),
                "data": [self.frame[c].to_numpy(dtype=np.float64).tolist() for c in self.frame]}

    @classmethod
    def from_json_dict(cls, d: dict) -> "Dataset":
        try:
            if d.get("kind") != "kanstudio.Dataset" or d.get("version") != 1:
                raise DataError("not a kanstudio dataset (version 1) record")
            frame = pd.DataFrame({c: np.asarray(v, dtype=np.float64)
                                  for c, v in zip(d["columns"], d["data"], strict=True)})
            return cls(frame, tuple(d["inputs"]), d["target"], d["test_fraction"], d["seed"],
                       d["name"], tuple(d.get("warnings", ())))
        except DataError as e:
            raise DataError(f"The saved dataset is invalid: {e}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise DataError(f"The saved dataset is damaged or from another program ({e!r}).") from None

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, {self.n_rows} rows, inputs={list(self.inputs)}, "
                f"target={self.target!r}, test_fraction={self.test_fraction}, seed={self.seed})")


def _as_float(a: Any, label: str) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensor, without importing torch here
        a = a.detach().cpu().numpy()
    try:
        return np.array(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DataError(f"{label} must contain only numbers ({e}).") from None


def _check_roles(columns: list, inputs: Sequence[str], target: str, hint: str = "") -> None:
    for c in [*inputs, target]:
        if not isinstance(c, str) or not c.strip():
            raise DataError(f"Column names must be non-empty strings; got {c!r}.")
    if len(set(columns)) != len(columns):
        dup = sorted({c for c in columns if columns.count(c) > 1})
        raise DataError(f"Duplicate column name(s) {', '.join(map(repr, dup))}: names must be unique.")
    for c in [target, *inputs]:
        if c not in columns:
            raise DataError(_unknown(c, columns) + (f" ({hint})" if hint else ""))
    if not inputs:
        raise DataError("No input columns: choose at least one input besides the target.")
    if target in inputs:
        raise DataError(f"{target!r} is the target and cannot also be an input.")
    if len(set(inputs)) != len(inputs):
        raise DataError("An input column is listed twice: " + repr(list(inputs)))


def _unknown(name: str, columns: Sequence[str]) -> str:
    near = difflib.get_close_matches(str(name), [str(c) for c in columns], n=1, cutoff=0.6)
    guess = f" Did you mean {near[0]!r}?" if near else ""
    return f"No column named {name!r}; the columns are {', '.join(map(repr, columns))}.{guess}"


def _validate(frame: Any, inputs: tuple, target: str, test_fraction: Any, seed: Any):
    if not isinstance(frame, pd.DataFrame):
        raise DataError("Dataset.frame must be a pandas DataFrame.")
    _check_roles(list(frame.columns), inputs, target)
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float, np.number)) \
            or not 0.0 <= float(test_fraction) <= MAX_TEST_FRACTION:
        raise DataError(f"test_fraction must be a number between 0 and {MAX_TEST_FRACTION} "
                        f"(0 = no held-out test rows); got {test_fraction!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative integer; got {seed!r}.")
    cols = [*inputs, target]
    try:
        frame = frame[cols].astype(np.float64).reset_index(drop=True)
    except (TypeError, ValueError) as e:
        raise DataError(f"Dataset columns must be numeric ({e}).") from None
    values = frame.to_numpy()
    if not np.isfinite(values).all():
        col = cols[int(np.argwhere(~np.isfinite(values))[0][1])]
        raise DataError(f"Column {col!r} has NaN or infinite values; remove those rows first.")
    if len(frame) < MIN_ROWS:
        raise DataError(f"Only {len(frame)} usable row(s): kanstudio needs at least {MIN_ROWS} to "
                        "train a model and keep some rows to test it. Add more measurements.")
    if np.ptp(values[:, -1]) == 0:
        raise DataError(f"The target {target!r} is constant (every row is {values[0, -1]:g}): "
                        "there is nothing to learn. Choose another target column.")
    warnings = []
    const = [c for j, c in enumerate(inputs) if np.ptp(values[:, j]) == 0]
    if const and len(const) == len(inputs):
        raise DataError(f"Every input is constant ({', '.join(map(repr, const))}): they cannot "
                        f"explain {target!r}. Choose inputs that vary.")
    warnings += [f"Input {c!r} is constant (every row is {frame[c].iloc[0]:g}); it carries no "
                 "information and the model will not use it." for c in const]
    big = [c for c in cols if np.abs(frame[c].to_numpy()).max() > HUGE]
    if big:
        warnings.append(f"Column(s) {', '.join(map(repr, big))} have values beyond ±{HUGE:g}; their "
                        "squares overflow during training. Consider rescaling (other units or log).")
    return frame, tuple(warnings)


def _dedupe(items: tuple) -> tuple:
    return tuple(dict.fromkeys(items))


def _column_problem(col: Column, role: str) -> str:
    if col.kind == "empty":
        return f"The {role} column {col.name!r} has no values."
    if col.kind == "text":
        line, value = col.bad[0]
        return (f"The {role} column {col.name!r} is not numeric (e.g. {value!r} on line {line}). "
                "kanstudio learns laws between numeric columns: choose a numeric column instead.")
    examples = ", ".join(f"line {ln}: {v!r}" for ln, v in col.bad)
    more = f" and {col.n_bad - len(col.bad)} more" if col.n_bad > len(col.bad) else ""
    return (f"The {role} column {col.name!r} is numeric except for {col.n_bad} cell(s): "
            f"{examples}{more}. Fix or blank those cells (rows with blank cells are dropped), "
            f"or leave {col.name!r} out.")


# --------------------------------------------------------------------------- the public reader

def load_csv(source: Any, target: str | None = None, inputs: Sequence[str] | None = None, *,
             test_fraction: float = 0.2, seed: int = 0, max_bytes: int = MAX_BYTES,
             name: str | None = None) -> Dataset:
    """Read a CSV (path, bytes, CSV text or open file) into a validated Dataset.

    ``target=None``: the last column. ``inputs=None``: every other numeric, non-constant column.
    """
    columns, warnings, stem = read_columns(source, max_bytes)
    names = list(columns)
    if target is None:
        target = names[-1]
    elif target not in columns:
        raise DataError(_unknown(target, names))
    if columns[target].kind != "numeric":
        msg = _column_problem(columns[target], "target")
        numeric = [c for c in names if columns[c].kind == "numeric" and c != target]
        if numeric:
            msg += f" Numeric columns: {', '.join(map(repr, numeric))}."
        raise DataError(msg)
    explicit = inputs is not None
    if explicit:
        inputs = (inputs,) if isinstance(inputs, str) else tuple(inputs)
        for c in inputs:
            if c not in columns:
                raise DataError(_unknown(c, names))
            if columns[c].kind != "numeric":
                raise DataError(_column_problem(columns[c], "input"))
    else:
        inputs, text, empty = [], [], []
        for c in names:
            kind = columns[c].kind
            if c == target:
                continue
            if kind == "mixed":
                raise DataError(_column_problem(columns[c], "input") +
                                " (Or pass inputs=[...] to choose the inputs yourself.)")
            {"numeric": inputs, "text": text, "empty": empty}[kind].append(c)
        if text:
            line, value = columns[text[0]].bad[0]
            warnings.append(f"Ignored non-numeric column(s) {', '.join(map(repr, text))} "
                            f"(e.g. {value!r} on line {line}).")
        if empty:
            warnings.append(f"Ignored empty column(s) {', '.join(map(repr, empty))}.")
        inputs = tuple(inputs)
    if not inputs:
        why = f" ({warnings[-1]})" if not explicit and (text or empty) else ""
        raise DataError(f"No numeric input columns besides the target {target!r}: kanstudio needs "
                        f"at least one input column to learn from.{why}")
    if target in inputs:
        raise DataError(f"{target!r} is the target and cannot also be an input.")

    used = [*inputs, target]
    table = np.column_stack([columns[c].values for c in used])
    finite = np.isfinite(table)
    keep = finite.all(axis=1)
    if not keep.any():
        raise DataError(f"Every row has a missing or non-finite value in {', '.join(map(repr, used))}"
                        ": nothing is left to learn from.")
    if not keep.all():
        per_col = [f"{c!r}: {int((~finite[:, j]).sum())}" for j, c in enumerate(used)
                   if not finite[:, j].all()]
        warnings.append(f"Dropped {int((~keep).sum())} of {len(keep)} rows with missing, NaN or "
                        f"infinite values ({', '.join(per_col)}).")
    frame = pd.DataFrame(table[keep], columns=used)
    if not explicit and len(frame) >= MIN_ROWS:
        const = [c for c in inputs if np.ptp(frame[c].to_numpy()) == 0]
        if const and len(const) < len(inputs):
            warnings.append(f"Left constant column(s) {', '.join(map(repr, const))} out of the "
                            "inputs: they carry no information.")
            inputs = tuple(c for c in inputs if c not in const)
            frame = frame[[*inputs, target]]
    return Dataset(frame, inputs, target, test_fraction, seed, name or stem or "data",
                   tuple(warnings))
