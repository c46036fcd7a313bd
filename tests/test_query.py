"""List queries (`GET /api/v1/records/<entity>`): filters, relative dates, placeholders,
nested groups, sort and paging, `q`, views, and bad input.

One small `deal` entity with every kind of filterable field holds ten records created
through the API with the clock frozen at Monday 2026-11-23 10:00 UTC, so every relative
range is deterministic. Each test asserts the EXACT set (or order) of records returned,
named by key (see DEALS) rather than by id.

Ranges at that moment (UTC; half-open [start, end)): today 11-23; yesterday 11-22;
this_week = next_7_days = 11-23..11-29 (a Monday); last_week 11-16..11-22; this_month
November; last_month October; this_quarter Oct..Dec; this_year 2026; last_30_days
10-25..11-23; next_30_days 11-23..12-22.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from metacrm.runtime import accounts, systables
from metacrm.runtime.clock import set_clock

from .support import ADMIN, entity

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
FAST_HASH = generate_password_hash("unused-password", method="pbkdf2:sha256:1")


@pytest.fixture(autouse=True)
def frozen_clock():
    set_clock(lambda: NOW)
    yield NOW
    set_clock(None)


# ------------------------------------------------------------------ metadata and data set

OPTIONS = {
    "stage": ["new", "won", "lost"],
    "tags": ["vip", "hot", "hottest", "cold"],
}


def _options(values: list[str]) -> list[dict[str, Any]]:
    return [{"value": v, "label": {"en": v.title(), "zh": v}} for v in values]


def _view(name: str, filters: list[Any], sort: list[Any] | None = None, page_size: int | None = None) -> dict:
    doc: dict[str, Any] = {"kind": "view", "entity": "deal", "name": name, "label": {"en": name, "zh": name},
                           "type": "table", "columns": ["name", "amount"], "filters": filters}
    if sort:
        doc["sort"] = sort
    if page_size:
        doc["page_size"] = page_size
    return doc


DOCS = [
    entity("company", {"name": "name", "type": "text", "searchable": True}, title_field="name"),
    entity("person", {"name": "name", "type": "text"}, title_field="name"),
    entity(
        "deal",
        {"name": "name", "type": "text", "max_length": 200, "searchable": True},
        {"name": "notes", "type": "textarea", "searchable": True},
        {"name": "city", "type": "text", "searchable": True},
        {"name": "secret", "type": "text"},
        {"name": "stage", "type": "select", "options": _options(OPTIONS["stage"])},
        {"name": "tags", "type": "multiselect", "options": _options(OPTIONS["tags"])},
        {"name": "qty", "type": "integer"},
        {"name": "amount", "type": "currency", "min": 0},
        {"name": "close_date", "type": "date"},
        {"name": "met_at", "type": "datetime"},
        {"name": "active", "type": "boolean"},
        {"name": "company", "type": "lookup", "target": "company"},
        {"name": "subject", "type": "reference", "targets": ["company", "person"]},
        {"name": "site", "type": "location"},
        {"name": "old_code", "type": "text", "archived": True},
        title_field="name", ownership=True,
    ),
    # No text field at all (its title is the id), and a "searchable" flag on an integer.
    entity("counter", {"name": "n", "type": "integer", "searchable": True}),
    _view("big_ones", [["amount", ">=", 1500]], sort=[["amount", "desc"]], page_size=2),
    _view("mine", [["owner", "=", "$me"]]),
    _view("closing_this_month", [["close_date", "between", "this_month"]]),
    _view("hot_or_won", [{"any": [["tags", "contains", "hot"], ["stage", "=", "won"]]}], sort=[["qty", "asc"]]),
]

#: The data set. `company`/`subject` name companies c1, c2 and person p1 (created first, so
#: c1 and p1 both have id 1: a reference filter must compare the entity too); `owner`
#: and `department` name the users and departments made by the fixture.
DEALS: dict[str, dict[str, Any]] = {
    "alpha": dict(name="Alpha Deal", notes="Call back today", city="上海", secret=None, stage="new",
                  tags=["vip", "hot"], qty=10, amount="1500.00", close_date="2026-11-23",
                  met_at="2026-11-23T09:00:00Z", active=True, company="c1", subject="c1",
                  site={"lat": 31.2304, "lng": 121.4737, "address": "上海市浦东新区"},
                  owner="admin", department=None),
    "beta": dict(name="beta deal", notes="折扣 50% off", city="Beijing", secret=None, stage="won",
                 tags=["hottest"], qty=5, amount="250.50", close_date="2026-11-22",
                 met_at="2026-11-22T17:00:00Z", active=False, company="c2", subject="p1",
                 site={"lat": None, "lng": None, "address": "Beijing Road 1"},
                 owner="alice", department="sales"),
    "gamma": dict(name="Gamma_1", notes="under_score", city=None, secret="alpha", stage="lost",
                  tags=[], qty=0, amount="0.00", close_date="2026-11-16",
                  met_at="2026-11-16T00:00:00Z", active=True, company=None, subject=None, site=None,
                  owner="bob", department="support"),
    "beijing": dict(name="北京科技有限公司", notes="重要客户 VIP", city="北京", secret=None, stage="new",
                    tags=["cold"], qty=-3, amount="99999.99", close_date="2026-10-31",
                    met_at="2026-10-31T23:59:59Z", active=None, company="c1", subject="c2", site=None,
                    owner="alice", department="sales"),
    "delta": dict(name=None, notes=None, city=None, secret=None, stage=None, tags=None, qty=None,
                  amount=None, close_date=None, met_at=None, active=None, company=None, subject=None,
                  site=None, owner="admin", department=None),
    "epsilon": dict(name="Epsilon", notes="1000 units", city=None, secret=None, stage="won",
                    tags=["vip", "cold"], qty=7, amount="1500.00", close_date="2026-11-29",
                    met_at="2026-11-30T00:00:00Z", active=True, company="c2", subject="c1",
                    site={"lat": 0, "lng": 0, "address": None}, owner="bob", department="support"),
    "zeta": dict(name="zeta", notes="underXscore", city=None, secret=None, stage="new",
                 tags=["hot", "cold"], qty=12, amount="10.00", close_date="2026-12-22",
                 met_at="2026-12-23T00:00:00Z", active=False, company=None, subject="p1", site=None,
                 owner="admin", department=None),
    "eta": dict(name="eta", notes="", city="北京", secret=None, stage="lost", tags=None, qty=3,
                amount="1500.00", close_date="2026-01-01", met_at="2026-02-01T00:00:00Z", active=True,
                company="c1", subject=None, site=None, owner="alice", department="support"),
    "theta": dict(name="theta", notes="100% sure", city=None, secret=None, stage="won", tags=[], qty=100,
                  amount="5000.00", close_date="2026-12-23", met_at="2026-11-24T05:00:00Z", active=True,
                  company=None, subject=None, site=None, owner="admin", department=None),
    "dollar": dict(name="$5 special", notes="$5 off", city=None, secret=None, stage="new", tags=["vip"],
                   qty=10, amount="12.34", close_date="2026-10-24", met_at="2026-10-25T00:00:00Z",
                   active=False, company=None, subject=None, site=None, owner="admin", department=None),
}
ALL = frozenset(DEALS)


def but(*keys: str) -> set[str]:
    return set(ALL - set(keys))


def _department(engine: sa.Engine, name: str) -> int:
    with engine.begin() as conn:
        return conn.execute(systables.departments.insert().values(name=name, created_at=NOW)
                            .returning(systables.departments.c.id)).scalar_one()


def _user(engine: sa.Engine, username: str, department_id: int | None) -> int:
    """A user row (a cheap password hash: scrypt would dominate the fixture's time)."""
    with engine.begin() as conn:
        return conn.execute(systables.users.insert().values(
            username=username, password_hash=FAST_HASH, display_name=username.title(), language="en",
            is_admin=True, active=True, department_id=department_id, created_at=NOW)
            .returning(systables.users.c.id)).scalar_one()


def token_client(app: Any, engine: sa.Engine, user_id: int) -> Any:
    """A test client that authenticates with an API token (no password hashing per login)."""
    with engine.begin() as conn:
        secret = accounts.create_token(conn, user_id, "tests")["token"]
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return client


def _created(client: Any, entity_name: str, payload: dict[str, Any]) -> dict[str, Any]:
    r = client.post(f"/api/v1/records/{entity_name}", json=payload)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def build_crm(make_app: Any, engine_of: Any, **config: Any) -> SimpleNamespace:
    """An app with DOCS installed and the DEALS data set, and clients for admin, alice, bob."""
    app = make_app(DOCS, **config)
    engine = engine_of(app)
    departments = {"sales": _department(engine, "Sales"), "support": _department(engine, "Support")}
    users = {"alice": _user(engine, "alice", departments["sales"]),
             "bob": _user(engine, "bob", departments["support"])}
    with engine.connect() as conn:
        users["admin"] = accounts.find_account(conn, ADMIN[0]).id
    admin = token_client(app, engine, users["admin"])
    targets = {"c1": ("company", _created(admin, "company", {"name": "Acme"})["id"]),
               "c2": ("company", _created(admin, "company", {"name": "Globex"})["id"]),
               "p1": ("person", _created(admin, "person", {"name": "Pat"})["id"])}
    assert targets["c1"][1] == targets["p1"][1] == 1
    ids: dict[str, int] = {}
    for key, spec in DEALS.items():
        payload = dict(spec)
        payload["company"] = targets[spec["company"]][1] if spec["company"] else None
        payload["subject"] = ({"entity": targets[spec["subject"]][0], "id": targets[spec["subject"]][1]}
                              if spec["subject"] else None)
        payload["owner"] = users[spec["owner"]]
        payload["department"] = departments[spec["department"]] if spec["department"] else None
        ids[key] = _created(admin, "deal", payload)["id"]
    return SimpleNamespace(app=app, engine=engine, client=admin, ids=ids, keys={v: k for k, v in ids.items()},
                           users=users, departments=departments, targets=targets,
                           alice=token_client(app, engine, users["alice"]),
                           bob=token_client(app, engine, users["bob"]))


@pytest.fixture
def crm(make_app: Any, engine_of: Any) -> SimpleNamespace:
    return build_crm(make_app, engine_of)


def listing(crm: SimpleNamespace, client: Any = None, **params: Any) -> dict[str, Any]:
    """The list answer (asserting a 200); `filter` and a list `sort` are sent as JSON."""
    for key in ("filter", "sort"):
        if key in params and not isinstance(params[key], str):
            params[key] = json.dumps(params[key])
    r = (client or crm.client).get("/api/v1/records/deal", query_string=params)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert set(body) == {"items", "total", "page", "page_size"}
    return body


def keys(crm: SimpleNamespace, client: Any = None, **params: Any) -> set[str]:
    """The keys of every record a list call returns (one page of up to 500)."""
    params.setdefault("page_size", 500)
    body = listing(crm, client, **params)
    found = [crm.keys[item["id"]] for item in body["items"]]
    assert len(found) == len(set(found)) == body["total"]
    return set(found)


def where(crm: SimpleNamespace, *conditions: Any, client: Any = None) -> set[str]:
    return keys(crm, client, filter=list(conditions))


def order(crm: SimpleNamespace, **params: Any) -> list[str]:
    return [crm.keys[item["id"]] for item in listing(crm, **params)["items"]]


def bad(crm: SimpleNamespace, path: str = "/api/v1/records/deal", client: Any = None, **params: Any) -> str:
    """Assert a 400 with the contract's error shape; the message."""
    for key in ("filter", "sort"):
        if key in params and not isinstance(params[key], str):
            params[key] = json.dumps(params[key])
    r = (client or crm.client).get(path, query_string=params)
    body = r.get_json()
    assert r.status_code == 400, (r.status_code, body)
    assert set(body) == {"error"} and body["error"]["code"] == "bad_request", body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]["message"]


