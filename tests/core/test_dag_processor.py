"""The DAG processor: change detection within seconds, parsing in children with a timeout, metastore writes."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import multiprocessing
import os
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from zonda.config import load_settings
from zonda.dag_processing import DagProcessor, ProcessorReport
from zonda.metastore import tables as t
from zonda.metastore.db import Metastore


def write(folder: Path, relative: str, body: str) -> Path:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


def simple_dag(dag_id: str, tasks: tuple[str, ...] = ("only",), extra: str = "", dag_args: str = "") -> str:
    lines = "\n".join(f"    EmptyOperator(task_id={task_id!r})" for task_id in tasks)
    return (
        "from zonda import DAG\n"
        "from zonda.operators import EmptyOperator\n"
        f"{textwrap.dedent(extra)}\n"
        f"with DAG({dag_id!r}{dag_args}) as dag:\n"
        f"{lines}\n"
    )


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class Env:
    def __init__(self, home: Path) -> None:
        self.dags = home / "dags"
        self.dags.mkdir()
        self.settings = load_settings()
        self.metastore = Metastore.from_settings(self.settings)
        self.metastore.init()

    def processor(self, **kwargs: Any) -> DagProcessor:
        kwargs.setdefault("poll_interval", 0.1)
        return DagProcessor(self.settings, self.metastore, **kwargs)

    def rows(self, table: Any, *where: Any) -> list[Any]:
        with self.metastore.engine.connect() as conn:
            return conn.execute(select(table).where(*where)).all()

    def dag(self, dag_id: str) -> Any:
        rows = self.rows(t.dag, t.dag.c.dag_id == dag_id)
        return rows[0] if rows else None

    def serialized(self, dag_id: str) -> Any:
        rows = self.rows(t.serialized_dag, t.serialized_dag.c.dag_id == dag_id)
        return rows[0] if rows else None

    def errors(self) -> dict[str, str]:
        return {row.filename: row.stacktrace for row in self.rows(t.import_error)}

    def path(self, relative: str) -> str:
        return str((self.dags / relative).resolve())


@pytest.fixture
def env(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setenv("ZONDA__CORE__LOAD_EXAMPLES", "false")
    monkeypatch.setenv("ZONDA__CORE__DAGBAG_IMPORT_TIMEOUT", "5")
    environment = Env(zonda_home)
    try:
        yield environment
    finally:
        environment.metastore.dispose()


@contextlib.contextmanager
def running(processor: DagProcessor) -> Iterator[threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=processor.run, args=(stop,), name="dag-processor", daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join(10)
        assert not thread.is_alive(), "DagProcessor.run did not stop within 10 s of stop being set"


# --- change detection while running ---------------------------------------------------------------------------


def test_new_file_is_in_the_metastore_within_two_seconds(env):
    processor = env.processor(poll_interval=0.5)  # the default poll interval
    with running(processor):
        time.sleep(0.3)  # let the first (full, empty) pass happen
        write(env.dags, "fresh.py", simple_dag("fresh"))
        written = time.monotonic()
        found = wait_until(lambda: env.dag("fresh") is not None and env.serialized("fresh") is not None, 2.0)
        elapsed = time.monotonic() - written
    assert found, "a new DAG file was not in dag/serialized_dag within 2 s"
    assert elapsed < 2.0
    row = env.dag("fresh")
    assert row.is_active and row.is_paused and not row.has_import_errors  # new DAGs start paused
    assert row.fileloc == env.path("fresh.py")


def test_changed_file_rewrites_serialized_dag_only_when_its_hash_changes(env):
    path = write(env.dags, "change.py", simple_dag("change"))
    processor = env.processor()
    first = processor.run_once()
    assert first.full and first.dags_written == ["change"]
    before = env.serialized("change")

    # Same content, new mtime: parsed again, but the serialized DAG is left alone.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    touched = processor.run_once()
    assert touched.files_parsed == 1 and touched.dags_written == [] and touched.writes.unchanged == ["change"]
    assert env.serialized("change").last_updated == before.last_updated

    # Nothing changed: nothing parsed.
    assert processor.run_once().files_parsed == 0

    write(env.dags, "change.py", simple_dag("change", tasks=("only", "added")))
    changed = processor.run_once()
    assert changed.dags_written == ["change"]
    after = env.serialized("change")
    assert after.dag_hash != before.dag_hash and '"added"' in after.data


def test_deleted_file_deactivates_its_dags_and_keeps_their_history(env):
    path = write(env.dags, "gone.py", simple_dag("gone"))
    processor = env.processor()
    processor.run_once()
    with env.metastore.engine.begin() as conn:
        run_id = conn.execute(
            insert(t.dag_run).values(dag_id="gone", run_id="manual_1", run_type="manual", state="success")
        ).inserted_primary_key[0]
        conn.execute(
            insert(t.task_instance).values(dag_run_id=run_id, dag_id="gone", run_id="manual_1", task_id="only")
        )
    path.unlink()
    report = processor.run_once()
    assert report.removed == [env.path("gone.py")] and report.writes.deactivated == ["gone"]
    assert env.dag("gone").is_active is False
    assert len(env.rows(t.dag_run, t.dag_run.c.dag_id == "gone")) == 1
    assert len(env.rows(t.task_instance, t.task_instance.c.dag_id == "gone")) == 1
    assert env.serialized("gone") is not None  # the last structure stays, for the UI's history

    write(env.dags, "back.py", simple_dag("gone"))
    again = processor.run_once()
    assert again.writes.reactivated == ["gone"]
    assert env.dag("gone").is_active is True and env.dag("gone").fileloc == env.path("back.py")


def test_dag_removed_from_a_file_is_deactivated(env):
    body = simple_dag("keep") + "\nwith DAG('drop') as other:\n    EmptyOperator(task_id='x')\n"
    write(env.dags, "two.py", body)
    processor = env.processor()
    processor.run_once()
    assert env.dag("drop").is_active
    write(env.dags, "two.py", simple_dag("keep"))
    report = processor.run_once()
    assert report.writes.deactivated == ["drop"]
    assert env.dag("drop").is_active is False and env.dag("keep").is_active is True


def test_import_error_is_recorded_then_cleared_once_fixed(env):
    path = env.path("broken.py")
    write(env.dags, "broken.py", simple_dag("broken"))
    processor = env.processor()
    processor.run_once()
    write(env.dags, "broken.py", simple_dag("broken", extra="raise RuntimeError('boom at import')"))
    report = processor.run_once()
    assert list(report.errors) == [path]
    assert "RuntimeError: boom at import" in env.errors()[path]
    # The version that worked keeps running, flagged.
    row = env.dag("broken")
    assert row.is_active and row.has_import_errors

    write(env.dags, "broken.py", simple_dag("broken"))
    fixed = processor.run_once()
    assert fixed.errors == {} and env.errors() == {}
    assert env.dag("broken").has_import_errors is False


def test_a_child_that_dies_without_answering_is_an_import_error(env):
    write(env.dags, "exits.py", simple_dag("exits", extra="import os\nos._exit(3)"))
    report = env.processor().run_once()
    assert "exited with code 3" in report.errors[env.path("exits.py")]
    assert env.dag("exits") is None


# --- isolation and timeouts ---------------------------------------------------------------------------------


def test_looping_files_time_out_without_delaying_a_good_file(env, monkeypatch):
    monkeypatch.setenv("ZONDA__CORE__DAGBAG_IMPORT_TIMEOUT", "1")
    env.settings = load_settings()
    processor = env.processor(poll_interval=0.2)
    loop = "from zonda import DAG\nwhile True:\n    pass\n"
    # Ignores DagBag's alarm: only the parent's SIGTERM/SIGKILL can stop it.
    stubborn = (
        "import signal\nfrom zonda import DAG\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass\n"
    )
    with running(processor):
        time.sleep(0.3)
        # Sorted names put both loopers ahead of the good file: they take the two parser slots first.
        write(env.dags, "a_loop.py", loop)
        write(env.dags, "b_stubborn.py", stubborn)
        write(env.dags, "z_good.py", simple_dag("good"))
        written = time.monotonic()
        assert wait_until(lambda: env.serialized("good") is not None, 2.0), "a looping file delayed a good one"
        good_after = time.monotonic() - written
        errors = wait_until(lambda: len(env.errors()) == 2 and env.errors(), 5.0)
    print(f"\ngood DAG in the metastore {good_after * 1000:.0f} ms after being written beside two looping files")
    assert good_after < 2.0
    assert errors, f"expected two timeout errors, got {env.errors()}"
    alarm = errors[env.path("a_loop.py")]
    killed = errors[env.path("b_stubborn.py")]
    # DagBag's alarm interrupted the import: the traceback shows where the file was stuck.
    assert "core.dagbag_import_timeout" in alarm and 'a_loop.py", line' in alarm
    assert "timed out" in killed and "core.dagbag_import_timeout" in killed and "killed" in killed
    # No child left behind once run() returns.
    assert processor.in_flight == [] and multiprocessing.active_children() == []


def test_the_parent_never_imports_the_dag_module(env):
    before = {name for name in sys.modules if name.startswith("zonda_dag_")}  # other tests' in-process DagBags
    marker = env.dags.parent / "imported_by.txt"
    extra = f"import os\nopen({str(marker)!r}, 'a').write(str(os.getpid()) + '\\n')"
    write(env.dags, "marked.py", simple_dag("marked", extra=extra))
    report = env.processor().run_once()
    pids = [int(line) for line in marker.read_text().split()]
    assert pids and os.getpid() not in pids
    assert report.parsed[0].pid == pids[0]
    module = "zonda_dag_" + hashlib.sha1(env.path("marked.py").encode(), usedforsecurity=False).hexdigest()[:16]
    assert module not in sys.modules
    assert not [name for name in sys.modules if name.startswith("zonda_dag_") and name not in before]


# --- what counts as a DAG file ---------------------------------------------------------------------------------


def test_zondaignore_is_honoured(env):
    write(env.dags, "kept.py", simple_dag("kept"))
    write(env.dags, "skipped.py", simple_dag("skipped"))
    write(env.dags, "scratch/tmp.py", simple_dag("scratch"))
    write(env.dags, ".zondaignore", "skipped.py\nscratch/\n")
    processor = env.processor()
    processor.run_once()
    assert env.dag("kept") is not None and env.dag("skipped") is None and env.dag("scratch") is None

    # Ignoring a file that was parsed before is the same as deleting it.
    write(env.dags, ".zondaignore", "skipped.py\nscratch/\nkept.py\n")
    report = processor.run_once()
    assert report.writes.deactivated == ["kept"] and env.dag("kept").is_active is False


def test_files_that_do_not_mention_zonda_are_not_parsed(env):
    write(env.dags, "helper.py", "VALUE = 1\n")
    write(env.dags, "real.py", simple_dag("real"))
    report = env.processor().run_once()
    assert [r.path for r in report.parsed] == [env.path("real.py")]


@pytest.mark.parametrize(
    ("installation_default", "dag_args", "paused"),
    [
        (None, "", True),  # Airflow's default: [core] dags_are_paused_at_creation = true
        (None, ", is_paused_upon_creation=False", False),
        (None, ", is_paused_upon_creation=True", True),
        ("false", "", False),
        ("false", ", is_paused_upon_creation=True", True),  # the DAG's own word wins
        ("true", ", is_paused_upon_creation=False", False),
    ],
)
def test_new_dags_are_paused_as_the_dag_or_the_installation_says(
    env, monkeypatch, installation_default, dag_args, paused
):
    if installation_default is not None:
        monkeypatch.setenv("ZONDA__CORE__DAGS_ARE_PAUSED_AT_CREATION", installation_default)
    write(env.dags, "new.py", simple_dag("new", dag_args=dag_args))
    DagProcessor(load_settings(), env.metastore).run_once()
    assert env.dag("new").is_paused is paused


@pytest.mark.parametrize(("installation_default", "paused"), [(None, True), ("false", False)])
def test_dags_test_stores_a_new_dag_by_the_same_rule(env, monkeypatch, installation_default, paused):
    """``zonda dags test`` of a DAG the metastore does not know yet creates its row as the processor would."""
    from zonda import DAG
    from zonda.operators import EmptyOperator
    from zonda.testing import run_dag

    if installation_default is not None:
        monkeypatch.setenv("ZONDA__CORE__DAGS_ARE_PAUSED_AT_CREATION", installation_default)
    with DAG("by_dags_test", schedule=None) as dag:
        EmptyOperator(task_id="only")
    assert run_dag(dag, "2024-01-01", metastore=env.metastore, settings=load_settings()).state == "success"
    assert env.dag("by_dags_test").is_paused is paused


def test_pausing_at_creation_never_overrides_the_users_choice_later(env):
    """Only a new ``dag`` row takes the rule: an unpaused DAG stays unpaused when its file changes, and a DAG
    that comes back after its file was deleted keeps the state it had."""
    from zonda.operations.dags import set_paused

    path = write(env.dags, "mine.py", simple_dag("mine"))
    processor = env.processor()
    processor.run_once()
    assert env.dag("mine").is_paused is True
    set_paused(env.metastore.engine, "mine", False)
    write(env.dags, "mine.py", simple_dag("mine", tasks=("only", "second")))
    processor.run_once()
    assert env.dag("mine").is_paused is False
    path.unlink()
    processor.run_once()
    write(env.dags, "mine.py", simple_dag("mine"))
    processor.run_once()
    assert env.dag("mine").is_active is True and env.dag("mine").is_paused is False


def test_a_duplicate_dag_id_is_an_error_until_the_first_file_goes(env):
    write(env.dags, "a_first.py", simple_dag("twice"))
    write(env.dags, "b_second.py", simple_dag("twice", tasks=("other",)))
    processor = env.processor(max_children=1)  # deterministic order: a_first answers first
    processor.run_once()
    assert env.dag("twice").fileloc == env.path("a_first.py")
    assert "DuplicateDagId" in env.errors()[env.path("b_second.py")]
    (env.dags / "a_first.py").unlink()
    processor.run_once()
    assert env.dag("twice").fileloc == env.path("b_second.py") and env.dag("twice").is_active
    assert env.errors() == {}
    assert '"other"' in env.serialized("twice").data


def test_full_pass_deactivates_dags_whose_file_vanished_while_no_processor_ran(env):
    with env.metastore.engine.begin() as conn:
        conn.execute(insert(t.dag).values(dag_id="ghost", fileloc=env.path("ghost.py"), is_active=True))
        conn.execute(insert(t.import_error).values(filename=env.path("old.py"), stacktrace="x"))
    write(env.dags, "alive.py", simple_dag("alive"))
    report = env.processor().run_once()
    assert report.full and "ghost" in report.writes.deactivated
    assert env.dag("ghost").is_active is False and env.dag("alive").is_active is True
    assert env.errors() == {}


def test_examples_are_processed_when_load_examples_is_on(env, monkeypatch):
    monkeypatch.setenv("ZONDA__CORE__LOAD_EXAMPLES", "true")
    env.settings = load_settings()
    report = env.processor(max_children=4).run_once()
    assert report.errors == {}
    assert len(report.dags_written) >= 5
    assert all(env.dag(dag_id).is_active for dag_id in report.dags_written)


# --- cost and reporting -----------------------------------------------------------------------------------------


def test_a_poll_of_200_unchanged_files_is_cheap(env):
    for index in range(200):
        write(env.dags, f"sub{index % 10}/dag_{index}.py", simple_dag(f"d{index}"))
    processor = env.processor(max_children=4)
    processor.run_once()  # the full first pass: parses every file
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        report = processor.run_once()
        timings.append(time.perf_counter() - started)
        assert report.files_parsed == 0 and report.files_listed == 200
    best = min(timings)
    print(f"\none poll of 200 unchanged DAG files: {best * 1000:.2f} ms (best of 5)")
    assert best < 0.1


def test_a_pass_logs_at_info_only_when_something_changed(env, caplog):
    write(env.dags, "logged.py", simple_dag("logged"))
    processor = env.processor()
    with caplog.at_level(logging.INFO, logger="zonda.dag_processing.processor"):
        report = processor.run_once()
        assert isinstance(report, ProcessorReport) and report.changed
        assert [r.getMessage() for r in caplog.records if "parsed 1 of 1 files" in r.getMessage()]
        caplog.clear()
        assert not processor.run_once().changed
        assert [r for r in caplog.records if r.levelno >= logging.INFO] == []
