"""The address book (通讯录): active colleagues grouped by department, with their phone,
e-mail, manager and roles, searchable by name, username, phone or e-mail.

Colleagues' work contact details are meant to be shared inside the company, so every
signed-in user sees the whole directory; deactivated accounts are left out.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from .. import systables

MAX_QUERY = 100


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def address_book(conn: sa.Connection, q: str | None = None) -> list[dict[str, Any]]:
    """[{"department": {id, name, path} or None, "people": [...]}], departments in the org
    tree's order (parents before children), people by name; without department last."""
    u, d, r = systables.users, systables.departments, systables.user_roles
    where = [u.c.active == sa.true()]
    text = (q or "").strip()[:MAX_QUERY]
    if text:
        like = f"%{_escape_like(text.lower())}%"
        where.append(sa.or_(*(sa.func.lower(c).like(like, escape="\\")
                              for c in (u.c.display_name, u.c.username, u.c.email, u.c.phone))))
    people = list(conn.execute(sa.select(u.c.id, u.c.username, u.c.display_name, u.c.email, u.c.phone,
                                         u.c.department_id, u.c.manager_id).where(*where)
                               .order_by(u.c.display_name, u.c.id)))
    departments = {row.id: row for row in conn.execute(sa.select(d.c.id, d.c.name, d.c.parent_id, d.c.position,
                                                                  d.c.head_id))}
    managers = {p.manager_id for p in people if p.manager_id}
    names = {row.id: row.display_name for row in conn.execute(
        sa.select(u.c.id, u.c.display_name).where(u.c.id.in_(managers)))} if managers else {}
    roles: dict[int, list[str]] = {}
    if people:
        for row in conn.execute(sa.select(r.c.user_id, r.c.role).where(r.c.user_id.in_([p.id for p in people]))
                                .order_by(r.c.role)):
            roles.setdefault(row.user_id, []).append(row.role)

    def path(dept_id: int) -> list[str]:
        out, seen = [], set()
        while dept_id is not None and dept_id in departments and dept_id not in seen:
            seen.add(dept_id)
            out.append(departments[dept_id].name)
            dept_id = departments[dept_id].parent_id
        return list(reversed(out))

    order: list[int] = []

    def walk(parent: int | None, seen: set[int]) -> None:
        for row in sorted((x for x in departments.values() if x.parent_id == parent), key=lambda x: (x.position, x.id)):
            if row.id not in seen:
                seen.add(row.id)
                order.append(row.id)
                walk(row.id, seen)

    walk(None, set())
    groups: dict[int | None, list[dict[str, Any]]] = {}
    for p in people:
        dept = p.department_id if p.department_id in departments else None
        head = departments[dept].head_id == p.id if dept is not None else False
        groups.setdefault(dept, []).append({
            "id": p.id, "username": p.username, "display_name": p.display_name, "email": p.email,
            "phone": p.phone, "manager": names.get(p.manager_id) if p.manager_id else None,
            "roles": roles.get(p.id, []), "head": head})
    out = []
    for dept_id in order + [None]:
        if dept_id in groups:
            members = sorted(groups[dept_id], key=lambda m: (not m["head"], m["display_name"]))
            out.append({"department": {"id": dept_id, "name": departments[dept_id].name,
                                       "path": " / ".join(path(dept_id))} if dept_id is not None else None,
                        "people": members})
    return out
