"""Login, logout and API tokens over HTTP: who gets in, who is turned away, and that a
deactivated account is turned away at its very next request however it authenticates."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from metacrm.runtime import accounts, systables

from .support import role, ADMIN, entity

NOTE = entity("note", {"name": "text", "type": "text"}, ownership=True)
REP = ("rep", "rep-pass-123")


def _unauthorized(r: Any) -> None:
    assert r.status_code == 401, (r.status_code, r.get_data(as_text=True))
    body = r.get_json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "unauthorized" and body["error"]["message"]


def _app_with_rep(make_app: Any, engine_of: Any) -> tuple[Any, int]:
    app = make_app([NOTE, role("writer", NOTE["name"])])
    with engine_of(app).begin() as conn:
        rep = accounts.create_user(conn, REP[0], REP[1], display_name="Rep", language="zh", roles=("writer",))
    return app, rep.id


def _deactivate(engine: sa.Engine, user_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(systables.users.update().where(systables.users.c.id == user_id).values(active=False))


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_anonymous_requests_are_401_with_the_error_shape(make_app):
    app = make_app([NOTE])
    anon = app.test_client()
    for r in (anon.get("/api/v1/records/note"), anon.post("/api/v1/records/note", json={"text": "x"}),
              anon.get("/api/v1/records/note/1"), anon.delete("/api/v1/records/note/1"),
              anon.get("/api/v1/auth/me"), anon.get("/api/v1/auth/tokens"),
              anon.post("/api/v1/auth/tokens", json={}), anon.get("/api/v1/meta/entities"),
              anon.get("/api/v1/openapi.json")):
        _unauthorized(r)


def test_login_with_a_wrong_password_or_unknown_user_is_401(make_app):
    app = make_app([NOTE])
    c = app.test_client()
    _unauthorized(c.post("/api/v1/auth/login", json={"username": ADMIN[0], "password": "wrong-password"}))
    _unauthorized(c.post("/api/v1/auth/login", json={"username": "nobody", "password": ADMIN[1]}))
    _unauthorized(c.get("/api/v1/auth/me"))


def test_login_with_a_malformed_body_is_400(make_app):
    c = make_app([NOTE]).test_client()
    for body in ({"username": "admin"}, {"username": 1, "password": "x"}, ["admin", "pw"]):
        r = c.post("/api/v1/auth/login", json=body)
        assert r.status_code == 400 and r.get_json()["error"]["code"] == "bad_request"
    for broken in ("{oops", "[" * 100000, '{"username": "\\ud800", "password": "x"}'):
        r = c.post("/api/v1/auth/login", data=broken, content_type="application/json")
        assert r.status_code == 400 and r.get_json()["error"]["code"] == "bad_request"


def test_login_sets_a_session_and_answers_the_user(make_app, engine_of):
    app, rep_id = _app_with_rep(make_app, engine_of)
    c = app.test_client()
    r = c.post("/api/v1/auth/login", json={"username": REP[0], "password": REP[1]})
    assert r.status_code == 200
    user = r.get_json()["user"]
    assert (user["id"], user["username"], user["language"], user["is_admin"]) == (rep_id, "rep", "zh", False)
    assert c.get("/api/v1/auth/me").get_json()["user"]["id"] == rep_id
    assert c.post("/api/v1/records/note", json={"text": "mine"}).get_json()["owner"] == rep_id


def test_logout_ends_the_session(make_app, client_of):
    c = client_of(make_app([NOTE]))
    assert c.get("/api/v1/records/note").status_code == 200
    assert c.post("/api/v1/auth/logout").status_code == 200
    _unauthorized(c.get("/api/v1/records/note"))
    _unauthorized(c.get("/api/v1/auth/me"))


def test_token_secret_is_shown_once_and_works_as_a_bearer_on_a_fresh_client(make_app, client_of):
    app = make_app([NOTE])
    c = client_of(app)
    r = c.post("/api/v1/auth/tokens", json={"name": "CI"})
    assert r.status_code == 201
    created = r.get_json()
    secret = created["token"]
    assert created["name"] == "CI" and secret.startswith(created["prefix"]) and len(secret) > 30
    listed = c.get("/api/v1/auth/tokens").get_json()["items"]
    assert [t["id"] for t in listed] == [created["id"]]
    assert secret not in str(listed) and "token" not in listed[0]

    fresh = app.test_client()
    me = fresh.get("/api/v1/auth/me", headers=_bearer(secret))
    assert me.status_code == 200 and me.get_json()["user"]["username"] == ADMIN[0]
    r = fresh.post("/api/v1/records/note", json={"text": "via token"}, headers=_bearer(secret))
    assert r.status_code == 201, r.get_json()
    # A token authenticates one request; it does not log the client in.
    _unauthorized(fresh.get("/api/v1/auth/me"))
    assert c.get("/api/v1/auth/tokens").get_json()["items"][0]["last_used_at"] is not None


def test_the_bearer_scheme_is_case_insensitive(make_app, client_of):
    app = make_app([NOTE])
    secret = client_of(app).post("/api/v1/auth/tokens", json={}).get_json()["token"]
    fresh = app.test_client()
    for header in (f"bearer {secret}", f"BEARER {secret}", f"Bearer   {secret}  "):
        r = fresh.get("/api/v1/auth/me", headers={"Authorization": header})
        assert r.status_code == 200, header


def test_a_wrong_or_malformed_token_is_401(make_app, client_of):
    app = make_app([NOTE])
    secret = client_of(app).post("/api/v1/auth/tokens", json={}).get_json()["token"]
    fresh = app.test_client()
    for header in (f"Bearer {secret}x", f"Bearer {secret[:-1]}", "Bearer ", "Bearer mcrm_", "Basic YWRtaW46eA==",
                   f"Token {secret}", "Bearer " + "x" * 5000, "Bearer mcrm_\u00e9\u4e2d"):
        _unauthorized(fresh.get("/api/v1/records/note", headers={"Authorization": header}))


def test_a_revoked_token_is_401(make_app, client_of):
    app = make_app([NOTE])
    c = client_of(app)
    created = c.post("/api/v1/auth/tokens", json={"name": "old"}).get_json()
    keep = c.post("/api/v1/auth/tokens", json={"name": "keep"}).get_json()
    fresh = app.test_client()
    assert fresh.get("/api/v1/records/note", headers=_bearer(created["token"])).status_code == 200
    assert c.delete(f"/api/v1/auth/tokens/{created['id']}").status_code == 204
    _unauthorized(fresh.get("/api/v1/records/note", headers=_bearer(created["token"])))
    _unauthorized(app.test_client().get("/api/v1/records/note", headers=_bearer(created["token"])))
    assert fresh.get("/api/v1/records/note", headers=_bearer(keep["token"])).status_code == 200
    listed = {t["name"]: t["revoked"] for t in c.get("/api/v1/auth/tokens").get_json()["items"]}
    assert listed == {"old": True, "keep": False}
    r = c.delete(f"/api/v1/auth/tokens/{created['id']}")
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"


def test_a_user_cannot_revoke_someone_elses_token(make_app, client_of, engine_of):
    app, _ = _app_with_rep(make_app, engine_of)
    admin = client_of(app)
    token = admin.post("/api/v1/auth/tokens", json={}).get_json()
    rep = client_of(app, *REP)
    r = rep.delete(f"/api/v1/auth/tokens/{token['id']}")
    assert r.status_code == 404
    assert app.test_client().get("/api/v1/auth/me", headers=_bearer(token["token"])).status_code == 200
    assert rep.get("/api/v1/auth/tokens").get_json()["items"] == []


def test_token_create_with_a_bad_body_is_refused(make_app, client_of):
    c = client_of(make_app([NOTE]))
    r = c.post("/api/v1/auth/tokens", json=["x"])
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "bad_request"
    r = c.post("/api/v1/auth/tokens", json={"name": "n" * 201})
    assert r.status_code == 422 and "name" in r.get_json()["error"]["fields"]
    for broken in ("{oops", "[" * 100000, "null", '{"name": "\\ud800"}'):
        r = c.post("/api/v1/auth/tokens", data=broken, content_type="application/json")
        assert r.status_code == 400 and r.get_json()["error"]["code"] == "bad_request"
    assert c.get("/api/v1/auth/tokens").get_json()["items"] == []
    assert c.post("/api/v1/auth/tokens", json={}).get_json()["name"] == "API token"
    assert c.post("/api/v1/auth/tokens").get_json()["name"] == "API token"  # no body at all


def test_a_deactivated_user_is_rejected_at_the_next_request_with_session_or_token(make_app, client_of,
                                                                                   engine_of):
    app, rep_id = _app_with_rep(make_app, engine_of)
    session = client_of(app, *REP)
    secret = session.post("/api/v1/auth/tokens", json={}).get_json()["token"]
    token_client = app.test_client()
    assert session.get("/api/v1/records/note").status_code == 200
    assert token_client.get("/api/v1/records/note", headers=_bearer(secret)).status_code == 200

    _deactivate(engine_of(app), rep_id)

    _unauthorized(session.get("/api/v1/records/note"))
    _unauthorized(session.post("/api/v1/records/note", json={"text": "still here?"}))
    _unauthorized(token_client.get("/api/v1/records/note", headers=_bearer(secret)))
    _unauthorized(app.test_client().post("/api/v1/auth/login", json={"username": REP[0], "password": REP[1]}))
    with engine_of(app).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM ent_note")).scalar_one() == 0


def test_a_reactivated_user_can_sign_in_again(make_app, client_of, engine_of):
    app, rep_id = _app_with_rep(make_app, engine_of)
    _deactivate(engine_of(app), rep_id)
    _unauthorized(app.test_client().post("/api/v1/auth/login", json={"username": REP[0], "password": REP[1]}))
    with engine_of(app).begin() as conn:
        conn.execute(systables.users.update().where(systables.users.c.id == rep_id).values(active=True))
    assert client_of(app, *REP).get("/api/v1/auth/me").get_json()["user"]["id"] == rep_id


def test_a_session_follows_the_users_current_language(make_app, client_of, engine_of):
    """The principal is rebuilt per request, so a changed setting applies without a new login."""
    app, rep_id = _app_with_rep(make_app, engine_of)
    c = client_of(app, *REP)
    assert c.get("/api/v1/auth/me").get_json()["user"]["language"] == "zh"
    with engine_of(app).begin() as conn:
        conn.execute(systables.users.update().where(systables.users.c.id == rep_id).values(language="en"))
    assert c.get("/api/v1/auth/me").get_json()["user"]["language"] == "en"
