"""Property: ``zonda dags test`` and the scheduler reach identical final task states on random DAGs.

A seeded generator builds DAGs from chains, fan-outs, fan-ins, diamonds and random edges, gives every task one of
Airflow's trigger rules, a planned outcome (success, failure, a skip through ``ZondaSkipException``, or a failed
first try that its retry fixes; ``retries=1``, ``retry_delay=0``) and sometimes its own priority and weight rule,
and adds branches (``BranchPythonOperator`` and ``@task.branch``, following a random subset of their downstream
tasks), short circuits (either ``ignore_downstream_trigger_rules``) and mapped tasks (0 to 3 elements, an outcome
each). About one DAG in four has a setup and its teardown (some with ``on_failure_fail_dagrun``), so the runs'
final states, which ignore teardowns, are compared too. Outcomes are part of the generated DAG, never of timing.

Both paths load the same DAG file: ``zonda.testing.run_dag`` (the in-process runner behind ``dags test``) and a
real :class:`~zonda.scheduler.scheduler.Scheduler` with the SequentialExecutor (task processes, serialized DAGs in
a SQLite metastore) running one triggered run per DAG. Both run one task at a time and pick the next ready one
the same way (the decision engine's order: priority, then creation), so the states can only differ if what
each side decides differs. (With parallel tasks a DAG's states may depend on timing, in Airflow too: an
``all_success`` task below both a skip and a failure takes whichever it sees first.)

``ZONDA_PROPERTY_DAGS`` (default 500) and ``ZONDA_PROPERTY_SEED`` (default 12) choose the size and the DAGs; a
failure lists the disagreeing DAGs' specs with both sides' states, and the first three shrunk to a minimal DAG
that still disagrees.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import scheduler_helpers as h

RULES = (
    "all_success",
    "all_failed",
    "all_done",
    "all_done_min_one_success",
    "all_skipped",
    "one_success",
    "one_failed",
    "one_done",
    "none_failed",
    "none_failed_min_one_success",
    "none_skipped",
    "always",
)
OUTCOMES = ("success", "success", "success", "fail", "skip", "retry")
SKIPPER_OUTCOMES = ("success", "success", "success", "success", "fail", "skip", "retry")
KINDS = ("python", "branch", "branch_decorator", "short", "mapped", "group")

#: The run's own final state, beside its tasks' states (no task id has parentheses).
RUN_KEY = "(run)"
DAG_COUNT = int(os.environ.get("ZONDA_PROPERTY_DAGS", "500"))
#: Runs the scheduler has under way at once. Once a second it decides every running run again (its full scan), so
#: with all 500 under way each scan decided 500 runs and the scans cost more than the tasks. The DAGs are
#: independent, so a run's states do not depend on which other runs share its scheduler.
SCHEDULER_BATCH = int(os.environ.get("ZONDA_PROPERTY_BATCH", "50"))
SEED = int(os.environ.get("ZONDA_PROPERTY_SEED", "12"))

#: The DAG file both paths load: it builds every DAG from the JSON specs appended below it.
BUILDER = """
import json
from datetime import datetime

from zonda import DAG, task, task_group
from zonda.exceptions import ZondaSkipException
from zonda.operators import BranchPythonOperator, PythonOperator, ShortCircuitOperator


def act(outcome, **context):
    if outcome == "fail":
        raise RuntimeError("planned failure")
    if outcome == "skip":
        raise ZondaSkipException("planned skip")
    if outcome == "retry" and context["ti"].try_number == 1:
        raise RuntimeError("planned failure of the first try")
    return outcome


def follow(chosen, outcome, **context):
    act(outcome, **context)
    return chosen


def condition(value, outcome, **context):
    act(outcome, **context)
    return value


