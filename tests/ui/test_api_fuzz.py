"""schemathesis against the OpenAPI document, through the WSGI app, with an Admin and with a Viewer API token: no
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
def test_api_matches_its_document(make_web_app: Any, role: str) -> None:
    from zonda.operations.api_tokens import create_token

    web = make_web_app({("api", "rate_limit_per_minute"): 1_000_000})  # the fuzzer is one fast client
    seed_api_history(web)
    token = create_token(web.engine, web.users[role], days=365).token  # the app runs on the fake clock (2027)
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", web.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40
    for operation in operations:

        @_SETTINGS
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            response = case.call(headers=headers)
            case.validate_response(response, checks=_CHECKS)
            assert response.status_code != 401, ("the requests must be authenticated", response.text)
            if role == "Viewer" and case.method.upper() != "GET":
                assert response.status_code == 403, (case.method, case.formatted_path, response.status_code)

        check()
    assert web.client().get("/api/v1/version", headers=headers).status_code == 200, "the token stopped working"
