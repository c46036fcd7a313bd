"""`metacrm import` and `metacrm export` (ARCHITECTURE.md): bulk data from the command
line, through the same runtime functions as the API, with a progress bar on stderr.

Both act as a user (`--as`, default the configured admin), so permissions, scopes,
ownership and the audit log apply as they do on the web.
"""
from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from metacrm.runtime import accounts
from metacrm.runtime.errors import ServiceError
from metacrm.runtime.exports import FORMATS, csv_chunks, export_records, record_export, write_xlsx
from metacrm.runtime.imports import jobs
from metacrm.runtime.imports.importer import Counts, ImportOptions
from metacrm.runtime.imports.matching import MODES
from metacrm.runtime.imports.readers import count_rows
from metacrm.runtime.principal import Principal
from metacrm.runtime.query import parse_list_args
from metacrm.runtime.web.context import EXTENSION

from .app import create_app


def _principal(rt: Any, username: str | None) -> Principal:
    username = username or os.environ.get("METACRM_ADMIN_USERNAME") or "admin"
    with rt.engine.connect() as conn:
        account = accounts.find_account(conn, username)
        if account is None or not account.active:
            raise click.ClickException(f"No active user named {username}.")
        return accounts.principal_for(conn, account)


@click.command("import")
@click.argument("entity")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--mode", type=click.Choice(MODES), default="create", show_default=True,
              help="What to do with a row that matches an existing record.")
@click.option("--dry-run", is_flag=True, help="Report what would happen; change nothing.")
@click.option("--mapping", help='Column → field overrides as JSON: {"Column": "field", "Other": null}.')
@click.option("--as", "as_user", help="Import as this user (default: the admin).")
@click.option("--encoding", help="The CSV's encoding when the guess is wrong (e.g. gb18030).")
@click.option("--report", type=click.Path(dir_okay=False), help="Write the row report (CSV) to this file.")
def import_command(entity: str, file: str, mode: str, dry_run: bool, mapping: str | None, as_user: str | None,
                   encoding: str | None, report: str | None) -> None:
    """Import a CSV or XLSX FILE into ENTITY."""
    app = create_app()
    rt = app.extensions[EXTENSION]
    principal = _principal(rt, as_user)
    try:
        override = json.loads(mapping) if mapping else None
    except ValueError:
        raise click.ClickException("--mapping is not valid JSON.") from None
    path = Path(file)
    try:
        options = ImportOptions(mode=mode, dry_run=dry_run)
        job_id, columns = jobs.create_job(rt, principal, entity, path, path.name, options, override, encoding)
        total = count_rows(path, encoding)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    with click.progressbar(length=total or 0, label=f"Importing {path.name}", file=sys.stderr,
                           show_pos=True) as bar:
        seen = [0]

        def progress(counts: Counts) -> None:
            bar.update(counts.done - seen[0])
            seen[0] = counts.done

        jobs.run_job(rt, principal, job_id, entity, path, columns, options, encoding, delete_file=False,
                     total=total, progress=progress)
    with rt.engine.begin() as conn:
        result = jobs.job_json(conn, principal, job_id)
        if report:
            with open(report, "w", encoding="utf-8-sig", newline="") as fh:
                csv.writer(fh).writerows(jobs.report_rows(conn, principal, job_id))
    prefix = "Dry run: would have " if dry_run else ""
    click.echo(f"{prefix}created {result['created']}, updated {result['updated']}, skipped {result['skipped']}, "
               f"failed {result['failed']} (job {job_id}).")
    for e in result["errors"][:20]:
        click.echo(f"  row {e['row']}: {e['field'] or '-'}: {e['message']}", err=True)
    if result["failed"] > 20:
        click.echo(f"  ... {result['failed'] - 20} more; see --report.", err=True)
    if result["status"] != "done":
        raise click.ClickException(result["message"] or f"The import ended {result['status']}.")


@click.command("export")
@click.argument("entity")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="csv", show_default=True)
@click.option("--view", help="A list view of the entity (its filters, sort and columns).")
@click.option("--filter", "filter_", help='Filter conditions as JSON: [["level", "=", "A"]].')
@click.option("--sort", help="Sort, e.g. -created_at,name.")
@click.option("--q", help="Full-text search.")
@click.option("--columns", help="Comma-separated field names.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="File to write (default: stdout for CSV).")
@click.option("--as", "as_user", help="Export as this user (default: the admin).")
def export_command(entity: str, fmt: str, view: str | None, filter_: str | None, sort: str | None, q: str | None,
                   columns: str | None, output: str | None, as_user: str | None) -> None:
    """Export ENTITY (what the user may see) as CSV or XLSX."""
    if fmt == "xlsx" and not output:
        raise click.ClickException("XLSX needs --output FILE.")
    app = create_app()
    rt = app.extensions[EXTENSION]
    principal = _principal(rt, as_user)
    args = {k: v for k, v in {"view": view, "filter": filter_, "sort": sort, "q": q}.items() if v}
    try:
        with rt.engine.connect() as conn:
            export = export_records(conn, rt.catalog(conn), principal, entity, parse_list_args(args), rt.timezone,
                                    columns=[c.strip() for c in columns.split(",") if c.strip()] if columns else None)
            rows = export.rows

            def counted() -> Any:
                for n, row in enumerate(rows, start=1):
                    if n % 1000 == 0:
                        click.echo(f"\rExported {n} rows", err=True, nl=False)
                    yield row

            export.rows = counted()
            if fmt == "xlsx":
                with open(output, "wb") as fh:  # type: ignore[arg-type]
                    write_xlsx(export, fh, entity)
            else:
                out = open(output, "wb") if output else sys.stdout.buffer
                try:
                    for chunk in csv_chunks(export):
                        out.write(chunk)
                finally:
                    if output:
                        out.close()
                    else:
                        out.flush()
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    with rt.engine.begin() as conn:
        record_export(conn, principal, export, fmt, {**args, "columns_requested": columns, "via": "cli"})
    click.echo(f"\rExported {export.count} {entity} row(s)" + (f" to {output}." if output else "."), err=True)
