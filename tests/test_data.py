"""kanstudio.core.data: bad input gets a clear message, nothing crashes; Dataset invariants."""
from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bad_csv import CORPUS, write_corpus
from kanstudio.core.data import MIN_ROWS, DataError, Dataset, load_csv, sniff_columns

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT / "assets" / "datasets"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


def test_every_corpus_item_is_a_dataset_or_a_data_error(corpus):
    assert set(corpus) == set(CORPUS)
    for path in corpus.values():
        try:
            load_csv(path)
            sniff_columns(path)
        except DataError as e:
            assert len(str(e)) > 20


# ---------------------------------------------------------------- corpus: clear errors

ERRORS = {
    "empty": ["file is empty"],
    "blank_lines_only": ["file is empty"],
    "header_only": ["header", "no data rows", "'x'"],
    "one_row": ["Only 1 usable row", f"at least {MIN_ROWS}"],
    "four_rows": ["Only 4 usable row"],
    "text_target": ["'species'", "not numeric", "'setosa'", "line 2", "Numeric columns: 'x', 'z'"],
    "mixed_column": ["'v'", "line 6", "'12..5'"],
    "all_nan": ["'y'", "no values"],
    "nan_every_row": ["Every row", "nothing is left"],
    "duplicate_names": ["Duplicate column names", "'a' (columns 1, 3)"],
    "constant_target": ["target 'y' is constant", "nothing to learn"],
    "binary": ["not a text CSV file"],
    "xlsx": ["not a text CSV file", "Excel", "save it as CSV"],
    "ragged_unquoted_thousands": ["Line 4 has 3 values", "header has 2", "quoted"],
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_corpus_errors(corpus, name):
    with pytest.raises(DataError) as info:
        load_csv(corpus[name])
    for phrase in ERRORS[name]:
        assert phrase in str(info.value), (phrase, str(info.value))


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)


def test_size_cap_refused_before_reading(corpus, monkeypatch):
    def no_read(*a, **k):  # the cap must be checked on the size, not after reading
        raise AssertionError("read the file")

    monkeypatch.setattr(Path, "read_bytes", no_read)
    with pytest.raises(DataError, match=r"too large.*max_bytes=100"):
        load_csv(corpus["text_column"], max_bytes=100)
    monkeypatch.undo()
    for source in (CORPUS["text_column"], io.BytesIO(CORPUS["text_column"])):
        with pytest.raises(DataError, match="max_bytes"):
            load_csv(source, max_bytes=100)
    assert load_csv(corpus["text_column"], max_bytes=1000).n_rows == 8


def test_missing_file_and_bad_source(tmp_path):
    with pytest.raises(DataError, match="No such file"):
        load_csv(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="No such file"):
        load_csv(str(tmp_path / "nope.csv"))
    with pytest.raises(DataError, match="not a file"):
        load_csv(tmp_path)
    with pytest.raises(DataError, match="Cannot read CSV from a int"):
        load_csv(42)
    with pytest.raises(DataError, match="CSV text needs a header line and data lines"):
        load_csv("x,y")
    with pytest.raises(DataError, match="file is empty"):
        load_csv("")
    with pytest.raises(DataError, match="not a text CSV file"):
        load_csv("a\x01b\x02\n" * 10)


# ---------------------------------------------------------------- corpus: handled, with warnings

def _load(corpus, name, **kw):
    ds = load_csv(corpus[name], **kw)
    return ds, " | ".join(ds.warnings)


def test_text_column_ignored_with_warning(corpus):
    ds, w = _load(corpus, "text_column")
    assert ds.inputs == ("x",) and ds.target == "y" and "label" not in ds.frame
    assert "Ignored non-numeric column(s) 'label'" in w


def test_text_column_as_explicit_input_is_an_error(corpus):
    with pytest.raises(DataError, match=r"input column 'label' is not numeric.*'sample-1' on line 2"):
        load_csv(corpus["text_column"], inputs=["x", "label"])


