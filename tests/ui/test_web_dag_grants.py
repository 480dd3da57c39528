"""Per-DAG grants by tag or glob, in real SQL on SQLite and PostgreSQL: which DAGs a user sees, their role on each,
and how the web server applies them (the DAGs list, single-DAG routes, the DAGs page's live refresh)."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

import pytest
from api_token_helpers import store_dags
from sqlalchemy import func, insert, select

from zonda.exceptions import Conflict, OperationError
from zonda.metastore import tables as t
from zonda.operations.dag_grants import add_grant, dag_role, list_grants, remove_grant, visible_dags_clause
from zonda.operations.dags import list_dags
from zonda.operations.users import find_user_by_id, get_user

DAGS = {
    "fin_daily": ["finance"],
    "fin_hourly": [],
    "Fin_upper": [],
    "ops_backup": ["ops", "nightly"],
    "a_b": [],
    "aXb": [],
    "percent%x": [],
    "other": ["finance-ish"],
}


def _user(web, role: str):
    """The user as the web server loads it (with ``has_grants``)."""
    return find_user_by_id(web.engine, get_user(web.engine, web.users[role]).id)


def _visible(web, user) -> list[str]:
    return sorted(d.dag_id for d in list_dags(web.engine, recent=0, visible_to=user))


@pytest.fixture
def dags(web) -> None:
    store_dags(web.engine, DAGS)


@pytest.mark.database_dependent
def test_without_grants_every_dag_is_visible_with_the_users_role(web, dags) -> None:
    user = _user(web, "Op")
    assert not user.has_grants
    assert _visible(web, user) == sorted(DAGS)
    assert dag_role(web.engine, user, "fin_daily") == "Op"


@pytest.mark.database_dependent
def test_glob_grants_are_case_sensitive_and_treat_like_wildcards_literally(web, dags) -> None:
    add_grant(web.engine, "viewer", "glob", "fin_*", actor="(test)")
    add_grant(web.engine, "viewer", "glob", "a_b", actor="(test)")
    add_grant(web.engine, "viewer", "glob", "percent%?", actor="(test)")
    user = _user(web, "Viewer")
    assert user.has_grants
    assert _visible(web, user) == ["a_b", "fin_daily", "fin_hourly", "percent%x"]


@pytest.mark.database_dependent
def test_tag_grants_match_exact_tags(web, dags) -> None:
    add_grant(web.engine, "viewer", "tag", "finance", actor="(test)")
    add_grant(web.engine, "viewer", "tag", "nightly", actor="(test)")
    assert _visible(web, _user(web, "Viewer")) == ["fin_daily", "ops_backup"]


@pytest.mark.database_dependent
def test_the_clause_filters_any_table_with_a_dag_id_column_in_one_statement(web, dags) -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    with web.engine.begin() as conn:
        for dag_id in DAGS:
            conn.execute(
                insert(t.dag_run).values(
                    dag_id=dag_id, run_id="r1", run_type="manual", state="success", logical_date=now
                )
            )
    add_grant(web.engine, "viewer", "tag", "ops", actor="(test)")
    add_grant(web.engine, "viewer", "glob", "*_hourly", actor="(test)")
    user = _user(web, "Viewer")
    dr = t.dag_run
    query = select(dr.c.dag_id).where(visible_dags_clause(user, dr.c.dag_id)).order_by(dr.c.dag_id)
    with web.engine.connect() as conn:
        assert sorted(conn.execute(query).scalars()) == ["fin_hourly", "ops_backup"]
        total = conn.execute(select(func.count()).select_from(dr).where(visible_dags_clause(None, dr.c.dag_id)))
        assert total.scalar() == 0


@pytest.mark.database_dependent
def test_the_role_on_a_dag_is_the_best_matching_grant_never_above_the_users_own(web, dags) -> None:
    add_grant(web.engine, "op", "tag", "ops", role="Viewer", actor="(test)")
    add_grant(web.engine, "op", "glob", "ops_*", role="User", actor="(test)")
    add_grant(web.engine, "op", "glob", "fin_*", role="Admin", actor="(test)")
    user = _user(web, "Op")
    assert dag_role(web.engine, user, "ops_backup") == "User"
    assert dag_role(web.engine, user, "fin_daily") == "Op"
    assert dag_role(web.engine, user, "other") is None
    assert dag_role(web.engine, user, "no_such_dag") is None


def test_grant_input_is_validated_in_one_line(web) -> None:
    with pytest.raises(OperationError, match="unknown grant kind 'regex'"):
        add_grant(web.engine, "viewer", "regex", "x")
    with pytest.raises(OperationError, match="use only \\* and \\?"):
        add_grant(web.engine, "viewer", "glob", "fin_[ab]")
    with pytest.raises(OperationError, match="unknown role"):
        add_grant(web.engine, "viewer", "tag", "x", role="Boss")
    add_grant(web.engine, "viewer", "tag", "x", actor="(test)")
    with pytest.raises(Conflict, match="has a tag grant 'x' already"):
        add_grant(web.engine, "viewer", "tag", "x")


@pytest.mark.database_dependent
def test_removing_the_last_grant_restores_every_dag(web, dags) -> None:
    grant = add_grant(web.engine, "viewer", "tag", "ops", actor="(test)")
    assert _visible(web, _user(web, "Viewer")) == ["ops_backup"]
    remove_grant(web.engine, grant.id, actor="(test)")
    assert list_grants(web.engine, "viewer") == []
    assert _visible(web, _user(web, "Viewer")) == sorted(DAGS)


@pytest.mark.database_dependent
def test_the_dags_page_lists_only_the_granted_dags(web, dags) -> None:
    add_grant(web.engine, "viewer", "tag", "finance", actor="(test)")
    page = web.logged_in("Viewer").get("/dags").text
    assert "fin_daily" in page
    assert "fin_hourly" not in page and "ops_backup" not in page
    assert "ops_backup" in web.logged_in("User").get("/dags").text


@pytest.mark.database_dependent
def test_single_dag_routes_hide_ungranted_dags_and_apply_the_grants_role(web, dags) -> None:
    add_grant(web.engine, "user", "glob", "fin_*", role="Viewer", actor="(test)")
    add_grant(web.engine, "user", "tag", "ops", actor="(test)")
    client = web.logged_in("User")
    token = web.token(client)
    hidden = client.get("/dags/other/trigger")
    assert hidden.status_code == 404 and "among the DAGs you may see" in hidden.text
    lowered = client.post("/dags/fin_daily/paused", data={"paused": "true", "csrf_token": token})
    assert lowered.status_code == 403 and "(Viewer)" in lowered.text
    assert client.post("/dags/ops_backup/paused", data={"paused": "true", "csrf_token": token}).status_code == 303


@pytest.mark.database_dependent
def test_the_live_refresh_reports_no_runs_of_hidden_dags(web, dags) -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    with web.engine.begin() as conn:
        for dag_id in ("fin_daily", "other"):
            conn.execute(
                insert(t.dag_run).values(
                    dag_id=dag_id, run_id="r1", run_type="manual", state="failed", logical_date=now
                )
            )
    add_grant(web.engine, "viewer", "tag", "finance", actor="(test)")
    answer = web.logged_in("Viewer").get("/dags/recent-runs.json?dag_id=fin_daily&dag_id=other").get_json()
    assert answer == {"fin_daily": ["failed"], "other": []}


DAG_FILE = """
from datetime import datetime
from zonda import DAG
from zonda.operators import EmptyOperator

