"""Semantic checks of entity documents (pass 2): fields, references, values, expressions.

Each check is a small generator of (JSON pointer, message) over one schema-valid entity
document; `semantic.py` lists them in its table and runs them defensively.
"""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Iterator, Mapping

from .documents import pointer
from .fieldtypes import CHILD_FIELDS, FIELD_TYPES, OWNERSHIP_FIELDS, SYSTEM_FIELDS
from .semantic_context import (
    Context,
    EntityInfo,
    Problem,
    expression_problems,
    quoted,
    referenced_names,
)

#: Keys of a field that hold an expression over the record.
FIELD_EXPRESSION_KEYS = ("visible_when", "required_when", "readonly_when")
#: Tokens an autonumber format may use besides the `{#...}` counter.
AUTONUMBER_DATE_TOKENS = ("YYYY", "YY", "MM", "DD")
_TOKEN = re.compile(r"\{([^{}]*)\}")


def _fields(data: Mapping[str, Any]) -> list[tuple[int, Mapping[str, Any]]]:
    return list(enumerate(data.get("fields") or ()))


def check_field_names(ctx: Context, data: Mapping[str, Any]) -> Iterator[Problem]:
    """Duplicate names, names taken by system columns, and renames onto a live field.

    A field named like a system column would collide with it in the table; which system
    names are taken depends on the entity's ownership and child flags.
    """
    entity = EntityInfo.of(data)
    seen: dict[str, int] = {}
    for i, f in _fields(data):
        name = f["name"]
        if name in seen:
            yield pointer("fields", i, "name"), f"duplicate field name '{name}' (also /fields/{seen[name]})"
            continue
        seen[name] = i
        if name in entity.system:
            yield pointer("fields", i, "name"), f"'{name}' is a system field of every {_system_reason(name)}"
        elif name in entity.implicit:
            yield pointer("fields", i, "name"), f"'{name}' is the field naming.autonumber adds; use another name"
        old = f.get("renamed_from")
        if old and old != name and old in entity.fields:
            yield pointer("fields", i, "renamed_from"), f"renamed_from '{old}': a field '{old}' still exists"


def _system_reason(name: str) -> str:
    if name in SYSTEM_FIELDS:
        return "entity"
    if name in OWNERSHIP_FIELDS:
        return "entity with ownership"
    if name in CHILD_FIELDS:
        return "child entity (child_of)"
    return "entity"


def check_title_and_parent(ctx: Context, data: Mapping[str, Any]) -> Iterator[Problem]:
    """`title_field` names a usable field; `child_of` names an existing, other entity."""
    entity = EntityInfo.of(data)
    title = data.get("title_field")
    if title is not None:
        problem = entity.problem(title)
        if problem:
            yield "/title_field", problem
    parent = data.get("child_of")
    if parent is not None:
        if parent == data["name"]:
            yield "/child_of", "an entity can't be a child of itself"
        else:
            problem = ctx.entity_problem(parent)
            if problem:
                yield "/child_of", problem


def check_field_targets(ctx: Context, data: Mapping[str, Any]) -> Iterator[Problem]:
    """lookup/table `target` and reference `targets` name entities; a table's is our child."""
    for i, f in _fields(data):
        ftype = f["type"]
        if ftype in ("lookup", "table"):
            target = f.get("target")
            if target is None:
                yield pointer("fields", i), f"a {ftype} field needs a 'target' entity"
                continue
            problem = ctx.entity_problem(target)
            if problem:
                yield pointer("fields", i, "target"), problem
                continue
            child = ctx.entity(target)
            if ftype == "table" and child is not None and child.data.get("child_of") != data["name"]:
                yield pointer("fields", i, "target"), (
                    f"entity '{target}' is not a child table of '{data['name']}' "
                    f"(it needs \"child_of\": \"{data['name']}\")"
                )
        elif ftype == "reference":
            targets = f.get("targets")
            if not targets:
                yield pointer("fields", i), "a reference field needs 'targets' (a list of entities)"
                continue
            for j, target in enumerate(targets):
                problem = ctx.entity_problem(target)
                if problem:
                    yield pointer("fields", i, "targets", j), problem


