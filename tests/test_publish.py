"""Schema compile, plan and publish: real typed tables, idempotent plans, data kept.

Every test runs on the database the suite runs on (SQLite by default, PostgreSQL when
METACRM_TEST_DATABASE_URL is set), and inspects the live schema with `sa.inspect`.
"""
from __future__ import annotations

import copy
import datetime as dt
import decimal
import json
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.operations import Operations

from metacrm.metadata.documents import Document
from metacrm.runtime import systables
from metacrm.runtime.compiler import MAX_NAME
from metacrm.runtime.publish import PublishRefused, make_plan, publish
from metacrm.runtime.web.context import EXTENSION

from .support import entity, meta_version, pending_plan, republish, schema_snapshot, table_checksum

OPTIONS = [{"value": "A", "label": "Key"}, {"value": "B", "label": "Normal"}]


def account_docs() -> list[dict[str, Any]]:
    """One entity with every storage shape, a child table, and both kinds of composite index."""
    return [
        entity(
            "account",
            {"name": "name", "type": "text", "max_length": 120, "required": True},
            {"name": "code", "type": "text", "max_length": 20, "unique": True},
            {"name": "notes", "type": "textarea"},
            {"name": "body", "type": "richtext"},
            {"name": "employees", "type": "integer"},
            {"name": "revenue", "type": "decimal", "precision": 12, "scale": 3},
            {"name": "budget", "type": "currency"},
            {"name": "share", "type": "percent"},
            {"name": "active", "type": "boolean"},
            {"name": "founded", "type": "date"},
            {"name": "seen_at", "type": "datetime"},
            {"name": "level", "type": "select", "options": OPTIONS},
            {"name": "tags", "type": "multiselect", "options": OPTIONS},
            {"name": "email", "type": "email"},
            {"name": "phone", "type": "phone"},
            {"name": "site", "type": "url"},
            {"name": "parent", "type": "lookup", "target": "account"},
            {"name": "rep", "type": "user"},
            {"name": "team", "type": "department"},
            {"name": "number", "type": "autonumber", "format": "ACC-{#####}"},
            {"name": "doc", "type": "file"},
            {"name": "logo", "type": "image"},
            {"name": "place", "type": "location"},
            {"name": "about", "type": "reference", "targets": ["account"]},
            {"name": "score", "type": "formula", "result_type": "integer", "expression": "employees"},
            {"name": "lines", "type": "table", "target": "account_line"},
            ownership=True,
            indexes=[["level", "active"], {"fields": ["name", "team"], "unique": True}],
        ),
        entity("account_line",
               {"name": "item", "type": "text"},
               {"name": "qty", "type": "decimal", "precision": 10, "scale": 2},
               child_of="account"),
    ]


def _columns(engine: sa.Engine, table: str) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in sa.inspect(engine).get_columns(table)}


def _indexes(engine: sa.Engine, table: str) -> dict[tuple[str, ...], bool]:
    return {tuple(i["column_names"]): bool(i["unique"]) for i in sa.inspect(engine).get_indexes(table)}


def _fks(engine: sa.Engine, table: str) -> dict[tuple[str, ...], dict[str, Any]]:
    return {tuple(f["constrained_columns"]): f for f in sa.inspect(engine).get_foreign_keys(table)}


def _conn_plan(engine: sa.Engine, docs: list[dict[str, Any]]) -> Any:
    with engine.connect() as conn:
        return make_plan(conn, [Document(f"{d['kind']}_{d['name']}.json", d) for d in docs])


# ------------------------------------------------------------------ 1. real typed tables

def test_install_creates_typed_columns_per_field_type(make_app: Any, engine_of: Any, is_postgres: bool) -> None:
    engine = engine_of(make_app(account_docs()))
    cols = _columns(engine, "ent_account")

    def is_(name: str, kind: type) -> bool:
        return isinstance(cols[name]["type"], kind)

    assert is_("name", sa.String) and cols["name"]["type"].length == 120
    assert cols["code"]["type"].length == 20
    assert is_("notes", sa.Text) and is_("body", sa.Text) and is_("tags", sa.Text)
    assert is_("employees", sa.BigInteger) or is_("employees", sa.Integer)
    assert is_("revenue", sa.Numeric) and (cols["revenue"]["type"].precision, cols["revenue"]["type"].scale) == (12, 3)
    assert (cols["budget"]["type"].precision, cols["budget"]["type"].scale) == (18, 2)
    assert (cols["share"]["type"].precision, cols["share"]["type"].scale) == (9, 4)
    assert is_("active", sa.Boolean) or is_("active", sa.Integer)  # SQLite reflects BOOLEAN
    assert is_("founded", sa.Date) and not is_("founded", sa.DateTime)
    assert is_("seen_at", sa.DateTime)
    if is_postgres:
        assert cols["seen_at"]["type"].timezone is True and cols["created_at"]["type"].timezone is True
        assert isinstance(cols["active"]["type"], sa.Boolean)
    assert cols["level"]["type"].length == 100
    assert cols["email"]["type"].length == 254 and cols["phone"]["type"].length == 40
    assert cols["site"]["type"].length == 2000
    assert cols["number"]["type"].length == 64
    assert cols["doc"]["type"].length == 500 and cols["logo"]["type"].length == 500
    for name in ("parent", "rep", "team", "owner", "department", "about_id"):
        assert is_(name, sa.Integer), name
    assert is_("about_entity", sa.String)
    assert {"place_lat", "place_lng", "place_address"} <= set(cols)
    assert is_("place_lat", sa.Numeric) and cols["place_lat"]["type"].scale == 7
    assert is_("score", sa.BigInteger) or is_("score", sa.Integer)
    assert "lines" not in cols  # a child table, not a column
    assert {"id", "version", "created_at", "created_by", "updated_at", "updated_by"} <= set(cols)
    assert cols["id"]["nullable"] is False and cols["created_at"]["nullable"] is False
    assert cols["name"]["nullable"] is True  # required is a rule of the record service


