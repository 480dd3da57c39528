"""EmptyOperator: a task that does nothing (joins, placeholders). The runner finishes it without executing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from zonda.operators.base import BaseOperator

if TYPE_CHECKING:
    from zonda.context import Context


class EmptyOperator(BaseOperator):
    ui_color: ClassVar[str] = "#e8f7e4"

    def execute(self, context: Context) -> Any:
        return None
