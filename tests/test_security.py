"""Account security at the HTTP level: sign-in throttling and cross-site write refusal."""
from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from metacrm.runtime import clock

from .support import ADMIN, entity

NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def frozen() -> Any:
    moment = {"now": NOW}
    clock.set_clock(lambda: moment["now"])
    yield moment
    clock.set_clock(None)


def _login(client: Any, password: str, addr: str = "10.0.0.1") -> Any:
    return client.post("/api/v1/auth/login", json={"username": ADMIN[0], "password": password},
                       environ_base={"REMOTE_ADDR": addr})


def test_five_failed_sign_ins_throttle_that_address_for_fifteen_minutes(make_app: Any, frozen: Any) -> None:
    client = make_app([entity("note", {"name": "name", "type": "text"})]).test_client()
    for _ in range(5):
        assert _login(client, "wrong-password").status_code == 401
    refused = _login(client, ADMIN[1])  # even the right password waits
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "too_many_requests"
    assert 0 < int(refused.headers["Retry-After"]) <= 15 * 60
    assert _login(client, ADMIN[1], addr="10.0.0.2").status_code == 200  # another address isn't locked out
    frozen["now"] = NOW + dt.timedelta(minutes=16)
    assert _login(client, ADMIN[1]).status_code == 200


def test_successful_sign_in_clears_earlier_failures(make_app: Any, frozen: Any) -> None:
    client = make_app([entity("note", {"name": "name", "type": "text"})]).test_client()
    for _ in range(4):
        _login(client, "wrong-password")
    assert _login(client, ADMIN[1]).status_code == 200
    for _ in range(4):
        assert _login(client, "wrong-password").status_code == 401
    assert _login(client, ADMIN[1]).status_code == 200


def test_many_addresses_guessing_one_user_are_slowed_too(make_app: Any, frozen: Any) -> None:
    client = make_app([entity("note", {"name": "name", "type": "text"})]).test_client()
    for i in range(20):
        assert _login(client, "wrong-password", addr=f"10.1.0.{i}").status_code == 401
    assert _login(client, ADMIN[1], addr="10.2.0.1").status_code == 429


def test_cookie_authenticated_write_from_another_site_is_refused(make_app: Any, client_of: Any) -> None:
    app = make_app([entity("note", {"name": "name", "type": "text"})])
    client = client_of(app)
    r = client.post("/api/v1/records/note", json={"name": "forged"}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "forbidden"
    r = client.post("/api/v1/records/note", json={"name": "forged"},
                    headers={"Referer": "https://evil.example/page"})
    assert r.status_code == 403
    assert client.get("/api/v1/records/note").get_json()["total"] == 0
    same_site = client.post("/api/v1/records/note", json={"name": "mine"}, headers={"Origin": "http://localhost"})
    assert same_site.status_code == 201


def test_form_encoded_or_text_bodies_cant_write(make_app: Any, client_of: Any) -> None:
    """What a cross-site HTML form can send (no preflight) is never accepted as a write."""
    app = make_app([entity("note", {"name": "name", "type": "text"})])
    client = client_of(app)
    r = client.post("/api/v1/records/note", data='{"name": "forged"}', content_type="text/plain")
    assert r.status_code == 400
    r = client.post("/api/v1/records/note", data={"name": "forged"})
    assert r.status_code == 400
    assert client.get("/api/v1/records/note").get_json()["total"] == 0
    login = app.test_client().post("/api/v1/auth/login", data={"username": ADMIN[0], "password": ADMIN[1]})
    assert login.status_code == 400


def test_token_requests_need_no_origin(make_app: Any, client_of: Any) -> None:
    app = make_app([entity("note", {"name": "name", "type": "text"})])
    token = client_of(app).post("/api/v1/auth/tokens", json={"name": "ci"}).get_json()["token"]
    r = app.test_client().post("/api/v1/records/note", json={"name": "via token"},
                               headers={"Authorization": f"Bearer {token}", "Origin": "https://elsewhere.example"})
    assert r.status_code == 201
