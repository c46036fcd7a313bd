#!/usr/bin/env python
"""Import/export benchmark: N (default 100,000) customer rows of the default CRM imported
from CSV through the record service — mode create, which takes the batch door
(`create_records`), with its dedup rule `customer_by_name_or_phone` (block) off and on —
then a smaller file in mode skip (row by row: every row matches), then exported back to
CSV and XLSX. SQLite always; PostgreSQL too with --database-url. Prints one table.

    python benchmarks/bench_import.py                      # SQLite in a temp dir, 100,000 rows
    python benchmarks/bench_import.py --rows 10000         # quicker
    python benchmarks/bench_import.py --database-url 'postgresql://postgres@/bench?host=/tmp/pg&port=5433'
    python benchmarks/bench_import.py --profile            # cProfile of a 5,000-row import

A PostgreSQL database given with --database-url is WIPED (its `public` schema is
dropped and recreated). `rows/s` is wall-clock; `rows/cpu-s` divides by this process's
CPU time (SQLite works in-process, so on a machine shared with other jobs it says what
the code costs where wall-clock says how busy the machine was; the load average is
printed). Memory is the peak resident size above the size before each phase, sampled
every 50 ms from /proc: flat means it doesn't grow with the row count. The match-key
caches are cleared before each import, so no phase profits from another's work. It exits
0 whatever the outcome: the target (> 2,000 rows/s on SQLite with dedup on) is reported,
not enforced.
"""
from __future__ import annotations

import argparse
import cProfile
import csv
import os
import pstats
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from metacrm.app import create_app
from metacrm.runtime import accounts
from metacrm.runtime.db import normalise_url
from metacrm.runtime.exports import csv_chunks, export_records, write_xlsx
from metacrm.runtime.imports.importer import ImportOptions, run_import
from metacrm.runtime.imports.mapping import resolve_mapping
from metacrm.runtime.imports.readers import open_table
from metacrm.runtime.access import access_for
import metacrm.runtime.dedup.normalise as normalise_module
from metacrm.runtime.metastore import install_seed
from metacrm.runtime.migrate import upgrade_system_tables
from metacrm.runtime.query import parse_list_args
from metacrm.runtime.web.context import EXTENSION

TARGET = 2000
SYLLABLES = ["ka", "lo", "mi", "ren", "tas", "vo", "zu", "pel", "dor", "qui", "sen", "bra", "fin", "gal", "hu",
             "jor", "kel", "nar", "osk", "pri", "rul", "sta", "tev", "ulm", "vex", "wyn", "yar", "zel", "cor", "dyn"]
HANZI = "华信宏达鼎盛创新远航金桥中科恒通博远瑞丰天成嘉禾新锐联创汇通盛世东方卓越云帆百川星河海纳智源国泰" \
        "安平长青明德启元正和同舟立信广厦兴业德润永安宝龙圣洁万象千禧凯旋"
CN_SUFFIX = ["科技有限公司", "贸易有限公司", "制造有限公司", "咨询有限公司", "物流有限公司", "网络科技有限公司"]
EN_SUFFIX = ["Co., Ltd.", "Inc.", "Technologies", "Trading Ltd.", "Group"]
LEVELS = ["重点客户", "普通客户", "非优先客户", "B", "C"]
INDUSTRIES = ["IT/互联网", "Manufacturing", "金融", "education", "医疗", "零售", "物流", "其他"]


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(3)).capitalize()


