"""A plugins-folder plugin: copy this file into ``$ZONDA_HOME/plugins/``.

It shows the two things a folder plugin is for:

* code DAG files import (``from greeting import GreetingOperator``): the plugins folder is on ``sys.path``;
* hook implementations (``@hookimpl``): here a template macro, ``{{ macros.greet("world") }}``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from zonda import hookimpl
from zonda.operators import BaseOperator


def greet(name: str, punctuation: str = "!") -> str:
    """The macro: ``{{ macros.greet(params.who) }}``."""
    return f"Hello, {name}{punctuation}"


class GreetingOperator(BaseOperator):
    """Says hello to ``name`` (templated) and returns the greeting as its XCom."""

    template_fields: ClassVar[tuple[str, ...]] = ("name",)
    ui_color: ClassVar[str] = "#fdf6e3"

    def __init__(self, *, name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name

    def execute(self, context: Any) -> str:
        message = greet(self.name)
        self.log.info("%s", message)
        return message


@hookimpl
def zonda_template_macros() -> dict[str, Any]:
    return {"greet": greet}
