"""The trigger base class, the event a trigger fires, and the JSON round trip of a trigger.

Subclass :class:`BaseTrigger`, implement ``serialize()`` (class path + JSON-safe kwargs that rebuild an equal
trigger) and ``async def run()``, which yields :class:`TriggerEvent` objects. Only the first event counts: the
triggerer then resumes the deferred task with its payload and drops the trigger. ``run`` must never block the
event loop (use ``await asyncio.sleep``, ``asyncio.to_thread``...): one loop runs thousands of triggers.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from zonda.exceptions import TriggerError, XComSerializationError


class TriggerEvent:
    """What a trigger fires. ``payload`` must be JSON-safe (what :mod:`zonda.serde` encodes)."""

    __slots__ = ("payload",)

    def __init__(self, payload: Any = None) -> None:
        from zonda import serde

        try:
            serde.dumps(payload)
        except XComSerializationError as exc:
            raise TriggerError(f"a TriggerEvent payload must be JSON-serializable: {exc}") from None
        self.payload = payload

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TriggerEvent) and other.payload == self.payload

    def __hash__(self) -> int:
        return hash(repr(self.payload))

    def __repr__(self) -> str:
        return f"TriggerEvent<{self.payload!r}>"


class BaseTrigger:
    """An asyncio wait, rebuilt in the triggerer from :meth:`serialize`'s output."""

    def __init__(self, **kwargs: Any) -> None:
        pass

    @classmethod
    def classpath(cls) -> str:
        return f"{cls.__module__}.{cls.__qualname__}"

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """``(class path, kwargs)``: ``import(class path)(**kwargs)`` must rebuild this trigger."""
        raise NotImplementedError(f"{type(self).__name__} must implement serialize()")

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait, then ``yield TriggerEvent(payload)``. Runs in the triggerer's event loop: never block."""
        raise NotImplementedError(f"{type(self).__name__} must implement async run()")
        yield  # pragma: no cover - makes this an async generator

    async def cleanup(self) -> None:
        """Called when the trigger ends for any reason (fired, raised, cancelled): release resources here."""

    def __repr__(self) -> str:
        try:
            _, kwargs = self.serialize()
        except Exception:
            kwargs = {}
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        return f"<{type(self).__name__} {args}>"


def serialize_trigger(trigger: Any) -> tuple[str, str]:
    """``(classpath, kwargs as JSON text)`` for the ``trigger`` table; a clear :class:`TriggerError` when the
    trigger is not a :class:`BaseTrigger`, its class cannot be imported by path, or a kwarg is not JSON."""
    from zonda import serde

    if not isinstance(trigger, BaseTrigger):
        raise TriggerError(f"defer() needs a BaseTrigger instance as trigger, not {type(trigger).__name__}")
    classpath, kwargs = trigger.serialize()
    if not isinstance(classpath, str) or not isinstance(kwargs, Mapping):
        raise TriggerError(
            f"{type(trigger).__name__}.serialize() must return (classpath: str, kwargs: dict), "
            f"not ({type(classpath).__name__}, {type(kwargs).__name__})"
        )
    import_trigger_class(classpath)
    try:
        text = serde.dumps(dict(kwargs))
    except XComSerializationError as exc:
        raise TriggerError(
            f"trigger {classpath} cannot be stored: its kwargs must be JSON-serializable (triggers are never "
            f"pickled): {exc}"
        ) from None
    return classpath, text


def import_trigger_class(classpath: str) -> type[BaseTrigger]:
    """The trigger class named ``module.Class`` or ``module:Class``."""
    if not isinstance(classpath, str) or not classpath.strip():
        raise TriggerError(f"invalid trigger class path {classpath!r}")
    if ":" in classpath:
        module_name, _, attr = classpath.partition(":")
    else:
        module_name, _, attr = classpath.rpartition(".")
    if not module_name or not attr:
        raise TriggerError(f"invalid trigger class path {classpath!r}: use 'package.module.ClassName'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TriggerError(
            f"trigger class {classpath!r} cannot be imported ({exc}); a trigger must live in a module the "
            "triggerer can import (a package or plugin on its path), not only in a DAG file"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise TriggerError(f"trigger class {classpath!r} not found: module {module_name!r} has no {attr!r}")
    if not isinstance(obj, type) or not issubclass(obj, BaseTrigger):
        raise TriggerError(f"{classpath!r} is not a trigger class (a subclass of zonda.triggers.BaseTrigger)")
    return obj


def trigger_from_row(classpath: str, kwargs_json: str | Mapping[str, Any] | None) -> BaseTrigger:
    """Rebuild a trigger from its ``trigger`` row: import the class, decode the JSON kwargs, validate."""
    from zonda import serde

    cls = import_trigger_class(classpath)
    if kwargs_json is None or kwargs_json == "":
        kwargs: Any = {}
    elif isinstance(kwargs_json, Mapping):
        kwargs = dict(kwargs_json)
    else:
        try:
            kwargs = serde.loads(kwargs_json)
        except XComSerializationError as exc:
            raise TriggerError(f"trigger {classpath}: stored kwargs are not valid JSON: {exc}") from None
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise TriggerError(f"trigger {classpath}: stored kwargs must be a JSON object, got {type(kwargs).__name__}")
    try:
        return cls(**kwargs)
    except TriggerError:
        raise
    except TypeError as exc:
        raise TriggerError(f"trigger {classpath} cannot be built from its stored kwargs: {exc}") from None
