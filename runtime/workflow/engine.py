"""Firing transitions: `fire_transition()` is the one way a record's state changes.

The API (`POST /api/v1/records/<entity>/<id>/transitions/<name>`), lead conversion and
the demo data all call it. It locks the record's row first (then its open approval), so
two people acting on one record at once are serialised and the second sees what the
first did — and gets a 409 when that makes their action moot.

A name is either one of the workflow's transitions (from the record's current state) or,
while the record waits in an approval, a decision: `approve`, `reject`, `reassign`,
`add_signer`, and `withdraw` (the submitter's; a declared `withdraw` transition wins).
The body (all keys optional):

    {"comment": "...",                       # kept in the trail
     "version": 7,                           # the record version the caller saw (409 if stale)
     "values": {"lost_reason": "..."},       # fields written with the transition (the caller's
                                             #   update right applies; approvers: their step's
                                             #   editable_fields)
     "approvers": {"<step>": [user ids]},    # submitting: picks for submitter_choice steps
     "to_step": "<earlier step>",            # reject: back to that step instead of the submitter
     "to_user": 12,                          # reassign (转交)
     "users": [12, 13], "position": "before"|"after"}   # add_signer (加签)
"""
from __future__ import annotations

from typing import Any, Mapping

import sqlalchemy as sa

from metacrm.metadata.expressions import ExpressionError, compile_expression

from ..access import access_for, scope_clause
from ..catalog import Catalog, EntityRuntime
from ..clock import utcnow
from ..errors import BadRequest, Conflict, NotFound, PermissionDenied, ValidationFailed
from ..history import jsonable
from ..notifications import notify
from ..principal import SYSTEM, Principal
from .rollup import apply_rollup
from ..record_reads import fetch_row, present, python_record, read_record, access_of_children
from . import approvals
from .approvals import Run, truthy
from .approvers import Directory
from .machine import Machine, Transition, machine_named, machines_of

DECIDE = ("approve", "reject", "reassign", "add_signer")
BODY_KEYS = {"comment", "version", "values", "approvers", "to_step", "to_user", "users", "position"}


def _body(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, Mapping):
        raise BadRequest("The transition's body must be a JSON object.")
    unknown = sorted(set(body) - BODY_KEYS)
    if unknown:
        raise BadRequest(f"Unknown key(s) in the transition body: {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(BODY_KEYS))}).")
    comment = body.get("comment")
    if comment is not None and (not isinstance(comment, str) or len(comment) > 4000):
        raise ValidationFailed("comment must be text of at most 4000 characters.", {"comment": ["Invalid comment."]})
    values = body.get("values")
    if values is not None and not isinstance(values, Mapping):
        raise BadRequest("values must be an object of field values.")
    version = body.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise ValidationFailed("version must be an integer.", {"version": ["Not a valid integer."]})
    return dict(body)


def title_of(rt: EntityRuntime, record: Mapping[str, Any]) -> str:
    value = record.get(rt.entity.title_field)
    return str(value) if value not in (None, "") else f"{rt.entity.label.en} #{record.get('id')}"


def make_run(conn: sa.Connection, catalog: Catalog, principal: Principal, rt: EntityRuntime, machine: Machine,
             row: Mapping[str, Any]) -> Run:
    now = utcnow()
    return Run(conn, catalog, principal, rt, machine, row["id"], python_record(rt, row), Directory(conn), now,
               compile_expression("today()").evaluate())


# ------------------------------------------------------------------ who may fire what

def _granted_explicitly(catalog: Catalog, entity: str, action: str) -> bool:
    """Whether some role names this transition in its permissions (then roles decide)."""
    return any(action in ((r.spec.get("permissions") or {}).get(entity) or {}) for r in catalog.mset.roles.values())


def may_fire(conn: sa.Connection, catalog: Catalog, principal: Principal, rt: EntityRuntime, machine: Machine,
             t: Transition, row: Mapping[str, Any], approval: Any) -> str | None:
    """None when the principal may fire `t` on the record now, else why not (for 403)."""
    if t.by == "submitter":
        submitter = approval.submitter if approval is not None else row.get("owner", row.get("created_by"))
        if principal.user_id is None or principal.user_id != submitter:
            return f"Only the submitter may {t.name} this record."
    elif t.by == "owner" and principal.user_id != row.get("owner"):
        return f"Only the owner may {t.name} this record."
    if t.roles and not principal.is_admin and not (set(t.roles) & principal.roles):
        return f"'{t.name}' needs one of the roles: {', '.join(t.roles)}."
    access = access_for(catalog.mset, principal, rt.entity)
    if _granted_explicitly(catalog, rt.name, t.name):
        action = t.name
    elif t.by:
        return None
    else:
        action = "update"
    if not access.allows(action):
        return f"You may not {t.name} {rt.entity.label.get(principal.language)} records."
    scope = scope_clause(rt.table, rt.entity, principal, access, action, conn)
    if scope is not None and conn.execute(sa.select(rt.table.c.id).where(
            rt.table.c.id == row["id"], scope)).first() is None:
        return f"You may see this {rt.entity.label.get(principal.language)} but not {t.name} it."
    return None


