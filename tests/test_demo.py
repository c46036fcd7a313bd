"""Demo data (`metacrm.runtime.demo`): made through the record service on the default CRM,
consistent (formulas, references), deterministic, idempotent, and leaves the clock alone."""
from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from metacrm.runtime import accounts, clock, systables
from metacrm.runtime.demo import DEMO_PASSWORD, LEAD_STATUSES, MARKER_ACTION, STAGES_ALL, USERS, load_demo_data
from metacrm.runtime.errors import BadRequest
from metacrm.runtime.metastore import install_seed
from metacrm.runtime.web.context import EXTENSION

from .support import login

#: summary key -> entity whose list total must equal it
LISTED = {"products": "product", "customers": "customer", "contacts": "contact", "leads": "lead",
          "opportunities": "opportunity", "contracts": "contract", "receivable_plans": "receivable_plan",
          "receivables": "receivable", "followups": "followup"}
CENT = Decimal("0.01")


@pytest.fixture(autouse=True)
def cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """scrypt costs ~0.3 s a user; the demo makes eleven. Logins still check real hashes."""
    monkeypatch.setattr(accounts, "generate_password_hash",
                        lambda password: generate_password_hash(password, method="pbkdf2:sha256:1000"))


def _default_crm(make_app: Any, **config: Any) -> Any:
    app = make_app(**config)
    rt = app.extensions[EXTENSION]
    with rt.engine.begin() as conn:
        install_seed(conn, "crm-default")
    rt.invalidate()
    return app


def _all(client: Any, entity: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        r = client.get(f"/api/v1/records/{entity}?page_size=500&page={page}")
        assert r.status_code == 200, r.get_json()
        batch = r.get_json()["items"]
        items += batch
        if len(batch) < 500:
            return items
        page += 1


def _total(client: Any, entity: str) -> int:
    r = client.get(f"/api/v1/records/{entity}?page_size=1")
    assert r.status_code == 200, r.get_json()
    return r.get_json()["total"]


def _row_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in (systables.users, systables.departments, systables.history, systables.audit_log)}


