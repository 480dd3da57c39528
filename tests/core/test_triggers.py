"""Triggers: JSON round trips (never pickles), the loader's errors, and the built-in triggers' timing."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from zonda.exceptions import TriggerError
from zonda.triggers import (
    BaseTrigger,
    DateTimeTrigger,
    FileTrigger,
    TimeDeltaTrigger,
    TriggerEvent,
    serialize_trigger,
    trigger_from_row,
)


class OddTrigger(BaseTrigger):
    """A custom trigger whose kwargs may hold anything (to test the JSON check)."""

    def __init__(self, value):
        super().__init__()
        self.value = value

    def serialize(self):
        return f"{type(self).__module__}.OddTrigger", {"value": self.value}

    async def run(self):
        yield TriggerEvent(self.value)


def _first(trigger: BaseTrigger, timeout: float = 5.0):
    from zonda.runner.deferral import first_event

    return asyncio.run(asyncio.wait_for(first_event(trigger), timeout))


# --- serialization -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "trigger",
    [
        DateTimeTrigger(datetime(2030, 5, 1, 12, 30, tzinfo=UTC)),
        FileTrigger("/tmp/data/*.csv", recursive=True, poke_interval=0.5),
        OddTrigger({"nested": [1, 2.5, "x", None, True]}),
    ],
    ids=["datetime", "file", "custom"],
)
def test_round_trip_is_json(trigger: BaseTrigger) -> None:
    classpath, kwargs_json = serialize_trigger(trigger)
    assert isinstance(kwargs_json, str)
    json.loads(kwargs_json)  # plain JSON text, readable by anything
    rebuilt = trigger_from_row(classpath, kwargs_json)
    assert type(rebuilt) is type(trigger)
    assert rebuilt.serialize() == trigger.serialize()


def test_time_delta_trigger_is_stored_as_its_moment() -> None:
    before = datetime.now(UTC)
    trigger = TimeDeltaTrigger(timedelta(minutes=5))
    classpath, kwargs_json = serialize_trigger(trigger)
    assert classpath == "zonda.triggers.temporal.DateTimeTrigger"
    rebuilt = trigger_from_row(classpath, kwargs_json)
    assert isinstance(rebuilt, DateTimeTrigger)
    assert rebuilt.moment == trigger.moment
    assert before + timedelta(minutes=5) <= rebuilt.moment <= datetime.now(UTC) + timedelta(minutes=5)


def test_a_non_json_kwarg_is_a_clear_error() -> None:
    with pytest.raises(TriggerError, match=r"JSON-serializable \(triggers are never pickled\).*object"):
        serialize_trigger(OddTrigger(object()))


def test_colon_class_paths_are_accepted() -> None:
    trigger = trigger_from_row("zonda.triggers.file:FileTrigger", '{"filepath": "/x"}')
    assert isinstance(trigger, FileTrigger) and trigger.poke_interval == 1.0


@pytest.mark.parametrize(
    "classpath, kwargs, match",
    [
        ("zonda.triggers.nope.Missing", "{}", "cannot be imported"),
        ("zonda.triggers.temporal.Missing", "{}", "not found: module 'zonda.triggers.temporal' has no 'Missing'"),
        ("zonda.serde.dumps", "{}", "is not a trigger class"),
        ("noclass", "{}", "invalid trigger class path"),
        ("zonda.triggers.file.FileTrigger", '{"nope": 1}', "cannot be built from its stored kwargs"),
        ("zonda.triggers.file.FileTrigger", "[1]", "must be a JSON object"),
        ("zonda.triggers.file.FileTrigger", "{bad", "not valid JSON"),
    ],
)
def test_loader_errors_are_clear(classpath: str, kwargs: str, match: str) -> None:
    with pytest.raises(TriggerError, match=match):
        trigger_from_row(classpath, kwargs)


def test_argument_validation() -> None:
    with pytest.raises(TriggerError, match="timezone-aware"):
        DateTimeTrigger(datetime(2030, 1, 1))
    with pytest.raises(TriggerError, match="must be a datetime"):
        DateTimeTrigger(5)  # type: ignore[arg-type]
    with pytest.raises(TriggerError, match="poke_interval must be a positive"):
        FileTrigger("/x", poke_interval=0)
    with pytest.raises(TriggerError, match="JSON-serializable"):
        TriggerEvent(object())
    with pytest.raises(TriggerError, match="BaseTrigger instance"):
        serialize_trigger("not a trigger")


# --- behaviour ---------------------------------------------------------------------------------------------


def test_date_time_trigger_fires_within_100_ms_of_its_moment() -> None:
    moment = datetime.now(UTC) + timedelta(seconds=0.3)
    payload = _first(DateTimeTrigger(moment))
    late = (datetime.now(UTC) - moment).total_seconds()
    assert payload == moment
    assert 0 <= late < 0.1


def test_date_time_trigger_in_the_past_fires_at_once() -> None:
    started = time.monotonic()
    _first(DateTimeTrigger(datetime(2020, 1, 1, tzinfo=UTC)))
    assert time.monotonic() - started < 0.1


def test_file_trigger_fires_when_the_file_appears(tmp_path: Path) -> None:
    target = tmp_path / "incoming" / "data.csv"
    target.parent.mkdir()
    (tmp_path / "incoming" / "empty").mkdir()  # an empty directory does not count

    def write_later() -> None:
        time.sleep(0.3)
        target.write_text("a,b\n")

    writer = threading.Thread(target=write_later)
    writer.start()
    started = time.monotonic()
    payload = _first(FileTrigger(str(tmp_path / "incoming" / "*"), poke_interval=0.05))
    writer.join()
    assert payload == str(target)
    assert 0.25 <= time.monotonic() - started < 2


def test_file_trigger_recursive_glob_and_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "part-0.parquet").write_text("x")
    assert _first(FileTrigger(str(tmp_path / "**" / "*.parquet"), recursive=True, poke_interval=0.05)) == str(
        tmp_path / "a" / "b" / "part-0.parquet"
    )
    assert _first(FileTrigger(str(tmp_path / "a"), poke_interval=0.05)) == str(tmp_path / "a")
