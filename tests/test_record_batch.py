"""The batch door of the record service (`create_records`) against the row door
(`create_record`): on the same mixed file — good rows, bad values, rule and lookup
failures, refused fields, unique values taken in the database and earlier in the batch,
duplicates under a block rule of stored records and of earlier rows — both give the
same per-row results and leave the same records, history, match keys and autonumbers.
Then the importer's fallback when a batch meets a database error, and (PostgreSQL) a
concurrent import and API create of one customer leaving exactly one record.
"""
from __future__ import annotations

import hashlib
import threading
import time
from typing import Any, Callable

import pytest
import sqlalchemy as sa

from metacrm.runtime import accounts, systables
from metacrm.runtime.errors import ServiceError
from metacrm.runtime.records import create_record, create_records
from metacrm.runtime.web.context import EXTENSION

from .conftest import PG_URL
from .support import add_user, admin_bearer, bearer, entity
from .test_imports import csv_bytes, upload

CUSTOMER = entity(
    "customer",
    {"name": "name", "type": "text", "required": True, "max_length": 100, "label": {"en": "Name", "zh": "名称"}},
    {"name": "level", "type": "select", "default": "B", "label": {"en": "Level", "zh": "级别"},
     "options": [{"value": "A", "label": {"en": "Key", "zh": "重点"}}, {"value": "B", "label": {"en": "Normal", "zh": "普通"}}]},
    {"name": "tags", "type": "multiselect", "default": ["new"], "label": {"en": "Tags", "zh": "标签"},
     "options": [{"value": "vip", "label": {"en": "VIP", "zh": "贵宾"}}, {"value": "new", "label": {"en": "New", "zh": "新客"}}]},
    {"name": "phone", "type": "phone", "label": {"en": "Phone", "zh": "电话"}},
    {"name": "tax_no", "type": "text", "unique": True, "label": {"en": "Tax number", "zh": "税号"}},
    {"name": "credit", "type": "currency", "required_when": "level == 'A'", "label": {"en": "Credit", "zh": "信用额度"}},
    {"name": "double_credit", "type": "formula", "expression": "credit * 2", "result_type": "currency",
     "label": {"en": "Double credit", "zh": "双倍额度"}},
    {"name": "note", "type": "text", "label": {"en": "Note", "zh": "备注"}},
    {"name": "parent", "type": "lookup", "target": "customer", "label": {"en": "Parent", "zh": "上级客户"}},
    {"name": "manager", "type": "user", "label": {"en": "Manager", "zh": "客户经理"}},
    label={"en": "Customer", "zh": "客户"}, title_field="name", ownership=True, naming={"autonumber": "CUS-{#####}"},
    validations=[{"rule": "credit is None or credit >= 0", "message": {"en": "Credit can't be negative",
                                                                       "zh": "信用额度不能为负"}}],
)
REP = {"kind": "role", "name": "rep", "label": "Rep",
       "permissions": {"customer": {"create": True, "read": "self", "update": "self", "import": True}},
       "fields": {"customer": {"note": "readonly"}}}
BLOCK = {"kind": "dedup", "name": "same_name", "entity": "customer", "label": "Same name", "on": ["create", "import"],
         "action": "block", "match": "any", "conditions": [{"field": "name", "method": "company_name"}]}
WARN = {"kind": "dedup", "name": "same_phone", "entity": "customer", "label": "Same phone", "on": ["create", "import"],
        "action": "warn", "match": "any", "conditions": [{"field": "phone", "method": "phone"}]}
DOCS = [CUSTOMER, REP, BLOCK, WARN]
TABLES = ("ent_customer", "mc_history", "mc_dedup_keys", "mc_sequences")


def _mixed(seeded: dict[str, int], other_user: int) -> list[Any]:
    """The file: (comment) payload."""
    return [
        {"name": "Acme Trading Co., Ltd.", "phone": "13800000001", "tax_no": "T1"},   # good
        {"name": ""},                                                                  # required
        {"name": "Beta", "level": "Z"},                                                # bad option
        {"name": "Gamma", "credit": "-5"},                                             # entity rule
        {"name": "ACME Trading Ltd"},                                                  # block: row 1 of this batch
        {"name": "Delta", "parent": 999},                                              # lookup: no such record
        {"name": "Seeded Holdings"},                                                   # block: a stored record
        {"name": "Epsilon", "tax_no": "T1"},                                           # unique: taken by row 1
        {"name": "Zeta", "tax_no": "T0"},                                              # unique: taken in the db
        {"name": "Eta", "phone": "138 0000 0001", "parent": seeded["mine"], "manager": other_user,
         "tags": ["vip"], "level": "A", "credit": "1,000.50"},                         # good, warns (row 1's phone)
        {"name": "Theta", "level": "A"},                                               # required_when
        {"name": "Iota", "note": "x"},                                                 # read-only field for rep
        {"name": "Kappa", "owner": other_user},                                        # no transfer right
        {"name": "Lambda", "parent": seeded["not_mine"]},                              # lookup out of read scope
        {"name": "Nucleon Labs", "level": "Z"},                                        # bad; its twin below is fine
        {"name": "NUCLEON LABS"},                                                      # good: the first never was
        {"name": "Omicron", "tax_no": "T9"},                                           # good
        {"name": "Acme Trading Company"},                                              # block: row 1 again
        "not an object",                                                               # 400
        {"name": "Pi", "colour": "red"},                                               # unknown field
    ]


