"""What the screens read: a record's approvals and trail, the inbox, the transitions a
user may fire now, and the path a (draft) record would take if submitted.

Visibility: a record's approvals are shown to whoever may read the record and to the
people involved in them (submitter, approvers, cc), so an approver from another
department sees what they are asked to approve — the snapshot, as their roles' field
rules allow.
"""
from __future__ import annotations

from typing import Any, Mapping

import sqlalchemy as sa

from .. import systables
from ..access import access_for
from ..catalog import Catalog
from ..clock import utcnow
from ..errors import BadRequest, NotFound
from ..principal import Principal
from ..record_reads import fetch_row, present, python_record
from ..record_writes import FieldErrors, prepare
from ..coercion import utc
from . import approvals
from .approvals import A, E, OPEN, T, truthy
from .approvers import Directory, resolve
from .engine import DECIDE, _readable, involved, make_run, may_fire
from .machine import Machine, machine_named, machines_of

BOXES = ("pending", "submitted", "decided")


def _iso(value: Any) -> str | None:
    return utc(value).isoformat() if value is not None else None


def _visible(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str, record_id: int) -> Any:
    rt = catalog.get(entity)
    if not machines_of(catalog, entity):
        raise NotFound(f"{entity} has no workflow.")
    row = fetch_row(conn, rt, record_id)
    if not _readable(conn, catalog, principal, rt, record_id) and not involved(conn, principal, entity, record_id):
        raise NotFound(f"No {entity} with id {record_id}.")
    return rt, row


def _label(machine: Machine | None, state: Any, language: str) -> Any:
    s = machine.state(state) if machine else None
    return s.label.get(language) if s else state


# ------------------------------------------------------------------ a record's approvals

def record_approvals(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str,
                     record_id: int) -> dict[str, Any]:
    """Every approval of the record, newest first, each with its steps, tasks, trail and
    snapshot; `current` is the pending one (or null), with who is pending."""
    rt, row = _visible(conn, catalog, principal, entity, record_id)
    access = access_for(catalog.mset, principal, rt.entity)
    lang = principal.language
    rows = list(conn.execute(sa.select(A).where(A.c.entity == entity, A.c.record_id == record_id)
                             .order_by(A.c.id.desc())))
    ids = [r.id for r in rows]
    tasks = list(conn.execute(sa.select(T).where(T.c.approval_id.in_(ids)).order_by(T.c.id))) if ids else []
    events = list(conn.execute(sa.select(E).where(E.c.entity == entity, E.c.record_id == record_id)
                               .order_by(E.c.id)))
    names = Directory(conn).names([t.user_id for t in tasks] + [t.on_behalf_of for t in tasks]
                                  + [e.by for e in events] + [r.submitter for r in rows]
                                  + [u for e in events for u in ((e.detail or {}).get("users") or [])]
                                  + [(e.detail or {}).get("to_user") for e in events])
    items = []
    for r in rows:
        machine = machine_named(catalog, entity, r.workflow)
        chain = machine.chains.get(r.chain) if machine else None
        mine = [t for t in tasks if t.approval_id == r.id]
        steps = []
        for step in (chain.steps if chain else ()):
            st = [t for t in mine if t.step == step.name]
            steps.append({"name": step.name, "label": step.label.get(lang), "mode": step.mode,
                          "min_approvals": step.min_approvals, "editable_fields": list(step.editable_fields),
                          "current": r.status == "pending" and r.step == step.name,
                          "tasks": [_task(t, names) for t in st]})
        pending = [_task(t, names) for t in mine if t.status == "pending" and t.step == r.step]
        me = next((t for t in mine if t.user_id == principal.user_id and t.status == "pending"), None)
        step = chain.step(r.step) if chain else None
        items.append({
            "id": r.id, "workflow": r.workflow, "chain": r.chain,
            "label": chain.label.get(lang) if chain else r.chain, "transition": r.transition, "status": r.status,
            "submitter": r.submitter, "submitter_name": names.get(r.submitter), "submitted_at": _iso(r.submitted_at),
            "finished_at": _iso(r.finished_at), "from_state": r.from_state, "step": r.step,
            "step_label": step.label.get(lang) if step else r.step, "steps": steps, "pending": pending,
            "my_task": _task(me, names) if me else None,
            "my_editable_fields": list(step.editable_fields) if me and step else [],
            "snapshot": present(dict(r.snapshot), access),
            "trail": [_event(e, names) for e in events if e.approval_id == r.id],
        })
    machine = machines_of(catalog, entity)[0]
    current = next((i for i in items if i["status"] == "pending"), None)
    state = python_record(rt, row).get(machine.state_field)
    return {"entity": entity, "record_id": record_id, "state": state, "state_label": _label(machine, state, lang),
            "current": current, "items": items, "trail": [_event(e, names) for e in events]}


