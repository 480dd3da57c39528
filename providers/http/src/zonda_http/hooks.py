"""``HttpHook``: a ``requests.Session`` built from an ``http`` connection.

The connection gives the base URL (``host`` may itself be a base URL with a scheme and a path; else the scheme
is ``schema`` when it says http or https, or the conn type ``http`` / ``https`` as in a URI
``http://host:8080/path``, else https; ``port``; extra ``base_path``), basic auth (login / password), a bearer
token (extra ``token``), headers (extra ``headers``), ``timeout``, ``verify``, ``ca_bundle`` and ``proxies``.

Safe by default: TLS verification on, a timeout on every request, bounded retries (urllib3 ``Retry``) and on a
redirect to another host *or port* neither the Authorization header nor the connection's secret headers are
sent. Response bodies that are logged are masked and truncated.

Retries: a connection that could not be opened is retried for every method (the request never left, so nothing
can happen twice); a 429/502/503/504 answer is retried only for idempotent methods (GET, HEAD, PUT, DELETE,
OPTIONS, TRACE). POST and PATCH are retried on those statuses only when asked for, with ``retry_methods``
(argument or connection extra), because a server may have acted on the first request before it failed.

What a connection says is read once into :class:`HttpSettings`, which both this synchronous hook and the async
:class:`~zonda_http.triggers.HttpTrigger` (httpx) build their clients from, so the two behave the same.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from zonda.exceptions import ZondaException
from zonda.hooks.base import BaseHook
from zonda.masking import get_masker, is_sensitive_name

log = logging.getLogger("zonda.hooks.http")

DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_FACTOR = 0.2
#: The longest single wait between two retries, in seconds.
MAX_BACKOFF = 10.0
#: Answers that say "try again": too many requests, and a gateway or server that is (briefly) unavailable.
RETRY_STATUSES = (429, 502, 503, 504)
#: Methods whose repetition has no further effect (RFC 9110, 9.2.2): retried on RETRY_STATUSES by default.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
#: How much of a response body is logged at most.
MAX_LOGGED_CHARS = 1000
_DEFAULT_PORTS = {"http": 80, "https": 443}
_FALSE = {"false", "0", "no", "off", ""}


class HttpException(ZondaException):
    """An HTTP request failed or returned an error status."""


def _to_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE
    return bool(value)


def _as_dict(value: Any, what: str) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value)
        except ValueError:
            raise HttpException(f"connection extra {what!r} must be a JSON object") from None
    if not isinstance(value, Mapping):
        raise HttpException(f"connection extra {what!r} must be a JSON object, not {type(value).__name__}")
    return dict(value)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = (parts.scheme or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


def same_origin(old_url: str, new_url: str) -> bool:
    """Whether both URLs reach the same host and port (an http -> https upgrade on default ports counts)."""
    old_scheme, old_host, old_port = _origin(old_url)
    new_scheme, new_host, new_port = _origin(new_url)
    if old_host != new_host:
        return False
    if old_port == new_port:
        return True
    return (old_scheme, old_port, new_scheme, new_port) == ("http", 80, "https", 443)


def parse_retry_methods(value: Any) -> frozenset[str] | None:
    """``retry_methods`` as given by an argument or a connection extra: a list of method names or one
    comma-separated string; None (not set) keeps the default, :data:`IDEMPOTENT_METHODS`."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, Iterable):
        raise HttpException(f"retry_methods must be a list of HTTP methods, not {value!r}")
    methods = frozenset(str(m).strip().upper() for m in value if str(m).strip())
    unknown = methods - IDEMPOTENT_METHODS - {"POST", "PATCH", "CONNECT"}
    if unknown:
        raise HttpException(f"retry_methods: unknown HTTP method(s) {', '.join(sorted(unknown))}")
    return methods