def _setup(app: Any) -> tuple[Any, dict[str, int], int]:
    """Empty the tables the test writes, restart their ids, and seed two customers (one the
    rep's, one the admin's) and a user. → (rep principal, seeded ids, other user id)."""
    rt = app.extensions[EXTENSION]
    with rt.engine.begin() as conn:
        for table in TABLES:
            conn.exec_driver_sql(f"DELETE FROM {table}")
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ALTER SEQUENCE ent_customer_id_seq RESTART WITH 1")
        if accounts.find_account(conn, "rep") is None:
            add_user(conn, "rep", roles=("rep",))
            add_user(conn, "other")
        rep = accounts.principal_for(conn, accounts.find_account(conn, "rep"))  # type: ignore[arg-type]
        admin = accounts.principal_for(conn, accounts.find_account(conn, "admin"))  # type: ignore[arg-type]
        other = accounts.find_account(conn, "other").id  # type: ignore[union-attr]
        catalog = rt.catalog(conn)
        seeded = {"mine": create_record(conn, catalog, rep, "customer", {"name": "Seeded Holdings", "tax_no": "T0"})["id"],
                  "not_mine": create_record(conn, catalog, admin, "customer", {"name": "Far Away"})["id"]}
    return rep, seeded, other


def _outcome(result: Any) -> tuple[Any, ...]:
    if isinstance(result, ServiceError):
        return ("error", type(result).__name__, result.message, result.fields, result.extra)
    return ("created", result[0], result[1])


def _by_rows(app: Any, principal: Any, payloads: list[Any]) -> list[tuple[Any, ...]]:
    rt = app.extensions[EXTENSION]
    out = []
    with rt.engine.begin() as conn:
        catalog = rt.catalog(conn)
        for payload in payloads:
            try:
                with conn.begin_nested():
                    record = create_record(conn, catalog, principal, "customer", payload, dedup_on="import")
                out.append(_outcome((record["id"], record.get("_duplicates", []))))
            except ServiceError as exc:
                out.append(_outcome(exc))
    return out


def _in_batch(app: Any, principal: Any, payloads: list[Any]) -> list[tuple[Any, ...]]:
    rt = app.extensions[EXTENSION]
    with rt.engine.begin() as conn:
        results = create_records(conn, rt.catalog(conn), principal, "customer", payloads, dedup_on="import")
    return [_outcome(r.error) if r.error is not None else
            _outcome((r.record_id, [m.to_dict() for m in r.duplicates])) for r in results]


def _names(app: Any) -> dict[int, str]:
    with app.extensions[EXTENSION].engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT id, name FROM ent_customer")).all())


def _state(app: Any) -> dict[str, Any]:
    """What the writes left, without the clock's columns and the system rows' own ids, a
    record's id given as its name: PostgreSQL's sequence skips the ids of rows the row
    door inserted and then rolled back, where the batch door inserts nothing it refuses."""
    engine = app.extensions[EXTENSION].engine
    names = _names(app)
    out = {}
    with engine.connect() as conn:
        for name in TABLES:
            table = sa.Table(name, sa.MetaData(), autoload_with=conn)
            cols = [c for c in table.c if c.name not in ("created_at", "updated_at", "at")
                    and not (name != "ent_customer" and c.name == "id")]
            rows = []
            for row in conn.execute(sa.select(*cols)).mappings():
                rows.append(tuple(str(names.get(v) if k in ("id", "parent", "record_id") else v)
                                  for k, v in row.items()))
            out[name] = sorted(rows)
    return out