def _task(t: Any, names: Mapping[int, str]) -> dict[str, Any]:
    return {"id": t.id, "step": t.step, "round": t.round, "kind": t.kind, "user": t.user_id,
            "user_name": names.get(t.user_id), "on_behalf_of": t.on_behalf_of,
            "on_behalf_of_name": names.get(t.on_behalf_of) if t.on_behalf_of else None,
            "status": t.status, "decided_at": _iso(t.decided_at), "comment": t.comment}


def _event(e: Any, names: Mapping[int, str]) -> dict[str, Any]:
    return {"id": e.id, "approval": e.approval_id, "at": _iso(e.at), "by": e.by, "by_name": names.get(e.by),
            "action": e.action, "step": e.step, "comment": e.comment, "detail": e.detail or {}}


# ------------------------------------------------------------------ the inbox

def inbox(conn: sa.Connection, catalog: Catalog, principal: Principal, box: str = "pending", page: int = 1,
          page_size: int = 50) -> dict[str, Any]:
    """待我审批 (pending), 我发起的 (submitted), 我已审批 (decided), with counts for all three."""
    if box not in BOXES:
        raise BadRequest(f"box must be one of {', '.join(BOXES)}.")
    uid = principal.user_id
    pending_q = sa.select(T.c.id.label("task"), A).select_from(T.join(A, A.c.id == T.c.approval_id)).where(
        T.c.user_id == uid, T.c.status == "pending", A.c.status == "pending")
    decided_q = sa.select(T.c.id.label("task"), A).select_from(T.join(A, A.c.id == T.c.approval_id)).where(
        T.c.user_id == uid, T.c.status.in_(("approved", "rejected", "reassigned")))
    submitted_q = sa.select(sa.null().label("task"), A).where(A.c.submitter == uid)
    queries = {"pending": pending_q, "submitted": submitted_q, "decided": decided_q}
    counts = {name: conn.execute(sa.select(sa.func.count()).select_from(q.subquery())).scalar_one()
              for name, q in queries.items()}
    order = {"pending": A.c.submitted_at, "submitted": A.c.id.desc(), "decided": T.c.decided_at.desc()}[box]
    rows = list(conn.execute(queries[box].order_by(order, A.c.id).limit(page_size).offset((page - 1) * page_size)))
    task_ids = [r.task for r in rows if r.task is not None]
    tasks = {t.id: t for t in conn.execute(sa.select(T).where(T.c.id.in_(task_ids)))} if task_ids else {}
    pending_people: dict[int, list[int]] = {}
    ids = [r.id for r in rows]
    if ids:
        for t in conn.execute(sa.select(T.c.approval_id, T.c.user_id).where(
                T.c.approval_id.in_(ids), T.c.status == "pending")):
            pending_people.setdefault(t.approval_id, []).append(t.user_id)
    names = Directory(conn).names([r.submitter for r in rows] + [u for v in pending_people.values() for u in v])
    lang = principal.language
    items = []
    for r in rows:
        machine = machine_named(catalog, r.entity, r.workflow)
        chain = machine.chains.get(r.chain) if machine else None
        step = chain.step(r.step) if chain else None
        entity = catalog.entities.get(r.entity)
        task = tasks.get(r.task) if r.task is not None else None
        items.append({
            "approval": r.id, "task": r.task, "entity": r.entity,
            "entity_label": entity.entity.label.get(lang) if entity else r.entity,
            "record_id": r.record_id, "title": r.title, "workflow": r.workflow, "chain": r.chain,
            "label": chain.label.get(lang) if chain else r.chain, "status": r.status,
            "step": r.step, "step_label": step.label.get(lang) if step else r.step,
            "submitter": r.submitter, "submitter_name": names.get(r.submitter),
            "submitted_at": _iso(r.submitted_at), "finished_at": _iso(r.finished_at),
            "pending": [{"user": u, "user_name": names.get(u)} for u in pending_people.get(r.id, [])],
            "my_decision": task.status if task is not None and box == "decided" else None,
            "decided_at": _iso(task.decided_at) if task is not None else None,
            "on_behalf_of": task.on_behalf_of if task is not None else None,
            "link": f"/r/{r.entity}/{r.record_id}",
        })
    return {"items": items, "total": counts[box], "page": page, "page_size": page_size, "box": box,
            "counts": counts}


