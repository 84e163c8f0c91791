"""The study file: one versioned zip that saves and restores a whole Study, history included.

Layout (format ``kanstudio-study``, version 1)::

    study.json   everything that is not a tensor: format, settings, datasets (lossless JSON),
                 the history (labels, command specs, settings per edit, state references),
                 and each model memento's JSON description
    tensors.pt   one flat ``{"<memento>/<parameter>": Tensor}`` dict written by ``torch.save``
                 and read back with ``torch.load(..., weights_only=True)``

Nothing else is pickled, and loading trusts nothing: member names and sizes, the JSON schema and
types, every command spec, every dataset and every model are checked (each model is rebuilt once),
and any problem raises :class:`StudyFileError` (a ``ValueError``) saying what is wrong. A file from
a newer kanstudio says so instead of half-loading. Undo history (up to the study's undo depth)
survives a save/load round trip, because the mementos are saved too.
"""
from __future__ import annotations

import io
import json
import math
import os
import tempfile
import zipfile
from pathlib import Path

import torch

from .data import DataError, Dataset
from .history import Entry, History, Memento, State, check_spec

__all__ = ["StudyFileError", "save_study", "load_study", "study_to_bytes", "study_from_bytes",
           "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "kanstudio-study"
FORMAT_VERSION = 1
JSON_MEMBER, TENSORS_MEMBER = "study.json", "tensors.pt"
MAX_MEMBER_BYTES = 1 << 30  # per member, uncompressed
MAX_FILE_BYTES = 2 << 30
MAX_ENTRIES = 1_000_000
TENSOR_DTYPES = (torch.float64, torch.float32, torch.bool)


class StudyFileError(ValueError):
    """A study file that cannot be read: not a study, damaged, or from another kanstudio version."""


# =========================================================================== saving

def _build(study) -> tuple[dict, dict[str, torch.Tensor]]:
    datasets: list[dict] = []
    ds_index: dict[int, int] = {}
    keep_alive: list = []
    mementos: list[dict] = []
    m_index: dict[int, int] = {}
    tensors: dict[str, torch.Tensor] = {}

    def ds_ref(ds: Dataset | None):
        if ds is None:
            return None
        if id(ds) not in ds_index:
            ds_index[id(ds)] = len(datasets)
            datasets.append(ds.to_json_dict())
            keep_alive.append(ds)
        return ds_index[id(ds)]

    def m_ref(m: Memento | None):
        if m is None:
            return None
        if id(m) not in m_index:
            n = len(mementos)
            m_index[id(m)] = n
            mementos.append({"meta": m.meta, "tensors": sorted(m.tensors)})
            for k, v in m.tensors.items():
                tensors[f"{n}/{k}"] = v.detach().cpu().contiguous()
            keep_alive.append(m)
        return m_index[id(m)]

    def state_ref(st: State | None):
        if st is None:
            return None
        return {"dataset": ds_ref(st.dataset), "model": m_ref(st.model)}

    def spec_json(spec: dict) -> dict:
        args = {k: ({"$dataset": ds_ref(v)} if isinstance(v, Dataset) else v) for k, v in spec["args"].items()}
        return {"op": spec["op"], "args": args}

    h = study.history
    doc = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "kanstudio_version": _version(),
        "name": study.name,
        "settings": study.settings.to_dict(),
        "base_settings": study.base_settings.to_dict(),
        "base": state_ref(study.base),
        "current": state_ref(study._state()),
        "history": {
            "index": h.index,
            "max_undo": h.max_undo,
            "entries": [{"label": e.label, "spec": spec_json(e.spec), "settings": e.settings, "info": e.info,
                         "before": state_ref(e.before), "after": state_ref(e.after)} for e in h.entries],
        },
        "messages": [list(m) for m in study.messages[-100:]],
        "units": dict(getattr(study, "units", {}) or {}),
        "datasets": datasets,
        "mementos": mementos,
    }
    return doc, tensors


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("kanstudio")
    except Exception:
        return "unknown"


def study_to_bytes(study) -> bytes:
    """The study file's bytes. Refuses (``StudyBusy``) while the study is training."""
    with study.lock:
        study._check_idle("save the study")
        doc, tensors = _build(study)
        text = json.dumps(doc, allow_nan=True, ensure_ascii=False, separators=(",", ":"))
    tbuf = io.BytesIO()
    torch.save(tensors, tbuf)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(JSON_MEMBER, text.encode("utf-8"))
        zf.writestr(TENSORS_MEMBER, tbuf.getvalue())
    return out.getvalue()


