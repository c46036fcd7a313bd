"""The entity-action door: an action must be offered by the entity, known to the server,
and granted to the caller before any handler runs."""
from __future__ import annotations

import pytest

from metacrm.runtime import actions

from .support import add_user, bearer, entity, error_of


@pytest.fixture
def echo_action():
    """A handler registered for the test only: answers what it was given."""
    def echo(conn, catalog, principal, entity_name, record_id, body):
        return {"entity": entity_name, "id": record_id, "by": principal.username, "body": dict(body)}
    actions.HANDLERS["echo"] = echo
    yield echo
    actions.HANDLERS.pop("echo", None)


DOCS = [
    entity("thing", {"name": "name", "type": "text"},
           actions=[{"name": "echo", "label": {"en": "Echo", "zh": "回显"}}, {"name": "unknown_to_server"}]),
    {"kind": "role", "name": "clerk", "label": "clerk", "permissions": {"thing": {"read": "all", "create": True}}},
    {"kind": "role", "name": "echoer", "label": "echoer", "permissions": {"thing": {"read": "all", "echo": True}}},
]


def _setup(make_app, engine_of):
    app = make_app(DOCS)
    with engine_of(app).begin() as conn:
        eve = bearer(conn, add_user(conn, "eve", roles=["echoer"]))
        carl = bearer(conn, add_user(conn, "carl", roles=["clerk"]))
    client = app.test_client()
    rec = client.post("/api/v1/records/thing", json={"name": "x"}, headers=carl).get_json()
    return client, rec["id"], eve, carl


def test_action_runs_for_a_granted_user(make_app, engine_of, echo_action):
    client, rid, eve, carl = _setup(make_app, engine_of)
    r = client.post(f"/api/v1/records/thing/{rid}/actions/echo", json={"a": 1}, headers=eve)
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {"entity": "thing", "id": rid, "by": "eve", "body": {"a": 1}}
    error_of(client.post(f"/api/v1/records/thing/{rid}/actions/echo", json={}, headers=carl), 403)


def test_unoffered_or_unknown_actions_are_404_and_bad_bodies_400(make_app, engine_of, echo_action):
    client, rid, eve, _ = _setup(make_app, engine_of)
    error_of(client.post(f"/api/v1/records/thing/{rid}/actions/claim", json={}, headers=eve), 404)
    error_of(client.post(f"/api/v1/records/thing/{rid}/actions/unknown_to_server", json={}, headers=eve), 404)
    error_of(client.post(f"/api/v1/records/thing/{rid}/actions/echo", json=[1, 2], headers=eve), 400)
    error_of(client.post(f"/api/v1/records/thing/{rid}/actions/echo", data="nope", content_type="text/plain",
                         headers=eve), 400)
