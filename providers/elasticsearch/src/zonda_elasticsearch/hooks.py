"""``ElasticsearchHook``: the official ``elasticsearch`` client, built from an ``elasticsearch`` connection.

The connection gives one or more hosts (``host``, comma separated; each may carry its own scheme, port and
path, e.g. ``https://es1:9200,es2``), the scheme for hosts without one (``schema``, default https), the port
for hosts without one (``port``, default 9200), basic auth (``login`` / ``password``) or an API key (extra
``api_key``, which wins), and the extras ``ca_certs``, ``verify_certs`` (default true),
``ssl_assert_fingerprint``, ``request_timeout`` (seconds, default 10) and ``retries`` (on connection errors and
timeouts, default 3).

Safe by default: certificates are verified; credentials sent over plain ``http://`` to a host that is not this
machine log a warning; the password and API key are registered with the secrets masker and never appear in
logs or in the errors this hook raises. One client works against Elasticsearch 8 and 9 servers: its REST
compatibility header follows the server's major version (:mod:`zonda_elasticsearch.compat`).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from zonda.exceptions import ZondaException
from zonda.hooks.base import BaseHook
from zonda_elasticsearch.bulk import DEFAULT_CHUNK_SIZE, DEFAULT_MAX_CHUNK_BYTES, DEFAULT_MAX_ERRORS, BulkReport
from zonda_elasticsearch.query import query_dsl

if TYPE_CHECKING:
    from elasticsearch import AsyncElasticsearch, Elasticsearch

    from zonda.connection import Connection

log = logging.getLogger("zonda.providers.elasticsearch")

DEFAULT_PORT = 9200
DEFAULT_SCHEME = "https"
DEFAULT_REQUEST_TIMEOUT = 10.0
DEFAULT_RETRIES = 3
#: How long a point in time stays open between two pages of :meth:`ElasticsearchHook.iter_hits`.
DEFAULT_KEEP_ALIVE = "2m"
#: Hits per page when iterating; Elasticsearch's ``index.max_result_window`` caps one page at 10,000.
DEFAULT_BATCH_SIZE = 1000
MAX_RESULT_WINDOW = 10_000
_FALSE = {"false", "0", "no", "off"}
_SCHEMES = ("http", "https")


class ElasticsearchHookError(ZondaException):
    """The cluster could not be reached, or it refused the connection's credentials or certificate."""


@dataclass(frozen=True)
class Node:
    """One host of a connection."""

    scheme: str
    host: str
    port: int
    path_prefix: str = ""

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path_prefix}"

    @property
    def is_loopback(self) -> bool:
        """Whether the host is this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
        if self.host.lower() in ("localhost", "localhost.localdomain") or self.host.lower().endswith(".localhost"):
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def client_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"scheme": self.scheme, "host": self.host, "port": self.port}
        if self.path_prefix:
            config["path_prefix"] = self.path_prefix
        return config


def _scheme_of(conn: Any) -> str | None:
    """The scheme for hosts without one: the ``schema`` field, else a URI's own scheme (a connection written
    ``http://es:9200`` has conn type ``http``), else None (the default, https)."""
    if conn.schema:
        return conn.schema
    conn_type = (conn.conn_type or "").lower()
    return conn_type if conn_type in _SCHEMES else None


def parse_hosts(hosts: str | Sequence[str] | None, *, scheme: str | None = None, port: int | None = None) -> list[Node]:
    """The nodes of a connection's ``host`` field: ``"es1,es2:9201,https://es3"`` or a list of such entries.

    ``scheme`` and ``port`` apply to entries that do not carry their own."""
    default_scheme = (scheme or DEFAULT_SCHEME).strip().lower()
    if default_scheme not in _SCHEMES:
        raise ElasticsearchHookError(f"the connection's scheme (schema field) must be http or https, not {scheme!r}")
    entries = hosts.split(",") if isinstance(hosts, str) else list(hosts or [])
    nodes: list[Node] = []
    for raw in entries:
        entry = str(raw).strip()
        if not entry:
            continue
        parts = urlsplit(entry if "://" in entry else f"{default_scheme}://{entry}")
        node_scheme = parts.scheme.lower()
        if node_scheme not in _SCHEMES:
            raise ElasticsearchHookError(f"host {entry!r}: the scheme must be http or https, not {parts.scheme!r}")
        if parts.username or parts.password:
            raise ElasticsearchHookError(
                f"host {entry.split('@')[-1]!r}: put credentials in the connection's login and password (or the "
                "api_key extra), not in the host"
            )
        try:
            node_port = parts.port
        except ValueError:
            raise ElasticsearchHookError(f"host {entry!r}: the port is not a number between 1 and 65535") from None
        if not parts.hostname:
            raise ElasticsearchHookError(f"host {entry!r} has no host name")
        nodes.append(
            Node(
                scheme=node_scheme,
                host=parts.hostname,
                port=node_port or port or DEFAULT_PORT,
                path_prefix=parts.path.rstrip("/"),
            )
        )
    if not nodes:
        raise ElasticsearchHookError("the connection names no host: set its host field (hosts, comma separated)")
    return nodes


