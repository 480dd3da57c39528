"""Fernet encryption of connection secrets and variables at rest, keyed by ``[core] fernet_key``.

``fernet_key`` may list several comma-separated keys (a :class:`~cryptography.fernet.MultiFernet`, as in
Airflow): new values are encrypted with the first, and any of them decrypts. To rotate: put a new key first,
keep the old one after it, run ``zonda rotate-fernet-key``, then drop the old key.

A key is only needed where something is encrypted or decrypted, so a deployment that keeps every connection in
the environment or a secrets backend runs without one. The first time a secret is stored without a key, one is
made and kept in ``zonda.toml`` (:mod:`zonda.fernet_bootstrap`). A key published in documentation (anyone could
decrypt the metastore with it) is refused with the command that makes a fresh one.
``cryptography`` is imported only here, on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zonda.exceptions import ZondaConfigError

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

    from zonda.config import Settings

#: The key Zonda's own documentation and examples show. Published, hence refused like the others below.
DOCS_EXAMPLE_KEY = "roe1ZCxYnB6RnMAAKwuijjr49iEA7kiVlV-VMS3XdYo="

#: Keys copied around in public tutorials, docker-compose files and Helm examples for Airflow. Anyone who
#: reads the metastore could decrypt it with them.
KNOWN_SHARED_KEYS: frozenset[str] = frozenset(
    {
        DOCS_EXAMPLE_KEY,
        "46BKJoQYlPPOexq0OhDZnIlNepKFf87WFwLbfzqDDho=",  # puckel/docker-airflow compose files and their many copies
        "81HqDtbqAywKSOumSha3BhWNOdQ26slT6K0YaZeZyPs=",  # Airflow tutorials and Dockerfiles
        "poIO1LOlpixrUHwaR0byB448DVQEK2Gsx2c3H1VMVdQ=",  # Airflow Helm chart examples
    }
)

HOW_TO_SET = (
    "make one with `zonda rotate-fernet-key --generate` and set it as [core] fernet_key in zonda.toml "
    "or as ZONDA__CORE__FERNET_KEY (`zonda db init` writes one to zonda.toml when none is set)"
)


class FernetKeyError(ZondaConfigError):
    """``[core] fernet_key`` is empty, published, malformed, or does not decrypt a stored value."""


def generate_key() -> str:
    """A fresh random Fernet key (what ``zonda rotate-fernet-key --generate`` prints)."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode("ascii")


def parse_keys(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def get_fernet(settings: Settings, *, create: bool = False) -> MultiFernet:
    """The ``MultiFernet`` of ``[core] fernet_key``; raises :class:`FernetKeyError` saying how to fix the key.

    Unset in ``settings``: the key ``zonda.toml`` holds now is used (a process that started before the key was
    written still finds it); ``create`` (storing a secret) makes one there when there is none yet. The keys are
    added to the process's masker."""
    from zonda.fernet_bootstrap import ensure_fernet_key, key_from_file, key_is_from_environment
    from zonda.masking import mask_secret

    value = str(settings.get("core", "fernet_key") or "")
    if not value.strip() and not key_is_from_environment(settings):
        value = ensure_fernet_key(settings) if create else key_from_file(settings.home)
    keys = parse_keys(value)
    mask_secret(keys)
    return fernet_from_keys(keys)


def fernet_from_keys(keys: list[str]) -> MultiFernet:
    from cryptography.fernet import Fernet, MultiFernet

    if not keys:
        raise FernetKeyError(
            "connection secrets and variables are stored encrypted, but [core] fernet_key is empty; " + HOW_TO_SET
        )
    fernets = []
    for position, key in enumerate(keys, start=1):
        which = "the key" if len(keys) == 1 else f"key {position} of [core] fernet_key"
        if key in KNOWN_SHARED_KEYS:
            raise FernetKeyError(
                f"{which} is a published example key (it appears in public docs and tutorials), so anyone "
                "could decrypt your connections with it; " + HOW_TO_SET
            )
        try:
            fernets.append(Fernet(key.encode("ascii")))
        except (ValueError, UnicodeEncodeError):
            raise FernetKeyError(
                f"{which} is not a valid Fernet key (32 url-safe base64-encoded bytes); " + HOW_TO_SET
            ) from None
    return MultiFernet(fernets)


def encrypt(fernet: MultiFernet, value: str) -> str:
    return fernet.encrypt(value.encode("utf-8")).decode("ascii")


def decrypt(fernet: MultiFernet, token: str, *, what: str) -> str:
    """Decrypt ``token``; ``what`` names the value for the error (e.g. "the password of connection 'my_db'")."""
    from cryptography.fernet import InvalidToken

    try:
        return fernet.decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError):
        raise FernetKeyError(
            f"cannot decrypt {what}: it was encrypted with a key that is not in [core] fernet_key. "
            'If you changed the key, list the old one after the new one (fernet_key = "NEW,OLD") and run '
            "`zonda rotate-fernet-key`; if the old key is lost, store the value again (`zonda connections add`, "
            "`zonda variables set`)"
        ) from None


def rotate(fernet: MultiFernet, token: str, *, what: str) -> str:
    """Re-encrypt ``token`` with the first key (it may have been encrypted with any listed key)."""
    from cryptography.fernet import InvalidToken

    try:
        return fernet.rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError):
        # Same explanation as a failed decryption.
        decrypt(fernet, token, what=what)
        raise
