"""Fixtures for the postgres provider tests: the real local PostgreSQL, given to hooks as ``postgres_default``."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from zonda.connection import Connection


@pytest.fixture
def pg_conn(postgres_url: str, zonda_home, monkeypatch: pytest.MonkeyPatch) -> Connection:
    """``postgres_default`` pointing at a fresh database (through ZONDA_CONN_POSTGRES_DEFAULT)."""
    uri = postgres_url.replace("postgresql://", "postgres://", 1)
    monkeypatch.setenv("ZONDA_CONN_POSTGRES_DEFAULT", uri)
    return Connection.from_uri(uri, conn_id="postgres_default")


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("client went away")
        data += chunk
    return data


def _serve_password_rejection(sock: socket.socket) -> None:
    """Speak just enough of the PostgreSQL protocol to ask for a password and reject it (SQLSTATE 28P01)."""
    try:
        while True:
            (length,) = struct.unpack("!I", _recv_exact(sock, 4))
            body = _recv_exact(sock, length - 4)
            (code,) = struct.unpack("!I", body[:4])
            if code in (80877103, 80877104):  # SSLRequest / GSSENCRequest: not supported
                sock.sendall(b"N")
                continue
            break  # the StartupMessage
        sock.sendall(b"R" + struct.pack("!II", 8, 3))  # AuthenticationCleartextPassword
        _recv_exact(sock, 1)  # 'p'
        (length,) = struct.unpack("!I", _recv_exact(sock, 4))
        _recv_exact(sock, length - 4)
        fields = b'SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed for user "alice"\0\0'
        sock.sendall(b"E" + struct.pack("!I", len(fields) + 4) + fields)
    except (ConnectionError, OSError):
        pass
    finally:
        sock.close()


@pytest.fixture
def password_rejecting_server() -> Iterator[int]:
    """A loopback server that rejects every password as PostgreSQL does (the local server trusts everyone)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(5)
            threading.Thread(target=_serve_password_rejection, args=(client,), daemon=True).start()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        server.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