def check(crm: SimpleNamespace, cases: list[tuple[Any, set[str]]], client: Any = None) -> None:
    """Run each (condition, expected keys) as `filter=[condition]`; report every mismatch at once."""
    wrong = []
    for condition, expected in cases:
        r = (client or crm.client).get("/api/v1/records/deal", query_string={
            "filter": json.dumps([condition]), "page_size": 500})
        text = json.dumps(condition, ensure_ascii=False)
        if r.status_code != 200:
            wrong.append(f"{text}: status {r.status_code} {r.get_json()}")
            continue
        body = r.get_json()
        got = {crm.keys[item["id"]] for item in body["items"]}
        if got != set(expected) or body["total"] != len(expected):
            wrong.append(f"{text}: got {sorted(got)} (total {body['total']}), expected {sorted(expected)}")
    assert not wrong, "\n" + "\n".join(wrong)


# ------------------------------------------------------------------ 1. operators per field kind

def test_data_set_is_all_there_newest_first(crm):
    body = listing(crm)
    assert body["total"] == len(DEALS) and body["page"] == 1 and body["page_size"] == 50
    assert [crm.keys[i["id"]] for i in body["items"]] == list(reversed(DEALS))


def test_text_operators_and_ne_not_in_include_empty_values(crm):
    check(crm, [
        (["name", "=", "Alpha Deal"], {"alpha"}),
        (["name", "=", "alpha deal"], set()),  # = is exact (case-sensitive) on both databases
        (["name", "=", "  Alpha Deal "], {"alpha"}),  # values are trimmed like input
        (["name", "=", "北京科技有限公司"], {"beijing"}),
        (["name", "=", "$5 special"], {"dollar"}),  # text, not a placeholder ($ + lowercase word)
        (["notes", "in", ["$5 off", "100% sure"]], {"dollar", "theta"}),
        (["name", "!=", "Alpha Deal"], but("alpha")),  # delta (no name) included
        (["name", "in", ["zeta", "eta", "nope"]], {"zeta", "eta"}),
        (["name", "not in", ["zeta", "eta"]], but("zeta", "eta")),  # delta included
        (["name", "contains", "DEAL"], {"alpha", "beta"}),
        (["name", "contains", "ta"], {"beta", "zeta", "eta", "theta"}),
        (["name", "contains", "科技"], {"beijing"}),
        (["name", "starts with", "B"], {"beta"}),
        (["name", "starts with", "北京"], {"beijing"}),
        (["name", "starts with", "deal"], set()),
        (["name", "is empty"], {"delta"}),
        (["name", "is empty", None], {"delta"}),
        (["name", "is not empty"], but("delta")),
        (["notes", "is empty"], {"delta", "eta"}),  # "" is stored as no value
        (["notes", "contains", "today"], {"alpha"}),  # a word that is also a range name
    ])


