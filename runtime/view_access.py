"""Who may use a list view: the view's `roles`, and the fields its filters read.

A view restricted to roles is not listed for, nor usable by, anyone without one of them
(admins use every view). A view whose filters or kanban grouping read a field hidden or
masked for the user is refused too: the rows it shows would tell them something about
that field's values ("the customers with a credit limit over 1M"). Dropping those
conditions instead would quietly show a different list under the same name, so the view
is refused with a message that says why. A view's *sort* on such a field is dropped
(the order falls back to the next sort key, then the id): an order alone is a leak too,
but the list stays the one the view promises.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

from metacrm.metadata.model import View

from .access import Access
from .errors import PermissionDenied
from .principal import Principal


def filter_fields(filters: Any) -> Iterator[str]:
    """Every field name a filter list (with nested any/all groups) reads."""
    for node in filters or ():
        if isinstance(node, Mapping):
            for items in node.values():
                yield from filter_fields(items)
        elif isinstance(node, (list, tuple)) and node and isinstance(node[0], str):
            yield node[0]


def view_refusal(view: View, principal: Principal, access: Access) -> str | None:
    """Why the principal may not use `view` (None: they may)."""
    if principal.is_admin:
        return None
    if view.roles and not set(view.roles) & principal.roles:
        return f"The view '{view.name}' is only for the roles: {', '.join(view.roles)}."
    read = set(filter_fields(view.filters))
    if view.group_by:
        read.add(view.group_by)
    unreadable = sorted(read & access.unreadable)
    if unreadable:
        return f"The view '{view.name}' filters or groups on fields you may not read: {', '.join(unreadable)}."
    return None


def may_use_view(view: View, principal: Principal, access: Access) -> bool:
    return view_refusal(view, principal, access) is None


def check_view(view: View, principal: Principal, access: Access) -> View:
    """The view, if the principal may use it; PermissionDenied (403) saying why if not."""
    reason = view_refusal(view, principal, access)
    if reason:
        raise PermissionDenied(reason)
    return view

