"""DagBag: finding DAG files (recursion, .zondaignore, safe mode) and turning failures into import errors."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from zonda.config import load_settings
from zonda.dagbag import DagBag, list_dag_files
from zonda.exceptions import DagNotFound


def write(folder: Path, relative: str, body: str) -> Path:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


def simple_dag(dag_id: str, extra: str = "") -> str:
    return f"""
        from zonda import DAG
        from zonda.operators import EmptyOperator

        {extra}
        with DAG({dag_id!r}) as dag:
            EmptyOperator(task_id="only")
        """


@pytest.fixture
def dags(tmp_path: Path) -> Path:
    folder = tmp_path / "dags"
    folder.mkdir()
    return folder


def bag_of(folder: Path, **kwargs) -> DagBag:
    return DagBag(folder, **kwargs).collect()


# --- discovery ----------------------------------------------------------------------------------------------


def test_files_are_found_recursively(dags):
    write(dags, "top.py", simple_dag("top"))
    write(dags, "a/b/c/deep.py", simple_dag("deep"))
    write(dags, "a/mid.py", simple_dag("mid"))
    bag = bag_of(dags)
    assert sorted(bag.dags) == ["deep", "mid", "top"]
    assert bag.import_errors == {}
    assert bag.get_dag("deep").fileloc == str((dags / "a/b/c/deep.py").resolve())


def test_zondaignore_pattern_for_a_file(dags):
    write(dags, "keep.py", simple_dag("keep"))
    write(dags, "skip_me.py", simple_dag("skip_me"))
    write(dags, "sub/skip_too.py", simple_dag("skip_too"))
    (dags / ".zondaignore").write_text("# comment line\n\nskip_*.py\n")
    bag = bag_of(dags)
    assert sorted(bag.dags) == ["keep"]
    assert not any("skip" in f for f in bag.files)


def test_zondaignore_pattern_for_a_folder(dags):
    write(dags, "keep.py", simple_dag("keep"))
    write(dags, "vendor/lib.py", simple_dag("vendored"))
    write(dags, "vendor/deeper/more.py", simple_dag("vendored_deeper"))
    write(dags, "scratch_x/tmp.py", simple_dag("scratch"))
    (dags / ".zondaignore").write_text("vendor/\nscratch_*\n")
    bag = bag_of(dags)
    assert sorted(bag.dags) == ["keep"]


def test_nested_zondaignore_applies_to_its_own_tree_only(dags):
    write(dags, "old.py", simple_dag("top_old"))  # same name as the ignored one below, but outside its scope
    write(dags, "team/old.py", simple_dag("team_old"))
    write(dags, "team/new.py", simple_dag("team_new"))
    write(dags, "team/sub/old.py", simple_dag("team_sub_old"))
    (dags / "team" / ".zondaignore").write_text("old.py\n")
    bag = bag_of(dags)
    assert sorted(bag.dags) == ["team_new", "top_old"]


def test_anchored_zondaignore_pattern(dags):
    write(dags, "tmp/a.py", simple_dag("root_tmp"))
    write(dags, "other/tmp/b.py", simple_dag("other_tmp"))
    (dags / ".zondaignore").write_text("/tmp\n")
    assert sorted(bag_of(dags).dags) == ["other_tmp"]


def test_safe_mode_skips_files_without_dag_and_zonda(dags):
    marker = dags.parent / "imported.txt"
    helper = f"""
        from pathlib import Path
        Path({str(marker)!r}).write_text("imported")
        """
    write(dags, "helper.py", helper)  # neither word
    write(dags, "only_dag_word.py", "# a dag helper\nVALUE = 1\n")  # "dag" but not the other word
    write(dags, "real.py", simple_dag("real"))
    files = list_dag_files(dags)
    assert [p.name for p in files] == ["real.py"]
    bag = bag_of(dags)
    assert sorted(bag.dags) == ["real"]
    assert not marker.exists()
    # Without safe mode every .py file is imported.
    assert len(list_dag_files(dags, safe_mode=False)) == 3
    DagBag(dags, safe_mode=False).collect()
    assert marker.exists()


def test_non_python_and_hidden_files_are_skipped(dags):
    write(dags, "notes.txt", simple_dag("txt"))
    write(dags, ".hidden.py", simple_dag("hidden"))
    write(dags, ".hidden_dir/x.py", simple_dag("hidden_dir"))
    write(dags, "__pycache__/x.py", simple_dag("cache"))
    write(dags, "ok.py", simple_dag("ok"))
    assert sorted(bag_of(dags).dags) == ["ok"]


# --- import errors ------------------------------------------------------------------------------------------


def test_raising_file_becomes_import_error_with_traceback_and_others_load(dags):
    bad = write(
        dags,
        "broken.py",
        """
        from zonda import DAG

        def helper():
            raise RuntimeError("boom from the dag file")

        helper()
        """,
    )
    write(dags, "good.py", simple_dag("good"))
    bag = bag_of(dags)
    assert sorted(bag.dags) == ["good"]
    error = bag.import_errors[str(bad.resolve())]
    assert "Traceback" in error
    assert str(bad.resolve()) in error
    assert "line 4" in error  # the raise
    assert "line 6" in error  # the call at module level
    assert "RuntimeError: boom from the dag file" in error
    # The user's traceback starts in the DAG file, not in Zonda's import machinery.
    assert "importlib" not in error
    assert "dagbag.py" not in error


def test_syntax_error_becomes_import_error(dags):
    bad = write(dags, "syntax.py", "from zonda import DAG\nwith DAG('x') as dag\n    pass\n")
    write(dags, "good.py", simple_dag("good"))
    bag = bag_of(dags)
    assert sorted(bag.dags) == ["good"]
    assert "SyntaxError" in bag.import_errors[str(bad.resolve())]


def test_sys_exit_in_dag_file_is_an_import_error(dags):
    bad = write(dags, "exits.py", "import sys\nfrom zonda import DAG\nsys.exit(3)\n")
    write(dags, "good.py", simple_dag("good"))
    bag = bag_of(dags)
    assert sorted(bag.dags) == ["good"]
    assert "SystemExit" in bag.import_errors[str(bad.resolve())]


def test_slow_file_times_out_via_argument_and_others_load(dags):
    slow = write(dags, "slow.py", "import time\nfrom zonda import DAG\ntime.sleep(5)\nDAG('slow')\n")
    write(dags, "good.py", simple_dag("good"))
    started = time.monotonic()
    bag = DagBag(dags, import_timeout=0.5).collect()
    assert time.monotonic() - started < 3
    assert sorted(bag.dags) == ["good"]
    error = bag.import_errors[str(slow.resolve())]
    assert "core.dagbag_import_timeout" in error
    assert "took longer" in error
    assert str(slow.resolve()) in error


def test_slow_file_times_out_via_env_setting(dags, zonda_home, monkeypatch):
    monkeypatch.setenv("ZONDA__CORE__DAGBAG_IMPORT_TIMEOUT", "1")
    monkeypatch.setenv("ZONDA__CORE__DAGS_FOLDER", str(dags))
    monkeypatch.setenv("ZONDA__CORE__LOAD_EXAMPLES", "false")
    slow = write(dags, "slow.py", "import time\nfrom zonda import DAG\ntime.sleep(4)\nDAG('slow')\n")
    write(dags, "good.py", simple_dag("good"))
    settings = load_settings()
    bag = DagBag.from_settings(settings)
    assert bag.import_timeout == 1.0
    started = time.monotonic()
    bag.collect()
    assert time.monotonic() - started < 3.5
    assert sorted(bag.dags) == ["good"]
    error = bag.import_errors[str(slow.resolve())]
    assert "core.dagbag_import_timeout" in error
    assert "1 s" in error


def test_cycle_becomes_import_error_naming_the_cycle(dags):
    bad = write(
        dags,
        "cycle.py",
        """
        from zonda import DAG
        from zonda.operators import EmptyOperator

        dag = DAG("cyclic")
        a = EmptyOperator(task_id="a", dag=dag)
        b = EmptyOperator(task_id="b", dag=dag)
        c = EmptyOperator(task_id="c", dag=dag)
        a >> b >> c >> a
        """,
    )
    write(dags, "good.py", simple_dag("good"))
    bag = bag_of(dags)
    assert sorted(bag.dags) == ["good"]
    error = bag.import_errors[str(bad.resolve())]
    assert "cyclic" in error
    assert "a -> b -> c -> a" in error


def test_cycle_inside_with_block_becomes_import_error(dags):
    bad = write(
        dags,
        "cycle_with.py",
        """
        from zonda import DAG
        from zonda.operators import EmptyOperator

        with DAG("cyclic_with"):
            x = EmptyOperator(task_id="x")
            y = EmptyOperator(task_id="y")
            x >> y >> x
        """,
    )
    bag = bag_of(dags)
    assert bag.dags == {}
    error = bag.import_errors[str(bad.resolve())]
    assert "DagCycleError" in error
    assert "x -> y -> x" in error


def test_duplicate_dag_id_across_files_is_an_import_error(dags):
    first = write(dags, "a_first.py", simple_dag("same_id"))
    second = write(dags, "b_second.py", simple_dag("same_id"))
    bag = bag_of(dags)
    assert list(bag.dags) == ["same_id"]
    assert bag.get_dag("same_id").fileloc == str(first.resolve())
    error = bag.import_errors[str(second.resolve())]
    assert "same_id" in error
    assert str(first.resolve()) in error
    assert str(second.resolve()) in error
    assert str(first.resolve()) not in bag.import_errors


def test_unassigned_dags_are_found(dags):
    write(
        dags,
        "unassigned.py",
        """
        from zonda import DAG
        from zonda.operators import EmptyOperator

        def build(dag_id):
            d = DAG(dag_id)
            EmptyOperator(task_id="t", dag=d)

        build("from_function")

        with DAG("with_no_as"):
            EmptyOperator(task_id="t")

        [DAG(f"in_list_{i}") for i in range(2)]
        """,
    )
    bag = bag_of(dags)
    assert bag.import_errors == {}
    assert sorted(bag.dags) == ["from_function", "in_list_0", "in_list_1", "with_no_as"]
    assert bag.get_dag("with_no_as").task_ids == ["t"]


def test_dag_decorator_imported_from_package_after_DAG(dags):
    import zonda.dag_definition  # what any earlier `from zonda import DAG` does  # noqa: F401

    write(
        dags,
        "decorated.py",
        """
        from zonda import dag, task

        @dag(schedule=None)
        def decorated_pipeline(limit: int = 3):
            @task
            def hello():
                return 1
            hello()

        decorated_pipeline()
        """,
    )
    bag = bag_of(dags)
    assert bag.import_errors == {}
    assert list(bag.dags) == ["decorated_pipeline"]


def test_dag_decorator_dag_is_found_when_called(dags):
    write(
        dags,
        "decorated.py",
        """
        from zonda import task
        from zonda.dag_definition import dag

        @dag(schedule=None)
        def decorated_pipeline(limit: int = 3):
            @task
            def hello():
                return 1
            hello()

        decorated_pipeline()
        """,
    )
    bag = bag_of(dags)
    assert bag.import_errors == {}
    assert list(bag.dags) == ["decorated_pipeline"]


def test_file_defining_several_dags(dags):
    write(
        dags,
        "many.py",
        """
        from zonda import DAG
        first = DAG("first")
        second = DAG("second")
        """,
    )
    bag = bag_of(dags)
    assert sorted(bag.dags) == ["first", "second"]
    (path,) = bag.files
    assert sorted(bag.files[path].dag_ids) == ["first", "second"]


# --- collect_for / get_dag ----------------------------------------------------------------------------------


def test_collect_for_imports_only_files_mentioning_the_dag_id(dags, tmp_path):
    marker = tmp_path / "other_was_imported"
    write(dags, "wanted.py", simple_dag("wanted_pipeline"))
    other = write(
        dags,
        "other.py",
        simple_dag("other_pipeline", extra=f"import pathlib; pathlib.Path({str(marker)!r}).touch()"),
    )
    bag = DagBag(dags).collect_for("wanted_pipeline")
    assert bag.get_dag("wanted_pipeline").dag_id == "wanted_pipeline"
    assert not marker.exists()
    assert str(other.resolve()) not in bag.files
    # Importing the whole folder does import the other file.
    DagBag(dags).collect()
    assert marker.exists()


def test_collect_for_falls_back_to_every_file_when_id_is_built_dynamically(dags):
    write(
        dags,
        "dynamic.py",
        """
        from zonda import DAG
        name = "dyn" + "amic"
        DAG(name)
        """,
    )
    bag = DagBag(dags).collect_for("dynamic")
    assert "dynamic" in bag.dags


def test_get_dag_unknown_names_close_matches_and_import_errors(dags):
    write(dags, "a.py", simple_dag("user_processing"))
    write(dags, "b.py", simple_dag("user_reporting"))
    broken = write(dags, "broken.py", "from zonda import DAG\nraise ValueError('nope')\n")
    bag = bag_of(dags)
    with pytest.raises(DagNotFound) as info:
        bag.get_dag("user_procesing")
    message = str(info.value)
    assert "'user_procesing'" in message
    assert "did you mean" in message
    assert "user_processing" in message
    assert "failed to import" in message
    assert str(broken.resolve()) in message
    assert str(dags) in message


def test_get_dag_unknown_without_matches_or_errors(dags):
    write(dags, "a.py", simple_dag("alpha"))
    with pytest.raises(DagNotFound) as info:
        bag_of(dags).get_dag("zzzzzz")
    message = str(info.value)
    assert "'zzzzzz'" in message
    assert "did you mean" not in message
    assert "failed to import" not in message


def test_missing_dags_folder_is_an_empty_bag(tmp_path):
    bag = DagBag(tmp_path / "does_not_exist").collect()
    assert len(bag) == 0
    assert bag.import_errors == {}


def test_fixed_file_is_reimported_cleanly(dags):
    path = write(dags, "flaky.py", "from zonda import DAG\nraise ValueError('first')\n")
    assert str(path.resolve()) in bag_of(dags).import_errors
    write(dags, "flaky.py", simple_dag("flaky"))
    bag = bag_of(dags)
    assert bag.import_errors == {}
    assert list(bag.dags) == ["flaky"]


# --- known core bugs (strict xfail: they flip to failures once fixed, so the marker gets removed) -----------


def test_dag_file_can_import_helper_module_from_dags_folder(dags):
    write(dags, "common/__init__.py", "")
    write(dags, "common/helpers.py", "TASK_ID = 'from_helper'\n")
    write(
        dags,
        "uses_helper.py",
        """
        from zonda import DAG
        from zonda.operators import EmptyOperator
        from common.helpers import TASK_ID

        with DAG("uses_helper"):
            EmptyOperator(task_id=TASK_ID)
        """,
    )
    bag = bag_of(dags)
    assert bag.import_errors == {}
    assert bag.get_dag("uses_helper").task_ids == ["from_helper"]


def test_import_timeout_does_not_cancel_an_outer_alarm(dags):
    import signal

    write(dags, "a.py", simple_dag("a"))
    previous = signal.signal(signal.SIGALRM, lambda *_: None)
    remaining_before = signal.getitimer(signal.ITIMER_REAL)[0]
    signal.setitimer(signal.ITIMER_REAL, 120)
    try:
        DagBag(dags, import_timeout=5).collect()
        remaining = signal.getitimer(signal.ITIMER_REAL)[0]
    finally:
        signal.setitimer(signal.ITIMER_REAL, remaining_before)
        signal.signal(signal.SIGALRM, previous)
    assert remaining > 100


def test_import_timeout_in_a_thread_names_the_setting(dags):
    import threading

    slow = write(dags, "slow.py", "import time\nfrom zonda import DAG\nfor _ in range(40):\n    time.sleep(0.05)\n")
    write(dags, "good.py", simple_dag("good"))
    found: dict[str, DagBag] = {}
    thread = threading.Thread(target=lambda: found.setdefault("bag", DagBag(dags, import_timeout=0.3).collect()))
    thread.start()
    thread.join(10)
    bag = found["bag"]
    assert sorted(bag.dags) == ["good"]
    assert "core.dagbag_import_timeout" in bag.import_errors[str(slow.resolve())]


# --- a folder that would loop or block (issue 11) --------------------------------------------------------------


def _collect_within(folder: Path, seconds: float) -> DagBag:
    """``DagBag.collect`` in a daemon thread, so a walk that loops or an open that blocks fails the test instead
    of hanging it."""
    import threading

    box: dict[str, DagBag] = {}
    thread = threading.Thread(target=lambda: box.setdefault("bag", bag_of(folder)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert "bag" in box, f"DagBag.collect did not return within {seconds} s (a loop, or a blocking open)"
    return box["bag"]


def test_collect_in_process_skips_fifos_devices_and_link_loops(dags):
    import os

    write(dags, "good.py", simple_dag("good"))
    os.mkfifo(dags / "fifo.py")
    (dags / "zero.py").symlink_to("/dev/zero")
    (dags / "ping.py").symlink_to("pong.py")
    (dags / "pong.py").symlink_to("ping.py")
    (dags / "sub").mkdir()
    (dags / "sub" / "up").symlink_to("..")
    (dags / "sub" / "again").symlink_to("../sub")
    bag = _collect_within(dags, 30)
    assert list(bag.dags) == ["good"]
    assert sorted(Path(p).name for p in bag.import_errors) == ["fifo.py", "ping.py", "pong.py", "zero.py"]
    assert "FIFO" in bag.import_errors[str(dags / "fifo.py")]
    assert "character device" in bag.import_errors[str(dags / "zero.py")]


def test_safe_mode_reads_a_bounded_prefix_of_each_file(dags):
    mib = 1024 * 1024
    late = dags / "late.py"  # sparse: the words come only after 8 MiB, past the prefix safe mode reads
    with late.open("wb") as handle:
        handle.truncate(8 * mib)
        handle.seek(0, 2)
        handle.write(b"\n# zonda dag\n")
    early = dags / "early.py"
    with early.open("wb") as handle:
        handle.write(b"# zonda dag\n")
        handle.truncate(64 * mib)
    assert [p.name for p in list_dag_files(dags)] == ["early.py"]


def test_process_file_refuses_a_fifo_without_opening_it(dags):
    import os

    os.mkfifo(dags / "named.py")
    bag = DagBag(dags)
    result = bag.process_file(dags / "named.py")  # opening it for import would wait for a writer forever
    assert result.error is not None and "FIFO" in result.error and ".zondaignore" in result.error
