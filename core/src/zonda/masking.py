"""Redacting secrets (``***``) from logs, rendered fields, exception text and CLI output.

A :class:`SecretsMasker` holds secret strings: every connection password and sensitive extra, added when the
connection is fetched (:meth:`SecretsMasker.add_connection`), the values of variables whose key looks sensitive
(:meth:`SecretsMasker.add_variable`), and anything registered with :func:`mask_secret`.
It replaces them, and their URL-encoded, JSON-escaped and ``repr`` forms, wherever they appear in text. Values
under a sensitive key name (``password``, ``token``, ``api_key``, ...) are replaced whole, whatever they are.

Secrets shorter than :data:`MIN_LENGTH` characters are not replaced inside text (a password "abc" would turn
every "abc" in a log into ``***``); they are still hidden under sensitive names.

Why one per-process masker (:func:`get_masker`): the values to hide are learnt deep inside a task (a hook
fetching its connection), while the log filter that must hide them was attached to handlers long before, by
other code. Like Airflow's, the registry is therefore process-wide. It only ever grows with secrets the process
itself has seen, and tests can still build their own :class:`SecretsMasker` and hand it to the filter.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.connection import Connection

MASK = "***"

#: Secrets shorter than this are only hidden under sensitive names, never by substring.
MIN_LENGTH = 5

#: A key is sensitive when its lowercased name, with ``-`` and spaces read as ``_``, contains one of these.
SENSITIVE_NAMES: frozenset[str] = frozenset(
    {
        "access_token",
        "api_key",
        "apikey",
        "auth_token",
        "authorization",
        "bearer",
        "client_secret",
        "cookie",
        "credential",  # also "credentials"
        "keyfile_dict",
        "passphrase",
        "passwd",
        "password",
        "private_key",
        "refresh_token",
        "secret",
        "token",
    }
)

_MAX_DEPTH = 20

#: ``scheme://user:password@`` anywhere in text: the password is hidden even when no one registered it.
_URL_CREDENTIALS = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@]*:)[^\s@/]+(?=@)")

#: ``?password=...`` / ``&api_token=...`` (any sensitive name, plus signatures of pre-signed URLs) in a query.
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&;](?:[A-Za-z0-9_.-]*?(?:"
    + "|".join(sorted(SENSITIVE_NAMES | {"signature"}, key=len, reverse=True))
    + r")[A-Za-z0-9_.-]*|key|sig|code)=)[^&\s#\"'<>]+",
    re.IGNORECASE,
)


def redact_url_secrets(text: str) -> str:
    """Hide the password of ``scheme://user:password@host`` and sensitive query parameters in ``text``."""
    if "://" in text:
        text = _URL_CREDENTIALS.sub(rf"\g<head>{MASK}", text)
    if "=" in text:
        text = _QUERY_SECRET.sub(rf"\g<head>{MASK}", text)
    return text


def is_sensitive_name(name: object) -> bool:
    """Whether a value stored under ``name`` must be hidden whole (``db_password``, ``X-Api-Key``, ...)."""
    if not isinstance(name, str) or not name:
        return False
    normalized = name.lower().replace("-", "_").replace(" ", "_")
    return any(word in normalized for word in SENSITIVE_NAMES)


