"""``HttpOperator``: one HTTP call (or every page of a paginated one) as a task.

With ``deferrable=True`` the request is sent by an :class:`~zonda_http.triggers.HttpTrigger` in the triggerer
(async httpx), so a slow API holds no worker slot. The trigger hands back a JSON payload; the resumed task
rebuilds a ``requests.Response`` from it and runs ``response_check`` / ``response_filter`` /
``pagination_function`` on it exactly as the synchronous path does (a paginated call defers once per page).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from zonda.exceptions import ZondaException
from zonda.operators.base import BaseOperator
from zonda.operators.python import call_with_context

if TYPE_CHECKING:
    import requests

    from zonda.context import Context
    from zonda_http.hooks import HttpHook

#: Safety net against a pagination_function that never returns None.
DEFAULT_MAX_PAGES = 10_000


def merge_next_page_parameters(current: dict[str, Any], next_page: Mapping[str, Any]) -> dict[str, Any]:
    """The request kwargs for the next page: dict values (data, json, headers, extra_options) are merged,
    anything else (endpoint, a string body) is replaced."""
    merged = dict(current)
    for key, value in next_page.items():
        if key not in ("endpoint", "data", "json", "headers", "extra_options"):
            raise ZondaException(
                f"pagination_function returned an unknown key {key!r}; use endpoint, data, json, headers or "
                "extra_options"
            )
        old = merged.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            merged[key] = {**old, **value}
        else:
            merged[key] = value
    return merged


class HttpOperator(BaseOperator):
    """Call ``endpoint`` on the ``http_conn_id`` connection.

    - ``response_check(response, **context)``: False fails the task.
    - ``response_filter(response, **context)``: its (JSON-safe) result is the XCom; otherwise the body text.
    - ``pagination_function(response)``: the request kwargs (``endpoint``, ``data``, ``json``, ``headers``,
      ``extra_options``) for the next page, or None when done. The latest response drives the next request;
      ``response_check`` and ``response_filter`` then receive the list of all responses, and the default XCom
      is the list of the pages' texts.
    - ``log_response``: log each body (masked and truncated).
    - ``retry_methods``: the methods retried on 429/502/503/504 (default: the idempotent ones, so a POST is
      not sent twice unless listed here).
    - ``deferrable``: send the request from the triggerer (see the module docstring). The pages collected so
      far travel between deferrals as JSON in the task's ``next_kwargs``.
    """

    template_fields: ClassVar[tuple[str, ...]] = ("endpoint", "data", "json", "headers")
    template_fields_renderers: ClassVar[dict[str, str]] = {"headers": "json", "data": "py", "json": "json"}
    ui_color: ClassVar[str] = "#f4a460"

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        method: str = "POST",
        data: Any = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        response_check: Callable[..., bool] | None = None,
        response_filter: Callable[..., Any] | None = None,
        pagination_function: Callable[[requests.Response], Mapping[str, Any] | None] | None = None,
        extra_options: dict[str, Any] | None = None,
        http_conn_id: str = "http_default",
        log_response: bool = False,
        max_pages: int = DEFAULT_MAX_PAGES,
        retry_methods: list[str] | None = None,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.endpoint = endpoint
        self.method = method.upper()
        self.data = data
        self.json = json
        self.headers = headers or {}
        self.response_check = response_check
        self.response_filter = response_filter
        self.pagination_function = pagination_function
        self.extra_options = extra_options or {}
        self.http_conn_id = http_conn_id
        self.log_response = log_response
        self.max_pages = max_pages
        self.retry_methods = list(retry_methods) if retry_methods is not None else None
        self.deferrable = deferrable

    def get_hook(self) -> HttpHook:
        from zonda_http.hooks import HttpHook

        return HttpHook(self.method, http_conn_id=self.http_conn_id, retry_methods=self.retry_methods)

    def _request(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "data": self.data,
            "json": self.json,
            "headers": self.headers,
            "extra_options": self.extra_options,
        }

    def execute(self, context: Context) -> Any:
        if self.deferrable:
            self._defer(self._request(), [])
        hook = self.get_hook()
        try:
            request = self._request()
            response = hook.run(**request)
            if self.log_response:
                hook.log_response(response)
            if self.pagination_function is None:
                return self.process_response(context, response)
            responses = [response]
            while True:
                next_page = self.pagination_function(response)
                if not next_page:
                    break
                if len(responses) >= self.max_pages:
                    raise ZondaException(
                        f"task {self.task_id!r}: pagination went past max_pages={self.max_pages}; check that "
                        "pagination_function returns None after the last page"
                    )
                request = merge_next_page_parameters(request, next_page)
                response = hook.run(**request)
                if self.log_response:
                    hook.log_response(response)
                responses.append(response)
            self.log.info("Collected %d page(s)", len(responses))
            return self.process_response(context, responses)
        finally:
            hook.close()

    # -- deferrable ---------------------------------------------------------------------------------------

    def _defer(self, request: dict[str, Any], pages: list[dict[str, Any]]) -> NoReturn:
        from zonda_http.triggers import HttpTrigger

        self.defer(
            trigger=HttpTrigger(
                http_conn_id=self.http_conn_id,
                method=self.method,
                endpoint=request.get("endpoint"),
                headers=request.get("headers"),
                data=request.get("data"),
                json=request.get("json"),
                extra_options=request.get("extra_options"),
                retry_methods=self.retry_methods,
            ),
            method_name="execute_complete",
            kwargs={"request": request, "pages": pages},
        )

    def execute_complete(
        self,
        context: Context,
        event: Mapping[str, Any] | None = None,
        request: dict[str, Any] | None = None,
        pages: list[dict[str, Any]] | None = None,
    ) -> Any:
        """Resumed when the trigger answered: fail on an error status (as the hook does), defer again for the
        next page, or run ``response_check`` / ``response_filter`` on the rebuilt response(s)."""
        from zonda_http.hooks import HttpException, HttpHook
        from zonda_http.triggers import response_from_payload

        hook = HttpHook(self.method, http_conn_id=self.http_conn_id)
        if not event or event.get("status") != "success":
            message = (event or {}).get("message") or "the trigger fired without a response"
            payload = (event or {}).get("response")
            if payload is not None:
                self.log.error("Response body: %s", hook.safe_text(payload.get("text") or ""))
            raise HttpException(f"task {self.task_id!r}: {message}")
        payload = event["response"]
        response = response_from_payload(payload)
        if self.log_response:
            hook.log_response(response)
        if self.pagination_function is None:
            return self.process_response(context, response)
        pages = [*(pages or []), payload]
        next_page = self.pagination_function(response)
        if next_page:
            if len(pages) >= self.max_pages:
                raise ZondaException(
                    f"task {self.task_id!r}: pagination went past max_pages={self.max_pages}; check that "
                    "pagination_function returns None after the last page"
                )
            self._defer(merge_next_page_parameters(request or self._request(), next_page), pages)
        self.log.info("Collected %d page(s)", len(pages))
        return self.process_response(context, [response_from_payload(p) for p in pages])

    def process_response(self, context: Context, response: requests.Response | list[requests.Response]) -> Any:
        if self.response_check is not None and not call_with_context(self.response_check, [response], {}, context):
            raise ZondaException(f"task {self.task_id!r}: response_check returned False")
        if self.response_filter is not None:
            return call_with_context(self.response_filter, [response], {}, context)
        if isinstance(response, list):
            return [r.text for r in response]
        return response.text
