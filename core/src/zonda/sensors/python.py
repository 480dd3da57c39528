"""PythonSensor: wait until a Python callable returns something truthy (or a done PokeReturnValue)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from zonda.exceptions import DagDefinitionError
from zonda.sensors.base import BaseSensor, PokeReturnValue

if TYPE_CHECKING:
    from zonda.context import Context


class PythonSensor(BaseSensor):
    """Poke by calling ``python_callable(*op_args, **op_kwargs)``.

    Context values are passed to the parameters named after them (``ti``, ``ds``, ``templates_dict``...),
    exactly as for :class:`~zonda.operators.PythonOperator`. Return a bool, or a
    :class:`PokeReturnValue` to hand ``xcom_value`` to downstream tasks. With ``deferrable=True`` it defers
    between pokes (no worker slot held while it waits) and pokes again when the triggerer wakes it.
    """

    template_fields: ClassVar[tuple[str, ...]] = ("templates_dict", "op_args", "op_kwargs")
    template_fields_renderers: ClassVar[dict[str, str]] = {
        "templates_dict": "json",
        "op_args": "py",
        "op_kwargs": "py",
    }

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Collection[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        templates_dict: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not callable(python_callable):
            raise DagDefinitionError(f"sensor {kwargs.get('task_id')!r}: python_callable must be callable")
        super().__init__(**kwargs)
        self.python_callable = python_callable
        self.op_args = list(op_args or [])
        self.op_kwargs = dict(op_kwargs or {})
        self.templates_dict = templates_dict

    def poke(self, context: Context) -> PokeReturnValue:
        from zonda.operators.python import call_with_context

        context_for_call = context.copy()  # values needing a query stay unread unless asked for
        context_for_call["templates_dict"] = self.templates_dict
        self.log.info("Poking callable %s", getattr(self.python_callable, "__name__", self.python_callable))
        result = call_with_context(self.python_callable, self.op_args, self.op_kwargs, context_for_call)
        if isinstance(result, PokeReturnValue):
            return result
        return PokeReturnValue(bool(result))
