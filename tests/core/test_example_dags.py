"""The example DAGs shipped in ``zonda.example_dags``: each runs end to end through ``zonda dags test`` and
ends in exactly the task states (and XCom values) Airflow would give it."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from zonda.cli import main

LOGICAL_DATE = "2024-01-02"  # a Tuesday

EXAMPLE_DAG_IDS = {
    "user_processing",
    "example_trigger_rules",
    "example_xcom",
    "example_sensors",
    "example_dynamic_task_mapping",
    "example_branching",
}


class RunRecord:
    """What one ``zonda dags test`` left in the metastore."""

    def __init__(self, rc: int, tis: dict[str, tuple[str | None, int]], xcoms: dict[tuple[str, int, str], Any]):
        self.rc = rc
        self.tis = tis
        self.xcoms = xcoms

    @property
    def states(self) -> dict[str, str | None]:
        return {label: state for label, (state, _try) in self.tis.items()}

    def xcom(self, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        return self.xcoms[(task_id, map_index, key)]


def _label(task_id: str, map_index: int) -> str:
    return task_id if map_index < 0 else f"{task_id}[{map_index}]"


def run_example(dag_id: str, logical_date: str = LOGICAL_DATE) -> RunRecord:
    """Run ``zonda dags test DAG DATE`` (ZONDA_HOME is the test's) and read back that run from the metastore."""
    from sqlalchemy import select

    from zonda import serde
    from zonda.config import load_settings
    from zonda.metastore.db import Metastore
    from zonda.metastore.models import TaskInstanceModel, XComModel

    rc = main(["dags", "test", dag_id, logical_date, "--quiet"])
    metastore = Metastore.from_settings(load_settings())
    try:
        with metastore.session() as session:
            tis = session.execute(select(TaskInstanceModel).where(TaskInstanceModel.dag_id == dag_id)).scalars()
            ti_rows = {_label(t.task_id, t.map_index): (t.state, t.try_number) for t in tis}
            xcoms = session.execute(select(XComModel).where(XComModel.dag_id == dag_id)).scalars()
            xcom_rows = {(x.task_id, x.map_index, x.key): serde.loads(x.value) for x in xcoms}
    finally:
        metastore.dispose()
    return RunRecord(rc, ti_rows, xcom_rows)


@pytest.fixture
def home(zonda_home: Path) -> Path:
    """A fresh ZONDA_HOME: its own metastore, logs and example output files."""
    return zonda_home


# --- the listing ------------------------------------------------------------------------------------------


def test_dags_list_shows_every_example(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dags", "list", "--output", "json"]) == 0
    rows = {row["dag_id"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) >= EXAMPLE_DAG_IDS
    for dag_id in EXAMPLE_DAG_IDS:
        assert rows[dag_id]["tags"] == ["example"]
        assert rows[dag_id]["schedule"] == "@daily"
    assert main(["dags", "list-import-errors"]) == 0


def test_every_example_is_documented_and_dated() -> None:
    from zonda.dagbag import DagBag

    bag = DagBag(None, include_examples=True).collect()
    assert not bag.import_errors
    for dag_id in EXAMPLE_DAG_IDS:
        dag = bag.get_dag(dag_id)
        assert dag.doc_md and dag.doc_md.strip(), dag_id
        assert dag.start_date == datetime(2024, 1, 1, tzinfo=UTC), dag_id
        assert dag.catchup is False, dag_id
        assert dag.tags == ["example"], dag_id


# --- user_processing --------------------------------------------------------------------------------------


def _users(home: Path) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(home / "user_processing.db")) as db:
        return db.execute("SELECT email, firstname, lastname, country, username, ds FROM users").fetchall()


def test_user_processing(home: Path) -> None:
    from zonda.example_dags.example_user_processing import fake_user_api

    run = run_example("user_processing")
    assert run.rc == 0
    assert run.tis == {
        "create_table": ("success", 1),
        "is_api_available": ("success", 1),
        "extract_user": ("success", 1),
        "process_user": ("success", 1),
        "store_user": ("success", 1),
        "report": ("success", 1),
    }
    expected = fake_user_api(seed=LOGICAL_DATE)["results"][0]
    assert run.xcom("extract_user") == expected
    processed = run.xcom("process_user")
    assert processed == {
        "firstname": expected["name"]["first"],
        "lastname": expected["name"]["last"],
        "country": expected["location"]["country"],
        "username": expected["login"]["username"],
        "password": expected["login"]["password"],
        "email": expected["email"],
        "ds": LOGICAL_DATE,
    }
    assert run.xcom("store_user") == 1
    assert run.xcom("report") == f"{LOGICAL_DATE}: 1 row(s) in the users table"
    assert _users(home) == [
        (
            processed["email"],
            processed["firstname"],
            processed["lastname"],
            processed["country"],
            processed["username"],
            LOGICAL_DATE,
        )
    ]

    # Idempotent: the same day again stores the same row, not a second one.
    again = run_example("user_processing")
    assert again.rc == 0
    assert len(_users(home)) == 1


# --- example_trigger_rules --------------------------------------------------------------------------------

#: Airflow's final states, per scenario group and rule (the table in the DAG's doc_md).
TRIGGER_RULE_STATES: dict[str, dict[str, str]] = {
    "mixed": {  # success + failed + skipped upstream
        "all_success": "upstream_failed",
        "all_failed": "skipped",
        "all_done": "success",
        "all_done_min_one_success": "skipped",
        "all_done_setup_success": "success",
        "all_skipped": "skipped",
        "one_success": "success",
        "one_failed": "success",
        "one_done": "success",
        "none_failed": "upstream_failed",
        "none_failed_min_one_success": "upstream_failed",
        "none_skipped": "skipped",
        "always": "success",
    },
    "success_and_skip": {
        "all_success": "skipped",
        "all_failed": "skipped",
        "all_done": "success",
        "all_done_min_one_success": "skipped",
        "all_done_setup_success": "success",
        "all_skipped": "skipped",
        "one_success": "success",
        "one_failed": "skipped",
        "one_done": "success",
        "none_failed": "success",
        "none_failed_min_one_success": "success",
        "none_skipped": "skipped",
        "always": "success",
    },
    "failed_only": {
        "all_success": "upstream_failed",
        "all_failed": "success",
        "all_done": "success",
        "all_done_min_one_success": "upstream_failed",
        "all_done_setup_success": "success",
        "all_skipped": "skipped",
        "one_success": "upstream_failed",
        "one_failed": "success",
        "one_done": "success",
        "none_failed": "upstream_failed",
        "none_failed_min_one_success": "upstream_failed",
        "none_skipped": "success",
        "always": "success",
    },
    "skipped_only": {
        "all_success": "skipped",
        "all_failed": "skipped",
        "all_done": "success",
        "all_done_min_one_success": "skipped",
        "all_done_setup_success": "success",
        "all_skipped": "success",
        "one_success": "skipped",
        "one_failed": "skipped",
        "one_done": "skipped",
        "none_failed": "success",
        "none_failed_min_one_success": "skipped",
        "none_skipped": "skipped",
        "always": "success",
    },
}


def test_trigger_rules(home: Path) -> None:
    from zonda.trigger_rule import TriggerRule

    run = run_example("example_trigger_rules")
    assert run.rc == 1, "a failed leaf fails the run, on purpose"
    expected = {"succeeds": "success", "fails": "failed", "skips": "skipped"}
    for group, states in TRIGGER_RULE_STATES.items():
        assert set(states) == {rule.value for rule in TriggerRule}, group
        expected.update({f"{group}.{rule}": state for rule, state in states.items()})
    assert run.states == expected
    assert run.tis["fails"] == ("failed", 1), "ZondaFailException fails at once despite retries=3"
    assert run.tis["skips"] == ("skipped", 1)
    never_ran = [label for label, (_state, tries) in run.tis.items() if tries == 0]
    assert sorted(never_ran) == sorted(
        k for k, v in expected.items() if v in ("skipped", "upstream_failed") and k != "skips"
    )

    from zonda.example_dags.example_trigger_rules import DOC_MD

    for rule in TriggerRule:  # the doc's table is the one asserted here
        row = next(line for line in DOC_MD.splitlines() if line.startswith(f"| `{rule.value}`"))
        cells = [c.strip().strip("*") for c in row.strip("|").split("|")][1:]
        assert cells == [TRIGGER_RULE_STATES[g][rule.value] for g in TRIGGER_RULE_STATES], rule


# --- example_xcom -----------------------------------------------------------------------------------------


def test_xcom(home: Path) -> None:
    run = run_example("example_xcom")
    assert run.rc == 0
    assert run.tis == {
        t: ("success", 1)
        for t in ("push_by_hand", "pull_by_hand", "make_order", "check_types", "bash_pull", "summarize")
    }
    assert run.xcom("push_by_hand", "model") == "churn-v2"
    assert run.xcom("push_by_hand", "thresholds") == {"low": 0.2, "high": 0.8}
    assert run.xcom("push_by_hand") == [3, 1, 4]

    amount = run.xcom("make_order", "amount")
    placed_at = run.xcom("make_order", "placed_at")
    dimensions = run.xcom("make_order", "dimensions")
    assert type(amount) is Decimal and amount == Decimal("19.99")
    assert placed_at == datetime(2024, 1, 2, 9, 30, tzinfo=UTC)
    assert type(dimensions) is tuple and dimensions == (20, 30, 5)
    assert run.xcom("make_order") == {
        "order_id": 1042,
        "amount": amount,
        "placed_at": placed_at,
        "dimensions": dimensions,
    }
    assert run.xcom("check_types")["amount_with_tax"] == Decimal("24.1879")
    assert run.xcom("pull_by_hand") == {"model": "churn-v2", "high": 0.8, "total": 8, "order_ids": [None, 1042]}
    assert run.xcom("bash_pull") == "model=churn-v2"
    assert run.xcom("summarize") == "churn-v2 order volume=3000 tax=24.1879 echo=model=churn-v2"


# --- example_sensors ----------------------------------------------------------------------------------------


def test_sensors(home: Path) -> None:
    run = run_example("example_sensors")
    assert run.rc == 0
    assert run.tis == {
        "wait_for_pokes": ("success", 1),
        "write_file": ("success", 1),
        "wait_for_file": ("success", 1),
        "wait_forever": ("skipped", 1),
        "wait_after_interval": ("success", 1),
        "wait_for_value": ("success", 1),
        "summary": ("success", 1),
    }
    assert run.xcom("wait_for_value") == {"rows": 42, "pokes": 2}
    assert ("wait_forever", -1, "return_value") not in run.xcoms
    assert run.xcom("summary") == "file ready.csv and 42 rows after 2 pokes"
    assert Path(run.xcom("write_file")) == home / "tmp" / "example_sensors" / LOGICAL_DATE / "ready.csv"


# --- example_dynamic_task_mapping ---------------------------------------------------------------------------


def test_dynamic_task_mapping(home: Path) -> None:
    run = run_example("example_dynamic_task_mapping")
    assert run.rc == 0
    mapped = {"double": 3, "multiply": 3, "add": 2, "square": 2, "echo_each": 2}
    expected = {"make_numbers": "success", "make_pairs": "success", "total": "success"}
    expected.update({f"{t}[{i}]": "success" for t, n in mapped.items() for i in range(n)})
    assert run.states == expected
    values = {t: [run.xcom(t, map_index=i) for i in range(n)] for t, n in mapped.items()}
    assert values == {
        "double": [2, 4, 6],
        "multiply": [10, 20, 30],
        "add": [3, 7],
        "square": [16, 25],
        "echo_each": ["one", "two"],
    }
    assert run.xcom("total") == 12 + 60 + 10 + 41


# --- example_branching ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("logical_date", "changes"),
    [
        pytest.param("2024-01-02", {}, id="tuesday"),
        pytest.param("2024-01-06", {"weekday": "skipped", "weekend": "success"}, id="saturday"),
        pytest.param("2024-02-01", {"monthly_report": "success"}, id="first-of-month"),
    ],
)
def test_branching(home: Path, logical_date: str, changes: dict[str, str]) -> None:
    run = run_example("example_branching", logical_date)
    assert run.rc == 0
    expected = {
        "start": "success",
        "pick_by_weekday": "success",
        "weekday": "success",
        "weekend": "skipped",
        "join": "success",
        "pick_size": "success",
        "small.load": "success",
        "small.check": "success",
        "large.stage": "skipped",
        "large.load": "skipped",
        "is_first_of_month": "success",
        "monthly_report": "skipped",
        "has_data": "success",
        "daily_report": "success",
        "end": "success",
    }
    expected.update(changes)
    assert run.states == expected
    assert run.xcom("pick_size") == "small"
