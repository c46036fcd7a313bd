"""Metadata validation: the JSON Schema pass and the semantic pass, from small JSON dicts.

The base set is METADATA.md's examples plus the few supporting documents they refer to
(lead, contract and its lines, the roles the workflow names). Each focused test breaks one
thing and checks the error names the file, the JSON pointer and the problem.
"""
from __future__ import annotations

import copy
from typing import Any, Callable

import pytest
from jsonschema import Draft202012Validator

from metacrm.metadata import semantic
from metacrm.metadata.documents import Document, MetadataError
from metacrm.metadata.fieldtypes import FIELD_TYPES, FILTER_OPERATORS, FORMULA_RESULT_TYPES, KIND_KEYS
from metacrm.metadata.semantic_context import EntityInfo
from metacrm.metadata.semantic_views import filter_problems
from metacrm.metadata.validation import schema_for, validate_documents

# ----------------------------------------------------------------------------- fixtures

CUSTOMER = {
    "kind": "entity",
    "name": "customer",
    "label": {"en": "Customer", "zh": "客户"},
    "title_field": "name",
    "naming": {"autonumber": "CUS-{YYYY}-{#####}"},
    "ownership": True,
    "fields": [
        {"name": "name", "type": "text", "label": {"en": "Name", "zh": "客户名称"},
         "required": True, "max_length": 200, "searchable": True},
        {"name": "level", "type": "select", "label": {"en": "Level", "zh": "客户级别"},
         "options": [{"value": "A", "label": {"en": "Key", "zh": "重点客户"}},
                     {"value": "B", "label": {"en": "Normal", "zh": "普通客户"}}],
         "default": "B"},
        {"name": "phone", "type": "phone"},
        {"name": "email", "type": "email", "unique": True},
        {"name": "parent", "type": "lookup", "target": "customer"},
        {"name": "credit_limit", "type": "decimal", "precision": 18, "scale": 2,
         "visible_when": "level == 'A'", "required_when": "level == 'A'"},
        {"name": "score", "type": "formula", "result_type": "integer",
         "expression": "100 if level == 'A' else 50"},
    ],
    "validations": [
        {"rule": "credit_limit is None or credit_limit >= 0",
         "message": {"en": "Credit limit can't be negative", "zh": "信用额度不能为负"}},
    ],
    "indexes": [["level", "owner"]],
}

FORM = {"kind": "form", "entity": "customer", "name": "default",
        "sections": [{"label": {"en": "Basics", "zh": "基本信息"}, "columns": 2,
                      "fields": ["name", "level", "phone", "email", "parent", "credit_limit"]}]}

VIEW = {"kind": "view", "entity": "customer", "name": "my_key_customers",
        "label": {"en": "My key customers", "zh": "我的重点客户"},
        "type": "table",
        "columns": ["name", "level", "phone", "owner", "updated_at"],
        "filters": [["owner", "=", "$me"], ["level", "in", ["A"]]],
        "sort": [["updated_at", "desc"]],
        "page_size": 50}

DEDUP = {"kind": "dedup", "name": "customer_by_name_or_phone", "entity": "customer",
         "on": ["create", "update", "import"],
         "action": "block",
         "match": "any",
         "conditions": [
             {"field": "name", "method": "company_name", "threshold": 0.92},
             {"field": "phone", "method": "phone"},
         ],
         "also_check": [{"entity": "lead", "fields": {"name": "company", "phone": "mobile"}}]}

WORKFLOW = {
    "kind": "workflow", "name": "contract_approval", "entity": "contract",
    "state_field": "approval_status",
    "states": [
        {"name": "draft", "label": {"en": "Draft", "zh": "草稿"}, "initial": True},
        {"name": "pending", "label": {"en": "Pending", "zh": "审批中"}, "locked": True},
        {"name": "approved", "label": {"en": "Approved", "zh": "已通过"}, "final": True, "locked": True},
        {"name": "rejected", "label": {"en": "Rejected", "zh": "已驳回"}},
    ],
    "transitions": [
        {"name": "submit", "from": ["draft", "rejected"], "to": "pending",
         "when": "amount > 0", "roles": ["sales", "sales_manager"], "approval": "contract_steps"},
        {"name": "withdraw", "from": ["pending"], "to": "draft", "by": "submitter"},
    ],
    "approvals": {
        "contract_steps": {
            "steps": [
                {"name": "manager", "approvers": {"type": "manager", "levels": 1}, "mode": "any"},
                {"name": "finance", "when": "amount >= 100000",
                 "approvers": {"type": "role", "role": "finance"}, "mode": "all"},
            ],
            "on_approve": "approved", "on_reject": "rejected",
        }
    },
    "actions": [{"on": "approved", "set": {"signed_at": "$now"}, "notify": ["owner"]}],
}

