"""``HttpHook``: a ``requests.Session`` built from an ``http`` connection.

The connection gives the base URL (``schema`` is the scheme, ``host`` may itself be a base URL with a scheme
and a path, ``port``, extra ``base_path``), basic auth (login / password), a bearer token (extra ``token``),
headers (extra ``headers``), ``timeout``, ``verify``, ``ca_bundle`` and ``proxies``.

Safe by default: TLS verification on, a timeout on every request, bounded retries (urllib3 ``Retry``) on
connection errors and 502/503/504, and on a redirect to another host *or port* neither the Authorization header
nor the connection's secret headers are sent. Response bodies that are logged are masked and truncated.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Mapping
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
RETRY_STATUSES = (502, 503, 504)
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


def default_retry(total: int = DEFAULT_RETRIES, backoff_factor: float = 0.2) -> Retry:
    """Retries on connection errors and 502/503/504 for idempotent methods, bounded; read timeouts are not
    retried (the server may be working on it) and ``Retry-After`` is not obeyed (it could stall a task)."""
    return Retry(
        total=total,
        connect=total,
        read=0,
        status=total,
        other=0,
        backoff_factor=backoff_factor,
        backoff_max=10,
        status_forcelist=RETRY_STATUSES,
        raise_on_status=False,
        respect_retry_after_header=False,
    )


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
      connection errors and 502/503/504 (extra ``retries`` sets the number too).
    - ``session``: a ``requests.Session`` to use instead of a new one (tests); it is configured from the
      connection the same way.
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
        session: requests.Session | None = None,
        max_logged_chars: int = MAX_LOGGED_CHARS,
    ) -> None:
        self.method = method.upper()
        self.http_conn_id = http_conn_id
        self._timeout = timeout
        self._retry = retry
        self._session = session
        self._configured = False
        self.max_logged_chars = max_logged_chars
        self.base_url = ""
        self.timeout: float = timeout if timeout is not None else DEFAULT_TIMEOUT
        self.secret_headers: set[str] = set()

    @property
    def log(self) -> logging.Logger:
        return log

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

    def _configure(self, session: requests.Session) -> None:
        conn = self.get_connection(self.http_conn_id) if self.http_conn_id else None
        extra: dict[str, Any] = dict(conn.extra) if conn else {}
        self.base_url = self._base_url(conn, extra)
        if conn and conn.login:
            session.auth = (conn.login, conn.password or "")
        headers = _as_dict(extra.get("headers"), "headers")
        self.secret_headers = {k for k in headers if is_sensitive_name(k)}
        self.secret_headers |= {str(h) for h in extra.get("secret_headers") or ()}
        if headers:
            get_masker().add({k: str(v) for k, v in headers.items() if k in self.secret_headers})
            session.headers.update({k: str(v) for k, v in headers.items()})
        token = extra.get("token")
        if token:
            get_masker().add(str(token))
            session.headers["Authorization"] = f"Bearer {token}"
        if self._timeout is None and extra.get("timeout") not in (None, ""):
            try:
                self.timeout = float(extra["timeout"])
            except (TypeError, ValueError):
                raise HttpException(f"connection {self.http_conn_id!r}: extra 'timeout' must be a number") from None
        verify = _to_bool(extra.get("verify", True))
        ca_bundle = extra.get("ca_bundle")
        session.verify = str(ca_bundle) if (verify and ca_bundle) else verify
        proxies = _as_dict(extra.get("proxies"), "proxies")
        if proxies:
            session.proxies.update(proxies)
        retry = self._retry
        if retry is None:
            retry = int(extra.get("retries", DEFAULT_RETRIES))
        if retry is True:
            retry = DEFAULT_RETRIES
        if isinstance(retry, bool) or retry is None:
            retry = 0
        if isinstance(retry, int):
            retry = default_retry(retry) if retry > 0 else Retry(total=0, raise_on_status=False)
        adapter = HTTPAdapter(max_retries=retry)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        install_redirect_guard(session, self.secret_headers)

    @staticmethod
    def _base_url(conn: Any, extra: Mapping[str, Any]) -> str:
        if conn is None or not conn.host:
            return ""
        host = conn.host.rstrip("/")
        if "://" in host:
            base = host
        else:
            scheme = (conn.schema or "https").lower()
            base = f"{scheme}://{host}"
        if conn.port:
            parts = urlsplit(base)
            if parts.port is None:
                base = f"{parts.scheme}://{parts.netloc}:{conn.port}{parts.path}"
        base_path = str(extra.get("base_path") or "").strip("/")
        if base_path:
            base = f"{base.rstrip('/')}/{base_path}"
        return base.rstrip("/")

    def url_from_endpoint(self, endpoint: str | None) -> str:
        if not endpoint:
            return self.base_url
        if not self.base_url:
            return endpoint
        return f"{self.base_url}/{endpoint.lstrip('/')}"

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
        options = dict(extra_options or {})
        check = _to_bool(options.pop("check_response", True))
        session = self.get_conn()
        url = self.url_from_endpoint(endpoint)
        kwargs: dict[str, Any] = {"headers": dict(headers or {})}
        if self.method in ("GET", "HEAD"):
            kwargs["params"] = data
        else:
            kwargs["data"] = data
        if json is not None:
            kwargs["json"] = json
        kwargs["timeout"] = options.pop("timeout", self.timeout)
        # Explicit, so REQUESTS_CA_BUNDLE in the environment cannot override a configured ca_bundle.
        kwargs["verify"] = options.pop("verify", session.verify)
        kwargs.update(options)
        kwargs.update(request_kwargs)
        self.log.debug("Sending %s to %s", self.method, url)
        try:
            response = session.request(self.method, url, **kwargs)
        except requests.exceptions.Timeout as exc:
            raise HttpException(f"{self.method} {url} timed out after {kwargs['timeout']}s: {exc}") from exc
        except requests.exceptions.SSLError as exc:
            raise HttpException(
                f"{self.method} {url}: TLS verification failed ({exc}); configure the server's CA with the "
                "connection extra 'ca_bundle'"
            ) from exc
        except requests.exceptions.ConnectionError as exc:
            raise HttpException(f"{self.method} {url}: connection failed: {exc}") from exc
        if check:
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
