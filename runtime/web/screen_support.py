"""What every generated screen needs: the navigation built from metadata, the visible
fields of an entity for a user, and values shown the way people read them.

Screens work on the record service's JSON shapes (the same dicts the API answers), so a
value looks the same whether it came from a list, a record or a history entry.
"""
from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape
from sqlalchemy import Connection

from metacrm.metadata.model import Entity, Field, View

from ..access import Access, access_for
from ..catalog import Catalog
from ..principal import Principal
from .meta import may_use

#: Navigation groups in the order the sidebar shows them (UX.md: 客户管理 · 销售 · 办公 …).
APPS = ("customers", "sales", "office", "dashboard", "admin", "other")
#: Field types whose value is an id with a title to look up.
TITLED_TYPES = frozenset({"lookup", "user", "department"})
TITLED_SYSTEM = frozenset({"owner", "created_by", "updated_by", "department"})
MONEY_TYPES = frozenset({"currency"})


@dataclass(frozen=True)
class NavItem:
    """One sidebar link: an entity's list (`entity` set) or one of the SHELL_PAGES."""
    label: str
    icon: str
    endpoint: str
    entity: str | None = None
    badge: str | None = None  # a key of the shell's counts (g.metacrm_counts), shown beside the label


@dataclass(frozen=True)
class ShellPage:
    """A screen that is not an entity's list (inbox, dashboard, admin, designer …).

    `label` is a ui_text key; `app` the sidebar group it sits in; `admin_only` hides it
    from everyone else (the page itself still checks)."""
    endpoint: str
    label: str
    icon: str
    app: str
    admin_only: bool = False
    badge: str | None = None


#: The shell's own pages, in sidebar order within their group. A page appears once its
#: blueprint is mounted (its endpoint is registered), so a list entry never breaks url_for.
SHELL_PAGES: tuple[ShellPage, ...] = (
    ShellPage("metacrm_designer.entities", "designer", "bezier2", "admin", admin_only=True),
)

#: Counts shown as badges beside shell pages (ShellPage.badge names one): each is read once
#: per page request, with the shell's connection, for the signed-in user.
SHELL_COUNTS: dict[str, Callable[[Connection, Principal], int]] = {}


def navigation(catalog: Catalog, principal: Principal, language: str,
               endpoints: Iterable[str] = ()) -> list[tuple[str, list[NavItem]]]:
    """[(app, [links the user may use])], apps in the sidebar's order, empty apps left out:
    the entities the user may read, then the mounted shell pages of each app."""
    from .ui_text import translate

    groups: dict[str, list[NavItem]] = {}
    for entity in catalog.mset.active_entities:
        if entity.child_of or not may_use(catalog, entity, principal):
            continue
        if not access_for(catalog.mset, principal, entity).allows("read"):
            continue
        app = entity.app if entity.app in APPS else "other"
        groups.setdefault(app, []).append(NavItem(entity.label.get(language), entity.icon or "table",
                                                  "metacrm_lists.list_page", entity=entity.name))
    mounted = set(endpoints)
    for page in SHELL_PAGES:
        if page.endpoint not in mounted or (page.admin_only and not principal.is_admin):
            continue
        app = page.app if page.app in APPS else "other"
        groups.setdefault(app, []).append(NavItem(translate(page.label, language), page.icon, page.endpoint,
                                                  badge=page.badge))
    return [(app, groups[app]) for app in APPS if app in groups]


def readable_fields(entity: Entity, access: Access) -> list[Field]:
    """The entity's active fields the user may see, in metadata order."""
    return [f for f in entity.active_fields if f.name not in access.hidden]


def field_of(entity: Entity, name: str) -> Field | None:
    f = entity.field(name)
    return None if f is None or f.archived else f


def list_columns(entity: Entity, view: View | None, access: Access) -> list[Field]:
    """A view's columns the user may see; without a view, the title and the first fields."""
    names: Iterable[str]
    if view and view.columns:
        names = view.columns
    else:
        shown = [f.name for f in entity.active_fields if f.type not in ("table", "textarea", "richtext", "location")]
        names = ([entity.title_field] if entity.title_field in shown else []) + \
            [n for n in shown if n != entity.title_field][:5] + (["owner"] if entity.ownership else [])
    out = []
    for name in names:
        f = field_of(entity, name)
        if f is not None and f.name not in access.hidden and f.type != "table":
            out.append(f)
    return out