def backoff_seconds(retry_number: int, backoff_factor: float = DEFAULT_BACKOFF_FACTOR) -> float:
    """The wait before the ``retry_number``-th retry (1-based), as urllib3 computes it: none before the first,
    then ``backoff_factor * 2**(n-1)``, capped at :data:`MAX_BACKOFF`."""
    if retry_number <= 1:
        return 0.0
    return min(MAX_BACKOFF, backoff_factor * 2 ** (retry_number - 1))


def default_retry(
    total: int = DEFAULT_RETRIES,
    backoff_factor: float = DEFAULT_BACKOFF_FACTOR,
    methods: Iterable[str] = IDEMPOTENT_METHODS,
) -> Retry:
    """Retries on connection errors (any method: the request was never sent) and on 429/502/503/504 for
    ``methods``, bounded. Read timeouts are not retried (the server may be working on it) and ``Retry-After``
    is not obeyed (a server could stall a task for hours with it)."""
    return Retry(
        total=total,
        connect=total,
        read=0,
        status=total,
        other=0,
        allowed_methods=frozenset(m.upper() for m in methods),
        backoff_factor=backoff_factor,
        backoff_max=MAX_BACKOFF,
        status_forcelist=RETRY_STATUSES,
        raise_on_status=False,
        respect_retry_after_header=False,
    )


@dataclass(frozen=True)
class HttpSettings:
    """How to talk to one ``http`` connection: what the connection and the hook's arguments say, resolved once.

    Plain data, so the synchronous hook (requests) and the async trigger (httpx) share one reading of a
    connection and cannot drift apart on auth, TLS, timeouts or retries."""

    base_url: str = ""
    auth: tuple[str, str] | None = None
    #: Headers sent with every request (extra ``headers``, and ``Authorization`` for a bearer token).
    headers: dict[str, str] = field(default_factory=dict)
    #: Header names never sent across origins (besides Authorization) and masked in logs.
    secret_headers: frozenset[str] = frozenset()
    timeout: float = DEFAULT_TIMEOUT
    #: False, True, or the path of a CA bundle.
    verify: bool | str = True
    proxies: dict[str, str] = field(default_factory=dict)
    retries: int = DEFAULT_RETRIES
    retry_methods: frozenset[str] = IDEMPOTENT_METHODS
    backoff_factor: float = DEFAULT_BACKOFF_FACTOR

    def url(self, endpoint: str | None) -> str:
        """``endpoint`` joined to the base URL (an endpoint without a base URL is used as it is)."""
        if not endpoint:
            return self.base_url
        if not self.base_url:
            return endpoint
        return f"{self.base_url}/{endpoint.lstrip('/')}"

    def should_retry(self, method: str, status: int) -> bool:
        """Whether an answer with ``status`` to ``method`` is worth another try."""
        return status in RETRY_STATUSES and method.upper() in self.retry_methods


def scheme_and_path(conn: Any) -> tuple[str, str]:
    """The scheme a connection without a scheme in its host talks, and the path its ``schema`` field adds.

    The ``schema`` field says ``http`` or ``https`` in a connection written as JSON or stored by hand (as in
    Airflow). In a URI the scheme is the conn type (``http://host:8080/api`` is type ``http``, schema
    ``api``), so a conn type ``http`` or ``https`` is the scheme and any other ``schema`` is a path below the
    host. Any other conn type without a schema talks https: TLS unless the connection asks for plain HTTP."""
    schema = (conn.schema or "").strip()
    if schema.lower() in _DEFAULT_PORTS:
        return schema.lower(), ""
    conn_type = (conn.conn_type or "").strip().lower()
    if conn_type in _DEFAULT_PORTS:
        return conn_type, schema.strip("/")
    if schema:
        raise HttpException(
            f"connection {getattr(conn, 'conn_id', None)!r}: schema {schema!r} is not a scheme; set it to http or "
            "https, or use conn type http/https (a URI http://host/path) to give a path"
        )
    return "https", ""