ROLE = {"kind": "role", "name": "sales",
        "label": {"en": "Sales rep", "zh": "销售"},
        "permissions": {
            "customer": {"create": True, "read": "department", "update": "self", "delete": False,
                         "export": False, "import": False, "transfer": "self"},
            "lead": {"create": True, "read": "self_and_subordinates", "update": "self", "delete": False},
        },
        "fields": {"customer": {"credit_limit": "readonly"}, "contract": {"cost": "hidden"}}}

TEMPLATE = {"kind": "template", "name": "crm-default", "version": "1.0.0",
            "label": {"en": "Default CRM", "zh": "标准CRM"},
            "requires": [],
            "files": ["entities/*.json", "views/*.json", "dedup/*.json", "workflows/*.json", "roles/*.json"],
            "demo_data": "demo/*.json"}

# Supporting documents the examples refer to.
LEAD = {"kind": "entity", "name": "lead", "ownership": True,
        "fields": [{"name": "name", "type": "text"}, {"name": "company", "type": "text"},
                   {"name": "mobile", "type": "phone"}]}

CONTRACT = {
    "kind": "entity", "name": "contract", "ownership": True,
    "fields": [
        {"name": "number", "type": "autonumber", "format": "CON-{YYYY}{MM}-{####}"},
        {"name": "name", "type": "text"},
        {"name": "amount", "type": "currency", "min": 0},
        {"name": "approval_status", "type": "select", "default": "draft",
         "options": [{"value": v} for v in ("draft", "pending", "approved", "rejected")]},
        {"name": "signed_at", "type": "datetime"},
        {"name": "sign_date", "type": "date"},
        {"name": "cost", "type": "currency"},
        {"name": "reviewer", "type": "user"},
        {"name": "lines", "type": "table", "target": "contract_line"},
        {"name": "lines_total", "type": "formula", "result_type": "currency",
         "expression": "sum(lines.amount)"},
    ],
}

CONTRACT_LINE = {"kind": "entity", "name": "contract_line", "child_of": "contract",
                 "fields": [{"name": "product", "type": "text"}, {"name": "quantity", "type": "integer"},
                            {"name": "price", "type": "currency"}, {"name": "amount", "type": "currency"}]}

SALES_MANAGER = {"kind": "role", "name": "sales_manager", "permissions": {"contract": {"read": "department"}}}
FINANCE = {"kind": "role", "name": "finance", "label": "Finance",
           "permissions": {"contract": {"read": "all", "submit": False}}}

BASE: dict[str, dict[str, Any]] = {
    "customer.json": CUSTOMER,
    "lead.json": LEAD,
    "contract.json": CONTRACT,
    "contract_line.json": CONTRACT_LINE,
    "customer_form.json": FORM,
    "my_key_customers.json": VIEW,
    "customer_dedup.json": DEDUP,
    "contract_approval.json": WORKFLOW,
    "sales.json": ROLE,
    "sales_manager.json": SALES_MANAGER,
    "finance.json": FINANCE,
    "template.json": TEMPLATE,
}


def validate(change: Callable[[dict[str, dict[str, Any]]], None] | None = None) -> list[MetadataError]:
    """Validate a fresh copy of the base set after `change` edits it (source -> document)."""
    docs = copy.deepcopy(BASE)
    if change is not None:
        change(docs)
    return validate_documents([Document(source, data) for source, data in docs.items()])


def find(errors: list[MetadataError], source: str, path: str, fragment: str) -> MetadataError:
    """The error at source+path whose message contains `fragment`; fails listing them all."""
    for e in errors:
        if e.source == source and e.path == path and fragment in e.message:
            return e
    pytest.fail(f"no error {source}: {path}: ...{fragment}... in:\n" + "\n".join(map(str, errors)))


def field_of(docs: dict[str, dict[str, Any]], source: str, name: str) -> dict[str, Any]:
    return next(f for f in docs[source]["fields"] if f["name"] == name)


# ------------------------------------------------------------------------ whole set / schemas

def test_metadata_md_examples_validate_together() -> None:
    assert validate() == []


@pytest.mark.parametrize("kind", list(KIND_KEYS))
def test_every_kind_has_a_valid_draft_2020_12_schema(kind: str) -> None:
    schema = schema_for(kind)
    Draft202012Validator.check_schema(schema)
    assert schema["properties"]["kind"] == {"const": kind}


