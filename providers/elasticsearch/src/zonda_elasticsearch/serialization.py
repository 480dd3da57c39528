"""JSON for the values databases hand back: documents sent to Elasticsearch and hits written to files.

Rows from SQL carry ``Decimal``, ``datetime``, ``date``, ``time``, ``timedelta``, ``UUID``, ``bytes`` and
network addresses, none of which :mod:`json` encodes. :func:`json_default` gives each the form Elasticsearch
maps well: decimals written without a fraction stay exact integers (a ``NUMERIC(20)`` key must not round
through a float), other decimals become floats, times ISO 8601 text, bytes base64 (what the ``binary`` field
type reads). It is the client's serializer fallback, so plain values still go through the C encoder.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import ipaddress
import json
import uuid
from typing import Any

from elasticsearch.serializer import JsonSerializer, NdjsonSerializer

_ADDRESS_TYPES = (
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
    ipaddress.IPv4Interface,
    ipaddress.IPv6Interface,
)


def json_default(value: Any) -> Any:
    """The JSON form of a value :mod:`json` does not know; ``TypeError`` for anything else."""
    if isinstance(value, decimal.Decimal):
        # Integers only for values written without decimals (NUMERIC(20) keys): a NUMERIC(10,2) column's
        # 5.00 must stay a float, or the first document would map the field as long and truncate later ones.
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent >= 0:
            return int(value)
        return float(value)
    if isinstance(value, dt.date | dt.time):  # datetime is a date
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (uuid.UUID, *_ADDRESS_TYPES)):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON: {value!r}")


def dumps_line(value: Any) -> str:
    """One JSON-lines record (no newline), compact and UTF-8 friendly."""
    return json.dumps(value, default=json_default, ensure_ascii=False, separators=(",", ":"))


class DocumentJsonSerializer(JsonSerializer):
    """The client's JSON serializer, with :func:`json_default` for database values."""

    def default(self, data: Any) -> Any:
        try:
            return json_default(data)
        except TypeError:
            return super().default(data)


class DocumentNdjsonSerializer(NdjsonSerializer):
    """The ``_bulk`` (NDJSON) serializer, with :func:`json_default` for database values."""

    def default(self, data: Any) -> Any:
        try:
            return json_default(data)
        except TypeError:
            return super().default(data)


def client_serializers() -> dict[str, Any]:
    """``serializers=`` for ``Elasticsearch(...)``; the client derives the compatibility mimetypes itself."""
    return {"application/json": DocumentJsonSerializer(), "application/x-ndjson": DocumentNdjsonSerializer()}
