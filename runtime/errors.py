"""Errors the runtime raises; `runtime/web/errors.py` maps them to HTTP in one place.

Each carries a stable `code` (clients switch on it), a message, and for validation the
offending fields, so every interface can show the error next to the input that caused it.
"""
from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, fields: dict[str, list[str]] | None = None, **extra: Any):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        body.update(self.extra)
        return {"error": body}


class BadRequest(ServiceError):
    """The request itself is malformed: bad JSON, an unknown filter field, a bad page number."""


class ValidationFailed(ServiceError):
    """The record doesn't satisfy its metadata: types, required, rules, lookups."""

    status = 422
    code = "validation_error"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    """A stale version (optimistic lock), a duplicate, or a record still referenced."""

    status = 409
    code = "conflict"


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"


class PermissionDenied(ServiceError):
    status = 403
    code = "forbidden"


class TooManyRequests(ServiceError):
    """Throttled: too many failed sign-ins. Carries how long to wait."""

    status = 429
    code = "too_many_requests"