def test_install_creates_foreign_keys_and_child_table(make_app: Any, engine_of: Any) -> None:
    engine = engine_of(make_app(account_docs()))
    fks = _fks(engine, "ent_account")
    assert fks[("parent",)]["referred_table"] == "ent_account"
    assert fks[("rep",)]["referred_table"] == "mc_users"
    assert fks[("team",)]["referred_table"] == "mc_departments"
    assert fks[("owner",)]["referred_table"] == "mc_users"
    assert fks[("department",)]["referred_table"] == "mc_departments"
    assert ("about_id",) not in fks  # a reference may point at any entity: no FK

    line_cols = _columns(engine, "ent_account_line")
    assert {"parent_id", "idx", "item", "qty"} <= set(line_cols)
    assert line_cols["parent_id"]["nullable"] is False
    parent_fk = _fks(engine, "ent_account_line")[("parent_id",)]
    assert parent_fk["referred_table"] == "ent_account"
    assert (parent_fk.get("options") or {}).get("ondelete", "").upper() == "CASCADE"


def test_install_creates_unique_and_composite_indexes(make_app: Any, engine_of: Any) -> None:
    engine = engine_of(make_app(account_docs()))
    ix = _indexes(engine, "ent_account")
    assert ix[("code",)] is True
    assert ix[("number",)] is True  # autonumbers are unique
    assert ix[("level", "active")] is False
    assert ix[("name", "team")] is True
    assert ix[("about_entity", "about_id")] is False
    assert ix[("parent",)] is False  # lookups are indexed
    assert _indexes(engine, "ent_account_line")[("parent_id",)] is False


def test_child_rows_are_deleted_with_their_parent(make_app: Any, client_of: Any, engine_of: Any) -> None:
    app = make_app(account_docs())
    client = client_of(app)
    r = client.post("/api/v1/records/account", json={"name": "Acme", "lines": [{"item": "a", "qty": "1"}]})
    assert r.status_code == 201, r.get_json()
    with engine_of(app).begin() as conn:
        conn.execute(sa.text("DELETE FROM ent_account WHERE id = :id"), {"id": r.get_json()["id"]})
        assert conn.execute(sa.text("SELECT count(*) FROM ent_account_line")).scalar_one() == 0


def test_long_index_names_fit_postgres_limit(make_app: Any, engine_of: Any) -> None:
    long_a, long_b = "a_rather_long_field_name_for_a_region", "another_long_field_name_for_a_zone"
    docs = [entity("very_long_entity_name_for_indexes",
                   {"name": long_a, "type": "text", "unique": True},
                   {"name": long_b, "type": "text"},
                   indexes=[[long_a, long_b], {"fields": [long_b, long_a], "unique": True}])]
    engine = engine_of(make_app(docs))
    names = [i["name"] for i in sa.inspect(engine).get_indexes("ent_very_long_entity_name_for_indexes")]
    assert len(names) >= 3 and all(len(n) <= MAX_NAME for n in names)
    assert len(set(names)) == len(names)
    assert _conn_plan(engine, docs).empty


# ------------------------------------------------------------------ 2. idempotent plans

def test_replan_after_install_is_empty(make_app: Any, engine_of: Any) -> None:
    app = make_app(account_docs())
    plan = _conn_plan(engine_of(app), account_docs())
    assert plan.steps == [] and plan.empty, plan.render()


def test_replan_after_upgrade_is_empty(make_app: Any, engine_of: Any) -> None:
    app = make_app(account_docs())
    docs = account_docs()
    docs[0]["fields"].append({"name": "rating", "type": "decimal", "precision": 5, "scale": 1})
    docs[0]["fields"].append({"name": "closed_at", "type": "datetime"})
    docs[0]["fields"].append({"name": "vip", "type": "boolean"})
    republish(app, docs)
    assert pending_plan(app, docs).empty


def test_dropping_an_index_or_unique_flag_drops_only_the_index(make_app: Any, engine_of: Any) -> None:
    app = make_app(account_docs())
    engine = engine_of(app)
    docs = account_docs()
    docs[0]["indexes"] = [["level", "active"]]
    docs[0]["fields"][1].pop("unique")
    plan = republish(app, docs)
    assert sorted(s.action for s in plan.steps) == ["drop_index", "drop_index"], plan.render()
    ix = _indexes(engine, "ent_account")
    assert ("name", "team") not in ix and ("code",) not in ix and ix[("level", "active")] is False
    assert "code" in _columns(engine, "ent_account")
    assert pending_plan(app, docs).empty


# ------------------------------------------------------------------ 3. adding to big tables

BIG = 10_000


