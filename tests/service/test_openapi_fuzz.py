"""Schemathesis over the OpenAPI spec (few examples per operation): no 5xx, ever."""

from __future__ import annotations

from typing import Any

import hypothesis
import schemathesis
from fastapi.testclient import TestClient
from schemathesis.checks import not_a_server_error

from service.main import create_app
from service.settings import ServiceSettings
from tests.service.conftest import World

# Building the spec needs no database or Redis (nothing connects before the lifespan starts).
schema = schemathesis.openapi.from_dict(create_app(ServiceSettings()).openapi())


@schema.parametrize()
@hypothesis.settings(
    max_examples=3,
    phases=[hypothesis.Phase.generate],
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_no_server_errors(case: schemathesis.Case, client: TestClient, world: World) -> None:
    if case.path.endswith("/events"):
        return  # an endless SSE stream; covered by tests/service/test_live.py
    kwargs = case.as_transport_kwargs(base_url="", headers=world.auth("admin"))
    method, url = kwargs.pop("method"), kwargs.pop("url")
    request_kwargs: dict[str, Any] = {
        "headers": kwargs.get("headers"),
        "params": kwargs.get("params"),
    }
    if "json" in kwargs:
        request_kwargs["json"] = kwargs["json"]
    elif "data" in kwargs:
        request_kwargs["content"] = kwargs["data"]
    response = client.request(method, url, **request_kwargs)
    case.validate_response(response, checks=[not_a_server_error])
