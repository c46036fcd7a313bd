"""List queries: a validated filter tree, sort and paging become one SQLAlchemy select.

Filters arrive as JSON (METADATA.md: `[field, op, value]` items, nested `{"any": [...]}`
/ `{"all": [...]}`). Every field name is checked against the entity and every value is
coerced by the field's own loader, so a bad filter is a 400 naming the problem, and
nothing reaches the database as text. Permission scopes are added by the caller as one
more `where()` on the same select.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from marshmallow import ValidationError as MMValidationError

from metacrm.metadata.fieldtypes import FILTER_OPERATORS, RELATIVE_RANGES
from metacrm.metadata.model import Field, View

from .access import Access, scope_clause
from .catalog import Catalog, EntityRuntime
from .record_reads import add_titles, dump_row, present, require_access
from .clock import utcnow
from .coercion import MULTI_SEPARATOR, loader_for, to_column_value
from .compiler import location_columns, reference_columns
from .errors import BadRequest
from .principal import Principal
from .view_access import check_view

MAX_PAGE_SIZE = 500
MAX_PAGE = 1_000_000
MAX_FILTER_DEPTH = 8
MAX_CONDITIONS = 100
#: Ids and the system integer columns are 32-bit: a larger filter value is a 400, not a database error.
INT32 = 2**31 - 1
#: What is a placeholder (the same rule as metadata validation): `$me` is one, `$5 off` is text.
PLACEHOLDER = re.compile(r"^\$[a-z_]+$")
#: The value kinds each placeholder can be compared with.
PLACEHOLDER_KINDS = {"$me": ("ref", "integer"), "$my_department": ("ref", "integer"),
                     "$today": ("date", "datetime"), "$now": ("date", "datetime")}


@dataclass(frozen=True)
class ListRequest:
    """A list call's parameters, already parsed from the query string."""

    filters: Sequence[Any] = ()
    sort: Sequence[tuple[str, str]] = ()
    page: int = 1
    page_size: int | None = None
    q: str | None = None
    view: str | None = None
    expand: Sequence[str] = ()


@dataclass(frozen=True)
class QueryContext:
    """What placeholders and relative dates resolve against."""

    principal: Principal
    now: dt.datetime
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    #: Fields hidden or masked for the principal: not usable in their filters, sort or q.
    unreadable: frozenset[str] = frozenset()

    @property
    def today(self) -> dt.date:
        return self.now.astimezone(self.tz).date()


# ------------------------------------------------------------------ parsing the query string

def parse_list_args(args: Mapping[str, str]) -> ListRequest:
    """`filter`, `sort`, `page`, `page_size`, `q`, `view`, `expand` from a query string."""
    filters: Any = ()
    raw = args.get("filter")
    if raw:
        try:
            filters = json.loads(raw)
        except ValueError as exc:
            raise BadRequest(f"filter is not valid JSON: {exc}") from None
        except RecursionError:
            raise BadRequest("filter is nested too deep.") from None
        if not isinstance(filters, list):
            raise BadRequest('filter must be a JSON list of conditions (a group goes inside it: [{"any": [...]}]).')
    return ListRequest(
        filters=filters,
        sort=parse_sort(args.get("sort")),
        page=_positive_int(args.get("page"), "page", 1, MAX_PAGE),
        page_size=_positive_int(args.get("page_size"), "page_size", None),
        q=(args.get("q") or "").strip() or None,
        view=args.get("view") or None,
        expand=[e.strip() for e in (args.get("expand") or "").split(",") if e.strip()],
    )


def _positive_int(raw: str | None, name: str, default: int | None, maximum: int | None = None) -> int | None:
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a positive integer.") from None
    if value < 1:
        raise BadRequest(f"{name} must be a positive integer.")
    if maximum is not None and value > maximum:
        raise BadRequest(f"{name} must be at most {maximum}.")
    return value


