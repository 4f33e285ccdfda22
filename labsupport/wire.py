"""Values that cross a process boundary as data: JSON, never an arbitrary pickle.

    >>> from dataclasses import dataclass
    >>> from labsupport import wire
    >>> @wire.record
    ... @dataclass(frozen=True)
    ... class Point:
    ...     x: float
    ...     y: float
    >>> blob = wire.dumps({"p": Point(1.0, 2.0), 3: (4, float("nan"))})
    >>> value = wire.loads(blob)
    >>> value["p"], value[3][0]
    (Point(x=1.0, y=2.0), 4)

Whatever a learner's code returns reaches the grader through here, so decoding runs no code
the learner chose: plain values (None, bool, int, float with nan/inf, str, bytes, list, tuple,
dict with any of these as keys, set), numpy scalars and arrays, and instances of the
dataclasses registered with `@wire.record` (fields are set directly; `__init__` and
`__post_init__` do not run). Anything else is refused with a WireError that names it.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import json
import math

MAX_BYTES = 256 * 2**20
MAX_DEPTH = 64
_RECORDS: dict[str, type] = {}


class WireError(ValueError):
    """A value that cannot cross as data (or a blob that is not one of ours)."""


def record(cls):
    """Class decorator: allow this dataclass to cross the boundary (its fields must be data)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"@wire.record needs a dataclass, got {cls!r}")
    _RECORDS[_name(cls)] = cls
    return cls


def _name(cls) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _float(x: float):
    if math.isfinite(x):
        return x
    return {"__float__": "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")}


def _encode(value, depth: int):
    if depth > MAX_DEPTH:
        raise WireError(f"nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return _float(value)
    d = depth + 1
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_encode(v, d) for v in value]
        if isinstance(value, list):
            return items
        kind = "tuple" if isinstance(value, tuple) else "set"
        return {f"__{kind}__": items}
    if isinstance(value, dict):
        if all(type(k) is str and not k.startswith("__") for k in value):
            return {k: _encode(v, d) for k, v in value.items()}
        return {"__dict__": [[_encode(k, d), _encode(v, d)] for k, v in value.items()]}
    if isinstance(value, (bytes, bytearray)):
        return {"__bytes__": base64.b64encode(bytes(value)).decode()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = _name(type(value))
        if _RECORDS.get(name) is not type(value):
            raise WireError(f"{name} is not a registered record (labsupport.wire.record)")
        fields = {f.name: _encode(getattr(value, f.name), d) for f in dataclasses.fields(value)}
        return {"__record__": name, "fields": fields}
    numpy = _numpy_encode(value, d)
    if numpy is not None:
        return numpy
    raise WireError(f"a {type(value).__module__}.{type(value).__qualname__} cannot cross as data")


def _numpy_encode(value, depth):
    mod = type(value).__module__
    if not mod.startswith("numpy"):
        return None
    import numpy as np

    if isinstance(value, np.generic):
        return _encode(value.item(), depth)
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise WireError(f"numpy arrays of dtype {value.dtype} cannot cross as data")
        flat = [_float(float(x)) if value.dtype.kind == "f" else x for x in value.ravel().tolist()]
        return {"__ndarray__": flat, "dtype": value.dtype.str, "shape": list(value.shape)}
    return None


def dumps(value) -> bytes:
    """Encode `value` as JSON bytes; WireError for anything that is not data."""
    try:
        text = json.dumps(_encode(value, 0), allow_nan=False, separators=(",", ":"))
    except RecursionError:
        raise WireError(f"nested deeper than {MAX_DEPTH} levels") from None
    return text.encode()


def _record_class(name: str) -> type:
    cls = _RECORDS.get(name)
    if cls is None:
        module = name.partition(":")[0]
        if module.split(".")[0] == "labsupport":  # our own modules only: importing runs no
            try:  # code the sender chose
                importlib.import_module(module)
            except ImportError:
                pass
        cls = _RECORDS.get(name)
    if cls is None:
        raise WireError(f"unknown record type {name!r}")
    return cls


def _decode(obj, depth: int):
    if depth > MAX_DEPTH:
        raise WireError(f"nested deeper than {MAX_DEPTH} levels")
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    d = depth + 1
    if isinstance(obj, list):
        return [_decode(v, d) for v in obj]
    if not isinstance(obj, dict):
        raise WireError(f"unexpected JSON value {type(obj).__name__}")
    if not any(k.startswith("__") for k in obj):
        return {k: _decode(v, d) for k, v in obj.items()}
    if "__float__" in obj:
        return float(obj["__float__"])
    if "__tuple__" in obj:
        return tuple(_decode(v, d) for v in obj["__tuple__"])
    if "__set__" in obj:
        return {_decode(v, d) for v in obj["__set__"]}
    if "__dict__" in obj:
        return {_decode(k, d): _decode(v, d) for k, v in obj["__dict__"]}
    if "__bytes__" in obj:
        return base64.b64decode(obj["__bytes__"])
    if "__ndarray__" in obj:
        import numpy as np

        flat = [_decode(v, d) for v in obj["__ndarray__"]]
        return np.array(flat, dtype=np.dtype(str(obj["dtype"]))).reshape(obj["shape"])
    if "__record__" in obj:
        cls = _record_class(str(obj["__record__"]))
        names = {f.name for f in dataclasses.fields(cls)}
        fields = obj.get("fields") or {}
        unknown = set(fields) - names
        if unknown or set(fields) != names:
            raise WireError(f"{obj['__record__']}: fields {sorted(fields)} != {sorted(names)}")
        instance = cls.__new__(cls)
        for key, value in fields.items():
            object.__setattr__(instance, key, _decode(value, d))
        return instance
    raise WireError(f"unknown tag in {sorted(obj)[:3]}")


def loads(blob: bytes | str):
    """Decode what `dumps` wrote; WireError for anything else."""
    if len(blob) > MAX_BYTES:
        raise WireError(f"{len(blob)} bytes: more than {MAX_BYTES} bytes of data")
    try:
        obj = json.loads(blob)
    except (ValueError, RecursionError) as exc:
        raise WireError(f"not wire data: {exc}") from None
    try:
        return _decode(obj, 0)
    except (TypeError, ValueError, KeyError) as exc:
        if isinstance(exc, WireError):
            raise
        raise WireError(f"malformed wire data: {exc}") from None