def check_rollups(ctx: Context, data: Mapping[str, Any]) -> Iterator[Problem]:
    """A `rollup` sits on a lookup or reference, reads fields of this entity, and writes
    fields that at least one of the targets has (a reference's targets may differ: a
    follow-up rolls up onto the leads and customers that keep follow-up dates)."""
    own = EntityInfo.of(data)
    for i, f in _fields(data):
        rollup = f.get("rollup")
        if not rollup:
            continue
        if f["type"] not in ("lookup", "reference"):
            yield pointer("fields", i, "rollup"), "only a lookup or reference field can roll values up"
            continue
        targets = [ctx.entity(t) for t in ([f.get("target")] if f["type"] == "lookup" else f.get("targets") or ())]
        for target_field, source in rollup.items():
            if own.active(source) is None and source not in own.system:
                yield pointer("fields", i, "rollup", target_field), f"unknown field '{source}' on '{data['name']}'"
            if not any(t is not None and t.active(target_field) is not None for t in targets):
                yield pointer("fields", i, "rollup", target_field), (
                    f"none of the targets has a field '{target_field}'")


def check_field_values(ctx: Context, data: Mapping[str, Any]) -> Iterator[Problem]:
    """Options, defaults, ranges, patterns, formula and autonumber keys of each field."""
    for i, f in _fields(data):
        ftype = f["type"]
        if ftype in ("select", "multiselect"):
            yield from _check_options(i, f)
        if "min" in f and "max" in f and f["min"] > f["max"]:
            yield pointer("fields", i, "min"), f"min ({f['min']}) is greater than max ({f['max']})"
        if "precision" in f and "scale" in f and f["scale"] > f["precision"]:
            yield pointer("fields", i, "scale"), f"scale ({f['scale']}) is greater than precision ({f['precision']})"
        if "pattern" in f:
            try:
                re.compile(f["pattern"])
            except re.error as exc:
                yield pointer("fields", i, "pattern"), f"pattern {f['pattern']!r} is not a valid regular expression: {exc}"
        if ftype == "formula":
            for key in ("expression", "result_type"):
                if key not in f:
                    yield pointer("fields", i), f"a formula field needs '{key}'"
        if ftype == "autonumber" and "format" in f:
            for message in autonumber_format_problems(f["format"]):
                yield pointer("fields", i, "format"), message
        if f.get("default") is not None:
            message = default_problem(f, f["default"])
            if message:
                yield pointer("fields", i, "default"), message


def _check_options(i: int, f: Mapping[str, Any]) -> Iterator[Problem]:
    options = f.get("options")
    if not options:
        yield pointer("fields", i), f"a {f['type']} field needs 'options'"
        return
    seen: set[str] = set()
    for j, option in enumerate(options):
        if option["value"] in seen:
            yield pointer("fields", i, "options", j, "value"), f"duplicate option value '{option['value']}'"
        seen.add(option["value"])


def default_problem(f: Mapping[str, Any], value: Any) -> str | None:
    """Why a field's `default` doesn't fit its type (or options, or range), else None."""
    ftype = f["type"]
    if ftype in ("formula", "autonumber", "table"):
        return f"a {ftype} field can't have a default"
    kind = FIELD_TYPES[ftype].value
    expected = _DEFAULT_CHECKS.get(kind)
    if expected is not None and not expected[0](value):
        return f"default {value!r} doesn't fit a {ftype} field (expected {expected[1]})"
    if ftype in ("select", "multiselect"):
        allowed = [o["value"] for o in f.get("options") or ()]
        for v in value if isinstance(value, list) else [value]:
            if v not in allowed:
                return f"default {v!r} is not one of the options ({quoted(allowed)})"
    if kind in ("integer", "number") and not isinstance(value, str):
        if "min" in f and value < f["min"] or "max" in f and value > f["max"]:
            return f"default {value!r} is outside min/max"
    if kind == "text" and "max_length" in f and isinstance(value, str) and len(value) > f["max_length"]:
        return f"default is longer than max_length ({f['max_length']})"
    return None


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, str):
        try:
            return Decimal(value).is_finite()
        except InvalidOperation:
            return False
    return False


def _is_date(value: Any) -> bool:
    if value == "$today":
        return True
    try:
        dt.date.fromisoformat(value)
        return True
    except (TypeError, ValueError):
        return False


def _is_datetime(value: Any) -> bool:
    if value in ("$now", "$today"):
        return True
    try:
        dt.datetime.fromisoformat(value)
        return True
    except (TypeError, ValueError):
        return False


#: value kind -> (test, what the message says was expected)
_DEFAULT_CHECKS = {
    "text": (lambda v: isinstance(v, str), "a string"),
    "integer": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "number": (_is_number, "a number or a decimal string"),
    "boolean": (lambda v: isinstance(v, bool), "true or false"),
    "date": (_is_date, "an ISO date such as '2024-01-31' or '$today'"),
    "datetime": (_is_datetime, "an ISO date-time or '$now'"),
    "list": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of strings"),
    "ref": (lambda v: isinstance(v, (int, str)) and not isinstance(v, bool), "an id or a placeholder such as '$me'"),
    "object": (lambda v: isinstance(v, dict), "an object"),
}