def test_schema_enums_follow_the_vocabulary_in_fieldtypes() -> None:
    entity_defs = schema_for("entity")["$defs"]["field"]["properties"]
    assert entity_defs["type"]["enum"] == list(FIELD_TYPES)
    assert entity_defs["result_type"]["enum"] == list(FORMULA_RESULT_TYPES)
    ops = schema_for("view")["$defs"]["filter"]["then"]["prefixItems"][1]["enum"]
    assert ops == list(FILTER_OPERATORS)


# ---------------------------------------------------------------------------- schema pass

def test_schema_error_names_file_pointer_and_the_bad_value() -> None:
    def change(d):
        d["customer.json"]["fields"][3]["type"] = "nmber"

    errors = validate(change)
    error = find(errors, "customer.json", "/fields/3/type", "'nmber' is not one of ['text', ")
    assert str(error).startswith("customer.json: /fields/3/type: 'nmber' is not one of ['text', 'textarea'")
    assert "(25 choices)" in error.message


def test_schema_reports_every_error_in_document_order() -> None:
    def change(d):
        d["customer.json"]["fields"][0]["max_length"] = 0
        d["customer.json"]["fields"][3]["type"] = "nmber"
        d["customer.json"]["fields"][5]["precison"] = 10

    errors = [e for e in validate(change) if e.source == "customer.json"]
    assert [e.path for e in errors] == ["/fields/0/max_length", "/fields/3/type", "/fields/5/precison"]
    assert "unknown key 'precison' (did you mean 'precision'?)" in errors[2].message


def test_unknown_or_missing_kind_is_reported_at_kind() -> None:
    errors = validate_documents([Document("a.json", {"kind": "entty", "name": "x"}), Document("b.json", {"name": "y"}),
                                 Document("c.json", [1, 2])])  # type: ignore[arg-type]
    find(errors, "a.json", "/kind", "unknown kind 'entty' (did you mean 'entity'?)")
    find(errors, "b.json", "/kind", "'kind' is missing")
    find(errors, "c.json", "", "must be a JSON object")


def test_names_and_labels_are_checked_with_readable_messages() -> None:
    def change(d):
        d["customer.json"]["fields"][2]["name"] = "Phone"
        d["customer.json"]["label"] = {"fr": "Client"}
        d["template.json"]["version"] = "1.0"

    errors = validate(change)
    find(errors, "customer.json", "/fields/2/name", "'Phone' is not a valid name")
    find(errors, "customer.json", "/label/fr", "unknown key 'fr'")
    find(errors, "template.json", "/version", "not a semantic version")


def test_a_bad_nested_filter_gives_one_precise_error_not_a_flood() -> None:
    def change(d):
        d["my_key_customers.json"]["filters"] = [{"any": [["level", "=", "A"], ["level", "equals", "B"]]}]

    errors = validate(change)
    assert [str(e) for e in errors] == [
        "my_key_customers.json: /filters/0/any/1/1: 'equals' is not one of "
        "['=', '!=', '<', '<=', '>', '>=', 'in', 'not in', ... (13 choices)]"
    ]


def test_ratio_mode_needs_min_approvals_and_role_approver_needs_role() -> None:
    def change(d):
        steps = d["contract_approval.json"]["approvals"]["contract_steps"]["steps"]
        steps[0]["mode"] = "ratio"
        del steps[1]["approvers"]["role"]

    errors = validate(change)
    find(errors, "contract_approval.json", "/approvals/contract_steps/steps/0", "'min_approvals' is a required property")
    find(errors, "contract_approval.json", "/approvals/contract_steps/steps/1/approvers", "'role' is a required property")


def test_extension_keys_are_accepted() -> None:
    def change(d):
        c = d["customer.json"]
        c.update(description="Companies we sell to", archived=False,
                 actions=[{"name": "claim", "label": {"en": "Claim", "zh": "领取"}}])
        c["indexes"].append({"fields": ["email"], "unique": True, "name": "ux_customer_email"})
        c["fields"].append({"name": "note", "type": "textarea", "interface": "markdown", "multiline": True,
                            "placeholder": {"en": "Anything else"}, "renamed_from": "remark"})
        c["fields"].append({"name": "related", "type": "reference", "targets": ["lead", "customer"]})
        v = d["my_key_customers.json"]
        v.update(roles=["sales"], group_by="level", type="kanban")
        v["filters"].append({"all": [["created_at", "=", "this_month"], ["name", "is not empty"]]})
        d["template.json"]["requires"] = ["base", {"name": "crm-core", "version": ">=1.0.0"}]
        steps = d["contract_approval.json"]["approvals"]["contract_steps"]
        steps.update(fallback_approvers=[{"type": "user", "users": ["admin"]}], restart_on_resubmit="rejecting_step")
        steps["steps"][0].update(skip_submitter=True, on_empty="escalate", editable_fields=["cost"],
                                 cc=[{"type": "field", "field": "reviewer"}])
        d["sales.json"]["permissions"]["customer"]["claim"] = True

    assert validate(change) == []


