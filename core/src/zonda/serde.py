"""JSON codec for XCom values and params.

XComs and params are stored as JSON text so that any process (scheduler, worker, web server, a human
with ``sqlite3``) can read them. Plain JSON data is written as is; the Python types a task commonly
returns that JSON cannot represent (datetimes, tuples, sets, Decimals, bytes, ...) are written as small
tagged objects::

    {"__zonda__": "datetime", "v": "2024-01-01T00:00:00+01:00", "tz": "Europe/Paris"}

and come back as the same type. A plain dict that happens to contain the tag key, and a dict with keys
that are not strings, are written as ``{"__zonda__": "dict", "v": [[key, value], ...]}`` so nothing is
ambiguous.

The output is deterministic: dicts keep their insertion order (so a round trip is faithful) and set
members are sorted by their JSON text (set iteration order changes between processes). NaN and the
infinities are tagged, so the text is strict JSON that any parser accepts.

Subclasses of ``str``, ``int`` and ``float`` (``StrEnum``, ``IntEnum``...) are stored as their plain
value, as ``json.dumps`` does; subclasses of ``dict``, ``list`` and ``tuple`` come back as the base type.

Only ``json``, ``datetime`` and ``binascii`` are imported up front: ``decimal``, ``uuid``, ``pathlib``
and ``zoneinfo`` are looked up only when a value of that kind is met (such a value implies its module
is already loaded).
"""

from __future__ import annotations

import binascii
import json
import math
import sys
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any

from zonda.exceptions import XComSerializationError

__all__ = ["TAG", "dumps", "loads"]

TAG = "__zonda__"

_OPTIONS: dict[str, Any] = {"allow_nan": False, "check_circular": False, "separators": (",", ":")}
_encoder = json.JSONEncoder(ensure_ascii=False, **_OPTIONS)
_encoder_ascii = json.JSONEncoder(ensure_ascii=True, **_OPTIONS)
_encode_json = _encoder.encode
_plain_decoder = json.JSONDecoder()


class _Unsupported(Exception):
    """Raised inside the walk; carries the location of the bad value so the final message can show it."""

    def __init__(self, value: Any, problem: str | None = None) -> None:
        super().__init__()
        self.value = value
        self.problem = problem
        self.path: list[str] = []


def dumps(value: Any) -> str:
    """Serialize ``value`` to compact JSON text.

    Raises :class:`XComSerializationError` naming the type (and where it sits in the value) if some part
    of it has no JSON form.
    """
    t = type(value)
    if t is int or t is bool or value is None:
        return _encode_json(value)
    try:
        text = _encode_json(value if t is str else _enc(value))
    except _Unsupported as exc:
        raise XComSerializationError(_unsupported_message(exc)) from None
    except RecursionError:
        raise XComSerializationError(
            "cannot serialize the value to JSON: it contains a reference cycle (or is nested too deeply). "
            "Return JSON-friendly data: dicts, lists, strings, numbers, booleans, None, datetimes."
        ) from None
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate cannot be stored as UTF-8; \\u escapes keep it and still round-trip.
            text = _encoder_ascii.encode(_enc(value))
    return text


def loads(text: str | bytes) -> Any:
    """Parse text written by :func:`dumps` (or any JSON) back into Python values."""
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8")
    try:
        if TAG not in text:
            return _plain_decoder.decode(text)
        return _tagged_decoder.decode(text)
    except XComSerializationError:
        raise
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise XComSerializationError(f"stored value is not valid JSON: {exc}") from None


# --------------------------------------------------------------------------------------------------- encoding


def _enc(v: Any) -> Any:
    t = type(v)
    if t is str or t is int or t is bool or v is None:
        return v
    if t is float:
        if math.isfinite(v):
            return v
        return {TAG: "float", "v": "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")}
    if t is list:
        return _enc_list(v)
    if t is dict:
        return _enc_dict(v)
    encoder = _BY_TYPE.get(t)
    if encoder is None:
        encoder = _resolve(t, v)
    return encoder(v)


