"""Validation through the REST API: every rule refuses bad input with 422, names the field,
says what is wrong in the contract's error shape, and writes nothing.

The rules are enforced by the server alone — no browser script is needed for
`required_when` or `readonly_when` to hold.
"""
from __future__ import annotations

from typing import Any

from metacrm.runtime import accounts

from .support import entity

CUSTOMER = entity("customer", {"name": "name", "type": "text", "required": True}, title_field="name")

LINE = entity(
    "line",
    {"name": "product", "type": "text", "required": True},
    {"name": "quantity", "type": "integer", "min": 1},
    {"name": "price", "type": "currency"},
    {"name": "amount", "type": "formula", "result_type": "currency", "expression": "quantity * price"},
    child_of="order",
)

ORDER = entity(
    "order",
    {"name": "name", "type": "text", "required": True, "max_length": 10},
    {"name": "code", "type": "text", "pattern": "^[A-Z]{3}-[0-9]+$"},
    {"name": "qty", "type": "integer", "min": 1, "max": 100},
    {"name": "weight", "type": "decimal", "precision": 6, "scale": 2, "min": 0},
    {"name": "paid", "type": "boolean"},
    {"name": "due", "type": "date"},
    {"name": "at", "type": "datetime"},
    {"name": "level", "type": "select", "options": [{"value": "A"}, {"value": "B"}]},
    {"name": "tags", "type": "multiselect", "options": [{"value": "x"}, {"value": "y"}]},
    {"name": "email", "type": "email"},
    {"name": "phone", "type": "phone"},
    {"name": "site", "type": "url"},
    {"name": "customer", "type": "lookup", "target": "customer"},
    {"name": "subject", "type": "reference", "targets": ["customer"]},
    {"name": "assignee", "type": "user"},
    {"name": "team", "type": "department"},
    {"name": "stage", "type": "select", "options": [{"value": "draft"}, {"value": "signed"}], "default": "draft"},
    {"name": "amount", "type": "currency", "readonly_when": "stage == 'signed'"},
    {"name": "lost_reason", "type": "text", "required_when": "stage == 'lost'"},
    {"name": "secret", "type": "text", "readonly": True},
    {"name": "double", "type": "formula", "result_type": "integer", "expression": "qty * 2"},
    {"name": "lines", "type": "table", "target": "line"},
    {"name": "spot", "type": "location"},
    title_field="name",
)


def _app(make_app: Any) -> Any:
    return make_app([CUSTOMER, LINE, ORDER])


def _total(c: Any, entity_name: str = "order") -> int:
    return c.get(f"/api/v1/records/{entity_name}").get_json()["total"]


def assert_invalid(r: Any, field: str, *fragments: str, status: int = 422) -> list[str]:
    """The response is a validation error naming `field`, whose message contains `fragments`."""
    assert r.status_code == status, (r.status_code, r.get_json())
    body = r.get_json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["code"] == "validation_error"
    assert isinstance(error["message"], str) and error["message"]
    assert field in error["fields"], error
    messages = error["fields"][field]
    assert isinstance(messages, list) and all(isinstance(m, str) for m in messages)
    for fragment in fragments:
        assert any(fragment.lower() in m.lower() for m in messages), (fragment, messages)
    return messages


def _refused(c: Any, payload: dict[str, Any], field: str, *fragments: str) -> None:
    before = _total(c)
    assert_invalid(c.post("/api/v1/records/order", json=payload), field, *fragments)
    assert _total(c) == before


def test_required_field_missing_empty_or_blank_is_refused(make_app, client_of):
    c = client_of(_app(make_app))
    _refused(c, {}, "name", "required")
    _refused(c, {"name": None}, "name", "required")
    _refused(c, {"name": "   "}, "name", "required")
    assert c.post("/api/v1/records/order", json={"name": "ok"}).status_code == 201


