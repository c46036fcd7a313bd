"""Approval chains over HTTP: every approver type, the modes, conditions, rejection paths,
withdraw and resubmit, reassign and added signers, cc, delegation, escalation, editable
fields, the inbox and the preview."""
from __future__ import annotations

import datetime as dt

import pytest

from .support import error_of
from .workflow_support import company, workflow


def step(name, approvers, **kw):
    return {"name": name, "approvers": approvers, **kw}


# ------------------------------------------------------------------ approver types

@pytest.mark.parametrize("approvers, expected", [
    ({"type": "user", "users": ["fin2", "hr"]}, ["fin2", "hr"]),
    ({"type": "role", "role": "finance"}, ["fin1", "fin2", "fin3"]),
    ({"type": "manager"}, ["lead"]),
    ({"type": "manager", "levels": 2}, ["director"]),
    ({"type": "department_head"}, ["lead"]),
    ({"type": "department_head", "levels": 2}, ["director"]),
    ({"type": "field", "field": "reviewer"}, ["hr"]),
])
def test_approver_types_resolve_to_the_right_people(make_app, approvers, expected):
    c = company(make_app, workflow([step("s", approvers, mode="all")]))
    deal = c.deal(reviewer=c.ids["hr"])
    c.fire("rep", deal["id"], "submit")
    assert c.pending(deal["id"]) == expected


def test_department_head_of_a_head_is_the_parent_department_head(make_app):
    c = company(make_app, workflow([step("s", {"type": "department_head"})]))
    deal = c.deal("lead")
    c.fire("lead", deal["id"], "submit")
    assert c.pending(deal["id"]) == ["director"]


def test_managers_up_to_the_first_holding_a_role(make_app):
    c = company(make_app, workflow([step("chain", {"type": "manager", "until_role": "boss"})]))
    deal = c.deal("rep2")
    c.fire("rep2", deal["id"], "submit")
    assert c.pending(deal["id"]) == ["lead"]  # lead already holds boss: the chain stops there


def test_consecutive_managers_decide_one_after_another(make_app):
    c = company(make_app, workflow([step("chain", {"type": "manager", "levels": 3, "consecutive": True})]))
    deal = c.deal()
    c.fire("rep", deal["id"], "submit")
    assert c.pending(deal["id"]) == ["lead"]
    error_of(c.as_("director").post(f"/api/v1/records/deal/{deal['id']}/transitions/approve"), 409)
    c.fire("lead", deal["id"], "approve")
    assert c.pending(deal["id"]) == ["director"]
    c.fire("director", deal["id"], "approve")
    assert c.pending(deal["id"]) == ["gm"]
    assert c.fire("gm", deal["id"], "approve")["status"] == "approved"


def test_submitter_choice_must_be_given_and_from_the_candidates(make_app):
    c = company(make_app, workflow([step("pick", {"type": "submitter_choice", "users": ["fin1", "fin2"]})]))
    deal = c.deal()
    err = error_of(c.as_("rep").post(f"/api/v1/records/deal/{deal['id']}/transitions/submit"), 422)
    assert "approvers.pick" in err["fields"]
    err = error_of(c.as_("rep").post(f"/api/v1/records/deal/{deal['id']}/transitions/submit",
                                     json={"approvers": {"pick": [c.ids["hr"]]}}), 422)
    assert "candidates" in err["fields"]["approvers.pick"][0]
    assert c.status(deal["id"]) == "draft"
    c.fire("rep", deal["id"], "submit", {"approvers": {"pick": [c.ids["fin2"]]}})
    assert c.pending(deal["id"]) == ["fin2"]


# ------------------------------------------------------------------ modes

def test_mode_any_first_decision_counts(make_app):
    c = company(make_app, workflow([step("fin", {"type": "role", "role": "finance"}, mode="any")]))
    deal = c.deal()
    c.fire("rep", deal["id"], "submit")
    assert c.fire("fin2", deal["id"], "approve")["status"] == "approved"
    error_of(c.as_("fin1").post(f"/api/v1/records/deal/{deal['id']}/transitions/approve"), 409)


