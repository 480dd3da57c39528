"""The key that signs web sessions (and so the CSRF tokens inside them): one per installation.

Why a file of its own: whoever knows the key can forge a session for any user, so it must be random, unique to
this installation and readable by its owner only. ``[webserver] secret_key`` (zonda.toml or
``ZONDA__WEBSERVER__SECRET_KEY``) wins when set; otherwise the key is made on first need, 48 random bytes, and
kept in ``$ZONDA_HOME/webserver_secret_key`` (mode 0600, whatever the umask), so sessions survive a restart.
Two processes starting at once end with one key (an exclusive ``O_EXCL`` create; the loser reads the winner's).

A configured key that is empty, shorter than :data:`MIN_LENGTH` characters, or one of the well-known examples
copied from documentation refuses to start, with one line that says how to fix it. The key is given to the
masker so it never shows in a log.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from zonda.exceptions import ZondaConfigError

if TYPE_CHECKING:
    from zonda.config import Settings

FILE_NAME = "webserver_secret_key"
MIN_LENGTH = 32
#: Keys found in tutorials, framework docs and other projects' default configs (compared case-insensitively).
KNOWN_KEYS = frozenset(
    key.lower()
    for key in (
        "changeme",
        "change-me",
        "change_me",
        "changethis",
        "secret",
        "secret-key",
        "secret_key",
        "secretkey",
        "mysecretkey",
        "my-secret-key",
        "my_secret_key",
        "supersecret",
        "super-secret-key",
        "super secret key",
        "temporary_key",
        "dev",
        "development",
        "test",
        "testing",
        "password",
        "default",
        "your-secret-key",
        "your_secret_key",
        "your-secret-key-here",
        "replace-me",
        "\\x8a\\xee\\xf9\\x9a\\x02\\x19\\xcd\\x84\\xb2\\xa9\\x19\\x06\\xd3\\x9c\\x1f\\x9b",
        "192b9bdd22ab9ed4d12e236c78afcb9a393ec15f71bbf5dc987d54727823bcbf",
        '_5#y2L"F4Q8z\\n\\xec]/',
        "dev-secret-key-change-in-production",
        "zonda",
        "airflow",
    )
)
HOW_TO_FIX = (
    f"remove [webserver] secret_key (a random key is then kept in $ZONDA_HOME/{FILE_NAME}) or set it to "
    f"{MIN_LENGTH}+ random characters, e.g. from: python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
)


def check_key(key: str, where: str) -> str:
    """``key`` when it is fit to sign sessions; else :class:`ZondaConfigError` naming ``where`` and the fix."""
    stripped = key.strip()
    if not stripped:
        raise ZondaConfigError(f"the web server's secret key in {where} is empty; {HOW_TO_FIX}")
    if stripped.lower() in KNOWN_KEYS:
        raise ZondaConfigError(f"the web server's secret key in {where} is a well-known example key; {HOW_TO_FIX}")
    if len(stripped) < MIN_LENGTH:
        raise ZondaConfigError(
            f"the web server's secret key in {where} is {len(stripped)} characters long, under {MIN_LENGTH}; "
            f"{HOW_TO_FIX}"
        )
    return key


def key_path(home: Path) -> Path:
    return home / FILE_NAME


def _read(path: Path) -> str:
    from zonda.private_files import is_shared

    if is_shared(path):
        raise ZondaConfigError(
            f"{path} can be read by other users than its owner; run: chmod 600 {path} (and consider making a new "
            "key: delete the file, and every session ends)"
        )
    return path.read_text(encoding="utf-8").strip()


def ensure_secret_key(settings: Settings) -> str:
    """The installation's session key: the configured one, else the home's key file, made on first need."""
    from zonda.masking import mask_secret

    source = settings.source("webserver", "secret_key")
    configured = str(settings.get("webserver", "secret_key") or "")
    if source != "default":
        key = check_key(configured, f"[webserver] secret_key ({source})")
    else:
        path = key_path(settings.home)
        if not path.exists():
            _create(path)
        key = check_key(_read(path), str(path))
    mask_secret(key)
    return key


def _create(path: Path) -> None:
    """Write a new key to a private temporary file, then link it into place: the link fails if another process
    got there first (their key wins), and a reader never sees a half-written key."""
    from zonda.private_files import FILE_MODE, make_private_folder

    make_private_folder(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, FILE_MODE)  # a leftover temporary kept its old mode through O_TRUNC
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


__all__ = ["FILE_NAME", "KNOWN_KEYS", "MIN_LENGTH", "check_key", "ensure_secret_key", "key_path"]
