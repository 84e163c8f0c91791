"""Reading a CSV file robustly: bytes or text in, one float64 array per column out.

The low half of :func:`kanstudio.core.data.load_csv`: size cap, encodings (UTF-8 with or without
BOM, UTF-16, Windows-1252), refusing binary files, '#' comment lines, delimiter and decimal-comma
detection, headerless files, blank or duplicate column names, NA tokens and thousands separators.
It knows nothing about roles (inputs, target) or what makes a usable dataset; that is data.py's.
:class:`DataError` is defined here, the first place user data can be refused, and re-exported by
data.py, its public home.
"""
from __future__ import annotations

import csv
import functools
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["DataError", "MAX_BYTES", "Column", "read_columns", "sniff_columns"]

MAX_BYTES = 200 * 2**20

_NA_TOKENS = {"", "na", "n/a", "nan", "null", "none", "-", "?", "#n/a", "#na", "."}
_DELIMITERS = [",", ";", "\t", "|"]
_EXP = r"(?:[eE][+-]?\d+)?"
_THOUSANDS = re.compile(rf"[+-]?\d{{1,3}}(?:,\d{{3}})+(?:\.\d*)?{_EXP}")
_DECIMAL_COMMA = re.compile(rf"[+-]?(?:\d+|\d{{1,3}}(?:\.\d{{3}})+),\d*{_EXP}")


class DataError(ValueError):
    """A problem with user data, worded for the person who owns the data."""


def _read_bytes(source: Any, max_bytes: int) -> tuple[bytes | str, str | None]:
    """Return (raw content, file stem or None), refusing anything over max_bytes before reading it."""
    cap = (f"the limit is max_bytes={max_bytes} ({max_bytes / 2**20:.0f} MiB); pass a larger "
           "max_bytes to load_csv/sniff_columns to read it anyway")
    if isinstance(source, str) and source.strip() and "\n" not in source and "\r" not in source:
        source = Path(source)  # one line cannot be a usable CSV (header + rows): it is a path
    if isinstance(source, os.PathLike):
        path = Path(source)
        if not path.is_file():
            if path.exists():
                raise DataError(f"'{path}' is not a file.")
            hint = (" (a one-line string is read as a file path; CSV text needs a header line and "
                    "data lines)" if re.search(r"[,;\t]", str(source)) else "")
            raise DataError(f"No such file: '{path}'{hint}.")
        size = path.stat().st_size
        if size > max_bytes:
            raise DataError(f"'{path.name}' is {size / 2**20:.1f} MiB, too large: {cap}.")
        return path.read_bytes(), path.stem
    if isinstance(source, (bytes, bytearray, memoryview, str)):
        raw = bytes(source) if not isinstance(source, str) else source
        if len(raw) > max_bytes:
            raise DataError(f"The data is {len(raw) / 2**20:.1f} MiB, too large: {cap}.")
        return raw, None
    if hasattr(source, "read"):
        raw = source.read(max_bytes + 1)
        if len(raw) > max_bytes:
            raise DataError(f"The data is larger than {max_bytes} bytes: {cap}.")
        stem = Path(str(getattr(source, "name", ""))).stem or None
        return raw, stem
    raise DataError(f"Cannot read CSV from a {type(source).__name__}: pass a file path, bytes, "
                    "CSV text or an open file.")


def _decode(raw: bytes | str, warnings: list[str]) -> str:
    text = raw.lstrip("\ufeff") if isinstance(raw, str) else _decode_bytes(raw, warnings)
    sample = text[:1 << 16]
    ctrl = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\r\n")
    if ctrl > 0.01 * len(sample):
        raise DataError("This is not a text CSV file (it contains control characters). "
                        "Export your table as CSV text.")
    return text