def test_mode_all_needs_everyone_and_one_rejection_rejects(make_app):
    c = company(make_app, workflow([step("fin", {"type": "role", "role": "finance"}, mode="all")]))
    deal = c.deal()
    c.fire("rep", deal["id"], "submit")
    c.fire("fin1", deal["id"], "approve")
    c.fire("fin2", deal["id"], "approve")
    assert c.status(deal["id"]) == "pending" and c.pending(deal["id"]) == ["fin3"]
    assert c.fire("fin3", deal["id"], "approve")["status"] == "approved"

    deal = c.deal()
    c.fire("rep", deal["id"], "submit")
    c.fire("fin1", deal["id"], "approve")
    assert c.fire("fin3", deal["id"], "reject", {"comment": "no budget"})["status"] == "rejected"
    assert c.pending(deal["id"]) == []


def test_mode_ratio_two_of_three(make_app):
    c = company(make_app, workflow([step("fin", {"type": "role", "role": "finance"}, mode="ratio",
                                         min_approvals=2)]))
    deal = c.deal()
    c.fire("rep", deal["id"], "submit")
    c.fire("fin1", deal["id"], "reject", {"comment": "hmm"})
    assert c.status(deal["id"]) == "pending"  # 2 of the remaining 2 can still approve
    c.fire("fin2", deal["id"], "approve")
    assert c.fire("fin3", deal["id"], "approve")["status"] == "approved"

    deal = c.deal()
    c.fire("rep", deal["id"], "submit")
    c.fire("fin1", deal["id"], "reject")
    assert c.fire("fin2", deal["id"], "reject")["status"] == "rejected"  # 2 of 3 out of reach


# ------------------------------------------------------------------ conditions, skipping, empty steps

def test_conditional_steps_route_by_amount(make_app):
    c = company(make_app, workflow([
        step("manager", {"type": "manager"}),
        step("finance", {"type": "user", "users": ["fin1"]}, when="amount >= 100000"),
        step("gm", {"type": "user", "users": ["gm"]}, when="amount >= 500000"),
    ]))
    small = c.deal(amount="5000")
    c.fire("rep", small["id"], "submit")
    assert c.fire("lead", small["id"], "approve")["status"] == "approved"
    big = c.deal(amount="150000")
    c.fire("rep", big["id"], "submit")
    c.fire("lead", big["id"], "approve")
    assert c.pending(big["id"]) == ["fin1"]
    assert c.fire("fin1", big["id"], "approve")["status"] == "approved"
    trail = c.approvals("rep", big["id"])["trail"]
    assert ("skip", "gm") in [(e["action"], e["step"]) for e in trail]


def test_submitter_is_skipped_when_the_step_says_so(make_app):
    c = company(make_app, workflow([step("bosses", {"type": "role", "role": "boss"}, mode="all",
                                         skip_submitter=True)]))
    deal = c.deal("lead")
    c.fire("lead", deal["id"], "submit")
    assert c.pending(deal["id"]) == ["director", "gm"]


def test_empty_step_is_auto_approved(make_app):
    c = company(make_app, workflow([step("manager", {"type": "manager"}, on_empty="approve")]))
    deal = c.deal("loner")
    assert c.fire("loner", deal["id"], "submit")["status"] == "approved"
    assert [e["action"] for e in c.approvals("loner", deal["id"])["trail"]][:2] == ["submit", "auto_approve"]


def test_empty_step_escalates_to_the_fallback_approvers(make_app):
    c = company(make_app, workflow([step("manager", {"type": "manager"}, on_empty="escalate")],
                                   fallback_approvers={"type": "user", "users": ["hr"]}))
    deal = c.deal("loner")
    assert c.fire("loner", deal["id"], "submit")["status"] == "pending"
    assert c.pending(deal["id"]) == ["hr"]
    # an approver from another department sees what they approve
    assert c.approvals("hr", deal["id"])["current"]["snapshot"]["name"] == "Deal"
    assert c.fire("hr", deal["id"], "approve")["status"] == "approved"