def _named(app: Any, outcomes: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Outcomes with record ids given as names (see `_state`)."""
    names = _names(app)

    def matches(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [dict(m, id=names.get(m["id"])) for m in items]

    out = []
    for o in outcomes:
        if o[0] == "created":
            out.append(("created", names[o[1]], matches(o[2])))
        else:
            out.append(o[:4] + ({**o[4], "matches": matches(o[4]["matches"])} if "matches" in o[4] else o[4],))
    return out


def test_batch_creates_exactly_what_row_by_row_creates(make_app: Callable[..., Any]) -> None:
    app = make_app(DOCS)
    rep, seeded, other = _setup(app)
    expected = _named(app, _by_rows(app, rep, _mixed(seeded, other)))
    state = _state(app)

    rep, seeded, other = _setup(app)
    got = _named(app, _in_batch(app, rep, _mixed(seeded, other)))
    assert got == expected
    assert _state(app) == state

    # What the file should give, spelled out (so equal results can't be equally wrong).
    kinds = [o[0] if o[0] == "created" else o[1] for o in got]
    assert kinds == ["created", "ValidationFailed", "ValidationFailed", "ValidationFailed", "DuplicateFound",
                     "ValidationFailed", "DuplicateFound", "ValidationFailed", "ValidationFailed", "created",
                     "ValidationFailed", "PermissionDenied", "PermissionDenied", "ValidationFailed",
                     "ValidationFailed", "created", "created", "DuplicateFound", "BadRequest", "ValidationFailed"]
    first = "Acme Trading Co., Ltd."
    assert got[0][1] == first
    assert got[4][4]["matches"][0]["id"] == first and got[17][4]["matches"][0]["id"] == first
    assert [d["rule"] for d in got[9][2]] == ["same_phone"] and got[9][2][0]["id"] == first
    assert got[7][3] == {"tax_no": ["Another customer already has this tax_no."]}
    assert got[13][3] == {"parent": [f"No customer with id {seeded['not_mine']}."]}
    codes = [row for row in state["ent_customer"]]
    assert len(codes) == 6  # 2 seeded + 4 created
    assert sorted(r[-1] for r in state["mc_sequences"]) == ["6"]  # refused rows burnt no number
    assert len(state["mc_history"]) == 6


def test_a_batch_the_database_refuses_is_redone_row_by_row(make_app: Callable[..., Any], engine_of: Any,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A unique value the checks missed (as a concurrent writer's would be) makes the
    INSERT fail: the batch is rolled back and redone row by row, which finds the row."""
    from metacrm.runtime import record_creates

    monkeypatch.setattr(record_creates, "check_unique_many", lambda *a, **k: None)
    monkeypatch.setattr(record_creates, "unique_groups", lambda entity: [])
    app = make_app(DOCS)
    data = csv_bytes([["name", "tax_no"], ["Alpha", "X1"], ["Bravo", "X2"], ["Charlie", "X1"], ["Delta", ""]])
    body = upload(app.test_client(), admin_bearer(app), data).get_json()
    assert (body["created"], body["failed"]) == (3, 1), body
    assert body["errors"] == [{"row": 4, "field": "tax_no", "message": "Another customer already has this tax_no."}]
    with engine_of(app).connect() as conn:
        rows = conn.execute(sa.text("SELECT name, code FROM ent_customer ORDER BY id")).all()
        keys = conn.execute(sa.select(sa.func.count()).select_from(systables.dedup_keys)).scalar_one()
    assert [tuple(r) for r in rows] == [("Alpha", "CUS-00001"), ("Bravo", "CUS-00002"), ("Delta", "CUS-00003")]
    assert keys >= 3


@pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL: SQLite serialises writers with BEGIN IMMEDIATE")
def test_concurrent_import_and_api_create_of_one_customer_leave_one(make_app: Callable[..., Any],
                                                                    engine_of: Any) -> None:
    """The batch holds the block rule's locks from its check to its commit (all dedup
    writers' when it has many keys): an API create of the same customer waits, then
    finds it (409); and an import waits for an API create's key locks the same way."""
    app = make_app(DOCS)
    rt = app.extensions[EXTENSION]
    with rt.engine.begin() as conn:
        admin_id = accounts.find_account(conn, "admin").id  # type: ignore[union-attr]
        headers = bearer(conn, admin_id)
        admin = accounts.principal_for(conn, accounts.find_account(conn, "admin"))  # type: ignore[arg-type]
    statuses: list[int] = []

    def api_create(name: str) -> None:
        statuses.append(app.test_client().post("/api/v1/records/customer", json={"name": name},
                                               headers=headers).status_code)

    # Thirty rows have more keys than KEY_LOCK_LIMIT: the batch locks all dedup writers out.
    many = [{"name": "Acme Trading Co."}] + [{"name": f"Firm {hashlib.sha1(str(i).encode()).hexdigest()[:12]}"}
                                              for i in range(30)]
    with rt.engine.connect() as conn:
        tx = conn.begin()
        results = create_records(conn, rt.catalog(conn), admin, "customer", many)
        assert all(r.record_id is not None for r in results), [r.error for r in results]
        racer = threading.Thread(target=api_create, args=("ACME Trading Ltd",))
        racer.start()
        time.sleep(0.5)
        assert racer.is_alive()  # waiting for the batch's key lock
        tx.commit()
    racer.join(10)
    assert statuses == [409]

    # The other way round: an API-side create holds the key; the import waits, then refuses its row.
    imported: list[Any] = []
    with rt.engine.connect() as conn:
        tx = conn.begin()
        create_record(conn, rt.catalog(conn), admin, "customer", {"name": "Bolt Systems Inc."})
        importer = threading.Thread(target=lambda: imported.append(upload(
            app.test_client(), headers, csv_bytes([["name"], ["BOLT Systems"], ["Cobalt"]])).get_json()))
        importer.start()
        time.sleep(0.5)
        assert importer.is_alive()
        tx.commit()
    importer.join(10)
    assert (imported[0]["created"], imported[0]["failed"]) == (1, 1), imported
    with engine_of(app).connect() as conn:
        names = sorted(conn.execute(sa.text("SELECT name FROM ent_customer")).scalars())
    assert [n for n in names if not n.startswith("Firm ")] == ["Acme Trading Co.", "Bolt Systems Inc.", "Cobalt"]
