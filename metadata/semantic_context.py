"""What the semantic checks know about the whole document set, and the helpers they share.

The checks of pass 2 run per document but answer questions about the others ("does entity
`lead` have a field `mobile`?"). `Context` indexes the schema-valid documents once so each
check is a handful of lookups; it also remembers the names of documents that failed the
schema pass, so a reference to one of those is not reported again as "unknown".
"""
from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass, field
from typing import Any, Collection, Iterable, Iterator, Mapping, Sequence

from .documents import Document
from .expressions import check_expression
from .fieldtypes import FIELD_TYPES, SYSTEM_FIELD_VALUES, system_fields_of

#: A problem found by a check: (JSON pointer inside the document, message).
Problem = tuple[str, str]

#: Name of the field `naming.autonumber` adds when an entity declares no autonumber field
#: (mirrors `metacrm.metadata.model.NAMING_FIELD`, which builds that field).
NAMING_FIELD = "code"
#: System fields that hold a user (valid targets of a `field` approver).
SYSTEM_USER_FIELDS = ("owner", "created_by", "updated_by")


@dataclass
class EntityInfo:
    """One entity document, indexed: declared fields by name, system and implicit fields."""

    name: str
    data: Mapping[str, Any]
    fields: dict[str, Mapping[str, Any]]
    system: tuple[str, ...]
    implicit: dict[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> "EntityInfo":
        fields: dict[str, Mapping[str, Any]] = {}
        for f in data.get("fields") or ():
            fields.setdefault(f["name"], f)
        implicit: dict[str, Mapping[str, Any]] = {}
        naming = data.get("naming") or {}
        if naming.get("autonumber") and not any(f.get("type") == "autonumber" for f in fields.values()):
            implicit[NAMING_FIELD] = {"name": NAMING_FIELD, "type": "autonumber", "format": naming["autonumber"]}
        system = system_fields_of(bool(data.get("ownership")), data.get("child_of") is not None)
        return cls(data["name"], data, fields, system, implicit)

    def active(self, name: str) -> Mapping[str, Any] | None:
        """A declared (or implicit) field that is not archived."""
        f = self.fields.get(name) or self.implicit.get(name)
        return None if f is None or f.get("archived") else f

    def names(self) -> set[str]:
        """The names an expression on this entity may use: active fields and system fields."""
        return {n for n, f in self.fields.items() if not f.get("archived")} | set(self.implicit) | set(self.system)

    def value_kind(self, name: str) -> str | None:
        """The kind of value a field holds (see FieldType.value); formulas take their result's."""
        if name in self.system and name not in self.fields:
            return SYSTEM_FIELD_VALUES.get(name)
        f = self.fields.get(name) or self.implicit.get(name)
        if f is None:
            return None
        if f.get("type") == "formula":
            result = FIELD_TYPES.get(f.get("result_type") or "text")
            return result.value if result else None
        ftype = FIELD_TYPES.get(f.get("type"))
        return ftype.value if ftype else None

    def is_user_field(self, name: str) -> bool:
        if name in self.system and name not in self.fields:
            return name in SYSTEM_USER_FIELDS
        f = self.active(name)
        return f is not None and f.get("type") == "user"

    def problem(self, name: str, *, system: bool = True, archived_ok: bool = False) -> str | None:
        """Why `name` can't be used as a field of this entity here, or None when it can."""
        if system and name in self.system:
            return None
        if name in self.implicit:
            return None
        f = self.fields.get(name)
        if f is None:
            candidates = list(self.fields) + list(self.implicit) + (list(self.system) if system else [])
            return f"unknown field '{name}' on entity '{self.name}'{did_you_mean(name, candidates)}"
        if f.get("archived") and not archived_ok:
            return f"field '{name}' is archived"
        return None


@dataclass
class Context:
    """The schema-valid documents of a set, indexed for the checks of pass 2."""

    entities: dict[str, EntityInfo]
    broken: dict[str, set[str]]
    roles: set[str]
    workflows: list[Mapping[str, Any]]

    @classmethod
    def build(cls, valid: Sequence[Document], invalid: Sequence[Document] = ()) -> "Context":
        entities: dict[str, EntityInfo] = {}
        workflows: list[Mapping[str, Any]] = []
        roles: set[str] = set()
        for doc in valid:
            if doc.kind == "entity" and doc.data["name"] not in entities:
                entities[doc.data["name"]] = EntityInfo.of(doc.data)
            elif doc.kind == "workflow":
                workflows.append(doc.data)
            elif doc.kind == "role":
                roles.add(doc.data["name"])
        broken: dict[str, set[str]] = {}
        for doc in invalid:
            name = doc.data.get("name") if isinstance(doc.data, dict) else None
            if doc.kind and isinstance(name, str):
                broken.setdefault(doc.kind, set()).add(name)
        roles |= broken.get("role", set())
        # A broken workflow's transitions still count as permission actions, leniently
        # read, so that a role granting `submit` isn't blamed for the workflow's error.
        workflows += [_lenient_workflow(doc.data) for doc in invalid if doc.kind == "workflow"]
        return cls(entities, broken, roles, workflows)

    def entity(self, name: Any) -> EntityInfo | None:
        return self.entities.get(name) if isinstance(name, str) else None

    def entity_problem(self, name: str) -> str | None:
        """None when the entity exists (or is broken and already reported), else the message."""
        if name in self.entities or name in self.broken.get("entity", ()):
            return None
        return f"unknown entity '{name}'{did_you_mean(name, self.entities)}"

    def role_problem(self, name: str) -> str | None:
        """Unknown roles are only reported when the set defines roles at all.

        A package of entities and workflows may rely on roles defined elsewhere (the
        instance's own), so without any role document there is nothing to check against.
        """
        if not self.roles or name in self.roles:
            return None
        return f"unknown role '{name}'{did_you_mean(name, self.roles)}"

    def child_fields(self, entity: EntityInfo) -> dict[str, set[str]]:
        """Names usable inside aggregates over each active table field: `sum(lines.amount)`."""
        out: dict[str, set[str]] = {}
        for name, f in entity.fields.items():
            if f.get("type") == "table" and not f.get("archived"):
                child = self.entity(f.get("target"))
                if child is not None:
                    out[name] = child.names()
        return out

    def transitions_of(self, entity: str) -> set[str]:
        return {t["name"] for w in self.workflows if w.get("entity") == entity for t in w.get("transitions") or ()}


def _lenient_workflow(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """The entity and transition names of a workflow that failed the schema pass."""
    transitions = data.get("transitions")
    names = [
        {"name": t["name"]} for t in (transitions if isinstance(transitions, list) else ())
        if isinstance(t, dict) and isinstance(t.get("name"), str)
    ]
    return {"entity": data.get("entity"), "transitions": names}


def expression_problems(ctx: Context, entity: EntityInfo, source: str, path: str) -> Iterator[Problem]:
    """check_expression's messages for one expression of `entity`, at `path`."""
    for message in check_expression(source, entity.names(), ctx.child_fields(entity)):
        yield path, f"invalid expression {source!r}: {message}"


def referenced_names(source: str) -> set[str]:
    """Bare names an expression reads (for formula dependency cycles); empty if it won't parse.

    The expression language has Python's syntax, so `ast` finds the names; syntax errors
    are reported by check_expression, not here.
    """
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError):
        return set()
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and id(node) not in called}


def did_you_mean(value: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, list(candidates), n=1, cutoff=0.75)
    return f" (did you mean '{close[0]}'?)" if close else ""


def quoted(names: Collection[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)