def parse_sort(raw: str | None) -> list[tuple[str, str]]:
    """`-created_at,name` or JSON `[["created_at", "desc"], ["name", "asc"]]`."""
    if not raw:
        return []
    raw = raw.strip()
    if raw.startswith("["):
        try:
            items = json.loads(raw)
        except (ValueError, RecursionError):
            raise BadRequest("sort is not valid JSON.") from None
        out = []
        for item in items if isinstance(items, list) else [None]:
            if (not isinstance(item, list) or not item or len(item) > 2 or not isinstance(item[0], str)
                    or (len(item) > 1 and item[1] not in ("asc", "desc"))):
                raise BadRequest('sort items are [field, "asc" | "desc"].')
            out.append((item[0], item[1] if len(item) > 1 else "asc"))
        return out
    out = []
    for part in raw.split(","):
        part = part.strip()
        if part:
            out.append((part[1:], "desc") if part.startswith("-") else (part.lstrip("+"), "asc"))
    return out


# ------------------------------------------------------------------ relative dates

def _week_start(d: dt.date) -> dt.date:
    return d - dt.timedelta(days=d.weekday())


def _quarter_start(d: dt.date) -> dt.date:
    return dt.date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)


def _add_months(d: dt.date, months: int) -> dt.date:
    y, m = divmod(d.month - 1 + months, 12)
    return dt.date(d.year + y, m + 1, 1)


def relative_range(name: str, today: dt.date) -> tuple[dt.date, dt.date]:
    """A half-open date range [start, end) for a relative range name."""
    day = dt.timedelta(days=1)
    month = today.replace(day=1)
    quarter = _quarter_start(today)
    table = {
        "today": (today, today + day),
        "yesterday": (today - day, today),
        "this_week": (_week_start(today), _week_start(today) + 7 * day),
        "last_week": (_week_start(today) - 7 * day, _week_start(today)),
        "this_month": (month, _add_months(month, 1)),
        "last_month": (_add_months(month, -1), month),
        "this_quarter": (quarter, _add_months(quarter, 3)),
        "last_quarter": (_add_months(quarter, -3), quarter),
        "this_year": (dt.date(today.year, 1, 1), dt.date(today.year + 1, 1, 1)),
        "last_year": (dt.date(today.year - 1, 1, 1), dt.date(today.year, 1, 1)),
        "last_7_days": (today - 6 * day, today + day),
        "last_30_days": (today - 29 * day, today + day),
        "last_90_days": (today - 89 * day, today + day),
        "next_7_days": (today, today + 7 * day),
        "next_30_days": (today, today + 30 * day),
    }
    return table[name]


# ------------------------------------------------------------------ conditions

def _field(rt: EntityRuntime, name: Any, where: str, unreadable: frozenset[str] = frozenset()) -> Field:
    """The field a filter or sort names. Fields hidden or masked for the caller count as
    unknown: filtering on them would reveal their values one guess at a time."""
    if not isinstance(name, str):
        raise BadRequest(f"{where}: a field name must be a string.")
    f = rt.entity.field(name)
    if f is None or f.archived or f.type == "table" or name in unreadable:
        raise BadRequest(f"{where}: unknown field '{name}' for {rt.name}.")
    return f


def _comparable(f: Field) -> Field:
    """The field as a filter value's loader sees it: its type and options, not its input rules.

    min/max, lengths and patterns limit what may be stored, not what may be compared with
    (`amount > -1`), and a number is compared as given, not rounded to the column's scale.
    """
    if f.system:
        if f.value_kind == "datetime":
            return Field(name=f.name, type="datetime", label=f.label)
        return Field(name=f.name, type="integer", label=f.label, min=-INT32 - 1, max=INT32)
    number = f.value_kind == "number"
    return Field(name=f.name, type=f.type, label=f.label, options=f.options, targets=f.targets,
                 result_type=f.result_type, precision=28 if number else f.precision,
                 scale=10 if number else f.scale)


