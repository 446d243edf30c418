"""The admin API of a live ``authsvc serve`` (each store kind) against its own OpenAPI
document, with schemathesis: valid and invalid requests to every operation, and every
answer checked: no 5xx, a status the document lists, a body that matches its schema.

Generated ids mostly name no token; each request with a token id is therefore sent a
second time naming a real token made for it. Run longer:
``AUTHSVC_HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest -q -s
tests/adversarial/test_schemathesis.py``.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.adversarial.conftest import report
from tests.processes import AuthsvcServer, start_authsvc

#: The permissions of the admin token (every one, so that creating victims never trips
#: the delegation bounds) and of the victims.
ADMIN_PERMISSIONS = ("ManageOrganizationTokens", "ViewOrganizationTokens", "Reader", "Writer")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
pytestmark = pytest.mark.e2e  # a real `authsvc serve` process, each store kind
_victims = itertools.count(1)
Operation = APIOperation[Any, Any, Any, Any]


def _examples() -> int:
    """Cases per operation and generation mode: 25 in the CI profile."""
    return max(10, settings().max_examples // 12)


class LiveAdmin:
    """A running instance, its admin token, and real tokens to aim requests at."""

    def __init__(self, server: AuthsvcServer, secret: str) -> None:
        self.server = server
        self.base_url = f"http://127.0.0.1:{server.admin_port}"
        self.headers = {"Authorization": f"Bearer {secret}"}
        self.session = requests.Session()

    def victim(self) -> str:
        """A fresh token (through the API itself) for one request to change or delete."""
        response = self.session.post(
            f"{self.base_url}/admin/v1/tokens",
            json={"name": f"victim {next(_victims)}", "permissions": ["Reader"]},
            headers=self.headers,
            timeout=10,
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


@pytest.fixture
def live(store_url: str, tmp_path: Path) -> Iterator[LiveAdmin]:
    """``authsvc serve`` on ``store_url`` with a Manage token made by the CLI."""
    server = start_authsvc(tmp_path, store=store_url)
    try:
        token = server.create_token(*ADMIN_PERMISSIONS, name="schemathesis admin")
        yield LiveAdmin(server, token.secret)
    finally:
        server.stop()


def _operations(live: LiveAdmin) -> list[Operation]:
    """Every operation of the document the instance serves (an invalid one fails here)."""
    schema = schemathesis.openapi.from_url(f"{live.base_url}/admin/v1/openapi.json", timeout=10)
    operations: list[Operation] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operations.append(result.ok())
    return operations


def _send(live: LiveAdmin, case: Case[Operation], checks: list[Any]) -> None:
    response = case.call(base_url=live.base_url, headers=live.headers, session=live.session)
    case.validate_response(response, checks=checks, headers=live.headers)


def _body_is_invalid(case: Case[Operation]) -> bool:
    """Whether schemathesis made this case's JSON body break the document. Only then is
    "invalid input is refused" checked: a broken query may be sent as a valid one (an
    empty list or object drops out of a URL), and a missing Authorization is put back."""
    meta = case.meta
    return meta is not None and any(
        location is ParameterLocation.BODY and info.mode.is_negative
        for location, info in meta.components.items()
    )


def _run(live: LiveAdmin, operation: Operation, mode: GenerationMode, counts: Counter[str]) -> None:
    # No shrinking: a failure's report already shows the request and the answer, and
    # shrinking would replay requests against a server whose tokens have changed since.
    @settings(
        max_examples=_examples(),
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(operation.as_strategy(generation_mode=mode))
    def exercise(case: Case[Operation]) -> None:
        checks = CHECKS + ([negative_data_rejection] if _body_is_invalid(case) else [])
        _send(live, case, checks)
        counts[f"{operation.label} {mode.value}"] += 1
        if mode.is_positive and "token_id" in (case.path_parameters or {}):
            case.path_parameters = {**(case.path_parameters or {}), "token_id": live.victim()}
            _send(live, case, checks)
            counts[f"{operation.label} {mode.value}"] += 1

    exercise()


class TestAdminApiAgainstItsDocument:
    def test_every_operation_conforms(self, live: LiveAdmin, store_url: str) -> None:
        """Every operation, fed valid and invalid requests, answers without a 5xx, with a
        documented status and a body matching the document; invalid input is refused."""
        counts: Counter[str] = Counter()
        operations = _operations(live)
        assert len(operations) >= 9, [op.label for op in operations]
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _run(live, operation, mode, counts)
        kind = store_url.split(":", 1)[0]
        report(
            f"schemathesis ({kind}): {len(operations)} operations, "
            f"{sum(counts.values())} requests checked"
        )
        for label, count in sorted(counts.items()):
            print(f"  {label}: {count}")