def test_contains_and_starts_with_treat_percent_and_underscore_literally(crm):
    check(crm, [
        (["notes", "contains", "%"], {"beta", "theta"}),
        (["notes", "contains", "100%"], {"theta"}),  # not "1000 units"
        (["notes", "contains", "50% OFF"], {"beta"}),
        (["notes", "contains", "_"], {"gamma"}),
        (["notes", "contains", "r_s"], {"gamma"}),  # not "underXscore"
        (["notes", "starts with", "100"], {"epsilon", "theta"}),
        (["notes", "starts with", "100%"], {"theta"}),
        (["notes", "starts with", "%"], set()),
        (["notes", "contains", "\\"], set()),
        (["name", "contains", "_"], {"gamma"}),
        (["name", "contains", "$5"], {"dollar"}),
    ])


def test_select_operators(crm):
    check(crm, [
        (["stage", "=", "new"], {"alpha", "beijing", "zeta", "dollar"}),
        (["stage", "!=", "new"], {"beta", "gamma", "delta", "epsilon", "eta", "theta"}),
        (["stage", "in", ["won", "lost"]], {"beta", "gamma", "epsilon", "eta", "theta"}),
        (["stage", "not in", ["new", "won"]], {"gamma", "eta", "delta"}),
        (["stage", "is empty"], {"delta"}),
        (["stage", "is not empty"], but("delta")),
        (["stage", "contains", "o"], {"beta", "gamma", "epsilon", "eta", "theta"}),
        (["stage", "starts with", "N"], {"alpha", "beijing", "zeta", "dollar"}),
    ])


def test_multiselect_contains_in_and_empty(crm):
    check(crm, [
        (["tags", "contains", "vip"], {"alpha", "epsilon", "dollar"}),
        (["tags", "contains", "hot"], {"alpha", "zeta"}),  # not "hottest"
        (["tags", "contains", "hottest"], {"beta"}),
        (["tags", "in", ["hot", "cold"]], {"alpha", "beijing", "epsilon", "zeta"}),
        (["tags", "in", ["hottest"]], {"beta"}),
        (["tags", "not in", ["vip"]], {"beta", "gamma", "beijing", "delta", "zeta", "eta", "theta"}),
        (["tags", "not in", ["vip", "hot"]], {"beta", "gamma", "beijing", "delta", "eta", "theta"}),
        (["tags", "is empty"], {"gamma", "delta", "eta", "theta"}),  # [] and no value alike
        (["tags", "is not empty"], {"alpha", "beta", "beijing", "epsilon", "zeta", "dollar"}),
    ])


def test_integer_operators(crm):
    check(crm, [
        (["qty", "=", 10], {"alpha", "dollar"}),
        (["qty", "=", "10"], {"alpha", "dollar"}),
        (["qty", "=", 0], {"gamma"}),  # 0 is a value, not "empty"
        (["qty", "!=", 10], but("alpha", "dollar")),  # delta (no qty) included
        (["qty", "<", 5], {"gamma", "beijing", "eta"}),
        (["qty", "<=", 5], {"gamma", "beijing", "eta", "beta"}),
        (["qty", ">", 10], {"zeta", "theta"}),
        (["qty", ">=", 10], {"alpha", "dollar", "zeta", "theta"}),
        (["qty", ">", -5], but("delta")),
        (["qty", "in", [0, 7, 999]], {"gamma", "epsilon"}),
        (["qty", "not in", [10, 100]], {"beta", "gamma", "beijing", "delta", "epsilon", "zeta", "eta"}),
        (["qty", "between", [3, 10]], {"alpha", "beta", "epsilon", "eta", "dollar"}),
        (["qty", "between", ["3", "10"]], {"alpha", "beta", "epsilon", "eta", "dollar"}),
        (["qty", "between", [None, 0]], {"gamma", "beijing"}),  # an open end
        (["qty", "is empty"], {"delta"}),
        (["qty", "is not empty"], but("delta")),
    ])


