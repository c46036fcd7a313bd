"""State machines over HTTP: the state field refuses direct writes, transitions check
roles, conditions and scopes, locked states hold, actions run on entering a state."""
from __future__ import annotations

import sqlalchemy as sa

from metacrm.runtime import systables

from .support import error_of
from .workflow_support import company, workflow

MANAGER = [{"name": "manager", "approvers": {"type": "manager"}}]


def test_state_field_refuses_direct_writes_on_create_and_update(make_app):
    c = company(make_app, workflow(MANAGER))
    err = error_of(c.as_("rep").post("/api/v1/records/deal", json={"name": "x", "status": "approved"}),
                   422, "validation_error")
    assert "status" in err["fields"] and "transitions" in err["fields"]["status"][0]
    deal = c.deal(status="draft")  # the initial state may be named
    assert deal["status"] == "draft"
    err = error_of(c.as_("rep").patch(f"/api/v1/records/deal/{deal['id']}",
                                      json={"version": deal["version"], "status": "approved"}), 422)
    assert "submit" in err["fields"]["status"][0]
    # Sending the state back unchanged is fine (a client saving the record it read).
    r = c.as_("rep").patch(f"/api/v1/records/deal/{deal['id']}", json={**deal, "note": "n"})
    assert r.status_code == 200 and r.get_json()["note"] == "n"
    assert c.status(deal["id"]) == "draft"


def test_submit_locks_and_approval_unlocks_into_a_read_only_final_state(make_app):
    c = company(make_app, workflow(MANAGER))
    deal = c.deal()
    rec = c.fire("rep", deal["id"], "submit", {"comment": "please"})
    assert rec["status"] == "pending" and rec["version"] == deal["version"] + 1
    err = error_of(c.as_("rep").patch(f"/api/v1/records/deal/{deal['id']}",
                                      json={"version": rec["version"], "note": "sneaky"}), 409, "locked")
    assert "locked" in err["message"]
    error_of(c.as_("rep").delete(f"/api/v1/records/deal/{deal['id']}"), 409, "locked")
    assert c.pending(deal["id"]) == ["lead"]
    rec = c.fire("lead", deal["id"], "approve", {"comment": "ok"})
    assert rec["status"] == "approved"
    assert rec["signed_at"] and rec["approved_by"] == c.ids["lead"]  # actions set fields on entering
    error_of(c.as_("admin").patch(f"/api/v1/records/deal/{deal['id']}",
                                  json={"version": rec["version"], "note": "x"}), 409, "locked")
    view = c.approvals("rep", deal["id"])
    assert view["current"] is None and view["items"][0]["status"] == "approved"
    assert [e["action"] for e in view["trail"]] == ["submit", "approve", "approved"]
    assert view["trail"][0]["comment"] == "please" and view["trail"][1]["by"] == c.ids["lead"]
    assert view["items"][0]["snapshot"]["amount"] == "1000.00"
    # The owner was told: by the approval result and by the state action.
    with c.app.extensions["metacrm"].engine.connect() as conn:
        n = systables.notifications
        kinds = set(conn.execute(sa.select(n.c.kind).where(n.c.user_id == c.ids["rep"])).scalars())
    assert {"approval_result", "workflow"} <= kinds


def test_transition_conditions_roles_and_unknown_names(make_app):
    c = company(make_app, workflow(MANAGER))
    deal = c.deal(amount=None)
    err = error_of(c.as_("rep").post(f"/api/v1/records/deal/{deal['id']}/transitions/submit"), 422)
    assert "amount is not None" in err["message"]
    error_of(c.as_("rep").post(f"/api/v1/records/deal/{deal['id']}/transitions/void",
                               json={"values": {"void_reason": "dup"}}), 403)
    error_of(c.as_("rep").post(f"/api/v1/records/deal/{deal['id']}/transitions/teleport"), 404)
    error_of(c.as_("rep").post(f"/api/v1/records/deal/{deal['id']}/transitions/approve"), 409)
    # another rep's deal is invisible
    error_of(c.as_("rep2").post(f"/api/v1/records/deal/{deal['id']}/transitions/submit"), 404)
    # void needs its reason (required_when), sent as values with the transition
    err = error_of(c.as_("lead").post(f"/api/v1/records/deal/{deal['id']}/transitions/void"), 422)
    assert "void_reason" in err["fields"]
    rec = c.fire("lead", deal["id"], "void", {"values": {"void_reason": "duplicate"}})
    assert rec["status"] == "void" and rec["void_reason"] == "duplicate"
    error_of(c.as_("lead").post(f"/api/v1/records/deal/{deal['id']}/transitions/submit"), 409)


def test_available_transitions_for_the_caller(make_app):
    c = company(make_app, workflow(MANAGER))
    deal = c.deal()
    got = c.as_("rep").get(f"/api/v1/records/deal/{deal['id']}/transitions").get_json()
    assert [i["name"] for i in got["items"]] == ["submit"] and got["workflows"][0]["state"] == "draft"
    c.fire("rep", deal["id"], "submit")
    rep = c.as_("rep").get(f"/api/v1/records/deal/{deal['id']}/transitions").get_json()
    assert [i["name"] for i in rep["items"]] == ["withdraw"] and rep["workflows"][0]["locked"] is True
    lead = c.as_("lead").get(f"/api/v1/records/deal/{deal['id']}/transitions").get_json()
    assert [i["name"] for i in lead["items"]] == ["approve", "reject", "reassign", "add_signer"]
