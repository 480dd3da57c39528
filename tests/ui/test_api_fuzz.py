"""schemathesis against the OpenAPI document, through the WSGI app, with an Admin and with a Viewer session: no
answer is a 5xx, every answer matches the document (status, content type, schema), and no request of a Viewer
changes anything (every write is refused with 403 before its view runs). Bounded and deterministic: 20 examples
per operation, derandomized, no shrinking."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from api_seed import seed_api_history
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from web_marks import SQLITE_ONLY

_SETTINGS = settings(
    max_examples=20,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@SQLITE_ONLY
@pytest.mark.parametrize("role", ["Admin", "Viewer"])
def test_api_matches_its_document(web: Any, role: str) -> None:
    seed_api_history(web)
    client = web.logged_in(role)
    token = web.token(client)
    cookies = {"zonda_session": client.get_cookie("zonda_session").value}
    headers = {"X-CSRF-Token": token}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", web.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40
    for operation in operations:

        @_SETTINGS
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            response = case.call(headers=headers, cookies=cookies)
            case.validate_response(response, checks=_CHECKS)
            assert response.status_code != 401, "the fuzzer's requests must be logged in"
            if role == "Viewer" and case.method.upper() != "GET":
                assert response.status_code == 403, (case.method, case.formatted_path, response.status_code)

        check()
    again = web.client()
    again.set_cookie("zonda_session", cookies["zonda_session"])
    assert again.get("/api/v1/version").status_code == 200, "the session ended during the run"
