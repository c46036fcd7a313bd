"""Approval chains: one `mc_approvals` row per submission, tasks for the people deciding.

A submission walks the chain's steps. A step becomes current ("activated"): its `when`
is checked on the record as it is now, its approvers resolved (delegations applied, the
submitter skipped when the step says so), an empty step approved or escalated — never
stuck — and its cc recipients notified. Decisions close tasks; after each one the step's
mode (`any`, `all`, `ratio`) says whether the step is approved, rejected or still open.

Callers (engine.py) hold the record's row lock and the approval's, and bump the
approval's `version` with every change, so two deciders can't both win.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import sqlalchemy as sa

from metacrm.metadata.expressions import ExpressionError, compile_expression

from .. import systables
from ..catalog import Catalog, EntityRuntime
from ..errors import BadRequest, Conflict, PermissionDenied, ValidationFailed
from ..notifications import notify
from ..principal import Principal
from .approvers import Directory, candidates, resolve
from .machine import Chain, Machine, Step

A, T, E = systables.approvals, systables.approval_tasks, systables.approval_events
OPEN = ("pending", "waiting", "queued")
DECIDED = ("approved", "rejected", "reassigned")


@dataclass
class Run:
    """One firing: who acts, on what, with what they read from the database."""

    conn: sa.Connection
    catalog: Catalog
    principal: Principal
    rt: EntityRuntime
    machine: Machine
    record_id: int
    record: dict[str, Any]  # python values of the record (what expressions see)
    directory: Directory
    now: dt.datetime
    today: dt.date
    notified: list[int] = field(default_factory=list)

    @property
    def link(self) -> str:
        return f"/r/{self.rt.name}/{self.record_id}"


def truthy(expression: str | None, values: Mapping[str, Any]) -> bool:
    if not expression:
        return True
    try:
        return bool(compile_expression(expression).evaluate(values))
    except ExpressionError:
        return False


# ------------------------------------------------------------------ rows

def open_approval(conn: sa.Connection, entity: str, record_id: int, lock: bool = True) -> Any:
    """The record's pending approval (locked on PostgreSQL unless `lock` is false), or None."""
    stmt = sa.select(A).where(A.c.entity == entity, A.c.record_id == record_id, A.c.status == "pending")
    if lock and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return conn.execute(stmt.order_by(A.c.id.desc()).limit(1)).first()


def last_approval(conn: sa.Connection, entity: str, record_id: int, workflow: str | None = None) -> Any:
    stmt = sa.select(A).where(A.c.entity == entity, A.c.record_id == record_id)
    if workflow:
        stmt = stmt.where(A.c.workflow == workflow)
    return conn.execute(stmt.order_by(A.c.id.desc()).limit(1)).first()


def bump(run: Run, approval: Any, **values: Any) -> None:
    """Change the approval row, refusing (409) if someone else changed it meanwhile."""
    result = run.conn.execute(A.update().where(A.c.id == approval.id, A.c.version == approval.version)
                              .values(version=approval.version + 1, **values))
    if result.rowcount != 1:
        raise Conflict("This approval was changed by someone else meanwhile. Reload it and try again.")


def event(run: Run, approval_id: int, action: str, step: str | None = None, comment: str | None = None,
          by: int | None | str = "me", **detail: Any) -> None:
    run.conn.execute(E.insert().values(
        approval_id=approval_id, entity=run.rt.name, record_id=run.record_id, at=run.now,
        by=run.principal.user_id if by == "me" else by, action=action, step=step, comment=comment,
        detail=detail or None))


def _tasks(run: Run, approval_id: int, step: str, round_: int | None = None) -> list[Any]:
    stmt = sa.select(T).where(T.c.approval_id == approval_id, T.c.step == step, T.c.kind != "cc")
    if round_ is not None:
        stmt = stmt.where(T.c.round == round_)
    return list(run.conn.execute(stmt.order_by(T.c.seq, T.c.id)))


def _title(run: Run, approval: Any) -> dict[str, str]:
    return {"en": approval.title or f"{run.rt.name} #{run.record_id}", "zh": approval.title or f"{run.rt.name} #{run.record_id}"}


def _tell(run: Run, users: Sequence[int], kind: str, en: str, zh: str, body: str | None = None) -> None:
    notify(run.conn, users, kind=kind, title={"en": en, "zh": zh}, body=body, entity=run.rt.name,
           record_id=run.record_id, link=run.link)
    run.notified += [u for u in users if u is not None]