def test_currency_operators_compare_exactly(crm):
    check(crm, [
        (["amount", "=", "1500"], {"alpha", "epsilon", "eta"}),
        (["amount", "=", 1500], {"alpha", "epsilon", "eta"}),
        (["amount", "!=", "1500.00"], {"beta", "gamma", "beijing", "delta", "zeta", "theta", "dollar"}),
        (["amount", "<", "250.5"], {"gamma", "zeta", "dollar"}),
        (["amount", "<=", "250.50"], {"gamma", "zeta", "dollar", "beta"}),
        (["amount", ">", 1500], {"beijing", "theta"}),
        (["amount", ">=", "1500.00"], {"alpha", "epsilon", "eta", "beijing", "theta"}),
        (["amount", "in", ["0", "10.00"]], {"gamma", "zeta"}),
        (["amount", "not in", ["1500"]], {"beta", "gamma", "beijing", "delta", "zeta", "theta", "dollar"}),
        (["amount", "between", ["10", "1500"]], {"alpha", "beta", "epsilon", "zeta", "eta", "dollar"}),
        (["amount", "between", ["1,000", "5,000.00"]], {"alpha", "epsilon", "eta", "theta"}),
        (["amount", "is empty"], {"delta"}),
        # A filter value is compared as given, not rounded to the field's 2 places...
        (["amount", "=", "12.341"], set()),
        (["amount", ">=", "12.341"], {"beta", "alpha", "epsilon", "eta", "beijing", "theta"}),
        (["amount", "<", "12.339"], {"gamma", "zeta"}),
        # ...and the field's input rules (min 0) limit what is stored, not what is compared with.
        (["amount", ">", -1], but("delta")),
        (["amount", "<", "1e17"], but("delta")),  # more than the column can hold
    ])


def test_date_operators(crm):
    check(crm, [
        (["close_date", "=", "2026-11-22"], {"beta"}),
        (["close_date", "!=", "2026-11-22"], but("beta")),  # delta included
        (["close_date", "<", "2026-11-16"], {"beijing", "eta", "dollar"}),
        (["close_date", "<=", "2026-11-16"], {"beijing", "eta", "dollar", "gamma"}),
        (["close_date", ">", "2026-12-22"], {"theta"}),
        (["close_date", ">=", "2026-12-22"], {"zeta", "theta"}),
        (["close_date", "in", ["2026-11-23", "2026-01-01"]], {"alpha", "eta"}),
        (["close_date", "not in", ["2026-11-23", "2026-01-01"]], but("alpha", "eta")),
        (["close_date", "between", ["2026-11-01", "2026-11-30"]], {"alpha", "beta", "gamma", "epsilon"}),
        (["close_date", "is empty"], {"delta"}),
        (["close_date", "is not empty"], but("delta")),
    ])


def test_datetime_operators(crm):
    check(crm, [
        (["met_at", "=", "2026-11-23T09:00:00Z"], {"alpha"}),
        (["met_at", "=", "2026-11-23T17:00:00+08:00"], {"alpha"}),
        (["met_at", "!=", "2026-11-23T09:00:00Z"], but("alpha")),
        (["met_at", "<", "2026-11-16T00:00:00Z"], {"beijing", "eta", "dollar"}),
        (["met_at", "<=", "2026-11-16T00:00:00Z"], {"beijing", "eta", "dollar", "gamma"}),
        (["met_at", ">", "2026-11-30T00:00:00Z"], {"zeta"}),
        (["met_at", ">=", "2026-11-30T00:00:00Z"], {"epsilon", "zeta"}),
        (["met_at", "in", ["2026-11-16T00:00:00Z", "2026-11-24T05:00:00Z"]], {"gamma", "theta"}),
        (["met_at", "not in", ["2026-11-16T00:00:00Z"]], but("gamma")),
        # Date-only bounds: the whole last day is inside.
        (["met_at", "between", ["2026-11-22", "2026-11-23"]], {"alpha", "beta"}),
        (["met_at", "between", ["2026-11-22T00:00:00Z", "2026-11-23T09:00:00Z"]], {"alpha", "beta"}),
        (["met_at", "is empty"], {"delta"}),
        (["met_at", "is not empty"], but("delta")),
    ])


def test_boolean_operators(crm):
    check(crm, [
        (["active", "=", True], {"alpha", "gamma", "epsilon", "eta", "theta"}),
        (["active", "=", "true"], {"alpha", "gamma", "epsilon", "eta", "theta"}),
        (["active", "=", False], {"beta", "zeta", "dollar"}),
        (["active", "!=", True], {"beta", "zeta", "dollar", "beijing", "delta"}),
        (["active", "in", [False]], {"beta", "zeta", "dollar"}),
        (["active", "not in", [False]], {"alpha", "gamma", "epsilon", "eta", "theta", "beijing", "delta"}),
        (["active", "is empty"], {"beijing", "delta"}),
        (["active", "is not empty"], but("beijing", "delta")),
    ])


def test_lookup_operators(crm):
    c1, c2 = crm.targets["c1"][1], crm.targets["c2"][1]
    check(crm, [
        (["company", "=", c1], {"alpha", "beijing", "eta"}),
        (["company", "=", str(c1)], {"alpha", "beijing", "eta"}),
        (["company", "!=", c1], {"beta", "gamma", "delta", "epsilon", "zeta", "theta", "dollar"}),
        (["company", "in", [c2]], {"beta", "epsilon"}),
        (["company", "not in", [c2]], but("beta", "epsilon")),
        (["company", "is empty"], {"gamma", "delta", "zeta", "theta", "dollar"}),
        (["company", "is not empty"], {"alpha", "beta", "beijing", "epsilon", "eta"}),
    ])


def test_reference_operators_compare_entity_and_id(crm):
    (_, c1), (_, c2), (_, p1) = crm.targets["c1"], crm.targets["c2"], crm.targets["p1"]
    check(crm, [
        (["subject", "=", {"entity": "company", "id": c1}], {"alpha", "epsilon"}),
        (["subject", "=", {"entity": "person", "id": p1}], {"beta", "zeta"}),  # same id as c1
        (["subject", "=", {"entity": "company", "id": c2}], {"beijing"}),
        (["subject", "=", {"entity": "person", "id": 99}], set()),
        (["subject", "!=", {"entity": "company", "id": c1}], but("alpha", "epsilon")),  # empty included
        (["subject", "is empty"], {"gamma", "delta", "eta", "theta", "dollar"}),
        (["subject", "is not empty"], {"alpha", "beta", "beijing", "epsilon", "zeta"}),
    ])


