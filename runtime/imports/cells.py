"""From cell text to field values, the way people type them in a spreadsheet.

Lookups are found by the target's title (or id), options by value or either label,
users by username or display name, departments by name; booleans read 是/否, yes/no,
true/false; dates read 2024-03-05, 2024/3/5, 2024年3月5日, 20240305, 5/3/2024 when
unambiguous, and Excel's own date cells. What comes out goes to the record service as an
ordinary payload, so its loaders, rules and permission checks still decide.

Lookups are resolved a batch at a time (one query per field and batch, within the
principal's read scope), so a 100,000-row file doesn't cost 100,000 lookups per column.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field as dc_field
from typing import Any, Callable, Iterable, Mapping
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from metacrm.metadata.model import Field

from .. import systables
from ..access import access_for, scope_clause
from ..catalog import Catalog
from ..principal import Principal
from .mapping import normalise
from .readers import text_of

TRUE = frozenset({"是", "对", "有", "真", "y", "yes", "true", "t", "1", "√", "✓", "on"})
FALSE = frozenset({"否", "不", "不是", "无", "错", "假", "n", "no", "false", "f", "0", "×", "✗", "off"})
MULTI_SPLIT = re.compile(r"\s*[,，;；|、]\s*")
YMD = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")
COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
DMY = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})$")
TIME = re.compile(r"^(\d{1,2})[:：时](\d{2})(?:[:：分](\d{2})(?:\.\d+)?秒?)?$")
#: Excel's serial day numbers (1954–2119) when a date cell was saved as plain number text.
EXCEL_EPOCH = dt.date(1899, 12, 30)
EXCEL_SERIALS = range(20000, 80000)
ID_TEXT = re.compile(r"^#?(\d{1,10})$")


class CellError(ValueError):
    """A cell that can't become a value of its field (the message says why)."""


def parse_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = text_of(value)
    if " " in text or "T" in text:
        text = re.split(r"[ T]", text, maxsplit=1)[0]
    m = YMD.match(text) or COMPACT.match(text)
    try:
        if m:
            return dt.date(int(m[1]), int(m[2]), int(m[3]))
        m = DMY.match(text)
        if m:
            a, b, year = int(m[1]), int(m[2]), int(m[3])
            if a > 12 and b <= 12:
                return dt.date(year, b, a)
            if b > 12 and a <= 12:
                return dt.date(year, a, b)
            if a == b:
                return dt.date(year, a, b)
            raise CellError(f"'{text}' could be day/month or month/day; write it as YYYY-MM-DD.")
        if text.isdigit() and int(text) in EXCEL_SERIALS:
            return EXCEL_EPOCH + dt.timedelta(days=int(text))
    except ValueError as exc:
        if isinstance(exc, CellError):
            raise
        raise CellError(f"'{text}' is not a real date ({exc}).") from None
    raise CellError(f"'{text}' is not a date (write it as YYYY-MM-DD).")


