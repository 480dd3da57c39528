"""Where a run's state goes: the metastore (``dags test``) or memory (``tasks test``, which records nothing).

The runner talks to one small interface, :class:`RunStore`, so the same code path runs a task whether its
state is persisted or not. The metastore implementation uses SQLAlchemy Core statements on the Core tables of
:mod:`zonda.metastore.tables` and never imports ``sqlalchemy.orm`` or the models (that import alone would cost
more than a short ``dags test``): one short transaction per state change keeps other readers (the CLI, later
the UI) up to date while the per-task cost stays well under a millisecond.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from zonda.dag_definition import DAG
    from zonda.metastore.db import Metastore


@dataclass
class DagRunInfo:
    """The DAG run a task instance belongs to (``dag_run`` in the template context)."""

    dag_id: str
    run_id: str
    logical_date: datetime | None
    data_interval_start: datetime | None
    data_interval_end: datetime | None
    run_type: str = "manual"
    conf: dict[str, Any] = field(default_factory=dict)
    state: str = "running"
    queued_at: datetime | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    id: int | None = None
    external_trigger: bool = True

    @classmethod
    def from_row(cls, row: Any) -> DagRunInfo:
        """From a ``dag_run`` row (its ``conf`` JSON decoded)."""
        from zonda import serde

        return cls(
            dag_id=row.dag_id,
            run_id=row.run_id,
            logical_date=row.logical_date,
            data_interval_start=row.data_interval_start,
            data_interval_end=row.data_interval_end,
            run_type=row.run_type,
            conf=serde.loads(row.conf) if row.conf else {},
            state=row.state,
            queued_at=row.queued_at,
            start_date=row.start_date,
            end_date=row.end_date,
            id=row.id,
            external_trigger=bool(row.external_trigger) if row.external_trigger is not None else True,
        )


class RunStore(Protocol):
    def sync_dag(self, dag: DAG, *, paused_at_creation: bool = True) -> None: ...

    def create_dag_run(self, run: DagRunInfo) -> int: ...

    def update_dag_run(self, run: DagRunInfo) -> None: ...

    def create_task_instances(self, run: DagRunInfo, rows: Sequence[Mapping[str, Any]]) -> None: ...

    def expand_task_instances(self, run: DagRunInfo, task_id: str, count: int, row: Mapping[str, Any]) -> None: ...

    def update_task_instance(
        self, run: DagRunInfo, task_id: str, map_index: int, values: Mapping[str, Any]
    ) -> None: ...

    def start_task_instance_in_process(
        self, run: DagRunInfo, task_id: str, map_index: int, values: Mapping[str, Any]
    ) -> bool: ...

    def finish_owned_task_instance(
        self, run: DagRunInfo, task_id: str, map_index: int, values: Mapping[str, Any], *, pid: int | None
    ) -> bool: ...

    def settle_task_instance(
        self, run: DagRunInfo, task_id: str, map_index: int, state: Any, *, end_date: datetime
    ) -> bool: ...

    def set_xcom(self, run: DagRunInfo, task_id: str, map_index: int, key: str, value_json: str) -> None: ...

    def get_xcoms(self, run: DagRunInfo, task_ids: Sequence[str], key: str) -> list[tuple[str, int, str | None]]: ...

    def clear_xcoms(self, run: DagRunInfo, task_id: str, map_index: int) -> None: ...

    # What the task context reads lazily (``prev_*_success``, ``expanded_ti_count``, ``task_reschedule_count``).

    def previous_successful_run(self, run: DagRunInfo) -> DagRunInfo | None: ...

    def mapped_instance_count(self, run: DagRunInfo, task_id: str) -> int: ...

    def reschedule_count(self, run: DagRunInfo, task_id: str, map_index: int, try_number: int) -> int: ...


class MemoryRunStore:
    """Keeps everything in dicts; nothing outlives the process."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.runs: dict[int, DagRunInfo] = {}
        self.task_instances: dict[tuple[int, str, int], dict[str, Any]] = {}
        self.xcoms: dict[tuple[int, str, int, str], str] = {}

    def sync_dag(self, dag: DAG, *, paused_at_creation: bool = True) -> None:
        return None

    def create_dag_run(self, run: DagRunInfo) -> int:
        run.id = next(self._ids)
        self.runs[run.id] = run
        return run.id

    def update_dag_run(self, run: DagRunInfo) -> None:
        return None

    def create_task_instances(self, run: DagRunInfo, rows: Sequence[Mapping[str, Any]]) -> None:
        for row in rows:
            self.task_instances[(run.id, row["task_id"], row.get("map_index", -1))] = dict(row)  # type: ignore[index]

    def expand_task_instances(self, run: DagRunInfo, task_id: str, count: int, row: Mapping[str, Any]) -> None:
        base = self.task_instances.pop((run.id, task_id, -1), dict(row))  # type: ignore[arg-type]
        for index in range(count):
            self.task_instances[(run.id, task_id, index)] = {**base, **row, "map_index": index}  # type: ignore[index]

    def update_task_instance(self, run: DagRunInfo, task_id: str, map_index: int, values: Mapping[str, Any]) -> None:
        self.task_instances.setdefault((run.id, task_id, map_index), {}).update(values)  # type: ignore[arg-type]

    # The in-process runner's state changes: nothing else shares this memory, so they always apply.

    def start_task_instance_in_process(
        self, run: DagRunInfo, task_id: str, map_index: int, values: Mapping[str, Any]
    ) -> bool:
        self.update_task_instance(run, task_id, map_index, values)
        return True

    def finish_owned_task_instance(
        self, run: DagRunInfo, task_id: str, map_index: int, values: Mapping[str, Any], *, pid: int | None
    ) -> bool:
        self.update_task_instance(run, task_id, map_index, values)
        return True

    def settle_task_instance(
        self, run: DagRunInfo, task_id: str, map_index: int, state: Any, *, end_date: datetime
    ) -> bool:
        self.update_task_instance(run, task_id, map_index, {"state": str(state), "end_date": end_date})
        return True

    def set_xcom(self, run: DagRunInfo, task_id: str, map_index: int, key: str, value_json: str) -> None:
        self.xcoms[(run.id, task_id, map_index, key)] = value_json  # type: ignore[index]

    def get_xcoms(self, run: DagRunInfo, task_ids: Sequence[str], key: str) -> list[tuple[str, int, str | None]]:
        wanted = set(task_ids)
        found = [
            (tid, index, value)
            for (run_id, tid, index, k), value in self.xcoms.items()
            if run_id == run.id and tid in wanted and k == key
        ]
        return sorted(found, key=lambda item: (item[0], item[1]))

    def clear_xcoms(self, run: DagRunInfo, task_id: str, map_index: int) -> None:
        for item in [k for k in self.xcoms if k[0] == run.id and k[1] == task_id and k[2] == map_index]:
            del self.xcoms[item]

    def previous_successful_run(self, run: DagRunInfo) -> DagRunInfo | None:
        before = run.logical_date
        earlier = [
            r
            for r in self.runs.values()
            if r.dag_id == run.dag_id and r.state == "success" and before and r.logical_date and r.logical_date < before
        ]
        return max(earlier, key=lambda r: r.logical_date, default=None)  # type: ignore[arg-type,return-value]

    def mapped_instance_count(self, run: DagRunInfo, task_id: str) -> int:
        return sum(1 for (rid, tid, index) in self.task_instances if rid == run.id and tid == task_id and index >= 0)

    def reschedule_count(self, run: DagRunInfo, task_id: str, map_index: int, try_number: int) -> int:
        return 0  # nothing reschedules without a scheduler


