"""The connection pages: typed forms from the providers' manifests, and secrets that are write-only: no page or
answer of any connection route carries a stored password or secret extra."""

from __future__ import annotations

import json
from typing import Any

import pytest
from admin_helpers import post

from zonda.connection import Connection

PASSWORD = "pw-Sekr1t-do-not-show"
TOKEN = "tok-Sekr1t-extra-value"
SSL_SECRET = "sslrootcert-not-secret"


def _stored(web: Any, conn_id: str) -> Connection:
    from zonda.secrets.metastore import MetastoreBackend

    conn = MetastoreBackend(web.store, web.settings).get_connection(conn_id)
    assert conn is not None
    return conn


def _add(web: Any, client: Any, **fields: str) -> Any:
    form = {
        "conn_id": "warehouse",
        "conn_type": "postgres",
        "host": "db.internal",
        "port": "5432",
        "schema": "sales",
        "login": "loader",
        "password": PASSWORD,
        "extra.sslrootcert": SSL_SECRET,
        "extra": json.dumps({"api_token": TOKEN, "region": "eu"}),
        "description": "the warehouse",
    }
    return post(web, client, "/connections/new", {**form, **fields})


@pytest.mark.parametrize("web_db_url", ["sqlite"], indirect=True)
def test_the_add_form_has_the_postgres_fields_from_its_manifest(web) -> None:
    page = web.logged_in("Op").get("/connections/new?conn_type=postgres").text
    assert "SSL mode" in page and 'name="extra.sslmode"' in page and "libpq sslmode" in page
    assert 'name="port" value="5432"' in page  # the manifest's default
    assert 'name="password" type="password" value=""' in page
    generic = web.logged_in("Op").get("/connections/new?conn_type=generic").text
    assert 'name="host"' in generic and "extra.sslmode" not in generic


def test_no_page_or_answer_of_the_connection_routes_contains_a_stored_secret(web) -> None:
    """Add, list, edit (leaving the password empty, then changing a field), test, export-free pages: never the
    stored password or the secret extra; the stored values stay as they were."""
    op = web.logged_in("Op")
    answers = [_add(web, op)]
    assert answers[0].status_code == 303
    answers.append(op.get("/connections"))
    answers.append(op.get("/connections/warehouse/edit"))
    answers.append(op.get("/connections/warehouse/edit?conn_type=generic"))
    edit = {
        "conn_type": "postgres",
        "host": "db2.internal",
        "port": "5433",
        "login": "loader",
        "password": "",
        "extra": '{"api_token": "***", "region": "us"}',
    }
    answers.append(post(web, op, "/connections/warehouse/edit", edit))
    answers.append(post(web, op, "/connections/warehouse/edit", {**edit, "port": "not a port"}))
    answers.append(op.get("/connections/warehouse/edit"))
    answers.append(post(web, op, "/connections/warehouse/test"))
    answers.append(op.get("/connections"))  # shows the test's notice
    for response in answers:
        body = response.get_data(as_text=True) + str(response.headers)
        assert PASSWORD not in body and TOKEN not in body, response.request.path
    stored = _stored(web, "warehouse")
    assert stored.password == PASSWORD and stored.extra["api_token"] == TOKEN
    assert (stored.host, stored.port, stored.extra["region"]) == ("db2.internal", 5433, "us")
    assert answers[5].status_code == 400 and "is not a whole number" in answers[5].text


@pytest.mark.parametrize("web_db_url", ["sqlite"], indirect=True)
def test_a_secret_extra_marked_by_the_manifest_is_write_only_too(web) -> None:
    """A provider marks an extra secret by its manifest, not by its name: it is masked and kept like a password."""
    from zonda.providers import get_providers_registry

    registry = get_providers_registry()
    registry.add_manifest(
        {
            "name": "vaulty",
            "package": "zonda-provider-vaulty",
            "version": "1.0",
            "zonda_versions": ">=0",
            "connection_types": [
                {
                    "conn_type": "vaulty",
                    "hook": "vaulty.hooks:VaultyHook",
                    "display_name": "Vaulty",
                    "fields": {"host": {"label": "Host"}, "extra.seed": {"label": "Seed", "secret": True}},
                }
            ],
        }
    )
    try:
        op = web.logged_in("Op")
        added = post(web, op, "/connections/new", {"conn_id": "v", "conn_type": "vaulty", "extra.seed": TOKEN})
        assert added.status_code == 303
        pages = [op.get("/connections"), op.get("/connections/v/edit")]
        kept = post(web, op, "/connections/v/edit", {"conn_type": "vaulty", "host": "h", "extra.seed": ""})
        assert kept.status_code == 303 and _stored(web, "v").extra == {"seed": TOKEN}
        assert all(TOKEN not in page.text for page in pages)
        assert "Remove the stored value" in pages[1].text
        cleared = post(web, op, "/connections/v/edit", {"conn_type": "vaulty", "clear.extra.seed": "true"})
        assert cleared.status_code == 303 and _stored(web, "v").extra == {}
    finally:
        get_providers_registry.cache_clear()


