"""`GET /api/v1/reports/<report>`: dashboard numbers as JSON, or CSV with `format=csv`.

The report runs in a read-only connection with the caller's principal; parameters are
the query string (`period` or `from`/`to`, `user`, `department`, `limit`). An unknown
report is a 404, a bad parameter a 400 naming it, someone outside the caller's scope a
403 — all in the API's error shape (runtime/web/errors.py).
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from ..clock import utcnow
from ..errors import BadRequest
from ..reports import REPORTS, get_report, run_report, to_csv
from .context import require_principal, runtime

bp = Blueprint("metacrm_reports_api", __name__, url_prefix="/api/v1")
FORMATS = ("json", "csv")


@bp.get("/reports")
def report_index() -> Any:
    """The reports there are, with their titles in the caller's language."""
    principal = require_principal()
    return jsonify({"items": [{"name": r.name, "label": r.title(principal.language),
                               "default_period": r.default_period} for r in REPORTS.values()]})


@bp.get("/reports/<name>")
def report(name: str) -> Any:
    principal = require_principal()
    fmt = (request.args.get("format") or "json").lower()
    if fmt not in FORMATS:
        raise BadRequest("format must be json or csv.", {"format": ["Use json or csv."]})
    definition = get_report(name)
    rt = runtime()
    args = {k: v for k, v in request.args.items() if k != "format"}
    with rt.engine.connect() as conn:
        result = run_report(conn, rt.catalog(conn), principal, name, args, rt.timezone, utcnow())
    if fmt == "csv":
        filename = f"{definition.name}-{result['from'] or 'all'}-{result['to'] or ''}.csv".replace("-.csv", ".csv")
        return Response(to_csv(definition, result, principal.language), mimetype="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})
    return jsonify(result)