def test_demo_data_is_consistent_and_loaded_once(make_app: Any, client_of: Any, engine_of: Any) -> None:
    app = _default_crm(make_app)
    rt = app.extensions[EXTENSION]
    summary = load_demo_data(rt, customers=30)

    assert summary["departments"] == 6 and summary["users"] == len(USERS) and summary["customers"] == 30
    assert all(n > 0 for n in summary.values()), summary
    # The clock is the real one again.
    assert abs(clock.utcnow() - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=1)

    client = client_of(app)
    for key, entity in LISTED.items():
        assert _total(client, entity) == summary[key], key
    with engine_of(app).connect() as conn:
        d, u = systables.departments, systables.users
        assert conn.execute(sa.select(sa.func.count()).select_from(d)).scalar_one() == summary["departments"]
        assert conn.execute(sa.select(sa.func.count()).select_from(u).where(
            u.c.username.in_([s.username for s in USERS]))).scalar_one() == summary["users"]
        tree = {r.name: r for r in conn.execute(sa.select(d))}
        assert tree["华东销售组"].parent_id == tree["销售部"].id and tree["销售部"].parent_id == tree["总经理办公室"].id
        assert all(r.head_id is not None for r in tree.values())

    # Every contract's amount is the sum of its lines; the lines are the formula of their fields.
    lines = 0
    plans_by_contract: dict[int, Decimal] = {}
    for plan in _all(client, "receivable_plan"):
        so_far = plans_by_contract.get(plan["contract"], Decimal(0))
        plans_by_contract[plan["contract"]] = so_far + Decimal(plan["amount"])
    for item in _all(client, "contract"):
        contract = client.get(f"/api/v1/records/contract/{item['id']}").get_json()
        assert 1 <= len(contract["lines"]) <= 4
        for line in contract["lines"]:
            expected = (Decimal(line["quantity"]) * Decimal(line["price"])
                        * (1 - Decimal(line["discount"] or 0) / 100)).quantize(CENT, ROUND_HALF_UP)
            assert Decimal(line["amount"]) == expected
        assert Decimal(contract["amount"]) == sum(Decimal(line["amount"]) for line in contract["lines"])
        assert plans_by_contract[contract["id"]] == Decimal(contract["amount"])  # instalments add up
        assert contract["number"].startswith("HT-")
        lines += len(contract["lines"])
    assert lines == summary["contract_lines"]

    # Every follow-up's subject exists.
    for followup in _all(client, "followup"):
        subject = followup["subject"]
        r = client.get(f"/api/v1/records/{subject['entity']}/{subject['id']}")
        assert r.status_code == 200, (followup, r.get_json())

    # One primary contact per customer; every stage and lead status shows up.
    primaries: dict[int, int] = {}
    for contact in _all(client, "contact"):
        primaries[contact["customer"]] = primaries.get(contact["customer"], 0) + bool(contact["is_primary"])
    assert len(primaries) == 30 and set(primaries.values()) == {1}
    assert {o["stage"] for o in _all(client, "opportunity")} == set(STAGES_ALL)
    assert {lead["status"] for lead in _all(client, "lead")} == set(LEAD_STATUSES)
    # States came through the workflows: contracts approved along the chain, trails kept.
    contracts = _all(client, "contract")
    assert "approved" in {c["approval_status"] for c in contracts}
    approved = next(c for c in contracts if c["approval_status"] == "approved")
    trail = client.get(f"/api/v1/records/contract/{approved['id']}/approvals").get_json()["trail"]
    assert trail[0]["action"] == "submit" and trail[-1]["action"] == "approved"

    # Records are owned by the demo staff, and what they made is theirs.
    staff = {s.username for s in USERS}
    with engine_of(app).connect() as conn:
        u = systables.users
        names = dict(conn.execute(sa.select(u.c.id, u.c.username)).all())
    customers = _all(client, "customer")
    pooled = [c for c in customers if c["owner"] is None]  # released into the public pool (公海)
    assert len(pooled) == summary["pool_customers"] >= 3
    assert all(c["pool"] == "default" and c["deal_status"] == "unsold" for c in pooled)
    customers = [c for c in customers if c["owner"] is not None]
    assert {names[c["owner"]] for c in customers} <= staff
    # ... except key accounts with a credit limit, which reps may not set: the sales
    # director enters those on the owner's behalf.
    director = next(uid for uid, name in names.items() if name == "zhang.wei")
    assert all(c["created_by"] == (director if c.get("credit_limit") else c["owner"]) for c in customers)
    assert any(c.get("credit_limit") for c in customers)
    assert len({c["name"] for c in customers + pooled}) == 30

    # A demo user can sign in with the documented password.
    login(app.test_client(), "zhang.wei", DEMO_PASSWORD)

    # Second call: nothing, and nothing changes — also when only the demo users remain as a sign.
    before = {entity: _total(client, entity) for entity in LISTED.values()}
    rows_before = _row_counts(engine_of(app))
    assert load_demo_data(rt, customers=30) == {}
    with engine_of(app).begin() as conn:
        conn.execute(systables.audit_log.delete().where(systables.audit_log.c.action == MARKER_ACTION))
    assert load_demo_data(rt, customers=5, seed=99) == {}
    assert {entity: _total(client, entity) for entity in LISTED.values()} == before
    rows_after = _row_counts(engine_of(app))
    assert rows_after == dict(rows_before, mc_audit_log=rows_before["mc_audit_log"] - 1)


def test_same_seed_same_data(make_app: Any, tmp_path: Any, is_postgres: bool, engine_of: Any) -> None:
    if is_postgres:
        pytest.skip("needs two databases; the SQLite run covers it")
    frozen = dt.datetime(2025, 3, 14, 9, 30, tzinfo=dt.timezone.utc)
    clock.set_clock(lambda: frozen)
    try:
        dumps = []
        for name, seed in (("a", 7), ("b", 7), ("c", 8)):
            app = _default_crm(make_app, DATABASE_URL=f"sqlite:///{tmp_path / name}.db")
            assert load_demo_data(app.extensions[EXTENSION], customers=8, seed=seed)["customers"] == 8
            assert clock.utcnow() == frozen  # a frozen clock stays frozen
            with engine_of(app).connect() as conn:
                customer = sa.Table("ent_customer", sa.MetaData(), autoload_with=conn)
                contract = sa.Table("ent_contract", sa.MetaData(), autoload_with=conn)
                dumps.append((
                    conn.execute(sa.select(customer.c.name, customer.c.phone, customer.c.created_at,
                                           customer.c.owner).order_by(customer.c.id)).all(),
                    conn.execute(sa.select(contract.c.number, contract.c.amount, contract.c.sign_date)
                                 .order_by(contract.c.id)).all()))
                assert max(r.created_at for r in dumps[-1][0]) <= frozen.replace(tzinfo=None)
    finally:
        clock.set_clock(None)
    assert dumps[0] == dumps[1]
    assert dumps[0][0] != dumps[2][0]


def test_refuses_an_instance_without_the_default_crm(make_app: Any, engine_of: Any) -> None:
    app = make_app()
    before = _row_counts(engine_of(app))
    with pytest.raises(BadRequest, match="crm-default"):
        load_demo_data(app.extensions[EXTENSION], customers=3)
    assert _row_counts(engine_of(app)) == before
