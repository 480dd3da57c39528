"""``HttpOperator``: one HTTP call (or every page of a paginated one) as a task."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from zonda.exceptions import ZondaException
from zonda.operators.base import BaseOperator
from zonda.operators.python import call_with_context

if TYPE_CHECKING:
    import requests

    from zonda.context import Context

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

    def get_hook(self):
        from zonda_http.hooks import HttpHook

        return HttpHook(self.method, http_conn_id=self.http_conn_id)

    def execute(self, context: Context) -> Any:
        hook = self.get_hook()
        try:
            request: dict[str, Any] = {
                "endpoint": self.endpoint,
                "data": self.data,
                "json": self.json,
                "headers": self.headers,
                "extra_options": self.extra_options,
            }
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

    def process_response(self, context: Context, response: requests.Response | list[requests.Response]) -> Any:
        if self.response_check is not None and not call_with_context(self.response_check, [response], {}, context):
            raise ZondaException(f"task {self.task_id!r}: response_check returned False")
        if self.response_filter is not None:
            return call_with_context(self.response_filter, [response], {}, context)
        if isinstance(response, list):
            return [r.text for r in response]
        return response.text