# ----------------------------------------------------------------------- semantic: set-wide

def test_duplicate_documents_are_reported_on_the_later_one() -> None:
    def change(d):
        d["other_view.json"] = copy.deepcopy(d["my_key_customers.json"])

    error = find(validate(change), "other_view.json", "/name", "duplicate view 'customer/my_key_customers'")
    assert "my_key_customers.json" in error.message


def test_reference_to_a_schema_broken_entity_is_not_reported_twice() -> None:
    def change(d):
        d["customer.json"]["fields"][0]["type"] = "txt"

    errors = validate(change)
    assert {e.source for e in errors} == {"customer.json"}


def test_a_role_granting_a_transition_of_a_broken_workflow_is_not_blamed() -> None:
    def change(d):
        d["contract_approval.json"]["transitions"][0]["from"] = "draft"

    assert [str(e) for e in validate(change)] == [
        "contract_approval.json: /transitions/0/from: 'draft' is not of type array"
    ]


def test_a_crashing_check_becomes_an_error_not_an_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(ctx, data):
        raise RuntimeError("bug")
        yield  # pragma: no cover

    monkeypatch.setitem(semantic.CHECKS, "form", (boom,))
    find(validate(), "customer_form.json", "", "internal validation error in boom")


# --------------------------------------------------------------------------- semantic: entity

def test_duplicate_field_name() -> None:
    def change(d):
        d["customer.json"]["fields"].append({"name": "phone", "type": "text"})

    find(validate(change), "customer.json", "/fields/7/name", "duplicate field name 'phone' (also /fields/2)")


def test_field_named_like_a_system_field() -> None:
    def change(d):
        d["customer.json"]["fields"].append({"name": "owner", "type": "user"})
        d["contract_line.json"]["fields"].append({"name": "idx", "type": "integer"})

    errors = validate(change)
    find(errors, "customer.json", "/fields/7/name", "'owner' is a system field")
    find(errors, "contract_line.json", "/fields/4/name", "'idx' is a system field")


def test_owner_is_an_ordinary_name_without_ownership() -> None:
    def change(d):
        d["contract_line.json"]["fields"].append({"name": "owner", "type": "user"})

    assert validate(change) == []


def test_title_field_must_exist() -> None:
    def change(d):
        d["customer.json"]["title_field"] = "nmae"

    find(validate(change), "customer.json", "/title_field", "unknown field 'nmae' on entity 'customer' (did you mean 'name'?)")


def test_lookup_target_must_exist() -> None:
    def change(d):
        field_of(d, "customer.json", "parent")["target"] = "company"

    find(validate(change), "customer.json", "/fields/4/target", "unknown entity 'company'")


def test_reference_targets_must_exist() -> None:
    def change(d):
        d["customer.json"]["fields"].append({"name": "about", "type": "reference", "targets": ["lead", "opportunity"]})

    find(validate(change), "customer.json", "/fields/7/targets/1", "unknown entity 'opportunity'")


def test_table_target_must_be_a_child_of_this_entity() -> None:
    def change(d):
        d["customer.json"]["fields"].append({"name": "lines", "type": "table", "target": "contract_line"})
        d["lead.json"]["fields"].append({"name": "items", "type": "table", "target": "lead_item"})

    errors = validate(change)
    find(errors, "customer.json", "/fields/7/target", "entity 'contract_line' is not a child table of 'customer'")
    find(errors, "lead.json", "/fields/3/target", "unknown entity 'lead_item'")


def test_child_of_parent_must_exist() -> None:
    def change(d):
        d["contract_line.json"]["child_of"] = "contracts"

    errors = validate(change)
    find(errors, "contract_line.json", "/child_of", "unknown entity 'contracts' (did you mean 'contract'?)")
    find(errors, "contract.json", "/fields/8/target", "is not a child table of 'contract'")


def test_select_default_must_be_an_option() -> None:
    def change(d):
        field_of(d, "customer.json", "level")["default"] = "C"

    find(validate(change), "customer.json", "/fields/1/default", "default 'C' is not one of the options ('A', 'B')")


