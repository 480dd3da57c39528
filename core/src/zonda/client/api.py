"""``ZondaClient``: the REST API (``/api/v1``, Airflow's paths and shapes) from Python, with httpx.

Thin on purpose: one method per operation, typed results (:mod:`zonda.client.models`), one exception type
(:class:`~zonda.client.errors.ZondaApiError`). The token comes from the argument or ``ZONDA_API_TOKEN``; TLS
certificates are verified unless ``verify`` says otherwise; ``transport`` lets a test or an application route the
requests (an ``httpx.MockTransport``, a WSGI app, a proxy).

A CI job triggers a run and waits for it without database access::

    with ZondaClient("https://zonda.example.com") as client:
        run = client.trigger_dag_run("etl", conf={"day": "2024-01-01"})
        run = client.wait_for_dag_run("etl", run.dag_run_id, timeout=3600)
        sys.exit(0 if run.state == "success" else 1)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from zonda.client.errors import ZondaApiError
from zonda.client.models import Dag, DagRun, Page, TaskInstance

if TYPE_CHECKING:
    import httpx

TOKEN_ENV = "ZONDA_API_TOKEN"
API_PREFIX = "/api/v1"


def _segment(value: str) -> str:
    """A path segment: run ids hold ``:`` and ``+``, which must reach the server as they are, escaped."""
    return quote(str(value), safe="")


class ZondaClient:
    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        verify: bool | str = True,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``url``: the installation's root (``https://host:8080``; a trailing ``/api/v1`` is accepted too)."""
        import httpx

        root = url.rstrip("/")
        if root.endswith(API_PREFIX):
            root = root[: -len(API_PREFIX)]
        if not root.startswith(("http://", "https://")):
            raise ZondaApiError(None, "Bad URL", f"{url!r} is not an http(s) URL; give e.g. https://zonda:8080")
        token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        headers = {"Accept": "application/json", "User-Agent": "zonda-client"}
        if token:
            headers["Authorization"] = f"Bearer {token.strip()}"
        self._http = httpx.Client(
            base_url=root, headers=headers, timeout=timeout, verify=verify, transport=transport, follow_redirects=False
        )
        self._sleep = sleep
        self._clock = clock

    # -- plumbing --------------------------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ZondaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        import httpx

        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ZondaApiError(None, "No answer", f"{method} {path}: {exc.__class__.__name__}: {exc}") from None
        if response.status_code >= 400:
            raise _problem(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ZondaApiError(
                response.status_code, "Not JSON", f"{method} {path} answered {response.text[:200]!r}"
            ) from None

    def _api(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._json(method, API_PREFIX + path, **kwargs)

    # -- installation ----------------------------------------------------------------------------------------

    def version(self) -> str:
        return str(self._api("GET", "/version")["version"])

    def health(self) -> dict[str, Any]:
        """The installation's health (``GET /health``: metastore and scheduler); needs no token."""
        return dict(self._json("GET", "/health"))

    # -- DAGs ------------------------------------------------------------------------------------------------

    def list_dags(
        self,
        *,
        limit: int = 100,
        offset: int = 0,
        tags: list[str] | None = None,
        paused: bool | None = None,
        dag_id_pattern: str | None = None,
    ) -> Page[Dag]:
        flag = None if paused is None else ("true" if paused else "false")
        params = _query(limit=limit, offset=offset, tags=tags, paused=flag, dag_id_pattern=dag_id_pattern)
        data = self._api("GET", "/dags", params=params)
        return Page([Dag.from_json(d) for d in data.get("dags", [])], data.get("total_entries"))

    def get_dag(self, dag_id: str) -> Dag:
        return Dag.from_json(self._api("GET", f"/dags/{_segment(dag_id)}"))

    def pause(self, dag_id: str) -> Dag:
        return self._set_paused(dag_id, True)

    def unpause(self, dag_id: str) -> Dag:
        return self._set_paused(dag_id, False)

    def _set_paused(self, dag_id: str, paused: bool) -> Dag:
        data = self._api(
            "PATCH", f"/dags/{_segment(dag_id)}", params={"update_mask": "is_paused"}, json={"is_paused": paused}
        )
        return Dag.from_json(data)

    # -- runs ------------------------------------------------------------------------------------------------

    def trigger_dag_run(
        self,
        dag_id: str,
        conf: Mapping[str, Any] | None = None,
        *,
        dag_run_id: str | None = None,
        logical_date: datetime | None = None,
    ) -> DagRun:
        """Queue a manual run; the server validates ``conf`` against the DAG's params (HTTP 400 if it does not
        match)."""
        body: dict[str, Any] = {"conf": dict(conf or {})}
        if dag_run_id is not None:
            body["dag_run_id"] = dag_run_id
        if logical_date is not None:
            body["logical_date"] = logical_date.isoformat()
        return DagRun.from_json(self._api("POST", f"/dags/{_segment(dag_id)}/dagRuns", json=body))

    def get_dag_run(self, dag_id: str, dag_run_id: str) -> DagRun:
        return DagRun.from_json(self._api("GET", f"/dags/{_segment(dag_id)}/dagRuns/{_segment(dag_run_id)}"))

    def list_dag_runs(
        self,
        dag_id: str,
        *,
        limit: int = 100,
        offset: int = 0,
        state: list[str] | None = None,
        order_by: str | None = None,
        logical_date_gte: datetime | None = None,
        logical_date_lte: datetime | None = None,
    ) -> Page[DagRun]:
        params = _query(
            limit=limit,
            offset=offset,
            state=state,
            order_by=order_by,
            logical_date_gte=logical_date_gte,
            logical_date_lte=logical_date_lte,
        )
        data = self._api("GET", f"/dags/{_segment(dag_id)}/dagRuns", params=params)
        return Page([DagRun.from_json(r) for r in data.get("dag_runs", [])], data.get("total_entries"))

    def wait_for_dag_run(
        self, dag_id: str, dag_run_id: str, *, timeout: float = 3600.0, interval: float = 5.0
    ) -> DagRun:
        """Poll until the run finishes (success or failed) and return it; :class:`ZondaApiError` with status
        None and title ``Timeout`` after ``timeout`` seconds. A 429 or 503 waits the server's ``Retry-After``
        (within the same deadline) instead of failing."""
        deadline = self._clock() + timeout
        while True:
            try:
                run = self.get_dag_run(dag_id, dag_run_id)
            except ZondaApiError as exc:
                if exc.status not in (429, 503):
                    raise
                pause = exc.retry_after if exc.retry_after is not None else interval
                state = "unknown (the server asked to slow down)"
            else:
                if run.finished:
                    return run
                pause, state = interval, str(run.state)
            left = deadline - self._clock()
            if left <= 0:
                raise ZondaApiError(
                    None, "Timeout", f"run {dag_run_id!r} of {dag_id!r} is still {state} after {timeout:g} s"
                )
            self._sleep(min(pause, left))

    # -- task instances and logs -----------------------------------------------------------------------------

    def list_task_instances(
        self, dag_id: str, dag_run_id: str, *, limit: int = 100, offset: int = 0, state: list[str] | None = None
    ) -> Page[TaskInstance]:
        params = _query(limit=limit, offset=offset, state=state)
        path = f"/dags/{_segment(dag_id)}/dagRuns/{_segment(dag_run_id)}/taskInstances"
        data = self._api("GET", path, params=params)
        return Page([TaskInstance.from_json(t) for t in data.get("task_instances", [])], data.get("total_entries"))

    def get_log(self, dag_id: str, dag_run_id: str, task_id: str, try_number: int, *, map_index: int = -1) -> str:
        """The whole log of one try, as text."""
        path = (
            f"{API_PREFIX}/dags/{_segment(dag_id)}/dagRuns/{_segment(dag_run_id)}/taskInstances/"
            f"{_segment(task_id)}/logs/{int(try_number)}"
        )
        params: dict[str, Any] = {"full_content": "true"}
        if map_index >= 0:
            params["map_index"] = map_index
        return self._request("GET", path, params=params, headers={"Accept": "text/plain"}).text


def _query(**values: Any) -> dict[str, Any]:
    """Query parameters without the filters left out (None or empty); datetimes in ISO 8601."""
    return {
        name: value.isoformat() if isinstance(value, datetime) else value
        for name, value in values.items()
        if value is not None and value not in ([], "")
    }


def _problem(response: httpx.Response) -> ZondaApiError:
    """The server's problem document as an exception (a one-line fallback when the body is not one)."""
    try:
        title = HTTPStatus(response.status_code).phrase
    except ValueError:
        title = "Error"
    detail = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        title = str(body.get("title") or title)
        detail = str(body.get("detail") or "")
    if not detail and "html" not in response.headers.get("Content-Type", ""):
        detail = " ".join(response.text.split())[:200]
    if not detail:  # an HTML error page (a proxy, or a path the server does not have): say what was asked
        detail = f"{response.request.method} {response.request.url.path}"
    retry_after: float | None = None
    raw_retry = response.headers.get("Retry-After")
    if raw_retry is not None:
        try:
            retry_after = max(0.0, float(raw_retry))
        except ValueError:
            retry_after = None
    return ZondaApiError(response.status_code, title, detail, retry_after=retry_after)


__all__ = ["TOKEN_ENV", "ZondaClient"]