class SecretsMasker:
    """A set of secret strings and the redaction of them from text and nested structures. Thread-safe."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def __len__(self) -> int:
        return len(self._secrets)

    # -- registering ----------------------------------------------------------------------------------

    def add(self, secret: Any, name: str | None = None) -> None:
        """Hide ``secret`` from now on: a string, or every string inside a dict / list (``name`` is unused but
        accepted for symmetry with :meth:`redact`)."""
        new = set()
        for value in _leaf_strings(secret, 0):
            if len(value) < MIN_LENGTH:
                continue
            new.update(_variants(value))
        if not new - self._secrets:
            return
        with self._lock:
            self._secrets |= new
            self._pattern = None

    def add_connection(self, conn: Connection, secret_fields: Iterable[str] = ()) -> None:
        """Hide a connection's password and every extra that is sensitive by name or listed in
        ``secret_fields`` (the fields a provider's connection-type schema marks secret)."""
        if conn.password:
            self.add(conn.password)
        marked = set(secret_fields)
        self._add_sensitive(conn.extra, marked, 0)

    def add_connection_text(self, text: str) -> None:
        """Hide the secrets of a connection given as a URI or JSON (a ``ZONDA_CONN_*`` value); text that is not
        a valid connection is skipped (the lookup reports it when the connection is used)."""
        from zonda.connection import Connection, InvalidConnection

        try:
            conn = Connection.parse(text)
        except (InvalidConnection, ValueError):
            return
        self.add_connection(conn)

    def add_variable(self, key: str, value: str) -> None:
        """Hide a variable's value when its key looks sensitive (``api_token``, ``db_password``): the text as
        stored and, for a JSON object or list, each string inside it (what a task using it with
        ``deserialize_json=True`` would print). Variables with other keys are not secrets, as in Airflow."""
        if not is_sensitive_name(key) or not isinstance(value, str):
            return
        self.add(value)
        if value[:1] in "[{":
            try:
                parsed = json.loads(value)
            except ValueError:
                return
            self.add(parsed)

    def _add_sensitive(self, value: Any, marked: set[str], depth: int) -> None:
        if depth > _MAX_DEPTH:
            return
        if isinstance(value, Mapping):
            for key, item in value.items():
                if key in marked or is_sensitive_name(key):
                    self.add(item)
                else:
                    self._add_sensitive(item, marked, depth + 1)
        elif isinstance(value, list | tuple):
            for item in value:
                self._add_sensitive(item, marked, depth + 1)

    # -- redacting ------------------------------------------------------------------------------------

    def _compiled(self) -> re.Pattern[str] | None:
        pattern = self._pattern
        if pattern is None and self._secrets:
            with self._lock:
                # Longest first, so a secret that contains another is replaced whole.
                ordered = sorted(self._secrets, key=len, reverse=True)
                pattern = self._pattern = re.compile("|".join(map(re.escape, ordered)))
        return pattern

    def redact_text(self, text: str) -> str:
        """``text`` with registered secrets and URL credentials (``user:***@``, ``?token=***``) hidden."""
        if not text:
            return text
        pattern = self._compiled()
        if pattern is not None:
            text = pattern.sub(MASK, text)
        return redact_url_secrets(text)

    def redact(self, value: Any, name: str | None = None) -> Any:
        """A copy of ``value`` with secrets hidden: whole values under sensitive key names, registered secrets
        inside strings; dicts, lists, tuples and sets are walked. Other objects are returned as they are."""
        return self._redact(value, name, 0)

    def _redact(self, value: Any, name: Any, depth: int) -> Any:
        if name is not None and is_sensitive_name(name) and value not in (None, ""):
            return _mask_whole(value)
        if isinstance(value, str):
            return self.redact_text(value)
        if depth > _MAX_DEPTH:
            return value
        if isinstance(value, Mapping):
            return {key: self._redact(item, key, depth + 1) for key, item in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            items = [self._redact(item, None, depth + 1) for item in value]
            return items if isinstance(value, list) else type(value)(items)
        return value

    def redact_exception(self, exc: BaseException) -> BaseException:
        """Hide secrets in ``exc``'s string arguments (and its cause and context), in place; returns ``exc``.

        Use before an exception's text is stored or shown (task failure messages, API errors)."""
        seen: set[int] = set()
        stack: list[BaseException] = [exc]
        while stack:
            current = stack.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            with contextlib.suppress(AttributeError, TypeError):  # exceptions that forbid setting args
                current.args = tuple(self._redact(arg, None, 0) for arg in current.args)
            stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        return exc


def _mask_whole(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: MASK for key in value}
    if isinstance(value, list | tuple):
        return [MASK for _ in value]
    return MASK


def _leaf_strings(value: Any, depth: int) -> Iterable[str]:
    if depth > _MAX_DEPTH or value is None:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _leaf_strings(item, depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _leaf_strings(item, depth + 1)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)


def _variants(secret: str) -> set[str]:
    """The forms a secret takes in text: as is, URL-encoded (both ways), JSON-escaped and ``repr``-escaped."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret), json.dumps(secret)[1:-1]}
    forms.add(repr(secret)[1:-1])
    return {form for form in forms if len(form) >= MIN_LENGTH}


# -- logging ----------------------------------------------------------------------------------------------


class RedactingFilter(logging.Filter):
    """A logging filter for handlers: hides secrets in the message, its arguments, and the exception and stack
    text. It formats the record once (``msg % args``) and keeps the redacted text with no arguments, so every
    later handler and formatter sees only the redacted form.

    With no secret registered, no structured arguments and nothing that looks like a URL secret in the message
    or its arguments' text, it returns at once.
    """

    def __init__(self, masker: SecretsMasker | None = None, name: str = "") -> None:
        super().__init__(name)
        self._masker = masker

    @property
    def masker(self) -> SecretsMasker:
        return self._masker if self._masker is not None else get_masker()

    def filter(self, record: logging.LogRecord) -> bool:
        masker = self.masker
        args = record.args
        if not masker and not _has_structures(args) and not _may_hold_url_secret(record.msg, args):
            return True
        if args:
            args = masker.redact(dict(args)) if isinstance(args, Mapping) else tuple(map(masker.redact, args))
            try:
                message = str(record.msg) % args
            except (TypeError, ValueError, KeyError):
                message = f"{record.msg} {args}"
        else:
            message = str(record.msg)
        record.msg = masker.redact_text(message)
        record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = masker.redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = masker.redact_text(record.stack_info)
        return True


def _may_hold_url_secret(msg: Any, args: Any) -> bool:
    """Whether the message or an argument, as it will be formatted, may carry ``user:password@`` or
    ``?password=``: an exception or an object whose ``str`` holds a URL counts as much as a string."""
    parts = [msg, *(args.values() if isinstance(args, Mapping) else args or ())]
    for part in parts:
        if isinstance(part, int | float | bool) or part is None:
            continue
        try:
            text = part if isinstance(part, str) else str(part)
        except Exception:  # an object whose str() fails: formatting will say so; nothing to hide in it
            continue
        if "://" in text or "=" in text:
            return True
    return False


def _has_structures(args: Any) -> bool:
    if not args:
        return False
    if isinstance(args, Mapping):
        return True
    return any(isinstance(arg, Mapping | list | tuple | set) for arg in args)


# -- the per-process masker -----------------------------------------------------------------------------------

_default_masker: SecretsMasker | None = None
_default_lock = threading.Lock()


def get_masker() -> SecretsMasker:
    """This process's masker (created on first use); see the module docstring for why there is one."""
    global _default_masker
    if _default_masker is None:
        with _default_lock:
            if _default_masker is None:
                _default_masker = SecretsMasker()
    return _default_masker


def mask_secret(secret: Any, name: str | None = None) -> None:
    """Hide ``secret`` (a string, or every string in a dict or list) in this process's logs and output."""
    get_masker().add(secret, name)


def redact(value: Any, name: str | None = None) -> Any:
    """:meth:`SecretsMasker.redact` with this process's masker."""
    return get_masker().redact(value, name)


def mask_configuration(settings: Settings, environ: Mapping[str, str]) -> None:
    """Teach this process's masker the installation's secrets it can know without a database: every sensitive
    configuration value (the Fernet key, database/broker/result-backend URLs' passwords, the web secret key,
    keys named like secrets), the credentials of every ``ZONDA_CONN_*`` variable and the value of every
    ``ZONDA_VAR_*`` variable whose key looks sensitive. Called whenever settings
    are loaded, so a task that prints its environment or a rendered config value shows ``***``."""
    from zonda.config import sensitive_values

    masker = get_masker()
    for value in sensitive_values(settings):
        for text in _leaf_strings(value, 0):
            if "://" in text:  # a URL: only its password is secret (sqlite:///path or redis://host has none)
                masker.add(_url_password(text))
                continue
            masker.add(text)
            if "," in text:  # several Fernet keys, each alone
                masker.add([part.strip() for part in text.split(",")])
    for name, value in environ.items():
        if name.startswith("ZONDA_CONN_") and value:
            masker.add_connection_text(value)
        elif name.startswith("ZONDA_VAR_") and value:
            masker.add_variable(name[len("ZONDA_VAR_") :], value)


def _url_password(text: str) -> str | None:
    """The password of a URL (raw and decoded forms are both added by :meth:`SecretsMasker.add`), or None."""
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(text).password
    except ValueError:
        return None
    return unquote(password) if password else None
