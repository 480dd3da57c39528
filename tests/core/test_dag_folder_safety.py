"""No DAG file can stop or hang what parses the DAGs folder (issue 11, section 2).

* the folder walk: symbolic-link loops (file links to each other, a directory linking to itself, to an ancestor,
  two directories linking to each other), a FIFO, a socket and links to ``/dev/zero`` / ``/dev/urandom`` named
  ``*.py``, and a huge file: the walk ends, nothing blocks, the odd entries are one-line import errors naming the
  fix, the good DAG is listed, in ``zonda dags list`` and in the DAG processor;
* the CLI parses in child processes: a file that calls ``os._exit``, ignores SIGALRM and loops, sleeps or eats
  memory is its own import error in every command that parses (``dags list | list-import-errors | show | test``,
  ``tasks list | test``), and the others still work;
* ``dags list-import-errors`` on a fresh home shows the folder's current errors, and replaces stale ones;
* modules beside DAG files (and in the plugins folder) import in task processes: the scheduler with the
  LocalExecutor, and ``zonda tasks run``;
* a second file defining an existing dag id is that file's import error; the first definition stays.

Every process started here runs under a timeout; none of these tests waits on a clock to decide an outcome.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))

import scheduler_helpers as h  # noqa: E402

GOOD = """
from zonda import DAG
from zonda.operators import EmptyOperator

with DAG({dag_id!r}) as dag:
    EmptyOperator(task_id="only")