def test_duplicate_option_values() -> None:
    def change(d):
        field_of(d, "customer.json", "level")["options"].append({"value": "A"})

    find(validate(change), "customer.json", "/fields/1/options/2/value", "duplicate option value 'A'")


def test_select_needs_options() -> None:
    def change(d):
        d["lead.json"]["fields"].append({"name": "status", "type": "select"})

    find(validate(change), "lead.json", "/fields/3", "a select field needs 'options'")


def test_min_must_not_exceed_max() -> None:
    def change(d):
        field_of(d, "contract.json", "amount").update(min=10, max=5)

    find(validate(change), "contract.json", "/fields/2/min", "min (10) is greater than max (5)")


def test_pattern_must_compile() -> None:
    def change(d):
        field_of(d, "customer.json", "phone")["pattern"] = "^[0-9+"

    find(validate(change), "customer.json", "/fields/2/pattern", "not a valid regular expression")


@pytest.mark.parametrize(("name", "default", "fragment"), [
    ("amount", "lots", "doesn't fit a currency field"),
    ("sign_date", "31/01/2024", "doesn't fit a date field"),
    ("name", 5, "doesn't fit a text field"),
    ("lines_total", "1", "a formula field can't have a default"),
    ("amount", -1, "outside min/max"),
])
def test_default_must_fit_the_field_type(name: str, default: Any, fragment: str) -> None:
    def change(d):
        field_of(d, "contract.json", name)["default"] = default

    errors = validate(change)
    index = [f["name"] for f in CONTRACT["fields"]].index(name)
    find(errors, "contract.json", f"/fields/{index}/default", fragment)


def test_defaults_that_fit_are_accepted() -> None:
    def change(d):
        field_of(d, "contract.json", "amount")["default"] = "1234.50"
        field_of(d, "contract.json", "sign_date")["default"] = "$today"
        field_of(d, "contract.json", "reviewer")["default"] = "$me"

    assert validate(change) == []


def test_formula_needs_expression_and_result_type() -> None:
    def change(d):
        del field_of(d, "customer.json", "score")["result_type"]

    find(validate(change), "customer.json", "/fields/6", "a formula field needs 'result_type'")


def test_autonumber_format_needs_a_counter_and_known_tokens() -> None:
    def change(d):
        field_of(d, "contract.json", "number")["format"] = "CON-{YYYY}-{seq}"
        d["customer.json"]["naming"]["autonumber"] = "CUS-{YYYY}"

    errors = validate(change)
    find(errors, "contract.json", "/fields/0/format", "unknown token '{seq}'")
    find(errors, "contract.json", "/fields/0/format", "needs a counter")
    find(errors, "customer.json", "/naming/autonumber", "needs a counter")


@pytest.mark.parametrize(("key", "source"), [
    ("visible_when", "levle == 'A'"),
    ("required_when", "levle == 'A'"),
    ("readonly_when", "levle == 'A'"),
])
def test_field_conditions_use_the_entity_fields(key: str, source: str) -> None:
    def change(d):
        field_of(d, "customer.json", "credit_limit")[key] = source

    find(validate(change), "customer.json", f"/fields/5/{key}", "unknown name 'levle'")


def test_formula_and_validation_rule_expressions_are_checked() -> None:
    def change(d):
        field_of(d, "customer.json", "score")["expression"] = "100 if level == 'A' else"
        d["customer.json"]["validations"][0]["rule"] = "credit >= 0"

    errors = validate(change)
    find(errors, "customer.json", "/fields/6/expression", "invalid expression")
    find(errors, "customer.json", "/validations/0/rule", "unknown name 'credit'")


def test_expressions_see_system_fields_and_child_table_fields() -> None:
    def change(d):
        d["contract.json"]["validations"] = [{"rule": "owner is not None and sum(lines.quantity) > 0"}]
        field_of(d, "contract.json", "lines_total")["expression"] = "sum(lines.qty)"

    errors = validate(change)
    assert [e.path for e in errors] == ["/fields/9/expression"]
    assert "unknown field 'qty' in child table 'lines'" in errors[0].message


def test_formula_cycle_is_reported_once() -> None:
    def change(d):
        d["customer.json"]["fields"] += [
            {"name": "a", "type": "formula", "result_type": "integer", "expression": "b + 1"},
            {"name": "b", "type": "formula", "result_type": "integer", "expression": "a + score"},
        ]

    errors = validate(change)
    cycles = [e for e in errors if "formula cycle" in e.message]
    assert len(cycles) == 1
    assert cycles[0].path in ("/fields/7/expression", "/fields/8/expression")
    assert "a -> b -> a" in cycles[0].message or "b -> a -> b" in cycles[0].message


