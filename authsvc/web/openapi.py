"""The OpenAPI 3 description of the admin API, served at ``/admin/v1/openapi.json``.

A test compares its paths and methods with the router's, so the two cannot drift.
"""

from __future__ import annotations

from typing import Any

from authsvc import __version__
from authsvc.rules.decision import AUTH_STATUS
from authsvc.rules.explain import CHECK_NAMES
from authsvc.store import USAGE_DENIALS
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
    "max_rate_limit": _NULLABLE_STRING,
}
_TOKEN = {"$ref": "#/components/schemas/Token"}
#: ``"<count>/<unit>"``: a count from 1 (at most 10 digits) per second, minute or hour.
_RATE_LIMIT = {
    "type": ["string", "null"],
    "pattern": "^[1-9][0-9]{0,9}/[smh]$",
    "description": "Allowed requests per s, m or h, e.g. 600/m (a token bucket of that "
    "capacity); null for none. Under the policy's max_rate_limit it is required and at "
    "most that (compared per second).",
}
_BOUNDED = (
    "Delegation bounds: the calling token hands on only what it holds (its permissions, "
    "ManageOrganizationTokens including ViewOrganizationTokens; an expiry no later than "
    "its own; its own IP filter unless the policy enforces one; a rate limit no higher "
    "than its own); beyond that, 403 "
    "exceeds_caller. The policy's 422 rules are checked first."
)
_TOKEN_WITH_SECRET = {"$ref": "#/components/schemas/TokenWithSecret"}
_GRACE = (
    'Optional body {"grace": "1h"}: the old secret keeps working until the grace ends or '
    "the new secret is first used successfully on /auth, whichever comes first; a previous "
    "secret still in an earlier grace stops at once."
)

_USAGE_OUTCOMES = list(USAGE_DENIALS)
_USAGE: dict[str, Any] = {
    "type": "object",
    "required": ["hours"],
    "properties": {
        "hours": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["hour", "allowed", "denied"],
                "properties": {
                    "hour": {"type": "string", "format": "date-time"},
                    "allowed": {"type": "integer", "minimum": 0},
                    "denied": {
                        "type": "object",
                        "description": "requests denied after the token was identified, by "
                        "reason; only reasons that occurred",
                        "propertyNames": {"enum": _USAGE_OUTCOMES},
                        "additionalProperties": {"type": "integer", "minimum": 1},
                    },
                },
            },
        }
    },
}

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
                    "One page of tokens and the number matching every filter",
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
                _query(
                    "status",
                    {"enum": ["active", "expired", "blocked"]},
                    description="only tokens with this status (as the token object shows it); "
                    "empty: no filter. blocked lists nothing here: while tokens are switched "
                    "off every admin call is refused (403 tokens_disabled)",
                ),
                _query(
                    "expires_within",
                    {"type": "string", "pattern": "^[1-9][0-9]*[mhd]$"},
                    description="only active tokens whose effective_expires_at is at most "
                    "this far from now (30m, 12h, 7d); tokens that never expire are not "
                    "among them; empty: no filter",
                ),
            ],
        ),
    },
    "/admin/v1/tokens/{token_id}": {
        "parameters": [_TOKEN_ID],
        "get": _op("Show a token", {"200": _json(_TOKEN, "The token"), **_errors(404)}),
        "patch": _op(
            "Replace a token's permissions and/or its rate limit (effective at once)",
            {"200": _json(_TOKEN, "The updated token"), **_errors(400, 404, 413, 422)},
            description=_BOUNDED,
            requestBody={
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "additionalProperties": False,
                            "minProperties": 1,
                            "properties": {
                                "permissions": {
                                    "type": "array",
                                    "items": {"type": "string"},
                                    "minItems": 1,
                                },
                                "rate_limit": _RATE_LIMIT,
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
            "Issue a new secret; without a grace the old one stops working at once",
            {
                "200": _json(_TOKEN_WITH_SECRET, "The token and its new secret"),
                **_errors(400, 404, 413, 422),
            },
            description=_GRACE + " " + _BOUNDED,
            requestBody={
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "grace": {
                                    "type": ["string", "null"],
                                    "pattern": "^(0|[1-9][0-9]*)[mhd]$",
                                    "description": "at most 7d; absent, null or 0m: no grace",
                                }
                            },
                        }
                    }
                },
            },
        ),
    },
    "/admin/v1/tokens/{token_id}/usage": {
        "parameters": [_TOKEN_ID],
        "get": _op(
            "A token's requests per hour: allowed, and denied by reason",
            {
                "200": _json(_USAGE, "The hours with requests, oldest first"),
                **_errors(400, 404, 422),
            },
            description="Counts are written by each instance every 5 seconds, so the last "
            "seconds may be missing. Hours without requests are omitted. An unknown or "
            "deleted token is 404. Bad times, from not before to, or a range over 90 days "
            "are 422 invalid_range.",
            parameters=[
                _query(
                    "from",
                    {"type": "string", "format": "date-time"},
                    description="RFC 3339; default: 7 days before to. The hour holding it "
                    "is included",
                ),
                _query(
                    "to",
                    {"type": "string", "format": "date-time"},
                    description="RFC 3339; default: now. Hours starting before it are "
                    "included; at most 90 days after from",
                ),
            ],
        ),
    },
    "/admin/v1/tokens/revoke": {
        "post": {
            "summary": "Revoke a leaked secret (no admin token: holding the secret is the proof)",
            "description": "A token's current secret deletes the token; a previous secret "
            "still in its grace ends only that grace. Any Authorization header is ignored. "
            "Unknown secrets spend the instance's budget of store lookups for unknown "
            "tokens; past it the answer is 429 with Retry-After.",
            "security": [],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["token"],
                            "properties": {"token": {"type": "string"}},
                        }
                    }
                },
            },
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["id", "revoked"],
                        "properties": {
                            "id": {"type": "string"},
                            "revoked": {"enum": ["token", "previous_secret"]},
                        },
                    },
                    "What the secret opened is revoked",
                ),
                **{str(status): _REF_ERROR for status in (400, 404, 413, 422, 503)},
                "429": {
                    "description": "Too many unknown secrets: try again later",
                    "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}},
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                },
            },
        },
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
    "/admin/v1/explain": {
        "post": _op(
            "What /auth would answer now for a token, method, target and client address, "
            "and why (counts nothing: no usage, no lookup budget, no metrics)",
            {
                "200": _json({"$ref": "#/components/schemas/Explanation"}, "The explanation"),
                **_errors(400, 404, 413, 422),
            },
            requestBody={
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ExplainRequest"}}
                },
            },
        ),
    },
    "/admin/v1/introspect": {
        "post": _op(
            "RFC 7662 token introspection for other gateways (counts nothing)",
            {
                "200": _json(
                    {"$ref": "#/components/schemas/Introspection"},
                    'The token\'s state; {"active": false} and nothing else for anything '
                    "not usable now",
                ),
                **_errors(400, 413, 415, 422),
            },
            requestBody={
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["token"],
                            "properties": {
                                "token": {"type": "string"},
                                "client_ip": {
                                    "type": "string",
                                    "description": "the client's address; a token with an "
                                    "effective IP filter is active only with one it passes",
                                },
                                "token_type_hint": {
                                    "type": "string",
                                    "description": "accepted and ignored (RFC 7662)",
                                },
                            },
                        }
                    }
                },
            },
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
    "previous_secret_expires_at": {
        **_TIME,
        "description": "When the previous secret of a rotation with a grace stops: the "
        "earlier of the grace's end and effective_expires_at; null when no previous secret "
        "works (none kept, its grace over, or ended by the new secret's first use).",
    },
    "status": {"enum": ["active", "expired", "blocked"]},
    "created_by": {"type": "string"},
    "last_used_at": _TIME,
    "last_used_ip": _NULLABLE_STRING,
    "rate_limit": _RATE_LIMIT,
}