"""

#: Files that each stop or hang an in-process import in their own way; each mentions "good" so that the commands
#: aimed at the DAG ``good`` parse them too.
HOSTILE = {
    "exits.py": "# good\nfrom zonda import DAG\nimport os\nos._exit(1)\n",
    "ignores_alarm.py": (
        "# good\nfrom zonda import DAG\nimport signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
        "while True:\n    pass\n"
    ),
    "sleeps.py": "# good\nfrom zonda import DAG\nimport time\ntime.sleep(3600)\n",
    "eats_memory.py": "# good\nfrom zonda import DAG\nchunks = []\nwhile True:\n    chunks.append(bytearray(10**7))\n",
}


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZONDA")}
    env.update(
        ZONDA_HOME=str(home),
        ZONDA__CORE__LOAD_EXAMPLES="false",
        ZONDA__CORE__DAGBAG_IMPORT_TIMEOUT="0.5",
        ZONDA__CORE__DAGBAG_IMPORT_MEMORY_LIMIT="256",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def zonda(home: Path, *args: str, timeout: float = 30, **extra: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [sys.executable, "-m", "zonda", *args],
            check=False,
            env=cli_env(home, **extra),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=home,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"`zonda {' '.join(args)}` hung: no answer within {timeout} s") from exc


def write(folder: Path, relative: str, body: str) -> Path:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "dags").mkdir()
    return tmp_path


# --- the folder walk ----------------------------------------------------------------------------------------------


@pytest.fixture
def hostile_folder(home: Path) -> Iterator[Path]:
    """Every kind of entry that made the walk loop or block, beside one good DAG."""
    dags = home / "dags"
    write(dags, "good.py", GOOD.format(dag_id="good"))
    (dags / "loop_a.py").symlink_to("loop_b.py")  # a -> b, b -> a
    (dags / "loop_b.py").symlink_to("loop_a.py")
    (dags / "self_loop.py").symlink_to("self_loop.py")
    (dags / "itself").symlink_to(".")  # a directory linking to itself
    (dags / "deep" / "er").mkdir(parents=True)
    (dags / "deep" / "er" / "ancestor").symlink_to("../..")  # a link to an ancestor
    (dags / "deep" / "er" / "home").symlink_to(home)  # ... and to the home above the DAGs folder
    (dags / "one").mkdir()
    (dags / "two").mkdir()
    (dags / "one" / "to_two").symlink_to("../two")  # two directories linking to each other
    (dags / "two" / "to_one").symlink_to("../one")
    os.mkfifo(dags / "fifo.py")
    (dags / "zero.py").symlink_to("/dev/zero")
    (dags / "urandom.py").symlink_to("/dev/urandom")
    (dags / "dangling.py").symlink_to(dags / "missing")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(dags / "socket.py"))
    # 64 MiB (sparse) whose only mention of "zonda" and "dag" is at the end: safe mode reads a bounded prefix, so
    # this file is not a DAG file (an unbounded read would find the words and then import 64 MiB of NUL bytes).
    with (dags / "huge.py").open("wb") as handle:
        handle.truncate(64 * 1024 * 1024)
        handle.seek(0, os.SEEK_END)
        handle.write(b"\n# zonda dag\n")
    try:
        yield dags
    finally:
        server.close()


ODD_ENTRIES = {
    "loop_a.py": "symbolic link loop",
    "loop_b.py": "symbolic link loop",
    "self_loop.py": "symbolic link loop",
    "fifo.py": "FIFO",
    "zero.py": "character device",
    "urandom.py": "character device",
    "socket.py": "socket",
    "dangling.py": "does not exist",
}


def test_dags_list_walks_loops_once_and_never_opens_fifos_or_devices(home: Path, hostile_folder: Path) -> None:
    listed = zonda(home, "dags", "list", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    assert [(d["dag_id"], d["fileloc"]) for d in json.loads(listed.stdout)] == [
        ("good", str(hostile_folder.resolve() / "good.py"))
    ]
    errors = zonda(home, "dags", "list-import-errors", "--output", "json")
    assert errors.returncode == 1, errors.stderr
    by_file = {Path(row["filename"]).name: row["error"] for row in json.loads(errors.stdout)}
    assert set(by_file) == set(ODD_ENTRIES)
    for name, kind in ODD_ENTRIES.items():
        message = by_file[name]
        assert kind in message and "\n" not in message, message
        assert ".zondaignore" in message, message  # names the fix


def test_the_dag_processor_walks_the_same_folder_without_blocking(home: Path, hostile_folder: Path) -> None:
    script = textwrap.dedent(
        """
        import json
        from zonda.config import load_settings
        from zonda.dag_processing import DagProcessor
        from zonda.metastore.db import Metastore

        settings = load_settings()
        metastore = Metastore.from_settings(settings)
        metastore.init()
        with DagProcessor(settings, metastore) as processor:
            first = processor.run_once(full=True)
            second = processor.run_once()  # a poll: nothing changed, nothing parsed again
        print(json.dumps({"dags": sorted(d for r in first.parsed for d in r.dag_ids), "errors": first.errors,
                          "again": second.files_parsed}))
        """
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", script],
            check=False,
            env=cli_env(home),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=home,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError("the DAG processor hung on the folder") from exc
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["dags"] == ["good"]
    assert {Path(p).name for p in report["errors"]} == set(ODD_ENTRIES)
    assert report["again"] == 0


def test_zondaignore_still_hides_odd_entries_and_folders(home: Path, hostile_folder: Path) -> None:
    (hostile_folder / ".zondaignore").write_text("fifo.py\nzero.py\nloop_*\n/skipped\n", encoding="utf-8")
    write(hostile_folder, "skipped/hidden_dag.py", GOOD.format(dag_id="hidden"))
    errors = zonda(home, "dags", "list-import-errors", "--output", "json")
    names = {Path(row["filename"]).name for row in json.loads(errors.stdout)}
    assert names == set(ODD_ENTRIES) - {"fifo.py", "zero.py", "loop_a.py", "loop_b.py"}
    listed = zonda(home, "dags", "list", "--output", "json")
    assert [d["dag_id"] for d in json.loads(listed.stdout)] == ["good"]


def test_a_dag_folder_reached_twice_through_links_is_parsed_once(home: Path) -> None:
    dags = home / "dags"
    write(dags, "real/pipeline.py", GOOD.format(dag_id="pipeline"))
    (dags / "alias").symlink_to("real")
    listed = zonda(home, "dags", "list", "--output", "json")
    assert [d["dag_id"] for d in json.loads(listed.stdout)] == ["pipeline"]
    assert zonda(home, "dags", "list-import-errors").stdout.strip() == "No import errors."


# --- the CLI parses in children -------------------------------------------------------------------------------


@pytest.fixture
def hostile_files(home: Path) -> Path:
    dags = home / "dags"
    write(dags, "good.py", GOOD.format(dag_id="good"))
    for name, body in HOSTILE.items():
        (dags / name).write_text(body, encoding="utf-8")
    return dags


def test_dags_list_survives_files_that_exit_hang_or_eat_memory(home: Path, hostile_files: Path) -> None:
    listed = zonda(home, "dags", "list", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    assert [d["dag_id"] for d in json.loads(listed.stdout)] == ["good"]
    errors = zonda(home, "dags", "list-import-errors", "--output", "json")
    by_file = {Path(row["filename"]).name: row["error"] for row in json.loads(errors.stdout)}
    assert set(by_file) == set(HOSTILE)
    assert "exited with code 1" in by_file["exits.py"]
    assert "timed out" in by_file["ignores_alarm.py"] and "dagbag_import_timeout" in by_file["ignores_alarm.py"]
    assert "dagbag_import_timeout" in by_file["sleeps.py"]
    assert "MemoryError" in by_file["eats_memory.py"]
    assert "core.dagbag_import_memory_limit (256 MiB)" in by_file["eats_memory.py"]


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (("dags", "show", "good"), "DAG good"),
        (("tasks", "list", "good"), "only"),
        (("dags", "test", "good", "--quiet"), "success"),
        (("tasks", "test", "good", "only"), "success"),
    ],
    ids=["dags-show", "tasks-list", "dags-test", "tasks-test"],
)
def test_commands_for_one_dag_survive_hostile_files_that_mention_it(
    home: Path, hostile_files: Path, command: tuple[str, ...], expected: str
) -> None:
    done = zonda(home, *command)
    assert done.returncode == 0, done.stdout + done.stderr
    assert expected in done.stdout


def test_an_unknown_dag_names_the_files_that_failed(home: Path, hostile_files: Path) -> None:
    done = zonda(home, "dags", "show", "nope")
    assert done.returncode != 0
    assert "no DAG 'nope'" in done.stderr and "failed to import" in done.stderr


def test_what_a_dag_file_prints_at_import_does_not_corrupt_json_output(home: Path) -> None:
    write(home / "dags", "chatty.py", 'print("hello from the DAG file")\n' + GOOD.format(dag_id="chatty"))
    listed = zonda(home, "dags", "list", "--output", "json")
    assert [d["dag_id"] for d in json.loads(listed.stdout)] == ["chatty"]
    assert "hello from the DAG file" in listed.stderr


# --- list-import-errors: the folder's current errors ---------------------------------------------------------------


def test_list_import_errors_on_a_fresh_home_shows_every_current_error(home: Path) -> None:
    dags = home / "dags"
    write(dags, "good.py", GOOD.format(dag_id="good"))
    write(dags, "syntax.py", "from zonda import DAG\nwith DAG('s')\n    pass\n")
    (dags / "exits.py").write_text(HOSTILE["exits.py"], encoding="utf-8")
    write(dags, "zz_copy.py", GOOD.format(dag_id="good"))
    done = zonda(home, "dags", "list-import-errors")
    assert done.returncode == 1
    assert "No import errors." not in done.stdout
    for name in ("syntax.py", "exits.py", "zz_copy.py"):
        assert str(dags.resolve() / name) in done.stdout
    assert not (home / "zonda.db").exists()  # listing errors does not create a metastore


def test_list_import_errors_replaces_what_the_metastore_holds(home: Path) -> None:
    from sqlalchemy import select

    from zonda.config import load_settings
    from zonda.metastore import tables as t
    from zonda.metastore.db import Metastore

    dags = home / "dags"
    broken = write(dags, "broken.py", "from zonda import DAG\nraise ValueError('first version')\n")
    assert zonda(home, "db", "migrate").returncode == 0
    assert zonda(home, "dags", "list-import-errors").returncode == 1  # recorded in the metastore
    write(dags, "broken.py", GOOD.format(dag_id="fixed"))
    write(dags, "other.py", "from zonda import DAG\nraise ValueError('second file')\n")
    done = zonda(home, "dags", "list-import-errors", "--output", "json")
    rows = json.loads(done.stdout)
    assert [Path(r["filename"]).name for r in rows] == ["other.py"]
    metastore = Metastore.from_settings(load_settings(str(home)))
    try:
        with metastore.engine.connect() as conn:
            stored = {Path(r.filename).name for r in conn.execute(select(t.import_error.c.filename))}
    finally:
        metastore.dispose()
    assert stored == {"other.py"}
    assert broken.exists()


# --- modules beside DAG files import in task processes --------------------------------------------------------------

HELPERS_DAG = """
from datetime import datetime