class MetastoreRunStore:
    """Persists runs, task instances and XComs in the metastore."""

    def __init__(self, metastore: Metastore) -> None:
        from zonda.metastore import tables

        self.metastore = metastore
        self.engine = metastore.engine
        self.t = tables
        self._conn: Any = None
        #: Seconds the writes and reads that decide a try's fate (load, claim, end state) keep retrying while
        #: the metastore is unavailable; 0: a few quick retries only. Task processes under a scheduler set it
        #: from ``[database] task_end_state_retry_timeout``.
        self.outage_retry_timeout = 0.0

    def sync_dag(self, dag: DAG, *, paused_at_creation: bool = True) -> None:
        """Upsert the DAG row and its serialized structure (what the UI and scheduler read). A new row is paused
        as the DAG processor would store it (``paused_at_creation``: ``[core] dags_are_paused_at_creation``)."""
        from sqlalchemy import delete, insert, select, update

        from zonda.metastore.dag_tags import replace_dag_tags
        from zonda.pause_at_creation import paused_at_creation as new_row_paused
        from zonda.serialization import serialize_dag
        from zonda.timezone import utcnow

        dag_t, ser_t = self.t.dag, self.t.serialized_dag
        data, digest = serialize_dag(dag)
        now = utcnow()
        dag_values = {
            "fileloc": dag.fileloc,
            "is_active": True,
            "description": dag.description,
            "schedule": dag.timetable.summary,
            "timetable_description": dag.timetable.summary,
            "tags": _json(dag.tags),
            "owners": ", ".join(sorted({getattr(t, "owner", "zonda") for t in dag.tasks})) or "zonda",
            "max_active_runs": dag.max_active_runs,
            "max_active_tasks": dag.max_active_tasks,
            "has_import_errors": False,
            "last_parsed_time": now,
            "dag_display_name": dag.dag_display_name,
        }
        with self.engine.begin() as conn:
            exists = conn.execute(select(dag_t.c.dag_id).where(dag_t.c.dag_id == dag.dag_id)).first()
            if exists:
                conn.execute(update(dag_t).where(dag_t.c.dag_id == dag.dag_id).values(**dag_values))
            else:
                paused = new_row_paused(dag.is_paused_upon_creation, paused_at_creation)
                conn.execute(insert(dag_t).values(dag_id=dag.dag_id, is_paused=paused, **dag_values))
            replace_dag_tags(conn, dag.dag_id, dag.tags or ())
            current = conn.execute(select(ser_t.c.dag_hash).where(ser_t.c.dag_id == dag.dag_id)).scalar()
            if current != digest:
                conn.execute(delete(ser_t).where(ser_t.c.dag_id == dag.dag_id))
                conn.execute(
                    insert(ser_t).values(
                        dag_id=dag.dag_id, data=data, dag_hash=digest, fileloc=dag.fileloc, last_updated=now
                    )
                )

    def create_dag_run(self, run: DagRunInfo) -> int:
        from sqlalchemy import delete, insert

        dr = self.t.dag_run
        with self.engine.begin() as conn:
            # Re-running the same run id (``dags test`` twice for one date) replaces the old run, as Airflow does.
            conn.execute(delete(dr).where(dr.c.dag_id == run.dag_id, dr.c.run_id == run.run_id))
            result = conn.execute(insert(dr).values(**_run_values(run)))
            run.id = int(result.inserted_primary_key[0])
        return run.id

    def update_dag_run(self, run: DagRunInfo) -> None:
        """Record the end of a run this process ran (``run.state`` success or failed, ``run.end_date``)."""
        from zonda.operations import transitions
        from zonda.state import DagRunState
        from zonda.timezone import utcnow

        with self.engine.begin() as conn:
            transitions.finish_run(conn, run.id, DagRunState(run.state), end_date=run.end_date or utcnow())

    def create_task_instances(self, run: DagRunInfo, rows: Sequence[Mapping[str, Any]]) -> None:
        from sqlalchemy import insert

        if not rows:
            return
        base = {"dag_run_id": run.id, "dag_id": run.dag_id, "run_id": run.run_id}
        with self.engine.begin() as conn:
            conn.execute(insert(self.t.task_instance), [{**_ti_defaults(), **base, **row} for row in rows])

    def expand_task_instances(self, run: DagRunInfo, task_id: str, count: int, row: Mapping[str, Any]) -> None:
        from sqlalchemy import insert, update

        from zonda.operations import transitions

        ti = self.t.task_instance
        base = {"dag_run_id": run.id, "dag_id": run.dag_id, "run_id": run.run_id, "task_id": task_id}
        with self.engine.begin() as conn:
            conn.execute(
                update(ti)
                .where(ti.c.dag_run_id == run.id, ti.c.task_id == task_id, ti.c.map_index == -1)
                .values(map_index=0)
            )
            if row:
                transitions.update_ti_fields(conn, run.id, task_id, 0, row)
            if count > 1:
                conn.execute(insert(ti), [{**_ti_defaults(), **base, **row, "map_index": i} for i in range(1, count)])

    def update_task_instance(self, run: DagRunInfo, task_id: str, map_index: int, values: Mapping[str, Any]) -> None:
        """Write columns of one instance other than its state (states change through the transitions)."""
        from zonda.operations import transitions

        self._transact(
            lambda conn: transitions.update_ti_fields(conn, run.id, task_id, map_index, values),
            "writing a task instance",
        )

    def _transact(self, write: Any, what: str, *, patient: bool = False) -> int:
        """Run ``write(conn)`` (one statement) on the store's connection, retrying a transient error; the
        number of rows it changed. ``patient``: keep retrying for ``outage_retry_timeout`` seconds (a try's
        claim and end state must survive a database restart)."""

        def attempt() -> int:
            conn = self._connection()
            try:
                changed = write(conn)
                conn.commit()
            except BaseException:
                self._recover(conn)
                raise
            return int(changed)

        return self._retry(attempt, what, patient)

    def _retry(self, attempt: Any, what: str, patient: bool) -> Any:
        from zonda.metastore.retry import retry_for, retry_transient

        if patient and self.outage_retry_timeout > 0:
            return retry_for(attempt, what=what, timeout=self.outage_retry_timeout)
        return retry_transient(attempt, what=what)

    def _recover(self, conn: Any) -> None:
        """After an error on the kept connection: roll back, and drop it when the server dropped it (the next
        statement opens a fresh one, in autocommit mode again)."""
        import contextlib

        with contextlib.suppress(Exception):
            conn.rollback()
        if conn.invalidated or conn.closed:
            with contextlib.suppress(Exception):
                conn.close()
            if self._conn is conn:
                self._conn = None

    def _connection(self) -> Any:
        """The store's long-lived connection, in autocommit mode.

        Everything sent on it is one statement (a single-row UPDATE, a SELECT), so a transaction around it
        would only add round trips: psycopg opens one with a separate BEGIN and the commit is another, three
        round trips for one UPDATE on the hot path of every task. Multi-statement work uses ``engine.begin()``.
        The ``commit()`` / ``rollback()`` calls on it are no-ops kept for the day a statement is added."""
        if self._conn is None or self._conn.closed:
            self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def set_xcom(self, run: DagRunInfo, task_id: str, map_index: int, key: str, value_json: str) -> None:
        from sqlalchemy import delete, insert

        from zonda.timezone import utcnow

        x = self.t.xcom
        where = (x.c.dag_run_id == run.id, x.c.task_id == task_id, x.c.map_index == map_index, x.c.key == key)
        with self.engine.begin() as conn:
            conn.execute(delete(x).where(*where))
            conn.execute(
                insert(x).values(
                    dag_run_id=run.id,
                    task_id=task_id,
                    map_index=map_index,
                    key=key,
                    dag_id=run.dag_id,
                    run_id=run.run_id,
                    value=value_json,
                    timestamp=utcnow(),
                )
            )

    def get_xcoms(self, run: DagRunInfo, task_ids: Sequence[str], key: str) -> list[tuple[str, int, str | None]]:
        from sqlalchemy import select

        x = self.t.xcom
        conn = self._connection()
        rows = conn.execute(
            select(x.c.task_id, x.c.map_index, x.c.value)
            .where(x.c.dag_run_id == run.id, x.c.task_id.in_(list(task_ids)), x.c.key == key)
            .order_by(x.c.task_id, x.c.map_index)
        ).all()
        conn.rollback()
        return [(r[0], r[1], r[2]) for r in rows]

    def clear_xcoms(self, run: DagRunInfo, task_id: str, map_index: int) -> None:
        from sqlalchemy import delete

        x = self.t.xcom
        with self.engine.begin() as conn:
            conn.execute(delete(x).where(x.c.dag_run_id == run.id, x.c.task_id == task_id, x.c.map_index == map_index))

    # --- ownership, under a scheduler ---------------------------------------------------------------------

    # Each state change below is a named transition of zonda.operations.transitions (a compare-and-set, its
    # statement prebuilt with bound parameters); the store brings the connection and the retries. ``values``
    # may carry the target as "state" (the callers' dicts); the transition gets it as its own argument.

    def claim_task_instance(
        self,
        run: DagRunInfo,
        task_id: str,
        map_index: int,
        values: Mapping[str, Any],
        *,
        try_number: int | None = None,
    ) -> bool:
        """queued -> running, only if it is still queued (and, with ``try_number``, still holds that try number:
        a workload for an older try delivered late never takes a newer one): two processes never run one try."""
        from zonda.operations import transitions

        fields = _without_state(values)
        changed = self._transact(
            lambda conn: transitions.start_ti(conn, run.id, task_id, map_index, fields, try_number=try_number),
            "claiming a task instance",
            patient=True,
        )
        return changed == 1

    def start_task_instance_in_process(
        self, run: DagRunInfo, task_id: str, map_index: int, values: Mapping[str, Any]
    ) -> bool:
        """Not started or waiting for a retry -> running, in a run this process runs by itself."""
        from zonda.operations import transitions

        fields = _without_state(values)
        changed = self._transact(
            lambda conn: transitions.start_ti_in_process(conn, run.id, task_id, map_index, fields),
            "starting a task instance",
        )
        return changed == 1

    def finish_owned_task_instance(
        self, run: DagRunInfo, task_id: str, map_index: int, values: Mapping[str, Any], *, pid: int | None
    ) -> bool:
        """running -> end state (``values["state"]``), only while this process (pid) still owns the row."""
        from zonda.operations import transitions
        from zonda.state import TaskInstanceState

        state = TaskInstanceState(values["state"])
        fields = _without_state(values)
        changed = self._transact(
            lambda conn: transitions.finish_ti(conn, run.id, task_id, map_index, state, fields, pid=pid),
            "ending a task instance",
            patient=True,
        )
        return changed == 1

    def settle_task_instance(
        self, run: DagRunInfo, task_id: str, map_index: int, state: Any, *, end_date: datetime
    ) -> bool:
        """An instance that will not run (trigger rule, branch, unexpandable) ends, in a run this process runs."""
        from zonda.operations import transitions

        changed = self._transact(
            lambda conn: transitions.settle_ti_in_process(conn, run.id, task_id, map_index, state, end_date=end_date),
            "settling a task instance",
        )
        return changed == 1

    def heartbeat_task_instance(self, run: DagRunInfo, task_id: str, map_index: int, *, pid: int) -> bool:
        """Refresh ``last_heartbeat_at``; False when the row is no longer running in this process."""
        from zonda.operations import transitions

        changed = self._transact(
            lambda conn: transitions.heartbeat_ti(conn, run.id, task_id, map_index, pid=pid),
            "heart-beating a task instance",
        )
        return changed == 1

    def defer_task_instance(
        self,
        run: DagRunInfo,
        task_id: str,
        map_index: int,
        *,
        pid: int | None,
        classpath: str,
        trigger_kwargs: str,
        values: Mapping[str, Any],
    ) -> int | None:
        """Insert the trigger row and move the instance ``running -> deferred`` in one transaction, only while
        ``pid`` owns the row. The trigger id, or None (nothing written) when it no longer does."""
        from sqlalchemy import insert

        from zonda.operations import transitions
        from zonda.timezone import utcnow

        tr = self.t.trigger
        now = utcnow()
        conn = self.engine.connect()  # two statements, one transaction: not the autocommit connection
        try:
            trigger_id = conn.execute(
                insert(tr).values(classpath=classpath, kwargs=trigger_kwargs, created_date=now, triggerer_id=None)
            ).inserted_primary_key[0]
            changed = transitions.defer_ti(
                conn, run.id, task_id, map_index, trigger_id=trigger_id, values=_without_state(values), pid=pid
            )
            if changed != 1:
                conn.rollback()
                return None
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()
        return int(trigger_id)

    def reschedule_task_instance(
        self, run: DagRunInfo, task_id: str, map_index: int, *, pid: int | None, values: Mapping[str, Any]
    ) -> bool:
        """``running -> up_for_reschedule`` (a reschedule-mode sensor hands its slot back), while owned."""
        from zonda.operations import transitions

        fields = _without_state(values)
        changed = self._transact(
            lambda conn: transitions.reschedule_ti(conn, run.id, task_id, map_index, fields, pid=pid),
            "rescheduling a task instance",
            patient=True,
        )
        return changed == 1

    def skip_task_instances(self, run: DagRunInfo, task_ids: Iterable[str]) -> None:
        """Mark not-yet-started instances of these tasks skipped (a branch's decision)."""
        from zonda.operations import transitions
        from zonda.timezone import utcnow

        ids = list(task_ids)
        self._transact(
            lambda conn: transitions.skip_branch_tis(conn, run.id, ids, now=utcnow()), "skipping task instances"
        )

    def load_task_instance(self, ti_id: int) -> dict[str, Any] | None:
        """The task instance row with its DAG run's fields (``run_*``), for a worker starting a workload."""
        return self._load_task_instance(self.t.task_instance.c.id == ti_id)

    def find_task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> dict[str, Any] | None:
        """:meth:`load_task_instance` by the instance's key, for a workload that came from another machine
        (``zonda tasks execute``), which names the instance rather than a row id of this metastore."""
        ti, dr = self.t.task_instance, self.t.dag_run
        return self._load_task_instance(
            dr.c.dag_id == dag_id, dr.c.run_id == run_id, ti.c.task_id == task_id, ti.c.map_index == map_index
        )

    def _load_task_instance(self, *where: Any) -> dict[str, Any] | None:
        """Retried like a claim: in a task process kept idle between workloads, this is the first statement
        on a connection the server may have dropped meanwhile (a restart, ``pg_terminate_backend``)."""
        return self._retry(lambda: self._load_task_instance_once(*where), "loading a task instance", True)

    def _load_task_instance_once(self, *where: Any) -> dict[str, Any] | None:
        conn = self._connection()
        try:
            return self._select_task_instance(conn, where)
        except BaseException:
            self._recover(conn)
            raise

    def _select_task_instance(self, conn: Any, where: tuple[Any, ...]) -> dict[str, Any] | None:
        from sqlalchemy import select

        ti, dr = self.t.task_instance, self.t.dag_run
        row = conn.execute(
            select(
                ti,
                dr.c.logical_date.label("run_logical_date"),
                dr.c.data_interval_start.label("run_data_interval_start"),
                dr.c.data_interval_end.label("run_data_interval_end"),
                dr.c.run_type.label("run_run_type"),
                dr.c.conf.label("run_conf"),
                dr.c.start_date.label("run_start_date"),
                dr.c.state.label("run_state"),
            )
            .join(dr, dr.c.id == ti.c.dag_run_id)
            .where(*where)
        ).first()
        conn.rollback()
        return dict(row._mapping) if row is not None else None

    def previous_successful_run(self, run: DagRunInfo) -> DagRunInfo | None:
        """The DAG's latest successful run with an earlier logical date (None for a run without one)."""
        from sqlalchemy import select

        dr = self.t.dag_run
        if run.logical_date is None:
            return None
        query = (
            select(dr)
            .where(dr.c.dag_id == run.dag_id, dr.c.state == "success", dr.c.logical_date < run.logical_date)
            .order_by(dr.c.logical_date.desc())
            .limit(1)
        )
        row = self._read(lambda conn: conn.execute(query).first(), "reading the previous successful run")
        return DagRunInfo.from_row(row) if row is not None else None

    def _read(self, read: Any, what: str) -> Any:
        """``read(conn)`` on a fresh connection, retried through a metastore outage as the try's own writes are:
        the task context's query-backed values (``prev_*_success``, ``expanded_ti_count``...) are read while
        the task's code runs, and an outage then must delay the task, not fail its try."""

        def attempt() -> Any:
            with self.engine.connect() as conn:
                return read(conn)

        return self._retry(attempt, what, True)

    def mapped_instance_count(self, run: DagRunInfo, task_id: str) -> int:
        """How many instances a mapped task expanded into in this run."""
        from sqlalchemy import func, select

        ti = self.t.task_instance
        query = (
            select(func.count())
            .select_from(ti)
            .where(ti.c.dag_run_id == run.id, ti.c.task_id == task_id, ti.c.map_index >= 0)
        )
        return int(self._read(lambda conn: conn.execute(query).scalar(), "counting a task's mapped instances") or 0)

    def reschedule_count(self, run: DagRunInfo, task_id: str, map_index: int, try_number: int) -> int:
        """How many times this try handed its slot back (``up_for_reschedule`` phases in the history)."""
        from sqlalchemy import func, select

        h = self.t.task_instance_history
        query = (
            select(func.count())
            .select_from(h)
            .where(
                h.c.dag_run_id == run.id,
                h.c.task_id == task_id,
                h.c.map_index == map_index,
                h.c.try_number == try_number,
                h.c.state == "up_for_reschedule",
            )
        )
        return int(self._read(lambda conn: conn.execute(query).scalar(), "counting a try's reschedules") or 0)

    def previous_task_states(self, dag_id: str, task_id: str, before: datetime | None) -> Iterable[str | None]:
        """States of ``task_id`` in the latest earlier run (for ``depends_on_past``)."""
        from sqlalchemy import select

        dr, ti = self.t.dag_run, self.t.task_instance
        if before is None:
            return []
        with self.engine.connect() as conn:
            prev = conn.execute(
                select(dr.c.id)
                .where(dr.c.dag_id == dag_id, dr.c.logical_date < before)
                .order_by(dr.c.logical_date.desc())
                .limit(1)
            ).scalar()
            if prev is None:
                return []
            return [
                r[0] for r in conn.execute(select(ti.c.state).where(ti.c.dag_run_id == prev, ti.c.task_id == task_id))
            ]


