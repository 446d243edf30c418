"""The OpenAPI document (SPEC §4): served without a token, valid OpenAPI 3 shape, and in
step with the router, the error codes and the real JSON the API answers with."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from authsvc.web.admin import _CREATE_FIELDS, _LIST_PARAMS, _PATCH_FIELDS, MAX_LIMIT
from authsvc.web.errors import FIELD_CODES, STATUS_BY_CODE
from authsvc.web.openapi import DOCUMENT
from tests.admin_helpers import granting_admin  # noqa: F401 - the admin fixture: it holds what it hands on
from tests.webapp import Client, bearer

OPENAPI = "/admin/v1/openapi.json"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(path, method, operation) of every operation in the document."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def resolve(document: dict[str, Any], node: Any) -> Any:
    """``node`` with a local ``$ref`` followed (once; the document nests none deeper)."""
    if isinstance(node, dict) and "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return target
    return node


def references(node: Any) -> Iterator[str]:
    """Every ``$ref`` value anywhere under ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


@pytest.fixture
async def served(admin_client: Client) -> dict[str, Any]:
    """The document as served, without a token."""
    response = await admin_client.get(OPENAPI)
    assert response.status == 200
    document: dict[str, Any] = await response.json()
    return document


class TestServed:
    """GET /admin/v1/openapi.json."""

    @pytest.mark.parametrize(
        "headers",
        [
            pytest.param({}, id="no-token"),
            pytest.param({"Authorization": "Bearer junk"}, id="junk-token"),
        ],
    )
    async def test_needs_no_token(self, admin_client: Client, headers: dict[str, str]) -> None:
        """200 application/json with no or a junk token: the document is public."""
        response = await admin_client.get(OPENAPI, headers=headers)
        assert (response.status, response.content_type) == (200, "application/json")
        assert await response.json() == DOCUMENT


class TestMatchesRouter:
    """Every admin route is documented and every documented operation is routed."""

    def test_paths_and_methods(self, admin_client: Client, served: dict[str, Any]) -> None:
        """Router and document hold the same (path, method) pairs under /admin/v1."""
        routed = {
            (route.resource.canonical, route.method.lower())
            for route in admin_client.app.router.routes()
            if route.resource is not None
            and route.resource.canonical.startswith("/admin/v1")
            and route.method != "HEAD"
        }
        documented = {(path, method) for path, method, _ in operations(served)}
        assert routed == documented
        assert all(path.startswith("/admin/v1/") for path, _ in documented)

    def test_request_fields_match_the_handlers(self, served: dict[str, Any]) -> None:
        """Create and PATCH bodies and list parameters are the ones the handlers accept."""
        new_token = served["components"]["schemas"]["NewToken"]
        assert set(new_token["properties"]) == _CREATE_FIELDS
        assert new_token["additionalProperties"] is False
        patch = served["paths"]["/admin/v1/tokens/{token_id}"]["patch"]
        patch_schema = patch["requestBody"]["content"]["application/json"]["schema"]
        assert set(patch_schema["properties"]) == _PATCH_FIELDS
        listing = served["paths"]["/admin/v1/tokens"]["get"]["parameters"]
        assert {p["name"] for p in listing if p["in"] == "query"} == _LIST_PARAMS
        limit = next(p for p in listing if p["name"] == "limit")["schema"]
        assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, MAX_LIMIT, 50)