def test_empty_step_without_fallback_escalates_to_the_administrators(make_app):
    c = company(make_app, workflow([step("manager", {"type": "manager"}, on_empty="escalate")]))
    deal = c.deal("loner")
    c.fire("loner", deal["id"], "submit")
    assert c.pending(deal["id"]) == ["admin"]
    assert c.approvals("admin", deal["id"])["trail"][1]["action"] == "escalate"


# ------------------------------------------------------------------ rejection, withdrawal, resubmission

def test_reject_to_an_earlier_step_and_then_on(make_app):
    c = company(make_app, workflow([step("manager", {"type": "manager"}),
                                    step("finance", {"type": "user", "users": ["fin1"]})]))
    deal = c.deal()
    c.fire("rep", deal["id"], "submit")
    c.fire("lead", deal["id"], "approve")
    err = error_of(c.as_("fin1").post(f"/api/v1/records/deal/{deal['id']}/transitions/reject",
                                      json={"to_step": "finance"}), 422)
    assert "to_step" in err["fields"]
    rec = c.fire("fin1", deal["id"], "reject", {"to_step": "manager", "comment": "check the price"})
    assert rec["status"] == "pending" and c.pending(deal["id"]) == ["lead"]
    c.fire("lead", deal["id"], "approve")
    assert c.fire("fin1", deal["id"], "approve")["status"] == "approved"
    actions = [e["action"] for e in c.approvals("rep", deal["id"])["trail"]]
    assert actions == ["submit", "approve", "reject", "returned", "approve", "approve", "approved"]


def test_withdraw_while_pending_then_resubmit(make_app):
    c = company(make_app, workflow([step("manager", {"type": "manager"})]))
    deal = c.deal()
    c.fire("rep", deal["id"], "submit")
    error_of(c.as_("lead").post(f"/api/v1/records/deal/{deal['id']}/transitions/withdraw"), 403)
    rec = c.fire("rep", deal["id"], "withdraw", {"comment": "wrong amount"})
    assert rec["status"] == "draft" and c.pending(deal["id"]) == []
    error_of(c.as_("lead").post(f"/api/v1/records/deal/{deal['id']}/transitions/approve"), 409)
    rec = c.as_("rep").patch(f"/api/v1/records/deal/{deal['id']}", json={"version": rec["version"], "amount": "900"})
    assert rec.status_code == 200  # unlocked again
    c.fire("rep", deal["id"], "submit")
    items = c.approvals("rep", deal["id"])["items"]
    assert [i["status"] for i in items] == ["pending", "withdrawn"]
    assert items[0]["snapshot"]["amount"] == "900.00" and items[1]["snapshot"]["amount"] == "1000.00"


@pytest.mark.parametrize("restart, expected", [("first", ["lead"]), ("rejecting_step", ["fin1"])])
def test_resubmit_restarts_where_the_chain_says(make_app, restart, expected):
    c = company(make_app, workflow([step("manager", {"type": "manager"}),
                                    step("finance", {"type": "user", "users": ["fin1"]})],
                                   restart_on_resubmit=restart))
    deal = c.deal()
    c.fire("rep", deal["id"], "submit")
    c.fire("lead", deal["id"], "approve")
    assert c.fire("fin1", deal["id"], "reject", {"comment": "attach the quote"})["status"] == "rejected"
    rec = c.as_("rep").patch(f"/api/v1/records/deal/{deal['id']}",
                             json={"version": c.as_("rep").get(f"/api/v1/records/deal/{deal['id']}").get_json()[
                                 "version"], "note": "quote attached"})
    assert rec.status_code == 200  # rejected is not locked
    c.fire("rep", deal["id"], "submit")
    assert c.pending(deal["id"]) == expected
    trail = [(e["action"], e["step"], e["detail"].get("reason")) for e in c.approvals("rep", deal["id"])["trail"]]
    assert trail[trail.index(("rejected", "finance", None)) + 1][0] == "resubmit"
    assert (("skip", "manager", "approved_before") in trail) is (restart == "rejecting_step")


# ------------------------------------------------------------------ reassign, add signer, cc, edits