def titled(f: Field) -> bool:
    return f.type in TITLED_TYPES or (f.system and f.name in TITLED_SYSTEM)


def expand_names(fields: Iterable[Field], access: Access) -> list[str]:
    """The fields whose `__title` a screen asks the record service for."""
    return [f.name for f in fields if titled(f) and f.name not in access.unreadable]


def option_label(f: Field, value: Any, language: str) -> str:
    for o in f.options:
        if o.value == value:
            return o.label.get(language)
    return "" if value is None else str(value)


def format_number(value: Any, f: Field, language: str) -> str:
    try:
        number = decimal.Decimal(str(value))
    except (decimal.InvalidOperation, ValueError):
        return str(value)
    if f.type == "percent":
        return f"{number.normalize():f}%"
    if f.value_kind == "integer" or f.type == "integer":
        return f"{int(number):,}"
    scale = f.scale if f.scale is not None else 2
    text = f"{number:,.{scale}f}"
    return f"¥{text}" if f.type in MONEY_TYPES or f.format == "currency" else text


def format_datetime(value: Any, timezone: str) -> str:
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(ZoneInfo(timezone))
    return moment.strftime("%Y-%m-%d %H:%M")


def local_input(value: Any, timezone: str) -> str:
    """A stored (UTC) datetime as a `datetime-local` input's value in the user's zone."""
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(ZoneInfo(timezone))
    return moment.strftime("%Y-%m-%dT%H:%M")


def display(f: Field, record: dict[str, Any], language: str, timezone: str = "UTC",
            link: bool = True) -> Markup:
    """A field's value as HTML for a cell or a detail row (escaped; links for lookups)."""
    value = record.get(f.name)
    if value is None or value == "" or value == []:
        return Markup('<span class="text-body-tertiary">—</span>')
    kind = "system_dt" if f.system and f.name in ("created_at", "updated_at") else f.type
    if f.type == "formula":
        kind = f.result_type or "text"
    if titled(f):
        title = record.get(f"{f.name}__title") or f"#{value}"
        if f.type == "lookup" and link and f.target:
            return Markup('<a href="/r/{}/{}">{}</a>').format(f.target, value, title)
        return escape(title)
    if kind == "select":
        option = next((o for o in f.options if o.value == value), None)
        color = f" text-bg-{option.color}" if option and option.color else " text-bg-light border"
        return Markup('<span class="badge{}">{}</span>').format(color, option_label(f, value, language))
    if kind == "multiselect" and isinstance(value, list):
        return Markup(" ").join(Markup('<span class="badge text-bg-light border">{}</span>').format(
            option_label(f, v, language)) for v in value)
    if kind == "boolean":
        return escape("✓" if value else "✗")
    if kind in ("decimal", "currency", "percent", "integer"):
        shown = format_number(value, f if f.type != "formula" else Field(
            name=f.name, type=kind, label=f.label, scale=f.scale), language)
        return Markup('<span class="font-monospace">{}</span>').format(shown)
    if kind in ("datetime", "system_dt"):
        return escape(format_datetime(value, timezone))
    if kind == "email":
        return Markup('<a href="mailto:{0}">{0}</a>').format(value)
    if kind == "phone" and "*" not in str(value):
        return Markup('<a href="tel:{0}">{0}</a>').format(value)
    if kind == "url":
        return Markup('<a href="{0}" rel="noopener noreferrer" target="_blank">{0}</a>').format(value)
    if kind == "reference" and isinstance(value, dict):
        title = record.get(f"{f.name}__title") or f"{value.get('entity')} #{value.get('id')}"
        return Markup('<a href="/r/{}/{}">{}</a>').format(value.get("entity"), value.get("id"), title)
    if kind == "location" and isinstance(value, dict):
        return escape(value.get("address") or f"{value.get('lat')}, {value.get('lng')}")
    if kind in ("file", "image") and isinstance(value, dict):
        return escape(value.get("name") or "")
    if kind in ("textarea", "richtext"):
        return Markup("<br>").join(escape(line) for line in str(value).splitlines())
    return escape(str(value))
