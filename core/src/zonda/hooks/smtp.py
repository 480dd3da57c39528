"""Sending mail through an ``smtp`` connection: the path every e-mail alert and the SMTP notifier take.

The connection holds ``host``, ``port``, ``login`` and ``password``; its extras choose how the channel is
protected: ``ssl`` (TLS from the first byte, usually port 465), else ``starttls`` (upgrade a plain connection,
usually port 587; on by default), ``verify`` (check the server's certificate and name; on by default),
``ca_bundle`` (the CA file that certificate is checked against) and ``timeout`` (seconds, 30). With neither
``ssl`` nor ``starttls`` the mail and any login cross the network in clear text, so that is only allowed when
asked for (``"starttls": false``), as on a loopback relay. A server that does not offer STARTTLS while it was
asked for is an error, never a silent fall-back to clear text.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING, Any, ClassVar

from zonda.exceptions import ZondaException
from zonda.hooks.base import BaseHook

if TYPE_CHECKING:
    from zonda.connection import Connection
    from zonda.secrets import ConnectionLookup

DEFAULT_TIMEOUT = 30.0


class SmtpSendError(ZondaException):
    """A message could not be handed to the SMTP server. The text names the connection, never its password."""


def _flag(extra: dict[str, Any], name: str, default: bool) -> bool:
    value = extra.get(name, default)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def recipients(value: str | Sequence[str] | None) -> list[str]:
    """Airflow's ``email=`` forms as a list: one address, a comma/semicolon-separated string, or a list."""
    if not value:
        return []
    items = [value] if isinstance(value, str) else list(value)
    found: list[str] = []
    for item in items:
        found.extend(part.strip() for part in str(item).replace(";", ",").split(",") if part.strip())
    return found


class SmtpHook(BaseHook):
    """Sends messages through the SMTP server of connection ``smtp_conn_id`` (one SMTP session per call)."""

    conn_name_attr: ClassVar[str] = "smtp_conn_id"
    default_conn_name: ClassVar[str] = "smtp_default"
    conn_type: ClassVar[str] = "smtp"
    hook_name: ClassVar[str] = "SMTP"

    def __init__(self, smtp_conn_id: str = "smtp_default", *, lookup: ConnectionLookup | None = None) -> None:
        self.smtp_conn_id = smtp_conn_id
        self._lookup = lookup

    def get_conn(self) -> smtplib.SMTP:
        """A logged-in SMTP session (the caller closes it with ``quit()``)."""
        conn = self.get_connection(self.smtp_conn_id, lookup=self._lookup)
        return _open(conn, self.smtp_conn_id)

    def send_email(
        self,
        to: str | Sequence[str],
        subject: str,
        text: str,
        *,
        html: str | None = None,
        from_email: str | None = None,
        cc: str | Sequence[str] | None = None,
        bcc: str | Sequence[str] | None = None,
    ) -> EmailMessage:
        """Send one message (plain text, with an HTML alternative when given) and return it."""
        to_list, cc_list, bcc_list = recipients(to), recipients(cc), recipients(bcc)
        if not to_list:
            raise SmtpSendError("no recipient: pass at least one address in to= (or the task's email=)")
        conn = self.get_connection(self.smtp_conn_id, lookup=self._lookup)
        sender = from_email or conn.extra_dejson.get("from_email") or conn.login
        if not sender:
            raise SmtpSendError(
                f"no sender address for connection {self.smtp_conn_id!r}: set [email] from_email, the "
                "connection's extra from_email, or its login"
            )
        message = EmailMessage()
        message["From"] = sender
        message["To"] = ", ".join(to_list)
        if cc_list:
            message["Cc"] = ", ".join(cc_list)
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain="zonda.local")
        message.set_content(text)
        if html is not None:
            message.add_alternative(html, subtype="html")
        session = _open(conn, self.smtp_conn_id)
        try:
            session.send_message(message, from_addr=sender, to_addrs=[*to_list, *cc_list, *bcc_list])
        except smtplib.SMTPException as exc:
            raise SmtpSendError(f"SMTP server of connection {self.smtp_conn_id!r} refused the message: {exc}")
        finally:
            _quit(session)
        return message

    def test_connection(self) -> tuple[bool, str]:
        try:
            _quit(self.get_conn())
        except Exception as exc:
            return False, str(exc)
        return True, "connected (and logged in, when the connection has a login)"


def _tls_context(extra: dict[str, Any]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=extra.get("ca_bundle") or None)
    if not _flag(extra, "verify", True):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _open(conn: Connection, conn_id: str) -> smtplib.SMTP:
    """Connect, protect the channel as the extras say, and log in when the connection has a login."""
    extra = conn.extra_dejson
    if not conn.host:
        raise SmtpSendError(f"connection {conn_id!r} has no host; set the SMTP server's host (and port)")
    use_ssl = _flag(extra, "ssl", False)
    use_starttls = not use_ssl and _flag(extra, "starttls", True)
    timeout = float(extra.get("timeout") or DEFAULT_TIMEOUT)
    where = f"{conn.host}:{conn.port or ('465' if use_ssl else '25')}"
    try:
        if use_ssl:
            session: smtplib.SMTP = smtplib.SMTP_SSL(
                conn.host, conn.port or 465, timeout=timeout, context=_tls_context(extra)
            )
        else:
            session = smtplib.SMTP(conn.host, conn.port or 25, timeout=timeout)
        try:
            session.ehlo()
            if use_starttls:
                if not session.has_extn("starttls"):
                    raise SmtpSendError(
                        f"SMTP server {where} (connection {conn_id!r}) does not offer STARTTLS; set the extra "
                        '"ssl": true for implicit TLS, or "starttls": false to send in clear text (loopback only)'
                    )
                session.starttls(context=_tls_context(extra))
                session.ehlo()
            if conn.login:
                session.login(conn.login, conn.password or "")
        except BaseException:
            _quit(session)
            raise
    except SmtpSendError:
        raise
    except ssl.SSLError as exc:
        raise SmtpSendError(
            f"TLS with SMTP server {where} (connection {conn_id!r}) failed: {exc.reason or exc}; give the "
            'server\'s CA in the extra "ca_bundle" (verification stays on)'
        )
    except smtplib.SMTPAuthenticationError as exc:
        raise SmtpSendError(f"SMTP server {where} refused the login of connection {conn_id!r} (code {exc.smtp_code})")
    except (OSError, smtplib.SMTPException) as exc:
        raise SmtpSendError(f"cannot reach SMTP server {where} (connection {conn_id!r}): {exc}")
    return session


def _quit(session: smtplib.SMTP) -> None:
    try:
        session.quit()
    except (OSError, smtplib.SMTPException):
        session.close()
