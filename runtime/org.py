"""The organisation: departments in a tree, users with managers, and who reports to whom.

Data scopes (`self_and_subordinates`, `department_and_children`) need the transitive
closure of the org chart. It is computed in Python from two small queries — an org of
thousands of people is a few milliseconds — and the result becomes `IN (...)` lists in
SQL, which every database plans well.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import sqlalchemy as sa

from . import systables


@dataclass(frozen=True)
class OrgChart:
    manager_of: dict[int, int | None] = field(default_factory=dict)
    department_of: dict[int, int | None] = field(default_factory=dict)
    parent_of: dict[int, int | None] = field(default_factory=dict)
    head_of: dict[int, int | None] = field(default_factory=dict)

    def _children(self) -> dict[int | None, list[int]]:
        children: dict[int | None, list[int]] = defaultdict(list)
        for dept, parent in self.parent_of.items():
            children[parent].append(dept)
        return children

    def child_departments(self, department_id: int) -> frozenset[int]:
        """A department and every department below it."""
        return frozenset(self._subtree(department_id, self._children(), set()))

    @staticmethod
    def _subtree(department_id: int, children: dict[int | None, list[int]], seen: set[int]) -> list[int]:
        """The departments from `department_id` down that are not in `seen` yet (added to it)."""
        out: list[int] = []
        stack = [department_id]
        while stack:
            d = stack.pop()
            if d in seen:
                continue
            seen.add(d)
            out.append(d)
            stack += children.get(d, [])
        return out

    def parent_departments(self, department_id: int) -> frozenset[int]:
        """A department and every department above it."""
        out: set[int] = set()
        current: int | None = department_id
        while current is not None and current not in out:
            out.add(current)
            current = self.parent_of.get(current)
        return frozenset(out)

    def subordinates(self, user_id: int) -> frozenset[int]:
        """Everyone below a user: their reports (transitively), and everyone in the
        departments they head and those departments' children (and their reports).

        Computed on every request (principal_for), so each person and each department is
        visited once: index the reports, members and headships first, then walk."""
        reports: dict[int | None, list[int]] = defaultdict(list)
        for user, manager in self.manager_of.items():
            reports[manager].append(user)
        members: dict[int | None, list[int]] = defaultdict(list)
        for user, dept in self.department_of.items():
            members[dept].append(user)
        headed: dict[int, list[int]] = defaultdict(list)
        for dept, head in self.head_of.items():
            if head is not None:
                headed[head].append(dept)
        children = self._children()
        out: set[int] = set()
        walked: set[int] = set()
        departments_seen: set[int] = set()
        stack = [user_id]
        while stack:
            u = stack.pop()
            if u in walked:
                continue
            walked.add(u)
            below = list(reports.get(u, []))
            for dept in headed.get(u, []):
                for d in self._subtree(dept, children, departments_seen):
                    below += members.get(d, [])
            for r in below:
                if r != user_id and r not in out:
                    out.add(r)
                    stack.append(r)
        return frozenset(out)

    def managers_up(self, user_id: int, levels: int) -> list[int]:
        """The chain of managers above a user, nearest first, at most `levels` long."""
        out: list[int] = []
        current = self.manager_of.get(user_id)
        while current is not None and len(out) < levels and current not in out:
            out.append(current)
            current = self.manager_of.get(current)
        return out


def load_org(conn: sa.Connection) -> OrgChart:
    u, d = systables.users, systables.departments
    users = conn.execute(sa.select(u.c.id, u.c.manager_id, u.c.department_id)).all()
    depts = conn.execute(sa.select(d.c.id, d.c.parent_id, d.c.head_id)).all()
    return OrgChart(
        manager_of={r.id: r.manager_id for r in users},
        department_of={r.id: r.department_id for r in users},
        parent_of={r.id: r.parent_id for r in depts},
        head_of={r.id: r.head_id for r in depts},
    )
