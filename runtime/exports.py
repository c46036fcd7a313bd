"""Export: the rows and fields a user may see, as CSV (UTF-8 with a BOM, so Chinese Excel
opens it) or XLSX, streamed in pages so memory stays flat whatever the table's size.

The rows are the list endpoint's: the same `view`, `filter`, `sort` and `q` go through
`query.build_list_query` with the principal's `export` scope, optionally narrowed to a
selection of ids. Hidden fields are never exported, masked ones are masked; lookups
come out as titles (only those the user may read), options as labels and the header as
field labels in the user's language. Every export is written to the audit log.
"""
from __future__ import annotations

import codecs
import csv
import datetime as dt
import decimal
import io
import re
from dataclasses import dataclass, field as dc_field
from typing import IO, Any, Iterator, Sequence
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from metacrm.metadata.model import Field

from .access import Access, scope_clause
from .catalog import Catalog, EntityRuntime
from .coercion import MAX_ID
from .errors import BadRequest
from .people import audit
from .principal import Principal
from .query import ListRequest, build_list_query, find_view, query_context
from .record_reads import add_titles, dump_row, present, require_access

FORMATS = ("csv", "xlsx")
PAGE = 500
MAX_IDS = 10_000
#: System columns an export shows by default around the entity's own fields.
LEADING, TRAILING = ("id",), ("owner", "department", "created_at", "updated_at")
TITLED = ("lookup", "user", "department")
USER_SYSTEM = ("owner", "created_by", "updated_by")
BOOLEAN_WORDS = {"en": ("Yes", "No"), "zh": ("是", "否")}
#: A cell Excel would run as a formula (CSV injection); numbers and phone numbers are fine.
FORMULA_START = re.compile(r"^[=@\t\r]|^[+\-](?![\d\s().\-]*$)")
#: Characters XLSX can't hold (openpyxl refuses them).
ILLEGAL_XLSX = re.compile(r"[\000-\010\013\014\016-\037]")


def parse_ids(raw: str | None) -> list[int] | None:
    """`ids=1,2,3` (a selection on the list screen)."""
    if not raw:
        return None
    ids = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        if not (part.isascii() and part.isdigit()) or not 1 <= int(part) <= MAX_ID:
            raise BadRequest(f"ids: '{part}' is not a record id.")
        ids.append(int(part))
    if len(ids) > MAX_IDS:
        raise BadRequest(f"ids: at most {MAX_IDS} records; export a filter instead.")
    return ids


def _readable(rt: EntityRuntime, access: Access, name: str) -> Field | None:
    f = rt.entity.field(name)
    if f is None or f.archived or name in access.hidden or f.type == "table":
        return None
    if f.system and name in ("parent_id", "idx", "version"):
        return None
    if f.system and name in ("owner", "department") and not rt.entity.ownership:
        return None
    return f


def export_fields(rt: EntityRuntime, access: Access, view_columns: Sequence[str] = (),
                  requested: Sequence[str] | None = None) -> list[Field]:
    """The columns: those requested (each must be readable), else the view's, else every
    field the user may see with id first and owner and timestamps last."""
    if requested:
        out = []
        for name in requested:
            f = _readable(rt, access, name)
            if f is None:
                raise BadRequest(f"columns: '{name}' is not a field of {rt.name} you can export.",
                                 {"columns": [f"Can't export '{name}'."]})
            if f not in out:
                out.append(f)
        return out
    names = list(view_columns) or [*LEADING, *(f.name for f in rt.entity.active_fields), *TRAILING]
    if view_columns and "id" not in names:
        names.insert(0, "id")
    return [f for f in (_readable(rt, access, n) for n in names) if f is not None]


def header(fields: Sequence[Field], language: str) -> list[str]:
    return [f.label.get(language) for f in fields]