def save_study(study, path) -> None:
    """Write the study file atomically (a crash never leaves half a file under ``path``)."""
    data = study_to_bytes(study)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".kanstudio-", suffix=".tmp", dir=str(path.parent) or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# =========================================================================== loading

def _fail(msg: str):
    raise StudyFileError(f"cannot open this study file: {msg}")


def _read_members(data: bytes) -> dict[str, bytes]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"study bytes expected, got {type(data).__name__}")
    try:
        zf = zipfile.ZipFile(io.BytesIO(bytes(data)))
    except zipfile.BadZipFile:
        _fail("it is not a kanstudio study (not a zip archive)")
    except Exception as e:
        _fail(f"it is not a readable zip archive ({type(e).__name__})")
    with zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            _fail("it has duplicate members")
        extra = sorted(set(names) - {JSON_MEMBER, TENSORS_MEMBER})
        if extra:
            _fail(f"unexpected member(s) {', '.join(map(repr, extra[:5]))}; a study holds only "
                  f"{JSON_MEMBER} and {TENSORS_MEMBER}")
        if JSON_MEMBER not in names:
            _fail(f"{JSON_MEMBER} is missing (this is not a kanstudio study, or it is damaged)")
        out = {}
        for info in infos:
            if info.file_size > MAX_MEMBER_BYTES:
                _fail(f"{info.filename} is too large ({info.file_size} bytes)")
            try:
                with zf.open(info) as f:
                    raw = f.read(MAX_MEMBER_BYTES + 1)
            except Exception as e:  # bad CRC, truncated, unsupported compression...
                _fail(f"{info.filename} is damaged ({type(e).__name__}: {e})")
            if len(raw) != info.file_size:
                _fail(f"{info.filename} is damaged (size mismatch)")
            out[info.filename] = raw
    return out


class _V:
    """Small schema checker: each method returns the value or raises StudyFileError with a path."""

    @staticmethod
    def obj(v, where, keys=None, optional=()):
        if not isinstance(v, dict):
            _fail(f"{where} must be an object")
        if keys is not None:
            missing = [k for k in keys if k not in v]
            if missing:
                _fail(f"{where} lacks {', '.join(map(repr, missing))}")
            unknown = sorted(set(v) - set(keys) - set(optional))
            if unknown:
                _fail(f"{where} has unknown field(s) {', '.join(map(repr, unknown[:5]))}")
        return v

    @staticmethod
    def int(v, where, lo=None, hi=None):
        if not isinstance(v, int) or isinstance(v, bool) or (lo is not None and v < lo) or (hi is not None and v > hi):
            _fail(f"{where} must be an integer" + (f" in [{lo}, {hi}]" if lo is not None and hi is not None else ""))
        return v

    @staticmethod
    def num(v, where):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            _fail(f"{where} must be a finite number")
        return v

    @staticmethod
    def str(v, where):
        if not isinstance(v, str):
            _fail(f"{where} must be a string")
        return v

    @staticmethod
    def list(v, where, max_len=None):
        if not isinstance(v, list) or (max_len is not None and len(v) > max_len):
            _fail(f"{where} must be a list")
        return v


def _parse_json(raw: bytes) -> dict:
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        _fail(f"{JSON_MEMBER} is not valid JSON ({e})")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        _fail("it is not a kanstudio study (wrong format name)")
    ver = doc.get("format_version")
    if not isinstance(ver, int) or isinstance(ver, bool):
        _fail(f"its format version {ver!r} is not a number")
    if ver > FORMAT_VERSION:
        raise StudyFileError(f"this study was saved by a newer kanstudio (format {ver}); this version reads "
                             f"format {FORMAT_VERSION}. Update kanstudio to open it.")
    if ver != FORMAT_VERSION:
        raise StudyFileError(f"this study has an unknown format version {ver}; this version of kanstudio reads "
                             f"format {FORMAT_VERSION}")
    return doc


def _load_tensors(raw: bytes | None, needed: bool) -> dict[str, torch.Tensor]:
    if raw is None:
        if needed:
            _fail(f"{TENSORS_MEMBER} is missing")
        return {}
    try:
        obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as e:
        _fail(f"{TENSORS_MEMBER} is not a plain tensor file and was not loaded (it may hold code, or be "
              f"damaged): {type(e).__name__}: {str(e)[:200]}")
    if not isinstance(obj, dict):
        _fail(f"{TENSORS_MEMBER} must hold a mapping of tensors")
    for k, v in obj.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor) or v.dtype not in TENSOR_DTYPES:
            _fail(f"{TENSORS_MEMBER} holds an entry that is not a float/bool tensor ({str(k)[:60]!r})")
        if v.is_sparse or v.layout != torch.strided:
            _fail(f"{TENSORS_MEMBER} entry {k!r} is not a dense tensor")
    return obj


