"""The Fernet key of a fresh installation: made on first need and kept in ``$ZONDA_HOME/zonda.toml``.

Why: storing a connection needs ``[core] fernet_key``, and a new user should not have to make one by hand
(Airflow writes one into the config it creates on first start). The first command that needs a key, and
``zonda db init`` / ``zonda standalone`` before any service starts, add a ``fernet_key`` line to the ``[core]``
section, keeping every other line of the file as it was.

Two processes doing this at once end with one key: the check and the write happen under an exclusive lock on
``zonda.toml.lock`` beside the file, and the file is replaced atomically (a reader never sees half of it). A key
set in ``ZONDA__CORE__FERNET_KEY`` wins: nothing is written then. Processes that started before the key existed
read it from the file when they first need it (:func:`key_from_file`).
"""

from __future__ import annotations

import contextlib
import os
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zonda.config import Settings

CONFIG_NAME = "zonda.toml"

_CORE_HEADER = re.compile(r"^[ \t]*\[[ \t]*core[ \t]*\][ \t]*(?:#.*)?$", re.MULTILINE)
_ANY_HEADER = re.compile(r"^[ \t]*\[", re.MULTILINE)
_EMPTY_KEY_LINE = re.compile(r"^[ \t]*fernet_key[ \t]*=[ \t]*(?:\"\"|'')[ \t]*(?:#.*)?$", re.MULTILINE)


def key_from_file(home: Path) -> str:
    """``[core] fernet_key`` as the file holds it now ("" when unset or unreadable)."""
    try:
        data = tomllib.loads((home / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return ""
    core = data.get("core")
    value = core.get("fernet_key") if isinstance(core, dict) else None
    return value if isinstance(value, str) else ""


def key_is_from_environment(settings: Settings) -> bool:
    return settings.source("core", "fernet_key").startswith(("env ", "override"))


def ensure_fernet_key(settings: Settings) -> str:
    """The installation's Fernet key(s): the configured value, else the file's current one, else a new key
    written to ``zonda.toml`` (once, whatever the number of processes asking at the same moment)."""
    from zonda.crypto import HOW_TO_SET, FernetKeyError, generate_key

    configured = str(settings.get("core", "fernet_key") or "")
    if configured.strip() or key_is_from_environment(settings):
        return configured
    home = settings.home
    path = home / CONFIG_NAME
    with _locked(home):
        current = key_from_file(home)
        if current.strip():
            return current
        key = generate_key()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        updated = with_core_key(text, key)
        try:
            parsed = tomllib.loads(updated)
        except tomllib.TOMLDecodeError:
            parsed = {}
        core = parsed.get("core")
        if not isinstance(core, dict) or core.get("fernet_key") != key:
            raise FernetKeyError(
                f"could not add a Fernet key to {path} (its [core] section has a layout this edit does not "
                f"handle); {HOW_TO_SET}"
            )
        from zonda.private_files import write_private_file

        write_private_file(path, updated)
    import logging

    logging.getLogger("zonda.config").info("created a Fernet key in %s ([core] fernet_key)", path)
    return key


def with_core_key(text: str, key: str) -> str:
    """``text`` with ``fernet_key = "<key>"`` in its ``[core]`` section: an empty ``fernet_key`` line there is
    replaced, else the line goes right under the header; no ``[core]`` section: one is appended."""
    line = f'fernet_key = "{key}"'
    header = _CORE_HEADER.search(text)
    if header is None:
        separator = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
        return f"{text}{separator}[core]\n{line}\n"
    body_start = header.end()
    following = _ANY_HEADER.search(text, body_start + 1)
    body_end = following.start() if following else len(text)
    empty = _EMPTY_KEY_LINE.search(text, body_start, body_end)
    if empty is not None:
        return text[: empty.start()] + line + text[empty.end() :]
    return text[:body_start] + "\n" + line + text[body_start:]


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    """An exclusive lock on ``$ZONDA_HOME/zonda.toml.lock`` (released when the process ends, even killed)."""
    import fcntl

    from zonda.private_files import make_private_folder

    make_private_folder(home)
    fd = os.open(home / f"{CONFIG_NAME}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
