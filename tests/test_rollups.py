"""A field's `rollup`: a new follow-up keeps its subject's last/next follow-up in step,
whichever door it came through — the API, the record page's box, an import — and bad
roll-ups are refused when the metadata is validated."""
from __future__ import annotations

from typing import Any

import pytest

from metacrm.metadata.documents import Document
from metacrm.metadata.validation import validate_documents
from metacrm.runtime import accounts
from metacrm.runtime.records import create_records
from metacrm.runtime.web.context import EXTENSION

from .support import add_user, admin_bearer, bearer, entity, role

CUSTOMER = entity("customer", {"name": "name", "type": "text", "required": True},
                  {"name": "last_followup_at", "type": "datetime", "readonly": True},
                  {"name": "next_followup_at", "type": "datetime"},
                  ownership=True, title_field="name")
LEAD = entity("lead", {"name": "name", "type": "text", "required": True}, ownership=True, title_field="name")
FOLLOWUP = entity("followup",
                  {"name": "subject", "type": "reference", "targets": ["customer", "lead"], "required": True,
                   "rollup": {"last_followup_at": "created_at", "next_followup_at": "next_followup_at"}},
                  {"name": "content", "type": "text", "required": True},
                  {"name": "next_followup_at", "type": "datetime"},
                  ownership=True, title_field="content")
DOCS = [CUSTOMER, LEAD, FOLLOWUP, role("sales", "customer", "lead", "followup", scope="self")]


@pytest.fixture
def app(make_app: Any) -> Any:
    return make_app(DOCS)


def _customer(client: Any, headers: dict[str, str], id_: int) -> dict[str, Any]:
    return client.get(f"/api/v1/records/customer/{id_}", headers=headers).get_json()


def test_a_followup_from_the_api_rolls_up_onto_its_customer_with_history(app: Any, engine_of: Any) -> None:
    client, admin = app.test_client(), admin_bearer(app)
    with engine_of(app).begin() as conn:
        rep = bearer(conn, add_user(conn, "rep", roles=("sales",)))
    customer = client.post("/api/v1/records/customer", headers=rep, json={"name": "Acme"}).get_json()
    r = client.post("/api/v1/records/followup", headers=rep, json={
        "subject": {"entity": "customer", "id": customer["id"]}, "content": "Called",
        "next_followup_at": "2030-01-02T03:00:00Z"})
    assert r.status_code == 201, r.get_json()
    followup = r.get_json()
    after = _customer(client, rep, customer["id"])
    assert after["last_followup_at"] == followup["created_at"]
    assert after["next_followup_at"].startswith("2030-01-02T03:00:00")
    assert after["version"] == customer["version"] + 1
    history = client.get(f"/api/v1/records/customer/{customer['id']}/history", headers=admin).get_json()["items"]
    assert {"last_followup_at", "next_followup_at"} <= {h["field"] for h in history}

    # A follow-up without a next date keeps the one the customer has; a lead has neither field.
    client.post("/api/v1/records/followup", headers=rep, json={
        "subject": {"entity": "customer", "id": customer["id"]}, "content": "Mailed"})
    assert _customer(client, rep, customer["id"])["next_followup_at"].startswith("2030-01-02T03:00:00")
    lead = client.post("/api/v1/records/lead", headers=rep, json={"name": "Bob"}).get_json()
    r = client.post("/api/v1/records/followup", headers=rep, json={
        "subject": {"entity": "lead", "id": lead["id"]}, "content": "Hello"})
    assert r.status_code == 201, r.get_json()


def test_a_batch_of_followups_rolls_up_too(app: Any) -> None:
    rt = app.extensions[EXTENSION]
    client, headers = app.test_client(), admin_bearer(app)
    customer = client.post("/api/v1/records/customer", headers=headers, json={"name": "Batchco"}).get_json()
    with rt.engine.begin() as conn:
        admin = accounts.principal_for(conn, accounts.find_account(conn, "admin"))  # type: ignore[arg-type]
        results = create_records(conn, rt.catalog(conn), admin, "followup", [
            {"subject": {"entity": "customer", "id": customer["id"]}, "content": "one",
             "next_followup_at": "2031-05-01T00:00:00Z"},
            {"subject": {"entity": "customer", "id": customer["id"]}, "content": ""},  # refused: required
        ])
    assert results[0].record_id is not None and results[1].error is not None
    after = _customer(client, headers, customer["id"])
    assert after["next_followup_at"].startswith("2031-05-01") and after["last_followup_at"]


@pytest.mark.parametrize("field, message", [
    ({"name": "subject", "type": "text", "rollup": {"last_followup_at": "content"}}, "only a lookup or reference"),
    ({"name": "subject", "type": "reference", "targets": ["customer"], "rollup": {"last_followup_at": "nope"}},
     "unknown field 'nope'"),
    ({"name": "subject", "type": "reference", "targets": ["customer"], "rollup": {"nowhere": "content"}},
     "none of the targets has a field 'nowhere'"),
])
def test_a_bad_rollup_is_refused_with_its_path(field: dict[str, Any], message: str) -> None:
    followup = entity("followup", field, {"name": "content", "type": "text"}, title_field="content")
    errors = validate_documents([Document("customer.json", CUSTOMER), Document("followup.json", followup)])
    assert any(message in e.message and e.source == "followup.json" and e.path.startswith("/fields/0")
               for e in errors), [str(e) for e in errors]