_FIELD_DESCRIPTION = (
    "Present only when one input is at fault: the JSON body key (name, permissions, "
    "expires_in, ip_filter, rate_limit; rotate's grace; revoke's token; explain's token_id, token, "
    "method, uri, ip; or the one unknown "
    "key, cut to 40 characters), the form field of introspect (token, client_ip), or the query "
    "parameter of a list call (name, sort, order, limit, offset, status, expires_within, or "
    "the one unknown or repeated parameter; usage's from and to); anything shaped like a "
    "secret is redacted. "
    "Absent for errors about the whole request or about several inputs at once. Codes that may "
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
            "ExplainRequest": {
                "type": "object",
                "additionalProperties": False,
                "required": ["method", "uri"],
                "oneOf": [{"required": ["token_id"]}, {"required": ["token"]}],
                "properties": {
                    "token_id": {"type": "string", "description": "explain by id"},
                    "token": {"type": "string", "description": "explain by secret"},
                    "method": {"type": "string", "description": "as X-Original-Method"},
                    "uri": {
                        "type": "string",
                        "description": "the raw request target, as X-Original-URI",
                    },
                    "ip": {
                        **_NULLABLE_STRING,
                        "description": "the client address; none fails any IP filter",
                    },
                },
            },
            "Explanation": {
                "type": "object",
                "required": ["status", "reason", "checks", "matched_endpoint", "ip_rule"],
                "properties": {
                    "status": {"enum": sorted(set(AUTH_STATUS.values()))},
                    "reason": {"enum": [reason.value for reason in AUTH_STATUS]},
                    "checks": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["check", "passed", "detail"],
                            "properties": {
                                "check": {"enum": list(CHECK_NAMES)},
                                "passed": {"type": "boolean"},
                                "detail": {"type": "string"},
                            },
                        },
                    },
                    "matched_endpoint": _NULLABLE_STRING,
                    "ip_rule": _NULLABLE_STRING,
                },
            },
            "Introspection": {
                "type": "object",
                "required": ["active"],
                "properties": {
                    "active": {"type": "boolean"},
                    "sub": {"type": "string"},
                    "scope": {"type": "string"},
                    "iat": {"type": "integer"},
                    "exp": {"type": "integer"},
                    "token_type": {"const": "bearer"},
                    "name": {"type": "string"},
                },
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
                    "rate_limit": _RATE_LIMIT,
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
