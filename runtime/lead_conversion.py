"""Lead conversion (线索转化): the entity action `convert` on a lead.

`POST /api/v1/records/lead/<id>/actions/convert` with
`{"create_contact": true, "create_opportunity": false, "opportunity": {"name", "amount", ...},
  "customer": {field: value, ...}}` (all optional) turns the lead, in one transaction, into:

* a customer — the lead's company becomes its name, with phone, mobile, email, source,
  industry and level carried over (`customer` overrides them) — unless the customer's
  `link` rule (seed: customer_link_for_conversion) finds an existing customer the caller
  may read, which the lead is then linked to instead. A match of a `block` rule, or a
  link match the caller can't read, refuses the conversion (409 duplicate): a company
  that is already someone's customer is not converted a second time;
* optionally a contact (the lead's person) and an opportunity, both on that customer;
* the lead's follow-ups move to the customer (their `subject` is re-pointed, history kept);
* the lead records what it became (`converted_customer`, `converted_contact`,
  `converted_opportunity`, `converted_at`) and its status becomes `converted`.

Concurrency: the customer's match keys are locked (PostgreSQL advisory locks, the same
ones a customer create takes) before the check, so two conversions of the same company,
or a conversion and a create, can't both make a customer.
"""
from __future__ import annotations

from typing import Any, Mapping

import sqlalchemy as sa

from .catalog import Catalog, EntityRuntime
from .clock import utcnow
from .dedup.engine import _find, duplicate_error, lock_candidates, rules_for
from .dedup.repoint import repoint
from .errors import BadRequest, Conflict
from .history import record_changes
from .principal import Principal
from .access import access_for
from .workflow.engine import fire_transition
from .workflow.machine import machines_of
from .records import create_record, fetch_row, python_record, require_access, row_for, update_record

CUSTOMER, CONTACT, OPPORTUNITY = "customer", "contact", "opportunity"
#: Lead field → customer field carried over on conversion (when both exist and it is set).
TO_CUSTOMER = {"phone": "phone", "mobile": "mobile", "email": "email", "source": "source",
               "industry": "industry", "level": "level", "website": "website"}
TO_CONTACT = {"name": "name", "mobile": "mobile", "phone": "phone", "email": "email", "title": "title",
              "wechat": "wechat"}
#: Lead statuses that can't be converted: done already, or voided (kept for audit only).
NOT_CONVERTIBLE = {"converted": "This lead is converted already.",
                   "void": "This lead is void; it can't be converted."}


