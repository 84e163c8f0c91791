"""The malformed-CSV corpus: files a scientist might really upload.

``write_corpus(tmp_dir)`` writes every item as ``<name>.csv`` and returns {name: path}. The
expected outcome of each (a DataError phrase, or the loaded columns and warnings) is asserted in
test_data.py, next to the decision it checks.
"""
from __future__ import annotations

from pathlib import Path


def _rows(n: int, f=lambda i: f"{i},{2 * i + 1}") -> str:
    return "".join(f(i) + "\n" for i in range(1, n + 1))


CORPUS: dict[str, bytes] = {
    "empty": b"",
    "blank_lines_only": b"\n  \n\r\n",
    "header_only": b"x,y\n",
    "one_row": b"x,y\n1,2\n",
    "four_rows": ("x,y\n" + _rows(4)).encode(),
    "text_column": ("x,label,y\n" + _rows(8, lambda i: f"{i},sample-{i},{i * i}")).encode(),
    "text_target": ("x,z,species\n" + _rows(8, lambda i: f"{i},{i % 3},setosa")).encode(),
    "mixed_column": ("x,v,y\n" + _rows(9, lambda i: f"{i},{'12..5' if i == 5 else i / 2},{i}")).encode(),
    "nan_inf": ("x,v,y\n" + _rows(10, lambda i: f"{i},{ {2: 'NaN', 4: '', 7: 'inf'}.get(i, i)},{-i if i != 9 else '-inf'}")).encode(),
    "all_nan": ("x,y\n" + _rows(6, lambda i: f"{i},NA")).encode(),
    "nan_every_row": ("x,y\n" + _rows(6, lambda i: f"{i},nan" if i % 2 else f"inf,{i}")).encode(),
    "duplicate_names": ("a,b,a,y\n" + _rows(6, lambda i: f"{i},{i},{i},{i}")).encode(),
    "constant_input": ("x,c,y\n" + _rows(8, lambda i: f"{i},3.5,{i * 2}")).encode(),
    "constant_target": ("x,y\n" + _rows(8, lambda i: f"{i},7")).encode(),
    "semicolon": ("a;b;y\n" + _rows(6, lambda i: f"{i};{i + 0.5};{i * 3}")).encode(),
    "semicolon_decimal_comma": ("a;b;y\n" + _rows(6, lambda i: f"{i},5;2,{i};{i * 3},25")).encode(),
    "tab": ("a\tb\ty\n" + _rows(6, lambda i: f"{i}\t{i * i}\t{i + 1}")).encode(),
    "bom": b"\xef\xbb\xbf" + ("x,y\n" + _rows(6)).encode(),
    "thousands": ('area,price\n' + _rows(6, lambda i: f'"{i},234.5",{i * 1000}')).encode(),
    "huge": ("x,y\n" + _rows(6, lambda i: f"{i}e300,{i}")).encode(),
    "binary": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4,
    "xlsx": b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)),
    "unicode_names": ("température (°C),a b,1x,y\n" + _rows(6, lambda i: f"{i},{i % 4},{i * i},{i}")).encode(),
    "keyword_names": ("lambda,beta,gamma,E,I,S,class\n" + _rows(
        7, lambda i: ",".join(str(i * k + (i * i) % (k + 1)) for k in range(1, 8)))).encode(),
    "blank_header_name": ("x,,y\n" + _rows(6, lambda i: f"{i},{i % 2},{i}")).encode(),
    "trailing_delimiter": ("x,y,\n" + _rows(6, lambda i: f"{i},{i + 1},")).encode(),
    "latin1": ("température,y\n" + _rows(6)).encode("latin-1"),
    "headerless": _rows(6).encode(),
    "comment_preamble": ("# lab notebook export\n# units: SI\n\nx,y\n" + _rows(6)).encode(),
    "crlf": ("x,y\r\n" + _rows(6).replace("\n", "\r\n")).encode(),
    "ragged_unquoted_thousands": ("x,y\n1,2\n2,3\n1,234.5,7\n4,5\n5,6\n").encode(),
    "ragged_short": ("a,b,y\n" + _rows(8, lambda i: f"{i},{i % 3},{i * 2}") + "7,8\n9,9,9\n3\n").encode(),
    "utf16_tab": ("x\ty\n" + _rows(6, lambda i: f"{i}\t{i + 1}")).encode("utf-16"),
    "whitespace_aligned": ("  x     y\n" + _rows(6, lambda i: f"  {i}   {i * 2}.5")).encode(),
}


def write_corpus(tmp_dir: str | Path) -> dict[str, Path]:
    tmp_dir = Path(tmp_dir)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, content in CORPUS.items():
        paths[name] = tmp_dir / f"{name}.csv"
        paths[name].write_bytes(content)
    return paths
