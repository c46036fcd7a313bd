"""`metacrm import` and `metacrm export` against the default CRM (its customer dedup rule
blocks a second customer of the same name), run in-process with Click's CliRunner."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import openpyxl
import sqlalchemy as sa

from metacrm.runtime import systables

from .test_cli import cli, engine  # noqa: F401 - fixtures


def _customers(engine: Any) -> list[tuple[str, str]]:  # noqa: F811
    with engine.connect() as conn:
        return sorted(conn.execute(sa.text("SELECT name, level FROM ent_customer")).all())


def test_import_then_export_from_the_command_line(cli: Any, engine: Any, tmp_path: Path) -> None:  # noqa: F811
    assert cli("init").exit_code == 0
    source = tmp_path / "客户.csv"
    source.write_bytes("客户名称,客户级别,所属行业,电话,信用额度\n"
                       "北京字节跳动科技有限公司,重点客户,IT/互联网,13800000001,\"50,000\"\n"
                       "字节跳动(北京)科技有限公司,普通客户,IT/互联网,13800000002,\n"
                       "上海宏达机械制造有限公司,普通客户,不存在的行业,13800000003,\n"
                       "深圳远航物流有限公司,B,物流,13800000004,\n".encode("gb18030"))
    dry = cli("import", "customer", str(source), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Dry run: would have created 2, updated 0, skipped 0, failed 2" in dry.output
    assert _customers(engine) == []
    report = tmp_path / "report.csv"
    done = cli("import", "customer", str(source), "--report", str(report))
    assert done.exit_code == 0, done.output
    assert "created 2, updated 0, skipped 0, failed 2" in done.output
    assert "row 3: -: " in done.output and "duplicates" in done.output  # the legal-form variant is blocked
    assert "row 4: industry:" in done.output
    assert _customers(engine) == [("北京字节跳动科技有限公司", "A"), ("深圳远航物流有限公司", "B")]
    lines = list(csv.reader(io.StringIO(report.read_text(encoding="utf-8-sig"))))
    assert [l[:2] for l in lines] == [["row", "outcome"], ["3", "error"], ["4", "error"]]

    # The same file again with mode skip: every matched row is left out.
    again = cli("import", "customer", str(source), "--mode", "skip",
                "--mapping", json.dumps({"所属行业": None}, ensure_ascii=False))
    assert again.exit_code == 0, again.output
    assert "created 1, updated 0, skipped 3, failed 0" in again.output
    assert len(_customers(engine)) == 3

    out = tmp_path / "out.csv"
    exported = cli("export", "customer", "--output", str(out), "--sort", "name", "--columns", "name,level,owner")
    assert exported.exit_code == 0, exported.output
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert rows[0] == ["Customer name", "Customer level", "Owner"] and len(rows) == 4
    assert {r[0]: r[1] for r in rows[1:]}["北京字节跳动科技有限公司"] == "Key" and all(r[2] == "Administrator" for r in rows[1:])
    xlsx = tmp_path / "out.xlsx"
    assert cli("export", "customer", "--format", "xlsx", "--output", str(xlsx),
               "--filter", '[["level", "=", "A"]]').exit_code == 0
    sheet = openpyxl.load_workbook(xlsx).active
    assert sheet.max_row == 2
    with engine.connect() as conn:
        audits = conn.execute(sa.select(systables.audit_log.c.detail).where(
            systables.audit_log.c.action == "record.export").order_by(systables.audit_log.c.id)).scalars().all()
    assert [a["rows"] for a in audits] == [3, 1] and audits[0]["via"] == "cli"

    refused = cli("import", "customer", str(source), "--as", "nobody")
    assert refused.exit_code != 0 and "No active user named nobody" in refused.output
    bad = cli("import", "customer", str(source), "--mapping", '{"nope": "name"}')
    assert bad.exit_code != 0 and "not in the file" in bad.output