def pending_count(conn: sa.Connection, principal: Principal) -> int:
    """How many decisions wait for the principal (the 待我审批 count, without the page)."""
    if principal.user_id is None:
        return 0
    return conn.execute(sa.select(sa.func.count()).select_from(T.join(A, A.c.id == T.c.approval_id)).where(
        T.c.user_id == principal.user_id, T.c.status == "pending", A.c.status == "pending")).scalar_one()


# ------------------------------------------------------------------ what may I do now

def available(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str,
              record_id: int) -> dict[str, Any]:
    """The transitions and decisions the principal may fire on the record right now."""
    rt, row = _visible(conn, catalog, principal, entity, record_id)
    lang = principal.language
    current = python_record(rt, row)
    approval = approvals.open_approval(conn, entity, record_id, lock=False)
    readable = _readable(conn, catalog, principal, rt, record_id)
    items: list[dict[str, Any]] = []
    workflows = []
    for machine in machines_of(catalog, entity):
        state = current.get(machine.state_field)
        s = machine.state(state)
        workflows.append({"workflow": machine.name, "state_field": machine.state_field, "state": state,
                          "state_label": _label(machine, state, lang), "locked": bool(s and s.locked),
                          "final": bool(s and s.final)})
        if not readable:
            continue
        own = approval if approval is not None and approval.workflow == machine.name else None
        for t in machine.transitions_from(state):
            if may_fire(conn, catalog, principal, rt, machine, t, row, own) is None and truthy(t.when, current):
                items.append({"name": t.name, "label": t.label.get(lang), "kind": "transition", "to": t.to,
                              "to_label": _label(machine, t.to, lang), "workflow": machine.name,
                              "approval": t.approval, "choose_approvers": _choice_steps(machine, t, current, lang)})
    if approval is not None:
        machine = machine_named(catalog, entity, approval.workflow)
        chain = machine.chains.get(approval.chain) if machine else None
        mine = conn.execute(sa.select(T).where(T.c.approval_id == approval.id, T.c.user_id == principal.user_id,
                                               T.c.status == "pending", T.c.step == approval.step)).first()
        if mine is not None and chain is not None:
            step = chain.step(approval.step)
            earlier = [s.name for s in chain.steps[:chain.index(approval.step)]]
            for name in DECIDE:
                items.append({"name": name, "label": _DECISION_LABELS[name].get(lang, name), "kind": "decision",
                              "workflow": machine.name, "step": approval.step,
                              **({"reject_to": earlier} if name == "reject" else {}),
                              **({"editable_fields": list(step.editable_fields)} if step and name == "approve" else {})})
        declared = machine is not None and machine.transition("withdraw", current.get(machine.state_field))
        if principal.user_id == approval.submitter and not declared:
            items.append({"name": "withdraw", "label": _DECISION_LABELS["withdraw"].get(lang), "kind": "decision",
                          "workflow": approval.workflow, "to": approval.from_state})
    return {"entity": entity, "record_id": record_id, "version": row["version"], "workflows": workflows,
            "approval": approval.id if approval is not None else None, "items": items}


_DECISION_LABELS = {
    "approve": {"en": "Approve", "zh": "同意"}, "reject": {"en": "Reject", "zh": "驳回"},
    "reassign": {"en": "Reassign", "zh": "转交"}, "add_signer": {"en": "Add signer", "zh": "加签"},
    "withdraw": {"en": "Withdraw", "zh": "撤回"},
}


def _choice_steps(machine: Machine, t: Any, record: Mapping[str, Any], lang: str) -> list[dict[str, Any]]:
    chain = machine.chains.get(t.approval) if t.approval else None
    return [{"step": s.name, "label": s.label.get(lang)} for s in (chain.steps if chain else ())
            if any(a.get("type") == "submitter_choice" for a in s.approvers) and truthy(s.when, record)]


# ------------------------------------------------------------------ simulation

