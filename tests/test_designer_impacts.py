"""Impact scanning over the default CRM: who uses a field or an entity."""
from __future__ import annotations

from metacrm.designer.impacts import auto_remove, entity_references, field_references
from metacrm.designer.versions import diff_documents
from metacrm.metadata.layers import merge_layers
from metacrm.metadata.loader import load_seed_package

DOCS = [d.data for d in merge_layers([list(load_seed_package("crm-default").documents)])]


def _whats(refs):
    return {(r.key, r.what) for r in refs}


def test_a_stage_field_is_used_by_its_workflow_and_the_kanban():
    refs = _whats(field_references(DOCS, "opportunity", "stage"))
    assert ("workflow/opportunity_stages", "workflow state field") in refs
    assert any(key.startswith("view/opportunity/") and what == "kanban grouping" for key, what in refs)


def test_customer_level_is_used_by_the_pool_and_views():
    refs = _whats(field_references(DOCS, "customer", "level"))
    assert ("pool/default", "pool level field") in refs
    assert ("view/customer/key_customers", "filter") in refs
    assert ("form/customer/default", "form section") in refs


def test_customer_entity_is_looked_up_by_contacts_and_opportunities():
    keys = {r.key for r in entity_references(DOCS, "customer")}
    assert {"entity/contact", "entity/opportunity", "view/customer/all", "pool/default"} <= keys


def test_auto_remove_drops_columns_sort_and_plain_filters_only():
    view = {"kind": "view", "entity": "c", "name": "v", "columns": ["a", "b"], "sort": [["b", "asc"]],
            "filters": [["b", "=", 1], {"any": [["b", "=", 2], ["a", "=", 3]]}]}
    fixed = auto_remove(view, "c", "b")
    assert fixed["columns"] == ["a"] and fixed["sort"] == []
    assert fixed["filters"] == [{"any": [["b", "=", 2], ["a", "=", 3]]}]  # nested: the admin decides
    assert auto_remove(view, "c", "zzz") is None


def test_diff_names_list_items_by_their_name():
    old = [{"kind": "entity", "name": "c", "fields": [{"name": "a", "type": "text"}]}]
    new = [{"kind": "entity", "name": "c", "fields": [{"name": "a", "type": "text", "required": True},
                                                      {"name": "b", "type": "date"}]},
           {"kind": "view", "entity": "c", "name": "v", "columns": ["a"]}]
    diff = diff_documents(old, new)
    assert diff[0]["key"] == "entity/c" and diff[0]["change"] == "changed"
    assert [(k["path"], k["change"]) for k in diff[0]["keys"]] == [("/fields/a/required", "added"),
                                                                  ("/fields/b", "added")]
    assert diff[1] == {"key": "view/c/v", "change": "added", "keys": []}
