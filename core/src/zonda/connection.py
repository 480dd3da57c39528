"""A :class:`Connection`: where a hook connects and with which credentials.

A connection comes from a secrets backend, from ``ZONDA_CONN_<CONN_ID>`` (a URI or JSON) or from the metastore;
see :mod:`zonda.secrets`. Both text forms round-trip without loss:

- URI: ``type://login:password@host:port/schema?key=value&key2=value2``. Every part is percent-encoded, so a
  password with ``@:/?#%`` survives. Extras are query parameters when they are all strings, else one
  ``__extra__=<json>`` parameter. As in Airflow, a ``_`` in the conn type is written ``-`` in the scheme (URL
  schemes cannot hold ``_``): ``google_cloud_platform`` is ``google-cloud-platform://``.
- JSON: ``{"conn_type": ..., "host": ..., "login": ..., "password": ..., "schema": ..., "port": ...,
  "extra": {...}, "description": ...}``.

Empty strings in the text fields mean "not set" (None), so ``type://host`` and ``type://:@host`` are the same
connection. Error messages never quote the text being parsed: it holds a password.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

from zonda.exceptions import ZondaException

EXTRA_PARAM = "__extra__"
_TEXT_FIELDS = ("host", "login", "password", "schema")
#: Conn types that survive the ``_`` -> ``-`` scheme spelling (no ``-`` or uppercase of their own).
_URI_CONN_TYPE = re.compile(r"^[a-z][a-z0-9_+.]*$")
_IPV6_HOST = re.compile(r"^\[[0-9a-fA-F:.]+\]$")


class InvalidConnection(ZondaException, ValueError):
    """A connection's URI or JSON cannot be read. The message never contains the text itself (it holds secrets)."""


def _none_if_empty(value: Any) -> Any:
    return None if value == "" else value