with DAG("tagged", start_date=datetime(2024, 1, 1), schedule=None, tags={tags!r}):
    EmptyOperator(task_id="only")
"""


@pytest.mark.database_dependent
def test_the_dag_processor_keeps_dag_tag_rows_equal_to_the_tags(web) -> None:
    from zonda.dag_processing import DagProcessor

    folder = web.settings.dags_folder
    folder.mkdir(parents=True, exist_ok=True)

    def parse(tags: list[str]) -> list[str]:
        (folder / "tagged.py").write_text(textwrap.dedent(DAG_FILE.format(tags=tags)), encoding="utf-8")
        with DagProcessor(web.settings, web.store) as processor:
            assert not processor.run_once(full=True).errors
        with web.engine.connect() as conn:
            return sorted(conn.execute(select(t.dag_tag.c.name).where(t.dag_tag.c.dag_id == "tagged")).scalars())

    assert parse(["finance", "daily"]) == ["daily", "finance"]
    assert parse(["ops"]) == ["ops"]
    add_grant(web.engine, "viewer", "tag", "ops", actor="(test)")
    assert _visible(web, _user(web, "Viewer")) == ["tagged"]


@pytest.mark.database_dependent
def test_the_migration_copies_existing_tags_into_dag_tag(web_store) -> None:
    from alembic import command

    from zonda import serde

    with web_store.engine.begin() as conn:
        command.downgrade(web_store.alembic_config(conn), "0008")
    with web_store.engine.begin() as conn:
        conn.execute(insert(t.dag).values(dag_id="old", is_active=True, is_paused=False, tags=serde.dumps(["a", "b"])))
        conn.execute(insert(t.dag).values(dag_id="untagged", is_active=True, is_paused=False, tags=None))
    with web_store.engine.begin() as conn:
        command.upgrade(web_store.alembic_config(conn), "head")
    with web_store.engine.connect() as conn:
        rows = conn.execute(select(t.dag_tag.c.dag_id, t.dag_tag.c.name).order_by(t.dag_tag.c.name)).all()
    assert [tuple(r) for r in rows] == [("old", "a"), ("old", "b")]
