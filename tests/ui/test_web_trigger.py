"""The trigger form: fields built from the DAG's params, checked on the server before a run is created."""

from __future__ import annotations

import json
from typing import Any

import pytest
from admin_helpers import post, store_params_dag
from sqlalchemy import select

from zonda.metastore import tables as t

pytestmark = pytest.mark.parametrize("web_db_url", ["sqlite"], indirect=True)

GOOD = {
    "param.count": "5",
    "param.ratio": "0.25",
    "param.mode": '"slow"',
    "param.dry_run": "true",
    "param.tags": '["x", "y"]',
    "param.target": "s3",
    "conf": '{"extra_key": 1}',
}


def _runs(engine: Any, dag_id: str = "params_dag") -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(select(t.dag_run).where(t.dag_run.c.dag_id == dag_id)).all()


def test_the_form_shows_each_param_with_its_widget_default_and_description(web) -> None:
    store_params_dag(web)
    page = web.logged_in("User").get("/dags/params_dag/trigger")
    assert page.status_code == 200
    html = page.text
    assert 'name="param.count" value="3"' in html and "minimum 1" in html and "How many rows" in html
    assert '<select id="param-3" name="param.mode">' in html and "&#34;slow&#34;" in html
    assert 'type="checkbox"' in html and 'name="param.dry_run"' in html
    assert '<textarea id="param-5" name="param.tags"' in html and "[&#34;a&#34;]" in html
    assert "(required)" in html  # target has no default


def test_a_valid_form_creates_the_run_audits_it_and_goes_to_the_dag(web) -> None:
    from zonda import serde
    from zonda.operations.audit import list_entries

    store_params_dag(web)
    response = post(web, web.logged_in("User"), "/dags/params_dag/trigger", {**GOOD, "run_id": "from_form"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/dags/params_dag"
    (run,) = _runs(web.engine)
    assert run.run_id == "from_form"
    conf = serde.loads(run.conf)
    assert conf == {
        "extra_key": 1,
        "count": 5,
        "ratio": 0.25,
        "mode": "slow",
        "dry_run": True,
        "tags": ["x", "y"],
        "target": "s3",
    }
    (entry,) = list_entries(web.engine, action="dag_run.trigger")
    assert (entry.username, entry.target, entry.details["run_id"]) == ("user", "params_dag", "from_form")


@pytest.mark.parametrize(
    ("field", "text", "error"),
    [
        ("param.count", "0", "must be &gt;= 1"),
        ("param.count", "many", "is not a whole number"),
        ("param.mode", '"medium"', "must be one of"),
        ("param.tags", "[1,", "not valid JSON"),
        ("param.target", "", "is required"),
        ("param.target", "x", "at least 2 characters"),
        ("conf", "[1, 2]", "must be a JSON object"),
        ("conf", "{oops", "not valid JSON"),
    ],
)
def test_a_bad_field_gets_a_one_line_error_beside_it_and_no_run(web, field: str, text: str, error: str) -> None:
    store_params_dag(web)
    response = post(web, web.logged_in("User"), "/dags/params_dag/trigger", {**GOOD, field: text})
    assert response.status_code == 400
    assert error in response.text
    assert response.text.count('class="field-error"') == 1
    assert _runs(web.engine) == []


def test_a_taken_run_id_is_an_error_on_the_run_id_field(web) -> None:
    store_params_dag(web)
    client = web.logged_in("User")
    assert post(web, client, "/dags/params_dag/trigger", {**GOOD, "run_id": "same"}).status_code == 303
    again = post(web, client, "/dags/params_dag/trigger", {**GOOD, "run_id": "same"})
    assert again.status_code == 400 and "already has a run" in again.text
    bad = post(web, client, "/dags/params_dag/trigger", {**GOOD, "run_id": "no spaces allowed"})
    assert bad.status_code == 400
    assert len(_runs(web.engine)) == 1


def test_recent_confs_are_listed_once_each_and_reused_in_one_click(web) -> None:
    store_params_dag(web)
    client = web.logged_in("User")
    for count in ("7", "7", "9"):
        assert post(web, client, "/dags/params_dag/trigger", {**GOOD, "param.count": count}).status_code == 303
    page = client.get("/dags/params_dag/trigger").text
    assert page.count("?reuse=") == 2  # two distinct confs
    assert page.index("&#34;count&#34;: 9") < page.index("&#34;count&#34;: 7")  # newest first
    reused = client.get("/dags/params_dag/trigger?reuse=1").text
    assert 'name="param.count" value="7"' in reused
    assert "extra_key" in reused.split('id="conf"')[1].split("</textarea>")[0]


def test_an_unknown_dag_is_404_naming_it(web) -> None:
    response = web.logged_in("User").get("/dags/nope/trigger")
    assert response.status_code == 404 and "no DAG &#39;nope&#39;" in response.text


def test_injection_in_a_param_description_and_a_conf_value_shows_as_text(web) -> None:
    payload = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    store_params_dag(web, description=payload)
    client = web.logged_in("User")
    assert post(web, client, "/dags/params_dag/trigger", {**GOOD, "param.target": payload}).status_code == 303
    page = client.get("/dags/params_dag/trigger")
    assert "<script>alert(1)" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text  # the description, as text
    assert page.text.count("&lt;img src=x onerror=alert(2)&gt;") >= 2  # and in the recent conf
    reused = client.get("/dags/params_dag/trigger?reuse=0").text
    assert "<script>" not in reused and "&lt;script&gt;" in reused


def test_viewer_cannot_trigger(web) -> None:
    store_params_dag(web)
    viewer = web.logged_in("Viewer")
    assert viewer.get("/dags/params_dag/trigger").status_code == 403
    assert post(web, viewer, "/dags/params_dag/trigger", GOOD).status_code == 403
    assert _runs(web.engine) == []


def test_the_form_needs_the_csrf_token(web) -> None:
    store_params_dag(web)
    response = web.logged_in("User").post("/dags/params_dag/trigger", data=GOOD)
    assert response.status_code == 400 and "CSRF" in response.text
    assert _runs(web.engine) == []


def test_the_stored_conf_matches_what_trigger_form_parses(web) -> None:
    """The operation alone: booleans unchecked are false, empty fields keep the default."""
    from zonda.operations.trigger_form import read_trigger_request

    store_params_dag(web)
    wanted = read_trigger_request(web.engine, "params_dag", {"param.target": "db", "param.count": ""})
    assert wanted.errors == {}
    assert wanted.conf == {"dry_run": False, "target": "db"}
    assert json.dumps(wanted.conf)