def write_csv(path: Path, rows: int, seed: int) -> None:
    """Distinct customers (so the dedup rule checks every row but rarely fires), half
    Chinese, half English, with levels and industries written as people write them."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["客户名称", "客户级别", "所属行业", "电话", "邮箱", "信用额度", "备注"])
        for i in range(rows):
            if i % 2:
                name = "".join(rng.choice(HANZI) for _ in range(4)) + rng.choice(CN_SUFFIX)
            else:
                name = f"{_word(rng)} {_word(rng)} {rng.choice(EN_SUFFIX)}"
            level = rng.choice(LEVELS)
            credit = f"{rng.randint(1, 500) * 1000:,}" if level == "重点客户" else ""
            w.writerow([name, level, rng.choice(INDUSTRIES), f"1{rng.randint(3, 9)}{i:09d}",
                        f"c{i}@example.com" if i % 3 == 0 else "", credit, "导入测试" if i % 5 == 0 else ""])


class PeakRSS:
    """Peak resident memory above the level at start, sampled from /proc every 50 ms."""

    def __init__(self) -> None:
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def mib(self) -> float:
        return (self.peak - self.base) / 2**20


def build(url: str, instance: str) -> tuple[Any, Any]:
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "TESTING": True, "INSTANCE_PATH": instance})
    rt = app.extensions[EXTENSION]
    upgrade_system_tables(rt.engine)
    with rt.engine.begin() as conn:
        admin = accounts.create_user(conn, "admin", "admin-pass-1", display_name="Admin", is_admin=True,
                                     roles=("admin",))
        install_seed(conn, "crm-default", by=admin.id)
        rep = accounts.create_user(conn, "sales01", "sales-pass-1", display_name="王芳", roles=("sales_manager",))
        principal = accounts.principal_for(conn, rep)
    rt.invalidate()
    return rt, principal


def clear_caches() -> None:
    """Forget remembered normalisations, so an import pays for its own."""
    normalise_module._normalise_cached.cache_clear()
    normalise_module.match_keys.cache_clear()
    normalise_module._distinctive.cache_clear()


def import_file(rt: Any, principal: Any, path: Path, options: ImportOptions) -> tuple[Any, float, float, float]:
    """(counts, wall seconds, CPU seconds, peak MiB) of one import."""
    clear_caches()
    catalog = rt.catalog()
    entity = catalog.get("customer")
    with open_table(path) as table, PeakRSS() as mem:
        columns = resolve_mapping(table.headers, None, entity, access_for(catalog.mset, principal, entity.entity))
        t0, c0 = time.perf_counter(), time.process_time()
        counts = run_import(rt, principal, "customer", table.rows, columns, options)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return counts, seconds, cpu, mem.mib


def wipe(rt: Any) -> None:
    with rt.engine.begin() as conn:
        for table in ("ent_customer", "mc_history", "mc_dedup_keys", "mc_sequences"):
            conn.exec_driver_sql(f"DELETE FROM {table}")


def export_to(rt: Any, principal: Any, fmt: str, out: Path) -> tuple[int, float, float, float]:
    with PeakRSS() as mem, rt.engine.connect() as conn:
        t0, c0 = time.perf_counter(), time.process_time()
        export = export_records(conn, rt.catalog(conn), principal, "customer", parse_list_args({}), rt.timezone)
        with out.open("wb") as fh:
            if fmt == "csv":
                for chunk in csv_chunks(export):
                    fh.write(chunk)
            else:
                write_xlsx(export, fh)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return export.count, seconds, cpu, mem.mib


#: (label, options) of the imports measured on each database, in order.
def phases(batch: int) -> list[tuple[str, ImportOptions]]:
    return [("import, dedup off (mode create)", ImportOptions(dedup=False, batch_size=batch)),
            ("import, dedup on (mode create: block rule checked)", ImportOptions(batch_size=batch))]


Row = tuple[str, str, int, float, float, float, str]


def run_database(url: str, tmp: str, rows: int, skip_rows: int, batch: int, seed: int,
                 exports: bool = True) -> tuple[list[Row], Any]:
    """Every phase on one database; its result rows."""
    rt, principal = build(url, tmp)
    db = rt.engine.dialect.name
    source = Path(tmp) / "customers.csv"
    if not source.exists():
        write_csv(source, rows, seed)
    out: list[Row] = []
    for label, options in phases(batch):
        wipe(rt)
        print(f"  {db}: {label} ...", file=sys.stderr)
        counts, seconds, cpu, mib = import_file(rt, principal, source, options)
        done = counts.created + counts.updated + counts.skipped + counts.failed
        out.append((db, label, done, seconds, cpu, mib,
                    f"created {counts.created:,}, failed {counts.failed:,}"))
    if skip_rows:
        head = Path(tmp) / "head.csv"
        with source.open(encoding="utf-8-sig") as src, head.open("w", encoding="utf-8-sig") as dst:
            for i, line in enumerate(src):
                if i > skip_rows:
                    break
                dst.write(line)
        label = "import again, mode skip (row by row; every row matches)"
        print(f"  {db}: {label} ...", file=sys.stderr)
        counts, seconds, cpu, mib = import_file(rt, principal, head, ImportOptions(mode="skip", batch_size=batch))
        out.append((db, label, counts.done, seconds, cpu, mib, f"skipped {counts.skipped:,}, failed {counts.failed:,}"))
    for fmt in ("csv", "xlsx") if exports else ():
        print(f"  {db}: export {fmt} ...", file=sys.stderr)
        target = Path(tmp) / f"export.{fmt}"
        n, seconds, cpu, mib = export_to(rt, principal, fmt, target)
        out.append((db, f"export {fmt.upper()}", n, seconds, cpu, mib, f"{target.stat().st_size / 2**20:.1f} MiB file"))
    rt.engine.dispose()
    return out, rt


def profile(url: str, tmp: str, batch: int, seed: int) -> None:
    rt, principal = build(url, tmp)
    small = Path(tmp) / "small.csv"
    write_csv(small, 5000, seed + 1)
    profiler = cProfile.Profile()
    profiler.enable()
    import_file(rt, principal, small, ImportOptions(batch_size=batch))
    profiler.disable()
    pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
    rt.engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="also run on this PostgreSQL database (WIPED)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--skip-rows", type=int, default=2000, help="rows of the mode-skip phase (0: none)")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="only cProfile a 5,000-row import with dedup on")
    parser.add_argument("--no-sqlite", action="store_true", help="only the --database-url database")
    parser.add_argument("--no-export", action="store_true", help="imports only")
    args = parser.parse_args(argv)
    results: list[Row] = []
    load = os.getloadavg()
    urls = ([] if args.no_sqlite and args.database_url else [None]) + ([args.database_url] if args.database_url else [])
    for url in urls:
        tmp = tempfile.mkdtemp(prefix="metacrm-bench-import-")
        try:
            if url:
                engine = sa.create_engine(normalise_url(url))
                with engine.begin() as conn:
                    conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
                    conn.exec_driver_sql("CREATE SCHEMA public")
                engine.dispose()
            db_url = url or f"sqlite:///{tmp}/bench.db"
            if args.profile:
                profile(db_url, tmp, args.batch, args.seed)
                return
            print(f"metacrm import/export benchmark: {args.rows:,} customer rows, batch {args.batch}, "
                  f"{'PostgreSQL' if url else 'SQLite'}", file=sys.stderr)
            rows, _ = run_database(db_url, tmp, args.rows, args.skip_rows, args.batch, args.seed, not args.no_export)
            results += rows
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nmetacrm import/export: {args.rows:,} generated customers (half Chinese, half English names), "
          f"batch {args.batch}; load average {load[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end, "
          f"{os.cpu_count()} CPUs\n")
    print(f"{'db':<10} {'phase':<52} {'rows':>8} {'seconds':>8} {'rows/s':>8} {'cpu s':>7} {'rows/cpu-s':>10} "
          f"{'peak MiB':>9}  notes")
    for db, label, n, seconds, cpu, mib, notes in results:
        print(f"{db:<10} {label:<52} {n:>8,} {seconds:>8.1f} {n / seconds:>8,.0f} {cpu:>7.1f} {n / cpu:>10,.0f} "
              f"{mib:>9.1f}  {notes}")
    on = next((r for r in results if r[0] == "sqlite" and "dedup on" in r[1]), None)
    if on is None:
        return
    wall, per_cpu = on[2] / on[3], on[2] / on[4]
    print(f"\ntarget: import with dedup on > {TARGET:,} rows/s on SQLite: {wall:,.0f} rows/s wall-clock "
          f"({'PASS' if wall > TARGET else 'FAIL'}), {per_cpu:,.0f} rows per CPU-second "
          f"({'PASS' if per_cpu > TARGET else 'FAIL'})")


if __name__ == "__main__":
    main()
