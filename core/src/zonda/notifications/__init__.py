"""Notifiers: callbacks that tell someone about a task, a run or a missed deadline.

``from zonda.notifications import BaseNotifier, SmtpNotifier``. A notifier is an object, so it can be passed
wherever a callback goes (``on_failure_callback=SmtpNotifier(to=...)``, alone or in a list, or a
``DeadlineAlert``'s ``callback``). Exports load on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zonda._lazy import lazy_exports

if TYPE_CHECKING:
    from zonda.notifications.base import BaseNotifier
    from zonda.notifications.smtp import SmtpNotifier

__all__ = ["BaseNotifier", "SmtpNotifier"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {"BaseNotifier": "zonda.notifications.base", "SmtpNotifier": "zonda.notifications.smtp"},
    __all__,
)
