"""How long the README's `metacrm demo` takes to load its data, two ways, same data.

`after`: what ships — customers, contacts, follow-ups, receivable plans, first-stage
opportunities and new leads through the bulk path (runtime/bulk_insert.py), the rest
through the record service and the workflows. `before`: the same generator with every
bulk row sent through `records.create_record` one by one (full checks), as the demo did
before. Each mode gets a fresh SQLite database (or the PostgreSQL one given, whose public
schema is DROPPED first), an `init`, then `load_demo_data`; wall and CPU seconds are
printed. A benchmark, not a test: it always exits 0.

    python benchmarks/bench_demo.py                      # 2,000 customers, both modes
    python benchmarks/bench_demo.py --customers 300 --only after
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from metacrm.runtime import clock
from metacrm.runtime import demo as demo_module
from metacrm.runtime.bulk_insert import NewRow
from metacrm.runtime.records import create_record


def _row_by_row(conn: Any, catalog: Any, entity: str, rows: Sequence[NewRow]) -> list[int]:
    """insert_records' contract, the slow way: one create_record per row, at its moment."""
    ids = []
    simulated = clock._now  # the demo's simulated clock while it loads
    for row in rows:
        simulated.at = row.at  # type: ignore[attr-defined]
        ids.append(create_record(conn, catalog, row.principal, entity, dict(row.payload))["id"])
    return ids


def _run(mode: str, customers: int, database_url: str | None) -> tuple[float, float, dict[str, int]]:
    from metacrm.app import create_app
    from metacrm.cli import _run_init
    from metacrm.runtime.web.context import EXTENSION

    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite:///{Path(tmp) / 'demo.db'}"
        app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "INSTANCE_PATH": tmp})
        rt = app.extensions[EXTENSION]
        if url.startswith("postgres"):
            import sqlalchemy as sa
            with rt.engine.begin() as conn:
                conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "INSTANCE_PATH": tmp})
            rt = app.extensions[EXTENSION]
        _run_init(app)
        original = demo_module.insert_records
        if mode == "before":
            demo_module.insert_records = _row_by_row  # type: ignore[assignment]
        try:
            wall, cpu = time.perf_counter(), time.process_time()
            summary = demo_module.load_demo_data(rt, customers=customers)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        finally:
            demo_module.insert_records = original  # type: ignore[assignment]
        rt.engine.dispose()
    return wall, cpu, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--only", choices=("before", "after"))
    parser.add_argument("--database-url")
    args = parser.parse_args()
    print(f"load_demo_data(customers={args.customers}) on {args.database_url or 'SQLite'}")
    for mode in (args.only,) if args.only else ("after", "before"):
        wall, cpu, summary = _run(mode, args.customers, args.database_url)
        rows = sum(v for k, v in summary.items() if k not in ("departments", "users"))
        print(f"{mode:>6}: {wall:7.1f} s wall, {cpu:7.1f} s CPU, {rows:,} business rows "
              f"({summary.get('customers')} customers, {summary.get('followups')} follow-ups)")


if __name__ == "__main__":
    main()
