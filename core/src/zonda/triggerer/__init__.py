"""The triggerer service: runs the triggers of deferred tasks in one asyncio loop (``zonda triggerer``)."""

from __future__ import annotations

from zonda.triggerer.triggerer import Outcome, Triggerer, TriggererPass, expire_deferred_timeouts

__all__ = ["Outcome", "Triggerer", "TriggererPass", "expire_deferred_timeouts"]
