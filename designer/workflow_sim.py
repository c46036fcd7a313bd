""""A 150,000 contract by this user would go to …": the path a draft workflow would take.

The admin picks a user and types a few field values; the simulation compiles the draft
workflow into the same state machine the engine runs (`compile_machine`), checks the
approval transition from the initial state (its `when`, its roles), and walks the
chain with the engine's own step logic (`reading.chain_path`: conditions, approver
resolution from the live org chart and roles, skip_submitter, on_empty, delegations).
Nothing is written; the draft need not be published.
"""
from __future__ import annotations

import decimal
from typing import Any, Mapping

import sqlalchemy as sa

from metacrm.metadata.model import Entity, MetadataSet
from metacrm.runtime import systables
from metacrm.runtime.coercion import MAX_ID
from metacrm.runtime.errors import BadRequest, NotFound
from metacrm.runtime.workflow.approvals import truthy
from metacrm.runtime.workflow.approvers import Directory
from metacrm.runtime.workflow.machine import Machine, compile_machine
from metacrm.runtime.workflow.reading import chain_path

NUMBER_TYPES = frozenset({"decimal", "currency", "percent"})


def _coerce(entity: Entity, name: str, raw: Any, directory: Directory) -> Any:
    """A typed value from what the admin typed; formulas (a contract's amount) may be
    given directly, since the simulation has no line items to compute them from."""
    f = entity.field(name)
    if f is None:
        raise BadRequest(f"{entity.name} has no field '{name}'.", {name: ["Unknown field."]})
    kind = f.result_type if f.type == "formula" and f.result_type else f.type
    if raw is None or raw == "":
        return None
    try:
        if kind == "integer":
            return int(str(raw).replace(",", ""))
        if kind in NUMBER_TYPES:
            return decimal.Decimal(str(raw).replace(",", ""))
    except (ValueError, decimal.InvalidOperation):
        raise BadRequest(f"{name} must be a number.", {name: ["Enter a number."]}) from None
    if kind == "boolean":
        return raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes", "on")
    if kind == "user" and isinstance(raw, str) and not raw.isdigit():
        found = directory.by_username([raw])
        if not found:
            raise BadRequest(f"No user named '{raw}'.", {name: ["Unknown user."]})
        return found[0]
    if kind in ("user", "lookup", "department") and str(raw).isdigit():
        return int(raw)
    return raw


def _user(conn: sa.Connection, who: Any) -> Any:
    u = systables.users
    if isinstance(who, str) and who.isascii() and who.isdigit():
        who = int(who)
    if isinstance(who, int) and not 0 < who <= MAX_ID:
        raise BadRequest(f"No user '{who}'.", {"user": ["Choose a user."]})
    cond = u.c.id == who if isinstance(who, int) else u.c.username == str(who)
    row = conn.execute(sa.select(u.c.id, u.c.username, u.c.display_name, u.c.is_admin).where(cond)).first()
    if row is None:
        raise BadRequest(f"No user '{who}'.", {"user": ["Choose a user."]})
    return row


def _label(machine: Machine, state: str | None, lang: str) -> str | None:
    s = machine.state(state)
    return s.label.get(lang) if s else state


def simulate(conn: sa.Connection, mset: MetadataSet, workflow: Mapping[str, Any], body: Any,
             lang: str = "en") -> dict[str, Any]:
    """The path for `body` = {"user": id or username, "record": {field: value},
    "transition": optional name}: the transition checked, then each step."""
    if not isinstance(body, Mapping):
        raise BadRequest('Expected {"user": ..., "record": {...}}.')
    entity = mset.entity(str(workflow.get("entity")))
    if entity is None:
        raise NotFound(f"No entity '{workflow.get('entity')}'.")
    machine = compile_machine(workflow)
    directory = Directory(conn)
    user = _user(conn, body.get("user"))
    record = body.get("record") or {}
    if not isinstance(record, Mapping):
        raise BadRequest("record must be an object of field values.")
    values = {name: _coerce(entity, name, raw, directory) for name, raw in record.items()}
    values.setdefault("owner", user.id)
    start = machine.initial
    values[machine.state_field] = start
    wanted = body.get("transition")
    candidates = [t for t in machine.transitions if start in t.sources and (t.name == wanted if wanted else t.approval)]
    if not candidates:
        raise NotFound(f"No {'transition ' + repr(wanted) if wanted else 'approval transition'} "
                       f"leaves the initial state '{start}'.")
    t = candidates[0]
    roles = directory.roles_of(user.id)
    blocked = []
    if t.roles and not (roles & set(t.roles)) and not user.is_admin:
        blocked.append("roles")
    if t.when and not truthy(t.when, values):
        blocked.append("when")
    chain = machine.chains.get(t.approval) if t.approval else None
    steps = chain_path(directory, chain, values, user.id, {}, lang) if chain and not blocked else []
    end = (chain.on_approve if chain else None) or t.to
    return {
        "workflow": machine.name, "user": {"id": user.id, "username": user.username, "name": user.display_name},
        "transition": {"name": t.name, "label": t.label.get(lang), "when": t.when, "roles": list(t.roles),
                       "blocked": blocked},
        "from": {"state": start, "label": _label(machine, start, lang)},
        "waits_in": {"state": t.to, "label": _label(machine, t.to, lang)},
        "chain": chain.name if chain else None, "steps": steps,
        "ends_in": {"state": end, "label": _label(machine, end, lang)} if not blocked else None,
        "rejected_to": ({"state": chain.on_reject, "label": _label(machine, chain.on_reject, lang)}
                        if chain and chain.on_reject else None),
    }