from zonda import DAG
from zonda.operators import PythonOperator

import {mod}
from {pkg}.maths import plus_one
import {plugin_mod}


def check(**context):
    # Imported again at run time, in the task process, from the DAGs and plugins folders.
    import {mod} as again
    from {pkg}.maths import plus_one as again_plus_one

    assert again.VALUE == 41 and again_plus_one(again.VALUE) == 42 and {plugin_mod}.BASE == 1
    record(context)


def on_success(context):
    # Run by the DAG processor's callback child, which loads this file again.
    import {mod} as again

    with open(LEDGER + ".callback", "w") as handle:
        handle.write(str(again.VALUE))


with DAG("helpers", schedule=None, start_date=datetime(2024, 1, 1), on_success_callback=on_success):
    PythonOperator(task_id="check", python_callable=check)
"""


def write_helpers(home: Path, ledger: Path | None) -> dict[str, str]:
    """A module beside the DAG file, a package in a subfolder, a module in the plugins folder; names unique to
    this home, so no other test's import can satisfy them."""
    suffix = home.name.replace("-", "_").lower()
    names = {"mod": f"mylib_{suffix}", "pkg": f"helpers_pkg_{suffix}", "plugin_mod": f"plugin_helpers_{suffix}"}
    dags = home / "dags"
    write(dags, f"{names['mod']}.py", "VALUE = 41\n")
    write(dags, f"{names['pkg']}/__init__.py", "")
    write(dags, f"{names['pkg']}/maths.py", "def plus_one(x):\n    return x + 1\n")
    write(home / "plugins", f"{names['plugin_mod']}.py", "BASE = 1\n")
    body = textwrap.dedent(HELPERS_DAG.format(**names)).lstrip()
    if ledger is not None:
        body = h.LEDGER_PREAMBLE.format(ledger=str(ledger)).lstrip() + "\n\n" + body
    write(dags, "team/helpers_dag.py", body)
    return names