def _placeholder(f: Field, value: str, ctx: QueryContext, where: str) -> Any:
    if value not in PLACEHOLDER_KINDS:
        raise BadRequest(f"{where}: unknown placeholder '{value}'; use one of {', '.join(PLACEHOLDER_KINDS)}.")
    if f.value_kind not in PLACEHOLDER_KINDS[value]:
        raise BadRequest(f"{where}: '{value}' can't be compared with the {f.type} field {f.name}.")
    if value in ("$me", "$my_department"):
        # Without a user/department it matches no record (not the records that have none).
        found = ctx.principal.user_id if value == "$me" else ctx.principal.department_id
        return 0 if found is None else found
    if f.value_kind == "date":
        return ctx.today
    if value == "$now":
        return ctx.now
    return dt.datetime.combine(ctx.today, dt.time(), ctx.tz).astimezone(dt.timezone.utc)


def _coerce(f: Field, value: Any, ctx: QueryContext, where: str) -> Any:
    if isinstance(value, str) and PLACEHOLDER.match(value):
        return _placeholder(f, value, ctx, where)
    if value is None:
        return None
    f = _comparable(f)
    if f.type == "multiselect":
        if not isinstance(value, str) or value not in f.option_values:
            raise BadRequest(f"{where}: '{value}' is not an option of {f.name}.")
        return value
    try:
        loaded = loader_for(f).deserialize(value)
    except MMValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, list) else [str(exc.messages)]
        raise BadRequest(f"{where}: bad value {json.dumps(value, ensure_ascii=False, default=str)} "
                         f"for {f.name}: {' '.join(map(str, messages))}") from None
    return to_column_value(f, loaded)


def _range_bounds(f: Field, name: str, ctx: QueryContext) -> tuple[Any, Any]:
    start, end = relative_range(name, ctx.today)
    if f.value_kind == "datetime":
        return (dt.datetime.combine(start, dt.time(), ctx.tz).astimezone(dt.timezone.utc),
                dt.datetime.combine(end, dt.time(), ctx.tz).astimezone(dt.timezone.utc))
    return start, end


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _unstorable_text(value: Any) -> bool:
    """Text no database takes (a NUL, a lone surrogate from a JSON escape) anywhere in a value."""
    if isinstance(value, str):
        return "\x00" in value or (not value.isascii() and any("\ud800" <= c <= "\udfff" for c in value))
    if isinstance(value, list):
        return any(_unstorable_text(v) for v in value)
    if isinstance(value, Mapping):
        return any(_unstorable_text(v) for v in value.values())
    return False


