"""API tokens: made and shown once, stored hashed, expiring, revocable; ``Authorization: Bearer`` authenticates
one request (no cookie, no CSRF), refuses bad tokens with a one-line 401, is rate limited per token, audited with
the token id, and the token never reaches a log line. Real metastores (SQLite, PostgreSQL), real apps."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from api_token_helpers import bearer, store_dags, token_for
from sqlalchemy import event, select

from zonda.exceptions import NotFound, OperationError
from zonda.metastore import tables as t
from zonda.operations.api_tokens import (
    TokenRejected,
    authenticate_token,
    create_token,
    expiry_days,
    list_tokens,
    revoke_token,
)


@pytest.fixture(autouse=True)
def _app_clock_is_now(clock) -> None:
    """Tokens expire by the metastore's time: the app's clock starts at the real now (then moves as told)."""
    clock.now = time.time()


def test_the_metastore_keeps_only_the_hash_and_the_listing_never_the_secret(web) -> None:
    made = create_token(web.engine, "viewer", days=7, name="ci job", actor="(test)")
    assert made.token.startswith(f"zonda_{made.record.id}_")
    with web.engine.connect() as conn:
        row = conn.execute(select(t.api_token).where(t.api_token.c.id == made.record.id)).one()
    assert row.token_hash == hashlib.sha256(made.token.encode()).hexdigest()
    secret = made.token[len(f"zonda_{made.record.id}_") :]
    assert secret not in json.dumps([list(r) for r in [row]], default=str)
    listed = list_tokens(web.engine, "viewer")
    assert [(x.id, x.name, x.username) for x in listed] == [(made.record.id, "ci job", "viewer")]
    assert made.record.expires_at - made.record.created_at == timedelta(days=7)
    assert secret not in repr(listed)


def test_expiry_is_required_defaulted_and_capped() -> None:
    assert expiry_days(None, default_days=30, max_days=365) == 30
    assert expiry_days(5, default_days=30, max_days=365) == 5
    with pytest.raises(OperationError, match="longer than the allowed 365 days"):
        expiry_days(400, default_days=30, max_days=365)
    with pytest.raises(OperationError, match="positive number of days"):
        expiry_days(0, default_days=30, max_days=365)


def test_unknown_user_and_unknown_token_are_one_line_errors(web) -> None:
    with pytest.raises(NotFound, match="no user 'ghost'"):
        create_token(web.engine, "ghost", days=1)
    with pytest.raises(NotFound, match="no API token 'feedfeedfeed'"):
        revoke_token(web.engine, "feedfeedfeed")


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda tok: tok[:-1] + ("A" if tok[-1] != "A" else "B"), "not valid"),
        (lambda tok: "zonda_000000000000_" + tok[len("zonda_000000000000_") :], "not valid"),
        (lambda tok: "not-a-token", "malformed"),
    ],
)
def test_wrong_tokens_are_rejected(web, mangle, reason: str) -> None:
    token = token_for(web, "Viewer")
    with pytest.raises(TokenRejected, match=reason):
        authenticate_token(web.engine, mangle(token))
    assert authenticate_token(web.engine, token).user.username == "viewer"


def test_a_bearer_request_is_the_tokens_user_for_that_request_only(web) -> None:
    token = token_for(web, "Viewer")
    client = web.client()
    response = client.get("/api/v1/version", headers=bearer(token))
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    assert client.get("/api/v1/version").status_code == 401, "the token must not leave a session behind"
    assert client.get("/dags", headers=bearer(token)).status_code == 200


@pytest.mark.parametrize(
    ("setup", "detail"),
    [
        ("revoke", "was revoked"),
        ("expire", "expired on"),
        ("garbage", "malformed"),
    ],
)
def test_revoked_expired_and_malformed_tokens_get_a_401_problem(web, setup: str, detail: str) -> None:
    made = create_token(web.engine, "admin", days=1, actor="(test)")
    token = made.token
    if setup == "revoke":
        revoke_token(web.engine, made.record.id, actor="(test)")
    elif setup == "expire":
        web.clock.now = (made.record.expires_at + timedelta(seconds=1)).timestamp()
    else:
        token = "zonda_nope"
    response = web.client().get("/api/v1/version", headers=bearer(token))
    assert response.status_code == 401
    body = response.get_json()
    assert body["status"] == 401 and body["title"] == "Unauthorized"
    assert detail in body["detail"] and "\n" not in body["detail"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert made.token not in response.text


def test_a_bearer_post_needs_no_csrf_token_and_is_audited_with_the_token_id(web) -> None:
    store_dags(web.engine, {"paused_by_api": []})
    made = create_token(web.engine, "user", days=1, actor="(test)")
    response = web.client().post("/dags/paused_by_api/paused", data={"paused": "true"}, headers=bearer(made.token))
    assert response.status_code == 303
    with web.engine.connect() as conn:
        assert conn.execute(select(t.dag.c.is_paused).where(t.dag.c.dag_id == "paused_by_api")).scalar() is True
        entry = conn.execute(select(t.audit_log).where(t.audit_log.c.action == "dag.pause")).one()
    assert entry.username == "user"
    assert json.loads(entry.details)["auth"] == f"token {made.record.id}"


def test_a_cookie_post_still_needs_its_csrf_token(web) -> None:
    store_dags(web.engine, {"kept": []})
    client = web.logged_in("User")
    assert client.post("/dags/kept/paused", data={"paused": "true"}).status_code == 400


def test_the_tokens_role_is_the_users_role(web) -> None:
    store_dags(web.engine, {"not_for_viewers": []})
    response = web.client().post(
        "/dags/not_for_viewers/paused", data={"paused": "true"}, headers=bearer(token_for(web, "Viewer"))
    )
    assert response.status_code == 403


def test_per_token_rate_limit_answers_429_with_retry_after_then_refills(make_web_app) -> None:
    web = make_web_app({("api", "rate_limit_per_minute"): 3})
    first, second = token_for(web, "Viewer", name="a"), token_for(web, "Viewer", name="b")
    client = web.client()
    for _ in range(3):
        assert client.get("/api/v1/version", headers=bearer(first)).status_code == 200
    refused = client.get("/api/v1/version", headers=bearer(first))
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "20"
    assert "rate_limit_per_minute" in refused.get_json()["detail"]
    assert client.get("/api/v1/version", headers=bearer(second)).status_code == 200, "buckets are per token"
    web.clock.advance(20)
    assert client.get("/api/v1/version", headers=bearer(first)).status_code == 200
    assert client.get("/api/v1/version", headers=bearer(first)).status_code == 429


@pytest.mark.database_dependent
def test_last_used_is_written_at_most_once_a_minute(web) -> None:
    made = create_token(web.engine, "viewer", days=1, actor="(test)")
    writes: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("UPDATE API_TOKEN"):
            writes.append(statement)

    event.listen(web.engine, "before_cursor_execute", count)
    try:
        client = web.client()
        for _ in range(5):
            assert client.get("/api/v1/version", headers=bearer(made.token)).status_code == 200
        assert len(writes) == 1
        web.clock.advance(61)
        assert client.get("/api/v1/version", headers=bearer(made.token)).status_code == 200
        assert len(writes) == 2
    finally:
        event.remove(web.engine, "before_cursor_execute", count)
    last_used = list_tokens(web.engine, "viewer")[0].last_used_at
    assert last_used == datetime.fromtimestamp(web.clock.now, UTC)


def test_a_token_seen_by_the_server_is_masked_in_its_logs(web) -> None:
    from zonda.masking import RedactingFilter

    token = token_for(web, "Viewer")
    assert web.client().get("/api/v1/version", headers=bearer(token)).status_code == 200
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "client sent %s", (f"Bearer {token}",), None)
    RedactingFilter().filter(record)
    assert token not in record.getMessage() and "***" in record.getMessage()


@pytest.mark.database_dependent
def test_deleting_the_user_deletes_their_tokens(web) -> None:
    from zonda.operations.users import create_user, delete_user

    create_user(web.engine, "temp", "Viewer", "long enough password", actor="(test)")
    made = create_token(web.engine, "temp", days=1, actor="(test)")
    delete_user(web.engine, "temp", actor="(test)")
    with pytest.raises(TokenRejected):
        authenticate_token(web.engine, made.token)
    assert list_tokens(web.engine) == []


def test_the_cli_prints_the_token_once_lists_without_it_and_revokes(
    web, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from zonda.cli import main

    monkeypatch.setenv("ZONDA__DATABASE__SQL_ALCHEMY_CONN", web.store.url)
    assert main(["users", "create-token", "op", "--name", "deploy", "--expires-in", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    token = out[1]
    token_id = token[len("zonda_") :][:12]
    assert out[0].startswith(f"created API token {token_id} (deploy) for op")
    assert authenticate_token(web.engine, token).user.username == "op"
    assert main(["users", "list-tokens", "op", "--output", "json"]) == 0
    listing = capsys.readouterr().out
    assert token[len(f"zonda_{token_id}_") :] not in listing
    [row] = json.loads(listing)
    assert (row["id"], row["name"], row["status"]) == (token_id, "deploy", "active")
    assert main(["users", "revoke-token", token_id]) == 0
    assert capsys.readouterr().out.startswith(f"revoked API token {token_id} (deploy) of op")
    assert main(["users", "list-tokens", "--output", "json"]) == 0
    assert [row["status"] for row in json.loads(capsys.readouterr().out)] == ["revoked"]
    with pytest.raises(TokenRejected, match="revoked"):
        authenticate_token(web.engine, token)
    assert main(["users", "create-token", "op", "--expires-in", "9999"]) == 1
    assert "token_max_expiry_days" in capsys.readouterr().err