def test_location_empty_and_address(crm):
    check(crm, [
        (["site", "is empty"], but("alpha", "beta", "epsilon")),  # 0,0 is a place, not empty
        (["site", "is not empty"], {"alpha", "beta", "epsilon"}),
        (["site", "contains", "浦东"], {"alpha"}),
        (["site", "contains", "ROAD"], {"beta"}),
        (["site", "starts with", "Beijing"], {"beta"}),
    ])


def test_system_fields_filter_too(crm):
    check(crm, [
        (["id", "=", crm.ids["gamma"]], {"gamma"}),
        (["id", "in", [crm.ids["alpha"], crm.ids["beta"]]], {"alpha", "beta"}),
        (["owner", "=", crm.users["bob"]], {"gamma", "epsilon"}),
        (["department", "is empty"], {"alpha", "delta", "zeta", "theta", "dollar"}),
        (["created_at", "=", "today"], set(ALL)),
        (["created_at", "<", "today"], set()),
        (["version", "=", 1], set(ALL)),
        (["id", "=", 2 ** 31 - 1], set()),
        (["owner", "in", [0, -1]], set()),
    ])


# ------------------------------------------------------------------ 2. relative dates and placeholders

def test_relative_ranges_on_a_date_field(crm):
    check(crm, [
        (["close_date", "=", "today"], {"alpha"}),
        (["close_date", "=", "yesterday"], {"beta"}),
        (["close_date", "=", "this_week"], {"alpha", "epsilon"}),
        (["close_date", "=", "last_week"], {"beta", "gamma"}),
        (["close_date", "=", "this_month"], {"alpha", "beta", "gamma", "epsilon"}),
        (["close_date", "=", "last_month"], {"beijing", "dollar"}),
        (["close_date", "=", "this_quarter"], {"alpha", "beta", "gamma", "beijing", "epsilon", "zeta", "theta",
                                               "dollar"}),
        (["close_date", "=", "this_year"], but("delta")),
        (["close_date", "=", "last_30_days"], {"alpha", "beta", "gamma", "beijing"}),  # not 10-24
        (["close_date", "=", "next_7_days"], {"alpha", "epsilon"}),
        (["close_date", "=", "next_30_days"], {"alpha", "epsilon", "zeta"}),  # not 12-23
        (["close_date", "!=", "today"], but("alpha")),  # delta included
        (["close_date", "<", "this_month"], {"beijing", "dollar", "eta"}),
        (["close_date", ">=", "this_month"], {"alpha", "beta", "gamma", "epsilon", "zeta", "theta"}),
        # < and >= compare with the range's start, <= and > with its end.
        (["close_date", "<=", "this_week"], {"alpha", "beta", "gamma", "beijing", "epsilon", "eta", "dollar"}),
        (["close_date", ">", "this_week"], {"zeta", "theta"}),
        (["close_date", "between", "this_month"], {"alpha", "beta", "gamma", "epsilon"}),
    ])


def test_relative_ranges_on_a_datetime_field(crm):
    check(crm, [
        (["met_at", "=", "today"], {"alpha"}),
        (["met_at", "=", "yesterday"], {"beta"}),
        (["met_at", "=", "this_week"], {"alpha", "theta"}),  # not 11-30T00:00, the end is open
        (["met_at", "=", "last_week"], {"beta", "gamma"}),
        (["met_at", "=", "this_month"], {"alpha", "beta", "gamma", "epsilon", "theta"}),
        (["met_at", "=", "last_month"], {"beijing", "dollar"}),
        (["met_at", "=", "this_quarter"], but("delta", "eta")),
        (["met_at", "=", "this_year"], but("delta")),
        (["met_at", "=", "last_30_days"], {"alpha", "beta", "gamma", "beijing", "dollar"}),
        (["met_at", "=", "next_7_days"], {"alpha", "theta"}),
        (["met_at", "=", "next_30_days"], {"alpha", "theta", "epsilon"}),  # not 12-23T00:00
        (["met_at", "!=", "today"], but("alpha")),
        (["met_at", "<", "this_month"], {"beijing", "dollar", "eta"}),
        (["met_at", ">=", "this_month"], {"alpha", "beta", "gamma", "epsilon", "zeta", "theta"}),
        (["met_at", "<=", "this_week"], {"alpha", "beta", "gamma", "beijing", "eta", "theta", "dollar"}),
        (["met_at", ">", "this_week"], {"epsilon", "zeta"}),
    ])


def test_today_placeholder(crm):
    check(crm, [
        (["close_date", "=", "$today"], {"alpha"}),
        (["close_date", "<", "$today"], {"beta", "gamma", "beijing", "eta", "dollar"}),
        (["close_date", ">=", "$today"], {"alpha", "epsilon", "zeta", "theta"}),
        (["close_date", "!=", "$today"], but("alpha")),
        (["close_date", "between", ["$today", "2026-11-30"]], {"alpha", "epsilon"}),
        # On a datetime, $today is the whole day (as the range "today" is).
        (["met_at", "=", "$today"], {"alpha"}),
        (["met_at", ">=", "$today"], {"alpha", "epsilon", "zeta", "theta"}),
        (["met_at", "<", "$today"], {"beta", "gamma", "beijing", "eta", "dollar"}),
        (["met_at", ">", "$today"], {"epsilon", "zeta", "theta"}),
        (["met_at", "between", ["2026-11-22", "$today"]], {"alpha", "beta"}),
        (["met_at", "<", "$now"], {"alpha", "beta", "gamma", "beijing", "eta", "dollar"}),
        (["close_date", "=", "$now"], {"alpha"}),
    ])


