"""The audit log operations: record and list, newest first, filtered; secrets in details never stored."""

from __future__ import annotations

import json

from sqlalchemy import select

from zonda.metastore import tables as t
from zonda.operations.audit import list_entries, record


def test_record_and_list_newest_first_with_filters(metastore) -> None:
    record(metastore.engine, "alice", "dag.pause", "etl", {"why": "maintenance"})
    record(metastore.engine, "bob", "variable.set", "threshold")
    record(metastore.engine, None, "login.failure", "mallory")
    entries = list_entries(metastore.engine)
    assert [(e.username, e.action, e.target) for e in entries] == [
        (None, "login.failure", "mallory"),
        ("bob", "variable.set", "threshold"),
        ("alice", "dag.pause", "etl"),
    ]
    assert entries[2].details == {"why": "maintenance"} and entries[1].details == {}
    assert [e.action for e in list_entries(metastore.engine, user="alice")] == ["dag.pause"]
    assert [e.target for e in list_entries(metastore.engine, action="variable.set")] == ["threshold"]
    assert [e.username for e in list_entries(metastore.engine, target="mallory")] == [None]
    assert [e.action for e in list_entries(metastore.engine, limit=1, offset=1)] == ["variable.set"]


def test_secrets_in_details_are_masked_before_they_are_stored(metastore) -> None:
    from zonda.masking import mask_secret

    mask_secret("hunter2-very-secret")
    record(metastore.engine, "op", "connection.edit", "db", {"password": "anything", "note": "hunter2-very-secret"})
    with metastore.engine.connect() as conn:
        stored = conn.execute(select(t.audit_log.c.details)).scalar_one()
    assert "hunter2-very-secret" not in stored and "anything" not in stored
    assert json.loads(stored) == {"note": "***", "password": "***"}


def test_long_targets_are_cut_to_fit(metastore) -> None:
    record(metastore.engine, "u" * 300, "x" * 150, "t" * 2000)
    [entry] = list_entries(metastore.engine)
    assert (len(entry.username), len(entry.action), len(entry.target)) == (256, 100, 1000)
