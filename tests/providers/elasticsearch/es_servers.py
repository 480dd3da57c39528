"""Real servers on loopback that stand in front of the noida-db test server, for what noida-db does not do.

:class:`EsProxy` forwards every request to the upstream server and can, like a real Elasticsearch would:

- report another version on ``GET /`` (``report_version="9.1.0"``) and refuse requests whose
  ``compatible-with=`` media-type parameter does not name that major version, with Elasticsearch's
  ``400 media_type_header_exception``. It is a stand-in, stricter than a real 9.x server (which also accepts
  ``compatible-with=8``), so that a test can tell the header really follows the server;
- refuse ``GET /`` with 403, as a cluster does for an API key without the ``monitor`` privilege;
- demand basic auth or an API key, answering 401 ``security_exception`` as Elasticsearch's security does;
- serve TLS with a certificate from :func:`make_ca`.

It records each request's method, path and headers so tests can check what the client sent.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import ipaddress
import json
import re
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_COMPAT = re.compile(r"compatible-with=(\d+)")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def es_error(status: int, error_type: str, reason: str, **extra: Any) -> dict[str, Any]:
    """An error body shaped like Elasticsearch's."""
    cause = {"type": error_type, "reason": reason, **extra}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


class _QuietServer(ThreadingHTTPServer):
    """A client that gave up (its timeout) closes the socket before a late answer: not an error here."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class EsProxy:
    """A threaded HTTP(S) proxy on 127.0.0.1 in front of ``upstream`` (see the module docstring)."""

    def __init__(
        self,
        upstream: str,
        *,
        report_version: str | None = None,
        enforce_compat: bool = False,
        deny_root: bool = False,
        basic_auth: tuple[str, str] | None = None,
        api_key: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        answer_late: dict[str, float] | None = None,
        max_body: int | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        #: path suffix -> seconds: such requests are applied upstream at once, but answered that much later
        #: (a slow cluster that did the work; a client that gives up in between must not send it again).
        self.answer_late = dict(answer_late or {})
        #: Bodies over this many bytes are refused with 413, as a server with a low http.max_content_length does.
        self.max_body = max_body
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 9200
        self.report_version = report_version
        self.enforce_compat = enforce_compat
        self.deny_root = deny_root
        self.basic_auth = basic_auth
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self._local = threading.local()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                proxy.requests.append(
                    {"method": self.command, "path": self.path, "headers": headers, "size": len(body)}
                )
                status, out_headers, data = proxy.respond(self.command, self.path, headers, body)
                self.send_response(status)
                for key, value in out_headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.scheme = "http"
        if ssl_context is not None:
            self.httpd.socket = ssl_context.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> EsProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def __enter__(self) -> EsProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what it answers ------------------------------------------------------------------------------------

    def _json(self, status: int, value: Any) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": "application/json", "X-Elastic-Product": "Elasticsearch"}
        if status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="security", charset="UTF-8", ApiKey'
        return status, headers, json.dumps(value).encode()

    def _authenticated(self, headers: dict[str, str]) -> str | None:
        """None when the request may pass, else the user name to complain about."""
        if self.basic_auth is None and self.api_key is None:
            return None
        given = headers.get("authorization", "")
        if self.api_key is not None and given == f"ApiKey {self.api_key}":
            return None
        if self.basic_auth is not None and given.startswith("Basic "):
            user, _, password = base64.b64decode(given[6:]).decode().partition(":")
            if (user, password) == self.basic_auth:
                return None
            return user
        return "_anonymous" if not given.startswith("ApiKey ") else "_api_key"

    def _compat_problem(self, headers: dict[str, str]) -> str | None:
        if not self.enforce_compat or self.report_version is None:
            return None
        major = self.report_version.split(".")[0]
        for name in ("accept", "content-type"):
            found = _COMPAT.search(headers.get(name, ""))
            if found and found.group(1) != major:
                return (
                    f"{name.title()} version must be either version {major}, but found {found.group(1)}. "
                    f"{name.title()}={headers[name]}"
                )
        return None

    def respond(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        user = self._authenticated(headers)
        if user is not None:
            reason = f"unable to authenticate user [{user}] for REST request [{path}]"
            return self._json(401, es_error(401, "security_exception", reason))
        problem = self._compat_problem(headers)
        if problem is not None:
            error = es_error(400, "media_type_header_exception", "Invalid media-type value on headers [Accept]")
            error["error"]["caused_by"] = {"type": "status_exception", "reason": problem}
            return self._json(400, error)
        if self.max_body is not None and len(body) > self.max_body:
            reason = f"request body is {len(body)} bytes, larger than http.max_content_length [{self.max_body}]"
            return self._json(413, es_error(413, "content_too_long_exception", reason))
        is_root = urlsplit(path).path in ("", "/")
        if is_root and method == "GET" and self.deny_root:
            reason = "action [cluster:monitor/main] is unauthorized for API key id [test]"
            return self._json(403, es_error(403, "security_exception", reason))
        status, out_headers, data = self._forward(method, path, headers, body)
        for suffix, seconds in self.answer_late.items():
            if urlsplit(path).path.endswith(suffix):
                time.sleep(seconds)
        if is_root and method == "GET" and self.report_version and status == 200:
            info = json.loads(data)
            info["version"]["number"] = self.report_version
            data = json.dumps(info).encode()
        return status, out_headers, data

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=30)
        # noida-db does not check compatibility headers; send it plain JSON so it never has to.
        forwarded = {k: v for k, v in headers.items() if k not in _HOP_BY_HOP and k != "authorization"}
        for name in ("accept", "content-type"):
            if name in forwarded:
                forwarded[name] = re.sub(r"vnd\.elasticsearch\+([\w-]+);\s*compatible-with=\d+", r"\1", forwarded[name])
        try:
            conn.request(method, path, body=body or None, headers=forwarded)
            response = conn.getresponse()
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = self._local.conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=30)
            conn.request(method, path, body=body or None, headers=forwarded)
            response = conn.getresponse()
        data = response.read()
        out = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP}
        return response.status, out, data


# -- certificates -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    """A test CA and a server certificate it signed (for 127.0.0.1 and localhost)."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    fingerprint: str  # SHA-256 of the server certificate, hex pairs joined by ':'

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_ca(folder: Path) -> Certificates:
    """Generate a CA and a server certificate with the ``cryptography`` package."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Zonda test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "server-key.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    fingerprint = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    return Certificates(ca_file, cert_file, key_file, fingerprint)
