"""``BaseNotifier``: the base class of notifiers, Airflow's ``airflow.sdk.BaseNotifier`` under Zonda's name.

A subclass lists ``template_fields`` and implements ``notify(context)``. Calling the notifier with a context
renders those fields with Jinja (the same sandbox as operators' fields, with the DAG's macros and filters) and
then calls ``notify``. Only the author's own strings are templates: a rendered value is never rendered again.

Unlike Airflow, the fields are rendered on a copy, so one notifier object shared by many tasks (in
``default_args``, say) renders each call from the author's templates, not from the previous call's result.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

log = logging.getLogger(__name__)


class BaseNotifier:
    """Sends a notification when called with a context; subclasses implement :meth:`notify`."""

    template_fields: ClassVar[Sequence[str]] = ()
    template_ext: ClassVar[Sequence[str]] = ()

    def notify(self, context: Mapping[str, Any]) -> None:
        """Send the notification; ``self``'s template fields are rendered already."""
        raise NotImplementedError(f"{type(self).__name__} must implement notify(context)")

    def render(self, context: Mapping[str, Any]) -> BaseNotifier:
        """A copy of this notifier with its template fields rendered against ``context``."""
        rendered = copy.copy(self)
        if not self.template_fields:
            return rendered
        from zonda.templating import TemplateRenderer, renderer_for_dag

        dag = context.get("dag")
        renderer = renderer_for_dag(dag) if dag is not None else TemplateRenderer([])
        renderer.render_fields(rendered, self.template_fields, context, template_ext=self.template_ext)
        return rendered

    def __call__(self, context: Mapping[str, Any]) -> None:
        """Render, then notify. An error propagates to the caller, which logs it and keeps the state as it is
        (a task's or run's callback runner, the deadline runner)."""
        self.render(context).notify(context)

    def __repr__(self) -> str:  # how a failing callback is named in the log
        return f"{type(self).__name__}()"