def test_required_field_cannot_be_cleared_by_a_patch(make_app, client_of):
    c = client_of(_app(make_app))
    rec = c.post("/api/v1/records/order", json={"name": "ok"}).get_json()
    assert_invalid(c.patch(f"/api/v1/records/order/{rec['id']}", json={"version": 1, "name": ""}), "name",
                   "required")
    assert c.get(f"/api/v1/records/order/{rec['id']}").get_json()["name"] == "ok"


def test_required_when_is_enforced_by_the_server(make_app, client_of):
    c = client_of(make_app([entity(
        "deal",
        {"name": "stage", "type": "select", "options": [{"value": "open"}, {"value": "lost"}]},
        {"name": "lost_reason", "type": "text", "required_when": "stage == 'lost'"})]))
    assert_invalid(c.post("/api/v1/records/deal", json={"stage": "lost"}), "lost_reason", "required")
    assert _total(c, "deal") == 0
    rec = c.post("/api/v1/records/deal", json={"stage": "open"}).get_json()
    # Moving to "lost" later demands the reason too.
    assert_invalid(c.patch(f"/api/v1/records/deal/{rec['id']}", json={"version": 1, "stage": "lost"}),
                   "lost_reason", "required")
    r = c.patch(f"/api/v1/records/deal/{rec['id']}", json={"version": 1, "stage": "lost", "lost_reason": "price"})
    assert r.status_code == 200, r.get_json()


def test_required_field_hidden_by_visible_when_is_not_demanded(make_app, client_of):
    c = client_of(make_app([entity(
        "customer",
        {"name": "level", "type": "select", "options": [{"value": "A"}, {"value": "B"}]},
        {"name": "credit_limit", "type": "decimal", "required": True, "visible_when": "level == 'A'"})]))
    assert c.post("/api/v1/records/customer", json={"level": "B"}).status_code == 201
    assert_invalid(c.post("/api/v1/records/customer", json={"level": "A"}), "credit_limit", "required")
    assert _total(c, "customer") == 1


