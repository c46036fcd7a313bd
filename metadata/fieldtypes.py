"""The vocabulary shared by every layer: field types, system fields, filter operators.

Kept as data so the schema compiler, the record schemas, the validators and the screens
read one table instead of each carrying its own `if type == ...` chain.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldType:
    """What the metadata layer needs to know about a field type.

    `value` is the kind of value the type holds (used to check defaults, filter operators
    and expression names); `stored` is False for types that have no column of their own
    (child tables); `writable` is False for types whose value the server computes.
    """

    name: str
    value: str  # "text" | "number" | "integer" | "boolean" | "date" | "datetime" | "list" | "ref" | "rows" | "object"
    stored: bool = True
    writable: bool = True
    searchable: bool = False


FIELD_TYPES: dict[str, FieldType] = {
    t.name: t
    for t in (
        FieldType("text", "text", searchable=True),
        FieldType("textarea", "text", searchable=True),
        FieldType("richtext", "text", searchable=True),
        FieldType("integer", "integer"),
        FieldType("decimal", "number"),
        FieldType("currency", "number"),
        FieldType("percent", "number"),
        FieldType("boolean", "boolean"),
        FieldType("date", "date"),
        FieldType("datetime", "datetime"),
        FieldType("select", "text"),
        FieldType("multiselect", "list"),
        FieldType("email", "text", searchable=True),
        FieldType("phone", "text", searchable=True),
        FieldType("url", "text", searchable=True),
        FieldType("lookup", "ref"),
        FieldType("reference", "object"),
        FieldType("user", "ref"),
        FieldType("department", "ref"),
        FieldType("table", "rows", stored=False),
        FieldType("formula", "computed", writable=False),
        FieldType("autonumber", "text", writable=False, searchable=True),
        FieldType("file", "text"),
        FieldType("image", "text"),
        FieldType("location", "object"),
    )
}

#: Result types a formula may declare (`result_type`).
FORMULA_RESULT_TYPES = ("text", "integer", "decimal", "currency", "percent", "boolean", "date", "datetime")

#: Columns every entity table has, in the order the compiler creates them.
SYSTEM_FIELDS: tuple[str, ...] = ("id", "version", "created_at", "created_by", "updated_at", "updated_by")
#: Added when an entity has `"ownership": true` (the columns data-scope permissions use).
OWNERSHIP_FIELDS: tuple[str, ...] = ("owner", "department")
#: Added to child entities (`child_of`): the parent row and the row's position.
CHILD_FIELDS: tuple[str, ...] = ("parent_id", "idx")

#: The value kind of each system field (for filters, sorting and expressions).
SYSTEM_FIELD_VALUES: dict[str, str] = {
    "id": "integer",
    "version": "integer",
    "created_at": "datetime",
    "created_by": "ref",
    "updated_at": "datetime",
    "updated_by": "ref",
    "owner": "ref",
    "department": "ref",
    "parent_id": "integer",
    "idx": "integer",
}

#: Filter operators of METADATA.md and how many values each takes.
FILTER_OPERATORS: dict[str, str] = {
    "=": "one",
    "!=": "one",
    "<": "one",
    "<=": "one",
    ">": "one",
    ">=": "one",
    "in": "many",
    "not in": "many",
    "contains": "one",
    "starts with": "one",
    "between": "two",
    "is empty": "none",
    "is not empty": "none",
}

#: Relative date ranges a date/datetime filter value may name.
RELATIVE_RANGES = (
    "today",
    "yesterday",
    "this_week",
    "last_week",
    "this_month",
    "last_month",
    "this_quarter",
    "last_quarter",
    "this_year",
    "last_year",
    "last_7_days",
    "last_30_days",
    "last_90_days",
    "next_7_days",
    "next_30_days",
)

#: Placeholders a filter value may use; resolved from the acting user and the clock.
FILTER_PLACEHOLDERS = ("$me", "$my_department", "$today", "$now")

#: Metadata kinds and the keys that identify a document of each kind within a set.
KIND_KEYS: dict[str, tuple[str, ...]] = {
    "entity": ("name",),
    "form": ("entity", "name"),
    "view": ("entity", "name"),
    "dedup": ("name",),
    "workflow": ("name",),
    "role": ("name",),
    "pool": ("name",),
    "template": ("name",),
}


def system_fields_of(ownership: bool, child: bool) -> tuple[str, ...]:
    """The system field names an entity gets, given its ownership and child flags."""
    names = SYSTEM_FIELDS
    if ownership:
        names += OWNERSHIP_FIELDS
    if child:
        names += CHILD_FIELDS
    return names