def _check_meta(meta, where: str) -> None:
    from .model import DTYPES
    from .symbolic import get_function

    V = _V
    V.obj(meta, where, ["grid", "k", "seed", "noise_scale", "dtype", "grid_eps", "feature_names",
                        "target_name", "net"])
    V.int(meta["grid"], f"{where}.grid", 1, 100000)
    V.int(meta["k"], f"{where}.k", 1, 100)
    V.int(meta["seed"], f"{where}.seed", 0, 2**63 - 1)
    V.num(meta["noise_scale"], f"{where}.noise_scale")
    V.num(meta["grid_eps"], f"{where}.grid_eps")
    if meta["dtype"] not in DTYPES:
        _fail(f"{where}.dtype must be one of {list(DTYPES)}")
    fn = meta["feature_names"]
    if fn is not None and not (isinstance(fn, list) and all(isinstance(s, str) for s in fn)):
        _fail(f"{where}.feature_names must be a list of strings")
    V.str(meta["target_name"], f"{where}.target_name")
    net = V.obj(meta["net"], f"{where}.net", ["width", "seed", "layers", "dtype"])
    width = V.list(net["width"], f"{where}.net.width", 64)
    if len(width) < 2:
        _fail(f"{where}.net.width needs at least two layers")
    for w in width:
        if not (isinstance(w, list) and len(w) == 2):
            _fail(f"{where}.net.width entries must be [n_sum, n_prod]")
        V.int(w[0], f"{where}.net.width", 0, 100000)
        V.int(w[1], f"{where}.net.width", 0, 100000)
    V.int(net["seed"], f"{where}.net.seed", 0, 2**63 - 1)
    if net["dtype"] not in DTYPES:
        _fail(f"{where}.net.dtype must be one of {list(DTYPES)}")
    layers = V.list(net["layers"], f"{where}.net.layers")
    if len(layers) != len(width) - 1:
        _fail(f"{where}.net.layers does not match the width")
    for l, st in enumerate(layers):
        w = f"{where}.net.layers[{l}]"
        V.obj(st, w, ["G", "k", "n_prod", "sym_names"])
        V.int(st["G"], f"{w}.G", 1, 100000)
        V.int(st["k"], f"{w}.k", 1, 100)
        V.int(st["n_prod"], f"{w}.n_prod", 0, 100000)
        names = V.list(st["sym_names"], f"{w}.sym_names")
        n_in, n_out = sum(width[l]), sum(width[l + 1])
        if len(names) != n_in or any(not isinstance(r, list) or len(r) != n_out for r in names):
            _fail(f"{w}.sym_names does not match the layer's shape")
        for r in names:
            for n in r:
                if n is None:
                    continue
                if not isinstance(n, str):
                    _fail(f"{w}.sym_names holds a non-string")
                try:
                    get_function(n)
                except KeyError:
                    _fail(f"the model uses the symbolic function {n!r}, which is not known here; "
                          "register it (kanstudio.core.symbolic.register_function) before loading")