class TestShape:
    """The document has the shape of OpenAPI 3."""

    def test_top_level(self, served: dict[str, Any]) -> None:
        """openapi 3.x, info with title and version, paths and components."""
        assert served["openapi"].startswith("3.")
        assert served["info"]["title"]
        assert served["info"]["version"]
        assert served["paths"]
        assert served["components"]["securitySchemes"]["bearer"] == {
            "type": "http",
            "scheme": "bearer",
        }

    def test_every_response_has_a_description(self, served: dict[str, Any]) -> None:
        """Each operation has responses, each (after $ref) with a description."""
        for path, method, operation in operations(served):
            assert operation["responses"], (path, method)
            for status, response in operation["responses"].items():
                assert re.fullmatch(r"[1-5][0-9][0-9]", status), (path, method, status)
                assert resolve(served, response)["description"], (path, method, status)

    def test_every_reference_resolves(self, served: dict[str, Any]) -> None:
        """No $ref points at something missing."""
        refs = set(references(served))
        assert refs
        for ref in refs:
            assert ref.startswith("#/"), ref
            assert resolve(served, {"$ref": ref}) is not None

    def test_path_parameters_are_declared(self, served: dict[str, Any]) -> None:
        """Every {name} in a path is a required path parameter of its operations."""
        for path, item in served["paths"].items():
            for method, operation in item.items():
                if method not in HTTP_METHODS:
                    continue
                declared = {
                    p["name"]
                    for p in [*item.get("parameters", []), *operation.get("parameters", [])]
                    if p["in"] == "path" and p["required"] is True
                }
                assert declared == set(re.findall(r"{([^}]+)}", path)), (path, method)

    def test_security(self, served: dict[str, Any]) -> None:
        """Every call but the document itself and the revocation of a leaked secret needs
        the bearer token and documents 401/403."""
        for path, method, operation in operations(served):
            if path in (OPENAPI, "/admin/v1/tokens/revoke"):
                assert operation["security"] == []
                continue
            assert operation["security"] == [{"bearer": []}], (path, method)
            assert {"401", "403", "503"} <= set(operation["responses"]), (path, method)

    def test_documented_statuses_exist(self, served: dict[str, Any]) -> None:
        """Every documented error status is one the API can answer with."""
        possible = set(STATUS_BY_CODE.values())
        for path, method, operation in operations(served):
            for status in operation["responses"]:
                if int(status) >= 400:
                    assert int(status) in possible, (path, method, status)


class TestSchemasMatchAnswers:
    """The schemas describe what the API really answers."""

    def test_error_codes(self, served: dict[str, Any]) -> None:
        """The Error schema's code enum lists every code of STATUS_BY_CODE."""
        error = served["components"]["schemas"]["Error"]
        assert error["required"] == ["error"]
        inner = error["properties"]["error"]
        assert set(inner["required"]) == {"code", "message"}
        enum = inner["properties"]["code"]["enum"]
        for code in STATUS_BY_CODE:
            assert code in enum, code
        assert len(enum) == len(set(enum))

    def test_error_field_is_optional_and_explained(self, served: dict[str, Any]) -> None:
        """The Error schema documents ``field`` as an optional string and names every code
        that may carry it."""
        inner = served["components"]["schemas"]["Error"]["properties"]["error"]
        assert "field" not in inner["required"]
        field = inner["properties"]["field"]
        assert field["type"] == "string"
        for code in FIELD_CODES:
            assert code in field["description"], code

    @pytest.mark.parametrize(
        ("path", "body"),
        [
            pytest.param("/admin/v1/tokens", {"name": "n", "permissions": ["Nope"]}, id="field"),
            pytest.param("/admin/v1/tokens", [], id="no-field"),
        ],
    )
    async def test_real_errors_fit_the_error_schema(
        self,
        served: dict[str, Any],
        admin_client: Client,
        admin: tuple[Any, str],
        path: str,
        body: Any,
    ) -> None:
        """A real error, with ``field`` or without, holds the required keys and no others."""
        response = await admin_client.post(path, json=body, headers=bearer(admin[1]))
        error = (await response.json())["error"]
        inner = served["components"]["schemas"]["Error"]["properties"]["error"]
        assert set(inner["required"]) <= set(error) <= set(inner["properties"])
        assert error["code"] in inner["properties"]["code"]["enum"]

    async def test_token_object(
        self, served: dict[str, Any], admin_client: Client, admin: tuple[Any, str]
    ) -> None:
        """Token and TokenWithSecret list exactly the fields of a real created token."""
        response = await admin_client.post(
            "/admin/v1/tokens",
            json={"name": "doc check", "permissions": ["Reader"]},
            headers=bearer(admin[1]),
        )
        assert response.status == 201
        created = await response.json()
        schemas = served["components"]["schemas"]
        token = schemas["Token"]
        assert set(token["required"]) == set(token["properties"]) == set(created) - {"token"}
        with_secret = schemas["TokenWithSecret"]["allOf"][1]
        assert with_secret["required"] == ["token"]
        pattern = with_secret["properties"]["token"]["pattern"]
        assert re.fullmatch(pattern.strip("^$"), created["token"])
        assert created["status"] in token["properties"]["status"]["enum"]

    async def test_self_answers_a_token_object(
        self, served: dict[str, Any], admin_client: Client, admin: tuple[Any, str]
    ) -> None:
        """GET /admin/v1/self answers the Token schema, as documented."""
        response = await admin_client.get("/admin/v1/self", headers=bearer(admin[1]))
        assert response.status == 200
        documented = served["paths"]["/admin/v1/self"]["get"]["responses"]["200"]
        assert documented["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Token"
        }
        token = served["components"]["schemas"]["Token"]
        assert set(await response.json()) == set(token["required"])