def _json(value: Any) -> str:
    from zonda import serde

    return serde.dumps(value)


def _run_values(run: DagRunInfo) -> dict[str, Any]:
    return {
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "logical_date": run.logical_date,
        "data_interval_start": run.data_interval_start,
        "data_interval_end": run.data_interval_end,
        "run_type": run.run_type,
        "state": run.state,
        "conf": _json(run.conf or {}),
        "queued_at": run.queued_at,
        "start_date": run.start_date,
        "end_date": run.end_date,
        "external_trigger": run.external_trigger,
    }


def _without_state(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if key != "state"}


def _ti_defaults() -> dict[str, Any]:
    return {"map_index": -1, "state": None, "try_number": 0}


class XComBackendStore:
    """A run store whose XComs go to a plugin's backend (hook ``zonda_xcom_backend``); runs and task
    instances still go to the wrapped store."""

    def __init__(self, store: Any, backend: Any) -> None:
        self._store = store
        self.backend = backend

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def set_xcom(self, run: DagRunInfo, task_id: str, map_index: int, key: str, value_json: str) -> None:
        self.backend.set(
            dag_id=run.dag_id, run_id=run.run_id, task_id=task_id, map_index=map_index, key=key, value_json=value_json
        )

    def get_xcoms(self, run: DagRunInfo, task_ids: Sequence[str], key: str) -> list[tuple[str, int, str | None]]:
        return list(self.backend.get_many(run.dag_id, run.run_id, list(task_ids), key))

    def clear_xcoms(self, run: DagRunInfo, task_id: str, map_index: int) -> None:
        self.backend.clear(run.dag_id, run.run_id, task_id, map_index)
