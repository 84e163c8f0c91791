"""kanstudio.core.studyfile: lossless round trips, undo after load, and refusal of bad files."""
from __future__ import annotations

import builtins
import io
import json
import zipfile

import numpy as np
import pytest
import torch

from kanstudio.core.data import Dataset
from kanstudio.core.study import Settings, Study, StudyBusy
from kanstudio.core.studyfile import FORMAT_VERSION, StudyFileError

torch.set_num_threads(1)


def _data(n=200, extra=False, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 3 if extra else 2))
    return Dataset.from_arrays(X, np.sin(np.pi * X[:, 0]) + X[:, 1] ** 2, names=["a", "b", "c"][: X.shape[1]])


@pytest.fixture(scope="module")
def edited():
    """A study with every kind of history entry, and one undone edit on the redo list."""
    s = Study(_data(), Settings(width="2,3,1", grid=4, steps=3), name="round trip")
    s.train()
    s.snap(0, 0, 0, "sin")
    s.prune_edge(0, 1, 2)
    s.update_settings(lamb=0.0, r2_threshold=0.9)
    s.refine(6)
    s.start_training(2)
    s.wait_training(60)
    s.set_roles(test_fraction=0.3)
    s.snap(0, 1, 0, "x^2")
    s.undo()
    return s


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    return out.getvalue()


def _with_json(data: bytes, change) -> bytes:
    m = _members(data)
    doc = json.loads(m["study.json"])
    change(doc)
    m["study.json"] = json.dumps(doc).encode()
    return _zip(m)


def test_round_trip_is_exact_and_keeps_history(edited, tmp_path):
    path = tmp_path / "s.kanstudio"
    edited.save(path)
    back = Study.load(path)
    X = edited.dataset.X
    assert back.name == "round trip" and back.settings == edited.settings
    assert back.dataset.to_json_dict() == edited.dataset.to_json_dict()
    assert np.array_equal(back.model.predict(X), edited.model.predict(X))
    assert back.history_labels == edited.history_labels and back.history_index == edited.history_index
    assert back.messages[-3:] == edited.messages[-3:]
    # redo and every undo give the same states as in the original
    for a in (edited, back):
        a.redo()
    assert np.array_equal(back.model.predict(X), edited.model.predict(X))
    while edited.can_undo:
        edited.undo()
        back.undo()
        assert back.dataset.to_json_dict() == edited.dataset.to_json_dict()
        assert np.array_equal(back.model.predict(back.dataset.X), edited.model.predict(edited.dataset.X))
    assert not back.can_undo
    while edited.can_redo:  # leave the shared fixture where it was (minus the undone snap)
        edited.redo()
        back.redo()
    edited.undo()
    # bytes round trip of a loaded study is stable
    again = Study.from_bytes(back.to_bytes())
    assert again.history_labels == back.history_labels




def test_round_trip_formula_string_is_identical(monkeypatch):
    s = Study(_data(), Settings(width="2,3,1", grid=4, steps=3))
    s.train()
    s.prune_node(1, 1)
    s.prune_node(1, 2)
    s.auto_symbolic(r2_threshold=0.0, lib=["x", "x^2", "sin"])
    back = Study.from_bytes(s.to_bytes())
    assert back.formula().sympy_str() == s.formula().sympy_str()
    assert back.formula().srepr() == s.formula().srepr()


def test_a_study_without_data_round_trips():
    s = Study(settings=Settings(steps=7), name="empty")
    back = Study.from_bytes(s.to_bytes())
    assert back.model is None and back.dataset is None and back.settings.steps == 7
    back.set_data(_data(50))
    back.train(2)
    assert back.history_labels[-1].startswith("train 2 steps")


def test_a_data_change_round_trips_with_undo():
    s = Study(_data(), Settings(width="2,3,1", grid=4))
    s.set_data(_data(60, extra=True, seed=3))
    back = Study.from_bytes(s.to_bytes())
    assert back.model.net.dims[0] == 3
    back.undo()
    assert back.dataset.inputs == ("a", "b") and back.model.net.dims[0] == 2


def test_saving_while_training_is_refused(edited):
    s = Study.from_bytes(edited.to_bytes())
    s.start_training(100000)
    try:
        with pytest.raises(StudyBusy):
            s.to_bytes()
    finally:
        s.close()
    Study.from_bytes(s.to_bytes())


# --------------------------------------------------------------------------- bad files

def test_not_a_zip(tmp_path):
    for data in (b"", b"hello", b"PK\x03\x04garbage", bytes(range(256)) * 10):
        with pytest.raises(StudyFileError, match="not a kanstudio study|not a readable zip"):
            Study.from_bytes(data)
    with pytest.raises(StudyFileError):
        Study.load(tmp_path / "missing.kanstudio")
    p = tmp_path / "x.kanstudio"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(StudyFileError, match="not a zip"):
        Study.load(p)
    assert issubclass(StudyFileError, ValueError)


