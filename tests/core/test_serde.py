"""zonda.serde: faithful JSON round trips for XCom values and params."""

from __future__ import annotations

import enum
import json
import math
import os
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from zonda import serde
from zonda.exceptions import XComSerializationError

PARIS = ZoneInfo("Europe/Paris")

ROUND_TRIPS = [
    None,
    True,
    False,
    0,
    -17,
    2**70,
    1.5,
    -0.0,
    float("inf"),
    float("-inf"),
    "",
    "héllo wörld ✓",
    [],
    {},
    [1, "a", None, [2.5, {"x": True}]],
    {"a": {"b": {"c": [1, 2, 3]}}},
    (1, 2, (3, "x")),
    (),
    {1, 2, 3},
    set(),
    frozenset({"a", "b"}),
    {frozenset({1}), frozenset({2, 3})},
    datetime(2024, 1, 2, 3, 4, 5, 678901),
    datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
    datetime(2024, 7, 14, 12, 0, tzinfo=PARIS),
    date(1999, 12, 31),
    time(23, 59, 59, 999999),
    time(8, 30, tzinfo=timezone(timedelta(hours=2))),
    timedelta(days=-3, seconds=5, microseconds=7),
    timedelta(0),
    Decimal("3.14159265358979323846264338327950288"),
    Decimal("1.10"),
    Decimal("-0"),
    Decimal("Infinity"),
    b"",
    b"\x00\xffbinary\n",
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    Path("/data/out/part-0001.parquet"),
    Path("relative/file.csv"),
    {1: "one", 2: "two"},
    {(1, 2): "tuple key", 3.5: "float key", None: "none key", True: "bool key"},
    {"__zonda__": "datetime", "v": "not really"},
    {"outer": {"__zonda__": "x"}, "list": [{"__zonda__": 1}]},
    {
        "when": datetime(2024, 1, 1, tzinfo=UTC),
        "rows": [(1, Decimal("2.5")), (2, None)],
        "ids": {uuid.UUID(int=1)},
    },
    [{"k": {date(2024, 1, 1): [b"x", Path("/p")]}}],
]


@pytest.mark.parametrize("value", ROUND_TRIPS, ids=lambda v: type(v).__name__)
def test_round_trip_is_faithful(value):
    text = serde.dumps(value)
    back = serde.loads(text)
    assert back == value
    assert type(back) is type(value)
    assert serde.dumps(back) == text  # stable


def test_nested_types_come_back_exactly():
    value = {"t": (1, [2, (3,)]), "s": {(1, 2)}}
    back = serde.loads(serde.dumps(value))
    assert type(back["t"]) is tuple
    assert type(back["t"][1]) is list
    assert type(back["t"][1][1]) is tuple
    assert type(next(iter(back["s"]))) is tuple


def test_nan_round_trips_and_output_is_strict_json():
    text = serde.dumps([float("nan"), float("inf")])

    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    json.loads(text, parse_constant=refuse)
    back = serde.loads(text)
    assert math.isnan(back[0])
    assert back[1] == float("inf")


def test_plain_json_is_written_as_plain_compact_json():
    value = {"a": [1, 2.5, "x", None, True], "b": {"c": "d"}}
    text = serde.dumps(value)
    assert text == '{"a":[1,2.5,"x",null,true],"b":{"c":"d"}}'
    assert json.loads(text) == value
    assert "__zonda__" not in text


def test_dict_order_is_kept():
    value = {"z": 1, "a": 2, "m": 3}
    assert list(serde.loads(serde.dumps(value))) == ["z", "a", "m"]


def test_non_ascii_is_kept_readable():
    assert serde.dumps("é") == '"é"'


def test_lone_surrogate_is_escaped_so_text_is_valid_utf8():
    value = "bad \ud800 char"
    text = serde.dumps(value)
    text.encode("utf-8")
    assert serde.loads(text) == value


def test_datetime_keeps_offset_microseconds_and_zone_name():
    value = datetime(2024, 3, 31, 1, 30, 0, 123456, tzinfo=PARIS)
    back = serde.loads(serde.dumps(value))
    assert back.tzinfo == PARIS
    assert getattr(back.tzinfo, "key", None) == "Europe/Paris"
    assert back.microsecond == 123456
    assert back.utcoffset() == value.utcoffset()
    # the fixed offset is in the text too, for readers that do not know the zone
    assert "+01:00" in serde.dumps(value)