def test_index_fields_must_exist() -> None:
    def change(d):
        d["customer.json"]["indexes"] = [["level", "ownr"], {"fields": ["email", "nope"], "unique": True}]

    errors = validate(change)
    find(errors, "customer.json", "/indexes/0/1", "unknown field 'ownr' on entity 'customer' (did you mean 'owner'?)")
    find(errors, "customer.json", "/indexes/1/fields/1", "unknown field 'nope'")


# ----------------------------------------------------------------------------- semantic: form

def test_form_entity_must_exist() -> None:
    def change(d):
        d["customer_form.json"]["entity"] = "client"

    find(validate(change), "customer_form.json", "/entity", "unknown entity 'client'")


def test_form_fields_must_exist_once_and_not_be_archived() -> None:
    def change(d):
        field_of(d, "customer.json", "email")["archived"] = True
        d["customer_form.json"]["sections"].append({"label": "More", "fields": ["name", "fax"]})

    errors = validate(change)
    find(errors, "customer_form.json", "/sections/0/fields/3", "field 'email' is archived")
    find(errors, "customer_form.json", "/sections/1/fields/0", "field 'name' is listed twice (also /sections/0/fields/0)")
    find(errors, "customer_form.json", "/sections/1/fields/1", "unknown field 'fax' on entity 'customer'")


def test_form_section_condition_is_checked() -> None:
    def change(d):
        d["customer_form.json"]["sections"][0]["visible_when"] = "levl == 'A'"

    find(validate(change), "customer_form.json", "/sections/0/visible_when", "unknown name 'levl'")


# ----------------------------------------------------------------------------- semantic: view

def test_view_entity_must_exist() -> None:
    def change(d):
        d["my_key_customers.json"]["entity"] = "customers"

    find(validate(change), "my_key_customers.json", "/entity", "unknown entity 'customers' (did you mean 'customer'?)")


def test_view_columns_and_sort_fields_must_exist() -> None:
    def change(d):
        d["my_key_customers.json"]["columns"].append("industry")
        d["my_key_customers.json"]["sort"] = [["created_at"], ["updated", "desc"]]

    errors = validate(change)
    find(errors, "my_key_customers.json", "/columns/5", "unknown field 'industry' on entity 'customer'")
    find(errors, "my_key_customers.json", "/sort/1/0", "unknown field 'updated'")
    assert not [e for e in errors if e.path == "/sort/0/0"]


def test_view_column_naming_an_archived_field() -> None:
    def change(d):
        field_of(d, "customer.json", "phone")["archived"] = True
        d["customer_form.json"]["sections"][0]["fields"].remove("phone")

    errors = validate(change)
    find(errors, "my_key_customers.json", "/columns/2", "field 'phone' is archived")
    find(errors, "customer_dedup.json", "/conditions/1/field", "field 'phone' is archived")


def test_filter_fields_must_exist_including_nested_groups() -> None:
    def change(d):
        d["my_key_customers.json"]["filters"].append({"any": [["name", "contains", "Ltd"], ["nmae", "=", "x"]]})

    find(validate(change), "my_key_customers.json", "/filters/2/any/1/0", "unknown field 'nmae'")


@pytest.mark.parametrize(("condition", "path", "fragment"), [
    (["created_at", "between", ["2024-01-01"]], "/filters/2/2", "operator 'between' needs two values"),
    (["level", "in", "A"], "/filters/2/2", "operator 'in' needs a non-empty list"),
    (["name", "is empty", "x"], "/filters/2/2", "operator 'is empty' takes no value"),
    (["name", "="], "/filters/2", "operator '=' needs a value"),
    (["name", "=", ["a", "b"]], "/filters/2/2", "not a list (use 'in')"),
])
def test_filter_value_count_matches_the_operator(condition: list[Any], path: str, fragment: str) -> None:
    def change(d):
        d["my_key_customers.json"]["filters"].append(condition)

    find(validate(change), "my_key_customers.json", path, fragment)


def test_filter_values_of_select_fields_are_options_and_placeholders_are_known() -> None:
    def change(d):
        d["my_key_customers.json"]["filters"] += [["level", "in", ["A", "Z"]], ["owner", "=", "$myself"],
                                                  ["created_at", ">=", "$today"]]

    errors = validate(change)
    find(errors, "my_key_customers.json", "/filters/2/2/1", "'Z' is not an option of field 'level' ('A', 'B')")
    find(errors, "my_key_customers.json", "/filters/3/2", "unknown placeholder '$myself'")
    assert len(errors) == 2