def base_url_of(conn: Any, extra: Mapping[str, Any]) -> str:
    """The base URL a connection names: ``host`` (itself maybe a URL with a scheme and a path), or the scheme
    of :func:`scheme_and_path` and the host; then ``port``, the path, and the extra ``base_path``."""
    if conn is None or not conn.host:
        return ""
    host = conn.host.rstrip("/")
    path = ""
    if "://" in host:
        base = host
    else:
        scheme, path = scheme_and_path(conn)
        base = f"{scheme}://{host}"
    if conn.port:
        parts = urlsplit(base)
        if parts.port is None:
            base = f"{parts.scheme}://{parts.netloc}:{conn.port}{parts.path}"
    for part in (path, str(extra.get("base_path") or "").strip("/")):
        if part:
            base = f"{base.rstrip('/')}/{part}"
    return base.rstrip("/")


def resolve_settings(
    conn: Any,
    *,
    timeout: float | None = None,
    retries: int | None = None,
    retry_methods: Iterable[str] | str | None = None,
) -> HttpSettings:
    """:class:`HttpSettings` for a connection (or None: no base URL, defaults only). Arguments win over the
    connection's extras. Secrets found here (password, token, secret headers) are registered with the masker."""
    extra: dict[str, Any] = dict(conn.extra) if conn is not None else {}
    conn_id = getattr(conn, "conn_id", None)
    auth = (conn.login, conn.password or "") if conn is not None and conn.login else None
    raw_headers = _as_dict(extra.get("headers"), "headers")
    headers = {str(k): str(v) for k, v in raw_headers.items()}
    secret = {k for k in headers if is_sensitive_name(k)} | {str(h) for h in extra.get("secret_headers") or ()}
    masker = get_masker()
    secret_values = {k: v for k, v in headers.items() if k in secret}
    if secret_values:
        masker.add(secret_values)
    token = extra.get("token")
    if token:
        masker.add(str(token))
        headers["Authorization"] = f"Bearer {token}"
    if timeout is None and extra.get("timeout") not in (None, ""):
        try:
            timeout = float(extra["timeout"])
        except (TypeError, ValueError):
            raise HttpException(f"connection {conn_id!r}: extra 'timeout' must be a number") from None
    verify = _to_bool(extra.get("verify", True))
    ca_bundle = extra.get("ca_bundle")
    if retries is None:
        try:
            retries = int(extra.get("retries", DEFAULT_RETRIES))
        except (TypeError, ValueError):
            raise HttpException(f"connection {conn_id!r}: extra 'retries' must be a whole number") from None
    methods = parse_retry_methods(retry_methods if retry_methods is not None else extra.get("retry_methods"))
    return HttpSettings(
        base_url=base_url_of(conn, extra),
        auth=auth,
        headers=headers,
        secret_headers=frozenset(secret),
        timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
        verify=str(ca_bundle) if (verify and ca_bundle) else verify,
        proxies={str(k): str(v) for k, v in _as_dict(extra.get("proxies"), "proxies").items()},
        retries=max(0, retries),
        retry_methods=methods if methods is not None else IDEMPOTENT_METHODS,
    )


def tls_failure_hint(error: str) -> str | None:
    """What a failed TLS handshake's error text means and how to fix it; None when it is no TLS failure."""
    if "CERTIFICATE_VERIFY_FAILED" in error:
        return "TLS verification failed: configure the server's CA with the connection extra 'ca_bundle'"
    if "WRONG_VERSION_NUMBER" in error or "record layer failure" in error:
        return (
            "the server does not speak TLS: if it serves plain HTTP, write the connection as http://host:port "
            "(or set its schema to http)"
        )
    return None


def install_redirect_guard(session: requests.Session, secret_headers: set[str]) -> None:
    """Make ``session`` drop Authorization and ``secret_headers`` on a redirect to another host or port."""
    lowered = {h.lower() for h in secret_headers}

    def should_strip_auth(self: requests.Session, old_url: str, new_url: str) -> bool:
        return not same_origin(old_url, new_url)

    original_rebuild_auth = session.rebuild_auth

    def rebuild_auth(self: requests.Session, prepared_request: Any, response: Any) -> None:
        old_url = response.request.url
        if not same_origin(old_url, prepared_request.url):
            prepared_request.headers.pop("Authorization", None)
            for name in list(prepared_request.headers):
                if name.lower() in lowered or is_sensitive_name(name):
                    del prepared_request.headers[name]
        original_rebuild_auth(prepared_request, response)

    session.should_strip_auth = types.MethodType(should_strip_auth, session)  # type: ignore[method-assign]
    session.rebuild_auth = types.MethodType(rebuild_auth, session)  # type: ignore[method-assign]