def study_from_bytes(data: bytes):
    """A Study from a study file's bytes (``StudyFileError`` for anything unexpected)."""
    from .settings import Settings
    from .study import Study

    members = _read_members(data)
    doc = _parse_json(members[JSON_MEMBER])
    V = _V
    V.obj(doc, "study.json", ["format", "format_version", "kanstudio_version", "name", "settings", "base_settings",
                              "base", "current", "history", "messages", "datasets", "mementos"],
          optional=("units",))  # units: added with the discovery panel; older files lack it
    name = V.str(doc["name"], "name")

    def settings(d, where):
        try:
            return Settings.from_dict(V.obj(d, where))
        except (TypeError, ValueError) as e:
            _fail(f"{where} are invalid ({e})")

    cur_settings = settings(doc["settings"], "settings")
    base_settings = settings(doc["base_settings"], "base_settings")

    datasets = []
    for n, d in enumerate(V.list(doc["datasets"], "datasets")):
        try:
            datasets.append(Dataset.from_json_dict(V.obj(d, f"datasets[{n}]")))
        except DataError as e:
            _fail(f"dataset {n} is invalid ({e})")

    mdocs = V.list(doc["mementos"], "mementos")
    tensors = _load_tensors(members.get(TENSORS_MEMBER), needed=bool(mdocs))
    used = set()
    mementos = []
    for n, md in enumerate(mdocs):
        where = f"mementos[{n}]"
        V.obj(md, where, ["meta", "tensors"])
        _check_meta(md["meta"], f"{where}.meta")
        keys = V.list(md["tensors"], f"{where}.tensors")
        if not all(isinstance(k, str) for k in keys):
            _fail(f"{where}.tensors must list names")
        t = {}
        for k in keys:
            full = f"{n}/{k}"
            if full not in tensors:
                _fail(f"model {n} lacks its tensor {k!r} in {TENSORS_MEMBER}")
            t[k] = tensors[full]
            used.add(full)
        m = Memento(md["meta"], t)
        try:  # rebuild once: shapes, names and dtypes must fit the description exactly
            m.restore(device="cpu")
        except Exception as e:
            _fail(f"model {n} does not match its description ({type(e).__name__}: {str(e)[:200]})")
        mementos.append(m)
    if set(tensors) - used:
        _fail(f"{TENSORS_MEMBER} holds tensors that belong to no model")

    def ref(v, table, where, kind):
        if v is None:
            return None
        if not table:
            _fail(f"{where} refers to a {kind} the file does not hold")
        return table[V.int(v, where, 0, len(table) - 1)]

    def state(d, where, allow_none=True):
        if d is None:
            if allow_none:
                return None
            _fail(f"{where} is missing")
        V.obj(d, where, ["dataset", "model"])
        ds = ref(d["dataset"], datasets, f"{where}.dataset", "dataset")
        m = ref(d["model"], mementos, f"{where}.model", "model")
        if (ds is None) != (m is None):
            _fail(f"{where} must hold both a dataset and a model, or neither")
        if m is not None and m.meta["feature_names"] != list(ds.inputs):
            _fail(f"{where}: the model's inputs {m.meta['feature_names']} do not match the data's {list(ds.inputs)}")
        return State(ds, m)

    base = state(doc["base"], "base", allow_none=False)
    current = state(doc["current"], "current", allow_none=False)

    hd = V.obj(doc["history"], "history", ["index", "max_undo", "entries"])
    edocs = V.list(hd["entries"], "history.entries", MAX_ENTRIES)
    max_undo = V.int(hd["max_undo"], "history.max_undo", 1, 10**6)
    index = V.int(hd["index"], "history.index", 0, len(edocs))
    entries = []
    for n, ed in enumerate(edocs):
        where = f"history.entries[{n}]"
        V.obj(ed, where, ["label", "spec", "settings", "info", "before", "after"])
        label = V.str(ed["label"], f"{where}.label")
        spec = V.obj(ed["spec"], f"{where}.spec")
        args = spec.get("args")
        if isinstance(args, dict) and isinstance(args.get("dataset"), dict):
            dref = V.obj(args["dataset"], f"{where}.spec.args.dataset", ["$dataset"])["$dataset"]
            spec = {**spec, "args": {**args, "dataset": ref(dref, datasets, f"{where}.spec.args.dataset", "dataset")}}
        problem = check_spec(spec)
        if problem:
            _fail(f"{where}.spec: {problem}")
        es = settings(ed["settings"], f"{where}.settings").to_dict()
        info = V.obj(ed["info"], f"{where}.info")
        before, after = state(ed["before"], f"{where}.before"), state(ed["after"], f"{where}.after")
        if (before is None) != (after is None):
            _fail(f"{where} must keep both states or neither")
        entries.append(Entry(label, spec, es, before, after, info))

    messages = []
    for m in V.list(doc["messages"], "messages"):
        if isinstance(m, list) and len(m) == 2 and m[0] in ("info", "warning", "error") and isinstance(m[1], str):
            messages.append((m[0], m[1]))
        else:
            _fail("messages must be [level, text] pairs")

    study = Study(settings=base_settings, name=name, max_undo=max_undo)
    h = History(max_undo)
    h.entries, h.index = entries, index
    study._history = h
    study.base_settings = base_settings
    study.base = base
    study.settings = cur_settings
    study._apply_state(current)
    study._cur = (study.version, current)
    study.messages = messages
    units = V.obj(doc.get("units", {}), "units")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in units.items()):
        _fail("units must map column names to unit texts")
    try:
        study.set_units(units)
    except ValueError as e:
        _fail(f"units are invalid ({e})")
    return study


def load_study(path):
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise StudyFileError(f"cannot open the study file {str(path)!r}: {e.strerror or e}") from None
    if size > MAX_FILE_BYTES:
        raise StudyFileError(f"cannot open this study file: it is too large ({size} bytes)")
    return study_from_bytes(path.read_bytes())
