"""The `metacrm` command line, run in-process with Click's CliRunner against a temporary
database (the suite's: SQLite file or PostgreSQL) and a temporary instance folder."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from metacrm.cli import main
from metacrm.runtime import systables
from metacrm.runtime.db import make_engine

from .support import entity, meta_version, schema_snapshot

SEEDS = Path(__file__).resolve().parent.parent / "seeds" / "crm-default"


@pytest.fixture
def cli(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """cli("plan", "--custom", dir) → the Result; the database is the test's own."""
    monkeypatch.setenv("METACRM_DATABASE_URL", db_url)
    monkeypatch.setenv("METACRM_INSTANCE", str(tmp_path / "instance"))
    monkeypatch.setenv("METACRM_ADMIN_USERNAME", "admin")
    monkeypatch.setenv("METACRM_ADMIN_PASSWORD", "admin-pass-1")
    monkeypatch.delenv("METACRM_SECRET_KEY", raising=False)

    def run(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return run


@pytest.fixture
def engine(db_url: str) -> Any:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def _write(folder: Path, files: dict[str, Any]) -> Path:
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data if isinstance(data, str) else json.dumps(data, ensure_ascii=False))
    return folder


def _layers(engine: sa.Engine) -> list[tuple[str, str | None]]:
    with engine.connect() as conn:
        return [(r.name, r.version) for r in conn.execute(sa.select(systables.layers).order_by(systables.layers.c.id))]


# ------------------------------------------------------------------ validate

def test_validate_the_shipped_default_crm(cli: Any) -> None:
    result = cli("validate", str(SEEDS))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK: ")


def test_validate_reports_every_error_with_file_and_pointer(cli: Any, tmp_path: Path) -> None:
    folder = _write(tmp_path / "meta", {
        "contact.json": entity("contact", {"name": "name", "type": "text"}, {"name": "score", "type": "nmber"}),
        "views/notes.json": {"kind": "view", "entity": "note", "name": "all", "label": "All",
                             "columns": ["text", "nickname"]},
        "broken.json": "{not json",
        "note.json": entity("note", {"name": "text", "type": "text"}),
    })
    result = cli("validate", str(folder))
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    error_lines = [line for line in lines if re.match(r"^\S+\.json: /\S*: .+", line)]
    assert any(line.startswith("meta/contact.json: /fields/1/type: ") and "nmber" in line for line in error_lines)
    assert any(line.startswith("meta/views/notes.json: /columns/1: ") for line in error_lines), lines
    assert any(line.startswith("meta/broken.json: /: ") for line in error_lines), lines
    assert not any("note.json" in line for line in lines)
    assert lines[-1] == f"{len(error_lines)} error(s)."


def test_validate_a_missing_path_fails(cli: Any, tmp_path: Path) -> None:
    result = cli("validate", str(tmp_path / "nowhere"))
    assert result.exit_code != 0


# ------------------------------------------------------------------ init, plan, publish

def test_init_then_plan_has_nothing_to_publish(cli: Any, engine: sa.Engine) -> None:
    result = cli("init")
    assert result.exit_code == 0, result.output
    assert "default CRM installed" in result.output
    assert "Admin login: admin" in result.output
    assert {"ent_customer", "ent_contract", "ent_contract_line"} <= set(sa.inspect(engine).get_table_names())
    plan = cli("plan")
    assert plan.exit_code == 0, plan.output
    assert "Nothing to publish" in plan.output
    again = cli("init")  # idempotent
    assert again.exit_code == 0 and "installed" not in again.output.split("\n")[1]
    assert meta_version(engine) == 1


def _custom(tmp_path: Path) -> Path:
    return _write(tmp_path / "custom", {
        "customer.json": {"kind": "entity", "name": "customer",
                          "fields": [{"name": "wechat", "type": "text", "label": {"en": "WeChat", "zh": "微信"}},
                                     {"name": "name", "label": {"zh": "客户全称"}}]},
    })


def test_plan_with_custom_layer_shows_ddl_and_changes_nothing(cli: Any, engine: sa.Engine, tmp_path: Path) -> None:
    assert cli("init").exit_code == 0
    version, schema, layers = meta_version(engine), schema_snapshot(engine), _layers(engine)
    result = cli("plan", "--custom", str(_custom(tmp_path)))
    assert result.exit_code == 0, result.output
    assert "[add_column]" in result.output
    assert re.search(r"ALTER TABLE ent_customer ADD COLUMN wechat VARCHAR\(255\)", result.output), result.output
    assert meta_version(engine) == version
    assert schema_snapshot(engine) == schema
    assert _layers(engine) == layers
    assert "Nothing to publish" in cli("plan").output

    as_json = cli("plan", "--json", "--custom", str(_custom(tmp_path)))
    plan = json.loads(as_json.output)
    assert [s["action"] for s in plan["steps"]] == ["add_column"] and plan["problems"] == []