def _condition(rt: EntityRuntime, item: Sequence[Any], ctx: QueryContext, where: str) -> sa.ColumnElement[bool]:
    if not item or len(item) > 3:
        raise BadRequest(f"{where}: a condition is [field, operator, value].")
    f = _field(rt, item[0], where, ctx.unreadable)
    op = item[1] if len(item) > 1 else None
    if not isinstance(op, str) or op not in FILTER_OPERATORS:
        raise BadRequest(f"{where}: unknown operator {json.dumps(op)}; use one of {', '.join(FILTER_OPERATORS)}.")
    arity = FILTER_OPERATORS[op]
    if arity == "none" and len(item) == 3 and item[2] is not None:
        raise BadRequest(f"{where}: '{op}' takes no value.")
    if arity != "none" and len(item) < 3:
        raise BadRequest(f"{where}: '{op}' needs a value.")
    value = item[2] if len(item) == 3 else None
    if _unstorable_text(value):
        raise BadRequest(f"{where}: the value for {f.name} contains a NUL or an unpaired surrogate character.")

    if f.type == "reference":
        return _reference_condition(rt, f, op, value, where)
    if f.type == "location":
        col = rt.table.c[location_columns(f.name)[2]]
        lat = rt.table.c[location_columns(f.name)[0]]
        if op == "is empty":
            return sa.and_(col.is_(None), lat.is_(None))
        if op == "is not empty":
            return sa.or_(col.is_not(None), lat.is_not(None))
        if op in ("contains", "starts with"):
            f = Field(name=col.name, type="text", label=f.label)
        else:
            raise BadRequest(f"{where}: a location can only be filtered with is empty / contains.")
    col = rt.table.c[f.name]
    text_like = f.value_kind == "text" or f.type in ("textarea", "richtext")

    if op in ("is empty", "is not empty"):
        empty = sa.or_(col.is_(None), col == "") if text_like or f.type == "multiselect" else col.is_(None)
        return empty if op == "is empty" else sa.not_(empty)
    if value == "$today" and f.value_kind == "datetime":
        value = "today"  # a day, not its first instant: `= $today` is "some time today"
    if isinstance(value, str) and value in RELATIVE_RANGES and f.value_kind in ("date", "datetime"):
        start, end = _range_bounds(f, value, ctx)
        inside = sa.and_(col >= start, col < end)
        if op in ("=", "between"):
            return inside
        if op == "!=":
            return sa.or_(sa.not_(inside), col.is_(None))
        if op in ("<", ">="):
            return col < start if op == "<" else col >= start
        if op in ("<=", ">"):
            return col < end if op == "<=" else col >= end
        raise BadRequest(f"{where}: '{op}' can't take a relative range.")
    if isinstance(value, str) and value in RELATIVE_RANGES and op not in ("contains", "starts with"):
        raise BadRequest(f"{where}: relative range '{value}' only applies to date fields, not {f.type} field {f.name}.")
    if f.type == "multiselect" and op not in ("in", "not in", "contains", "starts with"):
        raise BadRequest(f"{where}: use contains / in for the multiselect field {f.name}.")
    if op in ("in", "not in"):
        if not isinstance(value, list) or not value:
            raise BadRequest(f"{where}: '{op}' needs a non-empty list of values.")
        if len(value) > 1000:
            raise BadRequest(f"{where}: at most 1000 values.")
        values = [_coerce(f, v, ctx, where) for v in value]
        if f.type == "multiselect":
            hits = sa.or_(*(col.like(f"%{MULTI_SEPARATOR}{_escape_like(v)}{MULTI_SEPARATOR}%", escape="\\")
                            for v in values))
            return hits if op == "in" else sa.or_(sa.not_(hits), col.is_(None))
        return col.in_(values) if op == "in" else sa.or_(col.not_in(values), col.is_(None))
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise BadRequest(f"{where}: 'between' needs [from, to].")
        low, high = (_coerce(f, v, ctx, where) for v in value)
        parts = []
        if low is not None:
            parts.append(col >= low)
        if high is not None:
            if f.value_kind == "datetime" and isinstance(value[1], str) and "T" not in value[1]:
                parts.append(col < high + dt.timedelta(days=1))
            else:
                parts.append(col <= high)
        return sa.and_(*parts) if parts else sa.true()
    if op in ("contains", "starts with"):
        if not isinstance(value, str) or not value:
            raise BadRequest(f"{where}: '{op}' needs a text value.")
        if f.type == "multiselect":
            v = _coerce(f, value, ctx, where)
            return col.like(f"%{MULTI_SEPARATOR}{_escape_like(v)}{MULTI_SEPARATOR}%", escape="\\")
        if not text_like:
            raise BadRequest(f"{where}: '{op}' applies to text fields, not {f.type}.")
        if len(value) > 200:
            raise BadRequest(f"{where}: search text too long.")
        pattern = f"%{_escape_like(value)}%" if op == "contains" else f"{_escape_like(value)}%"
        return col.ilike(pattern, escape="\\")
    v = _coerce(f, value, ctx, where)
    if op == "=":
        return col.is_(None) if v is None else col == v
    if op == "!=":
        return col.is_not(None) if v is None else sa.or_(col != v, col.is_(None))
    if v is None:
        raise BadRequest(f"{where}: '{op}' needs a value.")
    return {"<": col < v, "<=": col <= v, ">": col > v, ">=": col >= v}[op]