def test_helper_modules_import_in_tasks_and_callbacks_run_by_the_scheduler(
    zonda_home: Path, monkeypatch: pytest.MonkeyPatch
):
    from zonda.executors.local import LocalExecutor
    from zonda.scheduler.runs import trigger_dag
    from zonda.scheduler.scheduler import Scheduler

    settings, metastore = h.configure(zonda_home, monkeypatch, None)
    ledger = zonda_home / "ledger.txt"
    names = write_helpers(zonda_home, ledger)
    assert not any(name in sys.modules for name in names.values())
    try:
        h.store_dags(settings, metastore)
        run_id = int(trigger_dag(metastore.engine, "helpers")["id"])
        scheduler = Scheduler(settings, executor=LocalExecutor(parallelism=2, settings=settings), metastore=metastore)
        states = h.drive(scheduler, [run_id], timeout=60)
        assert states == {run_id: "success"}, h.states_by_task(metastore.engine, run_id)
        assert [e.task_id for e in h.read_ledger(ledger)] == ["check"]
        from zonda.dag_processing import DagProcessor

        with DagProcessor(settings, metastore) as processor:
            assert processor.run_callbacks(timeout=60) == 1
        assert Path(f"{ledger}.callback").read_text() == "41"  # the DAG's callback imported its helper too
    finally:
        metastore.dispose()
    # The test process itself never imported the DAG folder's helpers: the task process found them on its own
    # sys.path. (The plugins folder's module is different: the LocalExecutor loads the workers' plugins before it
    # forks them, so they share those pages; that runs the plugins folder in the scheduler's process.)
    assert not any(name in sys.modules for name in (names["mod"], names["pkg"]))


