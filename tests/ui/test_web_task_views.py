"""The Gantt view of a run, the task instance page and its logs, and clear / mark with a preview."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from task_views_seed import RUN_ID, add_xcom, at, seed_gantt_run

from zonda.metastore import tables as t
from zonda.operations.gantt import critical_path

BASE = f"/dags/gantt/runs/{RUN_ID}"
STATIC = Path(__file__).resolve().parents[2] / "core/src/zonda/web/static/js"


def _bars(data: dict[str, Any], task_id: str) -> list[tuple[int, str, float, float | None]]:
    row = next(r for r in data["rows"] if r["task_id"] == task_id)
    t0 = at(0)
    out = []
    for attempt in row["tries"]:
        for bar in attempt["bars"]:
            from datetime import datetime

            start = (datetime.fromisoformat(bar["start"]) - t0).total_seconds()
            end = None if bar["end"] is None else (datetime.fromisoformat(bar["end"]) - t0).total_seconds()
            out.append((attempt["try_number"], bar["kind"], start, end))
    return out


@pytest.mark.database_dependent
def test_gantt_json_has_every_try_with_queued_running_and_deferred_bars(web) -> None:
    seed_gantt_run(web.engine)
    data = web.logged_in("Viewer").get(f"{BASE}/gantt.json").get_json()
    assert [r["task_id"] for r in data["rows"]] == ["a", "b", "c", "d"]
    assert _bars(data, "b") == [
        (1, "queued", 10, 11),
        (1, "running", 11, 20),
        (2, "queued", 25, 26),
        (2, "running", 26, 40),
    ]
    assert _bars(data, "c") == [
        (1, "queued", 40, 41),
        (1, "running", 41, 45),
        (1, "deferred", 45, 60),
        (1, "queued", 60, 61),
        (1, "running", 61, 70),
    ]
    b = next(r for r in data["rows"] if r["task_id"] == "b")
    assert [a["state"] for a in b["tries"]] == ["up_for_retry", "success"]
    assert data["critical_path"] == ["a", "b", "c"]
    assert {r["task_id"]: r["critical"] for r in data["rows"]} == {"a": True, "b": True, "c": True, "d": False}


def test_a_deferral_under_way_is_an_open_bar(web) -> None:
    seed_gantt_run(web.engine, c_state="deferred")
    data = web.logged_in("Viewer").get(f"{BASE}/gantt.json").get_json()
    assert _bars(data, "c")[-1] == (1, "deferred", 45, None)


def test_the_critical_path_follows_the_latest_upstream_end() -> None:
    from datetime import datetime, timedelta

    t0 = datetime(2026, 1, 1)
    upstream = {"extract": [], "a": ["extract"], "b": ["extract"], "join": ["a", "b"], "side": []}
    ends = {
        name: t0 + timedelta(seconds=s) for name, s in {"extract": 5, "a": 9, "b": 30, "join": 40, "side": 12}.items()
    }
    assert critical_path(upstream, ends) == ["extract", "b", "join"]
    assert critical_path(upstream, {}) == []


def test_the_run_page_loads_its_chart_from_a_script_file(web) -> None:
    seed_gantt_run(web.engine)
    page = web.logged_in("Viewer").get(BASE)
    assert page.status_code == 200
    assert '<script src="/static/js/gantt.js" defer></script>' in page.text
    assert f'data-source="/dags/gantt/runs/{RUN_ID}/gantt.json"' in page.text
    assert "<script>" not in page.text
    assert web.logged_in("Viewer").get("/dags/gantt/runs/nope/gantt.json").status_code == 404


@pytest.mark.database_dependent
def test_transitions_write_a_history_row_per_ended_phase(web) -> None:
    from zonda.operations import transitions
    from zonda.timezone import utcnow

    run_id = seed_gantt_run(web.engine, c_state="deferred")
    with web.engine.begin() as conn:
        ti = t.task_instance
        conn.execute(ti.update().where(ti.c.task_id == "c").values(state="queued", next_method="execute_complete"))
        assert transitions.start_ti(conn, run_id, "c", -1, {"pid": 4242}, try_number=1) == 1
        assert transitions.finish_ti(conn, run_id, "c", -1, transitions.TIS.SUCCESS, {"end_date": utcnow()}, pid=4242)
        rows = conn.execute(
            select(t.task_instance_history.c.state, t.task_instance_history.c.running_since)
            .where(t.task_instance_history.c.task_id == "c")
            .order_by(t.task_instance_history.c.id)
        ).all()
    assert [r.state for r in rows] == ["deferred", "success"]
    assert rows[-1].running_since > at(45)


# --- the task instance page -----------------------------------------------------------------------------------


def _write_log(web, task_id: str, try_number: int, lines: list[str]) -> Path:
    from zonda.runner.logs import attempt_log_path

    path = attempt_log_path(web.settings.log_folder, "gantt", RUN_ID, task_id, -1, try_number)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_task_page_shows_tries_xcoms_rendered_fields_and_why_as_text(web) -> None:
    run_id = seed_gantt_run(web.engine)
    payload = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    add_xcom(web.engine, run_id, "b", {"html": payload})
    with web.engine.begin() as conn:
        ti = t.task_instance
        conn.execute(
            ti.update().where(ti.c.task_id == "b").values(rendered_fields=json.dumps({"bash_command": payload}))
        )
    page = web.logged_in("Viewer").get(f"{BASE}/tasks/b")
    assert page.status_code == 200
    assert payload not in page.text and "onerror=&#34;alert(2)&#34;" in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert page.text.count('class="log-tab"') == 2
    assert "Why isn't it running?" in page.text
    assert 'data-action="clear"' not in page.text  # a Viewer gets no forms
    assert 'data-action="clear"' in web.logged_in("User").get(f"{BASE}/tasks/b").text
    assert web.logged_in("Viewer").get(f"{BASE}/tasks/b?map_index=x").status_code == 400
    assert web.logged_in("Viewer").get(f"{BASE}/tasks/zzz").status_code == 404


def test_the_log_opens_at_the_end_pages_searches_and_downloads_masked(web) -> None:
    from zonda.masking import mask_secret

    seed_gantt_run(web.engine)
    secret = "s3cr3t-webtoken-91"
    mask_secret(secret)
    lines = [f"line {n}" for n in range(1200)]
    lines[7] = f"password is {secret}"
    lines[1100] = "\x1b[31m<script>alert(1)</script>\x1b[0m needle"
    _write_log(web, "b", 2, lines)
    client = web.logged_in("Viewer")
    last = client.get(f"{BASE}/tasks/b/logs/2?count=100").get_json()
    assert (last["total"], last["start"], last["lines"][-1]) == (1200, 1100, "line 1199")
    assert last["lines"][0] == lines[1100]  # sent as JSON data: the page sets it as text
    first = client.get(f"{BASE}/tasks/b/logs/2?start=0&count=10").get_json()
    assert first["lines"][7] == "password is ***"
    hits = client.get(f"{BASE}/tasks/b/logs/2?q=NEEDLE&count=1").get_json()["hits"]
    assert hits == [1100]
    assert client.get(f"{BASE}/tasks/b/logs/2?q={secret}").get_json()["hits"] == []
    download = client.get(f"{BASE}/tasks/b/logs/2/download")
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert download.mimetype == "text/plain"
    assert secret not in download.text and download.text.count("\n") == 1200
    assert client.get(f"{BASE}/tasks/b/logs/3").status_code == 400  # b had 2 tries
    assert client.get(f"{BASE}/tasks/b/logs/2?start=abc").status_code == 400
    # No file for try 1: the page's fetch gets "no log yet" (no console error), never the server's log folder.
    missing = client.get(f"{BASE}/tasks/b/logs/1", headers={"Accept": "application/json"}).get_json()
    assert missing["total"] == 0 and missing["lines"] == [] and "no log for gantt.b" in missing["missing"]
    assert str(web.settings.log_folder) not in missing["missing"] and "does not exist" in missing["missing"]
    gone = client.get(f"{BASE}/tasks/b/logs/1/download")
    assert gone.status_code == 404 and "does not exist" in gone.text and str(web.settings.log_folder) not in gone.text
    assert str(web.settings.log_folder) not in json.dumps(last) and last["source"].startswith("local file ")
    assert last["missing"] is None


def test_ansi_codes_become_classes_and_markup_stays_text() -> None:
    script = (
        "global.window = {}; require(process.argv[1]);"
        "const out = window.zondaAnsi.parse(process.argv[2]);"
        "console.log(JSON.stringify(out));"
    )
    line = "\x1b[1;31mred <img src=x onerror=alert(1)>\x1b[0m plain \x1b[2Kcleared\x07"
    result = subprocess.run(
        ["node", "-e", script, str(STATIC / "ansi.js"), line], capture_output=True, text=True, check=True
    )
    segments = json.loads(result.stdout)
    assert segments == [
        {"text": "red <img src=x onerror=alert(1)>", "classes": ["ansi-fg-31", "ansi-bold"]},
        {"text": " plain ", "classes": []},
        {"text": "cleared", "classes": []},
    ]
    assert ".innerHTML" not in (STATIC / "ansi.js").read_text() + (STATIC / "task_log.js").read_text()


# --- clear and mark -----------------------------------------------------------------------------------------


def _states(web) -> dict[str, str | None]:
    ti = t.task_instance
    with web.engine.connect() as conn:
        return {r.task_id: r.state for r in conn.execute(select(ti.c.task_id, ti.c.state))}


def _audit(web) -> list[tuple[str, str]]:
    a = t.audit_log
    with web.engine.connect() as conn:
        return [(r.action, r.details) for r in conn.execute(select(a.c.action, a.c.details).order_by(a.c.id))]


@pytest.mark.database_dependent
def test_clear_previews_then_confirms_exactly_what_it_showed(web) -> None:
    seed_gantt_run(web.engine)
    client = web.logged_in("User")
    token = web.token(client)
    form = {"csrf_token": token, "task_id": "b", "run_id": RUN_ID, "downstream": "true"}
    before = _states(web)
    preview = client.post("/dags/gantt/task_instances/clear", data=form).get_json()
    assert preview["dry_run"] is True
    assert sorted(i["task_id"] for i in preview["instances"]) == ["b", "c"]
    assert _states(web) == before
    assert not [a for a, _ in _audit(web) if a.startswith("task_instances")]
    done = client.post("/dags/gantt/task_instances/clear", data={**form, "confirm": "true"}).get_json()
    assert (done["dry_run"], done["changed"]) == (False, 2)
    after = _states(web)
    assert (after["b"], after["c"], after["a"], after["d"]) == (None, None, "success", "success")
    action, details = _audit(web)[-1]
    assert action == "task_instances.clear" and json.loads(details)["task_ids"] == ["b", "c"]


@pytest.mark.database_dependent
def test_mark_failed_with_upstream_and_bulk_shapes(web) -> None:
    seed_gantt_run(web.engine)
    client = web.logged_in("User")
    token = web.token(client)
    whole_run = {"csrf_token": token, "run_id": RUN_ID, "state": "failed"}
    preview = client.post("/dags/gantt/task_instances/mark", data=whole_run).get_json()
    assert sorted(i["task_id"] for i in preview["instances"]) == ["a", "b", "c", "d"]
    upstream = {"csrf_token": token, "task_id": "c", "upstream": "true", "state": "failed", "confirm": "true"}
    done = client.post("/dags/gantt/task_instances/mark", data=upstream).get_json()
    assert done["changed"] == 3
    assert _states(web) == {"a": "failed", "b": "failed", "c": "failed", "d": "success"}
    assert _audit(web)[-1][0] == "task_instances.mark"


def test_bad_forms_are_one_line_400s_and_need_a_csrf_token(web) -> None:
    seed_gantt_run(web.engine)
    client = web.logged_in("User")
    token = web.token(client)
    cases = [
        ("mark", {"state": "running"}, "state must be success or failed"),
        ("mark", {"state": "success", "only_failed": "true"}, "only_failed applies to clear"),
        ("clear", {"task_id": "nope"}, "has no task 'nope'"),
        ("clear", {"upstream": "maybe"}, "upstream must be true or false"),
        ("clear", {"map_index": "x"}, "map_index must be a whole number"),
    ]
    for action, form, message in cases:
        response = client.post(f"/dags/gantt/task_instances/{action}", data={**form, "csrf_token": token})
        assert response.status_code == 400, (form, response.text)
        assert message in response.get_json()["detail"]
    assert client.post("/dags/gantt/task_instances/clear", data={"task_id": "b"}).status_code == 400
    assert client.post("/dags/nope/task_instances/clear", data={"csrf_token": token}).status_code == 404


# --- the live log stream, on the real server ---------------------------------------------------------------


def _read_event(response: Any) -> tuple[str | None, str, str]:
    """(id, event name, data) of the next event (comments skipped)."""
    event_id, name, data = None, "message", []
    for _ in range(10_000):
        line = response.readline().decode("utf-8")
        if line == "":
            raise AssertionError("the stream closed")
        line = line.rstrip("\n")
        if not line:
            if data:
                return event_id, name, "\n".join(data)
            continue
        if line.startswith(":") or line.startswith("retry:"):
            continue
        field, _, value = line.partition(": ")
        if field == "id":
            event_id = value
        elif field == "event":
            name = value
        elif field == "data":
            data.append(value)
    raise AssertionError("no event")


def test_the_stream_follows_a_running_try_resumes_from_an_id_and_ends_with_the_try(web, serve) -> None:
    import http.client
    from urllib.parse import urlsplit

    from sqlalchemy import update

    seed_gantt_run(web.engine, c_state="running")
    path = _write_log(web, "c", 1, ["first", "second <b>bold</b>"])
    server = serve(web.app)
    host = urlsplit(server.url)
    client = web.logged_in("Viewer")
    cookie = "; ".join(f"{c.key}={c.value}" for c in client._cookies.values())
    stream = f"{BASE}/tasks/c/logs/1/stream"

    def connect(headers: dict[str, str], query: str = "") -> Any:
        connection = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
        connection.request("GET", stream + query, headers={"Cookie": cookie, **headers})
        response = connection.getresponse()
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/event-stream")
        return connection, response

    connection, response = connect({}, "?line=1")
    assert _read_event(response) == ("2", "message", json.dumps(["second <b>bold</b>"]))
    with path.open("a", encoding="utf-8") as handle:
        handle.write("third, written live\n")
    assert _read_event(response) == ("3", "message", json.dumps(["third, written live"]))
    connection.close()

    connection, response = connect({"Last-Event-ID": "2"})
    assert _read_event(response)[0:2] == ("3", "message")
    with web.engine.begin() as conn:
        ti = t.task_instance
        conn.execute(update(ti).where(ti.c.task_id == "c").values(state="success", end_date=at(90)))
    with path.open("a", encoding="utf-8") as handle:
        handle.write("last words\n")
    events = [_read_event(response) for _ in range(2)]
    assert events[0] == ("4", "message", json.dumps(["last words"]))
    assert events[1][1] == "end"
    connection.close()