def test_short_line_is_named(corpus):
    ds, w = _load(corpus, "ragged_short")
    assert "Line 10 has 2 value(s) but the header has 3 columns (1 more such line(s): 12)" in w
    assert "Dropped 2 of 11 rows" in w and ds.n_rows == 9


def test_explicit_empty_cells_and_trailing_header_comma_are_not_short_lines():
    for text in ("a,b,y\n1,2,3\n4,5,\n6,7,8\n1,1,1\n2,2,2\n3,3,4\n",
                 "a,b,y,\n1,2,3\n4,5,6\n6,7,8\n1,1,1\n2,2,2\n3,3,4\n"):
        assert not any("value(s) but the header" in w for w in load_csv(text).warnings)


def test_mixed_column_can_be_left_out(corpus):
    ds = load_csv(corpus["mixed_column"], inputs=["x"])
    assert ds.inputs == ("x",) and ds.n_rows == 9


def test_nan_inf_rows_dropped_with_count(corpus):
    ds, w = _load(corpus, "nan_inf")
    assert ds.n_rows == 6 and np.isfinite(ds.frame.to_numpy()).all()
    assert "Dropped 4 of 10 rows" in w and "'v': 3" in w and "'y': 1" in w
    assert list(ds.frame["x"]) == [1, 3, 5, 6, 8, 10]


def test_constant_input_dropped_by_default_kept_when_explicit(corpus):
    ds, w = _load(corpus, "constant_input")
    assert ds.inputs == ("x",) and "constant column(s) 'c'" in w
    ds = load_csv(corpus["constant_input"], inputs=["x", "c"])
    assert ds.inputs == ("x", "c") and any("'c' is constant" in m for m in ds.warnings)
    with pytest.raises(DataError, match="Every input is constant"):
        load_csv(corpus["constant_input"], inputs=["c"])


def test_delimiters_semicolon_tab_whitespace(corpus):
    for name in ("semicolon", "tab", "whitespace_aligned"):
        ds = load_csv(corpus[name])
        assert ds.n_rows == 6 and ds.frame.dtypes.eq(np.float64).all(), name
    assert list(load_csv(corpus["semicolon"]).frame["b"]) == [i + 0.5 for i in range(1, 7)]
    assert list(load_csv(corpus["tab"]).frame.columns) == ["a", "b", "y"]
    assert list(load_csv(corpus["whitespace_aligned"]).frame["y"]) == [i * 2 + .5 for i in range(1, 7)]


def test_decimal_comma_with_semicolon(corpus):
    ds, w = _load(corpus, "semicolon_decimal_comma")
    assert list(ds.frame.columns) == ["a", "b", "y"]
    assert list(ds.frame["a"]) == [i + 0.5 for i in range(1, 7)]
    assert list(ds.frame["y"]) == [i * 3 + 0.25 for i in range(1, 7)]
    assert "',' as the decimal separator" in w


def test_bom_stripped(corpus):
    ds = load_csv(corpus["bom"])
    assert list(ds.frame.columns) == ["x", "y"]


def test_thousands_separators(corpus):
    ds, w = _load(corpus, "thousands")
    assert ds.frame["area"].iloc[0] == 1234.5 and ds.frame["area"].iloc[5] == 6234.5
    assert "thousands separator" in w and "'1,234.5' → 1234.5" in w


def test_huge_magnitudes_kept_with_warning(corpus):
    ds, w = _load(corpus, "huge")
    assert ds.frame["x"].iloc[5] == 6e300
    assert "beyond ±1e+150" in w and "'x'" in w


def test_unicode_and_keyword_names_preserved(corpus):
    ds = load_csv(corpus["unicode_names"])
    assert ds.inputs == ("température (°C)", "a b", "1x") and ds.target == "y"
    ds = load_csv(corpus["keyword_names"])
    assert ds.inputs == ("lambda", "beta", "gamma", "E", "I", "S") and ds.target == "class"
    ds2 = load_csv(corpus["keyword_names"], target="E", inputs=["class", "lambda"])
    assert ds2.X.shape == (7, 2) and ds2.target == "E"