def parse_datetime(value: Any, zone: ZoneInfo) -> dt.datetime:
    """A date and time; without an offset it is the instance's local time."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=zone)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(), zone)
    text = text_of(value)
    try:
        parsed = dt.datetime.fromisoformat(text)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)
    except ValueError:
        pass
    day_text, _, time_text = re.sub(r"\s+", " ", text.replace("T", " ")).partition(" ")
    day = parse_date(day_text)
    if not time_text:
        return dt.datetime.combine(day, dt.time(), zone)
    m = TIME.match(time_text.strip())
    if not m or int(m[1]) > 23 or int(m[2]) > 59 or int(m[3] or 0) > 59:
        raise CellError(f"'{text}' is not a date and time (write it as YYYY-MM-DD HH:MM).")
    return dt.datetime(day.year, day.month, day.day, int(m[1]), int(m[2]), int(m[3] or 0), tzinfo=zone)


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    key = text_of(value).casefold()
    if key in TRUE:
        return True
    if key in FALSE:
        return False
    raise CellError(f"'{text_of(value)}' is not yes/no (是/否, true/false).")


def option_index(f: Field) -> dict[str, str]:
    """Normalised value and both labels → option value."""
    out: dict[str, str] = {}
    for o in f.options:
        for key in (o.value, o.label.en, o.label.zh):
            out.setdefault(normalise(key), o.value)
    return out


def _option(f: Field, index: Mapping[str, str], text: str) -> str:
    value = index.get(normalise(text))
    if value is None:
        shown = ", ".join(f"{o.value} ({o.label.zh})" for o in f.options[:12])
        raise CellError(f"'{text}' is not an option of {f.name} ({shown}).")
    return value


@dataclass
class Resolver:
    """Per-import state: option indexes, and the titles → ids found for the current batch."""

    catalog: Catalog
    principal: Principal
    zone: ZoneInfo
    options: dict[str, dict[str, str]] = dc_field(default_factory=dict)
    found: dict[tuple[str, str], list[int]] = dc_field(default_factory=dict)  # (field, text) -> ids

    def prefetch(self, conn: sa.Connection, fields: Mapping[int, Field], rows: Iterable[list[Any]]) -> None:
        """Find every lookup/user/department text of a batch in one query per field."""
        self.found.clear()
        wanted: dict[int, set[str]] = {i: set() for i, f in fields.items() if _refers(f)}
        if not wanted:
            return
        for cells in rows:
            for i in wanted:
                text = text_of(cells[i]) if i < len(cells) else ""
                if text:
                    wanted[i].add(text)
        for i, texts in wanted.items():
            if texts:
                for text, ids in self._query(conn, fields[i], sorted(texts)).items():
                    self.found[(fields[i].name, text)] = ids

    def _query(self, conn: sa.Connection, f: Field, texts: list[str]) -> dict[str, list[int]]:
        hits: dict[str, list[int]] = {}
        kind = "user" if f.name == "owner" else f.type
        for start in range(0, len(texts), 500):
            chunk = texts[start:start + 500]
            if kind == "user":
                u = systables.users
                stmt = sa.select(u.c.id, u.c.username, u.c.display_name).where(
                    u.c.active.is_(True), sa.or_(u.c.username.in_(chunk), u.c.display_name.in_(chunk)))
                rows = list(conn.execute(stmt))
                by_username = {r.username: r.id for r in rows}
                for text in chunk:  # a username beats a display name
                    ids = [by_username[text]] if text in by_username else \
                        [r.id for r in rows if r.display_name == text]
                    if ids:
                        hits[text] = ids
            elif kind == "department":
                d = systables.departments
                for r in conn.execute(sa.select(d.c.id, d.c.name).where(d.c.name.in_(chunk))):
                    hits.setdefault(r.name, []).append(r.id)
            else:
                target = self.catalog.entities.get(f.target or "")
                if target is None:
                    continue
                access = access_for(self.catalog.mset, self.principal, target.entity)
                if not access.allows("read"):
                    continue
                title = target.entity.title_field
                if title not in target.table.c or title in access.unreadable:
                    continue
                col = target.table.c[title]
                stmt = sa.select(target.table.c.id, col).where(col.in_(chunk)).order_by(target.table.c.id)
                scope = scope_clause(target.table, target.entity, self.principal, access, "read", conn)
                for r in conn.execute(stmt if scope is None else stmt.where(scope)):
                    hits.setdefault(str(r[1]), []).append(r[0])
        return hits

    def reference(self, f: Field, text: str) -> int:
        ids = self.found.get((f.name, text), [])
        if len(ids) == 1:
            return ids[0]
        if len(ids) > 1:
            raise CellError(f"'{text}' names {len(ids)} records; use the id (#{ids[0]}) instead.")
        m = ID_TEXT.match(text)
        if m:
            return int(m[1])  # the record service checks that it exists and may be read
        what = {"user": "active user", "department": "department"}.get(
            "user" if f.name == "owner" else f.type, f.target or "record")
        raise CellError(f"No {what} named '{text}'.")

    def convert(self, f: Field, value: Any) -> Any:
        """One cell as a payload value for `f` (None: leave the field out)."""
        text = text_of(value)
        if text == "":
            return None
        kind = "id" if f.name == "id" else "user" if f.name == "owner" else f.type
        handler = CONVERTERS.get(kind)
        return handler(self, f, value, text) if handler else text

    def option_map(self, f: Field) -> dict[str, str]:
        if f.name not in self.options:
            self.options[f.name] = option_index(f)
        return self.options[f.name]


def _refers(f: Field) -> bool:
    return f.name == "owner" or f.type in ("lookup", "user", "department")


def _number(resolver: Resolver, f: Field, value: Any, text: str) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    cleaned = text.replace(",", "").replace("，", "").replace("¥", "").replace("￥", "").replace("$", "").strip()
    if f.type == "percent" and cleaned.endswith("%"):
        cleaned = cleaned[:-1].strip()
    return cleaned


def _record_id(resolver: Resolver, f: Field, value: Any, text: str) -> int:
    m = ID_TEXT.match(text)
    if not m:
        raise CellError(f"'{text}' is not a record id.")
    return int(m[1])


CONVERTERS: dict[str, Callable[[Resolver, Field, Any, str], Any]] = {
    "id": _record_id,
    "boolean": lambda r, f, v, t: parse_bool(v),
    "date": lambda r, f, v, t: parse_date(v).isoformat(),
    "datetime": lambda r, f, v, t: parse_datetime(v, r.zone).isoformat(),
    "select": lambda r, f, v, t: _option(f, r.option_map(f), t),
    "multiselect": lambda r, f, v, t: [_option(f, r.option_map(f), p) for p in MULTI_SPLIT.split(t) if p],
    "lookup": lambda r, f, v, t: r.reference(f, t),
    "user": lambda r, f, v, t: r.reference(f, t),
    "department": lambda r, f, v, t: r.reference(f, t),
    "integer": _number,
    "decimal": _number,
    "currency": _number,
    "percent": _number,
    "location": lambda r, f, v, t: {"lat": None, "lng": None, "address": t},
}


def row_payload(resolver: Resolver, fields: Mapping[int, Field],
                cells: list[Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(payload, {field: error}) for one row; empty cells are left out of the payload
    (a new record takes its defaults, an updated one keeps its value)."""
    payload: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for i, f in fields.items():
        if i >= len(cells):
            continue
        try:
            value = resolver.convert(f, cells[i])
        except CellError as exc:
            errors[f.name] = str(exc)
            continue
        if value is not None:
            payload[f.name] = value
    return payload, errors