def test_truncated_file(edited):
    data = edited.to_bytes()
    for cut in (len(data) // 2, len(data) - 10):
        with pytest.raises(StudyFileError):
            Study.from_bytes(data[:cut])


def test_format_versions(edited):
    data = edited.to_bytes()
    newer = _with_json(data, lambda d: d.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(StudyFileError, match=r"saved by a newer kanstudio \(format 2\); this version reads format 1"):
        Study.from_bytes(newer)
    for v in (0, "1", None, 1.0):
        with pytest.raises(StudyFileError, match="format"):
            Study.from_bytes(_with_json(data, lambda d: d.update(format_version=v)))
    with pytest.raises(StudyFileError, match="not a kanstudio study"):
        Study.from_bytes(_with_json(data, lambda d: d.update(format="something-else")))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_members_are_checked(edited):
    m = _members(edited.to_bytes())
    with pytest.raises(StudyFileError, match="tensors.pt is missing"):
        Study.from_bytes(_zip({"study.json": m["study.json"]}))
    with pytest.raises(StudyFileError, match="study.json is missing"):
        Study.from_bytes(_zip({"tensors.pt": m["tensors.pt"]}))
    with pytest.raises(StudyFileError, match="unexpected member"):
        Study.from_bytes(_zip({**m, "../../evil.py": b"print(1)"}))
    with pytest.raises(StudyFileError, match="not valid JSON"):
        Study.from_bytes(_zip({**m, "study.json": b"{not json"}))
    with pytest.raises(StudyFileError, match="not a plain tensor file"):
        Study.from_bytes(_zip({**m, "tensors.pt": b"\x80\x04garbage"}))


def _set(path, value):
    def change(doc):
        d = doc
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return change


@pytest.mark.parametrize("path,value,match", [
    (("settings", "grid"), "five", "settings"),
    (("settings", "colour"), 1, "settings"),
    (("name",), 3, "name"),
    (("history", "index"), 99, "history.index"),
    (("history", "entries", 0, "spec", "op"), "rm_rf", "unknown command"),
    (("history", "entries", 0, "spec", "args", "steps"), "3; import os", "bad value"),
    (("history", "entries", 1, "spec", "args", "l"), -1, "bad value"),
    (("history", "entries", 0, "after", "model"), 999, "after.model"),
    (("history", "entries", 0, "label"), None, "label"),
    (("current", "dataset"), None, "both"),
    (("datasets", 0, "data"), [[1.0]], "dataset 0"),
    (("mementos", 0, "meta", "net", "dtype"), "load", "dtype"),
    (("mementos", 0, "meta", "grid"), -3, "grid"),
    (("mementos", 0, "meta", "net", "width"), [[2, 0], [7, 0], [1, 0]], "sym_names|match"),
    (("mementos", 0, "meta", "net", "layers", 0, "sym_names", 0, 0), "evil_fn", "evil_fn"),
    (("mementos", 0, "meta", "feature_names"), ["p", "q"], "inputs"),
    (("mementos", 0, "tensors"), ["coef"], "lacks"),
    (("messages",), [["fatal", "x"]], "messages"),
])
def test_tampered_json_is_rejected(edited, path, value, match):
    data = _with_json(edited.to_bytes(), _set(path, value))
    with pytest.raises(StudyFileError, match=match):
        Study.from_bytes(data)


def test_tensor_shapes_must_match_the_description(edited):
    m = _members(edited.to_bytes())
    t = torch.load(io.BytesIO(m["tensors.pt"]), weights_only=True)
    key = next(k for k in t if k.endswith("layers.0.scale_base"))
    t[key] = torch.zeros(5, 5, dtype=torch.float64)
    buf = io.BytesIO()
    torch.save(t, buf)
    with pytest.raises(StudyFileError, match="does not match"):
        Study.from_bytes(_zip({**m, "tensors.pt": buf.getvalue()}))
    t.pop(key)
    t["stray"] = torch.zeros(1)
    buf = io.BytesIO()
    torch.save(t, buf)
    with pytest.raises(StudyFileError):
        Study.from_bytes(_zip({**m, "tensors.pt": buf.getvalue()}))


class _Evil:
    def __reduce__(self):
        return (exec, ("import builtins; builtins._KANSTUDIO_PWNED = True",))


def test_a_pickle_bearing_tensor_file_is_refused_without_running_it(edited):
    m = _members(edited.to_bytes())
    t = torch.load(io.BytesIO(m["tensors.pt"]), weights_only=True)
    t["0/layers.0.coef"] = _Evil()
    buf = io.BytesIO()
    torch.save(t, buf)
    with pytest.raises(StudyFileError, match="not a plain tensor file"):
        Study.from_bytes(_zip({**m, "tensors.pt": buf.getvalue()}))
    assert not hasattr(builtins, "_KANSTUDIO_PWNED")
    # a non-tensor value that weights_only does allow (an int) is refused as well
    t["0/layers.0.coef"] = 3
    buf = io.BytesIO()
    torch.save(t, buf)
    with pytest.raises(StudyFileError, match="not a float/bool tensor"):
        Study.from_bytes(_zip({**m, "tensors.pt": buf.getvalue()}))