def test_publish_with_custom_layer_applies_it(cli: Any, engine: sa.Engine, tmp_path: Path) -> None:
    assert cli("init").exit_code == 0
    result = cli("publish", "--custom", str(_custom(tmp_path)), "--note", "add wechat")
    assert result.exit_code == 0, result.output
    assert "Published version 2." in result.output
    assert "wechat" in {c["name"] for c in sa.inspect(engine).get_columns("ent_customer")}
    assert ("instance", None) in _layers(engine)
    with engine.connect() as conn:
        note = conn.execute(sa.select(systables.meta_versions.c.note)
                            .where(systables.meta_versions.c.version == 2)).scalar_one()
    assert note == "add wechat"
    again = cli("publish")
    assert again.exit_code == 0 and "Nothing published." in again.output
    assert meta_version(engine) == 2


def test_publish_refused_by_the_plan_exits_1_and_changes_nothing(cli: Any, engine: sa.Engine,
                                                                 tmp_path: Path) -> None:
    assert cli("init").exit_code == 0
    version, schema = meta_version(engine), schema_snapshot(engine)
    bad = _write(tmp_path / "bad", {"customer.json": {"kind": "entity", "name": "customer",
                                                      "fields": [{"name": "phone", "type": "location"}]}})
    result = cli("publish", "--custom", str(bad))
    assert result.exit_code == 1
    assert "REFUSED" in result.output and "phone" in result.output
    assert meta_version(engine) == version and schema_snapshot(engine) == schema
    assert all(name != "instance" for name, _ in _layers(engine))


def test_publish_with_invalid_custom_layer_prints_errors(cli: Any, engine: sa.Engine, tmp_path: Path) -> None:
    assert cli("init").exit_code == 0
    bad = _write(tmp_path / "bad", {"customer.json": {"kind": "entity", "name": "customer",
                                                      "fields": [{"name": "x", "type": "nmber"}]}})
    result = cli("publish", "--custom", str(bad))
    assert result.exit_code == 1
    assert re.search(r"customer\.json.*: /fields/\d+/type: ", result.output), result.output
    assert meta_version(engine) == 1


# ------------------------------------------------------------------ template install

def _package(folder: Path, extra: dict[str, Any] | None = None) -> Path:
    files = {
        "template.json": {"kind": "template", "name": "shop", "version": "1.0.0", "label": "Shop",
                          "requires": ["crm-default"], "files": ["entities/*.json"]},
        "entities/product_bundle.json": entity("product_bundle", {"name": "name", "type": "text"},
                                               {"name": "product", "type": "lookup", "target": "product"}),
    }
    return _write(folder, {**files, **(extra or {})})


def test_template_install_of_a_bad_package_exits_1_and_changes_nothing(cli: Any, engine: sa.Engine,
                                                                       tmp_path: Path) -> None:
    assert cli("init").exit_code == 0
    version, schema, layers = meta_version(engine), schema_snapshot(engine), _layers(engine)
    pkg = _package(tmp_path / "shop", {"entities/bad.json": entity("bad", {"name": "n", "type": "nmber"})})
    result = cli("template", "install", str(pkg))
    assert result.exit_code == 1
    assert "shop/entities/bad.json: /fields/0/type: " in result.output
    assert "Nothing was installed." in result.output
    assert meta_version(engine) == version and schema_snapshot(engine) == schema and _layers(engine) == layers


def test_template_install_and_upgrade(cli: Any, engine: sa.Engine, tmp_path: Path) -> None:
    assert cli("init").exit_code == 0
    pkg = _package(tmp_path / "shop")
    result = cli("template", "install", str(pkg))
    assert result.exit_code == 0, result.output
    assert "Installed shop 1.0.0 (metadata version 2)" in result.output
    assert "ent_product_bundle" in sa.inspect(engine).get_table_names()
    again = cli("template", "install", str(pkg))
    assert again.exit_code == 1 and "already installed" in again.output

    manifest = json.loads((pkg / "template.json").read_text())
    manifest["version"] = "1.1.0"
    _write(pkg, {"template.json": manifest, "entities/product_bundle.json": entity(
        "product_bundle", {"name": "name", "type": "text"}, {"name": "product", "type": "lookup", "target": "product"},
        {"name": "discount", "type": "percent"})})
    up = cli("template", "upgrade", str(pkg))
    assert up.exit_code == 0, up.output
    assert "Upgraded shop 1.1.0" in up.output
    assert "discount" in {c["name"] for c in sa.inspect(engine).get_columns("ent_product_bundle")}
    assert ("shop", "1.1.0") in _layers(engine)