def preview(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str, record_id: int | None,
            body: Any) -> dict[str, Any]:
    """The path an approval would take for the record (with `record` values from the body
    laid over it — or a draft record when there is no id): steps, people, skipped steps.
    Nothing is written."""
    rt = catalog.get(entity)
    body = body or {}
    if not isinstance(body, Mapping):
        raise BadRequest("Expected a JSON object: {\"record\": {...}, \"transition\": \"submit\", \"approvers\": {...}}.")
    draft = body.get("record") or {}
    if not isinstance(draft, Mapping):
        raise BadRequest("record must be an object of field values.")
    machines = machines_of(catalog, entity)
    if record_id is not None:
        rt, row = _visible(conn, catalog, principal, entity, record_id)
        children = {name: list(conn.execute(sa.select(c.table).where(c.table.c.parent_id == record_id)
                                            .order_by(c.table.c.idx, c.table.c.id)).mappings())
                    for name, c in rt.children.items()}
    else:
        row, children = None, {}
    errors = FieldErrors()
    clean = {k: v for k, v in draft.items() if not any(k == m.state_field for m in machines)}
    values, _ = prepare(conn, catalog, rt, principal, clean, row, children, utcnow(), errors)
    if row is not None:
        values.setdefault("id", row["id"])
    wanted = body.get("transition")
    options = [(m, t) for m in machines for t in m.transitions if t.approval and (wanted is None or t.name == wanted)]
    state_of = (lambda m: values.get(m.state_field)) if row is not None else (lambda m: m.initial)
    found = next(((m, t) for m, t in options if state_of(m) in t.sources), options[0] if options else None)
    if found is None:
        raise NotFound(f"{entity} has no approval transition" + (f" named '{wanted}'." if wanted else "."))
    machine, t = found
    chain = machine.chains[t.approval]
    choices = approvals.parse_choices(body)
    lang = principal.language
    steps = chain_path(Directory(conn), chain, values, principal.user_id, choices, lang)
    return {"entity": entity, "record_id": record_id, "workflow": machine.name, "transition": t.name,
            "chain": chain.name, "label": chain.label.get(lang), "steps": steps,
            "problems": errors.fields}


def chain_path(directory: Directory, chain: Any, values: Mapping[str, Any], submitter: int | None,
               choices: Mapping[str, Any], lang: str) -> list[dict[str, Any]]:
    """Each step of `chain` for a record with `values` submitted by `submitter`: whether it
    runs, is skipped (and why), who decides and who is copied. Reads the org chart and
    roles only; the designer's simulation runs it on draft workflows too."""
    steps = []
    for step in chain.steps:
        entry: dict[str, Any] = {"name": step.name, "label": step.label.get(lang), "mode": step.mode,
                                 "min_approvals": step.min_approvals, "status": "will_run", "approvers": [],
                                 "cc": [], "reason": None}
        if not truthy(step.when, values):
            entry.update(status="skipped", reason="condition")
            steps.append(entry)
            continue
        people = resolve(directory, step.approvers, submitter=submitter or 0, record=values,
                         choices=choices.get(step.name) or ())
        if any(a.get("type") == "submitter_choice" for a in step.approvers) and not choices.get(step.name):
            entry["reason"] = "submitter_choice"
        if step.skip_submitter and submitter in people:
            people = [p for p in people if p != submitter]
            if not people:
                entry.update(status="skipped", reason="submitter")
                steps.append(entry)
                continue
        if not people and entry["reason"] != "submitter_choice":
            if step.on_empty == "escalate" or (step.on_empty is None and chain.fallback_approvers):
                people = resolve(directory, chain.fallback_approvers, submitter=submitter or 0, record=values) \
                    or directory.admins()
                entry.update(status="escalated", reason="no_approver")
            else:
                entry.update(status="auto_approved", reason="no_approver")
        today = make_today()
        shown = []
        for p in people:
            delegate = directory.delegate_of(p, today)
            shown.append({"user": delegate or p, "on_behalf_of": p if delegate else None})
        cc = resolve(directory, step.cc, submitter=submitter or 0, record=values) if step.cc else []
        who = directory.names([s["user"] for s in shown] + [s["on_behalf_of"] for s in shown] + cc)
        entry["approvers"] = [{**s, "user_name": who.get(s["user"]),
                               "on_behalf_of_name": who.get(s["on_behalf_of"]) if s["on_behalf_of"] else None}
                              for s in shown]
        entry["cc"] = [{"user": u, "user_name": who.get(u)} for u in cc]
        steps.append(entry)
    return steps


def make_today() -> Any:
    from metacrm.metadata.expressions import compile_expression
    return compile_expression("today()").evaluate()