# ------------------------------------------------------------------ submitting

def parse_choices(body: Mapping[str, Any]) -> dict[str, list[int]]:
    """`{"approvers": {"<step>": [user ids]}}`: the submitter's picks for `submitter_choice` steps."""
    raw = body.get("approvers") or {}
    if not isinstance(raw, Mapping) or not all(
            isinstance(v, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in v) for v in raw.values()):
        raise BadRequest('approvers must be an object: {"<step name>": [user ids]}.')
    return {str(k): list(dict.fromkeys(v)) for k, v in raw.items()}


def check_choices(run: Run, chain: Chain, choices: Mapping[str, list[int]], submitter: int) -> None:
    """Every submitter_choice step that will run has a valid pick (422 naming the step)."""
    errors: dict[str, list[str]] = {}
    for name in choices:
        if chain.step(name) is None:
            errors[f"approvers.{name}"] = [f"No step named '{name}' in this approval."]
    for step in chain.steps:
        if not any(a.get("type") == "submitter_choice" for a in step.approvers) or not truthy(step.when, run.record):
            continue
        picked = choices.get(step.name) or []
        allowed = candidates(run.directory, step.approvers)
        if not picked:
            errors[f"approvers.{step.name}"] = [f"Choose the approver(s) of step '{step.label.get(run.principal.language)}'."]
        elif len(run.directory.active(picked)) != len(picked):
            errors[f"approvers.{step.name}"] = ["Not an active user: " + ", ".join(
                str(i) for i in picked if i not in run.directory.active(picked)) + "."]
        elif allowed is not None and set(picked) - set(allowed):
            errors[f"approvers.{step.name}"] = ["Not among this step's candidates: " + ", ".join(
                str(i) for i in picked if i not in allowed) + "."]
    if errors:
        first = next(iter(errors.items()))
        raise ValidationFailed(f"{first[0]}: {first[1][0]}", errors)


def start(run: Run, chain: Chain, transition: str, from_state: str, title: str | None,
          snapshot: Mapping[str, Any], choices: Mapping[str, list[int]]) -> tuple[Any, str | None]:
    """Open an approval for the record; (approval row, "approved" when no step needed anyone)."""
    submitter = run.principal.user_id
    if submitter is None:
        raise BadRequest("Approvals need a submitting user.")
    check_choices(run, chain, choices, submitter)
    previous = last_approval(run.conn, run.rt.name, run.record_id, run.machine.name)
    first = 0
    resumed = previous is not None and previous.status == "rejected" and previous.chain == chain.name
    if resumed and chain.restart_on_resubmit == "rejecting_step" and chain.index(previous.step) > 0:
        first = chain.index(previous.step)
    approval_id = run.conn.execute(A.insert().values(
        entity=run.rt.name, record_id=run.record_id, workflow=run.machine.name, chain=chain.name,
        transition=transition, status="pending", from_state=from_state, step=None, title=(title or "")[:500] or None,
        submitter=submitter, submitted_at=run.now, choices=dict(choices) or None, snapshot=dict(snapshot),
        version=1).returning(A.c.id)).scalar_one()
    event(run, approval_id, "resubmit" if resumed else "submit", detail_from=from_state)
    for step in chain.steps[:first]:
        event(run, approval_id, "skip", step.name, by=None, reason="approved_before")
    approval = run.conn.execute(sa.select(A).where(A.c.id == approval_id)).one()
    return approval, activate(run, approval, chain, first)


# ------------------------------------------------------------------ steps

def _needed(step: Step, n: int) -> int:
    if step.mode == "all" or step.ordered:
        return n
    if step.mode == "ratio" and step.min_approvals is not None:
        m = step.min_approvals
        return min(n, max(1, math.ceil(m if m >= 1 else m * n)))
    return 1