def test_reassign_hands_the_task_over(make_app):
    c = company(make_app, workflow([step("manager", {"type": "manager"})]))
    deal = c.deal()
    c.fire("rep", deal["id"], "submit")
    error_of(c.as_("lead").post(f"/api/v1/records/deal/{deal['id']}/transitions/reassign",
                                json={"to_user": 99999}), 422)
    c.fire("lead", deal["id"], "reassign", {"to_user": c.ids["director"], "comment": "you know this client"})
    assert c.pending(deal["id"]) == ["director"]
    error_of(c.as_("lead").post(f"/api/v1/records/deal/{deal['id']}/transitions/approve"), 409)
    assert c.fire("director", deal["id"], "approve")["status"] == "approved"


def test_add_signer_before_and_after(make_app):
    c = company(make_app, workflow([step("manager", {"type": "manager"})]))
    deal = c.deal()
    c.fire("rep", deal["id"], "submit")
    c.fire("lead", deal["id"], "add_signer", {"users": [c.ids["fin1"]], "position": "before"})
    assert c.pending(deal["id"]) == ["fin1"]
    c.fire("fin1", deal["id"], "approve")
    assert c.pending(deal["id"]) == ["lead"]  # my turn again
    rec = c.fire("lead", deal["id"], "add_signer", {"users": [c.ids["fin2"]], "position": "after"})
    assert rec["status"] == "pending" and c.pending(deal["id"]) == ["fin2"]
    assert c.fire("fin2", deal["id"], "approve")["status"] == "approved"


def test_cc_recipients_are_told_but_do_not_decide(make_app):
    c = company(make_app, workflow([step("manager", {"type": "manager"}, cc={"type": "user", "users": ["hr"]})]))
    deal = c.deal()
    c.fire("rep", deal["id"], "submit")
    bell = c.as_("hr").get("/api/v1/notifications").get_json()
    assert [n["kind"] for n in bell["items"]] == ["approval_cc"]
    error_of(c.as_("hr").post(f"/api/v1/records/deal/{deal['id']}/transitions/approve"), 403)
    assert c.approvals("hr", deal["id"])["current"]["pending"][0]["user"] == c.ids["lead"]


def test_approvers_edit_only_their_steps_editable_fields(make_app):
    c = company(make_app, workflow([step("finance", {"type": "user", "users": ["fin1"]},
                                         editable_fields=["amount"])]))
    deal = c.deal()
    rec = c.fire("rep", deal["id"], "submit")
    r = c.as_("fin1").patch(f"/api/v1/records/deal/{deal['id']}", json={"version": rec["version"], "amount": "800"})
    assert r.status_code == 200 and r.get_json()["amount"] == "800.00"
    err = error_of(c.as_("fin1").patch(f"/api/v1/records/deal/{deal['id']}",
                                       json={"version": r.get_json()["version"], "name": "mine"}), 403)
    assert "name" in err["fields"]
    error_of(c.as_("rep").patch(f"/api/v1/records/deal/{deal['id']}",
                                json={"version": r.get_json()["version"], "amount": "1"}), 409, "locked")
    error_of(c.as_("fin1").post(f"/api/v1/records/deal/{deal['id']}/transitions/approve",
                                json={"values": {"note": "x"}}), 403)
    rec = c.fire("fin1", deal["id"], "approve", {"values": {"amount": "750"}})
    assert rec["status"] == "approved" and rec["amount"] == "750.00"


# ------------------------------------------------------------------ delegation

