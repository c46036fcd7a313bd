"""Metadata layers (templates below, the instance's customisations on top) and template
packages: merging rules, upgrades that keep a client's changes, and installs that are
all or nothing."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from metacrm.metadata.documents import Document, MetadataInvalid
from metacrm.metadata.layers import merge_layers
from metacrm.metadata.loader import load_package
from metacrm.runtime import systables
from metacrm.runtime.db import schema_transaction
from metacrm.runtime.errors import Conflict, NotFound
from metacrm.runtime.metastore import (install_template, installed_templates, layer_documents,
                                       pending_documents, plan_pending, publish_pending, set_instance_layer)
from metacrm.runtime.publish import make_plan

from .support import entity, meta_version, package, schema_snapshot


def _docs(*data: dict[str, Any], source: str = "layer") -> list[Document]:
    return [Document(f"{source}/{i}.json", d) for i, d in enumerate(data)]


def _merged_entity(layers: list[list[Document]], name: str = "contact") -> dict[str, Any]:
    merged = merge_layers(layers)
    return next(d.data for d in merged if d.kind == "entity" and d.data["name"] == name)


BASE = entity("contact",
              {"name": "name", "type": "text", "label": {"en": "Name", "zh": "名称"}, "max_length": 100},
              {"name": "level", "type": "select", "options": [{"value": "A", "label": {"en": "Key", "zh": "重点"}},
                                                              {"value": "B", "label": "Normal"}]},
              {"name": "phone", "type": "phone"},
              {"name": "email", "type": "email"})


# ------------------------------------------------------------------ merge rules

def test_fields_merge_by_name_and_new_fields_append() -> None:
    over = {"kind": "entity", "name": "contact",
            "fields": [{"name": "phone", "required": True}, {"name": "wechat", "type": "text"}]}
    merged = _merged_entity([_docs(BASE), _docs(over, source="instance")])
    names = [f["name"] for f in merged["fields"]]
    assert names == ["name", "level", "phone", "email", "wechat"]
    phone = merged["fields"][2]
    assert phone == {"name": "phone", "type": "phone", "required": True}
    assert merged["label"] == BASE["label"]


def test_options_merge_by_value() -> None:
    over = {"kind": "entity", "name": "contact", "fields": [
        {"name": "level", "options": [{"value": "B", "label": {"zh": "普通"}}, {"value": "C", "label": "Cold"}]}]}
    merged = _merged_entity([_docs(BASE), _docs(over)])
    options = merged["fields"][1]["options"]
    assert [o["value"] for o in options] == ["A", "B", "C"]
    assert options[0]["label"] == {"en": "Key", "zh": "重点"}
    assert options[1]["label"] == {"en": "Normal", "zh": "普通"}  # a plain string stood for both
    assert options[2]["label"] == "Cold"


def test_remove_drops_fields_options_and_documents() -> None:
    view = {"kind": "view", "entity": "contact", "name": "all", "label": "All", "columns": ["name"]}
    over = [{"kind": "entity", "name": "contact", "fields": [
                {"name": "email", "$remove": True},
                {"name": "level", "options": [{"value": "A", "$remove": True}]}]},
            {"kind": "view", "entity": "contact", "name": "all", "$remove": True}]
    merged = merge_layers([_docs(BASE, view), _docs(*over)])
    assert [d.kind for d in merged] == ["entity"]
    fields = merged[0].data["fields"]
    assert [f["name"] for f in fields] == ["name", "level", "phone"]
    assert [o["value"] for o in fields[1]["options"]] == ["B"]
    assert "$remove" not in json.dumps([d.data for d in merged])


def test_order_puts_named_items_first_and_keeps_the_rest() -> None:
    over = {"kind": "entity", "name": "contact", "$order": {"fields": ["email", "phone"]},
            "fields": [{"name": "wechat", "type": "text"}]}
    merged = _merged_entity([_docs(BASE), _docs(over)])
    assert [f["name"] for f in merged["fields"]] == ["email", "phone", "name", "level", "wechat"]
    assert "$order" not in merged


def test_label_partial_override_changes_one_language() -> None:
    over = {"kind": "entity", "name": "contact", "label": {"zh": "联系人"},
            "fields": [{"name": "name", "label": {"zh": "姓名"}}]}
    merged = _merged_entity([_docs(BASE), _docs(over)])
    assert merged["label"] == {"en": "Contact", "zh": "联系人"}
    assert merged["fields"][0]["label"] == {"en": "Name", "zh": "姓名"}


def test_label_partial_override_over_a_plain_string_label() -> None:
    base = entity("note", {"name": "text", "type": "text", "label": "Text"}, label="Note")
    over = {"kind": "entity", "name": "note", "label": {"zh": "便签"},
            "fields": [{"name": "text", "label": {"en": "Body"}}]}
    merged = _merged_entity([_docs(base), _docs(over)], "note")
    assert merged["label"] == {"en": "Note", "zh": "便签"}
    assert merged["fields"][0]["label"] == {"en": "Body", "zh": "Text"}


def test_removing_a_template_field_in_the_instance_layer_archives_it(make_app: Any, engine_of: Any) -> None:
    engine = engine_of(make_app([BASE]))
    with schema_transaction(engine) as conn:
        set_instance_layer(conn, _docs({"kind": "entity", "name": "contact",
                                        "fields": [{"name": "email", "$remove": True}]}))
        plan = publish_pending(conn)
    assert [s.action for s in plan.steps] == ["archive_field"]
    assert "email" in {c["name"] for c in sa.inspect(engine).get_columns("ent_contact")}


def test_three_layers_apply_in_order() -> None:
    mid = {"kind": "entity", "name": "contact", "fields": [{"name": "phone", "max_length": 20}]}
    top = {"kind": "entity", "name": "contact", "fields": [{"name": "phone", "max_length": 30}]}
    merged = _merged_entity([_docs(BASE), _docs(mid), _docs(top)])
    assert merged["fields"][2]["max_length"] == 30


def test_merging_does_not_modify_the_layers() -> None:
    base = _docs(BASE)
    before = json.dumps([d.data for d in base], sort_keys=True)
    merge_layers([base, _docs({"kind": "entity", "name": "contact", "fields": [{"name": "x", "type": "text"},
                                                                               {"name": "name", "$remove": True}]})])
    assert json.dumps([d.data for d in base], sort_keys=True) == before


# ------------------------------------------------------------------ instance layer vs template upgrade

def test_instance_customisation_survives_template_upgrade(make_app: Any, client_of: Any, engine_of: Any) -> None:
    app = make_app([BASE])
    engine = engine_of(app)
    client = client_of(app)
    custom = {"kind": "entity", "name": "contact", "label": {"zh": "客户联系人"},
              "fields": [{"name": "wechat", "type": "text", "label": {"en": "WeChat", "zh": "微信"}},
                         {"name": "name", "label": {"zh": "姓名"}}]}
    with schema_transaction(engine) as conn:
        set_instance_layer(conn, _docs(custom, source="instance"))
        assert [s.action for s in plan_pending(conn).steps] == ["add_column"]
        publish_pending(conn)
    rid = client.post("/api/v1/records/contact", json={"name": "Ann", "wechat": "ann_wx"}).get_json()["id"]

    upgraded = json.loads(json.dumps(BASE))
    upgraded["fields"].append({"name": "city", "type": "text"})
    upgraded["fields"][0]["label"]["en"] = "Full name"
    with schema_transaction(engine) as conn:
        plan = install_template(conn, package([upgraded], version="1.1.0"), upgrade=True)
    assert [s.action for s in plan.steps] == ["add_column"] and "city" in plan.steps[0].description

    meta = client.get("/api/v1/meta/entities/contact").get_json()
    fields = {f["name"]: f for f in meta["fields"]}
    assert {"name", "level", "phone", "email", "wechat", "city"} <= set(fields)
    assert fields["name"]["label"] == {"en": "Full name", "zh": "姓名"}  # template's en, instance's zh
    assert fields["wechat"]["label"] == {"en": "WeChat", "zh": "微信"}
    assert meta["label"] == {"en": "Contact", "zh": "客户联系人"}
    assert client.get(f"/api/v1/records/contact/{rid}").get_json()["wechat"] == "ann_wx"
    with engine.connect() as conn:
        assert [t["version"] for t in installed_templates(conn)] == ["1.1.0"]
        assert make_plan(conn, pending_documents(conn)).empty


def test_template_upgrade_that_removes_a_field_archives_it_but_keeps_instance_fields(
        make_app: Any, client_of: Any, engine_of: Any) -> None:
    app = make_app([BASE])
    engine = engine_of(app)
    with schema_transaction(engine) as conn:
        set_instance_layer(conn, _docs({"kind": "entity", "name": "contact",
                                        "fields": [{"name": "wechat", "type": "text"}]}))
        publish_pending(conn)
    slim = json.loads(json.dumps(BASE))
    slim["fields"] = [f for f in slim["fields"] if f["name"] != "phone"]
    with schema_transaction(engine) as conn:
        plan = install_template(conn, package([slim], version="2.0.0"), upgrade=True)
    assert [s.action for s in plan.steps] == ["archive_field"]
    names = [f["name"] for f in client_of(app).get("/api/v1/meta/entities/contact").get_json()["fields"]]
    assert "wechat" in names and "phone" not in names
    assert "phone" in {c["name"] for c in sa.inspect(engine).get_columns("ent_contact")}


def test_invalid_instance_layer_is_refused_and_not_stored(make_app: Any, engine_of: Any) -> None:
    app = make_app([BASE])
    engine = engine_of(app)
    bad = {"kind": "entity", "name": "contact", "fields": [{"name": "score", "type": "nmber"}]}
    with pytest.raises(MetadataInvalid) as info:
        with schema_transaction(engine) as conn:
            set_instance_layer(conn, _docs(bad, source="custom/contact.json"))
    assert any("nmber" in str(e) for e in info.value.errors)
    with engine.connect() as conn:
        assert [d for layer in layer_documents(conn) for d in layer if d.source.startswith("instance")] == []
        assert plan_pending(conn).empty


# ------------------------------------------------------------------ template packages

def _write_package(root: Path, docs: dict[str, Any], manifest: dict[str, Any] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    manifest = manifest or {"kind": "template", "name": "shop", "version": "1.0.0", "label": "Shop",
                            "files": ["entities/*.json", "views/*.json"]}
    (root / "template.json").write_text(json.dumps(manifest))
    for rel, data in docs.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data if isinstance(data, str) else json.dumps(data, ensure_ascii=False))
    return root


SHOP = {
    "entities/product.json": entity("product", {"name": "name", "type": "text", "required": True},
                                    {"name": "price", "type": "currency"},
                                    {"name": "sku", "type": "text", "unique": True}),
    "entities/order.json": entity("order", {"name": "product", "type": "lookup", "target": "product"},
                                  {"name": "qty", "type": "integer"}),
    "views/products.json": {"kind": "view", "entity": "product", "name": "all", "label": "All products",
                            "columns": ["name", "price"]},
}


def _nothing_installed(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(systables.layers)).scalar_one() == 0
    assert meta_version(engine) == 0
    assert schema_snapshot(engine) == {}


def test_package_with_one_bad_file_installs_nothing(make_app: Any, engine_of: Any, tmp_path: Path) -> None:
    engine = engine_of(make_app())
    docs = dict(SHOP)
    docs["entities/customer.json"] = entity("customer", {"name": "score", "type": "nmber"})
    pkg = load_package(_write_package(tmp_path / "shop", docs))
    with pytest.raises(MetadataInvalid) as info:
        with schema_transaction(engine) as conn:
            install_template(conn, pkg)
    assert [e.source for e in info.value.errors] == ["shop/entities/customer.json"]
    assert info.value.errors[0].path == "/fields/0/type"
    _nothing_installed(engine)


def test_package_with_broken_json_installs_nothing(make_app: Any, engine_of: Any, tmp_path: Path) -> None:
    engine = engine_of(make_app())
    docs = dict(SHOP)
    docs["entities/broken.json"] = '{"kind": "entity", "name": '
    pkg = load_package(_write_package(tmp_path / "shop", docs))
    with pytest.raises(MetadataInvalid) as info:
        with schema_transaction(engine) as conn:
            install_template(conn, pkg)
    assert "shop/entities/broken.json" in [e.source for e in info.value.errors]
    _nothing_installed(engine)


def test_package_whose_publish_is_refused_installs_nothing(make_app: Any, engine_of: Any, tmp_path: Path) -> None:
    """Valid metadata whose names PostgreSQL can't hold: refused by the plan, after the
    layer row was already written in the same transaction."""
    from metacrm.runtime.publish import PublishRefused

    engine = engine_of(make_app())
    docs = dict(SHOP)
    docs["entities/long.json"] = entity("l" * 62, {"name": "x", "type": "text"})
    pkg = load_package(_write_package(tmp_path / "shop", docs))
    with pytest.raises(PublishRefused):
        with schema_transaction(engine) as conn:
            install_template(conn, pkg)
    _nothing_installed(engine)


def test_installing_the_same_template_twice_is_a_conflict(make_app: Any, engine_of: Any, tmp_path: Path) -> None:
    engine = engine_of(make_app())
    pkg = load_package(_write_package(tmp_path / "shop", SHOP))
    with schema_transaction(engine) as conn:
        install_template(conn, pkg)
    version, schema = meta_version(engine), schema_snapshot(engine)
    with pytest.raises(Conflict, match="already installed"):
        with schema_transaction(engine) as conn:
            install_template(conn, pkg)
    assert meta_version(engine) == version and schema_snapshot(engine) == schema


def test_upgrading_a_template_that_is_not_installed_is_not_found(make_app: Any, engine_of: Any,
                                                                 tmp_path: Path) -> None:
    engine = engine_of(make_app())
    pkg = load_package(_write_package(tmp_path / "shop", SHOP))
    with pytest.raises(NotFound):
        with schema_transaction(engine) as conn:
            install_template(conn, pkg, upgrade=True)
    _nothing_installed(engine)


def test_missing_required_template_is_an_error(make_app: Any, engine_of: Any, tmp_path: Path) -> None:
    engine = engine_of(make_app())
    manifest = {"kind": "template", "name": "shop", "version": "1.0.0", "label": "Shop",
                "requires": ["crm-default"], "files": ["entities/*.json", "views/*.json"]}
    pkg = load_package(_write_package(tmp_path / "shop", SHOP, manifest))
    with pytest.raises(MetadataInvalid) as info:
        with schema_transaction(engine) as conn:
            install_template(conn, pkg)
    assert info.value.errors[0].path == "/requires"
    assert "crm-default" in info.value.errors[0].message
    _nothing_installed(engine)


def test_required_template_installed_first_is_accepted(make_app: Any, engine_of: Any, tmp_path: Path) -> None:
    engine = engine_of(make_app())
    base = _write_package(tmp_path / "base", {"entities/product.json": SHOP["entities/product.json"]},
                          {"kind": "template", "name": "base", "version": "1.0.0", "label": "Base"})
    addon = _write_package(tmp_path / "addon", {"entities/order.json": SHOP["entities/order.json"]},
                           {"kind": "template", "name": "addon", "version": "1.0.0", "label": "Add-on",
                            "requires": ["base"]})
    with schema_transaction(engine) as conn:
        install_template(conn, load_package(base))
        install_template(conn, load_package(addon))
        assert [t["name"] for t in installed_templates(conn)] == ["base", "addon"]
    assert {"ent_product", "ent_order"} <= set(schema_snapshot(engine))


def _zip(folder: Path, target: Path, prefix: str) -> Path:
    with zipfile.ZipFile(target, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + path.relative_to(folder).as_posix())
    return target


@pytest.mark.parametrize("prefix", ["", "shop/"])
def test_zip_package_installs_the_same_as_its_folder(make_app: Any, engine_of: Any, tmp_path: Path,
                                                     prefix: str) -> None:
    folder = _write_package(tmp_path / "shop", SHOP)
    zipped = _zip(folder, tmp_path / "shop.zip", prefix)
    from_folder, from_zip = load_package(folder), load_package(zipped)
    assert from_zip.errors == ()
    assert from_zip.manifest is not None and from_folder.manifest is not None
    assert from_zip.manifest.data == from_folder.manifest.data
    assert sorted(json.dumps(d.data, sort_keys=True) for d in from_zip.documents) == \
        sorted(json.dumps(d.data, sort_keys=True) for d in from_folder.documents)

    engine = engine_of(make_app())
    with schema_transaction(engine) as conn:
        install_template(conn, from_zip)
    snapshot = schema_snapshot(engine)
    assert set(snapshot) == {"ent_product", "ent_order"}
    with engine.connect() as conn:
        # the folder's metadata is exactly what the zip installed: nothing to publish
        layers = layer_documents(conn, replace={"shop": list(from_folder.documents)})
        assert make_plan(conn, merge_layers(layers)).empty


def test_a_zip_made_by_macos_finder_loads(tmp_path: Path) -> None:
    """Finder's "Compress" adds __MACOSX/ and ._ files beside the package folder."""
    folder = _write_package(tmp_path / "shop", SHOP)
    zipped = _zip(folder, tmp_path / "shop.zip", "shop/")
    with zipfile.ZipFile(zipped, "a") as zf:
        zf.writestr("__MACOSX/shop/._template.json", b"\x00\x05\x16\x07")
        zf.writestr("shop/.DS_Store", b"\x00\x00")
        zf.writestr("shop/entities/._product.json", b"\x00\x05")
    pkg = load_package(zipped)
    assert pkg.errors == () and pkg.name == "shop"
    assert sorted(d.data["name"] for d in pkg.documents) == ["all", "order", "product"]


def test_a_zip_with_a_bad_file_installs_nothing(make_app: Any, engine_of: Any, tmp_path: Path) -> None:
    docs = dict(SHOP)
    docs["views/bad.json"] = {"kind": "view", "entity": "product", "name": "bad", "label": "Bad",
                              "columns": ["no_such_field"]}
    zipped = _zip(_write_package(tmp_path / "shop", docs), tmp_path / "shop.zip", "")
    engine = engine_of(make_app())
    with pytest.raises(MetadataInvalid) as info:
        with schema_transaction(engine) as conn:
            install_template(conn, load_package(zipped))
    assert {e.source for e in info.value.errors} == {"shop.zip/views/bad.json"}
    _nothing_installed(engine)