def _enc_list(v: Any) -> list[Any]:
    try:
        return [_enc(x) for x in v]
    except _Unsupported as exc:
        exc.path.append(f"[{_failing(enumerate(v))!r}]")
        raise


def _failing(pairs: Any) -> Any:
    """Error path only: find which (key, value) pair of a container fails to encode."""
    for key, x in pairs:
        try:
            _enc(key)
            _enc(x)
        except _Unsupported:
            return key
    return "?"


def _enc_dict(v: dict[Any, Any]) -> Any:
    try:
        for key in v:
            if type(key) is not str or key == TAG:
                break
        else:
            return {k: _enc(x) for k, x in v.items()}
        # Non-str keys (or the tag key itself): keep the exact keys as an item list.
        return {TAG: "dict", "v": [[_enc(k), _enc(x)] for k, x in v.items()]}
    except _Unsupported as exc:
        exc.path.append(f"[{_failing(v.items())!r}]")
        raise


def _enc_tuple(v: Any) -> Any:
    return {TAG: "tuple", "v": _enc_list(v)}


def _enc_set(v: Any) -> Any:
    try:
        members = [_enc(x) for x in v]
    except _Unsupported as exc:
        exc.path.append("{...}")
        raise
    members.sort(key=_encode_json)
    return {TAG: "frozenset" if isinstance(v, frozenset) else "set", "v": members}


def _enc_datetime(v: datetime) -> Any:
    out: dict[str, Any] = {TAG: "datetime", "v": v.isoformat()}
    tz = v.tzinfo
    if tz is not None:
        key = getattr(tz, "key", None)  # zoneinfo.ZoneInfo
        if isinstance(key, str):
            out["tz"] = key
            if v.fold:
                out["fold"] = 1
    return out


def _enc_date(v: date) -> Any:
    return {TAG: "date", "v": v.isoformat()}


def _enc_time(v: time) -> Any:
    out: dict[str, Any] = {TAG: "time", "v": v.isoformat()}
    if v.fold:
        out["fold"] = 1
    return out


def _enc_timedelta(v: timedelta) -> Any:
    return {TAG: "timedelta", "v": [v.days, v.seconds, v.microseconds]}


def _enc_bytes(v: bytes) -> Any:
    return {TAG: "bytes", "v": binascii.b2a_base64(v, newline=False).decode("ascii")}


def _enc_decimal(v: Any) -> Any:
    return {TAG: "decimal", "v": str(v)}


def _enc_uuid(v: Any) -> Any:
    return {TAG: "uuid", "v": str(v)}


def _enc_path(v: Any) -> Any:
    return {TAG: "path", "v": str(v)}


_BY_TYPE: dict[type, Callable[[Any], Any]] = {
    tuple: _enc_tuple,
    set: _enc_set,
    frozenset: _enc_set,
    datetime: _enc_datetime,
    date: _enc_date,
    time: _enc_time,
    timedelta: _enc_timedelta,
    bytes: _enc_bytes,
}


def _resolve(t: type, v: Any) -> Callable[[Any], Any]:
    """Find the encoder of a type not seen before (subclasses, lazily-imported types) and remember it."""
    encoder: Callable[[Any], Any] | None = None
    decimal = sys.modules.get("decimal")
    uuid = sys.modules.get("uuid")
    pathlib = sys.modules.get("pathlib")
    if issubclass(t, str):
        encoder = str.__str__
    elif issubclass(t, int):
        encoder = int.__index__
    elif issubclass(t, float):
        encoder = _enc_float_subclass
    elif issubclass(t, datetime):
        encoder = _enc_datetime
    elif issubclass(t, date):
        encoder = _enc_date
    elif issubclass(t, time):
        encoder = _enc_time
    elif issubclass(t, timedelta):
        encoder = _enc_timedelta
    elif decimal is not None and issubclass(t, decimal.Decimal):
        encoder = _enc_decimal
    elif uuid is not None and issubclass(t, uuid.UUID):
        encoder = _enc_uuid
    elif pathlib is not None and issubclass(t, pathlib.Path):
        encoder = _enc_path
    elif issubclass(t, bytes):
        encoder = _enc_bytes
    elif issubclass(t, dict):
        encoder = _enc_dict
    elif issubclass(t, list):
        encoder = _enc_list
    elif issubclass(t, tuple):
        encoder = _enc_tuple
    elif issubclass(t, set | frozenset):
        encoder = _enc_set
    if encoder is None:
        raise _Unsupported(v)
    if len(_BY_TYPE) < 256:
        _BY_TYPE[t] = encoder
    return encoder


