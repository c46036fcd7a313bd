"""The acting user, handed to the runtime explicitly (never read from request globals)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Principal:
    """Who is acting: what permission scopes, history and `$me` filters are computed from."""

    user_id: int | None
    username: str
    display_name: str = ""
    roles: frozenset[str] = field(default_factory=frozenset)
    department_id: int | None = None
    is_admin: bool = False
    language: str = "en"
    subordinate_ids: frozenset[int] = field(default_factory=frozenset)
    #: The user's department and every department below it (for department_and_children).
    department_ids: frozenset[int] = field(default_factory=frozenset)
    #: The user's department and every department above it (a pool open to a department
    #: is open to its sub-departments).
    department_path: frozenset[int] = field(default_factory=frozenset)


#: The principal of jobs, migrations and the CLI's own writes.
SYSTEM = Principal(user_id=None, username="system", display_name="System", is_admin=True)
