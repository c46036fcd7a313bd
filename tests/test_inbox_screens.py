"""The approval inbox screen (/approvals) at HTTP level: the three tabs and their counts,
approve and reject from the list through the workflow engine, the refusals as flash
messages (a lost race, not your task, a rejection without a reason), the detail drawer
with the record as submitted, paging, and a locked record's page without Edit."""
from __future__ import annotations

import re
from typing import Any

import pytest

from .test_screens import csrf_of, sign_in
from .workflow_support import Company, company, workflow

MANAGER_THEN_FINANCE = workflow([
    {"name": "manager", "label": {"en": "Team lead", "zh": "组长审批"}, "approvers": {"type": "manager", "levels": 1}},
    {"name": "finance", "label": {"en": "Finance", "zh": "财务审核"}, "approvers": {"type": "role", "role": "finance"},
     "mode": "any", "when": "amount >= 5000"},
])


@pytest.fixture
def co(make_app) -> Company:
    return company(make_app, MANAGER_THEN_FINANCE)


def screen(c: Company, who: str) -> Any:
    return sign_in(c.app.test_client(), who, f"{who}-pass-1")


def submitted(c: Company, amount: str = "8000", name: str = "Deal") -> int:
    deal = c.deal(name=name, amount=amount)
    c.fire("rep", deal["id"], "submit", {"comment": "please"})
    return deal["id"]


def approval_id(c: Company, deal_id: int) -> int:
    return c.approvals("admin", deal_id)["current"]["id"]


def decide(client: Any, approval: int, decision: str, comment: str = "", box: str = "pending") -> str:
    token = csrf_of(client.get("/approvals").get_data(as_text=True))
    r = client.post(f"/approvals/{approval}/decide",
                    data={"csrf_token": token, "decision": decision, "comment": comment, "box": box})
    assert r.status_code == 302, r.get_data(as_text=True)[:500]
    assert r.headers["Location"].startswith("/approvals?box=")
    return client.get(r.headers["Location"]).get_data(as_text=True)


def rows(html: str) -> list[str]:
    return re.findall(r'<tr class="mc-inbox-row" data-approval="(\d+)"', html)


def test_pending_tab_shows_what_who_amount_step_with_counts_and_badges(co):
    deal_id = submitted(co, "8000", "Harbour fit-out")
    html = screen(co, "lead").get("/approvals").get_data(as_text=True)
    assert rows(html) == [str(approval_id(co, deal_id))]
    assert f'href="/r/deal/{deal_id}">Harbour fit-out</a>' in html
    assert "¥8,000.00" in html and "<td>rep</td>" in html
    assert "Team lead" in html  # the current step's label
    assert re.search(r'data-box="pending">1<', html) and re.search(r'data-box="decided">0<', html)
    assert re.search(r'data-count="approvals">1<', html), "sidebar badge"
    assert 'mc-approvals-count">1<' in html, "top bar count"
    # The submitter sees it under 我发起的, not under 待我审批.
    rep_html = screen(co, "rep").get("/approvals?box=submitted").get_data(as_text=True)
    assert rows(rep_html) == [str(approval_id(co, deal_id))] and "mc-approvals-count" not in rep_html
    assert "Nothing waits for your decision." in screen(co, "rep").get("/approvals").get_data(as_text=True)


def test_approve_from_the_list_moves_to_the_next_step_then_approves_the_record(co):
    deal_id = submitted(co, "8000")
    aid = approval_id(co, deal_id)
    html = decide(screen(co, "lead"), aid, "approve", "fine by me")
    assert "Approved: Deal" in html and rows(html) == []
    assert co.pending(deal_id) == ["fin1", "fin2", "fin3"]
    decided = screen(co, "lead").get("/approvals?box=decided").get_data(as_text=True)
    assert rows(decided) == [str(aid)]
    decide(screen(co, "fin2"), aid, "approve")
    assert co.status(deal_id) == "approved"
    trail = co.approvals("admin", deal_id)["items"][0]["trail"]
    assert [e["action"] for e in trail][-3:] == ["approve", "approve", "approved"]
    assert trail[-3]["comment"] == "fine by me"
    mine = screen(co, "rep").get("/approvals?box=submitted").get_data(as_text=True)
    assert 'mc-inbox-status">Approved<' in mine


def test_reject_needs_a_comment_and_changes_nothing_without_one(co):
    deal_id = submitted(co, "3000")
    aid = approval_id(co, deal_id)
    lead = screen(co, "lead")
    html = decide(lead, aid, "reject", "   ")
    assert "Say why you reject it" in html and "alert-danger" in html
    assert co.status(deal_id) == "pending" and rows(html) == [str(aid)]
    html = decide(lead, aid, "reject", "price too low")
    assert "Rejected: Deal" in html
    assert co.status(deal_id) == "rejected"
    assert co.approvals("rep", deal_id)["items"][0]["trail"][-2]["comment"] == "price too low"


def test_not_your_task_and_unknown_approval_are_flash_messages(co):
    deal_id = submitted(co, "3000")
    aid = approval_id(co, deal_id)
    html = decide(screen(co, "rep2"), aid, "approve")  # can't read it, isn't involved
    assert "Not found:" in html and co.status(deal_id) == "pending"
    html = decide(screen(co, "director"), aid, "approve")  # reads it (subordinate's), no task
    assert "Not allowed:" in html and "not an approver" in html and co.status(deal_id) == "pending"
    assert "Not found:" in decide(screen(co, "lead"), 987654, "approve")
    html = decide(screen(co, "lead"), aid, "shrug")
    assert "Not done:" in html and co.status(deal_id) == "pending"


