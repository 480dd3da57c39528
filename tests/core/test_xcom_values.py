"""zonda.xcom: value encoding, the size limit and the in-memory backend."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from zonda.exceptions import XComSerializationError, XComSizeError
from zonda.xcom import (
    XCOM_RETURN_KEY,
    InMemoryXComBackend,
    XComBackend,
    decode_value,
    encode_value,
    human_size,
)


def push(backend, value, *, max_size, key=XCOM_RETURN_KEY, task_id="extract", map_index=-1):
    """What a task runner does: encode (size check included) first, then write."""
    text = encode_value(value, max_size=max_size, key=key, task_label=f"etl.{task_id}")
    backend.set(dag_id="etl", run_id="r1", task_id=task_id, map_index=map_index, key=key, value_json=text)


def test_return_key_is_airflows():
    assert XCOM_RETURN_KEY == "return_value"


def test_encode_decode_round_trip():
    value = {"rows": 3, "when": datetime(2024, 1, 1, tzinfo=UTC), "ids": (1, 2)}
    text = encode_value(value, max_size=1024, key="k", task_label="d.t")
    assert decode_value(text) == value


def test_value_at_the_limit_is_accepted():
    text = encode_value("x" * 8, max_size=10, key="k", task_label="d.t")  # '"xxxxxxxx"' is 10 bytes
    assert len(text) == 10


def test_over_limit_message_says_sizes_key_task_and_what_to_do():
    with pytest.raises(XComSizeError) as info:
        encode_value(["x" * 1000] * 3000, max_size=1024 * 1024, key="rows", task_label="etl.extract")
    message = str(info.value)
    size = len('"' + "x" * 1000 + '"') * 3000 + 2999 + 2
    assert f"{size:,} bytes" in message
    assert "2.9 MiB" in message
    assert "1.0 MiB (1,048,576 bytes)" in message
    assert "'rows'" in message
    assert "etl.extract" in message
    assert "file" in message
    assert "object store" in message
    assert "path" in message
    assert "[xcom] max_size" in message
    assert "ZONDA__XCOM__MAX_SIZE" in message
    assert "nothing was stored" in message


def test_nothing_is_stored_when_over_the_limit():
    backend = InMemoryXComBackend()
    push(backend, "small", max_size=100, key="ok")
    with pytest.raises(XComSizeError):
        push(backend, "y" * 200, max_size=100)
    assert len(backend) == 1
    assert backend.get(dag_id="etl", run_id="r1", task_id="extract", map_index=-1, key=XCOM_RETURN_KEY) is None


def test_size_is_measured_in_utf8_bytes():
    value = "é" * 10  # 10 characters, 20 bytes, 22 with the quotes
    encode_value(value, max_size=22, key="k", task_label="d.t")
    with pytest.raises(XComSizeError, match="22 B"):
        encode_value(value, max_size=21, key="k", task_label="d.t")


def test_zero_max_size_means_no_limit():
    encode_value("z" * 100_000, max_size=0, key="k", task_label="d.t")


def test_unserializable_value_names_key_and_task():
    with pytest.raises(XComSerializationError) as info:
        encode_value({"conn": threading.Lock()}, max_size=1024, key="return_value", task_label="etl.load")
    message = str(info.value)
    assert "'return_value'" in message
    assert "etl.load" in message
    assert "lock" in message.lower()


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1024**2, "1.0 MiB"),
        (5 * 1024**3, "5.0 GiB"),
    ],
)
def test_human_size(size, text):
    assert human_size(size) == text


def test_in_memory_backend_satisfies_protocol():
    assert isinstance(InMemoryXComBackend(), XComBackend)


def test_set_get_and_overwrite():
    backend = InMemoryXComBackend()
    args = {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": -1, "key": "k"}
    assert backend.get(**args) is None
    backend.set(**args, value_json="1")
    backend.set(**args, value_json="2")
    assert backend.get(**args) == "2"
    assert backend.get(**{**args, "run_id": "other"}) is None
    assert backend.get(**{**args, "key": "other"}) is None


def test_get_many_orders_by_task_ids_then_map_index_and_filters():
    backend = InMemoryXComBackend()
    for task_id, map_index, value in [("b", 2, "b2"), ("a", -1, "a"), ("b", 0, "b0"), ("b", 1, "b1")]:
        backend.set(dag_id="d", run_id="r", task_id=task_id, map_index=map_index, key="k", value_json=value)
    backend.set(dag_id="d", run_id="r", task_id="a", map_index=-1, key="other", value_json="no")
    backend.set(dag_id="d", run_id="r2", task_id="a", map_index=-1, key="k", value_json="no")

    assert backend.get_many("d", "r", ["b", "a", "missing"], "k") == [
        ("b", 0, "b0"),
        ("b", 1, "b1"),
        ("b", 2, "b2"),
        ("a", -1, "a"),
    ]
    assert backend.get_many("d", "r", ["b"], "k", map_indexes=[2, 0]) == [("b", 0, "b0"), ("b", 2, "b2")]
    assert backend.get_many("d", "r", ["a"], "nothing") == []


def test_clear_one_map_index_or_all():
    backend = InMemoryXComBackend()
    for map_index in (0, 1):
        for key in ("k1", "k2"):
            backend.set(dag_id="d", run_id="r", task_id="t", map_index=map_index, key=key, value_json="1")
    backend.set(dag_id="d", run_id="r", task_id="keep", map_index=-1, key="k1", value_json="1")

    backend.clear("d", "r", "t", 0)
    assert backend.get_many("d", "r", ["t"], "k1") == [("t", 1, "1")]
    backend.clear("d", "r", "t", None)
    assert backend.get_many("d", "r", ["t"], "k2") == []
    assert len(backend) == 1
    backend.clear("d", "r", "never-ran", -1)  # no error