def autonumber_format_problems(fmt: str) -> list[str]:
    """What is wrong with an autonumber format such as 'CUS-{YYYY}-{#####}' (empty = fine)."""
    problems = []
    counters = 0
    for match in _TOKEN.finditer(fmt):
        token = match.group(1)
        if token and set(token) == {"#"}:
            counters += 1
        elif token not in AUTONUMBER_DATE_TOKENS:
            problems.append(
                f"unknown token '{{{token}}}' in autonumber format {fmt!r} "
                "(known: {YYYY}, {YY}, {MM}, {DD} and a counter such as {####})"
            )
    rest = _TOKEN.sub("", fmt)
    if "{" in rest or "}" in rest:
        problems.append(f"unbalanced braces in autonumber format {fmt!r}")
    if counters == 0:
        problems.append(f"autonumber format {fmt!r} needs a counter such as {{####}}")
    elif counters > 1:
        problems.append(f"autonumber format {fmt!r} has more than one counter")
    return problems


def check_naming(ctx: Context, data: Mapping[str, Any]) -> Iterator[Problem]:
    """`naming.autonumber` is a valid format (it becomes the `code` field's format)."""
    fmt = (data.get("naming") or {}).get("autonumber")
    if fmt:
        for message in autonumber_format_problems(fmt):
            yield "/naming/autonumber", message


def check_entity_expressions(ctx: Context, data: Mapping[str, Any]) -> Iterator[Problem]:
    """Every expression of the entity uses its own fields (and its child tables' fields)."""
    entity = EntityInfo.of(data)
    for i, f in _fields(data):
        if f.get("archived"):
            continue
        for key in FIELD_EXPRESSION_KEYS:
            if key in f:
                yield from expression_problems(ctx, entity, f[key], pointer("fields", i, key))
        if f["type"] == "formula" and "expression" in f:
            yield from expression_problems(ctx, entity, f["expression"], pointer("fields", i, "expression"))
    for i, rule in enumerate(data.get("validations") or ()):
        yield from expression_problems(ctx, entity, rule["rule"], pointer("validations", i, "rule"))


def check_formula_cycles(ctx: Context, data: Mapping[str, Any]) -> Iterator[Problem]:
    """A formula may read other formulas, but never (through them) itself.

    The runtime evaluates formulas in dependency order; a cycle has no order, so it is
    reported once, at the first formula of the cycle, with the whole loop spelled out.
    """
    formulas = {
        f["name"]: (i, f) for i, f in _fields(data)
        if f["type"] == "formula" and not f.get("archived") and "expression" in f
    }
    deps = {name: sorted(referenced_names(f["expression"]) & set(formulas)) for name, (_, f) in formulas.items()}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    reported: set[frozenset[str]] = set()

    def visit(name: str, path: list[str]) -> Iterator[Problem]:
        state[name] = 1
        path.append(name)
        for dep in deps[name]:
            if state.get(dep) == 1:
                loop = path[path.index(dep):] + [dep]
                if frozenset(loop) not in reported:
                    reported.add(frozenset(loop))
                    i = formulas[dep][0]
                    yield pointer("fields", i, "expression"), f"formula cycle: {' -> '.join(loop)}"
            elif state.get(dep) is None:
                yield from visit(dep, path)
        path.pop()
        state[name] = 2

    for name in formulas:
        if name not in state:
            yield from visit(name, [])


def check_indexes(ctx: Context, data: Mapping[str, Any]) -> Iterator[Problem]:
    """Index fields are stored columns of the entity (system columns included)."""
    entity = EntityInfo.of(data)
    for i, index in enumerate(data.get("indexes") or ()):
        names, base = (index["fields"], ("indexes", i, "fields")) if isinstance(index, dict) else (index, ("indexes", i))
        for j, name in enumerate(names):
            problem = entity.problem(name, archived_ok=True)
            f = entity.fields.get(name)
            if problem is None and f is not None and not FIELD_TYPES[f["type"]].stored:
                problem = f"field '{name}' is a {f['type']} field and has no column to index"
            if problem:
                yield pointer(*base, j), problem


#: The entity checks, in the order their errors are listed.
ENTITY_CHECKS = (
    check_field_names,
    check_title_and_parent,
    check_field_targets,
    check_rollups,
    check_field_values,
    check_naming,
    check_entity_expressions,
    check_formula_cycles,
    check_indexes,
)

__all__ = ["ENTITY_CHECKS", "autonumber_format_problems", "default_problem"]