def _decode_bytes(raw: bytes, warnings: list[str]) -> str:
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):  # Excel's "Unicode text" export
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            pass
    not_text = "This is not a text CSV file"
    if raw[:4] == b"PK\x03\x04" or raw[:4] == b"\xd0\xcf\x11\xe0":
        raise DataError(f"{not_text}: it looks like an Excel workbook or other archive. Open it in "
                        "your spreadsheet program and save it as CSV.")
    if b"\x00" in raw[:1 << 16]:
        raise DataError(f"{not_text} (it contains binary bytes). Export your table as CSV text.")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # the UTF-8 BOM spreadsheets add; harmless, so no warning
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text, enc = raw.decode("cp1252"), "Windows-1252"
        except UnicodeDecodeError:
            text, enc = raw.decode("latin-1"), "Latin-1"
        warnings.append(f"The file is not UTF-8; it was read as {enc}. Check that accented "
                        "characters in column names look right, or save the file as UTF-8.")
    return text


def _sniff_delimiter(lines: list[str]) -> str:
    r"""The delimiter giving the same (>= 2) field count on most lines; r"\s+" for a table aligned
    with spaces; ',' for a single column."""
    best, best_score = ",", 0.0
    for d in _DELIMITERS:
        counts = [len(r) for r in csv.reader(lines, delimiter=d)]
        if not counts or counts[0] < 2:
            continue
        score = sum(c == counts[0] for c in counts) / len(counts)
        if score > best_score:
            best, best_score = d, score
    if best_score:
        return best
    ws = [len(line.split()) for line in lines]
    if ws and ws[0] >= 2 and sum(c == ws[0] for c in ws) >= 0.9 * len(ws):
        return r"\s+"
    return ","


_PREAMBLE = re.compile(r"(?:[ \t]*(?:#[^\r\n]*)?(?:\r\n|\r|\n))*")
_DOT_DECIMAL = re.compile(rf"[+-]?\d*\.\d+{_EXP}")
_NA_VALUES = sorted({v for t in _NA_TOKENS for v in (t, t.upper(), t.capitalize(), t.title())})


@functools.cache
def _exact_parsing() -> dict:
    """The read_csv option that makes pandas parse floats exactly: none where its default
    already does (pandas >= 3.1, which deprecates the option), ``float_precision='round_trip'``
    where it does not (pandas 2, and 3.0.6: 0.30000000000000004 came back one ulp off). Probed,
    not read off the version number: known hard cases and seeded random values of every size.
    Probed at the first read, not at import (~2 ms)."""
    rng = np.random.default_rng(0)
    vals = [0.1, 1 / 3, 0.1 * 3, 1e-310, 12345678.9, 3.141592653589793, 2.0000000000000004]
    vals += (rng.standard_normal(200) * 10.0 ** rng.integers(-300, 300, 200)).tolist()
    probe = "v\n" + "\n".join(repr(v) for v in vals) + "\n"
    if pd.read_csv(io.StringIO(probe))["v"].tolist() == vals:
        return {}
    return {"float_precision": "round_trip"}