def test_ambiguous_local_time_keeps_fold():
    # 2024-10-27 02:30 happens twice in Paris; fold=1 is the second one (CET, +01:00)
    value = datetime(2024, 10, 27, 2, 30, tzinfo=PARIS, fold=1)
    back = serde.loads(serde.dumps(value))
    assert back.fold == 1
    assert back.utcoffset() == timedelta(hours=1)


def test_unknown_zone_falls_back_to_fixed_offset():
    text = '{"__zonda__":"datetime","v":"2024-01-01T00:00:00+03:00","tz":"Nowhere/Atlantis"}'
    back = serde.loads(text)
    assert back.utcoffset() == timedelta(hours=3)


def test_naive_datetime_stays_naive():
    back = serde.loads(serde.dumps(datetime(2024, 1, 1, 12)))
    assert back.tzinfo is None


def test_decimal_is_exact():
    value = Decimal("0.1") + Decimal("0.2")
    back = serde.loads(serde.dumps(value))
    assert back == Decimal("0.3")
    assert str(back) == "0.3"


def test_set_output_is_deterministic_across_processes():
    code = "from zonda import serde; print(serde.dumps({'pear', 'apple', 'fig', 'kiwi', 'plum', 'date'}))"
    outputs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        outputs.add(result.stdout)
    assert len(outputs) == 1


def test_str_and_int_enums_are_stored_as_plain_values():
    class Color(enum.StrEnum):
        RED = "red"

    class Level(enum.IntEnum):
        HIGH = 3

    assert serde.loads(serde.dumps({"c": Color.RED, "l": Level.HIGH})) == {"c": "red", "l": 3}
    assert serde.dumps(Color.RED) == '"red"'


def test_subclasses_of_containers_come_back_as_base_types():
    from collections import OrderedDict, namedtuple

    Point = namedtuple("Point", "x y")
    back = serde.loads(serde.dumps({"od": OrderedDict(a=1), "pt": Point(1, 2)}))
    assert back == {"od": {"a": 1}, "pt": (1, 2)}
    assert type(back["od"]) is dict
    assert type(back["pt"]) is tuple


def test_unsupported_type_names_type_location_and_fix():
    class Frame:
        pass

    with pytest.raises(XComSerializationError) as info:
        serde.dumps({"rows": [1, {"df": Frame()}]})
    message = str(info.value)
    assert "Frame" in message
    assert "value['rows'][1]['df']" in message
    assert "JSON-friendly" in message
    assert "path or URI" in message


def test_unsupported_top_level_value():
    with pytest.raises(XComSerializationError, match="object"):
        serde.dumps(object())


def test_dataclass_hint():
    from dataclasses import dataclass

    @dataclass
    class Row:
        x: int

    with pytest.raises(XComSerializationError, match=r"dataclasses\.asdict"):
        serde.dumps([Row(1)])


def test_reference_cycle_is_a_clear_error():
    value: list = []
    value.append(value)
    with pytest.raises(XComSerializationError, match="cycle"):
        serde.dumps(value)


def test_loads_accepts_bytes_and_foreign_json():
    assert serde.loads(b'{"a": [1, 2]}') == {"a": [1, 2]}
    assert serde.loads('{"__zonda__": "tuple", "v": [1]}') == (1,)


def test_invalid_json_is_a_serialization_error():
    with pytest.raises(XComSerializationError, match="not valid JSON"):
        serde.loads("{nope")


def test_unknown_tag_is_reported():
    with pytest.raises(XComSerializationError, match="unknown type tag 'hologram'"):
        serde.loads('{"__zonda__": "hologram", "v": 1}')


def test_malformed_tag_is_reported():
    with pytest.raises(XComSerializationError, match="malformed 'timedelta'"):
        serde.loads('{"__zonda__": "timedelta", "v": "soon"}')


def test_tag_key_inside_a_string_is_just_text():
    assert serde.loads(serde.dumps("__zonda__")) == "__zonda__"
    assert serde.loads(serde.dumps(["__zonda__", {"a": "__zonda__"}])) == ["__zonda__", {"a": "__zonda__"}]