def _to_bool(value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE
    return bool(value)


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _number(value: Any, what: str, default: float) -> float:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ElasticsearchHookError(f"the connection extra {what!r} must be a number, not {value!r}") from None
    if number < 0:
        raise ElasticsearchHookError(f"the connection extra {what!r} must not be negative, got {value!r}")
    return number


#: Seconds a ``_bulk`` request may take at least (the connection's ``request_timeout`` when larger).
BULK_REQUEST_TIMEOUT = 120.0


@dataclass(frozen=True)
class ClientSettings:
    """Everything the client is built from, read once from the connection. Holds secrets: never log it."""

    nodes: tuple[Node, ...]
    login: str | None
    password: str | None
    api_key: str | None
    verify_certs: bool
    ca_certs: str | None
    ssl_assert_fingerprint: str | None
    request_timeout: float
    retries: int

    @property
    def has_credentials(self) -> bool:
        return bool(self.api_key or self.login)

    @property
    def urls(self) -> str:
        return ", ".join(node.url for node in self.nodes)

    def insecure_credential_nodes(self) -> list[Node]:
        """Nodes the credentials would cross the network to in clear text."""
        if not self.has_credentials:
            return []
        return [node for node in self.nodes if node.scheme == "http" and not node.is_loopback]

    def client_kwargs(self) -> dict[str, Any]:
        from zonda_elasticsearch.serialization import client_serializers

        kwargs: dict[str, Any] = {
            "hosts": [node.client_config() for node in self.nodes],
            "request_timeout": self.request_timeout,
            "max_retries": self.retries,
            "retry_on_timeout": self.retries > 0,
            "serializers": client_serializers(),
        }
        if self.api_key:
            kwargs["api_key"] = self.api_key
        elif self.login:
            kwargs["basic_auth"] = (self.login, self.password or "")
        if any(node.scheme == "https" for node in self.nodes):
            kwargs["verify_certs"] = self.verify_certs
            if self.ca_certs:
                kwargs["ca_certs"] = self.ca_certs
            if self.ssl_assert_fingerprint:
                kwargs["ssl_assert_fingerprint"] = self.ssl_assert_fingerprint
            if not self.verify_certs:
                kwargs["ssl_show_warn"] = False  # the hook warns once itself, not on every request
        return kwargs


class ElasticsearchHook(BaseHook):
    """Talk to Elasticsearch 8 or 9. ``elasticsearch_conn_id`` names the connection.

    - ``connection``: a :class:`~zonda.connection.Connection` to use instead of looking one up (tests, ad hoc).
    - ``request_timeout`` / ``retries``: override the connection's extras.
    - ``client_kwargs``: more keyword arguments for ``Elasticsearch(...)`` (``http_compress``, ``node_class``...).

    :meth:`get_conn` returns the client (built once per hook, no request sent); the helpers below use it and
    turn unreachable clusters, refused credentials and untrusted certificates into
    :class:`ElasticsearchHookError` with a message that says what to check.
    """

    conn_name_attr: ClassVar[str] = "elasticsearch_conn_id"
    default_conn_name: ClassVar[str] = "elasticsearch_default"
    conn_type: ClassVar[str] = "elasticsearch"
    hook_name: ClassVar[str] = "Elasticsearch"

    def __init__(
        self,
        elasticsearch_conn_id: str = default_conn_name,
        *,
        connection: Connection | None = None,
        request_timeout: float | None = None,
        retries: int | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.elasticsearch_conn_id = kwargs.pop("conn_id", None) or elasticsearch_conn_id
        if kwargs:
            raise TypeError(f"ElasticsearchHook got unexpected arguments: {', '.join(sorted(kwargs))}")
        self._connection = connection
        self._request_timeout = request_timeout
        self._retries = retries
        self.client_kwargs = dict(client_kwargs or {})
        self._settings: ClientSettings | None = None
        self._client: Elasticsearch | None = None
        self._lock = threading.Lock()

    @property
    def log(self) -> logging.Logger:
        return log

    # -- the connection -----------------------------------------------------------------------------------

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            self._connection = self.get_connection(self.elasticsearch_conn_id)
        return self._connection

    @property
    def settings(self) -> ClientSettings:
        """The client settings from the connection (read once; warns about clear-text credentials)."""
        if self._settings is None:
            self._settings = self._read_settings()
            self._warn_if_insecure(self._settings)
        return self._settings

    def _read_settings(self) -> ClientSettings:
        from zonda.masking import get_masker

        conn = self.connection
        extra = dict(conn.extra)
        api_key = extra.get("api_key") or None
        if conn.password:
            get_masker().add(conn.password)
        if api_key:
            get_masker().add(api_key)
        retries = self._retries
        if retries is None:
            retries = int(_number(extra.get("retries"), "retries", DEFAULT_RETRIES))
        timeout = self._request_timeout
        if timeout is None:
            timeout = _number(extra.get("request_timeout"), "request_timeout", DEFAULT_REQUEST_TIMEOUT)
        return ClientSettings(
            nodes=tuple(parse_hosts(conn.host, scheme=_scheme_of(conn), port=conn.port)),
            login=conn.login,
            password=conn.password,
            api_key=str(api_key) if api_key else None,
            verify_certs=_to_bool(extra.get("verify_certs"), True),
            ca_certs=_text(extra.get("ca_certs")),
            ssl_assert_fingerprint=_text(extra.get("ssl_assert_fingerprint")),
            request_timeout=float(timeout),
            retries=int(retries),
        )

    def _warn_if_insecure(self, settings: ClientSettings) -> None:
        exposed = settings.insecure_credential_nodes()
        if exposed:
            what = "an API key" if settings.api_key else "a login and password"
            self.log.warning(
                "Connection %r sends %s over plain http:// to %s: anyone on the network path can read them. "
                "Use https (set the scheme, or write https:// before each host).",
                self.elasticsearch_conn_id,
                what,
                ", ".join(node.url for node in exposed),
            )
        if not settings.verify_certs and any(node.scheme == "https" for node in settings.nodes):
            self.log.warning(
                "Connection %r has verify_certs off: the server's certificate is not checked, so any machine "
                "in the middle can pose as the cluster. Prefer ca_certs or ssl_assert_fingerprint.",
                self.elasticsearch_conn_id,
            )

    # -- clients ------------------------------------------------------------------------------------------

    def get_conn(self) -> Elasticsearch:
        """The ``elasticsearch.Elasticsearch`` client for the connection, built once per hook (thread-safe).

        Building it sends no request; the first request learns the server's version (see module docstring)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    from elasticsearch import Elasticsearch

                    from zonda_elasticsearch.compat import CompatibleTransport

                    kwargs = {**self.settings.client_kwargs(), "transport_class": CompatibleTransport}
                    self._client = Elasticsearch(**{**kwargs, **self.client_kwargs})
        return self._client

    def get_async_conn(self) -> AsyncElasticsearch:
        """A new ``elasticsearch.AsyncElasticsearch`` (aiohttp) for the connection; the caller closes it
        (``await client.close()``). A new one per call, because an async client belongs to one event loop."""
        from elasticsearch import AsyncElasticsearch

        from zonda_elasticsearch.compat import AsyncCompatibleTransport

        kwargs = {**self.settings.client_kwargs(), "transport_class": AsyncCompatibleTransport}
        return AsyncElasticsearch(**{**kwargs, **self.client_kwargs})

    def close(self) -> None:
        """Close the client's connections (a later call builds a new client)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> ElasticsearchHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- errors -------------------------------------------------------------------------------------------

    def describe_error(self, exc: BaseException) -> str | None:
        """A clear, secret-free message for an unreachable cluster, refused credentials or an untrusted
        certificate; None for any other error (an API error about the request itself)."""
        from elasticsearch import (
            AuthenticationException,
            AuthorizationException,
            ConnectionError,
            ConnectionTimeout,
            SSLError,
        )

        if isinstance(exc, ElasticsearchHookError):
            return str(exc)
        try:
            settings = self.settings
        except ElasticsearchHookError:
            return None
        where = f"Elasticsearch at {settings.urls} (connection {self.elasticsearch_conn_id!r})"
        who = "the API key" if settings.api_key else (f"user {settings.login!r}" if settings.login else "anonymous")
        if isinstance(exc, AuthenticationException):
            return (
                f"{where} refused the credentials of {who} (HTTP 401: {_api_reason(exc)}): check the connection's "
                "login and password, or its api_key"
            )
        if isinstance(exc, AuthorizationException):
            return f"{where}: {who} lacks a privilege this needs (HTTP 403: {_api_reason(exc)})"
        if isinstance(exc, SSLError):
            return (
                f"{where}: TLS verification failed ({_transport_reason(exc)}). Give the CA that signed the "
                "server's certificate in the connection extra ca_certs, or pin the certificate with "
                "ssl_assert_fingerprint"
            )
        if isinstance(exc, ConnectionTimeout):
            return f"{where} did not answer within {settings.request_timeout:g}s ({_transport_reason(exc)})"
        if isinstance(exc, ConnectionError):
            return f"cannot reach {where}: {_transport_reason(exc)}"
        return None

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Raise :class:`ElasticsearchHookError` for connection, TLS and credential failures."""
        try:
            yield
        except ElasticsearchHookError:
            raise
        except Exception as exc:
            message = self.describe_error(exc)
            if message is None:
                raise
            from zonda.masking import get_masker

            raise ElasticsearchHookError(get_masker().redact_text(message)) from None

    # -- the cluster --------------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """``GET /``: cluster name, version and so on."""
        with self._errors():
            return dict(self.get_conn().info().body)

    def server_major_version(self) -> int | None:
        """The major version the client speaks to the server in (found out by the first request)."""
        transport = self.get_conn().transport
        major = getattr(transport, "server_major", None)
        if major is None:
            from zonda_elasticsearch.compat import major_version

            major = major_version(self.info())
        return major

    def test_connection(self) -> tuple[bool, str]:
        """``(True, "Connected to cluster 'x' (Elasticsearch 8.15.3) at ...")`` or ``(False, reason)``."""
        from zonda.masking import get_masker

        try:
            info = self.info()
        except Exception as exc:
            return False, get_masker().redact_text(self.describe_error(exc) or f"{type(exc).__name__}: {exc}")
        version = (info.get("version") or {}).get("number", "unknown")
        return (
            True,
            f"Connected to cluster {info.get('cluster_name')!r} (Elasticsearch {version}) at {self.settings.urls}",
        )

    # -- searching ----------------------------------------------------------------------------------------

    def search(
        self,
        index: str | Sequence[str],
        query: Any = None,
        *,
        size: int = 10,
        sort: Any = None,
        source: Any = None,
        aggs: Mapping[str, Any] | None = None,
        track_total_hits: bool | int = True,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """One ``_search`` request; ``query`` is a DSL dict or a Lucene query string. Returns the response body.

        ``track_total_hits`` defaults to true, so ``hits.total`` is exact past 10,000."""
        body: dict[str, Any] = {"size": size, "track_total_hits": track_total_hits}
        dsl = query_dsl(query)
        if dsl is not None:
            body["query"] = dsl
        if sort is not None:
            body["sort"] = sort
        if source is not None:
            body["_source"] = source
        if aggs:
            body["aggs"] = dict(aggs)
        body.update(kwargs.pop("body", None) or {})
        with self._errors():
            return dict(self.get_conn().search(index=index, body=body, **kwargs).body)

    def count(self, index: str | Sequence[str], query: Any = None, *, missing_index_ok: bool = False) -> int:
        """How many documents match ``query``. ``missing_index_ok``: a missing index counts 0 instead of raising
        (what a sensor waiting for data to arrive wants)."""
        from elasticsearch import NotFoundError

        dsl = query_dsl(query)
        with self._errors():
            try:
                response = self.get_conn().count(index=index, query=dsl) if dsl else self.get_conn().count(index=index)
            except NotFoundError:
                if missing_index_ok:
                    return 0
                raise
        return int(response["count"])

    def iter_hits(
        self,
        index: str | Sequence[str],
        query: Any = None,
        sort: Any = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        source: Any = None,
        max_hits: int | None = None,
        *,
        keep_alive: str = DEFAULT_KEEP_ALIVE,
    ) -> Iterator[dict[str, Any]]:
        """Yield every hit of ``query`` (or the first ``max_hits``), ``batch_size`` per request, past the
        10,000-hit window; see :meth:`iter_pages`."""
        for page in self.iter_pages(
            index, query, sort=sort, batch_size=batch_size, source=source, max_hits=max_hits, keep_alive=keep_alive
        ):
            yield from page["hits"]["hits"]

    def iter_pages(
        self,
        index: str | Sequence[str],
        query: Any = None,
        *,
        sort: Any = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        source: Any = None,
        max_hits: int | None = None,
        aggs: Mapping[str, Any] | None = None,
        track_total_hits: bool = False,
        keep_alive: str = DEFAULT_KEEP_ALIVE,
    ) -> Iterator[dict[str, Any]]:
        """Yield the search responses of a walk through every hit of ``query``, ``batch_size`` hits each.

        A point in time (PIT) pins one view of the index and ``search_after`` walks it, so there is no
        10,000-hit limit and no scroll context (Elasticsearch deprecates scrolling for deep pages). The sort
        gets the ``_shard_doc`` tiebreaker a PIT search needs for a total order (Elasticsearch 8 refuses to
        sort on ``_id``); without a sort, ``_shard_doc`` alone is the cheapest order. ``aggs`` and
        ``track_total_hits`` apply to the first request only, whose response then carries ``aggregations``
        and an exact ``hits.total``. The PIT is closed when the walk ends, also when the caller stops early."""
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 0 < batch_size <= MAX_RESULT_WINDOW:
            raise ValueError(f"batch_size must be an integer from 1 to {MAX_RESULT_WINDOW}, got {batch_size!r}")
        if max_hits is not None and max_hits <= 0:
            return
        client = self.get_conn()
        with self._errors():
            pit_id = client.open_point_in_time(index=index, keep_alive=keep_alive)["id"]
        try:
            body: dict[str, Any] = {"sort": with_tiebreaker(sort), "track_total_hits": track_total_hits}
            dsl = query_dsl(query)
            if dsl is not None:
                body["query"] = dsl
            if source is not None:
                body["_source"] = source
            if aggs:
                body["aggs"] = dict(aggs)
            seen = 0
            search_after: list[Any] | None = None
            while True:
                size = batch_size if max_hits is None else min(batch_size, max_hits - seen)
                page = {**body, "size": size, "pit": {"id": pit_id, "keep_alive": keep_alive}}
                if search_after is not None:
                    page["search_after"] = search_after
                with self._errors():
                    response = client.search(body=page).body
                pit_id = response.get("pit_id") or pit_id
                body.pop("aggs", None)
                body["track_total_hits"] = False
                hits = response["hits"]["hits"]
                yield response
                seen += len(hits)
                if len(hits) < size or (max_hits is not None and seen >= max_hits):
                    return
                search_after = hits[-1]["sort"]
        finally:
            self._close_pit(client, pit_id)

    def _close_pit(self, client: Elasticsearch, pit_id: str) -> None:
        try:
            client.close_point_in_time(id=pit_id)
        except Exception as exc:  # the PIT expires by itself after keep_alive; not worth failing the task over
            self.log.warning("Could not close the point in time (it expires by itself): %s", exc)

    # -- writing ------------------------------------------------------------------------------------------

    def bulk_index(
        self,
        index: str,
        docs: Iterable[Mapping[str, Any]],
        id_field: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        *,
        max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
        op_type: str = "index",
        refresh: bool = False,
        max_errors: int = DEFAULT_MAX_ERRORS,
        report: BulkReport | None = None,
        **bulk_kwargs: Any,
    ) -> BulkReport:
        """Index ``docs`` (an iterable, consumed as a stream) into ``index``; returns a
        :class:`~zonda_elasticsearch.bulk.BulkReport` with the counts and one entry per rejected document (id,
        status, reason). Rejections do not raise: the caller decides. ``id_field`` gives stable ids, so a re-run
        replaces documents instead of duplicating them. ``refresh=True`` makes them searchable at the end."""
        from zonda_elasticsearch.bulk import bulk_index

        with self._errors():
            # A _bulk request that timed out may still have been applied: sending it again would index its
            # documents twice (no ids) or reject them as conflicts (op_type="create"). So it is never resent
            # on a timeout, and it gets more time than an ordinary request.
            client = self.get_conn().options(
                request_timeout=max(self.settings.request_timeout, BULK_REQUEST_TIMEOUT), retry_on_timeout=False
            )
            report = bulk_index(
                client,
                index,
                docs,
                id_field=id_field,
                chunk_size=chunk_size,
                max_chunk_bytes=max_chunk_bytes,
                op_type=op_type,
                report=report,
                max_errors=max_errors,
                **bulk_kwargs,
            )
            if refresh:
                self.get_conn().indices.refresh(index=index)
        return report

    def create_index(
        self,
        index: str,
        mappings: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
        *,
        exist_ok: bool = False,
    ) -> bool:
        """Create ``index`` with ``mappings`` and ``settings``; True if created, False if it existed and
        ``exist_ok`` (its mappings are then left as they are)."""
        from elasticsearch import BadRequestError

        kwargs: dict[str, Any] = {}
        if mappings:
            kwargs["mappings"] = dict(mappings)
        if settings:
            kwargs["settings"] = dict(settings)
        with self._errors():
            try:
                self.get_conn().indices.create(index=index, **kwargs)
            except BadRequestError as exc:
                if exist_ok and _error_type(exc) == "resource_already_exists_exception":
                    return False
                raise
        return True

    def delete_index(self, index: str, *, missing_ok: bool = True) -> bool:
        """Delete ``index``; True if it was deleted, False if there was none (with ``missing_ok``)."""
        from elasticsearch import NotFoundError

        with self._errors():
            try:
                self.get_conn().indices.delete(index=index)
            except NotFoundError:
                if missing_ok:
                    return False
                raise
        return True

    def index_exists(self, index: str) -> bool:
        with self._errors():
            return bool(self.get_conn().indices.exists(index=index))

    def refresh(self, index: str) -> None:
        """Make everything indexed so far searchable."""
        with self._errors():
            self.get_conn().indices.refresh(index=index)


def with_tiebreaker(sort: Any) -> list[Any]:
    """``sort`` as a list ending with the ``_shard_doc`` tiebreaker (unless it has one)."""
    if not sort:
        return [{"_shard_doc": "asc"}]
    items: list[Any]
    if isinstance(sort, str):
        items = [part.strip() for part in sort.split(",") if part.strip()]
    elif isinstance(sort, Mapping):
        items = [{key: value} for key, value in sort.items()]
    else:
        items = list(sort)
    names = {_sort_field(item) for item in items}
    if "_shard_doc" not in names:
        items.append({"_shard_doc": "asc"})
    return [_sort_item(item) for item in items]


def _sort_item(item: Any) -> Any:
    """``"age:desc"`` (the URL form) -> ``{"age": "desc"}``; anything else as given."""
    if isinstance(item, str) and ":" in item:
        field, _, order = item.rpartition(":")
        if order.lower() in ("asc", "desc"):
            return {field: order.lower()}
    return item


def _sort_field(item: Any) -> str:
    if isinstance(item, str):
        return item.split(":", 1)[0]
    if isinstance(item, Mapping) and item:
        return str(next(iter(item)))
    return ""


def _total(response: Mapping[str, Any]) -> int:
    total = response.get("hits", {}).get("total")
    if isinstance(total, Mapping):
        return int(total.get("value", 0))
    return int(total or 0)


def _error_type(exc: Any) -> str | None:
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            return str(error.get("type"))
    return None


def _api_reason(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            return str(error.get("reason") or error.get("type") or exc)
        if isinstance(error, str):
            return error
    return str(getattr(exc, "message", None) or exc)


def _transport_reason(exc: BaseException) -> str:
    """The innermost useful text of a transport error (the client nests them three deep)."""
    text = str(getattr(exc, "message", None) or exc)
    for prefix in ("Connection error caused by: ", "TLS error caused by: ", "Connection timed out caused by: "):
        while prefix in text:
            text = text.split(prefix, 1)[1]
    return text.rstrip(")")[:500] or type(exc).__name__