def _parse_table(text: str, warnings: list[str]) -> tuple[list[str], pd.DataFrame, np.ndarray, bool]:
    """(header, cells, file line of each row, decimal comma?). pandas' C parser reads clean
    numeric columns (fast, exact); the other columns come back as strings for _convert."""
    pre = _PREAMBLE.match(text).group()
    body = text[len(pre):]
    if not body.strip():
        raise DataError("The file is empty: it has no header and no data rows.")
    skip = len(re.findall(r"\r\n|\r|\n", pre))
    n_comments = sum("#" in line for line in pre.splitlines())
    if n_comments:
        warnings.append(f"Skipped {n_comments} comment line(s) starting with '#' at the top.")
    sample = [ln for ln in body[:1 << 20].splitlines()[:200] if ln.strip()]
    delim = _sniff_delimiter(sample)
    rows = ([ln.split() for ln in sample] if delim == r"\s+"
            else list(csv.reader(sample, delimiter=delim, skipinitialspace=True)))
    header = [h.strip() for h in rows[0]]
    cells = [c.strip() for r in rows[1:] for c in r]
    commas = [c for c in cells if _DECIMAL_COMMA.fullmatch(c)]
    decimal_comma = delim != "," and bool(commas) and not any(_DOT_DECIMAL.fullmatch(c) for c in cells)
    if decimal_comma:
        warnings.append(f"Read ',' as the decimal separator (e.g. {commas[0]!r} → "
                        f"{float(commas[0].replace('.', '').replace(',', '.'))!r}).")
    headerless = all(_is_number(h) for h in header)
    try:
        data = pd.read_csv(io.StringIO(body), sep=delim, header=None, names=range(len(header)),
                           skiprows=0 if headerless else 1, index_col=False, keep_default_na=False,
                           na_values=_NA_VALUES, skipinitialspace=True, skip_blank_lines=False,
                           low_memory=False, decimal="," if decimal_comma else ".", **_exact_parsing())
    except pd.errors.ParserError as e:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(e))
        if not m:
            raise DataError(f"The file could not be read as CSV: {e}") from None
        n_hdr, line, n = int(m[1]), int(m[2]) + skip, int(m[3])
        raise DataError(f"Line {line} has {n} values but the header has {n_hdr} columns. Check that "
                        "line; numbers like 1,234 must be quoted (\"1,234\") in a comma-separated "
                        "file.") from None
    lines = skip + (1 if headerless else 2) + np.arange(len(data))
    _flag_short_lines(body, header, data, delim, headerless, lines, warnings)
    if headerless:
        header = [f"x{i}" for i in range(len(header))]
        warnings.append("The first line holds numbers, not column names; the columns were named "
                        f"{', '.join(header)}.")
    return header, data, lines, decimal_comma


def _flag_short_lines(body: str, header: list[str], data: pd.DataFrame, delim: str,
                      headerless: bool, lines: np.ndarray, warnings: list[str]) -> None:
    """Name the first line with fewer values than the header: pandas fills such a line with
    missing cells silently, and a truncated row then vanishes among 'rows with missing values'.
    Only rows whose last cell is missing are re-read, so clean files cost nothing."""
    width = len(header)
    while width > 1 and not header[width - 1]:
        width -= 1  # a trailing delimiter on the header line only: no column there
    suspects = np.flatnonzero(data.iloc[:, width - 1].isna().to_numpy())
    if not len(suspects):
        return
    raw = re.split(r"\r\n|\r|\n", body)
    first = 0 if headerless else 1  # the header line
    if len(raw) < first + len(data):
        return  # quoted fields spanning lines: rows no longer map to lines; nothing to name
    short = []
    for i in suspects:
        text = raw[first + i]
        if not text.strip():
            continue
        n = len(text.split()) if delim == r"\s+" else len(next(csv.reader([text], delimiter=delim)))
        if n < width:
            short.append((int(lines[i]), n))
    if short:
        line, n = short[0]
        more = (f" ({len(short) - 1} more such line(s): "
                f"{', '.join(str(ln) for ln, _ in short[1:6])}{', ...' if len(short) > 6 else ''})"
                if len(short) > 1 else "")
        warnings.append(f"Line {line} has {n} value(s) but the header has {width} columns{more}; "
                        "the cells it lacks count as missing, so that row is left out. Check that "
                        "line: a row may have been cut short.")


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _name_columns(header: list[str], data: pd.DataFrame, warnings: list[str]) -> pd.DataFrame:
    keep, names = [], []
    for j, h in enumerate(header):
        if not h:
            if data.iloc[:, j].isna().all():
                continue  # a trailing delimiter on every line (a spreadsheet habit): no column
            h = f"unnamed_{j + 1}"
            warnings.append(f"Column {j + 1} has no name in the header; it was called {h!r}.")
        keep.append(j)
        names.append(h)
    seen: dict[str, list[int]] = {}
    for j, h in zip(keep, names):
        seen.setdefault(h, []).append(j + 1)
    dup = {h: pos for h, pos in seen.items() if len(pos) > 1}
    if dup:
        desc = "; ".join(f"{h!r} (columns {', '.join(map(str, pos))})" for h, pos in dup.items())
        raise DataError(f"Duplicate column names: {desc}. Column names must be unique: rename "
                        "them in the file.")
    out = data.iloc[:, keep]
    out.columns = names
    return out


