"""Variables, pools, providers, plugins, the audit log and users: each page for its roles, each change audited."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from admin_helpers import post

from zonda.operations.audit import list_entries

pytestmark = pytest.mark.parametrize("web_db_url", ["sqlite"], indirect=True)

SECRET = "s3cr3t-variable-value"


def _actions(web: Any, target: str | None = None) -> list[str]:
    return [e.action for e in list_entries(web.engine) if target is None or e.target == target]


# --- variables ------------------------------------------------------------------------------------------------


def test_variables_add_edit_delete_with_masked_sensitive_values(web) -> None:
    from zonda.operations.variables import get_variable

    op = web.logged_in("Op")
    assert post(web, op, "/variables", {"key": "bucket", "value": "my-bucket", "description": "d"}).status_code == 303
    assert post(web, op, "/variables", {"key": "api_password", "value": SECRET}).status_code == 303
    listing = op.get("/variables").text
    assert "my-bucket" in listing and SECRET not in listing and "***" in listing
    edit = op.get("/variables/api_password/edit").text
    assert SECRET not in edit and "leave empty to keep it" in edit
    kept = post(web, op, "/variables", {"key": "api_password", "value": "", "keep_value": "true", "description": "x"})
    assert kept.status_code == 303
    assert get_variable(web.settings, "api_password", metastore=web.store) == SECRET
    assert "my-bucket" in op.get("/variables/bucket/edit").text
    assert post(web, op, "/variables/bucket/delete").status_code == 303
    assert post(web, op, "/variables/bucket/delete").status_code == 404
    assert post(web, op, "/variables", {"key": "bad key!", "value": "v"}).status_code == 400
    assert _actions(web, "bucket") == ["variable.delete", "variable.create"]
    assert _actions(web, "api_password") == ["variable.edit", "variable.create"]
    assert all(SECRET not in json.dumps(e.details) for e in list_entries(web.engine))


def test_variables_import_and_export_leave_sensitive_values_out_of_the_download(web) -> None:
    op = web.logged_in("Op")
    document = json.dumps({"region": "eu", "limits": {"a": 1}, "db_secret": SECRET}).encode()
    response = post(
        web,
        op,
        "/variables/import",
        {"file": (io.BytesIO(document), "vars.json"), "existing": "overwrite"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 303
    assert "Imported vars.json: 3 added" in op.get("/variables").text
    export = op.get("/variables/export")
    assert export.status_code == 200 and export.headers["X-Zonda-Left-Out"] == "1"
    assert json.loads(export.text) == {"limits": {"a": 1}, "region": "eu"}
    bad = post(
        web, op, "/variables/import", {"file": (io.BytesIO(b"[1]"), "bad.json")}, content_type="multipart/form-data"
    )
    assert bad.status_code == 303 and "Nothing was imported" in op.get("/variables").text
    assert "variable.import" in _actions(web) and "variable.export" in _actions(web)


def test_injection_in_a_variable_value_shows_as_text(web) -> None:
    op = web.logged_in("Op")
    payload = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    post(web, op, "/variables", {"key": "evil", "value": payload, "description": payload})
    for path in ("/variables", "/variables/evil/edit"):
        html = op.get(path).text
        assert "<script>alert" not in html and "<img src=x" not in html and "&lt;script&gt;" in html


def test_viewer_and_user_cannot_see_or_change_variables(web) -> None:
    for role in ("Viewer", "User"):
        client = web.logged_in(role)
        assert client.get("/variables").status_code == 403
        assert client.get("/variables/export").status_code == 403
        assert post(web, client, "/variables", {"key": "k", "value": "v"}).status_code == 403
    assert web.logged_in("Op").get("/variables").status_code == 200


# --- pools ----------------------------------------------------------------------------------------------------


def test_pools_show_slot_usage_and_are_set_and_deleted(web) -> None:
    from datetime import UTC, datetime

    from zonda.metastore import tables as t

    op = web.logged_in("Op")
    assert post(web, op, "/pools", {"name": "api", "slots": "4", "description": "calls"}).status_code == 303
    with web.engine.begin() as conn:
        run = conn.execute(
            t.dag_run.insert().values(
                dag_id="d",
                run_id="r",
                state="running",
                run_type="manual",
                logical_date=datetime(2024, 1, 1, tzinfo=UTC),
            )
        ).inserted_primary_key[0]
        for task_id, state in (("a", "running"), ("b", "queued"), ("c", "queued")):
            conn.execute(
                t.task_instance.insert().values(
                    dag_run_id=run,
                    dag_id="d",
                    run_id="r",
                    task_id=task_id,
                    map_index=-1,
                    state=state,
                    pool="api",
                    pool_slots=1,
                )
            )
    html = op.get("/pools").text
    row = html.split("<td>api</td>")[1].split("</tr>")[0]
    assert "<td>4</td>\n    <td>1</td>\n    <td>2</td>\n    <td>1</td>" in row  # slots, running, queued, open
    assert post(web, op, "/pools", {"name": "api", "slots": "many"}).status_code == 400
    assert post(web, op, "/pools", {"name": "api", "slots": "-1"}).status_code == 400
    assert post(web, op, "/pools/default_pool/delete").status_code == 409
    assert post(web, op, "/pools/api/delete").status_code == 303
    assert _actions(web, "api") == ["pool.delete", "pool.create"]
    assert web.logged_in("Viewer").get("/pools").status_code == 403
    assert post(web, web.logged_in("User"), "/pools", {"name": "x", "slots": "1"}).status_code == 403


# --- providers and plugins ------------------------------------------------------------------------------------


def test_providers_page_lists_the_manifests_for_a_viewer(web) -> None:
    html = web.logged_in("Viewer").get("/providers").text
    assert "zonda-provider-postgres" in html and "Postgres (postgres)" in html


def test_plugins_page_shows_a_load_error_with_its_traceback_masked(web, make_web_app) -> None:
    from zonda.masking import get_masker

    folder = web.settings.plugins_folder
    folder.mkdir(parents=True, exist_ok=True)
    get_masker().add("plugin-secret-value")
    (folder / "broken_plugin.py").write_text(
        "TOKEN = 'plugin-secret-value'\nraise RuntimeError('cannot start with ' + TOKEN + ' <script>x</script>')\n"
    )
    app = make_web_app()
    html = app.logged_in("Viewer").get("/plugins").text
    assert "broken_plugin" in html and "RuntimeError: cannot start with ***" in html
    assert "plugin-secret-value" not in html and "&lt;script&gt;" in html and "<script>x" not in html
    assert 'href="#plugin-error-broken_plugin"' in html


# --- audit log ------------------------------------------------------------------------------------------------


def test_audit_log_is_paged_and_filtered(web) -> None:
    from zonda.operations.audit import record

    for n in range(60):
        record(web.engine, "someone", "thing.do", f"target-{n}", {"n": n})
    record(web.engine, "other", "thing.undo", "<script>alert(1)</script>", {"v": "<img src=x onerror=alert(2)>"})
    viewer = web.logged_in("Viewer")
    first = viewer.get("/audit-log").text
    assert first.count("<tr><td>") == 50 and "page=2" in first
    second = viewer.get("/audit-log?page=2").text
    total = len(list_entries(web.engine, limit=1000))  # ours, and the fixture's user creations and logins
    assert 50 < total <= 100
    assert second.count("<tr><td>") == total - 50 and "Newer" in second and "Older" not in second
    filtered = viewer.get("/audit-log?user=other").text
    assert filtered.count("<tr><td>") == 1
    assert "<script>alert" not in filtered and "&lt;script&gt;" in filtered and "<img src=x" not in filtered
    assert viewer.get("/audit-log?action=thing.do&page=2").text.count("<tr><td>") == 10
    assert viewer.get("/audit-log?page=abc").status_code == 200


# --- users ----------------------------------------------------------------------------------------------------


def test_admin_manages_users_and_each_change_is_audited_by_name(web) -> None:
    from zonda.operations.users import get_user, verify_password

    admin = web.logged_in("Admin")
    form = {"username": "carol", "role": "Op", "password": "long enough pw", "email": "c@example.org"}
    assert post(web, admin, "/users", form).status_code == 303
    assert post(web, admin, "/users", form).status_code == 409
    assert post(web, admin, "/users", {**form, "username": "dave", "password": "short"}).status_code == 400
    assert post(web, admin, "/users/carol/role", {"role": "Viewer"}).status_code == 303
    assert get_user(web.engine, "carol").role == "Viewer"
    assert post(web, admin, "/users/carol/password", {"password": "another long one"}).status_code == 303
    assert verify_password(web.engine, "carol", "another long one") is not None
    assert post(web, admin, "/users/admin/role", {"role": "Op"}).status_code == 409  # the last Admin
    assert post(web, admin, "/users/carol/delete").status_code == 303
    assert post(web, admin, "/users/carol/delete").status_code == 404
    entries = [(e.username, e.action) for e in list_entries(web.engine) if e.target == "carol"]
    assert entries == [("admin", a) for a in ("user.delete", "user.set_password", "user.set_role", "user.create")]
    html = admin.get("/users").text
    assert "carol" not in html and "viewer" in html


def test_only_admin_sees_users(web) -> None:
    for role in ("Viewer", "User", "Op"):
        client = web.logged_in(role)
        assert client.get("/users").status_code == 403
        assert post(web, client, "/users/viewer/delete").status_code == 403
        assert 'href="/users"' not in client.get("/dags").text
    assert 'href="/users"' in web.logged_in("Admin").get("/dags").text


def test_every_admin_post_needs_the_csrf_token_and_changes_nothing_without_it(web) -> None:
    from admin_helpers import store_admin_fixtures
    from test_web_authorization import ADMIN_ROWS

    store_admin_fixtures(web)
    admin = web.logged_in("Admin")
    before = len(list_entries(web.engine, limit=10_000))
    posts = [(path, form) for (method, _rule), (path, form, _ends, _expected) in ADMIN_ROWS.items() if method == "POST"]
    assert len(posts) == 14
    for path, form in posts:
        missing = admin.post(path, data=form)
        assert missing.status_code == 400 and "CSRF token is missing" in missing.text, path
        wrong = admin.post(path, data={**form, "csrf_token": "forged"})
        assert wrong.status_code == 403, path
    assert len(list_entries(web.engine, limit=10_000)) == before
    assert "table_conn_del" in admin.get("/connections").text and "table_var_del" in admin.get("/variables").text