def _coerce_port(value: Any, where: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidConnection(f"{where}: port must be a number, got a boolean")
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise InvalidConnection(f"{where}: port must be a number") from None
    if not 0 <= port <= 65535:
        raise InvalidConnection(f"{where}: port {port} is out of range (0-65535)")
    return port


def _coerce_extra(value: Any, where: str) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise InvalidConnection(f"{where}: extra is not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(value, dict):
        raise InvalidConnection(f"{where}: extra must be a JSON object, got {type(value).__name__}")
    return dict(value)


@dataclass(repr=False)
class Connection:
    """Everything a hook needs to reach a system. ``extra`` is a dict of provider-specific settings."""

    conn_id: str | None = None
    conn_type: str = ""
    host: str | None = None
    login: str | None = None
    password: str | None = None
    schema: str | None = None
    port: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    description: str | None = None

    def __post_init__(self) -> None:
        where = f"connection {self.conn_id!r}" if self.conn_id else "connection"
        for name in _TEXT_FIELDS:
            setattr(self, name, _none_if_empty(getattr(self, name)))
        self.conn_type = self.conn_type or ""
        self.port = _coerce_port(self.port, where)
        self.extra = _coerce_extra(self.extra, where)

    def __repr__(self) -> str:
        # Never the password, and not the extras either (they may hold tokens): reprs end up in logs.
        shown = [f"conn_id={self.conn_id!r}", f"conn_type={self.conn_type!r}"]
        shown += [
            f"{name}={getattr(self, name)!r}" for name in ("host", "port", "schema", "login") if getattr(self, name)
        ]
        if self.password is not None:
            shown.append("password='***'")
        if self.extra:
            shown.append(f"extra_keys={sorted(self.extra)!r}")
        return f"Connection({', '.join(shown)})"

    # -- Airflow-compatible accessors ---------------------------------------------------------------------

    @property
    def extra_dejson(self) -> dict[str, Any]:
        """The extras as a dict (Airflow's name; ``extra`` already is one here)."""
        return self.extra

    def get_password(self) -> str | None:
        return self.password

    def get_extra(self) -> str:
        """The extras as a JSON string."""
        return json.dumps(self.extra)

    # -- URI ----------------------------------------------------------------------------------------------

    @classmethod
    def from_uri(cls, uri: str, conn_id: str | None = None, description: str | None = None) -> Connection:
        where = f"connection {conn_id!r}" if conn_id else "connection URI"
        scheme, sep, rest = uri.strip().partition("://")
        if not sep or not scheme:
            raise InvalidConnection(
                f"{where} is not a URI of the form type://login:password@host:port/schema?key=value"
            )
        conn_type = scheme.lower().replace("-", "_")
        netloc_path, _, query = rest.partition("?")
        netloc, _, path = netloc_path.partition("/")
        userinfo, at, hostport = netloc.rpartition("@")
        login = password = None
        if at:
            raw_login, colon, raw_password = userinfo.partition(":")
            login = unquote(raw_login)
            password = unquote(raw_password) if colon else None
        host, port = _split_host_port(hostport, where)
        extra: dict[str, Any] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key == EXTRA_PARAM:
                extra.update(_coerce_extra(value, f"{where} ({EXTRA_PARAM})"))
            else:
                extra[key] = value
        return cls(
            conn_id=conn_id,
            conn_type=conn_type,
            host=host,
            login=login,
            password=password,
            schema=unquote(path) if path else None,
            port=port,
            extra=extra,
            description=description,
        )

    def get_uri(self) -> str:
        """The connection as a URI that :meth:`from_uri` reads back to an equal connection."""
        if not _URI_CONN_TYPE.match(self.conn_type):
            raise InvalidConnection(
                f"conn type {self.conn_type!r} cannot be written as a URI scheme (use lowercase letters, digits "
                "and '_'); use the JSON form instead"
            )
        uri = self.conn_type.replace("_", "-") + "://"
        if self.login is not None or self.password is not None:
            uri += quote(self.login or "", safe="")
            if self.password is not None:
                uri += ":" + quote(self.password, safe="")
            uri += "@"
        if self.host is not None:
            uri += self.host if _IPV6_HOST.match(self.host) else quote(self.host, safe="")
        if self.port is not None:
            uri += f":{self.port}"
        if self.schema is not None:
            uri += "/" + quote(self.schema, safe="")
        if self.extra:
            simple = all(isinstance(v, str) for v in self.extra.values()) and EXTRA_PARAM not in self.extra
            params = self.extra if simple else {EXTRA_PARAM: json.dumps(self.extra, separators=(",", ":"))}
            uri += "?" + urlencode(params, quote_via=quote)
        return uri

    # -- JSON ---------------------------------------------------------------------------------------------

    @classmethod
    def from_json(cls, text: str | dict[str, Any], conn_id: str | None = None) -> Connection:
        where = f"connection {conn_id!r}" if conn_id else "connection JSON"
        if isinstance(text, str):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InvalidConnection(f"{where} is not valid JSON ({exc.msg} at position {exc.pos})") from None
        else:
            data = text
        if not isinstance(data, dict):
            raise InvalidConnection(f"{where} must be a JSON object with conn_type, host, login, password, ...")
        known = {"conn_id", "conn_type", "host", "login", "password", "schema", "port", "extra", "description"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidConnection(f"{where} has unknown keys {unknown}; known keys: {sorted(known)}")
        for name in ("conn_type", "host", "login", "password", "schema", "description"):
            if data.get(name) is not None and not isinstance(data[name], str):
                raise InvalidConnection(f"{where}: {name} must be a string")
        conn_type = data.get("conn_type") or ""
        return cls(
            conn_id=conn_id if conn_id is not None else data.get("conn_id"),
            conn_type=conn_type,
            host=data.get("host"),
            login=data.get("login"),
            password=data.get("password"),
            schema=data.get("schema"),
            port=_coerce_port(data.get("port"), where),
            extra=_coerce_extra(data.get("extra"), where),
            description=data.get("description"),
        )

    def to_dict(self, *, include_conn_id: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {"conn_id": self.conn_id} if include_conn_id else {}
        data.update(
            conn_type=self.conn_type,
            host=self.host,
            login=self.login,
            password=self.password,
            schema=self.schema,
            port=self.port,
            extra=dict(self.extra),
        )
        if self.description is not None:
            data["description"] = self.description
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    # -- either -------------------------------------------------------------------------------------------

    @classmethod
    def parse(cls, value: str, conn_id: str | None = None) -> Connection:
        """A URI or a JSON object (``ZONDA_CONN_*`` values may be either): JSON when it starts with ``{``."""
        if value.lstrip().startswith("{"):
            return cls.from_json(value, conn_id=conn_id)
        return cls.from_uri(value, conn_id=conn_id)


def _split_host_port(hostport: str, where: str) -> tuple[str | None, int | None]:
    if hostport.startswith("["):  # IPv6 literal: [::1]:5432
        end = hostport.find("]")
        if end == -1:
            raise InvalidConnection(f"{where}: an IPv6 host must end with ']'")
        host, rest = hostport[: end + 1], hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            raise InvalidConnection(f"{where}: unexpected text after the IPv6 host")
        return host, _coerce_port(rest[1:], where) if rest else None
    host, colon, port = hostport.rpartition(":")
    if not colon:
        host, port = hostport, ""
    return (unquote(host) or None), _coerce_port(port, where)
