"""The bell: engines notify users in their transaction; each user sees and clears only their own."""
from __future__ import annotations

from metacrm.runtime import notifications

from .support import add_user, bearer, error_of


def test_notify_list_and_mark_read(make_app, engine_of):
    app = make_app()
    with engine_of(app).begin() as conn:
        ann, bob = add_user(conn, "ann"), add_user(conn, "bob")
        ann_h, bob_h = bearer(conn, ann), bearer(conn, bob)
        assert notifications.notify(conn, [ann, ann, None, bob], kind="approval",
                                    title={"en": "Contract waiting", "zh": "合同待审批"},
                                    entity="contract", record_id=7) == 2
        notifications.notify(conn, [ann], kind="pool", title={"en": "Returns to pool", "zh": "即将退回公海"})
    c = app.test_client()
    body = c.get("/api/v1/notifications", headers=ann_h).get_json()
    assert body["unread"] == 2 and [i["kind"] for i in body["items"]] == ["pool", "approval"]
    assert body["items"][1]["link"] == "/r/contract/7" and body["items"][1]["title"]["zh"] == "合同待审批"
    first = body["items"][1]["id"]
    # Bob can't clear Ann's notification: his ids match nothing of his.
    assert c.post("/api/v1/notifications/read", json={"ids": [first]}, headers=bob_h).get_json()["marked"] == 0
    r = c.post("/api/v1/notifications/read", json={"ids": [first]}, headers=ann_h).get_json()
    assert r == {"marked": 1, "unread": 1}
    assert len(c.get("/api/v1/notifications?unread=1", headers=ann_h).get_json()["items"]) == 1
    assert c.post("/api/v1/notifications/read", headers=ann_h).get_json() == {"marked": 1, "unread": 0}
    error_of(c.post("/api/v1/notifications/read", json={"ids": "all"}, headers=ann_h), 400)
    error_of(c.post("/api/v1/notifications/read", json={"ids": [True]}, headers=ann_h), 400)
    assert c.get("/api/v1/notifications").status_code == 401
