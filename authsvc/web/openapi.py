"""The OpenAPI 3 description of the admin API, served at ``/admin/v1/openapi.json``.

A test compares its paths and methods with the router's, so the two cannot drift.
"""

from __future__ import annotations

from typing import Any

from authsvc import __version__
from authsvc.web.errors import FIELD_CODES, STATUS_BY_CODE

_REF_ERROR = {"$ref": "#/components/responses/Error"}
_TOKEN_ID = {
    "name": "token_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^tok_[0-9a-f]{16}$"},
}
_NULLABLE_STRING = {"type": ["string", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(status): _REF_ERROR for status in (401, 403, 503, *statuses)}


def _query(name: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, **extra}


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "security": [{"bearer": []}], "responses": responses, **extra}


_POLICY_PROPERTIES: dict[str, Any] = {
    "tokens_enabled": {"type": "boolean"},
    "max_lifetime": _NULLABLE_STRING,
    "max_lifetime_seconds": {"type": ["integer", "null"]},
    "enforce_ip_filter": _NULLABLE_STRING,
    "allow_permission_updates": {"type": "boolean"},
}
_TOKEN = {"$ref": "#/components/schemas/Token"}
_BOUNDED = (
    "Delegation bounds: the calling token hands on only what it holds (its permissions, "
    "ManageOrganizationTokens including ViewOrganizationTokens; an expiry no later than "
    "its own; its own IP filter unless the policy enforces one); beyond that, 403 "
    "exceeds_caller. The policy's 422 rules are checked first."
)
_TOKEN_WITH_SECRET = {"$ref": "#/components/schemas/TokenWithSecret"}

PATHS: dict[str, Any] = {
    "/admin/v1/tokens": {
        "post": _op(
            "Create a token (the secret is in the response, once)",
            {"201": _json(_TOKEN_WITH_SECRET, "Created"), **_errors(400, 409, 413, 422)},
            description=_BOUNDED,
            requestBody={
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/NewToken"}}
                },
            },
        ),
        "get": _op(
            "List tokens",
            {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["total", "tokens"],
                        "properties": {
                            "total": {"type": "integer"},
                            "tokens": {"type": "array", "items": _TOKEN},
                        },
                    },
                    "One page of tokens and the number matching",
                ),
                **_errors(400),
            },
            parameters=[
                _query(
                    "name",
                    {"type": "string", "maxLength": 100},
                    description="case-insensitive substring of the name",
                ),
                _query("sort", {"enum": ["name", "expires_at"], "default": "name"}),
                _query("order", {"enum": ["asc", "desc"], "default": "asc"}),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}),
                _query("offset", {"type": "integer", "minimum": 0, "default": 0}),
            ],
        ),
    },
    "/admin/v1/tokens/{token_id}": {
        "parameters": [_TOKEN_ID],
        "get": _op("Show a token", {"200": _json(_TOKEN, "The token"), **_errors(404)}),
        "patch": _op(
            "Replace a token's permissions (effective at once)",
            {"200": _json(_TOKEN, "The updated token"), **_errors(400, 404, 413, 422)},
            description=_BOUNDED,
            requestBody={
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["permissions"],
                            "properties": {
                                "permissions": {
                                    "type": "array",
                                    "items": {"type": "string"},
                                    "minItems": 1,
                                }
                            },
                        }
                    }
                },
            },
        ),
        "delete": _op(
            "Delete a token (stops working at once)",
            {"204": {"description": "Deleted"}, **_errors(404)},
        ),
    },
    "/admin/v1/tokens/{token_id}/rotate": {
        "parameters": [_TOKEN_ID],
        "post": _op(
            "Issue a new secret; the old one stops working at once",
            {"200": _json(_TOKEN_WITH_SECRET, "The token and its new secret"), **_errors(404)},
            description=_BOUNDED,
        ),
    },
    "/admin/v1/permissions": {
        "get": _op(
            "The permission catalog",
            {
                "200": _json(
                    {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name", "description", "endpoints"],
                            "properties": {
                                "name": {"type": "string"},
                                "description": {"type": "string"},
                                "endpoints": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                    },
                    "Permissions with their endpoint templates",
                ),
                **_errors(),
            },
        ),
    },
    "/admin/v1/ip-filters": {
        "get": _op(
            "The named IP filters",
            {
                "200": _json(
                    {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name", "rules"],
                            "properties": {
                                "name": {"type": "string"},
                                "rules": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                    },
                    "Filters with their rules",
                ),
                **_errors(),
            },
        ),
    },
    "/admin/v1/policy": {
        "get": _op(
            "The security policy in force",
            {
                "200": _json(
                    {
                        "type": "object",
                        "required": list(_POLICY_PROPERTIES),
                        "properties": _POLICY_PROPERTIES,
                    },
                    "The policy",
                ),
                **_errors(),
            },
        ),
    },
    "/admin/v1/self": {
        "get": _op(
            "The calling token itself (an addition to the contract: the token page offers "
            "only what this token can grant)",
            {"200": _json(_TOKEN, "The calling token"), **_errors()},
        ),
    },
    "/admin/v1/openapi.json": {
        "get": {
            "summary": "This document",
            "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1 document"}},
        },
    },
}

_TOKEN_PROPERTIES: dict[str, Any] = {
    "id": {"type": "string"},
    "name": {"type": "string", "minLength": 1, "maxLength": 100},
    "permissions": {"type": "array", "items": {"type": "string"}},
    "ip_filter": _NULLABLE_STRING,
    "created_at": {"type": "string", "format": "date-time"},
    "expires_at": _TIME,
    "effective_expires_at": {
        **_TIME,
        "description": "When the token stops being accepted: the earlier of expires_at and "
        "created_at plus the security policy's max_lifetime; null when neither is set.",
    },
    "status": {"enum": ["active", "expired", "blocked"]},
    "created_by": {"type": "string"},
    "last_used_at": _TIME,
    "last_used_ip": _NULLABLE_STRING,
}

_FIELD_DESCRIPTION = (
    "Present only when one input is at fault: the JSON body key (name, permissions, "
    "expires_in, ip_filter, or the one unknown key, cut to 40 characters) or the query "
    "parameter of a list call (name, sort, order, limit, offset, or the one unknown or "
    "repeated parameter); anything shaped like a secret is redacted. Absent for errors "
    "about the whole request or about several inputs at once. Codes that may "
    f"carry it: {', '.join(sorted(FIELD_CODES))}."
)

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "authsvc admin API", "version": __version__},
    "paths": PATHS,
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Token": {
                "type": "object",
                "required": list(_TOKEN_PROPERTIES),
                "properties": _TOKEN_PROPERTIES,
            },
            "TokenWithSecret": {
                "allOf": [
                    _TOKEN,
                    {
                        "type": "object",
                        "required": ["token"],
                        "properties": {
                            "token": {"type": "string", "pattern": "^authsvc_[0-9A-Za-z]{49}$"}
                        },
                    },
                ]
            },
            "NewToken": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "permissions"],
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 100},
                    "permissions": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    "expires_in": {"type": ["string", "null"], "pattern": "^[1-9][0-9]*[mhd]$"},
                    "ip_filter": _NULLABLE_STRING,
                },
            },
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"enum": sorted(STATUS_BY_CODE)},
                            "message": {"type": "string"},
                            "field": {
                                "type": "string",
                                "description": _FIELD_DESCRIPTION,
                            },
                        },
                    }
                },
            },
        },
        "responses": {"Error": _json({"$ref": "#/components/schemas/Error"}, "An error")},
    },
}