def test_me_placeholder_on_owner(crm, client_of):
    assert where(crm, ["owner", "=", "$me"]) == {"alpha", "delta", "zeta", "theta", "dollar"}
    session = client_of(crm.app)  # a password login resolves to the same principal as a token
    assert where(crm, ["owner", "=", "$me"], client=session) == {"alpha", "delta", "zeta", "theta", "dollar"}
    assert where(crm, ["owner", "=", "$me"], client=crm.alice) == {"beta", "beijing", "eta"}
    assert where(crm, ["owner", "!=", "$me"], client=crm.alice) == but("beta", "beijing", "eta")
    assert where(crm, ["owner", "in", ["$me", crm.users["bob"]]], client=crm.alice) == {
        "beta", "beijing", "eta", "gamma", "epsilon"}
    assert where(crm, ["created_by", "=", "$me"]) == set(ALL)
    assert where(crm, ["created_by", "=", "$me"], client=crm.bob) == set()


def test_my_department_placeholder(crm):
    assert where(crm, ["department", "=", "$my_department"], client=crm.alice) == {"beta", "beijing"}
    assert where(crm, ["department", "=", "$my_department"], client=crm.bob) == {"gamma", "epsilon", "eta"}
    assert where(crm, ["department", "!=", "$my_department"], client=crm.alice) == but("beta", "beijing")


def test_my_department_of_a_user_without_one_matches_nothing(crm):
    # The admin has no department: "my department's deals" is none, not the deals without one.
    assert where(crm, ["department", "=", "$my_department"]) == set()
    assert where(crm, ["department", "!=", "$my_department"]) == set(ALL)


def test_today_follows_the_instance_time_zone(make_app, engine_of):
    shanghai = build_crm(make_app, engine_of, TIMEZONE="Asia/Shanghai")
    # 2026-11-22T17:00Z is 01:00 on the 23rd in Shanghai, where it is 18:00 on the 23rd.
    assert where(shanghai, ["met_at", "=", "today"]) == {"alpha", "beta"}
    assert where(shanghai, ["met_at", "=", "yesterday"]) == set()
    assert where(shanghai, ["met_at", "=", "$today"]) == {"alpha", "beta"}
    assert where(shanghai, ["met_at", "=", "last_week"]) == {"gamma"}  # 11-16T00:00Z is 08:00 there
    assert where(shanghai, ["close_date", "=", "today"]) == {"alpha"}
    # The same database seen by a UTC instance.
    utc_app = make_app(None)
    utc = SimpleNamespace(**{**vars(shanghai), "client": token_client(utc_app, engine_of(utc_app),
                                                                      shanghai.users["admin"])})
    assert where(utc, ["met_at", "=", "today"]) == {"alpha"}
    assert where(utc, ["met_at", "=", "yesterday"]) == {"beta"}


# ------------------------------------------------------------------ 3. nested any / all

def test_nested_groups_three_levels(crm):
    three = {"any": [["stage", "=", "won"],
                     {"all": [["qty", ">", 5],
                              {"any": [["tags", "contains", "hot"], ["active", "is empty"]]}]}]}
    assert where(crm, three) == {"beta", "epsilon", "theta", "alpha", "zeta"}
    assert where(crm, three, ["amount", "<", 1000]) == {"beta", "zeta"}
    assert where(crm, {"all": [{"any": [{"all": [["qty", "=", 10], ["stage", "=", "new"]]}]}]}) == {
        "alpha", "dollar"}
    assert where(crm, {"all": [["stage", "=", "new"], {"any": [["qty", "<", 0], ["qty", ">", 10]]}]}) == {
        "beijing", "zeta"}
    assert where(crm, {"any": [["name", "=", "nope"], {"all": [["name", "=", "nope"]]}]}) == set()


# ------------------------------------------------------------------ 4. sort and paging

def test_sort_by_several_columns_with_empty_values_as_the_largest(crm):
    # Empty values sort after every value ascending, before them descending, on both databases.
    expected = ["delta", "beijing", "theta", "alpha", "epsilon", "eta", "beta", "dollar", "zeta", "gamma"]
    assert order(crm, sort="-amount,name") == expected
    assert order(crm, sort=[["amount", "desc"], ["name", "asc"]]) == expected
    assert order(crm, sort="amount,-name") == [
        "gamma", "zeta", "dollar", "beta", "eta", "epsilon", "alpha", "theta", "beijing", "delta"]
    assert order(crm, sort=[["close_date"]]) == [
        "eta", "dollar", "beijing", "gamma", "beta", "alpha", "epsilon", "zeta", "theta", "delta"]
    assert order(crm, sort="-met_at") == [
        "delta", "zeta", "epsilon", "theta", "alpha", "beta", "gamma", "beijing", "dollar", "eta"]
    assert order(crm, sort="-created_at,qty") == [  # all created at the same instant; ties by id desc
        "beijing", "gamma", "eta", "beta", "epsilon", "dollar", "alpha", "zeta", "theta", "delta"]


def test_paging_is_stable_across_ties(crm):
    # Three deals share 1500.00 and straddle pages 1 and 2; ties are broken by id (desc, as
    # the first sort is), so no record is shown twice or skipped.
    pages = [listing(crm, sort="-amount", page=p, page_size=4) for p in (1, 2, 3)]
    assert [[crm.keys[i["id"]] for i in page["items"]] for page in pages] == [
        ["delta", "beijing", "theta", "eta"], ["epsilon", "alpha", "beta", "dollar"], ["zeta", "gamma"]]
    assert {(p["total"], p["page_size"]) for p in pages} == {(10, 4)}
    assert [p["page"] for p in pages] == [1, 2, 3]
    ids = [i["id"] for p in pages for i in p["items"]]
    assert len(ids) == len(set(ids)) == 10


def test_paging_with_a_filter_counts_the_filtered_total(crm):
    first = listing(crm, filter=[["qty", ">=", 5]], sort="qty", page_size=2)
    second = listing(crm, filter=[["qty", ">=", 5]], sort="qty", page_size=2, page=2)
    assert first["total"] == second["total"] == 6
    assert [crm.keys[i["id"]] for i in first["items"] + second["items"]] == ["beta", "epsilon", "alpha",
                                                                             "dollar"]


def test_page_beyond_the_end_is_empty_with_the_total(crm):
    body = listing(crm, page=99, page_size=5)
    assert body == {"items": [], "total": 10, "page": 99, "page_size": 5}


def test_page_size_limits(crm):
    assert listing(crm, page_size=500)["page_size"] == 500
    assert len(listing(crm, page_size=1)["items"]) == 1
    assert "page_size" in bad(crm, page_size=0)
    assert "500" in bad(crm, page_size=501)
    assert "page_size" in bad(crm, page_size="ten")