def _readable(conn: sa.Connection, catalog: Catalog, principal: Principal, rt: EntityRuntime, record_id: int) -> bool:
    access = access_for(catalog.mset, principal, rt.entity)
    if not access.allows("read"):
        return False
    scope = scope_clause(rt.table, rt.entity, principal, access, "read", conn)
    return scope is None or conn.execute(sa.select(rt.table.c.id).where(
        rt.table.c.id == record_id, scope)).first() is not None


def involved(conn: sa.Connection, principal: Principal, entity: str, record_id: int) -> bool:
    """Whether the principal submitted, decides or decided, or was copied on an approval of the record."""
    A, T = approvals.A, approvals.T
    uid = principal.user_id
    return conn.execute(sa.select(A.c.id).where(A.c.entity == entity, A.c.record_id == record_id, sa.or_(
        A.c.submitter == uid, A.c.id.in_(sa.select(T.c.approval_id).where(T.c.user_id == uid)))).limit(1)
    ).first() is not None


def _writable_values(conn: sa.Connection, catalog: Catalog, principal: Principal, rt: EntityRuntime,
                     row: Mapping[str, Any], values: Mapping[str, Any], machine: Machine) -> None:
    if not values:
        return
    if machine.state_field in values or any(m.state_field in values for m in machines_of(catalog, rt.name)):
        raise ValidationFailed("The state field is set by the transition itself.",
                               {machine.state_field: ["Set by the transition."]})
    access = access_for(catalog.mset, principal, rt.entity)
    scope = scope_clause(rt.table, rt.entity, principal, access, "update", conn)
    if not access.allows("update") or (scope is not None and conn.execute(sa.select(rt.table.c.id).where(
            rt.table.c.id == row["id"], scope)).first() is None):
        raise PermissionDenied("You may not change this record's fields.",
                               {k: ["You may not change this field."] for k in values})


# ------------------------------------------------------------------ actions on entering a state

def _placeholder(value: Any, run: Run, submitter: int | None) -> Any:
    if not isinstance(value, str):
        return value
    fixed = {"$now": run.now, "$me": run.principal.user_id, "$today": run.today,
             "$my_department": run.principal.department_id, "$submitter": submitter,
             "$record": {"entity": run.rt.name, "id": run.record_id}, "$id": run.record_id}
    if value in fixed:
        return fixed[value]
    try:
        return compile_expression(value).evaluate(run.record)
    except ExpressionError as exc:
        raise ValidationFailed(f"The workflow's action expression {value!r} failed: {exc}") from None