class HttpHook(BaseHook):
    """Call an HTTP API. ``method`` defaults to POST, as in Airflow.

    - ``http_conn_id``: the connection (``http_default``).
    - ``timeout``: seconds, overrides the connection's extra ``timeout`` (default 30).
    - ``retry``: a urllib3 ``Retry``, a number of retries, or False/0 to disable; default 3 retries on
      connection errors and 429/502/503/504 (extra ``retries`` sets the number too).
    - ``retry_methods``: the methods retried on those statuses (argument, or connection extra as a list or a
      comma-separated string); default :data:`IDEMPOTENT_METHODS`. POST is retried only when listed here,
      e.g. ``retry_methods=[*IDEMPOTENT_METHODS, "POST"]``.
    - ``session``: a ``requests.Session`` to use instead of a new one (tests); it is configured from the
      connection the same way.

    The connection is read and the session built once per hook, on the first request: keep one hook for many
    calls and each :meth:`run` is little more than ``session.request``.
    """

    conn_name_attr: ClassVar[str] = "http_conn_id"
    default_conn_name: ClassVar[str] = "http_default"
    conn_type: ClassVar[str] = "http"
    hook_name: ClassVar[str] = "HTTP"

    def __init__(
        self,
        method: str = "POST",
        http_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        retry: Retry | int | bool | None = None,
        retry_methods: Iterable[str] | str | None = None,
        session: requests.Session | None = None,
        max_logged_chars: int = MAX_LOGGED_CHARS,
    ) -> None:
        self.method = method.upper()
        self.http_conn_id = http_conn_id
        self._timeout = timeout
        self._retry = retry
        self._retry_methods = retry_methods
        self._session = session
        self._configured = False
        self.max_logged_chars = max_logged_chars
        self.settings = HttpSettings(timeout=timeout if timeout is not None else DEFAULT_TIMEOUT)

    @property
    def log(self) -> logging.Logger:
        return log

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    @property
    def timeout(self) -> float:
        return self.settings.timeout

    @property
    def secret_headers(self) -> frozenset[str]:
        return self.settings.secret_headers

    # -- the session --------------------------------------------------------------------------------------

    def get_conn(self, headers: Mapping[str, Any] | None = None) -> requests.Session:
        """The configured session (built once per hook). ``headers`` are added to it."""
        if not self._configured:
            session = self._session if self._session is not None else requests.Session()
            self._configure(session)
            self._session = session
            self._configured = True
        assert self._session is not None
        if headers:
            self._session.headers.update({k: str(v) for k, v in headers.items()})
        return self._session

    def _retry_count(self) -> int | None:
        retry = self._retry
        if retry is None or isinstance(retry, Retry):
            return None
        if retry is True:
            return DEFAULT_RETRIES
        if retry is False:
            return 0
        return int(retry)

    def _configure(self, session: requests.Session) -> None:
        conn = self.get_connection(self.http_conn_id) if self.http_conn_id else None
        settings = resolve_settings(
            conn, timeout=self._timeout, retries=self._retry_count(), retry_methods=self._retry_methods
        )
        self.settings = settings
        if settings.auth is not None:
            session.auth = settings.auth
        session.headers.update(settings.headers)
        session.verify = settings.verify
        if settings.proxies:
            session.proxies.update(settings.proxies)
        retry = self._retry
        if not isinstance(retry, Retry):
            retry = (
                default_retry(settings.retries, settings.backoff_factor, settings.retry_methods)
                if settings.retries > 0
                else Retry(total=0, raise_on_status=False)
            )
        adapter = HTTPAdapter(max_retries=retry)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        install_redirect_guard(session, set(settings.secret_headers))

    def url_from_endpoint(self, endpoint: str | None) -> str:
        return self.settings.url(endpoint)

    # -- requests -----------------------------------------------------------------------------------------

    def run(
        self,
        endpoint: str | None = None,
        data: Any = None,
        json: Any = None,
        headers: Mapping[str, Any] | None = None,
        extra_options: Mapping[str, Any] | None = None,
        **request_kwargs: Any,
    ) -> requests.Response:
        """Send one request. For GET/HEAD ``data`` becomes the query parameters, as in Airflow.

        ``extra_options``: ``timeout``, ``verify``, ``allow_redirects``, ``proxies``, ``cert``, ``stream``,
        and ``check_response`` (default True: an error status raises :class:`HttpException`)."""
        session = self.get_conn()
        method = self.method
        url = self.settings.url(endpoint)
        kwargs: dict[str, Any] = {"headers": headers}
        if method in ("GET", "HEAD"):
            kwargs["params"] = data
        else:
            kwargs["data"] = data
        if json is not None:
            kwargs["json"] = json
        check = True
        if extra_options:
            options = dict(extra_options)
            check = _to_bool(options.pop("check_response", True))
            kwargs["timeout"] = options.pop("timeout", self.settings.timeout)
            # Explicit, so REQUESTS_CA_BUNDLE in the environment cannot override a configured ca_bundle.
            kwargs["verify"] = options.pop("verify", session.verify)
            kwargs.update(options)
        else:
            kwargs["timeout"] = self.settings.timeout
            kwargs["verify"] = session.verify
        if request_kwargs:
            kwargs.update(request_kwargs)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("Sending %s to %s", method, url)
        try:
            response = session.request(method, url, **kwargs)
        except requests.exceptions.Timeout as exc:
            raise HttpException(f"{method} {url} timed out after {kwargs['timeout']}s: {exc}") from exc
        except requests.exceptions.SSLError as exc:
            hint = tls_failure_hint(str(exc)) or "TLS handshake failed"
            raise HttpException(f"{method} {url}: {hint} ({exc})") from exc
        except requests.exceptions.ConnectionError as exc:
            raise HttpException(f"{method} {url}: connection failed: {exc}") from exc
        if check and response.status_code >= 400:
            self.check_response(response)
        return response

    def check_response(self, response: requests.Response) -> None:
        """Raise :class:`HttpException` (``"<status>:<reason>"``) on a 4xx/5xx response."""
        try:
            response.raise_for_status()
        except requests.exceptions.HTTPError:
            self.log.error("HTTP error %s: %s", response.status_code, response.reason)
            self.log.error("Response body: %s", self.safe_text(response))
            raise HttpException(f"{response.status_code}:{response.reason}") from None

    def safe_text(self, response: requests.Response | str) -> str:
        """A response body fit for a log: secrets masked, then truncated to ``max_logged_chars``."""
        text = response if isinstance(response, str) else response.text
        text = get_masker().redact_text(text)
        if len(text) > self.max_logged_chars:
            text = f"{text[: self.max_logged_chars]}... [{len(text) - self.max_logged_chars} more characters]"
        return text

    def log_response(self, response: requests.Response) -> None:
        self.log.info("%s %s -> %s: %s", self.method, response.url, response.status_code, self.safe_text(response))

    def test_connection(self) -> tuple[bool, str]:
        """GET the base URL: ok when the server answers with a status below 400."""
        try:
            saved, self.method = self.method, "GET"
            try:
                response = self.run(extra_options={"check_response": False})
            finally:
                self.method = saved
        except Exception as exc:
            return False, get_masker().redact_text(str(exc))
        if response.status_code >= 400:
            return False, f"HTTP {response.status_code} {response.reason} from {self.base_url}"
        return True, f"Connection successfully tested (HTTP {response.status_code})"

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