def activate(run: Run, approval: Any, chain: Chain, index: int, forced: bool = False) -> str | None:
    """Make step `index` current — or the next step that needs someone; "approved" when
    the chain has no step left. Writes the tasks, notifies approvers and cc recipients."""
    submitter = approval.submitter
    choices = approval.choices or {}
    while index < len(chain.steps):
        step = chain.steps[index]
        if not forced and not truthy(step.when, run.record):
            event(run, approval.id, "skip", step.name, by=None, reason="condition")
            index += 1
            continue
        forced = False
        people = resolve(run.directory, step.approvers, submitter=submitter, record=run.record,
                         choices=choices.get(step.name) or ())
        if step.skip_submitter and submitter in people:
            people = [p for p in people if p != submitter]
            if not people:
                event(run, approval.id, "skip", step.name, by=None, reason="submitter")
                index += 1
                continue
        if not people:
            escalate = step.on_empty == "escalate" or (step.on_empty is None and chain.fallback_approvers)
            if escalate:
                people = resolve(run.directory, chain.fallback_approvers, submitter=submitter, record=run.record) \
                    or run.directory.admins()
                people = [p for p in people if p != submitter] or people
            if not people:
                event(run, approval.id, "auto_approve", step.name, by=None, reason="no_approver")
                index += 1
                continue
            event(run, approval.id, "escalate", step.name, by=None, users=people)
        _open_step(run, approval, step, people)
        return None
    return "approved"


def _open_step(run: Run, approval: Any, step: Step, people: list[int]) -> None:
    round_ = (run.conn.execute(sa.select(sa.func.max(T.c.round)).where(
        T.c.approval_id == approval.id, T.c.step == step.name)).scalar() or 0) + 1
    rows, pending = [], []
    for seq, user in enumerate(people):
        delegate = run.directory.delegate_of(user, run.today)
        status = "queued" if step.ordered and seq > 0 else "pending"
        rows.append({"approval_id": approval.id, "step": step.name, "round": round_, "seq": seq, "kind": "approver",
                     "user_id": delegate or user, "on_behalf_of": user if delegate else None, "status": status,
                     "created_at": run.now})
        if status == "pending":
            pending.append(delegate or user)
    cc = resolve(run.directory, step.cc, submitter=approval.submitter, record=run.record) if step.cc else []
    rows += [{"approval_id": approval.id, "step": step.name, "round": round_, "seq": 0, "kind": "cc", "user_id": u,
              "on_behalf_of": None, "status": "notified", "created_at": run.now} for u in cc]
    run.conn.execute(T.insert(), rows)
    run.conn.execute(A.update().where(A.c.id == approval.id).values(step=step.name))
    label = step.label
    _tell(run, pending, "approval_request", f"Approval needed: {_title(run, approval)['en']}",
          f"待审批：{_title(run, approval)['zh']}", f"{label.en} / {label.zh}")
    if cc:
        event(run, approval.id, "cc", step.name, by=None, users=cc)
        _tell(run, cc, "approval_cc", f"For your information: {_title(run, approval)['en']}",
              f"抄送：{_title(run, approval)['zh']}", f"{label.en} / {label.zh}")


def step_outcome(step: Step, tasks: Sequence[Any]) -> str | None:
    """"approved", "rejected" or None (still open) for the tasks of a step's current round."""
    own = [t for t in tasks if t.kind == "approver" and t.status != "reassigned" and t.status != "cancelled"]
    added = [t for t in tasks if t.kind in ("before", "after") and t.status not in ("reassigned", "cancelled")]
    if any(t.status == "rejected" for t in added):
        return "rejected"
    approvals = sum(t.status == "approved" for t in own)
    rejections = sum(t.status == "rejected" for t in own)
    still = sum(t.status in OPEN for t in own)
    needed = _needed(step, len(own))
    if step.mode == "ratio" and not step.ordered:
        if approvals + still < needed:
            return "rejected"
    elif rejections:
        return "rejected"
    if approvals >= needed and not any(t.status in OPEN for t in added):
        return "approved"
    return None


# ------------------------------------------------------------------ deciding

def my_task(run: Run, approval: Any, statuses: Sequence[str] = ("pending",)) -> Any:
    """The principal's open task in the current step; 409 when the step has moved on, 403 when
    they never had one."""
    uid = run.principal.user_id
    rows = [t for t in _tasks(run, approval.id, approval.step or "") if t.user_id == uid]
    task = next((t for t in reversed(rows) if t.status in statuses), None)
    if task is not None:
        return task
    if rows or _ever_had_task(run, approval.id, uid):
        raise Conflict("You have no decision pending on this approval (already decided, or waiting for "
                       "signers you added).", code_detail="not_pending")
    raise PermissionDenied("You are not an approver of this record's current step.")


def _ever_had_task(run: Run, approval_id: int, user_id: int | None) -> bool:
    return run.conn.execute(sa.select(T.c.id).where(T.c.approval_id == approval_id, T.c.user_id == user_id,
                                                    T.c.kind != "cc").limit(1)).first() is not None


