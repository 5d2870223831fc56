"""The OpenAPI document of the dashboard's JSON API (``/api/openapi.json``)."""

from __future__ import annotations

from typing import Any

from tether.records import RunStatus

_STATUS = [s.value for s in RunStatus]
_ERR = {
    "description": "error",
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"error": {"type": "string"}}}
        }
    },
}
_OBJ: dict[str, Any] = {"type": "object"}
# The store is locked, full or unreachable: retry after the Retry-After header's seconds.
_UNAVAILABLE = {
    "description": "the store is unavailable (locked, full, unreachable); the message names "
    "it and the fix",
    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
    "content": _ERR["content"],
}
_FINISHED = {
    "description": "the run has already finished (completed, failed, cancelled, skipped)",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "error": {"type": "string"},
                    "status": {"type": "string", "enum": _STATUS},
                },
            }
        }
    },
}


def _ok(schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": "OK", "content": {"application/json": {"schema": schema}}}


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_RUN_ID = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}
_SUBJECT = {
    "name": "subject",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "the subject id, e.g. user:42 (1 to 256 characters, no '/')",
}
_NO_SUBJECT = {**_ERR, "description": "nothing is kept about this subject (or no such item)"}
_BAD_SUBJECT = {**_ERR, "description": "the subject id is not valid"}
_SUBJECT_PATHS: dict[str, Any] = {
    "/api/subjects": {
        "get": {
            "summary": "The subjects the store keeps something about",
            "responses": {
                "200": _ok(
                    {
                        "type": "object",
                        "properties": {"subjects": {"type": "array", "items": {"type": "string"}}},
                    }
                ),
                "401": _ERR,
            },
        }
    },
    "/api/subjects/{subject}": {
        "get": {
            "summary": "What is kept about a subject: preferences, current memories, windows, "
            "runs (redacted)",
            "parameters": [_SUBJECT],
            "responses": {"200": _ok(_OBJ), "400": _BAD_SUBJECT, "404": _NO_SUBJECT, "401": _ERR},
        },
        "delete": {
            "summary": "Forget a subject: delete its memories, windows, preferences, runs and "
            "their events; `erased` is false when the deleted bytes could not be erased from "
            "the store's files yet (`residue` says why; call again)",
            "parameters": [_SUBJECT],
            "responses": {
                "200": _ok(
                    {
                        "type": "object",
                        "properties": {
                            "subject": {"type": "string"},
                            "forgotten": {
                                "type": "object",
                                "additionalProperties": {"type": "integer"},
                            },
                            "erased": {"type": "boolean"},
                            "residue": {"type": "string", "nullable": True},
                        },
                    }
                ),
                "400": _BAD_SUBJECT,
                "404": _NO_SUBJECT,
                "401": _ERR,
            },
        },
    },
    "/api/subjects/{subject}/export": {
        "get": {
            "summary": "Everything kept about a subject as one JSON document (not redacted: it "
            "is the subject's own data): preferences, memories with superseded versions, "
            "windows, runs with steps and attempts, events",
            "parameters": [_SUBJECT],
            "responses": {"200": _ok(_OBJ), "400": _BAD_SUBJECT, "404": _NO_SUBJECT, "401": _ERR},
        }
    },
    "/api/subjects/{subject}/memory/{item}": {
        "delete": {
            "summary": "Delete one memory of a subject (with its older versions)",
            "parameters": [
                _SUBJECT,
                {"name": "item", "in": "path", "required": True, "schema": {"type": "string"}},
            ],
            "responses": {"200": _ok(_OBJ), "400": _BAD_SUBJECT, "404": _NO_SUBJECT, "401": _ERR},
        }
    },
    "/api/subjects/{subject}/preferences": {
        "put": {
            "summary": "Replace a subject's preferences (a JSON object); nothing is written "
            "when the body is not one",
            "parameters": [_SUBJECT],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "responses": {"200": _ok(_OBJ), "400": _ERR, "404": _NO_SUBJECT, "401": _ERR},
        }
    },
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "tether dashboard API",
        "version": "1",
        "description": "Runs, functions and events of a tether store; values are redacted. "
        "With TETHER_DASHBOARD_TOKEN set, send `Authorization: Bearer <token>`.",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
    "security": [{"bearer": []}],
    "paths": {
        "/api/runs": {
            "get": {
                "summary": "Runs, newest first (keyset paging with `before`)",
                "parameters": [
                    _q("function_id", {"type": "string"}, "function id"),
                    _q("status", {"type": "string", "enum": _STATUS}, "run status"),
                    _q("since", {"type": "number"}, "created at or after (epoch seconds)"),
                    _q("until", {"type": "number"}, "created before (epoch seconds)"),
                    _q("hours", {"type": "number"}, "created in the last N hours"),
                    _q(
                        "q",
                        {"type": "string"},
                        "text in the run id, input, output or error (the run id only when payloads are encrypted at rest)",
                    ),
                    _q("event_id", {"type": "string"}, "runs triggered by this event"),
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size"),
                    _q("before", {"type": "string"}, "the last run id of the previous page"),
                ],
                "responses": {"200": _ok(_OBJ), "400": _ERR, "401": _ERR},
            }
        },
        "/api/runs/{run_id}": {
            "get": {
                "summary": "A run with its steps, attempts and LLM calls",
                "parameters": [_RUN_ID],
                "responses": {"200": _ok(_OBJ), "404": _ERR, "401": _ERR},
            }
        },
        "/api/runs/{run_id}/cancel": {
            "post": {
                "summary": "Cancel a run (an executing one stops at its next step boundary)",
                "parameters": [_RUN_ID],
                "responses": {
                    "200": _ok(
                        {
                            "type": "object",
                            "properties": {"status": {"type": "string", "enum": _STATUS}},
                        }
                    ),
                    "404": _ERR,
                    "409": _FINISHED,
                    "401": _ERR,
                    "500": {**_ERR, "description": "an unexpected error (logged)"},
                },
            }
        },
        "/api/runs/{run_id}/replay": {
            "post": {
                "summary": "Replay a run, or rerun it from a step (earlier steps are reused)",
                "parameters": [_RUN_ID],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"from_step": {"type": "string", "nullable": True}},
                            }
                        }
                    },
                },
                "responses": {"200": _ok(_OBJ), "400": _ERR, "404": _ERR, "401": _ERR},
            }
        },
        "/api/functions": {
            "get": {
                "summary": "Functions with success rate, p50/p95 duration and retry rate",
                "responses": {"200": _ok(_OBJ), "401": _ERR},
            }
        },
        "/api/audit": {
            "get": {
                "summary": "The run audit (as `tether audit runs --json`): success, failures, "
                "retries absorbed, the reliability tax by cause, LLM models, cost, latency",
                "parameters": [
                    _q("since", {"type": "string"}, "only runs created in this window: 7d, 12h"),
                    _q("function", {"type": "string"}, "only this function's runs"),
                ],
                "responses": {
                    "200": _ok(
                        {
                            "type": "object",
                            "required": [
                                "runs",
                                "success_rate",
                                "retries_absorbed",
                                "failures",
                                "reliability_tax",
                                "tax_by_cause",
                                "functions",
                            ],
                            "properties": {
                                "runs": {"type": "integer"},
                                "success_rate": {"type": "number", "nullable": True},
                                "retries_absorbed": {"type": "integer"},
                                "failures": {"type": "array", "items": _OBJ},
                                "reliability_tax": {"type": "number"},
                                "tax_by_cause": _OBJ,
                                "functions": _OBJ,
                            },
                        }
                    ),
                    "400": _ERR,
                    "401": _ERR,
                },
            }
        },
        "/api/windows": {
            "get": {
                "summary": "Context windows, most recently updated first, with item counts",
                "responses": {
                    "200": _ok(
                        {
                            "type": "object",
                            "required": ["windows"],
                            "properties": {"windows": {"type": "array", "items": _OBJ}},
                        }
                    ),
                    "401": _ERR,
                },
            }
        },
        "/api/windows/{key}": {
            "get": {
                "summary": "A context window: its items (with each LLM call's context report), "
                "pins, summaries and artifacts",
                "parameters": [
                    {
                        "name": "key",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1},
                        "description": "the window's key",
                    }
                ],
                "responses": {
                    "200": _ok(
                        {
                            "type": "object",
                            "required": ["key", "items", "pins", "summaries", "artifacts"],
                            "properties": {
                                "key": {"type": "string"},
                                "subject": {"type": "string", "nullable": True},
                                "items": {"type": "array", "items": _OBJ},
                                "pins": {"type": "array", "items": _OBJ},
                                "summaries": {"type": "array", "items": _OBJ},
                                "artifacts": {"type": "array", "items": _OBJ},
                            },
                        }
                    ),
                    "404": _ERR,
                    "401": _ERR,
                },
            }
        },
        "/api/events": {
            "get": {
                "summary": "Events, newest first, with the runs they triggered",
                "parameters": [
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size"),
                    _q("before", {"type": "string"}, "the last event id of the previous page"),
                    _q("name", {"type": "string"}, "event name"),
                ],
                "responses": {"200": _ok(_OBJ), "400": _ERR, "401": _ERR},
            },
            "post": {
                "summary": "Send an event (a test event)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string", "minLength": 1},
                                    "data": {"type": "object"},
                                    "id": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {"200": _ok(_OBJ), "400": _ERR, "401": _ERR},
            },
        },
    },
}


OPENAPI["paths"].update(_SUBJECT_PATHS)

# Every operation reads or writes the store.
for _path in OPENAPI["paths"].values():
    for _operation in _path.values():
        _operation["responses"]["503"] = _UNAVAILABLE
