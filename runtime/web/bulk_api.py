"""Import and export over HTTP (`/api/v1`, ARCHITECTURE.md): upload a CSV/XLSX with a
mode and an optional mapping, preview it first, download a template, poll a job, get its
error report; export a list as CSV or XLSX.

An upload is saved under the instance folder, because XLSX needs random access and a
background job outlives the request. Small files are imported inside the request;
larger ones (above `IMPORT_SYNC_BYTES`, default 1 MiB) become a job on a thread of this
process, answered with 202 and a URL to poll.
"""
from __future__ import annotations

import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterator

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context, url_for

from ..errors import BadRequest
from ..exports import FORMATS, csv_chunks, export_records, parse_ids, record_export, write_xlsx
from ..imports import jobs
from ..imports.importer import ImportOptions
from ..imports.mapping import importable_fields, resolve_mapping, suggest_mapping
from ..imports.readers import open_table, text_of
from ..principal import Principal
from ..query import parse_list_args
from .context import require_principal, runtime

bp = Blueprint("metacrm_bulk", __name__, url_prefix="/api/v1")
SYNC_BYTES = 1024 * 1024
PREVIEW_ROWS = 10
TRUE_WORDS = ("1", "true", "yes", "on")


def _require_import(entity: str, principal: Principal) -> Any:
    return jobs.require_import(runtime().catalog(), principal, entity)


def _upload_dir() -> Path:
    folder = Path(current_app.instance_path) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _save_upload() -> tuple[Path, str]:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise BadRequest("Send the file as multipart form field 'file'.", {"file": ["Missing file."]})
    name = os.path.basename(upload.filename)[:255]
    path = _upload_dir() / f"upload-{uuid.uuid4().hex}{Path(name).suffix[:10]}"
    upload.save(path)
    return path, name


def _mapping_arg() -> Any:
    raw = request.form.get("mapping")
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise BadRequest("mapping is not valid JSON.", {"mapping": ["Not valid JSON."]}) from None


def _flag(name: str) -> bool:
    return (request.form.get(name) or request.args.get(name) or "").strip().lower() in TRUE_WORDS


@bp.post("/records/<entity>/import")
def import_view(entity: str) -> Any:
    """Import a file: `{"created", "updated", "skipped", "errors", ...}` or 202 with a job to poll."""
    principal = require_principal()
    _require_import(entity, principal)
    rt = runtime()
    options = ImportOptions(mode=(request.form.get("mode") or "create").strip(), dry_run=_flag("dry_run"))
    mapping = _mapping_arg()
    encoding = request.form.get("encoding") or None
    path, filename = _save_upload()
    try:
        job_id, columns = jobs.create_job(rt, principal, entity, path, filename, options, mapping, encoding)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    report = url_for("metacrm_bulk.report_view", job_id=job_id)
    limit = int(current_app.config.get("IMPORT_SYNC_BYTES", SYNC_BYTES))
    if path.stat().st_size > limit:
        jobs.start_job(rt, principal, job_id, entity, path, columns, options, encoding)
        return jsonify({"job": job_id, "status": "queued",
                        "progress": url_for("metacrm_bulk.job_view", job_id=job_id), "report": report}), 202
    jobs.run_job(rt, principal, job_id, entity, path, columns, options, encoding)
    with rt.engine.begin() as conn:
        body = jobs.job_json(conn, principal, job_id, report)
    return jsonify(body), 200


@bp.post("/records/<entity>/import/preview")
def preview_view(entity: str) -> Any:
    """The file's headers, the suggested mapping, the importable fields and the first rows."""
    principal = require_principal()
    entity_rt, access = _require_import(entity, principal)
    path, filename = _save_upload()
    lang = principal.language
    try:
        with open_table(path, request.form.get("encoding") or None) as table:
            rows = []
            for number, cells in table.rows:
                rows.append({"row": number, "cells": [text_of(c) for c in cells[:len(table.headers)]]})
                if len(rows) >= PREVIEW_ROWS:
                    break
            override = _mapping_arg()
            suggested = suggest_mapping(table.headers, entity_rt, access)
            if override is not None:
                columns = resolve_mapping(table.headers, override, entity_rt, access)
                suggested = {h: (columns[i].name if i in columns else None) for i, h in enumerate(table.headers)}
            body = {"filename": filename, "format": table.format, "encoding": table.encoding,
                    "headers": table.headers, "mapping": suggested, "rows": rows,
                    "fields": [{"name": f.name, "label": f.label.get(lang), "type": f.type,
                                "required": f.required} for f in importable_fields(entity_rt, access)]}
    finally:
        path.unlink(missing_ok=True)
    return jsonify(body)