def test_a_closed_approval_says_nothing_of_itself_to_someone_who_may_not_see_it(co):
    deal_id = submitted(co, "3000", "Top secret merger")
    aid = approval_id(co, deal_id)
    decide(screen(co, "lead"), aid, "approve")
    assert co.status(deal_id) == "approved"
    html = decide(screen(co, "rep2"), aid, "approve")  # can't read the deal, wasn't involved
    assert "Not found:" in html and "Top secret merger" not in html
    assert "Top secret merger" in decide(screen(co, "director"), aid, "approve")  # reads it: told it's closed


def test_an_id_beyond_any_approval_is_not_found_not_an_error(co):
    client = screen(co, "lead")
    assert client.get("/approvals/99999999999999999999").status_code == 404
    assert "Not found:" in decide(client, 99999999999999999999, "approve")


def test_the_second_of_two_finance_approvers_loses_the_race_with_a_409_message(co):
    deal_id = submitted(co, "8000")
    aid = approval_id(co, deal_id)
    decide(screen(co, "lead"), aid, "approve")
    fin1, fin3 = screen(co, "fin1"), screen(co, "fin3")
    assert rows(fin3.get("/approvals").get_data(as_text=True)) == [str(aid)]  # both see it
    decide(fin1, aid, "approve")
    html = decide(fin3, aid, "approve", "me too")
    assert "Not done:" in html and "alert-warning" in html and "no longer waiting" in html
    assert co.status(deal_id) == "approved"


def test_a_decision_on_a_closed_round_is_refused_after_resubmission(co):
    deal_id = submitted(co, "3000")
    first = approval_id(co, deal_id)
    co.fire("lead", deal_id, "reject", {"comment": "no"})
    co.fire("rep", deal_id, "submit")
    html = decide(screen(co, "lead"), first, "approve")
    assert "Not done:" in html and co.status(deal_id) == "pending"


def test_drawer_shows_the_record_as_submitted_and_the_trail(co):
    deal_id = submitted(co, "3000", "Bridge works")
    aid = approval_id(co, deal_id)
    co.fire("lead", deal_id, "reject", {"comment": "cheaper please"})
    r = co.as_("rep").patch(f"/api/v1/records/deal/{deal_id}", json={"amount": "2500", "version": co.as_(
        "rep").get(f"/api/v1/records/deal/{deal_id}").get_json()["version"]})
    assert r.status_code == 200, r.get_json()
    lead = screen(co, "lead")
    part = lead.get(f"/approvals/{aid}?partial=1").get_data(as_text=True)
    assert "<html" not in part and "Bridge works" in part
    assert "¥3,000.00" in part and "¥2,500.00" not in part  # as submitted, not as now
    assert "cheaper please" in part and "Rejected" in part and "mc-decide" not in part
    full = lead.get(f"/approvals/{aid}").get_data(as_text=True)
    assert "<html" in full and "Bridge works" in full
    assert screen(co, "rep2").get(f"/approvals/{aid}").status_code == 404
    assert lead.get("/approvals/999999").status_code == 404


def test_pending_drawer_offers_the_decision_form(co):
    deal_id = submitted(co, "3000")
    aid = approval_id(co, deal_id)
    assert "mc-decide" in screen(co, "lead").get(f"/approvals/{aid}?partial=1").get_data(as_text=True)
    assert "mc-decide" not in screen(co, "rep").get(f"/approvals/{aid}?partial=1").get_data(as_text=True)


def test_paging_and_a_bad_box_or_page(co):
    for i in range(23):
        submitted(co, "100", f"Deal {i:02d}")
    lead = screen(co, "lead")
    first = lead.get("/approvals").get_data(as_text=True)
    assert len(rows(first)) == 20 and "Page 1 of 2" in first and 'data-box="pending">23<' in first
    second = lead.get("/approvals?page=2").get_data(as_text=True)
    assert len(rows(second)) == 3 and not set(rows(first)) & set(rows(second))
    assert lead.get("/approvals?box=nonsense&page=-4").status_code == 200
    assert "Nothing waits" in lead.get("/approvals?page=9").get_data(as_text=True)


def test_a_locked_record_shows_no_edit_and_its_edit_form_is_refused(co):
    deal_id = submitted(co, "3000")
    rep = screen(co, "rep")
    html = rep.get(f"/r/deal/{deal_id}").get_data(as_text=True)
    assert 'id="mc-edit"' not in html
    r = rep.get(f"/r/deal/{deal_id}/edit")
    assert r.status_code == 409 and "locked" in r.get_data(as_text=True)
    co.fire("rep", deal_id, "withdraw")
    assert 'id="mc-edit"' in rep.get(f"/r/deal/{deal_id}").get_data(as_text=True)
    assert rep.get(f"/r/deal/{deal_id}/edit").status_code == 200


def test_decisions_need_the_csrf_token(co):
    deal_id = submitted(co, "3000")
    r = screen(co, "lead").post(f"/approvals/{approval_id(co, deal_id)}/decide", data={"decision": "approve"})
    assert r.status_code == 400 and co.status(deal_id) == "pending"


def test_chinese_labels(co):
    submitted(co, "3000")
    from metacrm.runtime import systables
    from metacrm.runtime.web.context import EXTENSION
    with co.app.extensions[EXTENSION].engine.begin() as conn:
        conn.execute(systables.users.update().where(systables.users.c.id == co.ids["lead"]).values(language="zh"))
    html = screen(co, "lead").get("/approvals").get_data(as_text=True)
    assert "待我审批" in html and "我发起的" in html and "我已审批" in html and "驳回" in html and "组长审批" in html
