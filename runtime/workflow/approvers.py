"""Who decides: approver specs (METADATA.md "Workflow") resolved to active users.

Resolution happens when a step becomes current (and for previews), from the org chart
(`runtime/org.py`: managers, department heads), the users' roles and the record itself,
so an org change made while a record waits applies to the steps still to come. The
submitter is the reference point for `manager` and `department_head`.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import sqlalchemy as sa

from .. import systables
from ..org import OrgChart, load_org


@dataclass
class Directory:
    """What resolving approvers reads from the database, loaded once per request."""

    conn: sa.Connection
    _org: OrgChart | None = None
    _active: dict[int, bool] | None = None

    @property
    def org(self) -> OrgChart:
        if self._org is None:
            self._org = load_org(self.conn)
        return self._org

    def active(self, ids: Iterable[int]) -> list[int]:
        """The active users among `ids`, in order, once each."""
        ids = list(dict.fromkeys(i for i in ids if isinstance(i, int) and not isinstance(i, bool)))
        if not ids:
            return []
        if self._active is None:
            u = systables.users
            self._active = dict(self.conn.execute(sa.select(u.c.id, u.c.active)).all())
        return [i for i in ids if self._active.get(i)]

    def with_role(self, role: str) -> list[int]:
        r = systables.user_roles
        return self.active(self.conn.execute(sa.select(r.c.user_id).where(r.c.role == role)
                                             .order_by(r.c.user_id)).scalars())

    def roles_of(self, user_id: int) -> set[str]:
        r = systables.user_roles
        return set(self.conn.execute(sa.select(r.c.role).where(r.c.user_id == user_id)).scalars())

    def by_username(self, names: Sequence[Any]) -> list[int]:
        u = systables.users
        wanted = [n for n in names if isinstance(n, str)]
        found = dict(self.conn.execute(sa.select(u.c.username, u.c.id).where(u.c.username.in_(wanted))).all()) \
            if wanted else {}
        return [found.get(n) if isinstance(n, str) else n for n in names if not isinstance(n, str) or n in found]

    def admins(self) -> list[int]:
        u = systables.users
        return self.active(self.conn.execute(sa.select(u.c.id).where(u.c.is_admin.is_(True)).order_by(u.c.id))
                           .scalars())

    def names(self, ids: Iterable[int | None]) -> dict[int, str]:
        ids = {i for i in ids if i is not None}
        if not ids:
            return {}
        u = systables.users
        return dict(self.conn.execute(sa.select(u.c.id, u.c.display_name).where(u.c.id.in_(ids))).all())

    def delegate_of(self, user_id: int, today: dt.date) -> int | None:
        """Who stands in for `user_id` today (their active delegation), if anyone."""
        d = systables.delegations
        row = self.conn.execute(sa.select(d.c.to_user).where(
            d.c.from_user == user_id, d.c.revoked_at.is_(None), d.c.starts_on <= today, d.c.ends_on >= today)
            .order_by(d.c.id.desc()).limit(1)).first()
        if row is None:
            return None
        active = self.active([row.to_user])
        return active[0] if active else None


def _managers(directory: Directory, spec: Mapping[str, Any], submitter: int) -> list[int]:
    """`levels` n alone: the n-th manager up. With `consecutive` (or `until_role`): every
    manager from the direct one up to level n, or up to the first holding `until_role`."""
    org = directory.org
    levels = int(spec.get("levels") or 1)
    until = spec.get("until_role")
    if until:
        chain = org.managers_up(submitter, 20)
        out = []
        for m in chain:
            out.append(m)
            if until in directory.roles_of(m):
                break
        return out[:levels] if spec.get("levels") else out
    chain = org.managers_up(submitter, levels)
    if spec.get("consecutive"):
        return chain
    return chain[levels - 1:levels] if len(chain) >= levels else []


def _department_head(directory: Directory, spec: Mapping[str, Any], submitter: int) -> list[int]:
    """The head of the submitter's department (`levels` n: n-1 departments further up);
    a submitter who heads their own department goes to the parent's head."""
    org = directory.org
    dept = org.department_of.get(submitter)
    if dept is not None and org.head_of.get(dept) == submitter:
        dept = org.parent_of.get(dept)
    for _ in range(int(spec.get("levels") or 1) - 1):
        if dept is None:
            break
        dept = org.parent_of.get(dept)
    head = org.head_of.get(dept) if dept is not None else None
    return [head] if head is not None else []


def resolve(directory: Directory, specs: Iterable[Mapping[str, Any]], *, submitter: int,
            record: Mapping[str, Any], choices: Sequence[int] = ()) -> list[int]:
    """The active users a list of approver specs names, in order, once each."""
    out: list[int] = []
    for spec in specs:
        kind = spec.get("type")
        if kind == "user":
            out += directory.by_username(list(spec.get("users") or ()))
        elif kind == "role":
            out += directory.with_role(spec["role"])
        elif kind == "manager":
            out += _managers(directory, spec, submitter)
        elif kind == "department_head":
            out += _department_head(directory, spec, submitter)
        elif kind == "submitter_choice":
            out += list(choices)
        elif kind == "field":
            value = record.get(spec["field"])
            if isinstance(value, int):
                out.append(value)
    return directory.active(out)


def candidates(directory: Directory, specs: Iterable[Mapping[str, Any]]) -> list[int] | None:
    """For a `submitter_choice` step: the users the submitter may pick from (None: anyone)."""
    named: list[Any] = []
    for spec in specs:
        if spec.get("type") == "submitter_choice" and spec.get("users"):
            named += list(spec["users"])
    return directory.active(directory.by_username(named)) if named else None