def test_blank_header_name_gets_auto_name(corpus):
    ds, w = _load(corpus, "blank_header_name")
    assert ds.inputs == ("x", "unnamed_2") and "Column 2 has no name" in w


def test_trailing_delimiter_is_not_a_column(corpus):
    ds = load_csv(corpus["trailing_delimiter"])
    assert list(ds.frame.columns) == ["x", "y"] and not ds.warnings


def test_latin1_fallback(corpus):
    ds, w = _load(corpus, "latin1")
    assert ds.inputs == ("température",) and "not UTF-8" in w


def test_headerless_gets_names(corpus):
    ds, w = _load(corpus, "headerless")
    assert ds.inputs == ("x0",) and ds.target == "x1" and ds.n_rows == 6
    assert "first line holds numbers" in w


def test_comment_preamble_crlf_utf16(corpus):
    ds, w = _load(corpus, "comment_preamble")
    assert ds.n_rows == 6 and "Skipped 2 comment line(s)" in w
    for name in ("crlf", "utf16_tab"):
        ds = load_csv(corpus[name])
        assert list(ds.frame.columns) == ["x", "y"] and ds.n_rows == 6, name


def test_blank_lines_inside_data_and_line_numbers():
    text = "x,y\n1,2\n\n2,3\n3,4\n4,oops\n5,6\n6,7\n7,8\n8,9\n"
    with pytest.raises(DataError, match=r"'y' is numeric except for 1 cell\(s\): line 6: 'oops'"):
        load_csv(text)


def test_unknown_target_suggests():
    text = "Temp,y\n" + "".join(f"{i},{i * i}\n" for i in range(6))
    with pytest.raises(DataError, match="Did you mean 'Temp'"):
        load_csv(text, target="temp")
    with pytest.raises(DataError, match="cannot also be an input"):
        load_csv(text, target="y", inputs=["Temp", "y"])


# ---------------------------------------------------------------- sources and sniffing

TEXT = "a,b,y\n" + "".join(f"{i},{i % 3},{i * 0.1}\n" for i in range(10))


@pytest.mark.parametrize("kind", ["path", "str_path", "bytes", "text", "binary_file", "text_file"])
def test_sources(tmp_path, kind):
    p = tmp_path / "my_data.csv"
    p.write_text(TEXT)
    if kind.endswith("_file"):
        with open(p, "rb" if kind == "binary_file" else "r") as f:
            ds = load_csv(f)
    else:
        ds = load_csv({"path": p, "str_path": str(p), "bytes": TEXT.encode(), "text": TEXT}[kind])
    assert ds.inputs == ("a", "b") and ds.target == "y" and ds.n_rows == 10
    assert ds.name == ("my_data" if kind not in ("bytes", "text") else "data")
    assert load_csv(TEXT, name="run 3").name == "run 3"


def test_sniff_columns(corpus):
    df = sniff_columns(corpus["text_column"])
    assert list(df.columns) == ["x", "label", "y"]
    assert df.attrs["kinds"] == {"x": "numeric", "label": "text", "y": "numeric"}
    assert df["y"].dtype == np.float64 and df["label"].iloc[0] == "sample-1"
    df = sniff_columns(corpus["mixed_column"])
    assert df.attrs["kinds"]["v"] == "mixed" and df["v"].iloc[4] == "12..5"
    assert "read as Windows-1252" in " ".join(sniff_columns(corpus["latin1"]).attrs["warnings"])
    with pytest.raises(DataError, match="Duplicate"):
        sniff_columns(corpus["duplicate_names"])


# ---------------------------------------------------------------- Dataset behaviour

def _ds(n=50, **kw):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 3))
    return Dataset.from_arrays(X, X[:, 0] * X[:, 1] + 1e-3 * np.arange(n), **kw)


def test_split_deterministic_and_partitioning():
    ds = _ds(seed=7)
    a, b = ds.split(), _ds(seed=7).split()
    for u, v in zip(a, b):
        assert np.array_equal(u, v)
    Xtr, ytr, Xte, yte = a
    assert len(Xte) == 10 and len(Xtr) == 40 and Xtr.shape[1] == 3
    train, test = ds.split_indices()
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(50))
    assert not np.array_equal(test, ds.with_roles(seed=8).split_indices()[1])