# ------------------------------------------------------------------ 5. q search

def test_q_searches_searchable_fields_case_insensitively(crm):
    assert keys(crm, q="alpha") == {"alpha"}  # gamma's "secret" is not searchable
    assert keys(crm, q="DEAL") == {"alpha", "beta"}
    assert keys(crm, q="  deal ") == {"alpha", "beta"}
    assert keys(crm, q="北京") == {"beijing", "eta"}  # name and city
    assert keys(crm, q="上海") == {"alpha"}
    assert keys(crm, q="beijing") == {"beta"}
    assert keys(crm, q="vip") == {"beijing"}  # notes; tags are not text
    assert keys(crm, q="100%") == {"theta"}
    assert keys(crm, q="_") == {"gamma"}
    assert keys(crm, q="nothing like this") == set()


def test_q_combines_with_filters_and_paging(crm):
    assert keys(crm, q="deal", filter=[["stage", "=", "won"]]) == {"beta"}
    assert keys(crm, q="北京", filter=[["stage", "=", "lost"]]) == {"eta"}
    body = listing(crm, q="e", sort="qty", page_size=2, page=2)  # all but beijing and delta
    assert body["total"] == 8 and [crm.keys[i["id"]] for i in body["items"]] == ["beta", "epsilon"]


def test_q_too_long_and_entities_without_text_fields(crm):
    assert "q" in bad(crm, q="x" * 201)
    assert "searchable" in bad(crm, path="/api/v1/records/counter", q="1")


# ------------------------------------------------------------------ 6. views

def test_view_filters_sort_and_page_size_apply(crm):
    body = listing(crm, view="big_ones")
    assert body["total"] == 5 and body["page_size"] == 2
    assert [crm.keys[i["id"]] for i in body["items"]] == ["beijing", "theta"]
    assert keys(crm, view="big_ones") == {"beijing", "theta", "alpha", "epsilon", "eta"}


def test_request_filters_are_and_ed_with_the_view(crm):
    assert keys(crm, view="big_ones", filter=[["stage", "=", "won"]]) == {"theta", "epsilon"}
    assert keys(crm, view="big_ones", filter=[{"any": [["qty", "<", 5], ["qty", ">", 50]]}]) == {
        "beijing", "theta", "eta"}
    assert keys(crm, view="big_ones", q="北京") == {"beijing", "eta"}
    # A request's own sort replaces the view's.
    assert order(crm, view="big_ones", sort="qty", page_size=10) == ["beijing", "eta", "epsilon", "alpha", "theta"]


def test_view_placeholders_resolve_for_the_caller(crm):
    assert keys(crm, view="mine") == {"alpha", "delta", "zeta", "theta", "dollar"}
    assert keys(crm, crm.alice, view="mine") == {"beta", "beijing", "eta"}
    assert keys(crm, crm.alice, view="mine", filter=[["stage", "=", "won"]]) == {"beta"}


def test_view_with_groups_and_relative_between(crm):
    assert order(crm, view="hot_or_won") == ["beta", "epsilon", "alpha", "zeta", "theta"]
    assert keys(crm, view="closing_this_month") == {"alpha", "beta", "gamma", "epsilon"}


def test_unknown_view_is_a_400(crm):
    assert "nope" in bad(crm, view="nope")
    assert "big_ones" in bad(crm, path="/api/v1/records/company", view="big_ones")


# ------------------------------------------------------------------ 7. bad input: 400, never 500

BAD_FILTERS = [
    # (what, filter= as sent, a word the message must contain)
    ("malformed JSON", '[["name", "=", ', "JSON"),
    ("JSON string", '"name"', "list"),
    ("JSON null", "null", "list"),
    ("JSON object, not a list", '{"name": "x"}', "list"),
    ("a group alone, not in a list", '{"any": [["name", "=", "x"]]}', "list"),
    ("a number as a condition", "[1]", "filter[0]"),
    ("unknown field", [["nope", "=", "x"]], "nope"),
    ("archived field", [["old_code", "=", "x"]], "old_code"),
    ("child-table-like system name", [["parent_id", "=", 1]], "parent_id"),
    ("field name not a string", [[1, "=", "x"]], "field name"),
    ("unknown operator", [["name", "like", "x"]], "like"),
    ("operator not a string", [["name", ["="], "x"]], "operator"),
    ("missing operator", [["name"]], "operator"),
    ("empty condition", [[]], "condition"),
    ("condition with 5 items", [["name", "=", "x", "y", "z"]], "condition"),
    ("= without a value", [["qty", "="]], "needs a value"),
    ("< with null", [["qty", "<", None]], "needs a value"),
    ("between with one value", [["qty", "between", [1]]], "between"),
    ("between with a scalar", [["qty", "between", 1]], "between"),
    ("in with a non-list", [["qty", "in", 5]], "in"),
    ("in with an empty list", [["qty", "in", []]], "in"),
    ("is empty with a value", [["qty", "is empty", 5]], "is empty"),
    ("integer 'abc'", [["qty", "=", "abc"]], "qty"),
    ("integer in a list", [["qty", "in", [1, "x"]]], "qty"),
    ("integer Infinity", '[["qty", "=", Infinity]]', "qty"),
    ("currency 'abc'", [["amount", ">", "abc"]], "amount"),
    ("currency NaN", '[["amount", ">", NaN]]', "amount"),
    ("date 2026-99-01", [["close_date", "=", "2026-99-01"]], "close_date"),
    ("datetime garbage", [["met_at", ">", "yesterday-ish"]], "met_at"),
    ("boolean 'abc'", [["active", "=", "abc"]], "active"),
    ("lookup 'abc'", [["company", "=", "abc"]], "company"),
    ("select value not an option", [["stage", "=", "bogus"]], "bogus"),
    ("select list value not an option", [["stage", "in", ["new", "bogus"]]], "bogus"),
    ("multiselect value not an option", [["tags", "contains", "bogus"]], "bogus"),
    ("multiselect =", [["tags", "=", "vip"]], "tags"),
    ("multiselect between", [["tags", "between", ["cold", "vip"]]], "tags"),
    ("contains on an integer", [["qty", "contains", "1"]], "contains"),
    ("contains on a date", [["close_date", "contains", "2026"]], "contains"),
    ("contains with an empty text", [["name", "contains", ""]], "contains"),
    ("contains with a number", [["name", "contains", 5]], "contains"),
    ("relative range on a text field", [["name", "=", "today"]], "today"),
    ("relative range on an integer", [["qty", "<", "this_week"]], "this_week"),
    ("relative range with in", [["close_date", "in", "this_week"]], "in"),
    ("relative range with contains", [["close_date", "contains", "this_week"]], "contains"),
    ("unknown placeholder", [["owner", "=", "$foo"]], "$foo"),
    ("$me on a text field", [["name", "=", "$me"]], "$me"),
    ("$me on a date", [["close_date", "=", "$me"]], "$me"),
    ("$today on an integer", [["qty", "=", "$today"]], "$today"),
    ("$my_department on a text field", [["name", "!=", "$my_department"]], "$my_department"),
    ("reference value not an object", [["subject", "=", 1]], "subject"),
    ("reference to a non-target", [["subject", "=", {"entity": "deal", "id": 1}]], "subject"),
    ("reference id true", [["subject", "=", {"entity": "company", "id": True}]], "subject"),
    ("reference id too large", [["subject", "=", {"entity": "company", "id": 10 ** 30}]], "subject"),
    ("reference with in", [["subject", "in", [{"entity": "company", "id": 1}]]], "reference"),
    ("location =", [["site", "=", {"lat": 1, "lng": 2}]], "location"),
    ("group with an unknown key", [{"or": [["name", "=", "x"]]}], "any"),
    ("group with two keys", [{"any": [], "all": []}], "any"),
    ("group of a non-list", [{"any": ["name", "=", "x"]}], "any"),
    ("NUL character in a value", [["name", "=", "a\x00b"]], "name"),
    ("NUL character in contains", [["notes", "contains", "a\x00"]], "notes"),
    ("lone surrogate in a value", '[["name", "=", "a\\ud800"]]', "name"),
    ("lone surrogate in a list", '[["name", "in", ["ok", "\\udc00"]]]', "name"),
    ("id beyond its 32-bit column", [["id", "=", 2 ** 31]], "id"),
    ("owner beyond its 32-bit column", [["owner", "in", [1, 2 ** 40]]], "owner"),
]