def _close(run: Run, task: Any, status: str, comment: str | None, from_statuses: Sequence[str] = ("pending",)) -> None:
    result = run.conn.execute(T.update().where(T.c.id == task.id, T.c.status.in_(from_statuses))
                              .values(status=status, decided_at=run.now, comment=comment))
    if result.rowcount != 1:
        raise Conflict("This task was decided by someone else meanwhile. Reload and try again.")


def decide(run: Run, approval: Any, chain: Chain, decision: str, body: Mapping[str, Any]) -> str | None:
    """approve / reject / reassign / add_signer by a pending approver; the approval's
    outcome when it ends ("approved" / "rejected"), else None."""
    comment = body.get("comment")
    step = chain.step(approval.step)
    if step is None:
        raise Conflict("This approval's step no longer exists in the workflow; an administrator must withdraw it.")
    task = my_task(run, approval)
    bump(run, approval)
    if decision == "reassign":
        _reassign(run, approval, step, task, body, comment)
        return None
    if decision == "add_signer":
        return _add_signers(run, approval, chain, step, task, body, comment)
    if decision == "reject":
        _close(run, task, "rejected", comment)
        target = body.get("to_step")
        event(run, approval.id, "reject", step.name, comment, **({"to_step": target} if target else {}))
        if target is not None:
            index = chain.index(target) if isinstance(target, str) else -1
            if index < 0 or index >= chain.index(step.name):
                raise ValidationFailed("to_step must name an earlier step of this approval.",
                                       {"to_step": [f"Not an earlier step: {target!r} (earlier: " + ", ".join(
                                           s.name for s in chain.steps[:chain.index(step.name)]) + ")."]})
        return _after(run, approval, chain, step, target)
    _close(run, task, "approved", comment)
    event(run, approval.id, "approve", step.name, comment,
          **({"on_behalf_of": task.on_behalf_of} if task.on_behalf_of else {}))
    return _after(run, approval, chain, step)


def _after(run: Run, approval: Any, chain: Chain, step: Step, reject_to: str | None = None) -> str | None:
    tasks = _tasks(run, approval.id, step.name)
    round_ = max(t.round for t in tasks)
    tasks = [t for t in tasks if t.round == round_]
    _release_waiting(run, approval, tasks)
    tasks = _tasks(run, approval.id, step.name, round_)
    outcome = step_outcome(step, tasks)
    if outcome is None:
        if step.ordered and not any(t.status == "pending" for t in tasks):
            nxt = next((t for t in tasks if t.status == "queued"), None)
            if nxt is not None:
                run.conn.execute(T.update().where(T.c.id == nxt.id).values(status="pending"))
                _tell(run, [nxt.user_id], "approval_request", f"Approval needed: {_title(run, approval)['en']}",
                      f"待审批：{_title(run, approval)['zh']}", f"{step.label.en} / {step.label.zh}")
        return None
    run.conn.execute(T.update().where(T.c.approval_id == approval.id, T.c.step == step.name,
                                      T.c.status.in_(OPEN)).values(status="cancelled", decided_at=run.now))
    if outcome == "approved":
        return activate(run, approval, chain, chain.index(step.name) + 1)
    if reject_to is not None:
        event(run, approval.id, "returned", reject_to, by=None, from_step=step.name)
        return activate(run, approval, chain, chain.index(reject_to), forced=True)
    return "rejected"


def _release_waiting(run: Run, approval: Any, tasks: Sequence[Any]) -> None:
    """An approver who added signers before themselves decides once those have all approved."""
    for waiting in (t for t in tasks if t.status == "waiting"):
        added = [t for t in tasks if t.parent_id == waiting.id and t.kind == "before"]
        if added and all(t.status == "approved" for t in added if t.status != "reassigned"):
            run.conn.execute(T.update().where(T.c.id == waiting.id).values(status="pending"))
            _tell(run, [waiting.user_id], "approval_request", f"Your turn again: {_title(run, approval)['en']}",
                  f"加签已完成，请审批：{_title(run, approval)['zh']}")


def _user_list(run: Run, value: Any, key: str) -> list[int]:
    ids = value if isinstance(value, list) else [value]
    if not ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise BadRequest(f"{key} must be a user id (or a list of them).")
    active = run.directory.active(ids)
    missing = [i for i in ids if i not in active]
    if missing:
        raise ValidationFailed(f"{key}: no active user with id " + ", ".join(map(str, missing)) + ".",
                               {key: ["No active user with id " + ", ".join(map(str, missing)) + "."]})
    return active