@pytest.mark.parametrize("web_db_url", ["sqlite"], indirect=True)
def test_the_clear_box_removes_the_stored_password_and_a_new_one_replaces_it(web) -> None:
    op = web.logged_in("Op")
    _add(web, op)
    form = {"conn_type": "postgres", "host": "h", "extra": '{"api_token": "***"}'}
    assert post(web, op, "/connections/warehouse/edit", {**form, "password": "new-one"}).status_code == 303
    assert _stored(web, "warehouse").password == "new-one"
    assert post(web, op, "/connections/warehouse/edit", {**form, "clear.password": "true"}).status_code == 303
    assert _stored(web, "warehouse").password is None


@pytest.mark.parametrize("web_db_url", ["sqlite"], indirect=True)
def test_add_delete_and_their_audit_entries(web) -> None:
    from zonda.operations.audit import list_entries

    op = web.logged_in("Op")
    assert _add(web, op).status_code == 303
    taken = _add(web, op)
    assert taken.status_code == 400 and "already exists" in taken.text and PASSWORD not in taken.text
    bad_id = _add(web, op, conn_id="has space")
    assert bad_id.status_code == 400
    assert post(web, op, "/connections/warehouse/edit", {"conn_type": "postgres"}).status_code == 303
    assert post(web, op, "/connections/warehouse/delete").status_code == 303
    assert post(web, op, "/connections/warehouse/delete").status_code == 404
    assert op.get("/connections/warehouse/edit").status_code == 404
    actions = [e.action for e in list_entries(web.engine) if e.target == "warehouse"]
    assert actions == ["connection.delete", "connection.edit", "connection.create"]
    assert all(PASSWORD not in str(e.details) for e in list_entries(web.engine))


@pytest.mark.parametrize("web_db_url", ["sqlite"], indirect=True)
def test_testing_a_connection_reports_the_hook_answer_or_why_it_is_off(web, make_web_app) -> None:
    op = web.logged_in("Op")
    _add(web, op, host="127.0.0.1", port="1")
    off = post(web, op, "/connections/warehouse/test")
    assert off.status_code == 303
    assert "testing connections is disabled" in op.get("/connections").text
    enabled = make_web_app({("core", "test_connection"): "enabled"})
    op2 = enabled.logged_in("Op")
    assert post(enabled, op2, "/connections/warehouse/test").status_code == 303
    page = op2.get("/connections").text
    assert "Connection warehouse failed" in page and PASSWORD not in page


@pytest.mark.parametrize("web_db_url", ["sqlite"], indirect=True)
def test_viewer_and_user_neither_see_nor_change_connections(web) -> None:
    _add(web, web.logged_in("Op"))
    for role in ("Viewer", "User"):
        client = web.logged_in(role)
        assert client.get("/connections").status_code == 403
        assert client.get("/connections/warehouse/edit").status_code == 403
        assert post(web, client, "/connections/warehouse/delete").status_code == 403
    assert _stored(web, "warehouse").host == "db.internal"


@pytest.mark.parametrize("web_db_url", ["sqlite"], indirect=True)
def test_injection_in_a_connection_description_and_extra_shows_as_text(web) -> None:
    payload = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    op = web.logged_in("Op")
    assert _add(web, op, description=payload, host=payload, extra=json.dumps({"note": payload})).status_code == 303
    for path in ("/connections", "/connections/warehouse/edit"):
        html = op.get(path).text
        assert "<script>alert(1)" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
