"""Errors as HTTP: the one place where service errors become status codes and JSON.

Every API error has the contract's shape `{"error": {"code", "message", "fields"?}}`,
including Flask's own 404/405 and anything unexpected (a 500 that says nothing internal).
"""
from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from metacrm.metadata.documents import MetadataInvalid

from ..errors import ServiceError


def _is_api() -> bool:
    return request.path.startswith("/api/")


def error_response(status: int, code: str, message: str, **extra: Any) -> Any:
    body = {"error": {"code": code, "message": message, **extra}}
    return jsonify(body), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError) -> Any:
        headers = {"Retry-After": str(exc.extra["retry_after"])} if "retry_after" in exc.extra else {}
        return jsonify(exc.to_dict()), exc.status, headers

    @app.errorhandler(MetadataInvalid)
    def _metadata_invalid(exc: MetadataInvalid) -> Any:
        return error_response(422, "metadata_invalid", f"{len(exc.errors)} metadata error(s).",
                              errors=[e.to_dict() for e in exc.errors])

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        if not _is_api():
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        if not _is_api():
            return "Internal server error", 500
        return error_response(500, "internal_error", "Something went wrong on the server; it has been logged.")
