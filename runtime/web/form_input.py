"""An HTML form post → the record service's JSON payload.

Browsers send every value as text; this turns a generated form's fields back into the
shapes the API takes (lists for multiselects, row objects for child tables, `{"entity",
"id"}` for references), and leaves every check to the record service, so a form and an
API client get exactly the same validation. Only fields the form carried are sent, so
an edit never blanks a field the form didn't show.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from werkzeug.datastructures import MultiDict

from metacrm.metadata.model import Field

from ..catalog import EntityRuntime

ROW_KEY = re.compile(r"^(?P<table>[a-z][a-z0-9_]*)-(?P<index>\d{1,4})-(?P<field>[a-z][a-z0-9_]*)$")
#: Types a browser form can't set (computed by the server, or a table's rows). A file or
#: image field posts the key of its upload (form_files.py stores files posted directly).
NOT_FROM_FORMS = frozenset({"formula", "autonumber", "table"})


def field_value(f: Field, form: MultiDict, key: str, timezone: str) -> tuple[bool, Any]:
    """(present, value) of one field under `key` in the form."""
    if f.type == "multiselect":
        if key not in form and f"{key}.present" not in form:
            return False, None
        return True, [v for v in form.getlist(key) if v]
    if f.type == "location":
        if f"{key}.lat" not in form:
            return False, None
        lat, lng, addr = (form.get(f"{key}.{k}", "").strip() for k in ("lat", "lng", "address"))
        if not (lat or lng or addr):
            return True, None
        return True, {"lat": lat or None, "lng": lng or None, "address": addr or None}
    if key not in form:
        return False, None
    raw = form.getlist(key)[-1]  # a checkbox follows its hidden "0"
    text = raw.strip() if isinstance(raw, str) else raw
    if f.type == "boolean":
        return True, text in ("1", "true", "on", "yes")
    if text == "":
        return True, None
    if f.type == "reference":
        entity, _, rid = text.partition(":")
        return True, {"entity": entity, "id": rid}
    if f.type == "datetime":
        return True, _local_datetime(text, timezone)
    return True, text


def _local_datetime(text: str, timezone: str) -> str:
    """A `datetime-local` value is wall-clock time where the user is: attach the zone."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return text  # the record service reports it as not a valid datetime
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment.isoformat()


def form_payload(rt: EntityRuntime, form: MultiDict, field_names: Iterable[str], timezone: str) -> dict[str, Any]:
    """The payload of the named fields that the form carried (child tables included)."""
    payload: dict[str, Any] = {}
    for name in field_names:
        f = rt.entity.active_field(name)
        if f is None:
            continue
        if f.type == "table":
            if f"{name}.present" in form:
                payload[name] = _rows(rt.children[name], form, name, timezone)
            continue
        if f.type in NOT_FROM_FORMS or not f.writable:
            continue
        present, value = field_value(f, form, name, timezone)
        if present:
            payload[name] = value
    for key in ("owner",):
        if key in form and rt.entity.ownership:
            payload[key] = form.get(key) or None
    return payload


def _rows(child: EntityRuntime, form: MultiDict, table: str, timezone: str) -> list[dict[str, Any]]:
    """Child rows posted as `<table>-<i>-<field>`, in index order; blank new rows dropped."""
    indexes = sorted({int(m["index"]) for k in form.keys() if (m := ROW_KEY.match(k)) and m["table"] == table})
    rows = []
    for i in indexes:
        row: dict[str, Any] = {}
        for f in child.entity.active_fields:
            if f.type in NOT_FROM_FORMS or not f.writable:
                continue
            present, value = field_value(f, form, f"{table}-{i}-{f.name}", timezone)
            if present:
                row[f.name] = value
        rid = form.get(f"{table}-{i}-id", "").strip()
        if rid.isascii() and rid.isdigit():
            row["id"] = int(rid)
        elif all(v in (None, "", [], False) for v in row.values()):
            continue
        rows.append(row)
    return rows
