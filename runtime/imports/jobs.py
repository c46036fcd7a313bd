"""Import jobs: each run recorded in `mc_import_jobs`, its row outcomes in
`mc_import_rows`, so progress can be polled from any web worker, survives the request
that started it, and the error report can be downloaded later.

Progress is written in the same transaction as the batch it describes: a job's `done`
and counts never claim rows that didn't commit. A job runs inline (small files) or on
a daemon thread of the web process; a job whose thread died with its process stops
sending heartbeats and is reported `interrupted` (the rows it committed stay).
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import sqlalchemy as sa

from metacrm.metadata.model import Field

from .. import systables
from ..access import Access, access_for
from ..catalog import Catalog, EntityRuntime, Runtime
from ..clock import utcnow
from ..coercion import MAX_ID, utc
from ..errors import NotFound, PermissionDenied, ServiceError
from ..principal import Principal
from .importer import Counts, ImportOptions, Outcome, run_import
from .mapping import resolve_mapping
from .readers import count_rows, open_table

log = logging.getLogger(__name__)
#: A running job without a heartbeat for this long has lost its thread.
STALE_AFTER = dt.timedelta(minutes=10)
#: Errors listed in a job's JSON (the CSV report has them all).
LISTED_ERRORS = 1000
#: Per-row outcomes of a dry run listed in its JSON.
LISTED_ROWS = 1000
FINISHED = ("done", "failed", "interrupted")

jobs, job_rows = systables.import_jobs, systables.import_rows


def require_import(catalog: Catalog, principal: Principal, entity: str) -> tuple[EntityRuntime, Access]:
    """The entity and the principal's rights on it; 403 unless a role grants `import`."""
    rt = catalog.get(entity)
    access = access_for(catalog.mset, principal, rt.entity)
    if not access.allows("import"):
        raise PermissionDenied(f"You may not import {rt.entity.label.get(principal.language)} records.")
    return rt, access


def create_job(rt: Runtime, principal: Principal, entity: str, path: Path, filename: str,
               options: ImportOptions, mapping: Any = None, encoding: str | None = None) -> tuple[int, dict[int, Field]]:
    """Check the permission, read the header, settle the mapping and record a queued job:
    (job id, column index → field). Nothing is recorded when any of it is refused."""
    catalog = rt.catalog()
    entity_rt, access = require_import(catalog, principal, entity)
    with open_table(path, encoding) as table:
        columns = resolve_mapping(table.headers, mapping, entity_rt, access)
        fmt = table.format
        chosen = {h: (columns[i].name if i in columns else None) for i, h in enumerate(table.headers)}
    if principal.user_id is None:
        raise PermissionDenied("An import runs as a user (the importer owns what it creates).")
    with rt.engine.begin() as conn:
        job_id = conn.execute(jobs.insert().values(
            entity=entity, user_id=principal.user_id, filename=filename[:255], format=fmt, mode=options.mode,
            dry_run=options.dry_run, mapping=chosen, status="queued", created_at=utcnow(),
        ).returning(jobs.c.id)).scalar_one()
    return job_id, columns


def _record_batch(job_id: int, dry_run: bool, progress: Callable[[Counts], None] | None) -> Any:
    def record(conn: sa.Connection, outcomes: list[Outcome], counts: Counts) -> None:
        kept = [o for o in outcomes if dry_run or o.action in ("error", "skip")]
        if kept:
            conn.execute(job_rows.insert(), [
                {"job_id": job_id, "row": o.row, "outcome": o.action, "field": o.field,
                 "message": o.message, "record_id": o.record_id} for o in kept])
        conn.execute(jobs.update().where(jobs.c.id == job_id).values(
            done=counts.done, created=counts.created, updated=counts.updated, skipped=counts.skipped,
            failed=counts.failed, heartbeat_at=utcnow()))
        if progress is not None:
            progress(counts)
    return record


def _finish(rt: Runtime, job_id: int, status: str, message: str | None = None) -> None:
    with rt.engine.begin() as conn:
        conn.execute(jobs.update().where(jobs.c.id == job_id).values(
            status=status, message=message, finished_at=utcnow(), heartbeat_at=utcnow()))


