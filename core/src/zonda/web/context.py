"""What the views need from the installation, kept on the app (``app.extensions["zonda"]``), never global."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zonda.config import Settings


@dataclass(frozen=True)
class WebContext:
    settings: Settings
    #: The metastore's SQLAlchemy engine; every read and write goes through :mod:`zonda.operations` with it.
    engine: Any
    #: Seconds since the epoch; a test passes its own to age sessions without sleeping.
    clock: Callable[[], float]

    def metastore(self) -> Any:
        """The metastore over :attr:`engine`, for operations that take a ``Metastore`` (connections, variables)."""
        from zonda.metastore.db import Metastore

        return Metastore.over_engine(self.engine)


def web_context() -> WebContext:
    from flask import current_app

    return current_app.extensions["zonda"]


__all__ = ["WebContext", "web_context"]
