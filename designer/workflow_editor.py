"""The workflow designer's model: graph, states, transitions and approval chains of one
workflow of the draft, and what each input may choose from.

Approver specs are edited as a list on every step (METADATA.md allows one spec or a
list; a list of one means the same), so each card's inputs have a stable JSON pointer
(`/approvals/<chain>/steps/<i>/approvers/<j>/role`) that validation errors point to.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

import sqlalchemy as sa

from metacrm.metadata.expressions import ExpressionError, compile_expression
from metacrm.metadata.model import Entity, MetadataSet
from metacrm.runtime import systables

from .workflow_graph import render_svg

APPROVER_TYPES = ("manager", "role", "user", "department_head", "submitter_choice", "field")
MODES = ("any", "all", "ratio")
ON_EMPTY = ("", "approve", "escalate")
BY = ("", "submitter", "owner")
RESTART = ("first", "rejecting_step")


def editable(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with every step's approvers as a list (the shape the cards edit)."""
    out = copy.deepcopy(dict(doc))
    for chain in (out.get("approvals") or {}).values():
        if not isinstance(chain, dict):
            continue
        for step in chain.get("steps") or ():
            if isinstance(step, dict) and isinstance(step.get("approvers"), dict):
                step["approvers"] = [step["approvers"]]
    return out


def unique_name(taken: Any, stem: str) -> str:
    names = {x.get("name") if isinstance(x, Mapping) else x for x in taken or ()}
    n = 1
    while f"{stem}_{n}" in names:
        n += 1
    return f"{stem}_{n}"


NUMERIC = frozenset({"integer", "decimal", "currency", "percent"})


def active_users(conn: sa.Connection) -> list[dict[str, Any]]:
    """Who the simulation may submit as: the active users, by name."""
    u = systables.users
    return [dict(r) for r in conn.execute(sa.select(u.c.id, u.c.username, u.c.display_name)
                                          .where(u.c.active.is_(True)).order_by(u.c.username)).mappings()]


def simulation_fields(entity: Entity, doc: Mapping[str, Any], lang: str) -> list[dict[str, Any]]:
    """The fields the simulation asks for: those the transitions' and steps' conditions
    read, and the user fields `field` approvers name (a contract's amount, its signer)."""
    names: list[str] = []
    expressions = [t.get("when") for t in doc.get("transitions") or () if isinstance(t, Mapping)]
    for chain in (doc.get("approvals") or {}).values():
        for step in (chain or {}).get("steps") or () if isinstance(chain, Mapping) else ():
            if not isinstance(step, Mapping):
                continue
            expressions.append(step.get("when"))
            for a in step.get("approvers") or ():
                if isinstance(a, Mapping) and a.get("type") == "field" and isinstance(a.get("field"), str):
                    names.append(a["field"])
    for text in expressions:
        if isinstance(text, str) and text:
            try:
                names.extend(sorted(compile_expression(text).names))
            except ExpressionError:
                continue
    out = []
    for name in dict.fromkeys(names):
        f = entity.active_field(name)
        if f is None or name == doc.get("state_field"):
            continue
        kind = f.result_type if f.type == "formula" and f.result_type else f.type
        out.append({"name": f.name, "label": f.label.get(lang), "numeric": kind in NUMERIC,
                    "options": [{"value": o.value, "label": o.label.get(lang)} for o in f.options]})
    return out


def workflow_context(mset: MetadataSet, doc: Mapping[str, Any], lang: str, selected: str | None) -> dict[str, Any]:
    entity = mset.entity(str(doc.get("entity")))
    states = [s for s in doc.get("states") or () if isinstance(s, Mapping)]
    transitions = [t for t in doc.get("transitions") or () if isinstance(t, Mapping)]
    chains = doc.get("approvals") if isinstance(doc.get("approvals"), Mapping) else {}
    fields = list(entity.active_fields) if entity else []
    known = {f"state:{s.get('name')}" for s in states} | {f"transition:{t.get('name')}" for t in transitions}
    if selected not in known:  # nothing chosen yet, or the chosen one was renamed or removed
        selected = f"state:{states[0].get('name')}" if states else None
    kind, _, name = (selected or "").partition(":")
    return {
        "entity": entity,
        "svg": render_svg(doc, lang, name if kind in ("state", "transition") else None),
        "selected": selected, "states": states, "transitions": transitions, "chains": chains,
        "state_names": [str(s.get("name")) for s in states],
        "roles": sorted(mset.roles),
        "user_fields": [f.name for f in fields if f.type == "user"],
        "fields": [{"name": f.name, "label": f.label.get(lang), "type": f.type} for f in fields
                   if f.type not in ("table", "location", "file", "image")],
        "sim_fields": simulation_fields(entity, doc, lang) if entity else [],
        "approver_types": APPROVER_TYPES, "modes": MODES, "on_empty": ON_EMPTY, "by": BY, "restart": RESTART,
        "new_state": unique_name(states, "state"), "new_transition": unique_name(transitions, "transition"),
        "new_chain": unique_name([{"name": k} for k in chains], "approval"),
        "new_step": {c: unique_name((chains[c] or {}).get("steps"), "step") for c in chains},
    }