def test_split_edge_fractions():
    ds = _ds(n=5)
    assert len(ds.with_roles(test_fraction=0.01).split()[2]) == 1  # at least one test row
    assert len(ds.with_roles(test_fraction=0.9).split()[0]) >= 1  # at least one train row
    Xtr, ytr, Xte, yte = ds.with_roles(test_fraction=0).split()
    assert Xtr.shape == (5, 3) and Xte.shape == (0, 3) and yte.shape == (0,)


def test_arrays_are_fresh_float64_copies():
    ds = _ds()
    X = ds.X
    X[:] = 0
    assert ds.X.any() and ds.X.dtype == np.float64 and ds.y.shape == (50,)
    assert ds.n_rows == 50 and ds.n_inputs == 3


def test_with_roles_validation():
    ds = _ds()
    assert ds.with_roles(inputs=["x2", "x0"]).X.shape == (50, 2)
    swapped = ds.with_roles(target="x0")
    assert swapped.target == "x0" and swapped.inputs == ("x1", "x2", "y")
    bad = [dict(inputs=["nope"]), dict(target="nope"), dict(inputs=["x0", "y"]),
           dict(inputs=[]), dict(test_fraction=-0.1), dict(test_fraction=0.95),
           dict(test_fraction=float("nan")), dict(seed=-1), dict(inputs=["x0", "x0"])]
    for kw in bad:
        with pytest.raises(DataError):
            ds.with_roles(**kw)
    with pytest.raises(DataError, match="call load_csv again"):
        ds.with_roles(inputs=["nope"])
    with pytest.raises(DataError, match="cannot also be an input"):
        ds.with_roles(inputs=["x0", "y"])


def test_with_roles_recomputes_role_warnings():
    X = np.column_stack([np.arange(10.0), np.ones(10), np.full(10, 1e200)])
    ds = Dataset.from_arrays(X, np.arange(10.0) ** 2, warnings=("from the file",))
    assert any("'x1' is constant" in w for w in ds.warnings)
    assert any("beyond ±1e+150" in w for w in ds.warnings)
    assert ds.with_roles(inputs=["x0"]).warnings == ("from the file",)


def test_from_arrays():
    ds = Dataset.from_arrays(np.arange(10.0), np.arange(10.0) ** 2)  # 1-D X: one input
    assert ds.inputs == ("x0",) and ds.target == "y"
    df = pd.DataFrame({"lambda": np.arange(8.0), "E": np.arange(8.0) % 3})
    ds = Dataset.from_arrays(df, np.arange(8.0)[:, None], target="class", seed=3, name="n")
    assert ds.inputs == ("lambda", "E") and ds.target == "class" and ds.seed == 3
    X = np.random.default_rng(0).normal(size=(8, 2))
    cases = [((X, np.ones(7)), "rows"), ((X[None], np.ones(8)), "2-D"),
             ((X, np.ones((8, 2))), "1-D"), ((X, np.arange(8.0)), None)]
    for (a, b), phrase in cases:
        if phrase is None:
            Dataset.from_arrays(a, b)
        else:
            with pytest.raises(DataError, match=phrase):
                Dataset.from_arrays(a, b)
    Xn = X.copy()
    Xn[3, 1] = np.nan
    with pytest.raises(DataError, match="non-finite.*row 3"):
        Dataset.from_arrays(Xn, np.arange(8.0))
    with pytest.raises(DataError, match="3 names given for 2"):
        Dataset.from_arrays(X, np.arange(8.0), names=["a", "b", "c"])
    with pytest.raises(DataError, match="also the name of an input"):
        Dataset.from_arrays(X, np.arange(8.0), names=["y", "b"])
    with pytest.raises(DataError, match="only numbers"):
        Dataset.from_arrays(np.array([["a", "b"]] * 8), np.arange(8.0))
    with pytest.raises(DataError, match="at least 5"):
        Dataset.from_arrays(X[:3], np.arange(3.0))
    with pytest.raises(DataError, match="constant"):
        Dataset.from_arrays(X, np.ones(8))


