"""Semantic checks of forms and list views (pass 2): the fields they show, filter and sort.

A form or view names fields of one entity; these checks make sure every name is a live
field there (archived fields keep their column but are not offered to anything new), and
that filters are ones the query engine can run: known operators, the right number of
values, option values of select fields, relative date ranges only on dates.
"""
from __future__ import annotations

import re
from typing import Any, Iterator, Mapping

from .documents import pointer
from .fieldtypes import FILTER_OPERATORS, FILTER_PLACEHOLDERS, RELATIVE_RANGES
from .semantic_context import Context, EntityInfo, Problem, expression_problems, quoted

#: Value kinds a relative date range (`this_month`, ...) may filter.
DATE_KINDS = ("date", "datetime")
#: What looks like a placeholder (and so must be a known one): `$me`, `$my_department`, ...
_PLACEHOLDER = re.compile(r"^\$[a-z_]+$")


def _entity_of(ctx: Context, data: Mapping[str, Any]) -> tuple[EntityInfo | None, list[Problem]]:
    """The document's entity, or the problem with its `entity` key (none if it is broken)."""
    problem = ctx.entity_problem(data["entity"])
    return ctx.entity(data["entity"]), ([("/entity", problem)] if problem else [])


def check_form(ctx: Context, data: Mapping[str, Any]) -> Iterator[Problem]:
    """The form's entity exists; each section field is a live field listed once; conditions."""
    entity, problems = _entity_of(ctx, data)
    yield from problems
    if entity is None:
        return
    seen: dict[str, str] = {}
    for i, section in enumerate(data["sections"]):
        for j, name in enumerate(section["fields"]):
            path = pointer("sections", i, "fields", j)
            problem = entity.problem(name)
            if problem:
                yield path, problem
            elif name in seen:
                yield path, f"field '{name}' is listed twice (also {seen[name]})"
            seen.setdefault(name, path)
        if "visible_when" in section:
            yield from expression_problems(ctx, entity, section["visible_when"], pointer("sections", i, "visible_when"))


def check_view_fields(ctx: Context, data: Mapping[str, Any]) -> Iterator[Problem]:
    """Columns, sort and group_by name live fields; a kanban groups by a select field."""
    entity, problems = _entity_of(ctx, data)
    yield from problems
    if entity is None:
        return
    for i, name in enumerate(data.get("columns") or ()):
        problem = entity.problem(name)
        if problem:
            yield pointer("columns", i), problem
    for i, item in enumerate(data.get("sort") or ()):
        problem = entity.problem(item[0])
        if problem:
            yield pointer("sort", i, 0), problem
    group_by = data.get("group_by")
    if group_by is not None:
        problem = entity.problem(group_by)
        field = entity.active(group_by)
        if problem:
            yield "/group_by", problem
        elif data.get("type") == "kanban" and (field is None or field.get("type") != "select"):
            kind = field.get("type") if field else "system"
            yield "/group_by", f"a kanban view groups by a select field; '{group_by}' is a {kind} field"
    elif data.get("type") == "kanban":
        yield "/type", "a kanban view needs 'group_by' (a select field, e.g. a stage)"
    for i, role in enumerate(data.get("roles") or ()):
        problem = ctx.role_problem(role)
        if problem:
            yield pointer("roles", i), problem


def check_view_filters(ctx: Context, data: Mapping[str, Any]) -> Iterator[Problem]:
    """Each filter condition, nested any/all groups included."""
    entity = ctx.entity(data["entity"])
    if entity is not None:
        yield from filter_problems(entity, data.get("filters") or [], ("filters",))


def filter_problems(entity: EntityInfo, filters: list[Any], base: tuple[Any, ...]) -> Iterator[Problem]:
    """Problems of a filter list (as views and the API's `filter=` parameter take it).

    Public so the query layer can check a client's `filter=` the same way a view's is.
    """
    if not isinstance(filters, list):
        yield pointer(*base), "filters must be a list"
        return
    for i, item in enumerate(filters):
        here = base + (i,)
        if isinstance(item, dict):
            for key, sub in item.items():
                if key not in ("any", "all"):
                    yield pointer(*here, key), f"unknown filter group '{key}' (use 'any' or 'all')"
                else:
                    yield from filter_problems(entity, sub, here + (key,))
        elif isinstance(item, list) and len(item) in (2, 3):
            yield from _condition_problems(entity, item, here)
        else:
            yield pointer(*here), "a filter is [field, operator, value] or {\"any\": [...]} / {\"all\": [...]}"


def _condition_problems(entity: EntityInfo, cond: list[Any], here: tuple[Any, ...]) -> Iterator[Problem]:
    name, op = cond[0], cond[1]
    if not isinstance(name, str):
        yield pointer(*here, 0), "a filter's field must be a field name"
        return
    problem = entity.problem(name)
    if problem:
        yield pointer(*here, 0), problem
        return
    arity = FILTER_OPERATORS.get(op) if isinstance(op, str) else None
    if arity is None:
        yield pointer(*here, 1), f"unknown operator {op!r} (one of {quoted(FILTER_OPERATORS)})"
        return
    has_value = len(cond) == 3
    value = cond[2] if has_value else None
    if arity == "none":
        if value is not None:
            yield pointer(*here, 2), f"operator '{op}' takes no value"
        return
    if not has_value:
        yield pointer(*here), f"operator '{op}' needs a value"
        return
    kind = entity.value_kind(name)
    ranged = isinstance(value, str) and value in RELATIVE_RANGES and kind in DATE_KINDS
    if arity == "one" and isinstance(value, (list, dict)):
        yield pointer(*here, 2), f"operator '{op}' takes one value" + (", not a list (use 'in')" if isinstance(value, list) else "")
        return
    if arity == "many" and not (isinstance(value, list) and value):
        yield pointer(*here, 2), f"operator '{op}' needs a non-empty list of values"
        return
    if arity == "two" and not ranged and not (isinstance(value, list) and len(value) == 2):
        yield pointer(*here, 2), f"operator '{op}' needs two values [from, to]"
        return
    values = value if isinstance(value, list) else [value]
    for k, v in enumerate(values):
        path = pointer(*here, 2, k) if isinstance(value, list) else pointer(*here, 2)
        message = _value_problem(entity, name, kind, v)
        if message:
            yield path, message


def _value_problem(entity: EntityInfo, name: str, kind: str | None, value: Any) -> str | None:
    """Placeholders must be known, select values among the options, ranges on dates."""
    if isinstance(value, (list, dict)):
        return "a filter value must be a single value"
    if not isinstance(value, str):
        return None
    if _PLACEHOLDER.match(value):
        if value not in FILTER_PLACEHOLDERS:
            return f"unknown placeholder '{value}' (one of {quoted(FILTER_PLACEHOLDERS)})"
        return None
    field = entity.active(name)
    if field is not None and field.get("type") in ("select", "multiselect"):
        options = [o["value"] for o in field.get("options") or ()]
        if value not in options:
            return f"'{value}' is not an option of field '{name}' ({quoted(options)})"
        return None
    if value in RELATIVE_RANGES and kind not in DATE_KINDS and kind != "text":
        # On text fields 'today' may be a literal; elsewhere a range only makes sense on dates.
        return f"relative range '{value}' only applies to date/datetime fields; '{name}' is not one"
    return None


#: The form and view checks, in the order their errors are listed.
FORM_CHECKS = (check_form,)
VIEW_CHECKS = (check_view_fields, check_view_filters)
