"""``get_current_context()``: the running task's context, for code that was not handed it.

The runner wraps ``execute()`` in ``with set_current_context(context):``. The context lives in a
:class:`contextvars.ContextVar`, so threads and asyncio tasks each see their own; code that starts a thread
inside a task and wants the context there should run it with ``contextvars.copy_context().run``.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from zonda.exceptions import ZondaException

if TYPE_CHECKING:
    from zonda.context import Context

__all__ = ["get_current_context", "set_current_context"]

_CURRENT: ContextVar[Context | None] = ContextVar("zonda_current_context", default=None)


def get_current_context() -> Context:
    """The context of the task running now; raises :class:`ZondaException` outside a running task."""
    context = _CURRENT.get()
    if context is None:
        raise ZondaException(
            "get_current_context() only works inside a running task (in execute(), a @task function, a "
            "python_callable or code they call); there is no task running here. At DAG-parse time there is "
            "no context: use templates such as '{{ ds }}' in operator arguments instead."
        )
    return context


class set_current_context:  # lower case: used like a function, `with set_current_context(ctx):`
    """Make ``context`` the current one for the ``with`` block; nests, and restores the previous on exit."""

    __slots__ = ("_context", "_token")

    def __init__(self, context: Context) -> None:
        self._context = context
        self._token: Token[Context | None] | None = None

    def __enter__(self) -> Context:
        self._token = _CURRENT.set(self._context)
        return self._context

    def __exit__(self, *exc_info: Any) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)
            self._token = None