def test_relative_ranges_only_on_date_fields() -> None:
    def change(d):
        d["my_key_customers.json"]["filters"] += [["updated_at", "=", "last_30_days"], ["id", "=", "this_month"]]

    assert [str(e) for e in validate(change)] == [
        "my_key_customers.json: /filters/3/2: relative range 'this_month' only applies to date/datetime fields; "
        "'id' is not one"
    ]


def test_filter_operator_is_checked_for_api_filters_too() -> None:
    entity = EntityInfo.of(CUSTOMER)
    problems = list(filter_problems(entity, [["level", "like", "A"], {"none": []}], ("filter",)))
    assert problems == [
        ("/filter/0/1", "unknown operator 'like' (one of '=', '!=', '<', '<=', '>', '>=', 'in', 'not in', "
                        "'contains', 'starts with', 'between', 'is empty', 'is not empty')"),
        ("/filter/1/none", "unknown filter group 'none' (use 'any' or 'all')"),
    ]


def test_kanban_view_groups_by_a_select_field() -> None:
    def change(d):
        d["my_key_customers.json"]["type"] = "kanban"
        d["kanban.json"] = {"kind": "view", "entity": "customer", "name": "by_phone", "type": "kanban",
                            "group_by": "phone"}

    errors = validate(change)
    find(errors, "my_key_customers.json", "/type", "a kanban view needs 'group_by'")
    find(errors, "kanban.json", "/group_by", "groups by a select field; 'phone' is a phone field")


def test_view_roles_must_exist() -> None:
    def change(d):
        d["my_key_customers.json"]["roles"] = ["sales", "salse"]

    find(validate(change), "my_key_customers.json", "/roles/1", "unknown role 'salse' (did you mean 'sales'?)")


# ---------------------------------------------------------------------------- semantic: dedup

def test_dedup_entity_and_condition_fields_must_exist() -> None:
    def change(d):
        d["customer_dedup.json"]["conditions"].append({"field": "mobile", "method": "phone"})
        d["dedup2.json"] = dict(copy.deepcopy(d["customer_dedup.json"]), name="other", entity="client")

    errors = validate(change)
    find(errors, "customer_dedup.json", "/conditions/2/field", "unknown field 'mobile' on entity 'customer'")
    find(errors, "dedup2.json", "/entity", "unknown entity 'client'")


def test_dedup_also_check_maps_real_fields_on_both_sides() -> None:
    def change(d):
        d["customer_dedup.json"]["also_check"] = [
            {"entity": "lead", "fields": {"name": "company", "phone": "mobil", "fax": "mobile"}},
            {"entity": "prospect", "fields": {"name": "name"}},
        ]

    errors = validate(change)
    find(errors, "customer_dedup.json", "/also_check/0/fields/phone", "unknown field 'mobil' on entity 'lead'")
    find(errors, "customer_dedup.json", "/also_check/0/fields/fax", "unknown field 'fax' on entity 'customer'")
    find(errors, "customer_dedup.json", "/also_check/1/entity", "unknown entity 'prospect'")


# ------------------------------------------------------------------------- semantic: workflow

WF = "contract_approval.json"


def test_workflow_entity_must_exist() -> None:
    def change(d):
        d[WF]["entity"] = "contracts"

    find(validate(change), WF, "/entity", "unknown entity 'contracts'")


def test_state_field_must_be_a_select_with_every_state_as_option() -> None:
    def change(d):
        field_of(d, "contract.json", "approval_status")["options"].pop()  # drops 'rejected'

    find(validate(change), WF, "/states/3/name",
         "state 'rejected' is not an option of field 'approval_status' of entity 'contract'")

    def change2(d):
        d[WF]["state_field"] = "name"

    find(validate(change2), WF, "/state_field", "must be a select field, not text")

    def change3(d):
        d[WF]["state_field"] = "status"

    find(validate(change3), WF, "/state_field", "unknown field 'status' on entity 'contract'")


def test_exactly_one_initial_state() -> None:
    def none(d):
        d[WF]["states"][0]["initial"] = False

    find(validate(none), WF, "/states", "no initial state")

    def two(d):
        d[WF]["states"][3]["initial"] = True

    find(validate(two), WF, "/states/3/initial", "more than one initial state ('draft', 'rejected')")


def test_transitions_name_known_states() -> None:
    def change(d):
        d[WF]["transitions"][0]["from"] = ["draft", "rejectd"]
        d[WF]["transitions"][1]["to"] = "start"

    errors = validate(change)
    find(errors, WF, "/transitions/0/from/1", "unknown state 'rejectd' (did you mean 'rejected'?)")
    find(errors, WF, "/transitions/1/to", "unknown state 'start'")