@bp.get("/records/<entity>/import/template")
def template_view(entity: str) -> Any:
    """An empty CSV/XLSX whose header row names the importable fields (`lang=en|zh`).
    A leading `*` marks a required field; the importer reads the header either way."""
    principal = require_principal()
    entity_rt, access = _require_import(entity, principal)
    fmt = request.args.get("format", "csv")
    lang = request.args.get("lang") or principal.language
    if fmt not in FORMATS or lang not in ("en", "zh"):
        raise BadRequest("format is csv or xlsx; lang is en or zh.")
    fields = [f for f in importable_fields(entity_rt, access) if f.name != "id"]
    names = [("*" if f.required else "") + f.label.get(lang) for f in fields]
    filename = f"{entity}-import-template.{fmt}"
    if fmt == "csv":
        import csv
        import io
        buffer = io.StringIO()
        csv.writer(buffer).writerow(names)
        data = b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8")
        return Response(data, mimetype="text/csv; charset=utf-8", headers=_attachment(filename))
    import openpyxl
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = entity_rt.entity.label.get(lang)[:31]
    sheet.append(names)
    with tempfile.TemporaryFile() as fh:
        book.save(fh)
        fh.seek(0)
        data = fh.read()
    return Response(data, mimetype=XLSX_MIME, headers=_attachment(filename))


XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f"attachment; filename=\"{filename}\""}


@bp.get("/imports/<int:job_id>")
def job_view(job_id: int) -> Any:
    """A job's progress: status, rows done of total, counts, the first errors."""
    principal = require_principal()
    with runtime().engine.begin() as conn:
        return jsonify(jobs.job_json(conn, principal, job_id, url_for("metacrm_bulk.report_view", job_id=job_id)))


@bp.get("/imports/<int:job_id>/errors.csv")
def report_view(job_id: int) -> Any:
    """Every reported row (errors and skips; for a dry run every row) as CSV with a BOM."""
    principal = require_principal()
    rt = runtime()
    with rt.engine.begin() as conn:
        jobs.job_json(conn, principal, job_id)  # 404 before the stream starts

    def generate() -> Iterator[bytes]:
        import csv
        import io
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        yield b"\xef\xbb\xbf"
        with rt.engine.connect() as conn:
            for n, row in enumerate(jobs.report_rows(conn, principal, job_id), start=1):
                writer.writerow(row)
                if n % 500 == 0:
                    yield buffer.getvalue().encode("utf-8")
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue().encode("utf-8")

    return Response(stream_with_context(generate()), mimetype="text/csv; charset=utf-8",
                    headers=_attachment(f"import-{job_id}-report.csv"))


# ------------------------------------------------------------------ export

@bp.get("/records/<entity>/export")
def export_view(entity: str) -> Any:
    """The list (same view/filter/sort/q as GET /records/<entity>) as CSV or XLSX."""
    principal = require_principal()
    rt = runtime()
    fmt = request.args.get("format", "csv")
    if fmt not in FORMATS:
        raise BadRequest("format is csv or xlsx.", {"format": ["Must be one of: csv, xlsx."]})
    req = parse_list_args(request.args)
    ids = parse_ids(request.args.get("ids"))
    columns = [c.strip() for c in (request.args.get("columns") or "").split(",") if c.strip()] or None
    details = {"view": req.view, "filter": request.args.get("filter"), "q": req.q,
               "sort": request.args.get("sort"), "ids": len(ids) if ids is not None else None}
    filename = f"{entity}-export.{fmt}"
    conn = rt.engine.connect()
    try:
        export = export_records(conn, rt.catalog(conn), principal, entity, req, rt.timezone, ids, columns)
    except BaseException:
        conn.close()
        raise

    def audited() -> None:
        with rt.engine.begin() as audit_conn:
            record_export(audit_conn, principal, export, fmt, details)

    if fmt == "xlsx":  # a zip can't be streamed while written; openpyxl spools rows to disk instead
        try:
            out = tempfile.TemporaryFile()
            write_xlsx(export, out, export.entity)
        finally:
            conn.close()
        audited()
        out.seek(0)

        def from_file() -> Iterator[bytes]:
            with out:
                while chunk := out.read(64 * 1024):
                    yield chunk

        return Response(from_file(), mimetype=XLSX_MIME, headers=_attachment(filename))

    def stream() -> Iterator[bytes]:
        try:
            yield from csv_chunks(export)
        finally:
            conn.close()
            audited()

    return Response(stream(), mimetype="text/csv; charset=utf-8", headers=_attachment(filename))