def _reference_condition(rt: EntityRuntime, f: Field, op: str, value: Any, where: str) -> sa.ColumnElement[bool]:
    ent_col, id_col = (rt.table.c[c] for c in reference_columns(f.name))
    if op == "is empty":
        return id_col.is_(None)
    if op == "is not empty":
        return id_col.is_not(None)
    if op not in ("=", "!="):
        raise BadRequest(f"{where}: a reference ({f.name}) can only be filtered with =, != or is empty.")
    rid = value.get("id") if isinstance(value, dict) else None
    if (not isinstance(value, dict) or value.get("entity") not in f.targets or isinstance(rid, bool)
            or not isinstance(rid, int) or not 0 < rid <= INT32):
        raise BadRequest(f'{where}: a value for {f.name} is {{"entity": one of {list(f.targets)}, "id": n}}.')
    same = sa.and_(ent_col == value["entity"], id_col == value["id"])
    return same if op == "=" else sa.or_(sa.not_(same), id_col.is_(None))


def build_filter(rt: EntityRuntime, filters: Any, ctx: QueryContext) -> sa.ColumnElement[bool]:
    """The WHERE clause of a filter list (all items must hold)."""
    counter = [0]

    def walk(node: Any, where: str, depth: int) -> sa.ColumnElement[bool]:
        if depth > MAX_FILTER_DEPTH:
            raise BadRequest(f"{where}: filters nested too deep.")
        if isinstance(node, dict):
            if len(node) != 1 or next(iter(node)) not in ("any", "all"):
                raise BadRequest(f'{where}: a group is {{"any": [...]}} or {{"all": [...]}}.')
            key, items = next(iter(node.items()))
            if not isinstance(items, list):
                raise BadRequest(f"{where}.{key}: expected a list.")
            parts = [walk(it, f"{where}.{key}[{i}]", depth + 1) for i, it in enumerate(items)]
            if not parts:
                return sa.true()
            return sa.or_(*parts) if key == "any" else sa.and_(*parts)
        if isinstance(node, list):
            counter[0] += 1
            if counter[0] > MAX_CONDITIONS:
                raise BadRequest(f"at most {MAX_CONDITIONS} filter conditions.")
            return _condition(rt, node, ctx, where)
        raise BadRequest(f"{where}: expected a condition list or an any/all group.")

    if not isinstance(filters, (list, tuple)):
        raise BadRequest("filter must be a list of conditions.")
    try:
        parts = [walk(_thaw(item), f"filter[{i}]", 1) for i, item in enumerate(filters)]
    except RecursionError:
        raise BadRequest("filter is nested too deep.") from None
    return sa.and_(*parts) if parts else sa.true()


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_thaw(v) for v in value]
    return value


def search_clause(rt: EntityRuntime, q: str, unreadable: frozenset[str] = frozenset()) -> sa.ColumnElement[bool]:
    """`q`: any searchable field contains the text (case-insensitive)."""
    if len(q) > 200:
        raise BadRequest("q is too long (at most 200 characters).")
    if _unstorable_text(q):
        raise BadRequest("q contains a NUL or an unpaired surrogate character.")
    cols = [rt.table.c[f.name] for f in rt.entity.active_fields
            if f.searchable and f.value_kind == "text" and f.name in rt.table.c and f.name not in unreadable]
    if not cols:
        title = rt.entity.field(rt.entity.title_field)
        cols = [rt.table.c[title.name]] if title is not None and title.value_kind == "text" \
            and title.name in rt.table.c and title.name not in unreadable else []
    if not cols:
        raise BadRequest(f"{rt.name} has no searchable fields.")
    pattern = f"%{_escape_like(q)}%"
    return sa.or_(*(c.ilike(pattern, escape="\\") for c in cols))