def test_delegation_while_away_sends_tasks_to_the_stand_in(make_app):
    c = company(make_app, workflow([step("manager", {"type": "manager"})]))
    today = dt.date.today()
    err = error_of(c.as_("lead").post("/api/v1/approvals/delegations", json={
        "to_user": c.ids["lead"], "starts_on": today.isoformat(), "ends_on": today.isoformat()}), 422)
    assert "to_user" in err["fields"]
    error_of(c.as_("rep").post("/api/v1/approvals/delegations", json={
        "from_user": c.ids["lead"], "to_user": c.ids["rep"], "starts_on": today.isoformat(),
        "ends_on": today.isoformat()}), 403)
    r = c.as_("lead").post("/api/v1/approvals/delegations", json={
        "to_user": c.ids["director"], "starts_on": (today - dt.timedelta(days=1)).isoformat(),
        "ends_on": (today + dt.timedelta(days=3)).isoformat(), "reason": "holiday"})
    assert r.status_code == 201, r.get_json()
    error_of(c.as_("lead").post("/api/v1/approvals/delegations", json={
        "to_user": c.ids["gm"], "starts_on": today.isoformat(), "ends_on": today.isoformat()}), 409)
    deal = c.deal()
    c.fire("rep", deal["id"], "submit")
    cur = c.approvals("rep", deal["id"])["current"]
    assert cur["pending"][0]["user"] == c.ids["director"] and cur["pending"][0]["on_behalf_of"] == c.ids["lead"]
    c.fire("director", deal["id"], "approve")
    trail = c.approvals("rep", deal["id"])["trail"]
    assert trail[1]["detail"] == {"on_behalf_of": c.ids["lead"]}
    # revoked: back to the approver
    mine = c.as_("lead").get("/api/v1/approvals/delegations").get_json()["items"]
    assert c.as_("lead").delete(f"/api/v1/approvals/delegations/{mine[0]['id']}").status_code == 204
    deal = c.deal()
    c.fire("rep", deal["id"], "submit")
    assert c.pending(deal["id"]) == ["lead"]


# ------------------------------------------------------------------ inbox and preview

def test_inbox_boxes_and_counts(make_app):
    c = company(make_app, workflow([step("manager", {"type": "manager"})]))
    a, b = c.deal(name="A"), c.deal(name="B")
    c.fire("rep", a["id"], "submit")
    c.fire("rep", b["id"], "submit")
    box = c.as_("lead").get("/api/v1/approvals/inbox").get_json()
    assert box["counts"] == {"pending": 2, "submitted": 0, "decided": 0}
    assert [i["title"] for i in box["items"]] == ["A", "B"] and box["items"][0]["submitter"] == c.ids["rep"]
    c.fire("lead", a["id"], "approve")
    box = c.as_("lead").get("/api/v1/approvals/inbox?box=decided").get_json()
    assert box["counts"] == {"pending": 1, "submitted": 0, "decided": 1}
    assert box["items"][0]["my_decision"] == "approved"
    mine = c.as_("rep").get("/api/v1/approvals/inbox?box=submitted").get_json()
    assert {i["title"]: i["status"] for i in mine["items"]} == {"A": "approved", "B": "pending"}
    assert mine["items"][0]["pending"] == [{"user": c.ids["lead"], "user_name": "lead"}]
    error_of(c.as_("rep").get("/api/v1/approvals/inbox?box=spam"), 400)


def test_preview_shows_steps_people_and_skips_without_writing(make_app):
    c = company(make_app, workflow([
        step("manager", {"type": "manager"}),
        step("finance", {"type": "role", "role": "finance"}, when="amount >= 100000", mode="all"),
    ]))
    deal = c.deal(amount="5000")
    r = c.as_("rep").post(f"/api/v1/records/deal/{deal['id']}/approval-preview", json={})
    steps = r.get_json()["steps"]
    assert [(s["name"], s["status"]) for s in steps] == [("manager", "will_run"), ("finance", "skipped")]
    assert steps[0]["approvers"][0]["user"] == c.ids["lead"]
    r = c.as_("rep").post(f"/api/v1/records/deal/{deal['id']}/approval-preview", json={"record": {"amount": "200000"}})
    assert [len(s["approvers"]) for s in r.get_json()["steps"]] == [1, 3]
    r = c.as_("rep").post("/api/v1/records/deal/approval-preview", json={"record": {"name": "new", "amount": "1"}})
    assert r.status_code == 200 and r.get_json()["steps"][1]["status"] == "skipped"
    assert c.status(deal["id"]) == "draft" and c.approvals("rep", deal["id"])["items"] == []