def test_readonly_when_refuses_a_change_but_accepts_the_unchanged_value(make_app, client_of):
    c = client_of(_app(make_app))
    rec = c.post("/api/v1/records/order", json={"name": "o", "amount": "100"}).get_json()
    rec = c.patch(f"/api/v1/records/order/{rec['id']}", json={"version": 1, "stage": "signed"}).get_json()
    assert rec["stage"] == "signed" and rec["version"] == 2
    r = c.patch(f"/api/v1/records/order/{rec['id']}", json={"version": 2, "amount": "200"})
    assert_invalid(r, "amount", "read-only")
    assert c.get(f"/api/v1/records/order/{rec['id']}").get_json()["amount"] == "100.00"
    # The whole record sent back as read (amount unchanged, in another spelling too) is fine.
    r = c.patch(f"/api/v1/records/order/{rec['id']}", json={**rec, "amount": "100", "name": "renamed"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["name"] == "renamed"


def test_readonly_when_applies_to_the_state_before_the_change(make_app, client_of):
    """Signing and setting the amount in one request is allowed: the field wasn't locked yet."""
    c = client_of(_app(make_app))
    rec = c.post("/api/v1/records/order", json={"name": "o"}).get_json()
    r = c.patch(f"/api/v1/records/order/{rec['id']}", json={"version": 1, "stage": "signed", "amount": "5"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["amount"] == "5.00"


BAD_VALUES = [
    ({"name": "x" * 11}, "name", "10"),
    ({"code": "abc-1"}, "code", "format"),
    ({"qty": 0}, "qty", "1"),
    ({"qty": 101}, "qty", "100"),
    ({"qty": "abc"}, "qty", "integer"),
    ({"qty": 1.5}, "qty", "integer"),
    ({"qty": True}, "qty", "integer"),
    ({"weight": "-1"}, "weight", "0"),
    ({"weight": "10000"}, "weight", "less than"),
    ({"weight": "abc"}, "weight", "number"),
    ({"weight": "NaN"}, "weight", ""),
    ({"paid": "x"}, "paid", "boolean"),
    ({"due": "2026-13-45"}, "due", "date"),
    ({"due": 20260101}, "due", "date"),
    ({"at": "yesterday"}, "at", "datetime"),
    ({"level": "C"}, "level", "must be one of"),
    ({"tags": ["x", "q"]}, "tags", "must be one of"),
    ({"tags": [1]}, "tags", "list"),
    ({"tags": {"x": 1}}, "tags", "list"),
    ({"email": "not-an-email"}, "email", "email"),
    ({"phone": "call me"}, "phone", "phone"),
    ({"site": "example"}, "site", "url"),
    ({"site": "javascript:alert(1)"}, "site", "url"),
    ({"customer": "abc"}, "customer", "integer"),
    ({"customer": -3}, "customer", ""),
    ({"subject": {"entity": "order", "id": 1}}, "subject", "customer"),
    ({"subject": 5}, "subject", "entity"),
    ({"spot": {"lat": 95, "lng": 0}}, "spot", "lat"),
    ({"spot": "here"}, "spot", ""),
    ({"lines": "nope"}, "lines", "list"),
    ({"name": "a\x00b"}, "name", "NUL"),
    ({"spot": {"lat": 1, "lng": 1, "address": "a\x00b"}}, "spot", "address"),
    ({"at": "9999-12-31T23:59:59-05:00"}, "at", "range"),
    ({"at": "0001-01-01T00:00:00+05:00"}, "at", "range"),
    ({"customer": 2**31}, "customer", ""),
    ({"customer": {"id": 2**40}}, "customer", ""),
    ({"subject": {"entity": "customer", "id": 2**40}}, "subject", "record id"),
    ({"subject": {"entity": "customer", "id": "99999999999999999999"}}, "subject", "record id"),
    ({"assignee": 2**40}, "assignee", ""),
    ({"lines": [{"id": [1]}]}, "lines[0].id", "row id"),
    ({"lines": [{"id": {"a": 1}}]}, "lines[0].id", "row id"),
    ({"lines": [{"id": True}]}, "lines[0].id", "row id"),
    ({"lines": [{"id": 2**40, "product": "p"}]}, "lines[0].id", "no row"),
]


def test_bad_values_are_refused_naming_the_field(make_app, client_of):
    c = client_of(_app(make_app))
    for payload, field, fragment in BAD_VALUES:
        try:
            _refused(c, {"name": "ok", **payload}, field, fragment)
        except AssertionError as exc:
            raise AssertionError(f"{payload!r}: {exc}") from None


def test_integer_and_decimal_overflow_are_field_errors_not_database_errors(make_app, client_of):
    c = client_of(_app(make_app))
    _refused(c, {"name": "ok", "weight": "12345678901234567890"}, "weight", "less than")
    _refused(c, {"name": "ok", "weight": 1e300}, "weight", "less than")
    _refused(c, {"name": "ok", "qty": 10**30}, "qty", "")


def test_numbers_beyond_the_column_are_refused_and_the_largest_fit(make_app, client_of):
    c2 = client_of(make_app([entity("big", {"name": "n", "type": "integer"},
                                     {"name": "d", "type": "decimal"})]))
    assert_invalid(c2.post("/api/v1/records/big", json={"n": 2**63}), "n", "large")
    assert_invalid(c2.post("/api/v1/records/big", json={"n": "99999999999999999999999"}), "n", "large")
    assert_invalid(c2.post("/api/v1/records/big", json={"d": "1e20"}), "d", "less than")
    assert c2.post("/api/v1/records/big", json={"n": 2**63 - 1, "d": "99999999999999.9999"}).status_code == 201
    assert c2.get("/api/v1/records/big").get_json()["items"][0]["n"] == 2**63 - 1


def test_lookup_user_and_department_to_missing_ids_name_the_field(make_app, client_of):
    c = client_of(_app(make_app))
    _refused(c, {"name": "ok", "customer": 999}, "customer", "no customer with id 999")
    _refused(c, {"name": "ok", "assignee": 999}, "assignee", "no user")
    _refused(c, {"name": "ok", "team": 999}, "team", "no department")


def test_reference_to_a_missing_record_is_refused(make_app, client_of):
    c = client_of(_app(make_app))
    _refused(c, {"name": "ok", "subject": {"entity": "customer", "id": 42}}, "subject", "no customer with id 42")


def test_unknown_field_is_refused(make_app, client_of):
    c = client_of(_app(make_app))
    _refused(c, {"name": "ok", "colour": "red"}, "colour", "unknown field")


def test_read_only_and_formula_fields_cannot_be_written(make_app, client_of):
    c = client_of(_app(make_app))
    _refused(c, {"name": "ok", "secret": "s"}, "secret", "read-only")
    _refused(c, {"name": "ok", "qty": 2, "double": 99}, "double", "read-only")
    # ...but a record read and sent back whole is accepted.
    rec = c.post("/api/v1/records/order", json={"name": "ok", "qty": 2}).get_json()
    assert rec["double"] == 4
    r = c.patch(f"/api/v1/records/order/{rec['id']}", json={**rec, "qty": 3})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["double"] == 6


def test_system_fields_sent_by_the_client_are_ignored(make_app, client_of):
    c = client_of(_app(make_app))
    rec = c.post("/api/v1/records/order", json={"name": "ok", "id": 777, "version": 9,
                                                "created_by": 12345}).get_json()
    assert rec["id"] != 777 and rec["version"] == 1 and rec["created_by"] != 12345


def test_several_errors_are_reported_at_once(make_app, client_of):
    c = client_of(_app(make_app))
    r = c.post("/api/v1/records/order", json={"qty": "abc", "level": "Z"})
    fields = r.get_json()["error"]["fields"]
    assert r.status_code == 422 and {"name", "qty", "level"} <= set(fields)


def test_child_row_errors_are_named_by_row_and_field(make_app, client_of):
    c = client_of(_app(make_app))
    r = c.post("/api/v1/records/order", json={"name": "ok", "lines": [
        {"product": "pen", "quantity": 1, "price": "1"},
        {"product": "pad", "quantity": 0, "price": "abc"},
        {"quantity": 2},
        {"product": "pen", "colour": "red"},
    ]})
    fields = r.get_json()["error"]["fields"]
    assert r.status_code == 422
    assert "lines[1].quantity" in fields and "lines[1].price" in fields
    assert fields["lines[2].product"] == ["Missing data for required field."]
    assert "lines[3].colour" in fields
    assert not any(k.startswith("lines[0]") for k in fields)
    assert _total(c) == 0


def test_child_row_that_is_not_an_object_is_a_field_error(make_app, client_of):
    c = client_of(_app(make_app))
    _refused(c, {"name": "ok", "lines": [{"product": "pen"}, 5]}, "lines[1]", "object")
    _refused(c, {"name": "ok", "lines": [[]]}, "lines[0]", "object")


def test_child_row_id_of_another_record_is_refused(make_app, client_of):
    c = client_of(_app(make_app))
    a = c.post("/api/v1/records/order", json={"name": "a", "lines": [{"product": "pen"}]}).get_json()
    b = c.post("/api/v1/records/order", json={"name": "b"}).get_json()
    r = c.patch(f"/api/v1/records/order/{b['id']}",
                json={"version": 1, "lines": [{"id": a["lines"][0]["id"], "product": "stolen"}]})
    assert_invalid(r, "lines[0].id", "no row")
    assert c.get(f"/api/v1/records/order/{a['id']}").get_json()["lines"][0]["product"] == "pen"


def test_lookup_in_a_child_row_to_a_missing_record_names_the_row(make_app, client_of):
    line = entity("item", {"name": "customer", "type": "lookup", "target": "customer"}, child_of="box")
    box = entity("box", {"name": "items", "type": "table", "target": "item"})
    c = client_of(make_app([CUSTOMER, line, box]))
    r = c.post("/api/v1/records/box", json={"items": [{"customer": 404}]})
    assert_invalid(r, "items[0].customer", "no customer")
    assert _total(c, "box") == 0


RULED = entity(
    "account",
    {"name": "credit_limit", "type": "decimal"},
    validations=[{"rule": "credit_limit is None or credit_limit >= 0",
                  "message": {"en": "Credit limit can't be negative", "zh": "信用额度不能为负"}}],
)


def test_entity_validation_rule_fails_with_the_message_in_the_users_language(make_app, client_of, engine_of):
    app = make_app([RULED])
    with engine_of(app).begin() as conn:
        accounts.create_user(conn, "li", "li-pass-1234", language="zh", is_admin=True)
    admin = client_of(app)
    messages = assert_invalid(admin.post("/api/v1/records/account", json={"credit_limit": "-1"}), "credit_limit")
    assert messages == ["Credit limit can't be negative"]
    li = client_of(app, "li", "li-pass-1234")
    messages = assert_invalid(li.post("/api/v1/records/account", json={"credit_limit": "-1"}), "credit_limit")
    assert messages == ["信用额度不能为负"]
    assert _total(admin, "account") == 0
    assert admin.post("/api/v1/records/account", json={"credit_limit": "0"}).status_code == 201


def test_entity_validation_rule_is_checked_on_update_too(make_app, client_of):
    c = client_of(make_app([RULED]))
    rec = c.post("/api/v1/records/account", json={"credit_limit": "5"}).get_json()
    assert_invalid(c.patch(f"/api/v1/records/account/{rec['id']}", json={"version": 1, "credit_limit": "-5"}),
                   "credit_limit", "negative")
    assert c.get(f"/api/v1/records/account/{rec['id']}").get_json()["credit_limit"] == "5.0000"


def test_a_rule_that_cannot_be_evaluated_counts_as_failed(make_app, client_of):
    c = client_of(make_app([entity("calc", {"name": "a", "type": "integer"}, {"name": "b", "type": "integer"},
                                   validations=[{"rule": "a / b > 1", "message": "a must exceed b"}])]))
    assert_invalid(c.post("/api/v1/records/calc", json={"a": 1, "b": 0}), "a", "a must exceed b")
    assert c.post("/api/v1/records/calc", json={"a": 4, "b": 2}).status_code == 201


def _bad_request(r: Any) -> None:
    assert r.status_code == 400, r.get_data(as_text=True)
    error = r.get_json()["error"]
    assert error["code"] == "bad_request" and error["message"]


def test_a_json_body_that_is_not_an_object_is_400(make_app, client_of):
    c = client_of(_app(make_app))
    rec = c.post("/api/v1/records/order", json={"name": "ok"}).get_json()
    for body in ("[1, 2]", '"text"', "42", "null", "true", '[{"name": "x"}]'):
        _bad_request(c.post("/api/v1/records/order", data=body, content_type="application/json"))
        _bad_request(c.patch(f"/api/v1/records/order/{rec['id']}", data=body, content_type="application/json"))
    assert _total(c) == 1
    assert c.get(f"/api/v1/records/order/{rec['id']}").get_json()["version"] == 1


def test_malformed_json_is_400_with_the_error_shape(make_app, client_of):
    c = client_of(_app(make_app))
    rec = c.post("/api/v1/records/order", json={"name": "ok"}).get_json()
    for body, content_type in (('{"name": "ok"', "application/json"),
                               ("name=ok", "application/x-www-form-urlencoded"),
                               ("", "application/json"),
                               (b"\xff\xfe{", "application/json"),
                               ("[" * 100000 + "]" * 100000, "application/json"),
                               ('{"name": ' + "[" * 100000 + "]" * 100000 + "}", "application/json"),
                               # Unpaired surrogates: parseable, but neither storable nor echoable as UTF-8.
                               ('{"name": "a\\ud800b"}', "application/json"),
                               ('{"tags": ["\\udfff"]}', "application/json"),
                               ('{"\\ud800": 1}', "application/json")):
        _bad_request(c.post("/api/v1/records/order", data=body, content_type=content_type))
        _bad_request(c.patch(f"/api/v1/records/order/{rec['id']}", data=body, content_type=content_type))
    assert _total(c) == 1


def test_non_finite_json_numbers_are_field_errors(make_app, client_of):
    """Python's JSON parser accepts NaN and Infinity; they must not reach a column."""
    c = client_of(_app(make_app))
    for raw, field in (('{"name": "ok", "qty": Infinity}', "qty"),
                       ('{"name": "ok", "qty": NaN}', "qty"),
                       ('{"name": "ok", "weight": -Infinity}', "weight"),
                       ('{"name": "ok", "weight": NaN}', "weight"),
                       ('{"name": "ok", "customer": Infinity}', "customer"),
                       ('{"name": "ok", "spot": {"lat": NaN, "lng": 1}}', "spot")):
        assert_invalid(c.post("/api/v1/records/order", data=raw, content_type="application/json"), field)
    assert _total(c) == 0


def test_owner_and_department_out_of_range_are_field_errors(make_app, client_of):
    c = client_of(make_app([entity("note", {"name": "text", "type": "text"}, ownership=True)]))
    for key, value in (("owner", 2**40), ("department", 2**40), ("owner", "1"), ("owner", True), ("owner", 0)):
        assert_invalid(c.post("/api/v1/records/note", json={key: value}), key, "positive id")
    assert_invalid(c.post("/api/v1/records/note", json={"owner": 999}), "owner", "no user")
    assert_invalid(c.post("/api/v1/records/note", json={"department": 999}), "department", "no department")
    assert _total(c, "note") == 0


UNIQUE_ITEM = entity("tag", {"name": "sku", "type": "text", "unique": True}, child_of="crate")
UNIQUE = entity("crate",
                {"name": "email", "type": "email", "unique": True},
                {"name": "region", "type": "text"}, {"name": "seq", "type": "integer"},
                {"name": "tags", "type": "table", "target": "tag"},
                indexes=[{"fields": ["region", "seq"], "unique": True}])


def test_a_value_taken_in_a_unique_field_is_422_naming_the_field(make_app, client_of):
    c = client_of(make_app([UNIQUE_ITEM, UNIQUE]))
    first = c.post("/api/v1/records/crate", json={"email": "a@example.com"}).get_json()
    assert_invalid(c.post("/api/v1/records/crate", json={"email": "a@example.com"}), "email", "already has")
    assert _total(c, "crate") == 1
    other = c.post("/api/v1/records/crate", json={"email": "b@example.com"}).get_json()
    assert_invalid(c.patch(f"/api/v1/records/crate/{other['id']}", json={"version": 1, "email": "a@example.com"}),
                   "email", "already has")
    # Keeping one's own value, or several records without one, is fine.
    assert c.patch(f"/api/v1/records/crate/{first['id']}",
                   json={"version": 1, "email": "a@example.com", "region": "n"}).status_code == 200
    assert c.post("/api/v1/records/crate", json={}).status_code == 201
    assert c.post("/api/v1/records/crate", json={}).status_code == 201


def test_a_unique_index_over_two_fields_is_checked_as_a_pair(make_app, client_of):
    c = client_of(make_app([UNIQUE_ITEM, UNIQUE]))
    assert c.post("/api/v1/records/crate", json={"region": "n", "seq": 1}).status_code == 201
    assert c.post("/api/v1/records/crate", json={"region": "s", "seq": 1}).status_code == 201
    assert_invalid(c.post("/api/v1/records/crate", json={"region": "n", "seq": 1}), "region", "region + seq")
    assert _total(c, "crate") == 2


def test_what_only_the_database_catches_is_409_not_500_and_writes_nothing(make_app, client_of):
    """Two new rows with the same unique value in one request meet the index itself."""
    c = client_of(make_app([UNIQUE_ITEM, UNIQUE]))
    r = c.post("/api/v1/records/crate", json={"email": "x@example.com", "tags": [{"sku": "A"}, {"sku": "A"}]})
    assert r.status_code == 409, r.get_json()
    assert r.get_json()["error"]["code"] == "conflict"
    assert _total(c, "crate") == 0
    rec = c.post("/api/v1/records/crate", json={"email": "x@example.com", "tags": [{"sku": "A"}]}).get_json()
    r = c.patch(f"/api/v1/records/crate/{rec['id']}", json={"version": 1, "email": "y@example.com",
                                                            "tags": [rec["tags"][0], {"sku": "A"}]})
    assert r.status_code == 409
    got = c.get(f"/api/v1/records/crate/{rec['id']}").get_json()
    assert (got["email"], got["version"], len(got["tags"])) == ("x@example.com", 1, 1)


def test_a_read_only_value_sent_back_in_another_spelling_is_not_a_change(make_app, client_of, engine_of):
    c = client_of(make_app([entity("checkin", {"name": "note", "type": "text"},
                                   {"name": "spot", "type": "location", "readonly": True},
                                   {"name": "fee", "type": "currency", "readonly": True})]))
    rec = c.post("/api/v1/records/checkin", json={"note": "a"}).get_json()
    with engine_of(c.application).begin() as conn:
        conn.exec_driver_sql("UPDATE ent_checkin SET spot_lat = 31.5, spot_lng = 121.25, spot_address = 'x', "
                             "fee = 10")
    rec = c.get(f"/api/v1/records/checkin/{rec['id']}").get_json()
    assert rec["spot"] == {"lat": 31.5, "lng": 121.25, "address": "x"} and rec["fee"] == "10.00"
    r = c.patch(f"/api/v1/records/checkin/{rec['id']}", json={**rec, "note": "b"})
    assert r.status_code == 200, r.get_json()
    r = c.patch(f"/api/v1/records/checkin/{rec['id']}", json={"version": 2, "fee": "10"})
    assert r.status_code == 200, r.get_json()
    assert_invalid(c.patch(f"/api/v1/records/checkin/{rec['id']}", json={"version": 2, "fee": "11"}), "fee",
                   "read-only")
    assert_invalid(c.patch(f"/api/v1/records/checkin/{rec['id']}",
                           json={"version": 2, "spot": {"lat": 1, "lng": 2, "address": "x"}}), "spot", "read-only")


def test_read_only_field_gets_its_default_on_create_and_stays_unwritable(make_app: Any, client_of: Any) -> None:
    """A workflow-owned status starts at its default although clients may not write it."""
    app = make_app([entity(
        "deal",
        {"name": "name", "type": "text", "required": True},
        {"name": "status", "type": "select", "readonly": True, "default": "draft",
         "options": [{"value": "draft"}, {"value": "approved"}]},
        {"name": "locked", "type": "boolean", "readonly": True, "default": False},
    )])
    client = client_of(app)
    created = client.post("/api/v1/records/deal", json={"name": "D1"}).get_json()
    assert created["status"] == "draft" and created["locked"] is False
    refused = client.post("/api/v1/records/deal", json={"name": "D2", "status": "approved"})
    assert refused.status_code == 422 and "status" in refused.get_json()["error"]["fields"]
    assert client.get("/api/v1/records/deal").get_json()["total"] == 1
