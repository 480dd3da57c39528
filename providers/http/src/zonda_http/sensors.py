"""``HttpSensor``: poke an endpoint until it answers (and ``response_check`` agrees).

With ``deferrable=True`` the sensor pokes once in the worker and, when the answer is "not yet", defers on an
:class:`~zonda_http.triggers.HttpTrigger` that keeps polling from the triggerer (async httpx, no worker slot
held). The trigger fires with the first answer outside the allowlist, as JSON; the resumed sensor rebuilds the
response and judges it exactly as :meth:`HttpSensor.poke` does. If ``response_check`` still says no, it defers
again after the next poke interval. ``timeout`` counts from the first poke across every deferral.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from zonda.exceptions import ZondaException
from zonda.operators.python import call_with_context
from zonda.sensors.base import BaseSensor, PokeReturnValue

if TYPE_CHECKING:
    import requests

    from zonda.context import Context


class HttpSensor(BaseSensor):
    """Done when ``endpoint`` answers with a success status and ``response_check(response, **context)`` (if
    given) returns true. Statuses in ``response_error_codes_allowlist`` (default ``("404",)``) mean "not yet";
    any other error status fails the task."""

    template_fields: ClassVar[tuple[str, ...]] = ("endpoint", "request_params", "headers")

    def __init__(
        self,
        *,
        endpoint: str,
        http_conn_id: str = "http_default",
        method: str = "GET",
        request_params: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        response_check: Callable[..., bool | PokeReturnValue] | None = None,
        extra_options: dict[str, Any] | None = None,
        response_error_codes_allowlist: Sequence[str] = ("404",),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.endpoint = endpoint
        self.http_conn_id = http_conn_id
        self.method = method.upper()
        self.request_params = request_params or {}
        self.headers = headers or {}
        self.response_check = response_check
        self.extra_options = extra_options or {}
        self.response_error_codes_allowlist = tuple(str(code) for code in response_error_codes_allowlist)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        from zonda_http.hooks import HttpHook

        hook = HttpHook(self.method, http_conn_id=self.http_conn_id)
        self.log.info("Poking: %s", self.endpoint)
        try:
            response = hook.run(
                self.endpoint,
                data=self.request_params,
                headers=self.headers,
                extra_options={**self.extra_options, "check_response": False},
            )
            return self._judge(context, response, hook.safe_text)
        finally:
            hook.close()

    def _judge(
        self, context: Context, response: requests.Response, safe_text: Callable[[Any], str]
    ) -> bool | PokeReturnValue:
        """The verdict on one answer, shared by the synchronous and the deferred path."""
        if response.status_code >= 400:
            if str(response.status_code) in self.response_error_codes_allowlist:
                self.log.info("HTTP %s: not there yet", response.status_code)
                return False
            raise ZondaException(
                f"sensor {self.task_id!r}: HTTP {response.status_code} {response.reason}: {safe_text(response)}"
            )
        if self.response_check is not None:
            result = call_with_context(self.response_check, [response], {}, context)
            return result if isinstance(result, PokeReturnValue) else bool(result)
        return True

    # -- deferrable ---------------------------------------------------------------------------------------

    def execute_deferrable(self, context: Context) -> Any:
        from zonda.timezone import utcnow

        started = utcnow()
        result = self.poke(context)
        if result:
            return result.xcom_value if isinstance(result, PokeReturnValue) else None
        self._defer(started, 1, initial_delay=self._get_next_poke_interval(1))

    def _defer(self, started: datetime, poke_count: int, initial_delay: float) -> NoReturn:
        from zonda_http.triggers import HttpTrigger

        remaining = self._remaining_timeout(started)
        delay = min(initial_delay, remaining.total_seconds())
        self.log.info("Not done after %d poke(s); deferring, the triggerer polls every %.2fs", poke_count, delay)
        self.defer(
            trigger=HttpTrigger(
                http_conn_id=self.http_conn_id,
                method=self.method,
                endpoint=self.endpoint,
                headers=self.headers,
                data=self.request_params,
                extra_options=self.extra_options,
                poll_interval=self.poke_interval or 1.0,
                response_error_codes_allowlist=list(self.response_error_codes_allowlist),
                initial_delay=delay,
            ),
            method_name="execute_complete",
            kwargs={"started_at": started, "poke_count": poke_count},
            timeout=remaining,
        )

    def execute_complete(
        self,
        context: Context,
        event: Mapping[str, Any] | None = None,
        started_at: Any = None,
        poke_count: int = 0,
    ) -> Any:
        """Resumed with the trigger's answer (a JSON payload): judge it as :meth:`poke` would; defer again
        while ``response_check`` says not yet."""
        from zonda.exceptions import ZondaSensorTimeout
        from zonda.timezone import coerce_datetime, utcnow
        from zonda_http.hooks import HttpHook
        from zonda_http.triggers import response_from_payload

        started = coerce_datetime(started_at) or utcnow()
        poke_count = int(poke_count or 0) + 1
        payload = (event or {}).get("response")
        if payload is None:
            message = (event or {}).get("message") or "the trigger fired without a response"
            raise ZondaException(f"sensor {self.task_id!r}: {message}")
        hook = HttpHook(self.method, http_conn_id=self.http_conn_id)
        result = self._judge(context, response_from_payload(payload), hook.safe_text)
        if result:
            self.log.info("Success criteria met after %d poke(s). Exiting.", poke_count)
            return result.xcom_value if isinstance(result, PokeReturnValue) else None
        elapsed = (utcnow() - started).total_seconds()
        if elapsed >= self.timeout:
            raise ZondaSensorTimeout(self._timeout_message(elapsed, poke_count))
        self._defer(started, poke_count, initial_delay=self._get_next_poke_interval(poke_count))