@dataclass
class Formatter:
    """Field values as a person reads them, in their language and the instance's time zone."""

    language: str
    zone: ZoneInfo
    options: dict[str, dict[str, str]] = dc_field(default_factory=dict)

    def option_label(self, f: Field, value: str) -> str:
        labels = self.options.get(f.name)
        if labels is None:
            labels = self.options[f.name] = {o.value: o.label.get(self.language) for o in f.options}
        return labels.get(value, value)

    def value(self, f: Field, record: dict[str, Any]) -> Any:
        v = record.get(f.name)
        if (f.type in TITLED or f.name in USER_SYSTEM or f.name == "department") and v is not None \
                and not isinstance(v, str):
            title = record.get(f"{f.name}__title")
            return title if title is not None else f"#{v}"
        if v is None or v == []:
            return None
        if f.type == "select":
            return self.option_label(f, v)
        if f.type == "multiselect":
            return ("、" if self.language == "zh" else ", ").join(self.option_label(f, x) for x in v)
        if f.type == "boolean":
            yes, no = BOOLEAN_WORDS["zh" if self.language == "zh" else "en"]
            return yes if v else no
        if f.type == "reference":
            return f"{v['entity']} #{v['id']}"
        if f.type == "location":
            return v.get("address") or (f"{v['lat']},{v['lng']}" if v.get("lat") is not None else None)
        kind = f.value_kind
        if kind == "datetime" and isinstance(v, str):
            return dt.datetime.fromisoformat(v).astimezone(self.zone).replace(tzinfo=None, microsecond=0)
        if kind == "date" and isinstance(v, str):
            return dt.date.fromisoformat(v)
        if kind == "number" and isinstance(v, str):
            return decimal.Decimal(v)
        return v


@dataclass
class Export:
    """One export in progress: the header, the rows (lazily), and how many were produced."""

    entity: str
    fields: list[Field]
    header: list[str]
    rows: Iterator[list[Any]]
    count: int = 0


def export_records(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str,
                   request: ListRequest, timezone: str = "UTC", ids: list[int] | None = None,
                   columns: Sequence[str] | None = None) -> Export:
    """The export of a list request (view/filter/sort/q) or of a selection of ids,
    within the principal's `export` scope. Rows are fetched `PAGE` at a time."""
    rt = catalog.get(entity)
    access = require_access(catalog, principal, rt, "export")
    if not access.allows("read"):
        require_access(catalog, principal, rt, "read")
    view = find_view(catalog, rt, request.view, principal, access) if request.view else None
    fields = export_fields(rt, access, view.columns if view else (), columns)
    scope = scope_clause(rt.table, rt.entity, principal, access, "export", conn)
    ctx = query_context(principal, timezone, access.unreadable)
    select, _, _, _ = build_list_query(rt, view, request, ctx, scope)
    select = select.limit(None).offset(None)
    if ids is not None:
        select = select.where(rt.table.c.id.in_(ids))
    titled = [f.name for f in fields if (f.type in TITLED or f.name in USER_SYSTEM or f.name == "department")
              and f.name not in access.masked]
    fmt = Formatter(principal.language, ZoneInfo(timezone))
    export = Export(entity, fields, header(fields, principal.language), iter(()))

    def rows() -> Iterator[list[Any]]:
        result = conn.execution_options(yield_per=PAGE).execute(select).mappings()
        for page in result.partitions():
            records = [present(dump_row(rt, r), access) for r in page]
            if titled:
                add_titles(conn, catalog, rt, records, titled, principal)
            for record in records:
                export.count += 1
                yield [fmt.value(f, record) for f in fields]

    export.rows = rows()
    return export


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    text = str(value)
    return "'" + text if FORMULA_START.match(text) else text


def csv_chunks(export: Export, rows_per_chunk: int = 200) -> Iterator[bytes]:
    """The export as UTF-8 CSV with a BOM, in chunks (for a streamed response or a file)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(export.header)
    yield codecs.BOM_UTF8 + buffer.getvalue().encode("utf-8")
    buffer.seek(0)
    buffer.truncate()
    for n, row in enumerate(export.rows, start=1):
        writer.writerow([_cell_text(v) for v in row])
        if n % rows_per_chunk == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode("utf-8")


def _xlsx_cell(value: Any) -> Any:
    if isinstance(value, str):
        value = ILLEGAL_XLSX.sub("", value)
        return "'" + value if FORMULA_START.match(value) else value
    return value


def write_xlsx(export: Export, out: IO[bytes], sheet_title: str | None = None) -> None:
    """The export as an XLSX workbook (openpyxl's write-only mode: rows go to disk as added)."""
    import openpyxl  # noqa: PLC0415

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet(title=(sheet_title or export.entity)[:31])
    sheet.append(export.header)
    for row in export.rows:
        sheet.append([_xlsx_cell(v) for v in row])
    book.save(out)


def record_export(conn: sa.Connection, principal: Principal, export: Export, fmt: str,
                  details: dict[str, Any]) -> None:
    """Who exported what and how many rows (written when the export has been produced)."""
    audit(conn, principal, "record.export", export.entity,
          {"format": fmt, "rows": export.count, "columns": [f.name for f in export.fields],
           **{k: v for k, v in details.items() if v not in (None, "", [], ())}})


__all__ = ["FORMATS", "Export", "export_records", "csv_chunks", "write_xlsx", "record_export", "parse_ids",
           "export_fields", "header"]