@dataclass
class Column:
    """One column converted to float64 (NaN where missing or not a number)."""
    name: str
    values: np.ndarray               # float64
    raw: np.ndarray | None           # stripped cell strings when the column was not clean numbers
    n_present: int                   # cells that are not blank / NA tokens
    n_bad: int = 0                   # cells that are not numbers
    bad: list[tuple[int, str]] = field(default_factory=list)  # first few (file line, cell)

    @property
    def kind(self) -> str:
        if self.n_present == 0:
            return "empty"
        if not self.n_bad:
            return "numeric"
        return "mixed" if 2 * self.n_bad < self.n_present else "text"


def _convert(cells: pd.DataFrame, lines: np.ndarray, decimal_comma: bool,
             warnings: list[str]) -> dict[str, Column]:
    """float64 for every column; string columns get NA tokens and thousands separators (or
    '1.234,5' with a decimal comma) understood, and their non-numbers recorded."""
    columns, fixed_cols, example = {}, [], ""
    pattern = _DECIMAL_COMMA if decimal_comma else _THOUSANDS
    for c in cells.columns:
        col = cells[c]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            values = col.to_numpy(dtype=np.float64, na_value=np.nan)
            columns[c] = Column(c, values, None, int(col.notna().sum()))
            continue
        s = col.astype(object).where(col.notna(), "").astype(str).str.strip()
        missing = s.str.lower().isin(_NA_TOKENS).to_numpy()
        values = pd.to_numeric(s.where(~missing, "nan"), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan, copy=True)
        failed = np.flatnonzero(np.isnan(values) & ~missing)
        ok = s.iloc[failed].str.fullmatch(pattern.pattern).to_numpy(dtype=bool)
        if ok.any():
            fix = s.iloc[failed[ok]]
            fix = (fix.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
                   if decimal_comma else fix.str.replace(",", "", regex=False))
            values[failed[ok]] = pd.to_numeric(fix).to_numpy(dtype=np.float64)
            fixed_cols.append(c)
            example = example or f"{s.iat[failed[ok][0]]!r} → {float(values[failed[ok][0]])!r}"
        bad = failed[~ok]
        columns[c] = Column(c, values, s.to_numpy(dtype=object), int((~missing).sum()), len(bad),
                             [(int(lines[i]), s.iat[i]) for i in bad[:3]])
    if fixed_cols:
        what = "',' as the decimal separator" if decimal_comma else "',' as a thousands separator"
        warnings.append(f"Read {what} (e.g. {example}) in column(s) "
                        f"{', '.join(map(repr, fixed_cols))}.")
    return columns


def read_columns(source: Any, max_bytes: int) -> tuple[dict[str, Column], list[str], str | None]:
    """(every column by name, warnings about what was handled, file stem or None)."""
    warnings: list[str] = []
    raw, stem = _read_bytes(source, max_bytes)
    text = _decode(raw, warnings)
    header, cells, lines, decimal_comma = _parse_table(text, warnings)
    cells = _name_columns(header, cells, warnings)
    blank = cells.isna().all(axis=1).to_numpy()  # blank lines are layout, not data
    cells, lines = cells[~blank].reset_index(drop=True), lines[~blank]
    if cells.empty:
        raise DataError(f"The file has a header ({', '.join(map(repr, cells.columns))}) but no data "
                        "rows.")
    return _convert(cells, lines, decimal_comma, warnings), warnings, stem



def sniff_columns(source: Any, max_bytes: int = MAX_BYTES) -> pd.DataFrame:
    """The whole table as read, before roles are chosen: numeric columns as float64 (NaN where
    missing), other columns as the raw strings. ``attrs['kinds']`` maps each column to
    'numeric' | 'mixed' | 'text' | 'empty'; ``attrs['warnings']`` lists what was handled."""
    columns, warnings, _ = read_columns(source, max_bytes)
    out = pd.DataFrame({c: col.values if col.kind in ("numeric", "empty") else col.raw
                        for c, col in columns.items()})
    out.attrs["kinds"] = {c: col.kind for c, col in columns.items()}
    out.attrs["warnings"] = list(warnings)
    return out