def build(spec):
    with DAG(spec["dag_id"], schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        tasks = []
        for t in spec["tasks"]:
            common = dict(
                task_id=t["id"],
                trigger_rule=t["rule"],
                retries=1 if t.get("retries") else 0,
                retry_delay=0,
                priority_weight=t.get("priority", 1),
                weight_rule=t.get("weight_rule", "downstream"),
            )
            if t["kind"] == "branch":
                op = BranchPythonOperator(
                    python_callable=follow, op_kwargs={"chosen": t["follow"], "outcome": t["outcome"]}, **common
                )
            elif t["kind"] == "branch_decorator":
                @task.branch(**common)
                def chooser(chosen, outcome, ti=None):
                    act(outcome, ti=ti)
                    return chosen

                op = chooser(t["follow"], t["outcome"]).operator
            elif t["kind"] == "short":
                op = ShortCircuitOperator(
                    python_callable=condition,
                    op_kwargs={"value": t["condition"], "outcome": t["outcome"]},
                    ignore_downstream_trigger_rules=t["ignore"],
                    **common,
                )
            elif t["kind"] == "group":
                # A mapped task group: one lane per element; "first" gets the element's outcome, "second"
                # the task's rule, so one lane's failure or skip must stay in its lane.
                rule = common["trigger_rule"]
                common.pop("task_id")

                @task_group(group_id=t["id"])
                def lane(outcome):
                    first = PythonOperator(
                        task_id="first", python_callable=act, op_kwargs={"outcome": outcome}, **common
                    )
                    second = PythonOperator(
                        task_id="second", python_callable=act, op_kwargs={"outcome": "success"},
                        trigger_rule=rule, retry_delay=0,
                    )
                    first >> second

                op = lane.expand(outcome=t["elements"])
            elif t["kind"] == "mapped":
                task_id = common.pop("task_id")
                op = PythonOperator.partial(task_id=task_id, python_callable=act, **common).expand(
                    op_kwargs=[{"outcome": outcome} for outcome in t["elements"]]
                )
            else:
                op = PythonOperator(python_callable=act, op_kwargs={"outcome": t["outcome"]}, **common)
            tasks.append(op)
        for up, down in spec["edges"]:
            tasks[up] >> tasks[down]
        for t, op in zip(spec["tasks"], tasks):
            if t.get("role") == "setup":
                op.as_setup()
            elif t.get("role") == "teardown":
                op.as_teardown(on_failure_fail_dagrun=t["fail_run"])
    return dag
"""

#: Appended after ``SPECS``: one module-level DAG per spec.
_LOOP = '\nfor _spec in json.loads(SPECS):\n    globals()["dag_" + _spec["dag_id"]] = build(_spec)\n'


# --- the generator ----------------------------------------------------------------------------------------------


def _edges(rng: random.Random, n: int) -> set[tuple[int, int]]:
    """Edges ``(i, j)`` with ``i < j`` (acyclic by construction) in one of the shapes."""
    shape = rng.choice(("chain", "fan_out", "fan_in", "diamond", "random", "random", "mixed"))
    edges: set[tuple[int, int]] = set()
    if shape == "chain":
        edges = {(i, i + 1) for i in range(n - 1)}
    elif shape == "fan_out":
        edges = {(0, j) for j in range(1, n)}
    elif shape == "fan_in":
        edges = {(i, n - 1) for i in range(n - 1)}
    elif shape == "diamond":
        edges = {(0, j) for j in range(1, n - 1)} | {(j, n - 1) for j in range(1, n - 1)}
    else:
        p = rng.choice((0.25, 0.4, 0.6))
        edges = {(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < p}
        if shape == "mixed":
            edges |= {(i, i + 1) for i in range(n - 1) if rng.random() < 0.5}
    return edges


def generate(rng: random.Random, dag_id: str) -> dict[str, Any]:
    n = rng.randint(2, 8)
    edges = _edges(rng, n)
    downstream: dict[int, list[int]] = {i: sorted(j for a, j in edges if a == i) for i in range(n)}
    tasks = []
    for i in range(n):
        kind = rng.choices(KINDS, weights=(10, 2, 1, 2, 2, 1))[0]
        if kind.startswith("branch") and not downstream[i]:
            kind = "python"
        rule = rng.choice(RULES) if rng.random() < 0.7 else "all_success"
        # A branch or short circuit mostly works, but may also fail, skip itself or need its retry.
        outcome = rng.choice(OUTCOMES) if kind in ("python", "mapped") else rng.choice(SKIPPER_OUTCOMES)
        t: dict[str, Any] = {"id": f"t{i}", "kind": kind, "rule": rule, "outcome": outcome}
        t["retries"] = rng.random() < 0.5
        if rng.random() < 0.3:  # otherwise the default: its own weight plus its descendants'
            t["priority"] = rng.randint(1, 5)
            t["weight_rule"] = rng.choice(("downstream", "upstream", "absolute"))
        if kind in ("mapped", "group"):
            t["elements"] = [rng.choice(OUTCOMES) for _ in range(rng.choice((0, 1, 2, 3)))]
        elif kind.startswith("branch"):
            k = rng.randint(0, len(downstream[i]))
            t["follow"] = sorted(f"t{j}" for j in rng.sample(downstream[i], k))
        elif kind == "short":
            t["condition"] = rng.random() < 0.3
            t["ignore"] = rng.random() < 0.5
        tasks.append(t)
    _add_roles(dag_id, tasks, edges)
    return {"dag_id": dag_id, "tasks": tasks, "edges": sorted(edges)}


def _add_roles(dag_id: str, tasks: list[dict[str, Any]], edges: set[tuple[int, int]]) -> None:
    """In about one DAG in four, one edge between plain tasks becomes a setup and its teardown (sometimes one
    whose failure fails the run). Drawn from the DAG's own generator, so the DAGs drawn before setups and
    teardowns were added stay the same."""
    rng = random.Random(f"roles-{dag_id}")
    plain = [(i, j) for i, j in sorted(edges) if tasks[i]["kind"] == tasks[j]["kind"] == "python"]
    if not plain or rng.random() >= 0.25:
        return
    i, j = rng.choice(plain)
    tasks[i]["role"] = "setup"
    tasks[j].update(role="teardown", rule="all_done_setup_success", fail_run=rng.random() < 0.3)


def generate_all(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [generate(rng, f"p{seed}_{i:04d}") for i in range(count)]


# --- running both paths -------------------------------------------------------------------------------------------


def write_dag_file(home: Path, specs: list[dict[str, Any]], name: str = "property_dags.py") -> Path:
    path = home / "dags" / name
    path.write_text(BUILDER + f"\n\nSPECS = {json.dumps(json.dumps(specs))}\n" + _LOOP, encoding="utf-8")
    return path


def in_process_states(path: Path, specs: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    from zonda.dagbag import DagBag
    from zonda.testing import run_dag

    bag = DagBag(None)
    bag.process_file(path)
    assert not bag.import_errors, bag.import_errors
    states = {}
    for spec in specs:
        result = run_dag(bag.dags[spec["dag_id"]])
        states[spec["dag_id"]] = {**result.states(), RUN_KEY: result.state}
    return states


def scheduler_states(settings: Any, metastore: Any, specs: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Each DAG's states after one triggered run, the runs driven ``SCHEDULER_BATCH`` at a time."""
    from zonda.executors.local import SequentialExecutor
    from zonda.scheduler.runs import trigger_dag
    from zonda.scheduler.scheduler import Scheduler

    h.store_dags(settings, metastore)
    states: dict[str, dict[str, str]] = {}
    for first in range(0, len(specs), SCHEDULER_BATCH):
        batch = specs[first : first + SCHEDULER_BATCH]
        runs = {spec["dag_id"]: int(trigger_dag(metastore.engine, spec["dag_id"])["id"]) for spec in batch}
        scheduler = Scheduler(settings, executor=SequentialExecutor(settings=settings), metastore=metastore)
        run_states = h.drive(scheduler, runs.values(), timeout=60 + 2 * len(batch))
        states.update(
            {
                dag_id: {**h.states_by_task(metastore.engine, run_id), RUN_KEY: run_states[run_id]}
                for dag_id, run_id in runs.items()
            }
        )
    return states


def disagreements(
    specs: list[dict[str, Any]], ours: dict[str, dict[str, str]], theirs: dict[str, dict[str, str]]
) -> list[str]:
    return [spec["dag_id"] for spec in specs if ours[spec["dag_id"]] != theirs[spec["dag_id"]]]


# --- shrinking a disagreement -----------------------------------------------------------------------------------


def _without_task(spec: dict[str, Any], index: int) -> dict[str, Any]:
    removed = spec["tasks"][index]["id"]
    tasks = [dict(t) for i, t in enumerate(spec["tasks"]) if i != index]
    for t in tasks:
        if "follow" in t:
            t["follow"] = [f for f in t["follow"] if f != removed]
    edges = [[a - (a > index), b - (b > index)] for a, b in spec["edges"] if index not in (a, b)]
    return _fix_branches({**spec, "tasks": tasks, "edges": edges})


def _fix_branches(spec: dict[str, Any]) -> dict[str, Any]:
    """A branch without downstream tasks becomes a plain task; it follows only its downstream tasks."""
    for i, t in enumerate(spec["tasks"]):
        if t["kind"].startswith("branch"):
            downstream = {spec["tasks"][b]["id"] for a, b in spec["edges"] if a == i}
            if not downstream:
                t["kind"] = "python"
                t.pop("follow", None)
            else:
                t["follow"] = sorted(set(t["follow"]) & downstream)
    return spec


def simpler(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every one-step simplification of ``spec``: fewer tasks first, then fewer edges, then plainer tasks."""
    out = [_without_task(spec, i) for i in range(len(spec["tasks"]))]
    for edge in spec["edges"]:
        out.append(
            _fix_branches(
                {**spec, "tasks": [dict(t) for t in spec["tasks"]], "edges": [e for e in spec["edges"] if e != edge]}
            )
        )
    plain = {"kind": "python", "rule": "all_success", "outcome": "success", "retries": False}
    for i, t in enumerate(spec["tasks"]):
        for key, value in plain.items():
            if t.get(key) != value:
                tasks = [dict(x) for x in spec["tasks"]]
                tasks[i][key] = value
                if key == "kind":
                    for extra in ("follow", "condition", "ignore", "elements"):
                        tasks[i].pop(extra, None)
                out.append({**spec, "tasks": tasks})
        if t.get("elements"):
            tasks = [dict(x) for x in spec["tasks"]]
            tasks[i]["elements"] = t["elements"][:-1]
            out.append({**spec, "tasks": tasks})
    return out


def shrink(home: Path, settings: Any, metastore: Any, spec: dict[str, Any], rounds: int = 25) -> dict[str, Any]:
    """The smallest simplification of ``spec`` that still disagrees, found greedily: each round runs every
    one-step simplification both ways in one batch and keeps the first that disagrees (bounded rounds)."""
    (home / "dags" / "property_dags.py").unlink(missing_ok=True)
    for round_number in range(rounds):
        candidates = simpler(spec)
        if not candidates:
            break
        for k, candidate in enumerate(candidates):
            candidate["dag_id"] = f"{spec['dag_id'].split('_s')[0]}_s{round_number}_{k}"
        path = write_dag_file(home, candidates, name="property_shrink.py")
        ours = in_process_states(path, candidates)
        theirs = scheduler_states(settings, metastore, candidates)
        differing = disagreements(candidates, ours, theirs)
        if not differing:
            break
        spec = next(c for c in candidates if c["dag_id"] == differing[0])
    return spec


@pytest.fixture
def configured(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    settings, metastore = h.configure(
        zonda_home,
        monkeypatch,
        None,
        # The property is about decisions: no per-DAG parse timeout or log noise to pay for 500 DAGs.
        {("core", "dagbag_import_timeout"): 120, ("logging", "logging_level"): "WARNING"},
    )
    try:
        yield zonda_home, settings, metastore
    finally:
        metastore.dispose()


def test_dags_test_and_the_scheduler_reach_the_same_states(configured: Any) -> None:
    home, settings, metastore = configured
    specs = generate_all(DAG_COUNT, SEED)
    path = write_dag_file(home, specs)
    started = time.perf_counter()
    ours = in_process_states(path, specs)
    middle = time.perf_counter()
    theirs = scheduler_states(settings, metastore, specs)
    ended = time.perf_counter()
    print(
        f"{len(specs)} DAGs, {sum(len(s['tasks']) for s in specs)} tasks: in-process {middle - started:.1f} s, "
        f"scheduler {ended - middle:.1f} s"
    )
    differing = disagreements(specs, ours, theirs)
    report = [
        f"{dag_id}: dags test {ours[dag_id]} != scheduler {theirs[dag_id]}; spec "
        + json.dumps(next(s for s in specs if s["dag_id"] == dag_id))
        for dag_id in differing[:10]
    ]
    for dag_id in differing[:3]:
        smallest = shrink(home, settings, metastore, next(s for s in specs if s["dag_id"] == dag_id))
        report.append(f"{dag_id} shrunk to {json.dumps(smallest)}")
    assert not differing, f"{len(differing)} of {len(specs)} DAGs disagree:\n" + "\n".join(report)


def test_the_generator_covers_every_rule_outcome_and_skipper() -> None:
    """The default size exercises each trigger rule, outcome, branch flavour and short-circuit mode."""
    specs = generate_all(DAG_COUNT, SEED)
    tasks = [t for s in specs for t in s["tasks"]]
    assert {t["rule"] for t in tasks} == {*RULES, "all_done_setup_success"}
    assert {(t.get("role"), t.get("fail_run")) for t in tasks} == {
        (None, None),
        ("setup", None),
        ("teardown", True),
        ("teardown", False),
    }
    assert {t["outcome"] for t in tasks if t["kind"] == "python"} == set(OUTCOMES)
    assert {t["retries"] for t in tasks} == {True, False}
    assert {t.get("weight_rule") for t in tasks} == {None, "downstream", "upstream", "absolute"}
    assert {t["kind"] for t in tasks} == set(KINDS)
    assert {len(t["elements"]) for t in tasks if t["kind"] == "mapped"} == {0, 1, 2, 3}
    assert {t["outcome"] for t in tasks if t["kind"] != "python"} == set(SKIPPER_OUTCOMES)
    assert {(t["condition"], t["ignore"]) for t in tasks if t["kind"] == "short"} == {
        (c, i) for c in (True, False) for i in (True, False)
    }
    assert any(t["kind"].startswith("branch") and not t["follow"] for t in tasks)
