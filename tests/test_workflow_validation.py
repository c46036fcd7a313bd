"""Workflow metadata validation: what the engine needs is refused at design time, with
file and JSON path — unreachable states, unknown states and roles, ambiguous names."""
from __future__ import annotations

import copy

from metacrm.metadata.documents import Document
from metacrm.metadata.validation import validate_documents

from .workflow_support import DEAL, TASK, roles, workflow

STEPS = [{"name": "manager", "approvers": {"type": "manager"}}]


def errors_of(*docs):
    documents = [Document(f"{d['kind']}_{d['name']}.json", d) for d in docs]
    return [str(e) for e in validate_documents(documents)]


def test_the_test_workflow_is_valid():
    assert errors_of(copy.deepcopy(DEAL), TASK, *roles(), workflow(STEPS)) == []


def test_unreachable_state_unknown_state_and_unknown_role_name_file_and_path():
    wf = workflow(STEPS)
    wf["states"].append({"name": "archived"})
    wf["transitions"][1]["to"] = "voided"
    wf["approvals"]["steps"]["steps"][0]["approvers"] = {"type": "role", "role": "auditor"}
    deal = copy.deepcopy(DEAL)
    next(f for f in deal["fields"] if f["name"] == "status")["options"].append({"value": "archived"})
    found = errors_of(deal, *roles(), wf)
    assert "workflow_deal_approval.json: /states/5/name: state 'archived' can't be reached from the initial " \
           "state 'draft'" in found
    assert any(e.startswith("workflow_deal_approval.json: /transitions/1/to: unknown state 'voided'") for e in found)
    assert any(e.startswith("workflow_deal_approval.json: /approvals/steps/steps/0/approvers/role: unknown role "
                            "'auditor'") for e in found)


def test_engine_rules_are_checked():
    wf = workflow(STEPS)
    wf["transitions"].append({"name": "approve", "from": ["pending"], "to": "approved"})
    wf["approvals"]["steps"]["steps"][0]["editable_fields"] = ["status"]
    wf["actions"] = [{"on": "approved", "set": {"note": "done", "signed_at": "$tomorrow"},
                      "notify": ["name", "role:nobody"]}]
    deal = copy.deepcopy(DEAL)
    next(f for f in deal["fields"] if f["name"] == "status")["default"] = "pending"
    found = errors_of(deal, *roles(), wf)
    expected = [
        "/state_field: field 'status' defaults to 'pending'",
        "/transitions/2/name: 'approve' is an approval decision",
        "/approvals/steps/steps/0/editable_fields/0: the state field changes only through transitions",
        "/actions/0/set/note: invalid expression 'done'",
        "/actions/0/set/signed_at: unknown placeholder '$tomorrow'",
        "/actions/0/notify/0: can't notify 'name'",
        "/actions/0/notify/1: unknown role 'nobody'",
    ]
    for text in expected:
        assert any(text in e for e in found), (text, found)


def test_two_workflows_may_not_share_a_state_field_or_transition_names():
    one, two = workflow(STEPS), workflow(STEPS)
    two["name"] = "other"
    found = errors_of(copy.deepcopy(DEAL), *roles(), one, two)
    assert any("/state_field: workflow 'other' already drives field 'status'" in e for e in found)
    assert any("/transitions/0/name: transition 'submit' is also in workflow" in e for e in found)
