"""/health without login, the DAGs page (data shown as text, never markup), and the web package's boundaries:
no SQL of its own, nothing of Flask imported by ``import zonda``."""

from __future__ import annotations

import ast
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update
from web_marks import SQLITE_ONLY

import zonda.web
from zonda.metastore import tables as t
from zonda.scheduler import jobs
from zonda.timezone import utcnow

WEB_DIR = Path(zonda.web.__file__).parent


def _insert_dag(engine: Any, dag_id: str, **values: Any) -> None:
    with engine.begin() as conn:
        row = {"dag_id": dag_id, "is_paused": False, "is_active": True, "fileloc": "/x.py", **values}
        conn.execute(t.dag.insert().values(**row))


# --- /health ----------------------------------------------------------------------------------------------------


def test_health_answers_without_login(web) -> None:
    response = web.client().get("/health")
    assert response.status_code == 200
    assert response.json == {
        "metastore": {"status": "healthy"},
        "scheduler": {"status": "unhealthy", "latest_scheduler_heartbeat": None},
        "triggerer": {"status": "unhealthy", "latest_triggerer_heartbeat": None},
    }
    assert "zonda_session" not in response.headers.get("Set-Cookie", "")


def test_health_follows_the_heartbeats(web) -> None:
    scheduler = jobs.start_job(web.engine, "scheduler", "LocalExecutor")
    triggerer = jobs.start_job(web.engine, "triggerer")
    body = web.client().get("/health").json
    assert body["scheduler"]["status"] == "healthy" and body["triggerer"]["status"] == "healthy"
    assert body["scheduler"]["latest_scheduler_heartbeat"] is not None
    stale = utcnow() - timedelta(seconds=31)  # [scheduler] scheduler_heartbeat_timeout is 30 s
    with web.engine.begin() as conn:
        conn.execute(update(t.job).where(t.job.c.id == scheduler).values(latest_heartbeat=stale))
    body = web.client().get("/health").json
    assert body["scheduler"]["status"] == "unhealthy" and body["triggerer"]["status"] == "healthy"
    jobs.end_job(web.engine, triggerer)
    assert web.client().get("/health").json["triggerer"]["status"] == "unhealthy"


@SQLITE_ONLY
def test_health_says_unhealthy_when_the_metastore_is_gone(make_web_app, tmp_path: Path) -> None:
    from zonda.metastore.engine import make_engine

    web = make_web_app(users=False)
    broken = make_engine("postgresql://postgres@127.0.0.1:1/nothing", pool_size=1)  # nothing listens on port 1
    web.app.extensions["zonda"] = web.app.extensions["zonda"].__class__(web.settings, broken, web.clock)
    response = web.client().get("/health")
    assert response.status_code == 200
    assert {name: part["status"] for name, part in response.json.items()} == {
        "metastore": "unhealthy",
        "scheduler": "unhealthy",
        "triggerer": "unhealthy",
    }


# --- the DAGs page --------------------------------------------------------------------------------------------


def test_the_dags_page_lists_id_paused_schedule_and_next_run(web) -> None:
    when = utcnow().replace(microsecond=0)
    _insert_dag(web.engine, "daily_etl", timetable_description="At 00:00", next_dagrun=when, description="Loads")
    _insert_dag(web.engine, "manual_one", is_paused=True)
    page = web.logged_in("Viewer").get("/dags").text
    assert "daily_etl" in page and "At 00:00" in page and when.isoformat() in page and "Loads" in page
    assert "manual_one" in page and "paused" in page
    assert 'action="/dags/daily_etl/paused"' not in page  # a Viewer sees no pause button
    page = web.logged_in("User").get("/dags").text
    assert 'action="/dags/daily_etl/paused"' in page and 'name="csrf_token"' in page


def test_markup_in_a_dag_id_or_description_shows_as_text(web) -> None:
    _insert_dag(web.engine, "<script>alert(1)</script>", description='<img src=x onerror="alert(2)">')
    _insert_dag(web.engine, "ok", description="</div><script>alert(3)</script>", timetable_description="<b>x</b>")
    page = web.logged_in("Admin").get("/dags").text
    assert "<script>" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in page
    assert "&lt;/div&gt;&lt;script&gt;alert(3)&lt;/script&gt;" in page
    assert 'action="/dags/%3Cscript%3Ealert%281%29%3C/script%3E/paused"' in page


@SQLITE_ONLY
def test_the_pause_form_pauses_and_unpauses(web) -> None:
    from zonda.operations.dags import is_paused

    _insert_dag(web.engine, "toggled")
    client = web.logged_in("User")
    client.post("/dags/toggled/paused", data={"paused": "true", "csrf_token": web.token(client)})
    assert is_paused(web.engine, "toggled") is True
    page = client.get("/dags").text
    assert 'name="paused" value="false"' in page  # the button now unpauses
    response = client.post("/dags/nothing/paused", data={"paused": "true", "csrf_token": web.token(client)})
    assert response.status_code == 404
    response = client.post("/dags/toggled/paused", data={"paused": "maybe", "csrf_token": web.token(client)})
    assert response.status_code == 400 and is_paused(web.engine, "toggled") is True


def test_templates_mark_nothing_safe() -> None:
    for template in (WEB_DIR / "templates").glob("*.html"):
        text = template.read_text()
        assert "|safe" not in text.replace(" ", "") and "autoescape false" not in text, template.name
        assert "Markup(" not in text


# --- boundaries -----------------------------------------------------------------------------------------------


def test_the_web_package_holds_no_sql() -> None:
    """Views and extensions go through zonda.operations: no SQLAlchemy, no tables, no .execute()."""
    found = []
    for path in sorted(WEB_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            found += [
                f"{path.name}:{node.lineno} {n}"
                for n in names
                if n.startswith(("sqlalchemy", "zonda.metastore.tables"))
            ]
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "execute":
                found.append(f"{path.name}:{node.lineno} .execute()")
    assert found == []


def test_import_zonda_and_the_cli_import_no_flask() -> None:
    code = (
        "import sys, zonda, zonda.web, zonda.cli; zonda.cli.build_parser(); "
        "print([m for m in ('flask', 'werkzeug', 'waitress', 'argon2') if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