def _reassign(run: Run, approval: Any, step: Step, task: Any, body: Mapping[str, Any], comment: str | None) -> None:
    """转交: the task goes to another person, who decides in the same place."""
    target = _user_list(run, body.get("to_user"), "to_user")
    if len(target) != 1:
        raise BadRequest("to_user must be one user id.")
    to = target[0]
    if to == run.principal.user_id:
        raise ValidationFailed("You can't reassign a task to yourself.", {"to_user": ["That is you."]})
    open_here = {t.user_id for t in _tasks(run, approval.id, step.name, task.round) if t.status in OPEN}
    if to in open_here:
        raise ValidationFailed("That person already has this step to decide.", {"to_user": ["Already an approver here."]})
    _close(run, task, "reassigned", comment)
    run.conn.execute(T.insert().values(approval_id=approval.id, step=step.name, round=task.round, seq=task.seq,
                                       kind=task.kind, user_id=to, on_behalf_of=None, parent_id=task.parent_id,
                                       status="pending", created_at=run.now))
    event(run, approval.id, "reassign", step.name, comment, to_user=to)
    _tell(run, [to], "approval_request", f"Approval reassigned to you: {_title(run, approval)['en']}",
          f"转交给您审批：{_title(run, approval)['zh']}")


def _add_signers(run: Run, approval: Any, chain: Chain, step: Step, task: Any, body: Mapping[str, Any],
                 comment: str | None) -> str | None:
    """加签: `before` — the added people approve first, then it is my turn again;
    `after` — I approve now and the step also waits for them."""
    position = body.get("position", "after")
    if position not in ("before", "after"):
        raise ValidationFailed("position must be 'before' or 'after'.", {"position": ["Expected before or after."]})
    users = _user_list(run, body.get("users"), "users")
    open_here = {t.user_id for t in _tasks(run, approval.id, step.name, task.round) if t.status in OPEN}
    clash = [u for u in users if u in open_here or u == run.principal.user_id]
    if clash:
        raise ValidationFailed("These people already decide this step: " + ", ".join(map(str, clash)) + ".",
                               {"users": ["Already deciding this step."]})
    _close(run, task, "waiting" if position == "before" else "approved", comment)
    run.conn.execute(T.insert(), [
        {"approval_id": approval.id, "step": step.name, "round": task.round, "seq": task.seq, "kind": position,
         "user_id": u, "on_behalf_of": None, "parent_id": task.id, "status": "pending", "created_at": run.now}
        for u in users])
    event(run, approval.id, "add_signer", step.name, comment, position=position, users=users)
    _tell(run, users, "approval_request", f"Approval needed (added signer): {_title(run, approval)['en']}",
          f"加签审批：{_title(run, approval)['zh']}")
    if position == "after":
        return _after(run, approval, chain, step)
    return None


# ------------------------------------------------------------------ ending

def finish(run: Run, approval: Any, status: str, comment: str | None = None, action: str | None = None) -> None:
    """Close the approval (approved / rejected / withdrawn / cancelled), its open tasks
    too, and tell the submitter (or, on a withdrawal, the people who were waiting)."""
    waiting = [t.user_id for t in run.conn.execute(sa.select(T.c.user_id).where(
        T.c.approval_id == approval.id, T.c.status.in_(OPEN)))]
    run.conn.execute(T.update().where(T.c.approval_id == approval.id, T.c.status.in_(OPEN))
                     .values(status="cancelled", decided_at=run.now))
    values: dict[str, Any] = {"status": status, "finished_at": run.now}
    if status != "rejected":
        values["step"] = approval.step if status != "approved" else None
    run.conn.execute(A.update().where(A.c.id == approval.id).values(**values))
    event(run, approval.id, action or status, approval.step if status != "approved" else None, comment,
          by="me" if action else None)
    title = _title(run, approval)
    if status in ("withdrawn", "cancelled"):
        _tell(run, waiting, "approval_withdrawn", f"Approval withdrawn: {title['en']}", f"审批已撤回：{title['zh']}")
    else:
        words = {"approved": ("approved", "已通过"), "rejected": ("rejected", "已驳回")}[status]
        _tell(run, [approval.submitter], "approval_result", f"Your approval request was {words[0]}: {title['en']}",
              f"您的审批{words[1]}：{title['zh']}", comment)