def _enc_float_subclass(v: float) -> Any:
    return _enc(float.__float__(v))


def _type_name(value: Any) -> str:
    t = type(value)
    module = t.__module__
    return t.__qualname__ if module == "builtins" else f"{module}.{t.__qualname__}"


def _unsupported_message(exc: _Unsupported) -> str:
    where = "value" + "".join(reversed(exc.path))
    hint = ""
    value = exc.value
    if hasattr(type(value), "__dataclass_fields__"):
        hint = " (for a dataclass, return dataclasses.asdict(obj))"
    elif hasattr(value, "model_dump"):
        hint = " (for a pydantic model, return obj.model_dump(mode='json'))"
    elif hasattr(value, "tolist"):
        hint = " (for a numpy array or scalar, return obj.tolist())"
    elif hasattr(value, "to_dict"):
        hint = " (a DataFrame belongs in a file or table: push its path)"
    location = "" if where == "value" else f" at {where}"
    return (
        f"cannot serialize a value of type {_type_name(value)}{location} to JSON. "
        "Return JSON-friendly data instead: dicts, lists, strings, numbers, booleans, None, datetimes, "
        f"dates, Decimals, UUIDs, bytes, sets and tuples{hint}; for large or binary data, write it to a "
        "file, a table or an object store and return its path or URI."
    )


# --------------------------------------------------------------------------------------------------- decoding


def _dec_datetime(d: dict[str, Any]) -> datetime:
    value = datetime.fromisoformat(d["v"])
    key = d.get("tz")
    if key is not None:
        zone = _zone(key)
        if zone is not None:
            value = value.replace(tzinfo=zone, fold=d.get("fold", 0))
    return value


def _zone(key: str) -> Any:
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(key)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None  # unknown here: keep the fixed UTC offset the text carries


def _dec_time(d: dict[str, Any]) -> time:
    value = time.fromisoformat(d["v"])
    return value.replace(fold=1) if d.get("fold") else value


def _dec_decimal(d: dict[str, Any]) -> Any:
    import decimal

    return decimal.Decimal(d["v"])


def _dec_uuid(d: dict[str, Any]) -> Any:
    import uuid

    return uuid.UUID(d["v"])


def _dec_path(d: dict[str, Any]) -> Any:
    import pathlib

    return pathlib.Path(d["v"])


def _dec_float(d: dict[str, Any]) -> float:
    return float(d["v"])


_DECODERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "tuple": lambda d: tuple(d["v"]),
    "set": lambda d: set(d["v"]),
    "frozenset": lambda d: frozenset(d["v"]),
    "dict": lambda d: dict(d["v"]),
    "float": _dec_float,
    "datetime": _dec_datetime,
    "date": lambda d: date.fromisoformat(d["v"]),
    "time": _dec_time,
    "timedelta": lambda d: timedelta(days=d["v"][0], seconds=d["v"][1], microseconds=d["v"][2]),
    "bytes": lambda d: binascii.a2b_base64(d["v"]),
    "decimal": _dec_decimal,
    "uuid": _dec_uuid,
    "path": _dec_path,
}


def _object_hook(d: dict[str, Any]) -> Any:
    if TAG not in d:
        return d
    name = d[TAG]
    decoder = _DECODERS.get(name)
    if decoder is None:
        raise XComSerializationError(
            f"stored value uses the unknown type tag {name!r}; it was probably written by a newer Zonda"
        )
    try:
        return decoder(d)
    except (KeyError, TypeError, ValueError, IndexError, binascii.Error) as exc:
        raise XComSerializationError(f"stored value has a malformed {name!r} entry: {exc}") from None


_tagged_decoder = json.JSONDecoder(object_hook=_object_hook)
