"""What the record service asks the workflow engine on every write (one call per question).

- A workflow's state field changes only through transitions: a create may give only the
  initial state (or none), an update may not change it — 422 naming the field.
- A record in a `locked` state is read-only except through transitions: updates and
  deletes are refused with 409 `locked` — except that an approver whose step lists
  `editable_fields` may change exactly those while the record waits for them.

Entities without workflows cost nothing here (no query); the engine's own writes pass
`workflow_fields` to `update_record` and skip these checks.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import sqlalchemy as sa

from .. import systables
from ..catalog import Catalog, EntityRuntime
from ..errors import Conflict, PermissionDenied, ValidationFailed
from ..history import jsonable
from ..principal import Principal
from .machine import Machine, machines_of


class RecordLocked(Conflict):
    """The record is in a locked workflow state (pending approval, approved, ...)."""

    code = "locked"


def _names(machine: Machine, state: Any) -> str:
    names = [t.name for t in machine.transitions_from(state)]
    return ", ".join(names) if names else "none from this state"


def state_field_error(machine: Machine, state: Any) -> ValidationFailed:
    message = (f"'{machine.state_field}' changes only through the workflow's transitions "
               f"(POST .../transitions/<name>; from here: {_names(machine, state)}).")
    return ValidationFailed(message, {machine.state_field: [message]})


def creating(catalog: Catalog, rt: EntityRuntime, payload: Any) -> Any:
    """The create payload without state fields; refuses a state other than the initial one."""
    machines = machines_of(catalog, rt.name)
    if not machines or not isinstance(payload, Mapping):
        return payload
    out = dict(payload)
    for m in machines:
        if m.state_field in out:
            if out[m.state_field] not in (None, m.initial):
                raise state_field_error(m, m.initial)
            del out[m.state_field]
    return out


def initial_states(catalog: Catalog, rt: EntityRuntime, values: dict[str, Any]) -> None:
    """A new record starts in each workflow's initial state, whatever the field's default."""
    for m in machines_of(catalog, rt.name):
        values[m.state_field] = m.initial


def check_state_writes(catalog: Catalog, rt: EntityRuntime, payload: Mapping[str, Any],
                       current: Mapping[str, Any]) -> None:
    """An update may send a state field back unchanged, never a different value."""
    for m in machines_of(catalog, rt.name):
        if m.state_field in payload and payload[m.state_field] != current.get(m.state_field):
            raise state_field_error(m, current.get(m.state_field))


def locking_machine(catalog: Catalog, rt: EntityRuntime, current: Mapping[str, Any]) -> Machine | None:
    """The workflow whose current state locks the record, if any."""
    for m in machines_of(catalog, rt.name):
        state = m.state(current.get(m.state_field))
        if state is not None and state.locked:
            return m
    return None


def locked_error(catalog: Catalog, rt: EntityRuntime, machine: Machine, current: Mapping[str, Any],
                 language: str) -> RecordLocked:
    state = machine.state(current.get(machine.state_field))
    label = state.label.get(language) if state else current.get(machine.state_field)
    return RecordLocked(f"This {rt.entity.label.get(language)} is '{label}' and locked: it changes only through "
                        f"its workflow's transitions ({_names(machine, current.get(machine.state_field))}).",
                        state=current.get(machine.state_field))


def check_changes(catalog: Catalog, rt: EntityRuntime, principal: Principal, current: Mapping[str, Any],
                  changed: Iterable[str], approver_fields: frozenset[str] | None) -> None:
    """After an update is prepared: a locked record may change only in an approver's
    editable fields; an approver acting on that right may change nothing else."""
    changed = set(changed)
    if not changed:
        return
    if approver_fields is not None:
        extra = sorted(changed - approver_fields)
        if extra:
            raise PermissionDenied("As an approver you may change only " + ", ".join(sorted(approver_fields)) + ".",
                                   {name: ["Not editable at this approval step."] for name in extra})
        return
    machine = locking_machine(catalog, rt, current)
    if machine is not None:
        raise locked_error(catalog, rt, machine, current, principal.language)


def check_delete(catalog: Catalog, rt: EntityRuntime, principal: Principal, current: Mapping[str, Any]) -> None:
    machine = locking_machine(catalog, rt, current)
    if machine is not None:
        raise locked_error(catalog, rt, machine, current, principal.language)


def approver_fields(conn: sa.Connection, catalog: Catalog, principal: Principal, rt: EntityRuntime,
                    record_id: int) -> frozenset[str] | None:
    """The fields the principal may edit as a pending approver of this record (their
    step's `editable_fields`), or None when they aren't one or their step allows none.
    One indexed query, only for entities whose workflows let approvers edit."""
    steps = {(m.name, c.name, s.name): s.editable_fields for m in machines_of(catalog, rt.name)
             for c in m.chains.values() for s in c.steps if s.editable_fields}
    if not steps or principal.user_id is None:
        return None
    a, t = systables.approvals, systables.approval_tasks
    rows = conn.execute(sa.select(a.c.workflow, a.c.chain, t.c.step).select_from(t.join(a, a.c.id == t.c.approval_id))
                        .where(a.c.entity == rt.name, a.c.record_id == record_id, a.c.status == "pending",
                               t.c.user_id == principal.user_id, t.c.status == "pending")).all()
    fields = set()
    for row in rows:
        fields |= set(steps.get((row.workflow, row.chain, row.step), ()))
    return frozenset(fields) if fields else None


def changed_fields(changes: Iterable[tuple[str, Any, Any]]) -> list[str]:
    return [name for name, old, new in changes if jsonable(old) != jsonable(new)]