def order_by(rt: EntityRuntime, sort: Iterable[tuple[str, str]],
             unreadable: frozenset[str] = frozenset()) -> list[sa.ColumnElement[Any]]:
    out = []
    names = set()
    for name, direction in sort:
        f = _field(rt, name, "sort", unreadable)
        if f.type in ("reference", "location", "multiselect"):
            raise BadRequest(f"sort: can't sort by {f.type} field '{name}'.")
        if direction not in ("asc", "desc"):
            raise BadRequest(f"sort: direction must be asc or desc, not {direction!r}.")
        col = rt.table.c[f.name]
        if not col.nullable:
            out.append(col.desc() if direction == "desc" else col.asc())
        else:  # empty values sort as the largest on every database (PostgreSQL's order, so its indexes serve)
            out.append(col.desc().nulls_first() if direction == "desc" else col.asc().nulls_last())
        names.add(name)
    if "id" not in names:
        out.append(rt.table.c.id.desc() if out and sort and list(sort)[0][1] == "desc" else rt.table.c.id.asc())
    return out


# ------------------------------------------------------------------ the list itself

def find_view(catalog: Catalog, rt: EntityRuntime, name: str, principal: Principal | None = None,
              access: Access | None = None) -> View:
    """The named view of the entity; with a principal, only one they may use (403 saying
    why otherwise: runtime/view_access.py)."""
    view = catalog.mset.views.get((rt.name, name))
    if view is None:
        raise BadRequest(f"No view named '{name}' for {rt.name}.")
    if principal is not None and access is not None:
        check_view(view, principal, access)
    return view


def build_list_query(rt: EntityRuntime, view: View | None, request: ListRequest, ctx: QueryContext,
                     scope: sa.ColumnElement[bool] | None = None) -> tuple[sa.Select[Any], sa.Select[Any], int, int]:
    """(page select, count select, page, page size) for a list request.

    A view's own filters and sort are the admin's and may use any field; what the caller
    adds may not touch fields they can't read."""
    admin_ctx = replace(ctx, unreadable=frozenset())
    where = [build_filter(rt, view.filters, admin_ctx)] if view and view.filters else []
    where.append(build_filter(rt, request.filters, ctx))
    if request.q:
        where.append(search_clause(rt, request.q, ctx.unreadable))
    if scope is not None:
        where.append(scope)
    page_size = request.page_size or (view.page_size if view else 50)
    if page_size > MAX_PAGE_SIZE:
        raise BadRequest(f"page_size must be at most {MAX_PAGE_SIZE}.")
    ordering = order_by(rt, request.sort, ctx.unreadable) if request.sort else \
        order_by(rt, (tuple(s for s in view.sort if s[0] not in ctx.unreadable) if view else ()) or (("id", "desc"),))
    condition = sa.and_(*where)
    page = sa.select(rt.table).where(condition).order_by(*ordering) \
        .limit(page_size).offset((request.page - 1) * page_size)
    count = sa.select(sa.func.count()).select_from(rt.table).where(condition)
    return page, count, request.page, page_size


def query_context(principal: Principal, timezone: str = "UTC",
                  unreadable: frozenset[str] = frozenset()) -> QueryContext:
    return QueryContext(principal=principal, now=utcnow(), tz=ZoneInfo(timezone), unreadable=unreadable)


def list_records(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str,
                 request: ListRequest, timezone: str = "UTC") -> dict[str, Any]:
    """`{"items", "total", "page", "page_size"}` for a list request, within the
    principal's read scope and without the fields they may not see."""
    rt = catalog.get(entity)
    access = require_access(catalog, principal, rt, "read")
    view = find_view(catalog, rt, request.view, principal, access) if request.view else None
    scope = scope_clause(rt.table, rt.entity, principal, access, "read", conn)
    ctx = query_context(principal, timezone, access.unreadable)
    page, count, page_no, page_size = build_list_query(rt, view, request, ctx, scope)
    rows = conn.execute(page).mappings().all()
    total = conn.execute(count).scalar_one()
    items = [present(dump_row(rt, r), access) for r in rows]
    if request.expand:
        add_titles(conn, catalog, rt, items, request.expand, principal)
    return {"items": items, "total": total, "page": page_no, "page_size": page_size}