def run_job(rt: Runtime, principal: Principal, job_id: int, entity: str, path: Path, columns: dict[int, Field],
            options: ImportOptions, encoding: str | None = None, delete_file: bool = True,
            total: int | None = None, progress: Callable[[Counts], None] | None = None) -> None:
    """Run a recorded job to its end; any failure is recorded on the job, not raised.
    `progress(counts)` is called after each committed batch (the CLI's progress bar)."""
    try:
        total = count_rows(path, encoding) if total is None else total
        with rt.engine.begin() as conn:
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(
                status="running", total=total, started_at=utcnow(), heartbeat_at=utcnow()))
        with open_table(path, encoding) as table:
            run_import(rt, principal, entity, table.rows, columns, options,
                       _record_batch(job_id, options.dry_run, progress))
        _finish(rt, job_id, "done")
    except ServiceError as exc:
        _finish(rt, job_id, "failed", exc.message)
    except Exception as exc:  # noqa: BLE001 - a job must end with a status, whatever happened
        log.exception("import job %s failed", job_id)
        _finish(rt, job_id, "failed", f"The import stopped: {type(exc).__name__}. Rows before it were kept.")
    finally:
        if delete_file:
            path.unlink(missing_ok=True)


def start_job(rt: Runtime, principal: Principal, job_id: int, entity: str, path: Path,
              columns: dict[int, Field], options: ImportOptions, encoding: str | None = None) -> threading.Thread:
    """Run the job on a daemon thread of this process (progress: `job_json`)."""
    thread = threading.Thread(target=run_job, args=(rt, principal, job_id, entity, path, columns, options, encoding),
                              name=f"metacrm-import-{job_id}", daemon=True)
    thread.start()
    return thread


def _job_row(conn: sa.Connection, principal: Principal, job_id: int) -> Any:
    """The job if the principal started it (or is an admin); 404 otherwise."""
    row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first() if 1 <= job_id <= MAX_ID else None
    if row is None or (row.user_id != principal.user_id and not principal.is_admin):
        raise NotFound(f"No import job {job_id}.")
    if row.status in ("queued", "running") and utcnow() - utc(row.heartbeat_at or row.created_at) > STALE_AFTER:
        conn.execute(jobs.update().where(jobs.c.id == job_id, jobs.c.status == row.status).values(
            status="interrupted", finished_at=utcnow(),
            message="The import stopped (its server process ended); the rows it reported done were kept."))
        row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
    return row


def job_json(conn: sa.Connection, principal: Principal, job_id: int, report_url: str | None = None) -> dict[str, Any]:
    """A job's progress and outcome: `{"created", "updated", "skipped", "errors": [...]}` and more."""
    row = _job_row(conn, principal, job_id)
    errors = [{"row": r.row, "field": r.field, "message": r.message} for r in conn.execute(
        sa.select(job_rows.c.row, job_rows.c.field, job_rows.c.message)
        .where(job_rows.c.job_id == job_id, job_rows.c.outcome == "error")
        .order_by(job_rows.c.id).limit(LISTED_ERRORS))]
    body: dict[str, Any] = {
        "job": row.id, "entity": row.entity, "status": row.status, "mode": row.mode, "dry_run": row.dry_run,
        "filename": row.filename, "format": row.format, "mapping": row.mapping,
        "total": row.total, "done": row.done,
        "created": row.created, "updated": row.updated, "skipped": row.skipped, "failed": row.failed,
        "errors": errors, "errors_listed": len(errors), "message": row.message,
        "report": report_url,
        "created_at": utc(row.created_at).isoformat(),
        "finished_at": utc(row.finished_at).isoformat() if row.finished_at else None,
    }
    if row.dry_run:
        body["rows"] = [{"row": r.row, "action": r.outcome, "id": r.record_id, "field": r.field,
                         "message": r.message} for r in conn.execute(
            sa.select(job_rows).where(job_rows.c.job_id == job_id).order_by(job_rows.c.id).limit(LISTED_ROWS))]
    return body


REPORT_HEADERS = {"en": ("row", "outcome", "field", "message", "record id"),
                  "zh": ("行号", "结果", "字段", "说明", "记录ID")}
OUTCOME_LABELS = {"en": {"error": "error", "skip": "skipped", "create": "create", "update": "update"},
                  "zh": {"error": "错误", "skip": "跳过", "create": "新建", "update": "更新"}}


def report_rows(conn: sa.Connection, principal: Principal, job_id: int) -> Iterator[list[Any]]:
    """The report's rows (header first): every error and skip; for a dry run every row."""
    _job_row(conn, principal, job_id)
    lang = "zh" if principal.language == "zh" else "en"
    yield list(REPORT_HEADERS[lang])
    last = 0
    while True:  # keyset pages: flat memory however long the report
        page = list(conn.execute(sa.select(job_rows).where(job_rows.c.job_id == job_id, job_rows.c.id > last)
                                 .order_by(job_rows.c.id).limit(1000)))
        if not page:
            return
        for r in page:
            yield [r.row, OUTCOME_LABELS[lang][r.outcome], r.field or "", r.message or "", r.record_id or ""]
        last = page[-1].id
