"""The connection lookup (plugin backends, then the environment, then the metastore), encryption at rest and
key rotation, on a real SQLite metastore in a temp ZONDA_HOME."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import zonda.plugins
from zonda.cli._loading import open_metastore
from zonda.config import load_settings
from zonda.connection import Connection
from zonda.crypto import FernetKeyError, generate_key
from zonda.exceptions import ConnectionNotFound
from zonda.hooks import BaseHook
from zonda.masking import SecretsMasker
from zonda.plugins.manager import PluginManager
from zonda.secrets import ConnectionLookup, EnvironmentVariablesBackend, SecretsBackend, get_connection
from zonda.secrets.metastore import ConnectionExists, MetastoreBackend


class DictBackend(SecretsBackend):
    def __init__(self, conns: dict[str, Connection]):
        self.conns = conns
        self.asked: list[str] = []

    def get_connection(self, conn_id):
        self.asked.append(conn_id)
        return self.conns.get(conn_id)


class VaultBackend(DictBackend):
    pass


class BrokenBackend(SecretsBackend):
    def get_connection(self, conn_id):
        raise RuntimeError("vault unreachable")


class SecretsPlugin:
    def __init__(self, backends):
        self.backends = backends

    @zonda.plugins.hookimpl
    def zonda_secrets_backends(self):
        return self.backends


@pytest.fixture
def key(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    value = generate_key()
    monkeypatch.setenv("ZONDA__CORE__FERNET_KEY", value)
    return value


@pytest.fixture
def settings(key):
    return load_settings()


@pytest.fixture
def store(settings):
    metastore = open_metastore(settings)
    yield metastore
    metastore.dispose()


def plugin_manager(*backends) -> PluginManager:
    manager = PluginManager(autoload=False, environ={})
    if backends:
        assert manager.register(SecretsPlugin(list(backends)), "my_backend")
    return manager


def raw_rows(home: Path) -> list[sqlite3.Row]:
    db = sqlite3.connect(home / "zonda.db")
    db.row_factory = sqlite3.Row
    try:
        return db.execute("SELECT * FROM connection ORDER BY conn_id").fetchall()
    finally:
        db.close()


# -- lookup order -----------------------------------------------------------------------------------------


def test_plugin_backend_wins_over_environment_which_wins_over_metastore(settings, store, monkeypatch):
    MetastoreBackend(store, settings).save(Connection(conn_id="shared", conn_type="postgres", host="from-metastore"))
    MetastoreBackend(store, settings).save(Connection(conn_id="only_db", conn_type="postgres", host="db-only"))
    monkeypatch.setenv("ZONDA_CONN_SHARED", "postgres://from-env")
    plugin = VaultBackend({"shared": Connection(conn_type="postgres", host="from-plugin")})
    lookup = ConnectionLookup(settings, plugins=plugin_manager(plugin), metastore=store, masker=SecretsMasker())

    conn, where = lookup.find("shared")
    assert (conn.host, where, conn.conn_id) == ("from-plugin", "VaultBackend", "shared")

    plugin.conns.clear()
    conn, where = lookup.find("shared")
    assert (conn.host, where) == ("from-env", "environment variable ZONDA_CONN_SHARED")

    monkeypatch.delenv("ZONDA_CONN_SHARED")
    conn, where = lookup.find("shared")
    assert (conn.host, where) == ("from-metastore", f"metastore {store.redacted_url}")

    assert lookup.get_connection("only_db").host == "db-only"
    assert plugin.asked == ["shared", "shared", "shared", "only_db"]


def test_environment_accepts_json(settings, monkeypatch):
    monkeypatch.setenv("ZONDA_CONN_MY_API", '{"conn_type": "http", "host": "api.example.com", "extra": {"a": 1}}')
    conn = get_connection("my_api", settings=settings, plugins=plugin_manager())
    assert (conn.conn_type, conn.host, conn.extra) == ("http", "api.example.com", {"a": 1})


def test_environment_backend_names_the_variable_on_bad_values(monkeypatch):
    backend = EnvironmentVariablesBackend({"ZONDA_CONN_BAD": "postgres://u:secretpw@h:port"})
    with pytest.raises(ValueError, match="ZONDA_CONN_BAD") as info:
        backend.get_connection("bad")
    assert "secretpw" not in str(info.value)


def test_no_engine_is_opened_when_an_earlier_backend_answers(settings, monkeypatch):
    from zonda.metastore.db import Metastore

    metastore = Metastore.from_settings(settings)
    monkeypatch.setenv("ZONDA_CONN_FAST", "http://h")
    lookup = ConnectionLookup(settings, plugins=plugin_manager(), metastore=metastore, masker=SecretsMasker())
    assert lookup.get_connection("fast").host == "h"
    assert "engine" not in metastore.__dict__
    assert not (settings.home / "zonda.db").exists()


def test_unknown_id_names_every_place_looked_in(settings, store):
    lookup = ConnectionLookup(
        settings, plugins=plugin_manager(VaultBackend({}), BrokenBackend()), metastore=store, masker=SecretsMasker()
    )
    with pytest.raises(ConnectionNotFound) as info:
        lookup.get_connection("my_db")
    message = str(info.value)
    assert "'my_db'" in message
    assert "secrets backends: VaultBackend, BrokenBackend (failed: RuntimeError: vault unreachable)" in message
    assert "environment variable ZONDA_CONN_MY_DB" in message
    assert f"metastore sqlite:///{settings.home}/zonda.db" in message
    assert "zonda connections add my_db" in message


def test_unknown_id_without_plugins_or_initialized_metastore(settings):
    from zonda.metastore.db import Metastore

    lookup = ConnectionLookup(settings, plugins=False, metastore=Metastore.from_settings(settings))
    with pytest.raises(ConnectionNotFound) as info:
        lookup.get_connection("nope")
    assert "secrets backends: none configured" in str(info.value)
    assert "not initialized: run `zonda db init`" in str(info.value)


def test_found_connections_are_masked(settings, monkeypatch):
    monkeypatch.setenv(
        "ZONDA_CONN_M", '{"conn_type": "http", "password": "pw-12345", "extra": {"api_token": "tok-999"}}'
    )
    masker = SecretsMasker()
    ConnectionLookup(settings, plugins=False, masker=masker).get_connection("m")
    assert masker.redact_text("pw-12345 tok-999") == "*** ***"


def test_secret_fields_from_a_connection_type_schema_are_masked(settings, monkeypatch):
    monkeypatch.setenv("ZONDA_CONN_M", '{"conn_type": "es", "extra": {"cloud_id": "cloud-abcdef"}}')
    masker = SecretsMasker()
    lookup = ConnectionLookup(
        settings, plugins=False, masker=masker, secret_fields_for=lambda t: ["cloud_id"] if t == "es" else []
    )
    lookup.get_connection("m")
    assert masker.redact_text("id=cloud-abcdef") == "id=***"


def test_public_names():
    import zonda.hooks
    import zonda.secrets

    assert zonda.hooks.__all__ == ["BaseHook"]
    assert zonda.hooks.BaseHook is BaseHook
    assert zonda.secrets.MetastoreBackend is MetastoreBackend
    assert set(zonda.secrets.__all__) == {
        "ConnectionLookup",
        "EnvironmentVariablesBackend",
        "MetastoreBackend",
        "SecretsBackend",
        "get_connection",
    }


def test_base_hook_uses_the_lookup(settings, monkeypatch):
    monkeypatch.setenv("ZONDA_CONN_HOOKED", "http://hooked")
    assert BaseHook.get_connection("hooked").host == "hooked"
    injected = ConnectionLookup(settings, plugins=plugin_manager(VaultBackend({"hooked": Connection(conn_type="x")})))
    assert BaseHook.get_connection("hooked", lookup=injected).conn_type == "x"
    monkeypatch.setattr(BaseHook, "default_lookup", injected)
    assert BaseHook.get_connection("hooked").conn_type == "x"
    ok, message = BaseHook().test_connection()
    assert not ok and "does not support" in message
    with pytest.raises(NotImplementedError):
        BaseHook().get_conn()


# -- storage ----------------------------------------------------------------------------------------------


def test_password_and_extras_are_encrypted_at_rest(settings, store, zonda_home):
    backend = MetastoreBackend(store, settings)
    conn = Connection(
        conn_id="enc", conn_type="postgres", host="h", login="me", password="hunter2-pw", extra={"token": "t0k3n"}
    )
    backend.save(conn)
    (row,) = raw_rows(zonda_home)
    assert "hunter2-pw" not in row["password"]
    assert "t0k3n" not in row["extra"]
    assert row["is_encrypted"] == 1 and row["is_extra_encrypted"] == 1
    assert row["login"] == "me"
    assert backend.get_connection("enc") == conn


def test_connection_without_secrets_needs_no_key(zonda_home, monkeypatch):
    current = load_settings()  # no fernet key at all
    store = open_metastore(current)
    backend = MetastoreBackend(store, current)
    backend.save(Connection(conn_id="plain", conn_type="http", host="h"))
    assert backend.get_connection("plain").host == "h"
    assert not (zonda_home / "zonda.toml").exists()  # nothing secret stored, so no key was made
    backend.save(Connection(conn_id="pw", conn_type="http", password="x"))  # the first secret makes the key
    assert "fernet_key" in (zonda_home / "zonda.toml").read_text()
    assert MetastoreBackend(store, load_settings()).get_connection("pw").password == "x"
    store.dispose()


def test_save_refuses_duplicates_unless_overwrite(settings, store):
    backend = MetastoreBackend(store, settings)
    backend.save(Connection(conn_id="d", conn_type="http", host="one"))
    with pytest.raises(ConnectionExists, match="zonda connections delete d"):
        backend.save(Connection(conn_id="d", conn_type="http", host="two"))
    assert backend.save(Connection(conn_id="d", conn_type="http", host="two"), overwrite=True) is True
    assert backend.get_connection("d").host == "two"
    backend.delete("d")
    assert backend.get_connection("d") is None
    with pytest.raises(ConnectionNotFound, match="'d'"):
        backend.delete("d")


def test_rotation_with_two_keys(zonda_home, monkeypatch):
    old = generate_key()
    monkeypatch.setenv("ZONDA__CORE__FERNET_KEY", old)
    current = load_settings()
    store = open_metastore(current)
    MetastoreBackend(store, current).save(Connection(conn_id="a", conn_type="http", password="pw-a", extra={"k": "v"}))
    MetastoreBackend(store, current).save(Connection(conn_id="b", conn_type="http", host="no-secrets"))

    new = generate_key()
    monkeypatch.setenv("ZONDA__CORE__FERNET_KEY", f"{new},{old}")
    both = MetastoreBackend(store, load_settings())
    assert both.get_connection("a").password == "pw-a"  # old rows stay readable
    assert both.rotate_fernet_key() == 1

    monkeypatch.setenv("ZONDA__CORE__FERNET_KEY", new)
    only_new = MetastoreBackend(store, load_settings())
    conn = only_new.get_connection("a")
    assert (conn.password, conn.extra) == ("pw-a", {"k": "v"})

    monkeypatch.setenv("ZONDA__CORE__FERNET_KEY", old)
    with pytest.raises(FernetKeyError) as info:
        MetastoreBackend(store, load_settings()).get_connection("a")
    assert "connection 'a'" in str(info.value)
    assert "zonda rotate-fernet-key" in str(info.value)
    store.dispose()


def test_rotation_encrypts_rows_stored_in_plain_text(settings, store, zonda_home):
    db = sqlite3.connect(zonda_home / "zonda.db")
    db.execute(
        "INSERT INTO connection (conn_id, conn_type, password, extra, is_encrypted, is_extra_encrypted) "
        "VALUES ('legacy', 'http', 'plain-pw', '{\"a\": 1}', 0, 0)"
    )
    db.commit()
    db.close()
    backend = MetastoreBackend(store, settings)
    assert backend.get_connection("legacy").password == "plain-pw"
    assert backend.rotate_fernet_key() == 1
    (row,) = raw_rows(zonda_home)
    assert row["is_encrypted"] == 1 and "plain-pw" not in row["password"]
    assert backend.get_connection("legacy").extra == {"a": 1}
