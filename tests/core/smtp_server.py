"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for the e-mail alert tests.

It speaks plain SMTP, or offers STARTTLS with a self-signed certificate for 127.0.0.1 (which no default trust
store knows, so the client's verification is exercised), and can require a login.
"""

from __future__ import annotations

import email
import json
import socket
import ssl
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Keep:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.original_content or envelope.content))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


class SmtpServer:
    """``with SmtpServer(...) as server:`` a started server; ``server.messages`` holds what arrived."""

    def __init__(self, *, tls_files: tuple[Path, Path] | None = None, login: tuple[str, str] | None = None) -> None:
        self.port = free_port()
        self._keep = _Keep()
        kwargs: dict[str, Any] = {}
        if tls_files is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls_files)
            kwargs["tls_context"] = context
        if login is not None:
            user, password = login

            def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
                ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
                    user.encode(),
                    password.encode(),
                )
                return AuthResult(success=ok)

            kwargs.update(authenticator=check, auth_required=True)
        self._controller = Controller(self._keep, hostname="127.0.0.1", port=self.port, **kwargs)

    @property
    def messages(self) -> list[Message]:
        return self._keep.messages

    @property
    def envelopes(self) -> list[tuple[str, list[str]]]:
        return self._keep.envelopes

    def connection_json(self, **extra: Any) -> str:
        """The ``smtp`` connection to this server as ``ZONDA_CONN_*`` JSON (extras as given)."""
        return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": self.port, "extra": extra})

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._controller.stop()


def body(message: Message) -> str:
    """The plain-text part of a received message."""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            return part.get_payload(decode=True).decode()
    raise AssertionError("the message has no text/plain part")