def test_helper_modules_import_in_tasks_run(home: Path) -> None:
    ledger = home / "ledger.txt"
    write_helpers(home, ledger)
    assert zonda(home, "db", "migrate").returncode == 0
    script = (
        "from zonda.config import load_settings\nfrom zonda.metastore.db import Metastore\n"
        "from zonda.dag_processing import DagProcessor\ns = load_settings()\nm = Metastore.from_settings(s)\n"
        "with DagProcessor(s, m) as p:\n    r = p.run_once(full=True)\nassert not r.errors, r.errors\n"
    )
    stored = subprocess.run(
        [sys.executable, "-c", script], check=False, env=cli_env(home), capture_output=True, text=True, timeout=60
    )
    assert stored.returncode == 0, stored.stderr
    assert zonda(home, "dags", "trigger", "helpers", "--run-id", "r1").returncode == 0
    done = zonda(home, "tasks", "run", "helpers", "check", "r1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "success" in done.stdout
    assert [e.task_id for e in h.read_ledger(ledger)] == ["check"]


# --- duplicate dag ids ------------------------------------------------------------------------------------------


class Store:
    """A home with a metastore, and DAG-processor passes run in this process (parsing happens in children)."""

    def __init__(self, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.settings, self.metastore = h.configure(home, monkeypatch, None)
        self.dags = home / "dags"

    def process(self, **kwargs: Any) -> Any:
        from zonda.dag_processing import DagProcessor

        with DagProcessor(self.settings, self.metastore, **kwargs) as processor:
            return processor.run_once(full=True)

    def fileloc(self, dag_id: str) -> tuple[str, str]:
        from sqlalchemy import select

        from zonda.metastore import tables as t

        with self.metastore.engine.connect() as conn:
            dag = conn.execute(select(t.dag.c.fileloc).where(t.dag.c.dag_id == dag_id)).scalar_one()
            ser = conn.execute(select(t.serialized_dag.c.fileloc).where(t.serialized_dag.c.dag_id == dag_id)).scalar()
        return Path(dag).name, Path(ser).name

    def task_ids(self, dag_id: str) -> list[str]:
        from sqlalchemy import select

        from zonda import serde
        from zonda.metastore import tables as t

        with self.metastore.engine.connect() as conn:
            data = conn.execute(select(t.serialized_dag.c.data).where(t.serialized_dag.c.dag_id == dag_id)).scalar()
        data = serde.loads(data) if isinstance(data, str) else data
        data = json.loads(data) if isinstance(data, str) else data
        return sorted(task["task_id"] for task in data["tasks"])

    def errors(self) -> dict[str, str]:
        from sqlalchemy import select

        from zonda.metastore import tables as t

        with self.metastore.engine.connect() as conn:
            return {Path(r.filename).name: r.stacktrace for r in conn.execute(select(t.import_error))}


@pytest.fixture
def store(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.setenv("ZONDA__CORE__DAGBAG_IMPORT_TIMEOUT", "5")
    environment = Store(zonda_home, monkeypatch)
    try:
        yield environment
    finally:
        environment.metastore.dispose()


def test_a_copy_never_takes_a_stored_dag_from_its_file(store: Store, zonda_home: Path) -> None:
    write(store.dags, "pipeline.py", GOOD.format(dag_id="shared"))
    store.process()
    assert store.fileloc("shared") == ("pipeline.py", "pipeline.py")
    # The copy sorts first and parses faster (the original now sleeps a little at import): on every restart of
    # the processor the original, which holds the id in the metastore, keeps it.
    write(store.dags, "a_copy.py", GOOD.format(dag_id="shared") + "EmptyOperator(task_id='extra', dag=dag)\n")
    write(store.dags, "pipeline.py", "import time\ntime.sleep(0.3)\n" + GOOD.format(dag_id="shared"))
    for _ in range(2):
        report = store.process()
        assert store.fileloc("shared") == ("pipeline.py", "pipeline.py")
        errors = store.errors()
        assert set(errors) == {"a_copy.py"}, errors
        assert "pipeline.py" in errors["a_copy.py"] and "a_copy.py" in errors["a_copy.py"]
        assert "DuplicateDagId" in errors["a_copy.py"]
        assert not any("pipeline.py" in p for p in report.errors)
    # The CLI applies the same rule: the metastore's holder keeps the id.
    listed = zonda(zonda_home, "dags", "list", "--output", "json", ZONDA__CORE__DAGBAG_IMPORT_TIMEOUT="5")
    assert [(d["dag_id"], Path(d["fileloc"]).name) for d in json.loads(listed.stdout)] == [("shared", "pipeline.py")]
    shown = zonda(zonda_home, "tasks", "list", "shared", "--output", "json", ZONDA__CORE__DAGBAG_IMPORT_TIMEOUT="5")
    assert [t["task_id"] for t in json.loads(shown.stdout)] == ["only"]  # not the copy's DAG


def test_on_a_fresh_metastore_the_first_path_wins_even_when_it_answers_last(store: Store, zonda_home: Path) -> None:
    write(store.dags, "a_first.py", "import time\ntime.sleep(0.3)\n" + GOOD.format(dag_id="shared"))
    write(store.dags, "b_second.py", GOOD.format(dag_id="shared"))
    store.process()
    assert store.fileloc("shared") == ("a_first.py", "a_first.py")
    errors = store.errors()
    assert set(errors) == {"b_second.py"}
    assert "a_first.py" in errors["b_second.py"]


def test_the_cli_gives_a_duplicate_id_to_the_first_path(home: Path) -> None:
    write(home / "dags", "b_second.py", GOOD.format(dag_id="shared") + "EmptyOperator(task_id='b', dag=dag)\n")
    write(home / "dags", "a_first.py", GOOD.format(dag_id="shared"))
    listed = zonda(home, "dags", "list", "--output", "json")
    assert [(d["dag_id"], Path(d["fileloc"]).name) for d in json.loads(listed.stdout)] == [("shared", "a_first.py")]
    errors = zonda(home, "dags", "list-import-errors", "--output", "json")
    rows = json.loads(errors.stdout)
    assert [Path(r["filename"]).name for r in rows] == ["b_second.py"]
    # The error is the copy's, and says which file keeps the id.
    assert f"already defined in {home.resolve() / 'dags' / 'a_first.py'}, which keeps it" in rows[0]["error"]
    shown = zonda(home, "tasks", "list", "shared", "--output", "json")
    assert [t["task_id"] for t in json.loads(shown.stdout)] == ["only"]


TWICE = """
from zonda import DAG
from zonda.operators import EmptyOperator

with DAG("twice"):
    EmptyOperator(task_id="first_definition")

with DAG("twice"):
    EmptyOperator(task_id="second_definition")
"""


def test_the_same_id_twice_in_one_file_keeps_the_first(store: Store, zonda_home: Path) -> None:
    write(store.dags, "twice.py", TWICE)
    store.process()
    errors = store.errors()
    assert "defined twice" in errors["twice.py"]
    assert store.task_ids("twice") == ["first_definition"]
    shown = zonda(zonda_home, "tasks", "list", "twice", "--output", "json", ZONDA__CORE__DAGBAG_IMPORT_TIMEOUT="5")
    assert [t["task_id"] for t in json.loads(shown.stdout)] == ["first_definition"]
    listed = zonda(zonda_home, "dags", "list-import-errors", "--output", "json", ZONDA__CORE__DAGBAG_IMPORT_TIMEOUT="5")
    assert "defined twice" in json.loads(listed.stdout)[0]["error"]


def test_the_copy_gets_the_id_once_the_holder_lets_go_of_it(store: Store) -> None:
    write(store.dags, "pipeline.py", GOOD.format(dag_id="shared"))
    store.process()
    write(store.dags, "a_copy.py", GOOD.format(dag_id="shared"))
    # While no processor ran, the holder was renamed its DAG: a restarted processor hands the id to the copy in the
    # same pass (the copy, refused while the holder was still unparsed, is parsed again).
    write(store.dags, "pipeline.py", GOOD.format(dag_id="renamed"))
    store.process()
    assert store.fileloc("shared") == ("a_copy.py", "a_copy.py")
    assert store.fileloc("renamed") == ("pipeline.py", "pipeline.py")
    assert store.errors() == {}
    (store.dags / "a_copy.py").unlink()
    # The new copy sorts first but answers last: the holder's own parse must not count as a fresh claim.
    write(store.dags, "b_copy.py", "import time\ntime.sleep(0.3)\n" + GOOD.format(dag_id="renamed"))
    store.process()
    assert store.fileloc("renamed") == ("pipeline.py", "pipeline.py")
    assert set(store.errors()) == {"b_copy.py"}