def _fill(engine: sa.Engine, table: str, rows: list[dict[str, Any]]) -> None:
    t = sa.Table(table, sa.MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        conn.execute(t.insert(), rows)


def _base_rows(n: int = BIG) -> list[dict[str, Any]]:
    now = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    return [{"version": 1, "created_at": now, "updated_at": now, "name": f"Acme {i}", "code": f"C{i:05d}",
             "amount": decimal.Decimal(i) / 4, "active": i % 2 == 0,
             "founded": dt.date(2000, 1, 1) + dt.timedelta(i % 900),
             "seen_at": now + dt.timedelta(minutes=i), "level": "A" if i % 3 else "B"} for i in range(n)]


BIG_FIELDS = ({"name": "name", "type": "text"}, {"name": "code", "type": "text", "max_length": 20},
              {"name": "amount", "type": "decimal", "precision": 18, "scale": 2}, {"name": "active", "type": "boolean"},
              {"name": "founded", "type": "date"}, {"name": "seen_at", "type": "datetime"},
              {"name": "level", "type": "select", "options": OPTIONS})
BIG_COLUMNS = ("name", "code", "amount", "active", "founded", "seen_at", "level", "created_at")


def test_adding_fields_entity_and_index_to_a_big_table_keeps_every_row(make_app: Any, engine_of: Any) -> None:
    base = [entity("company", *copy.deepcopy(BIG_FIELDS)), entity("region", {"name": "name", "type": "text"})]
    app = make_app(base)
    engine = engine_of(app)
    _fill(engine, "ent_company", _base_rows())
    before = table_checksum(engine, "ent_company", BIG_COLUMNS)
    assert before[0] == BIG

    docs = copy.deepcopy(base)
    docs[0]["fields"] += [{"name": "notes", "type": "textarea"},
                          {"name": "rating", "type": "integer"},
                          {"name": "region", "type": "lookup", "target": "region"},
                          {"name": "branch", "type": "lookup", "target": "branch"},
                          {"name": "rep", "type": "user"}]
    docs[0]["indexes"] = [["level", "active"], {"fields": ["code"], "unique": True}]
    docs.append(entity("branch", {"name": "name", "type": "text"}, {"name": "region", "type": "lookup",
                                                                     "target": "region"}))
    plan = republish(app, docs)
    actions = {s.action for s in plan.steps}
    assert {"create_table", "add_column", "create_index"} <= actions

    assert table_checksum(engine, "ent_company", BIG_COLUMNS) == before
    cols = _columns(engine, "ent_company")
    assert {"notes", "rating", "region", "branch", "rep"} <= set(cols)
    fks = _fks(engine, "ent_company")
    assert fks[("region",)]["referred_table"] == "ent_region"
    assert fks[("branch",)]["referred_table"] == "ent_branch"
    assert _indexes(engine, "ent_company")[("code",)] is True
    assert pending_plan(app, docs).empty


def test_new_entities_referring_to_each_other_are_created_in_order(make_app: Any, engine_of: Any) -> None:
    app = make_app([entity("base", {"name": "name", "type": "text"})])
    docs = [entity("base", {"name": "name", "type": "text"}),
            entity("aaa", {"name": "zzz", "type": "lookup", "target": "zzz"}),
            entity("zzz", {"name": "name", "type": "text"}, {"name": "aaa", "type": "lookup", "target": "mmm"}),
            entity("mmm", {"name": "name", "type": "text"})]
    republish(app, docs)
    engine = engine_of(app)
    assert _fks(engine, "ent_aaa")[("zzz",)]["referred_table"] == "ent_zzz"
    assert _fks(engine, "ent_zzz")[("aaa",)]["referred_table"] == "ent_mmm"


def test_entities_that_look_each_other_up_install_and_upgrade(make_app: Any, client_of: Any,
                                                              engine_of: Any) -> None:
    """customer.primary_contact <-> contact.customer: no creation order satisfies both."""
    docs = [entity("customer", {"name": "name", "type": "text"},
                   {"name": "primary_contact", "type": "lookup", "target": "contact"}),
            entity("contact", {"name": "name", "type": "text"},
                   {"name": "customer", "type": "lookup", "target": "customer"})]
    app = make_app(docs)
    engine = engine_of(app)
    assert _fks(engine, "ent_customer")[("primary_contact",)]["referred_table"] == "ent_contact"
    assert _fks(engine, "ent_contact")[("customer",)]["referred_table"] == "ent_customer"
    assert pending_plan(app, docs).empty
    client = client_of(app)
    cus = client.post("/api/v1/records/customer", json={"name": "Acme"}).get_json()
    con = client.post("/api/v1/records/contact", json={"name": "Ann", "customer": cus["id"]}).get_json()
    r = client.patch(f"/api/v1/records/customer/{cus['id']}", json={"primary_contact": con["id"],
                                                                     "version": cus["version"]})
    assert r.status_code == 200, r.get_json()

    more = docs + [entity("order", {"name": "item", "type": "lookup", "target": "order_item"}),
                   entity("order_item", {"name": "order", "type": "lookup", "target": "order"},
                          {"name": "contact", "type": "lookup", "target": "contact"})]
    republish(app, more)
    assert _fks(engine, "ent_order")[("item",)]["referred_table"] == "ent_order_item"
    assert _fks(engine, "ent_order_item")[("order",)]["referred_table"] == "ent_order"
    assert pending_plan(app, more).empty


def test_names_postgres_would_truncate_are_refused(make_app: Any, engine_of: Any) -> None:
    app = make_app(_contact_docs())
    engine = engine_of(app)
    long_entity = "e" * 60  # "ent_" + 60 = 64 characters
    long_field = "f" * 60  # a location adds "_address"
    docs = _contact_docs({"name": long_field, "type": "location"}) + [entity(long_entity,
                                                                            {"name": "x", "type": "text"})]
    _assert_refused_unchanged(app, engine, docs, f"'ent_{long_entity}' is 64 characters",
                              f"'{long_field}_address' is 68 characters")


# ------------------------------------------------------------------ 4. archiving

def _contact_docs(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [entity("contact", {"name": "name", "type": "text"}, {"name": "nickname", "type": "text"},
                   {"name": "age", "type": "integer"}, *extra),
            {"kind": "view", "entity": "contact", "name": "all", "label": "All", "columns": ["name"]}]


def test_removed_field_is_archived_with_column_and_data_kept(make_app: Any, client_of: Any,
                                                             engine_of: Any) -> None:
    app = make_app(_contact_docs())
    client = client_of(app)
    engine = engine_of(app)
    rid = client.post("/api/v1/records/contact", json={"name": "Ann", "nickname": "annie", "age": 30}).get_json()["id"]

    docs = _contact_docs()
    docs[0]["fields"] = [f for f in docs[0]["fields"] if f["name"] != "nickname"]
    plan = republish(app, docs)
    assert [s.action for s in plan.steps] == ["archive_field"]

    assert "nickname" in _columns(engine, "ent_contact")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT nickname FROM ent_contact WHERE id = :i"), {"i": rid}).scalar() == "annie"
        stored = conn.execute(sa.select(systables.meta_versions.c.documents)
                              .order_by(systables.meta_versions.c.version.desc()).limit(1)).scalar_one()
    contact = next(d for d in stored if d.get("kind") == "entity" and d["name"] == "contact")
    archived = next(f for f in contact["fields"] if f["name"] == "nickname")
    assert archived["archived"] is True

    record = client.get(f"/api/v1/records/contact/{rid}").get_json()
    assert "nickname" not in record and record["age"] == 30
    items = client.get("/api/v1/records/contact").get_json()["items"]
    assert all("nickname" not in i for i in items)
    meta = client.get("/api/v1/meta/entities/contact").get_json()
    assert "nickname" not in [f["name"] for f in meta["fields"]]
    openapi = json.dumps(client.get("/api/v1/openapi.json").get_json())
    assert "nickname" not in openapi
    r = client.patch(f"/api/v1/records/contact/{rid}", json={"nickname": "x", "version": record["version"]})
    assert r.status_code == 422, r.get_json()
    assert "Unknown field" in r.get_json()["error"]["fields"]["nickname"][0]
    r = client.post("/api/v1/records/contact", json={"name": "Bob", "nickname": "b"})
    assert r.status_code == 422 and "nickname" in r.get_json()["error"]["fields"]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT nickname FROM ent_contact WHERE id = :i"), {"i": rid}).scalar() == "annie"
    r = client.get('/api/v1/records/contact?filter=[["nickname","=","annie"]]')
    assert r.status_code == 400

    # Un-archive: the old values are back.
    republish(app, _contact_docs(), version="1.2.0")
    assert client.get(f"/api/v1/records/contact/{rid}").get_json()["nickname"] == "annie"
    assert pending_plan(app, _contact_docs()).empty


def test_removed_entity_is_archived_table_kept_and_api_404(make_app: Any, client_of: Any,
                                                           engine_of: Any) -> None:
    docs = _contact_docs() + [entity("note", {"name": "text", "type": "text"})]
    app = make_app(docs)
    client = client_of(app)
    assert client.post("/api/v1/records/note", json={"text": "hello"}).status_code == 201
    plan = republish(app, _contact_docs())
    assert [s.action for s in plan.steps] == ["archive_entity"]
    engine = engine_of(app)
    assert "ent_note" in sa.inspect(engine).get_table_names()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT text FROM ent_note")).scalar() == "hello"
    assert client.get("/api/v1/records/note").status_code == 404
    assert client.post("/api/v1/records/note", json={"text": "x"}).status_code == 404
    assert client.get("/api/v1/meta/entities/note").status_code == 404
    names = [e["name"] for e in client.get("/api/v1/meta/entities").get_json()["items"]]
    assert "note" not in names and "contact" in names
    # Restored: the rows are there again.
    republish(app, docs, version="1.2.0")
    assert client.get("/api/v1/records/note").get_json()["items"][0]["text"] == "hello"


# ------------------------------------------------------------------ 5. renaming

def test_rename_with_renamed_from_keeps_data(make_app: Any, client_of: Any, engine_of: Any) -> None:
    app = make_app(_contact_docs())
    client = client_of(app)
    engine = engine_of(app)
    rid = client.post("/api/v1/records/contact", json={"name": "Ann", "nickname": "annie"}).get_json()["id"]
    docs = _contact_docs()
    docs[0]["fields"][1] = {"name": "alias", "type": "text", "renamed_from": "nickname"}
    plan = republish(app, docs)
    assert [s.action for s in plan.steps] == ["rename_column"], plan.render()
    cols = _columns(engine, "ent_contact")
    assert "alias" in cols and "nickname" not in cols
    assert client.get(f"/api/v1/records/contact/{rid}").get_json()["alias"] == "annie"
    meta_fields = [f["name"] for f in client.get("/api/v1/meta/entities/contact").get_json()["fields"]]
    assert "nickname" not in meta_fields
    with engine.connect() as conn:
        _, stored = conn.execute(sa.select(systables.meta_versions.c.version, systables.meta_versions.c.documents)
                                 .order_by(systables.meta_versions.c.version.desc()).limit(1)).one()
    contact = next(d for d in stored if d.get("kind") == "entity" and d["name"] == "contact")
    assert "nickname" not in [f["name"] for f in contact["fields"]]  # no archived twin
    assert pending_plan(app, docs).empty


def test_renaming_unique_and_lookup_fields_keeps_data_indexes_and_keys(make_app: Any, client_of: Any,
                                                                       engine_of: Any) -> None:
    docs = [entity("org", {"name": "name", "type": "text"}),
            entity("person", {"name": "name", "type": "text"}, {"name": "code", "type": "text", "unique": True},
                   {"name": "org", "type": "lookup", "target": "org"}, indexes=[["name", "code"]])]
    app = make_app(docs)
    client = client_of(app)
    engine = engine_of(app)
    org = client.post("/api/v1/records/org", json={"name": "O"}).get_json()
    rid = client.post("/api/v1/records/person", json={"name": "P", "code": "C1", "org": org["id"]}).get_json()["id"]
    renamed = copy.deepcopy(docs)
    renamed[1]["fields"][1:] = [{"name": "ref", "type": "text", "unique": True, "renamed_from": "code"},
                                {"name": "company", "type": "lookup", "target": "org", "renamed_from": "org"}]
    renamed[1]["indexes"] = [["name", "ref"]]
    plan = republish(app, renamed)
    assert sorted(s.action for s in plan.steps if s.action == "rename_column") == ["rename_column"] * 2
    got = client.get(f"/api/v1/records/person/{rid}").get_json()
    assert (got["ref"], got["company"]) == ("C1", org["id"])
    ix = _indexes(engine, "ent_person")
    assert ix[("ref",)] is True and ix[("name", "ref")] is False and ix[("company",)] is False
    assert not any("code" in cols or "org" in cols for cols in ix)
    assert _fks(engine, "ent_person")[("company",)]["referred_table"] == "ent_org"
    assert pending_plan(app, renamed).empty
    r = client.post("/api/v1/records/person", json={"name": "Q", "ref": "C1"})
    assert r.status_code == 422 and "ref" in r.get_json()["error"]["fields"]
    with pytest.raises(sa.exc.IntegrityError):  # still unique in the database
        _insert(engine, "ent_person", [{"name": "Q", "ref": "C1"}])


# ------------------------------------------------------------------ 6. type changes

def _typed(field: dict[str, Any]) -> list[dict[str, Any]]:
    return [entity("item", {"name": "name", "type": "text"}, field)]


def _insert(engine: sa.Engine, table: str, rows: list[dict[str, Any]]) -> None:
    now = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    keys = {k for r in rows for k in r}
    _fill(engine, table, [{"version": 1, "created_at": now, "updated_at": now, **dict.fromkeys(keys), **r}
                          for r in rows])


def test_text_to_integer_converts_numeric_values(make_app: Any, client_of: Any, engine_of: Any) -> None:
    app = make_app(_typed({"name": "qty", "type": "text"}))
    engine = engine_of(app)
    _insert(engine, "ent_item", [{"name": f"n{i}", "qty": str(i * 7)} for i in range(50)] + [{"name": "none"}])
    plan = republish(app, _typed({"name": "qty", "type": "integer"}))
    assert [s.action for s in plan.steps] == ["alter_type"]
    assert isinstance(_columns(engine, "ent_item")["qty"]["type"], sa.Integer)
    items = client_of(app).get("/api/v1/records/item?page_size=100&sort=id").get_json()["items"]
    assert [i["qty"] for i in items] == [i * 7 for i in range(50)] + [None]
    assert pending_plan(app, _typed({"name": "qty", "type": "integer"})).empty


@pytest.mark.parametrize("old_type, new_field, stored, expected", [
    ("text", {"type": "date"}, ["2024-01-05", "2023-12-31"], ["2024-01-05", "2023-12-31"]),
    ("text", {"type": "boolean"}, ["yes", "false", "1", "True"], [True, False, True, True]),
    ("text", {"type": "decimal", "precision": 12, "scale": 2}, ["1,234.5", " 7 "], ["1234.50", "7.00"]),
    ("text", {"type": "integer"}, [" 12 ", "-3"], [12, -3]),
    ("text", {"type": "datetime"}, ["2024-01-05T10:30:00+08:00"], ["2024-01-05T02:30:00+00:00"]),
    ("integer", {"type": "text"}, [12, -3], ["12", "-3"]),
    ("integer", {"type": "decimal", "precision": 12, "scale": 2}, [12], ["12.00"]),
    ("decimal", {"type": "integer"}, [decimal.Decimal("12.00")], [12]),
    ("date", {"type": "text"}, [dt.date(2024, 1, 5)], ["2024-01-05"]),
    ("select", {"type": "multiselect", "options": OPTIONS}, ["A", "B"], [["A"], ["B"]]),
])
def test_type_change_converts_values_like_the_api_would(make_app: Any, client_of: Any, engine_of: Any,
                                                        old_type: str, new_field: dict[str, Any],
                                                        stored: list[Any], expected: list[Any]) -> None:
    app = make_app(_typed({"name": "v", "type": old_type, **({"options": OPTIONS} if old_type == "select" else {})}))
    engine = engine_of(app)
    _insert(engine, "ent_item", [{"name": str(i), "v": v} for i, v in enumerate(stored)])
    docs = _typed({"name": "v", **new_field})
    plan = republish(app, docs)
    assert [s.action for s in plan.steps] == ["alter_type"], plan.render()
    items = client_of(app).get("/api/v1/records/item?sort=id").get_json()["items"]
    got = [i["v"] for i in items]
    if new_field["type"] == "datetime":
        got = [g.replace("Z", "+00:00") for g in got]
    assert got == expected
    assert pending_plan(app, docs).empty


def test_decimal_to_integer_with_fractions_is_refused(make_app: Any, engine_of: Any) -> None:
    app = make_app(_typed({"name": "v", "type": "decimal"}))
    engine = engine_of(app)
    _insert(engine, "ent_item", [{"name": "a", "v": decimal.Decimal("12.5")}, {"name": "b", "v": 3}])
    _assert_refused_unchanged(app, engine, _typed({"name": "v", "type": "integer"}), "1 row(s)")


def _assert_refused_unchanged(app: Any, engine: sa.Engine, docs: list[dict[str, Any]], *needles: str) -> str:
    version, schema = meta_version(engine), schema_snapshot(engine)
    with pytest.raises(PublishRefused) as info:
        republish(app, docs)
    message = str(info.value)
    for needle in needles:
        assert needle in message, message
    assert meta_version(engine) == version
    assert schema_snapshot(engine) == schema
    return message


def test_text_to_integer_with_bad_values_is_refused_with_count(make_app: Any, engine_of: Any) -> None:
    app = make_app(_typed({"name": "qty", "type": "text"}))
    engine = engine_of(app)
    _insert(engine, "ent_item", [{"name": f"n{i}", "qty": str(i) if i % 10 else f"x{i}"} for i in range(100)])
    before = table_checksum(engine, "ent_item", ["name", "qty"])
    _assert_refused_unchanged(app, engine, _typed({"name": "qty", "type": "integer"}), "10 row(s)", "qty")
    assert table_checksum(engine, "ent_item", ["name", "qty"]) == before


def test_shrinking_max_length_over_longer_values_is_refused(make_app: Any, engine_of: Any) -> None:
    app = make_app(_typed({"name": "code", "type": "text", "max_length": 50}))
    engine = engine_of(app)
    _insert(engine, "ent_item", [{"name": "a", "code": "x" * 40}, {"name": "b", "code": "short"},
                                 {"name": "c", "code": "y" * 11}])
    _assert_refused_unchanged(app, engine, _typed({"name": "code", "type": "text", "max_length": 10}),
                              "2 row(s)")
    # Growing it is fine.
    republish(app, _typed({"name": "code", "type": "text", "max_length": 80}))
    assert _columns(engine, "ent_item")["code"]["type"].length == 80


def test_changing_storage_shape_is_refused(make_app: Any, client_of: Any, engine_of: Any) -> None:
    app = make_app(_typed({"name": "spot", "type": "text"}))
    engine = engine_of(app)
    _insert(engine, "ent_item", [{"name": "a", "spot": "here"}])
    _assert_refused_unchanged(app, engine, _typed({"name": "spot", "type": "location"}),
                              "ent_item.spot: the field's storage shape changed (text -> location)")
    _assert_refused_unchanged(app, engine, _typed({"name": "spot", "type": "reference", "targets": ["item"]}),
                              "(text -> reference)")
    assert client_of(app).get("/api/v1/records/item").get_json()["items"][0]["spot"] == "here"


# ------------------------------------------------------------------ 7. unique over duplicates

def test_unique_field_over_duplicates_is_refused_with_them(make_app: Any, engine_of: Any) -> None:
    app = make_app(_typed({"name": "code", "type": "text"}))
    engine = engine_of(app)
    _insert(engine, "ent_item", [{"name": "a", "code": "DUP"}, {"name": "b", "code": "DUP"},
                                 {"name": "c", "code": "ok"}, {"name": "d"}, {"name": "e"}])
    message = _assert_refused_unchanged(app, engine, _typed({"name": "code", "type": "text", "unique": True}),
                                        "DUP", "1 duplicate")
    assert "ok" not in message.split("DUP", 1)[1]


def test_unique_composite_index_over_duplicates_is_refused(make_app: Any, engine_of: Any) -> None:
    docs = _typed({"name": "code", "type": "text"})
    app = make_app(docs)
    engine = engine_of(app)
    _insert(engine, "ent_item", [{"name": "a", "code": "X"}, {"name": "a", "code": "X"},
                                 {"name": "a", "code": "Y"}, {"name": "b", "code": "Y"}])
    docs[0]["indexes"] = [{"fields": ["name", "code"], "unique": True}]
    _assert_refused_unchanged(app, engine, docs, "'name': 'a'", "'code': 'X'", "1 duplicate")
    docs[0]["indexes"] = [{"fields": ["name", "code"], "unique": False}]
    republish(app, docs)
    assert _indexes(engine, "ent_item")[("name", "code")] is False


def test_retargeting_a_lookup_checks_the_existing_values(make_app: Any, engine_of: Any) -> None:
    docs = [entity("org", {"name": "name", "type": "text"}), entity("company", {"name": "name", "type": "text"}),
            entity("person", {"name": "name", "type": "text"}, {"name": "employer", "type": "lookup", "target": "org"})]
    app = make_app(docs)
    engine = engine_of(app)
    _insert(engine, "ent_org", [{"name": f"o{i}"} for i in range(3)])
    _insert(engine, "ent_company", [{"name": "c1"}])
    _insert(engine, "ent_person", [{"name": "a", "employer": 1}, {"name": "b", "employer": 3}, {"name": "c"}])
    retargeted = copy.deepcopy(docs)
    retargeted[2]["fields"][1]["target"] = "company"
    _assert_refused_unchanged(app, engine, retargeted, "1 row(s) refer to no ent_company record", "ids 2")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE ent_person SET employer = NULL WHERE id = 2"))
    republish(app, retargeted)
    assert _fks(engine, "ent_person")[("employer",)]["referred_table"] == "ent_company"
    assert table_checksum(engine, "ent_person", ["name", "employer"])[0] == 3
    assert pending_plan(app, retargeted).empty


# ------------------------------------------------------------------ 8. all or nothing

def test_publish_failing_midway_changes_nothing(make_app: Any, engine_of: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    base = [entity("company", *copy.deepcopy(BIG_FIELDS)), entity("region", {"name": "name", "type": "text"})]
    app = make_app(base)
    engine = engine_of(app)
    _fill(engine, "ent_company", _base_rows(200))
    before = table_checksum(engine, "ent_company", BIG_COLUMNS)
    version, schema = meta_version(engine), schema_snapshot(engine)

    docs = copy.deepcopy(base)
    docs[0]["fields"] += [{"name": "notes", "type": "textarea"},
                          {"name": "region", "type": "lookup", "target": "region"},
                          {"name": "code2", "type": "text", "unique": True}]
    docs[0]["fields"][1]["max_length"] = 30  # an alter_type (batch rebuild on SQLite)
    docs.append(entity("branch", {"name": "name", "type": "text"}))
    assert len([s for s in pending_plan(app, docs).steps if s.op is not None]) >= 4

    real_invoke = Operations.invoke
    calls = {"n": 0}

    def failing_invoke(self: Operations, operation: Any) -> Any:
        if self.migration_context.as_sql:  # rendering the plan's DDL for the admin
            return real_invoke(self, operation)
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom in the middle of a publish")
        return real_invoke(self, operation)

    monkeypatch.setattr(Operations, "invoke", failing_invoke)
    with pytest.raises(RuntimeError, match="boom"):
        republish(app, docs)
    monkeypatch.setattr(Operations, "invoke", real_invoke)

    assert calls["n"] == 2
    assert meta_version(engine) == version
    assert schema_snapshot(engine) == schema
    assert table_checksum(engine, "ent_company", BIG_COLUMNS) == before
    # and the same publish then goes through
    republish(app, docs)
    assert meta_version(engine) == version + 1
    assert table_checksum(engine, "ent_company", BIG_COLUMNS) == before


@pytest.mark.parametrize("fail_at", [1, 3])
def test_publish_failing_at_other_steps_changes_nothing(make_app: Any, engine_of: Any,
                                                        monkeypatch: pytest.MonkeyPatch, fail_at: int) -> None:
    app = make_app(account_docs())
    engine = engine_of(app)
    version, schema = meta_version(engine), schema_snapshot(engine)
    docs = account_docs()
    docs[0]["fields"] += [{"name": "x1", "type": "text"}, {"name": "x2", "type": "lookup", "target": "account"},
                          {"name": "x3", "type": "integer"}]
    docs[0]["fields"][0]["max_length"] = 200
    real_invoke = Operations.invoke
    calls = {"n": 0}

    def failing_invoke(self: Operations, operation: Any) -> Any:
        if self.migration_context.as_sql:
            return real_invoke(self, operation)
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise RuntimeError("boom")
        return real_invoke(self, operation)

    monkeypatch.setattr(Operations, "invoke", failing_invoke)
    with pytest.raises(RuntimeError):
        republish(app, docs)
    assert meta_version(engine) == version and schema_snapshot(engine) == schema


# ------------------------------------------------------------------ 9. wide entities

WIDE_TYPES = ["text", "integer", "decimal", "boolean", "date", "datetime", "select", "email", "textarea", "currency"]


def _wide_value(kind: str, i: int) -> Any:
    return {"text": f"text {i}", "integer": i * 1000, "decimal": f"{i}.2500", "boolean": i % 2 == 0,
            "date": f"2024-{i % 12 + 1:02d}-{i % 28 + 1:02d}",
            "datetime": f"2024-03-{i % 28 + 1:02d}T10:{i % 60:02d}:00+00:00",
            "select": "B", "email": f"u{i}@example.com", "textarea": "line\n" * 3, "currency": f"{i}.50"}[kind]


def test_entity_with_300_fields_publishes_and_round_trips(make_app: Any, client_of: Any) -> None:
    fields = []
    for i in range(300):
        kind = WIDE_TYPES[i % len(WIDE_TYPES)]
        f: dict[str, Any] = {"name": f"f{i:03d}_{kind}", "type": kind}
        if kind == "select":
            f["options"] = OPTIONS
        fields.append(f)
    app = make_app([entity("wide", *fields)])
    client = client_of(app)
    values = {f["name"]: _wide_value(f["type"], i) for i, f in enumerate(fields)}
    r = client.post("/api/v1/records/wide", json=values)
    assert r.status_code == 201, r.get_json()
    got = client.get(f"/api/v1/records/wide/{r.get_json()['id']}").get_json()
    for name, value in values.items():
        if name.endswith("_datetime"):
            assert got[name].replace("Z", "+00:00") == value, name
        elif name.endswith("_textarea"):
            assert got[name] == value.strip(), name
        else:
            assert got[name] == value, name
    assert pending_plan(app, [entity("wide", *fields)]).empty


# ------------------------------------------------------------------ 10. version history

def test_each_publish_records_a_version_with_its_plan(make_app: Any, engine_of: Any) -> None:
    app = make_app(_contact_docs())
    engine = engine_of(app)
    assert meta_version(engine) == 1
    republish(app, _contact_docs({"name": "city", "type": "text"}))
    # the same again: nothing to publish, no version
    plan = republish(app, _contact_docs({"name": "city", "type": "text"}), version="1.1.1")
    assert plan.empty
    with engine.connect() as conn:
        rows = conn.execute(sa.select(systables.meta_versions).order_by(systables.meta_versions.c.version)).all()
    assert [r.version for r in rows] == [1, 2]
    assert [s["action"] for s in rows[0].plan["steps"]] == ["create_table"]
    step = rows[1].plan["steps"][0]
    assert step["action"] == "add_column" and step["table"] == "ent_contact"
    assert any("city" in sql for sql in step["sql"])
    assert rows[1].plan["from_version"] == 1 and rows[1].plan["to_version"] == 2
    assert rows[1].note and "upgrade" in rows[1].note


def test_label_only_change_records_a_version_without_ddl(make_app: Any, engine_of: Any) -> None:
    app = make_app(_contact_docs())
    engine = engine_of(app)
    docs = _contact_docs()
    docs[0]["fields"][0]["label"] = {"en": "Full name", "zh": "姓名"}
    plan = republish(app, docs)
    assert plan.steps == [] and plan.metadata_changed
    assert meta_version(engine) == 2


def test_publish_function_directly_with_empty_plan_records_nothing(make_app: Any, engine_of: Any) -> None:
    app = make_app(_contact_docs())
    engine = engine_of(app)
    with engine.begin() as conn:
        plan = publish(conn, [Document(f"{d['kind']}.json", d) for d in _contact_docs()])
    assert plan.empty and meta_version(engine) == 1
    assert app.extensions[EXTENSION].catalog().version == 1


# ------------------------------------------------------------------ rebuilding referenced tables

def test_type_change_on_a_referenced_parent_keeps_children_and_lookups(make_app: Any, client_of: Any,
                                                                      engine_of: Any) -> None:
    """A SQLite batch rebuild drops and recreates the table: child rows (ON DELETE CASCADE)
    and lookups pointing at it must survive, as on PostgreSQL's ALTER COLUMN."""
    docs = account_docs() + [entity("deal", {"name": "name", "type": "text"},
                                    {"name": "account", "type": "lookup", "target": "account"})]
    app = make_app(docs)
    client = client_of(app)
    engine = engine_of(app)
    parent = client.post("/api/v1/records/account", json={"name": "Parent"}).get_json()
    child = client.post("/api/v1/records/account", json={
        "name": "Child", "parent": parent["id"], "lines": [{"item": "a", "qty": "1"}, {"item": "b", "qty": "2"}]})
    assert child.status_code == 201, child.get_json()
    child = child.get_json()
    deal = client.post("/api/v1/records/deal", json={"name": "D", "account": child["id"]}).get_json()
    lines_before = table_checksum(engine, "ent_account_line", ["parent_id", "idx", "item", "qty"])
    assert lines_before[0] == 2

    docs[0]["fields"][0]["max_length"] = 300  # String(120) -> String(300): an alter_type
    docs[0]["fields"][1]["max_length"] = 10  # shrink, values fit
    plan = republish(app, docs)
    assert [s.action for s in plan.steps if s.op is not None] == ["alter_type", "alter_type"], plan.render()

    assert table_checksum(engine, "ent_account_line", ["parent_id", "idx", "item", "qty"]) == lines_before
    got = client.get(f"/api/v1/records/account/{child['id']}").get_json()
    assert [line["item"] for line in got["lines"]] == ["a", "b"] and got["parent"] == parent["id"]
    assert client.get(f"/api/v1/records/deal/{deal['id']}").get_json()["account"] == child["id"]
    assert _columns(engine, "ent_account")["name"]["type"].length == 300
    fk = _fks(engine, "ent_account_line")[("parent_id",)]
    assert fk["referred_table"] == "ent_account"
    assert (fk.get("options") or {}).get("ondelete", "").upper() == "CASCADE"
    assert _fks(engine, "ent_deal")[("account",)]["referred_table"] == "ent_account"
    assert pending_plan(app, docs).empty
    # the cascade still works after the rebuild (and the lookup still guards the row)
    assert client.delete(f"/api/v1/records/account/{child['id']}").status_code == 409
    assert client.delete(f"/api/v1/records/deal/{deal['id']}").status_code == 204
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM ent_account WHERE id = :i"), {"i": child["id"]})
        assert conn.execute(sa.text("SELECT count(*) FROM ent_account_line")).scalar_one() == 0


def test_sqlite_rebuild_outside_a_schema_transaction_is_stopped_before_any_ddl(
        make_app: Any, engine_of: Any, is_postgres: bool) -> None:
    if is_postgres:
        pytest.skip("PostgreSQL alters columns in place")
    from metacrm.runtime.metastore import install_template
    from metacrm.runtime.publish import RebuildNeedsSchemaTransaction

    from .support import package

    app = make_app(account_docs())
    engine = engine_of(app)
    version, schema = meta_version(engine), schema_snapshot(engine)
    docs = account_docs()
    docs[0]["fields"][0]["max_length"] = 300
    with pytest.raises(RebuildNeedsSchemaTransaction, match="ent_account"):
        with engine.begin() as conn:
            install_template(conn, package(docs, version="1.1.0"), upgrade=True)
    assert meta_version(engine) == version and schema_snapshot(engine) == schema


def test_schema_transaction_checks_foreign_keys_and_restores_enforcement(
        make_app: Any, engine_of: Any, is_postgres: bool) -> None:
    from metacrm.runtime.db import schema_transaction
    from metacrm.runtime.errors import Conflict

    app = make_app(account_docs())
    engine = engine_of(app)
    insert = sa.text("INSERT INTO ent_account_line (version, created_at, updated_at, parent_id, idx) "
                     "VALUES (1, '2024-01-01', '2024-01-01', 999, 0)")
    with pytest.raises((Conflict, sa.exc.IntegrityError)):
        with schema_transaction(engine) as conn:
            conn.execute(insert)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM ent_account_line")).scalar_one() == 0
    if not is_postgres:
        for _ in range(3):  # every pooled connection enforces foreign keys again
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    with pytest.raises(sa.exc.IntegrityError):
        with engine.begin() as conn:
            conn.execute(insert)
