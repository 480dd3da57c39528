"""``HttpSensor``: poke an endpoint until it answers (and ``response_check`` agrees)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from zonda.exceptions import ZondaException
from zonda.operators.python import call_with_context
from zonda.sensors.base import BaseSensor, PokeReturnValue

if TYPE_CHECKING:
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
            if response.status_code >= 400:
                if str(response.status_code) in self.response_error_codes_allowlist:
                    self.log.info("HTTP %s: not there yet", response.status_code)
                    return False
                raise ZondaException(
                    f"sensor {self.task_id!r}: HTTP {response.status_code} {response.reason}: "
                    f"{hook.safe_text(response)}"
                )
            if self.response_check is not None:
                result = call_with_context(self.response_check, [response], {}, context)
                return result if isinstance(result, PokeReturnValue) else bool(result)
            return True
        finally:
            hook.close()
