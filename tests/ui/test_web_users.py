"""``zonda users create | list | delete`` and the users operations: argon2 hashes, roles, the last Admin, audit."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from web_marks import SQLITE_ONLY

from zonda.cli import main
from zonda.metastore import tables as t
from zonda.metastore.db import Metastore
from zonda.operations import users
from zonda.operations.audit import list_entries
from zonda.operations.users import create_user, verify_password


@pytest.fixture
def cli_store(zonda_home: Path, web_db_url: str, monkeypatch: pytest.MonkeyPatch) -> Metastore:
    monkeypatch.setenv("ZONDA__DATABASE__SQL_ALCHEMY_CONN", web_db_url)
    store = Metastore(web_db_url)
    store.init()
    return store


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_create_list_delete(cli_store: Metastore, capsys) -> None:
    code, out, err = run(
        capsys,
        "users",
        "create",
        "--username",
        "alice",
        "--role",
        "op",
        "--password",
        "s3cret-pass",
        "--email",
        "alice@example.com",
    )
    assert (code, out, err) == (0, "created user alice (Op)\n", "")
    assert verify_password(cli_store.engine, "alice", "s3cret-pass").role == "Op"
    assert verify_password(cli_store.engine, "alice", "s3cret-pasS") is None

    code, out, _ = run(capsys, "users", "list", "--output", "json")
    [row] = json.loads(out)
    assert (row["username"], row["role"], row["email"]) == ("alice", "Op", "alice@example.com")
    assert row["last_login_at"] is not None  # the verify above was a login
    assert "password" not in out and "hash" not in out

    assert run(capsys, "users", "delete", "alice")[:2] == (0, "deleted user alice\n")
    assert run(capsys, "users", "list")[1].endswith("(none)\n")
    actions = [(e.username, e.action, e.target) for e in list_entries(cli_store.engine)]
    assert actions == [("(cli)", "user.delete", "alice"), ("(cli)", "user.create", "alice")]


@pytest.mark.production_password_hasher
def test_the_password_is_stored_as_an_argon2id_hash(cli_store: Metastore, capsys) -> None:
    """With the production parameters (the other web tests hash at argon2's cheapest): OWASP's minimum for
    argon2id, 19 MiB of memory, 2 passes, 1 lane."""
    run(capsys, "users", "create", "--username", "bob", "--role", "Viewer", "--password", "plain-text-password")
    with cli_store.engine.connect() as conn:
        stored = conn.execute(select(t.web_user.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and "plain-text-password" not in stored
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$"), stored


@pytest.mark.production_password_hasher
def test_a_login_replaces_a_hash_made_with_other_parameters(
    cli_store: Metastore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as cheaper:
        cheaper.setattr(users, "_hasher", lambda: PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        create_user(cli_store.engine, "dora", "Viewer", "an old password hash", actor="(test)")
    assert _stored_hash(cli_store, "dora").startswith("$argon2id$v=19$m=8,t=1,p=1$")

    assert verify_password(cli_store.engine, "dora", "a wrong password") is None
    assert _stored_hash(cli_store, "dora").startswith("$argon2id$v=19$m=8,t=1,p=1$")  # only a login replaces it
    assert verify_password(cli_store.engine, "dora", "an old password hash") is not None
    assert _stored_hash(cli_store, "dora").startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert verify_password(cli_store.engine, "dora", "an old password hash") is not None


def _stored_hash(store: Metastore, username: str) -> str:
    with store.engine.connect() as conn:
        return conn.execute(select(t.web_user.c.password_hash).where(t.web_user.c.username == username)).scalar_one()


@SQLITE_ONLY
def test_random_password_is_printed_once_and_works(cli_store: Metastore, capsys) -> None:
    code, out, _ = run(capsys, "users", "create", "--username", "carol", "--role", "Admin", "--random-password")
    assert code == 0
    [password] = [line.removeprefix("password: ") for line in out.splitlines() if line.startswith("password: ")]
    assert len(password) >= 20
    assert verify_password(cli_store.engine, "carol", password) is not None
    assert password not in json.dumps([e.details for e in list_entries(cli_store.engine)])


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--username", "dan", "--role", "Superuser", "--password", "long-enough"],
            "unknown role 'Superuser'; use one of Viewer, User, Op, Admin",
        ),
        (["--username", "dan", "--role", "User", "--password", "short"], "shorter than 8 characters"),
        (["--username", "d an", "--role", "User", "--password", "long-enough"], "spaces or control characters"),
        (["--username", "dan", "--role", "User"], "no password for dan: give --password P or --random-password"),
    ],
)
def test_bad_input_is_one_line(cli_store: Metastore, capsys, monkeypatch, argv: list[str], message: str) -> None:
    with open(os.devnull) as not_a_terminal:  # no prompt
        monkeypatch.setattr("sys.stdin", not_a_terminal)
        code, out, err = run(capsys, "users", "create", *argv)
    assert code == 1 and out == ""
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


@SQLITE_ONLY
def test_a_taken_username_and_an_unknown_one(cli_store: Metastore, capsys) -> None:
    run(capsys, "users", "create", "--username", "erin", "--role", "User", "--password", "long-enough")
    code, _, err = run(capsys, "users", "create", "--username", "erin", "--role", "User", "--password", "long-enough")
    assert code == 1 and "exists already" in err
    code, _, err = run(capsys, "users", "delete", "nobody")
    assert code == 1 and "no user 'nobody'" in err


def test_the_last_admin_stays(cli_store: Metastore, capsys) -> None:
    from zonda.operations.users import set_role

    run(capsys, "users", "create", "--username", "root", "--role", "Admin", "--password", "long-enough")
    code, _, err = run(capsys, "users", "delete", "root")
    assert code == 1 and "last Admin" in err
    with pytest.raises(Exception, match="last Admin"):
        set_role(cli_store.engine, "root", "Op")
    run(capsys, "users", "create", "--username", "root2", "--role", "Admin", "--password", "long-enough")
    assert run(capsys, "users", "delete", "root")[0] == 0


def test_set_role_and_password_are_audited(cli_store: Metastore) -> None:
    from zonda.operations.users import create_user, set_password, set_role

    create_user(cli_store.engine, "fred", "viewer", "long-enough", actor="admin")
    assert set_role(cli_store.engine, "fred", "op", actor="admin").role == "Op"
    set_password(cli_store.engine, "fred", "another-long-one", actor="admin")
    assert verify_password(cli_store.engine, "fred", "long-enough") is None
    assert verify_password(cli_store.engine, "fred", "another-long-one") is not None
    entries = [(e.action, e.details) for e in list_entries(cli_store.engine)]
    assert entries == [
        ("user.set_password", {}),
        ("user.set_role", {"from": "Viewer", "to": "Op"}),
        ("user.create", {"role": "Viewer"}),
    ]