def test_every_state_is_reachable_from_the_initial_state() -> None:
    def change(d):
        d[WF]["states"].append({"name": "archived"})
        field_of(d, "contract.json", "approval_status")["options"].append({"value": "archived"})

    assert [str(e) for e in validate(change)] == [
        f"{WF}: /states/4/name: state 'archived' can't be reached from the initial state 'draft'"
    ]


def test_approval_referenced_by_a_transition_must_exist() -> None:
    def change(d):
        d[WF]["transitions"][0]["approval"] = "contract_step"

    find(validate(change), WF, "/transitions/0/approval", "unknown approval 'contract_step' (did you mean 'contract_steps'?)")


def test_approval_outcomes_are_known_states() -> None:
    def change(d):
        d[WF]["approvals"]["contract_steps"]["on_reject"] = "declined"

    find(validate(change), WF, "/approvals/contract_steps/on_reject", "unknown state 'declined'")


def test_step_approver_roles_must_exist_when_roles_are_defined() -> None:
    def change(d):
        d[WF]["approvals"]["contract_steps"]["steps"][1]["approvers"]["role"] = "accounting"

    find(validate(change), WF, "/approvals/contract_steps/steps/1/approvers/role", "unknown role 'accounting'")

    def without_roles(d):
        change(d)
        for source in ("sales.json", "sales_manager.json", "finance.json"):
            del d[source]

    assert validate(without_roles) == []


def test_transition_roles_must_exist() -> None:
    def change(d):
        d[WF]["transitions"][0]["roles"] = ["sales", "boss"]

    find(validate(change), WF, "/transitions/0/roles/1", "unknown role 'boss'")


def test_step_editable_fields_must_exist() -> None:
    def change(d):
        d[WF]["approvals"]["contract_steps"]["steps"][1]["editable_fields"] = ["amount", "discount"]

    find(validate(change), WF, "/approvals/contract_steps/steps/1/editable_fields/1", "unknown field 'discount'")


def test_field_approver_must_name_a_user_field() -> None:
    def change(d):
        steps = d[WF]["approvals"]["contract_steps"]["steps"]
        steps[0]["approvers"] = [{"type": "field", "field": "name"}, {"type": "field", "field": "owner"}]

    assert [str(e) for e in validate(change)] == [
        f"{WF}: /approvals/contract_steps/steps/0/approvers/0/field: approver field 'name' must be a user field"
    ]


def test_transition_and_step_conditions_are_checked() -> None:
    def change(d):
        d[WF]["transitions"][0]["when"] = "amont > 0"
        d[WF]["approvals"]["contract_steps"]["steps"][1]["when"] = "amount >= "

    errors = validate(change)
    find(errors, WF, "/transitions/0/when", "unknown name 'amont'")
    find(errors, WF, "/approvals/contract_steps/steps/1/when", "invalid expression")


def test_actions_fire_on_known_states_and_set_real_fields() -> None:
    def change(d):
        d[WF]["actions"] = [{"on": "aproved", "set": {"signed": "$now"}},
                            {"on": "submit", "create": {"entity": "receivable", "values": {}}}]

    errors = validate(change)
    find(errors, WF, "/actions/0/on", "unknown state or transition 'aproved' (did you mean 'approved'?)")
    find(errors, WF, "/actions/0/set/signed", "unknown field 'signed'")
    find(errors, WF, "/actions/1/create/entity", "unknown entity 'receivable'")


# ----------------------------------------------------------------------------- semantic: role

def test_role_permissions_name_known_entities_and_actions() -> None:
    def change(d):
        perms = d["sales.json"]["permissions"]
        perms["customer"]["approve"] = True
        perms["contract"] = {"withdraw": "self"}  # a transition of the contract workflow
        perms["invoice"] = {"read": True}

    errors = validate(change)
    find(errors, "sales.json", "/permissions/customer/approve", "unknown action 'approve' for entity 'customer'")
    find(errors, "sales.json", "/permissions/invoice", "unknown entity 'invoice'")
    assert len(errors) == 2


def test_role_field_permissions_name_real_fields() -> None:
    def change(d):
        d["sales.json"]["fields"]["contract"]["margin"] = "masked"

    find(validate(change), "sales.json", "/fields/contract/margin", "unknown field 'margin' on entity 'contract'")


def test_bad_scope_is_a_schema_error() -> None:
    def change(d):
        d["sales.json"]["permissions"]["lead"]["read"] = "team"

    find(validate(change), "sales.json", "/permissions/lead/read", "'team' is not one of ['self', 'self_and_subordinates'")