def action_values(run: Run, names: tuple[str, ...], submitter: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for action in run.machine.actions_on(*names):
        for key, value in action.set.items():
            out[key] = jsonable(_placeholder(value, run, submitter))
    return out


def _recipients(run: Run, spec: str, submitter: int | None, record: Mapping[str, Any]) -> list[int]:
    if spec == "submitter":
        return [submitter] if submitter else []
    if spec in ("$me", "me"):
        return [run.principal.user_id] if run.principal.user_id else []
    if spec.startswith("role:"):
        return run.directory.with_role(spec[5:])
    if spec.startswith("user:"):
        return run.directory.by_username([spec[5:]])
    value = record.get(spec)
    return [value] if isinstance(value, int) and not isinstance(value, bool) else []


def run_side_actions(run: Run, names: tuple[str, ...], submitter: int | None, record: Mapping[str, Any]) -> None:
    """notify and create actions of a state entered (or a transition fired)."""
    from ..records import create_record  # the record service imports this package's guard

    state = names[0]
    label = run.machine.state(state).label if run.machine.state(state) else None
    title = title_of(run.rt, record)
    for action in run.machine.actions_on(*names):
        users: list[int] = []
        for spec in action.notify:
            users += _recipients(run, spec, submitter, record)
        if users:
            en, zh = (label.en, label.zh) if label else (state, state)
            notify(run.conn, users, kind="workflow", title={"en": f"{title}: {en}", "zh": f"{title}：{zh}"},
                             entity=run.rt.name, record_id=run.record_id)
        if action.rollup:
            apply_rollup(run.conn, run.catalog, run.rt.name, action.rollup, record)
        if action.create:
            target = run.catalog.entities.get(action.create["entity"])
            if target is None or target.entity.archived or target.entity.child_of:
                continue
            values = {k: jsonable(_placeholder(v, run, submitter)) for k, v in (action.create.get("values") or {}).items()}
            if target.entity.ownership:
                values.setdefault("owner", record.get("owner") or run.principal.user_id)
                values.setdefault("department", record.get("department"))
            create_record(run.conn, run.catalog, SYSTEM, target.name, values)


# ------------------------------------------------------------------ writing the state

def enter(run: Run, row: Mapping[str, Any], target: str, transition: str, values: Mapping[str, Any],
          submitter: int | None, engine_values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write the new state (with the actions' `set` and the caller's values) through the
    record service, then the actions' notifications and records; the updated record."""
    from ..records import update_record

    machine = run.machine
    run.record[machine.state_field] = target
    sets = {**action_values(run, (target, transition), submitter), **jsonable(dict(engine_values or {}))}
    payload = {**dict(values), **sets, machine.state_field: target, "version": row["version"]}
    record = update_record(run.conn, run.catalog, run.principal, run.rt.name, run.record_id, payload,
                           workflow_fields=frozenset(sets) | {machine.state_field})
    run.record.update({k: v for k, v in record.items()})
    run_side_actions(run, (target, transition), submitter, record)
    if fetch_row(run.conn, run.rt, run.record_id)["version"] != record["version"]:
        # A record an action created rolled up onto this one (a follow-up's date): answer
        # the record as it is now, so the caller's next edit doesn't meet a stale version.
        return present_for(run.conn, run.catalog, run.principal, run.rt, run.record_id)
    return record


def write_values(run: Run, row: Mapping[str, Any], values: Mapping[str, Any]) -> Mapping[str, Any]:
    """An approver's edits to their step's editable fields, before their decision counts."""
    from ..records import update_record

    update_record(run.conn, run.catalog, run.principal, run.rt.name, run.record_id,
                  {**dict(values), "version": row["version"]}, workflow_fields=frozenset())
    new = fetch_row(run.conn, run.rt, run.record_id)
    run.record = python_record(run.rt, new)
    return new


def present_for(conn: sa.Connection, catalog: Catalog, principal: Principal, rt: EntityRuntime,
                record_id: int) -> dict[str, Any]:
    row = fetch_row(conn, rt, record_id)
    return present(read_record(conn, rt, row), access_for(catalog.mset, principal, rt.entity),
                   access_of_children(catalog, principal, rt))


# ------------------------------------------------------------------ the entry point

def fire_transition(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str, record_id: int,
                    name: str, body: Any = None, *, engine_values: Mapping[str, Any] | None = None
                    ) -> dict[str, Any]:
    """Fire transition (or approval decision) `name` on a record as `principal`, inside
    the caller's transaction; the updated record as the principal may see it.

    `engine_values` is for other engines calling from Python (lead conversion sets
    `converted_customer` with `convert`): fields written with the transition although
    read-only, trusted like the workflow's own actions. The principal's right to fire
    the transition is checked as for any caller."""
    rt = catalog.get(entity)
    body = _body(body)
    machines = machines_of(catalog, entity)
    if not machines:
        raise NotFound(f"{entity} has no workflow.")
    row = fetch_row(conn, rt, record_id, lock=True)  # record first, then its approval: one order everywhere
    approval = approvals.open_approval(conn, entity, record_id)
    readable = _readable(conn, catalog, principal, rt, record_id)
    if not readable and not (approval is not None and involved(conn, principal, entity, record_id)):
        raise NotFound(f"No {entity} with id {record_id}.")
    if body.get("version") is not None and body["version"] != row["version"]:
        raise Conflict(f"This {entity} was changed meanwhile (version {row['version']}, yours {body['version']}). "
                       "Reload it and try again.", current_version=row["version"])
    current = python_record(rt, row)

    for machine in machines:
        t = machine.transition(name, current.get(machine.state_field))
        if t is not None:
            return _fire_declared(conn, catalog, principal, rt, machine, t, row, approval, body,
                                  dict(engine_values or {}))
    if approval is not None and name in DECIDE + ("withdraw",):
        machine = machine_named(catalog, entity, approval.workflow)
        if machine is None or approval.chain not in machine.chains:
            raise Conflict("This record's approval belongs to a workflow that no longer exists.")
        return _decide(conn, catalog, principal, rt, machine, row, approval, name, body)
    known = {t.name for m in machines for t in m.transitions} | set(DECIDE) | {"withdraw"}
    if name in known:
        states = ", ".join(f"{m.state_field} = {current.get(m.state_field)!r}" for m in machines)
        raise Conflict(f"'{name}' can't be done now ({states}"
                       f"{'' if approval is None else ', approval pending'}).", code_detail="not_available")
    raise NotFound(f"{entity} has no transition named '{name}'.")


def _fire_declared(conn: sa.Connection, catalog: Catalog, principal: Principal, rt: EntityRuntime, machine: Machine,
                   t: Transition, row: Mapping[str, Any], approval: Any, body: Mapping[str, Any],
                   engine_values: dict[str, Any]) -> dict[str, Any]:
    own_approval = approval if approval is not None and approval.workflow == machine.name else None
    why = may_fire(conn, catalog, principal, rt, machine, t, row, own_approval)
    if why:
        raise PermissionDenied(why)
    run = make_run(conn, catalog, principal, rt, machine, row)
    if t.when and not truthy(t.when, run.record):
        raise ValidationFailed(f"'{t.label.get(principal.language)}' is not possible for this record: "
                               f"it needs {t.when}.", {"__all__": [f"Condition not met: {t.when}"]})
    values = body.get("values") or {}
    _writable_values(conn, catalog, principal, rt, row, values, machine)
    submitter = own_approval.submitter if own_approval is not None else None
    if own_approval is not None:  # leaving the approval's state ends it
        status = "withdrawn" if t.by == "submitter" or t.name == "withdraw" else "cancelled"
        approvals.bump(run, own_approval)
        approvals.finish(run, own_approval, status, body.get("comment"), action=status if status != "cancelled"
                         else t.name)
    target = t.to
    if t.approval:
        chain = machine.chains[t.approval]
        run.record.update({k: v for k, v in values.items()})
        snapshot = jsonable(read_record(conn, rt, row))
        snapshot.update(jsonable(dict(values)))
        new, outcome = approvals.start(run, chain, t.name, str(run.record.get(machine.state_field)),
                                       title_of(rt, run.record), snapshot, approvals.parse_choices(body))
        submitter = principal.user_id
        if outcome == "approved":
            approvals.finish(run, new, "approved")
            target = chain.on_approve or t.to
        if body.get("comment"):
            conn.execute(approvals.E.update().where(approvals.E.c.approval_id == new.id,
                                                    approvals.E.c.action.in_(("submit", "resubmit")))
                         .values(comment=body["comment"]))
    return enter(run, row, target, t.name, values, submitter, engine_values)


def _decide(conn: sa.Connection, catalog: Catalog, principal: Principal, rt: EntityRuntime, machine: Machine,
            row: Mapping[str, Any], approval: Any, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    run = make_run(conn, catalog, principal, rt, machine, row)
    chain = machine.chains[approval.chain]
    if name == "withdraw":
        if principal.user_id != approval.submitter:
            raise PermissionDenied("Only the submitter may withdraw this approval.")
        approvals.bump(run, approval)
        approvals.finish(run, approval, "withdrawn", body.get("comment"), action="withdraw")
        return enter(run, row, approval.from_state or machine.initial, "withdraw", {}, approval.submitter)
    values = body.get("values") or {}
    if values:
        step = chain.step(approval.step)
        approvals.my_task(run, approval)
        allowed = set(step.editable_fields if step else ())
        extra = sorted(set(values) - allowed)
        if extra:
            raise PermissionDenied("At this step you may change only: " + (", ".join(sorted(allowed)) or "nothing") + ".",
                                   {k: ["Not editable at this approval step."] for k in extra})
        row = write_values(run, row, values)
    outcome = approvals.decide(run, approval, chain, name, body)
    if outcome is None:
        return present_for(conn, catalog, principal, rt, run.record_id)
    approvals.finish(run, approval, outcome)
    target = chain.on_approve if outcome == "approved" else (chain.on_reject or approval.from_state)
    return enter(run, row, target or machine.initial, name, {}, approval.submitter)
