"""Fernet keys: refusal of empty and published keys, MultiFernet rotation, clear errors for a wrong key."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from zonda.config import load_settings
from zonda.crypto import (
    DOCS_EXAMPLE_KEY,
    KNOWN_SHARED_KEYS,
    FernetKeyError,
    decrypt,
    encrypt,
    fernet_from_keys,
    generate_key,
    get_fernet,
    parse_keys,
)
from zonda.exceptions import ZondaConfigError


def settings_with_key(monkeypatch, key: str):
    monkeypatch.setenv("ZONDA__CORE__FERNET_KEY", key)
    return load_settings()


def test_empty_key_is_refused_with_the_command_to_make_one(zonda_home):
    with pytest.raises(ZondaConfigError) as info:
        get_fernet(load_settings())
    message = str(info.value)
    assert "fernet_key is empty" in message
    assert "zonda rotate-fernet-key --generate" in message
    assert "ZONDA__CORE__FERNET_KEY" in message
    assert "[core] fernet_key" in message


@pytest.mark.parametrize("key", sorted(KNOWN_SHARED_KEYS))
def test_published_keys_are_refused(zonda_home, monkeypatch, key):
    with pytest.raises(FernetKeyError, match="published example key") as info:
        get_fernet(settings_with_key(monkeypatch, key))
    assert "zonda rotate-fernet-key --generate" in str(info.value)
    assert key not in str(info.value)


def test_published_key_refused_even_as_an_old_key(zonda_home, monkeypatch):
    with pytest.raises(FernetKeyError, match="key 2 of"):
        get_fernet(settings_with_key(monkeypatch, f"{generate_key()},{DOCS_EXAMPLE_KEY}"))


def test_malformed_key_is_refused(zonda_home, monkeypatch):
    with pytest.raises(FernetKeyError, match="not a valid Fernet key"):
        get_fernet(settings_with_key(monkeypatch, "not-a-key"))


def test_generated_keys_are_valid_and_fresh():
    first, second = generate_key(), generate_key()
    assert first != second
    Fernet(first.encode())
    assert first not in KNOWN_SHARED_KEYS


def test_comma_separated_keys_encrypt_with_the_first_and_decrypt_with_any(zonda_home, monkeypatch):
    old, new = generate_key(), generate_key()
    old_token = encrypt(fernet_from_keys([old]), "s3cret!")
    both = get_fernet(settings_with_key(monkeypatch, f" {new} , {old} "))
    assert decrypt(both, old_token, what="x") == "s3cret!"
    new_token = encrypt(both, "again")
    assert decrypt(fernet_from_keys([new]), new_token, what="x") == "again"
    with pytest.raises(FernetKeyError):
        decrypt(fernet_from_keys([old]), new_token, what="x")


def test_wrong_key_names_the_value_and_what_to_do():
    token = encrypt(fernet_from_keys([generate_key()]), "pw")
    with pytest.raises(FernetKeyError) as info:
        decrypt(fernet_from_keys([generate_key()]), token, what="the password of connection 'my_db'")
    message = str(info.value)
    assert "the password of connection 'my_db'" in message
    assert "zonda rotate-fernet-key" in message
    assert "zonda connections add" in message


def test_parse_keys():
    assert parse_keys("") == []
    assert parse_keys(" a, ,b ") == ["a", "b"]