def _bad_cases(crm: SimpleNamespace, cases: list[tuple[str, dict[str, Any], str]]) -> None:
    """Each case must be a 400 in the contract's shape whose message names the problem."""
    wrong = []
    for what, params, word in cases:
        params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
        r = crm.client.get("/api/v1/records/deal", query_string=params)
        body = r.get_json() or {}
        error = body.get("error") or {}
        if (r.status_code != 400 or set(body) != {"error"} or error.get("code") != "bad_request"
                or word.lower() not in str(error.get("message")).lower()):
            wrong.append(f"{what}: {r.status_code} {body} (expected 400 mentioning {word!r})")
    assert not wrong, "\n" + "\n".join(wrong)


def test_bad_filters_are_400s_naming_the_problem(crm):
    _bad_cases(crm, [(what, {"filter": filter_}, word) for what, filter_, word in BAD_FILTERS])


def test_nesting_too_deep_and_too_many_conditions(crm):
    nested: Any = ["name", "=", "x"]
    for _ in range(7):
        nested = {"any": [nested]}
    assert where(crm, nested) == set()  # 8 levels are allowed
    assert "deep" in bad(crm, filter=[{"all": [nested]}])
    assert where(crm, *[["qty", "!=", n] for n in range(100)]) == {"beijing", "delta", "theta"}
    assert "100" in bad(crm, filter=[["qty", "!=", n] for n in range(101)])
    assert "100" in bad(crm, filter=[{"any": [["qty", "=", n] for n in range(101)]}])


def test_absurdly_nested_json_is_a_400(crm):
    assert bad(crm, filter="[" * 5000 + "]" * 5000)
    assert bad(crm, filter="[" * 900 + "]" * 900)
    assert bad(crm, sort="[" * 5000 + "]" * 5000)


BAD_PARAMS = [
    ("sort by an unknown field", {"sort": "nope"}, "nope"),
    ("sort by an archived field", {"sort": "-old_code"}, "old_code"),
    ("sort by a multiselect", {"sort": "tags"}, "tags"),
    ("sort by a reference", {"sort": "subject"}, "subject"),
    ("sort by a location", {"sort": "site"}, "site"),
    ("sort by nothing", {"sort": "-"}, "''"),
    ("sort JSON malformed", {"sort": "[[\"name\""}, "sort"),
    ("sort JSON bad direction", {"sort": [["name", "up"]]}, "sort"),
    ("sort JSON not nested", {"sort": ["name", "desc"]}, "sort"),
    ("sort JSON item of 3", {"sort": [["name", "asc", "x"]]}, "sort"),
    ("page=abc", {"page": "abc"}, "page"),
    ("page=0", {"page": "0"}, "page"),
    ("page=-1", {"page": "-1"}, "page"),
    ("page=1.5", {"page": "1.5"}, "page"),
    ("page huge", {"page": str(10 ** 30)}, "page"),
    ("page_size huge", {"page_size": str(10 ** 30)}, "page_size"),
    ("q with a NUL", {"q": "a\x00b"}, "q"),
]


def test_bad_list_parameters_are_400s_naming_the_problem(crm):
    _bad_cases(crm, BAD_PARAMS)


def test_sql_injection_looking_values_are_just_values(crm):
    assert where(crm, ["name", "=", "x' OR 1=1 --"]) == set()
    assert where(crm, ["name", "!=", "x' OR 1=1 --"]) == set(ALL)
    assert where(crm, ["name", "contains", "' OR '1'='1"]) == set()
    assert where(crm, ["name", "in", ["x') OR ('1'='1", "zeta"]]) == {"zeta"}
    assert keys(crm, q="x' OR 1=1 --") == set()
    assert keys(crm, q="%' OR '%'='") == set()
    assert "name; drop table" in bad(crm, filter=[["name; drop table ent_deal; --", "=", "x"]]).lower()
    assert bad(crm, sort="name; DROP TABLE ent_deal")
    assert bad(crm, sort="name desc")
    assert keys(crm) == set(ALL)


def test_unknown_entity_is_a_404(crm):
    r = crm.client.get("/api/v1/records/nope")
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"