def _flag(body: Mapping[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false.")
    return value


def _object(body: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name) or {}
    if not isinstance(value, Mapping):
        raise BadRequest(f"{name} must be an object of field values.")
    return dict(value)


def _carry(source: Mapping[str, Any], target: EntityRuntime, mapping: Mapping[str, str]) -> dict[str, Any]:
    out = {}
    for src, dst in mapping.items():
        f = target.entity.active_field(dst)
        if f is not None and f.writable and source.get(src) not in (None, ""):
            out[dst] = source[src]
    return out


def _owner_values(catalog: Catalog, principal: Principal, rt: EntityRuntime, lead: Mapping[str, Any]) -> dict[str, Any]:
    """New records belong to the lead's owner when the caller may create for others."""
    if lead.get("owner") in (None, principal.user_id) or not rt.entity.ownership:
        return {}
    if not access_for(catalog.mset, principal, rt.entity).allows("transfer"):
        return {}
    return {"owner": lead["owner"], "department": lead.get("department")}


def _customer_for(conn: sa.Connection, catalog: Catalog, principal: Principal, values: Mapping[str, Any],
                  lead_entity: str, lead_id: int) -> tuple[int | None, list[Any]]:
    """The readable customer a `link` rule finds for `values` (None: create one), after
    locking the keys; refuses (409) on a block match or an unreadable link match. Matches
    on leads (also_check) don't count here: this lead is the one becoming the customer."""
    rules = rules_for(catalog.mset, CUSTOMER, "convert")
    lock_candidates(conn, catalog.mset, rules, values)
    exclude = frozenset({(lead_entity, lead_id)})

    def customers(action: str) -> list[Any]:
        return [m for m in _find(conn, catalog, principal, [r for r in rules if r.action == action], values, exclude)
                if m.entity == CUSTOMER]

    links = customers("link")
    link = next((m for m in links if m.id is not None), None)
    if link is not None:
        return link.id, links
    refused = customers("block") + links
    if refused:
        raise duplicate_error(catalog, CUSTOMER, refused, principal.language)
    return None, []


def _mark_converted(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str, lead_id: int) -> None:
    """The lead's status becomes `converted` — the one place conversion changes status.
    When `status` is a workflow's state field, its `convert` transition does it (so the
    workflow's rules, actions and history apply); otherwise a plain update."""
    machine = next((m for m in machines_of(catalog, entity) if m.state_field == "status"), None)
    if machine is not None:
        fire_transition(conn, catalog, principal, entity, lead_id, "convert")
        return
    current = fetch_row(conn, catalog.get(entity), lead_id)
    update_record(conn, catalog, principal, entity, lead_id, {"version": current["version"], "status": "converted"})


def _record_links(conn: sa.Connection, rt: EntityRuntime, lead_id: int, links: Mapping[str, Any],
                  by: int | None) -> None:
    """Write the read-only `converted_*` fields (only the server sets them) with history."""
    now = utcnow()
    values = {k: v for k, v in links.items() if rt.entity.active_field(k) is not None and k in rt.table.c}
    if "converted_at" in rt.table.c and rt.entity.active_field("converted_at") is not None:
        values["converted_at"] = now
    if not values:
        return
    t = rt.table
    before = python_record(rt, fetch_row(conn, rt, lead_id))
    conn.execute(t.update().where(t.c.id == lead_id).values(version=t.c.version + 1, updated_at=now,
                                                            updated_by=by, **values))
    record_changes(conn, rt.name, lead_id, by, now, "update", [(k, before.get(k), v) for k, v in values.items()])


def convert_lead(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str, record_id: int,
                 body: Mapping[str, Any]) -> dict[str, Any]:
    create_contact = _flag(body, "create_contact", True)
    create_opportunity = _flag(body, "create_opportunity", False)
    opportunity_values = _object(body, "opportunity")
    customer_overrides = _object(body, "customer")
    lead_rt = catalog.get(entity)
    lead_row = row_for(conn, lead_rt, principal, require_access(catalog, principal, lead_rt, "update"),
                       "update", record_id)
    lead = python_record(lead_rt, lead_row)
    refusal = NOT_CONVERTIBLE.get(lead.get("status") or "")
    if refusal:
        raise Conflict(refusal, code_detail=f"lead_{lead['status']}")
    customer_rt = catalog.get(CUSTOMER)

    name = lead.get("company") or lead.get("name")
    values = {"name": name, **_carry(lead, customer_rt, TO_CUSTOMER),
              **_owner_values(catalog, principal, customer_rt, lead), **customer_overrides}
    customer_id, _ = _customer_for(conn, catalog, principal, values, entity, record_id)
    created = customer_id is None
    warnings: list[dict[str, Any]] = []
    if created:
        # Checked just above under the keys' locks (leads excluded); the record service
        # still validates, stores the keys and writes history.
        customer = create_record(conn, catalog, principal, CUSTOMER, values, dedup_on=None)
        customer_id = customer["id"]

    contact_id = None
    if create_contact and CONTACT in catalog.entities:
        contact_rt = catalog.get(CONTACT)
        contact = create_record(conn, catalog, principal, CONTACT, {
            **_carry(lead, contact_rt, TO_CONTACT), "customer": customer_id,
            **_owner_values(catalog, principal, contact_rt, lead)})
        contact_id = contact["id"]
        warnings += contact.get("_duplicates", [])

    opportunity_id = None
    if create_opportunity and OPPORTUNITY in catalog.entities:
        opp_rt = catalog.get(OPPORTUNITY)
        payload = {"name": name, "customer": customer_id, **_owner_values(catalog, principal, opp_rt, lead)}
        if contact_id is not None and opp_rt.entity.active_field("contact") is not None:
            payload["contact"] = contact_id
        opportunity_id = create_record(conn, catalog, principal, OPPORTUNITY, {**payload, **opportunity_values})["id"]

    moved = repoint(conn, catalog, entity, [record_id], CUSTOMER, customer_id, principal.user_id, utcnow(),
                    lookups=False)
    _record_links(conn, lead_rt, record_id, {"converted_customer": customer_id, "converted_contact": contact_id,
                                             "converted_opportunity": opportunity_id}, principal.user_id)
    _mark_converted(conn, catalog, principal, entity, record_id)
    return {"lead": record_id, "customer": customer_id, "customer_created": created, "linked": not created,
            "contact": contact_id, "opportunity": opportunity_id, "followups_moved": sum(moved.values()),
            "duplicates": warnings}


ACTIONS = {"convert": convert_lead}