def test_json_round_trip_is_exact():
    vals = np.array([0.1, 1 / 3, -0.0, 5e-324, 1.7976931348623157e308, np.pi, -2.5e-300, 7.0])
    ds = Dataset.from_arrays(vals[:, None] * [1, -1], np.nextafter(vals, 1), names=["β", "a,b"],
                             target='q"uote', test_fraction=0.3, seed=11, name="exact")
    d = json.loads(json.dumps(ds.to_json_dict()))
    back = Dataset.from_json_dict(d)
    assert back.inputs == ds.inputs and back.target == ds.target and back.name == "exact"
    assert back.test_fraction == 0.3 and back.seed == 11 and back.warnings == ds.warnings
    assert ds.frame.to_numpy().tobytes() == back.frame.to_numpy().tobytes()
    for u, v in zip(ds.split(), back.split()):
        assert np.array_equal(u, v)
    with pytest.raises(DataError, match="damaged"):
        Dataset.from_json_dict({"kind": "kanstudio.Dataset", "version": 1})
    with pytest.raises(DataError):
        Dataset.from_json_dict({"kind": "other"})


def test_csv_round_trip_is_exact(corpus):
    vals = np.array([0.1, 1 / 3, -0.0, 1e-310, 1e300, np.pi, 12345678.9, 7.0])
    ds = Dataset.from_arrays(np.column_stack([vals, vals * 3]), vals[::-1],
                             names=["température (°C)", "a, b"], target="class")
    back = load_csv(ds.to_csv(), target=ds.target, inputs=ds.inputs)
    assert back.inputs == ds.inputs and back.target == "class"
    assert ds.frame.to_numpy().tobytes() == back.frame.to_numpy().tobytes()
    kw = load_csv(corpus["keyword_names"])
    assert load_csv(kw.to_csv()).frame.equals(kw.frame)  # target is last, defaults round-trip


def test_describe():
    d = _ds().describe()
    assert list(d.columns) == ["min", "max", "mean", "std", "n_unique"]
    assert list(d.index) == ["x0", "x1", "x2", "y"] and (d["n_unique"] == 50).all()


def test_dataset_is_immutable():
    ds = _ds()
    with pytest.raises(AttributeError):
        ds.target = "x0"


# ---------------------------------------------------------------- built-in datasets

def _laws():
    return {
        "kan_paper": ("f", lambda d: np.exp(np.sin(np.pi * d.x) + d.y ** 2)),
        "product": ("F", lambda d: d.m * d.a),
        "coulomb": ("F", lambda d: d.q1 * d.q2 / (4 * np.pi * d.epsilon * d.r ** 2)),
        "noisy_pendulum": ("T", lambda d: 2 * np.pi * np.sqrt(d.L / d.g)),
        "irrelevant_inputs": ("y", lambda d: np.sin(np.pi * d.x1) + d.x3 ** 2),
    }


@pytest.mark.parametrize("name", sorted(_laws()))
def test_builtin_datasets_obey_their_law(name):
    target, law = _laws()[name]
    ds = load_csv(DATASETS / f"{name}.csv")
    assert ds.target == target and not ds.warnings and 1000 <= ds.n_rows <= 2000
    rel = (ds.frame[target] - law(ds.frame)) / law(ds.frame)
    if name == "noisy_pendulum":
        assert 0.008 < rel.std() < 0.012 and abs(rel.mean()) < 0.002
    else:
        assert rel.abs().max() < 1e-8
    assert name in (DATASETS / "README.md").read_text()


def test_make_datasets_is_deterministic(tmp_path):
    spec = importlib.util.spec_from_file_location("make_datasets", ROOT / "scripts" / "make_datasets.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for path in mod.write_all(tmp_path):
        fresh, shipped = load_csv(path).frame, load_csv(DATASETS / path.name).frame
        assert list(fresh.columns) == list(shipped.columns)
        np.testing.assert_allclose(fresh.to_numpy(), shipped.to_numpy(), rtol=1e-9, atol=0)
