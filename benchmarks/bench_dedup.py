#!/usr/bin/env python
"""Dedup benchmark: the cost of a duplicate check at 10,000 vs 1,000,000 customers, and the
engine's precision and recall on a generated set with known duplicates, in one run.

    python benchmarks/bench_dedup.py                       # SQLite in a temp dir (a few minutes)
    python benchmarks/bench_dedup.py --large 200000        # a quicker run
    python benchmarks/bench_dedup.py --database-url 'postgresql://postgres@/bench?host=/tmp/pg&port=5433'

A PostgreSQL database given with --database-url is WIPED (its public schema is dropped).

What it does: builds the default CRM (its customer rules: company_name ≥ 0.92 or phone),
bulk-loads --small customers with their match keys (Core inserts; the keys come from the
same `key_rows` the record service writes), times `find_matches` for --probes candidate
records (half duplicates of loaded customers, half new), then loads customers up to
--large and times the same probes again. Precision/recall: --pairs loaded companies each
get one known duplicate (legal-form and bracketed-city variants, full-width forms, swapped
words, typos in English names, phone-format variants) and there are as many non-duplicate
probes (new companies, including near misses one brand character apart); every probe's
matches are compared with the truth, at both sizes. Exits 0 whatever the outcome.
"""
from __future__ import annotations

import argparse
import os
import datetime as dt
import random
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Iterator

import sqlalchemy as sa

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for bench_records
from bench_records import reset_postgres  # noqa: E402 - one way to wipe a throwaway database

from metacrm.app import create_app  # noqa: E402
from metacrm.runtime import accounts, systables
from metacrm.runtime.dedup import find_matches
from metacrm.runtime.dedup.keys import key_rows, specs_for
from metacrm.runtime.dedup.normalise import normalise
from metacrm.runtime.metastore import install_seed
from metacrm.runtime.migrate import upgrade_system_tables
from metacrm.runtime.web.context import EXTENSION

UTC = dt.timezone.utc
BATCH = 10_000

# ------------------------------------------------------------------------ names and phones

CITIES = ["北京", "上海", "深圳", "广州", "杭州", "成都", "武汉", "南京", "苏州", "西安", "重庆", "天津", "青岛", "厦门"]
BRAND_CHARS = ("华信宏达鼎盛创新远航金桥中科恒通博远瑞丰天成嘉禾锐联汇盛世东方卓越云帆百川星河海纳智源国泰安康"
               "永福兴隆昌德瑞祥泰和明辉光耀英杰腾飞龙凤鹏程万里久长青松翠柏紫荆玉兰梅竹菊清源润泽宁静致远"
               "启航开拓振兴华夏神州北辰南岳西岭东篱春晓夏荷秋实冬阳晨曦暮云朝霞碧波蓝天白鹭金鼎银河铭品"
               "尚优佳美精诚信达通顺捷迅速宇宙坤乾元亨利贞")
CN_WORDS = ["科技", "信息技术", "网络科技", "软件", "机械制造", "精密仪器", "电子", "新材料", "投资管理",
            "融资租赁", "资产管理", "教育科技", "医疗器械", "生物科技", "医药", "置业", "房地产开发", "物业管理",
            "商贸", "百货", "物流", "供应链管理", "能源", "新能源科技", "电力工程", "咨询", "企业管理咨询",
            "人力资源服务", "实业", "贸易"]
CN_FORMS = ["有限公司", "股份有限公司", "有限责任公司", "集团有限公司"]
#: Brand syllables (consonant, vowel, consonant): 665 of them, so two made-up brands are
#: rarely one letter apart — a pair that is can't be told from a typo, by a person either.
SYLLABLES = [a + v + z for a in "bcdfghjklmnprstvwxz" for v in "aeiou" for z in "lnrsxkm"]
EN_WORDS = ["River", "Peak", "Star", "Bridge", "Oak", "Crest", "Stone", "Wave", "Field", "Gate", "Point", "Line",
            "Harbor", "Summit", "Pacific", "Northern", "Silver", "Golden", "Bright", "Pioneer", "Evergreen",
            "Redwood", "Atlas", "Crystal", "Orion", "Maple", "Falcon", "Nova", "Vertex", "Horizon"]
EN_KINDS = ["Technologies", "Software", "Systems", "Digital", "Manufacturing", "Industries", "Capital",
            "Logistics", "Trading", "Consulting", "Energy", "Healthcare", "Pharma", "Materials", "Foods",
            "Retail", "Properties", "Education", "Networks", "Solutions"]
EN_FORMS = ["Co., Ltd.", "Inc.", "Corp.", "Company Limited", "LLC", "Ltd", "GmbH", "Limited"]


def _brand(rng: random.Random) -> str:
    return "".join(rng.choice(BRAND_CHARS) for _ in range(rng.choice((2, 2, 3))))


def _en_brand(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 3)))).title()


@dataclass
class Company:
    chinese: bool
    city: str
    brand: str
    word: str
    form: str

    @property
    def name(self) -> str:
        if self.chinese:
            return f"{self.city}{self.brand}{self.word}{self.form}"
        return f"{self.brand} {self.word} {self.form}"


def new_company(rng: random.Random, seen: set[str]) -> Company:
    """A company whose normalised name nobody generated before."""
    while True:
        if rng.random() < 0.6:
            c = Company(True, rng.choice(CITIES), _brand(rng), rng.choice(CN_WORDS), rng.choice(CN_FORMS))
        else:
            c = Company(False, "", _en_brand(rng), f"{rng.choice(EN_WORDS)} {rng.choice(EN_KINDS)}",
                        rng.choice(EN_FORMS))
        core = normalise("company_name", c.name)
        if core and core not in seen:
            seen.add(core)
            return c


def new_phone(rng: random.Random, seen: set[str]) -> str:
    while True:
        p = f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"
        if p not in seen:
            seen.add(p)
            return p


def _typo(rng: random.Random, text: str) -> str:
    """One typing slip inside a word of more than three letters: swap, drop, double or replace."""
    spots = [i for i in range(1, len(text) - 1) if text[i].isalpha() and text[i - 1].isalpha() and text[i + 1].isalpha()]
    i = rng.choice(spots)
    kind = rng.choice(("swap", "drop", "double", "replace"))
    if kind == "swap":
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    if kind == "drop":
        return text[:i] + text[i + 1:]
    if kind == "double":
        return text[:i] + text[i] + text[i:]
    return text[:i] + rng.choice("aeiourstln") + text[i + 1:]


def _full_width(text: str) -> str:
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ("\u3000" if ch == " " else ch) for ch in text)


def duplicate_of(rng: random.Random, c: Company, phone: str, fresh_phone: str) -> tuple[str, str, str]:
    """(kind, name, phone) of a record that is the same company as `c`, spelled otherwise."""
    if c.chinese:
        kind = rng.choice(("legal_form", "bracket_city", "full_width", "phone_format", "no_city"))
        other_form = rng.choice([f for f in CN_FORMS if f != c.form])
        if kind == "legal_form":
            return kind, f"{c.city}{c.brand}{c.word}{other_form}", fresh_phone
        if kind == "bracket_city":
            return kind, f"{c.brand}（{c.city}）{c.word}{c.form}", fresh_phone
        if kind == "full_width":
            return kind, f"{c.city}{c.brand}{c.word}{c.form}（{c.city}）", fresh_phone
        if kind == "no_city":
            return kind, f"{c.brand}{c.word}{other_form}", fresh_phone
        return kind, f"{c.brand}{c.word}", f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}"
    kind = rng.choice(("legal_form", "swapped_words", "typo", "full_width", "phone_format", "case"))
    other_form = rng.choice([f for f in EN_FORMS if f != c.form])
    if kind == "legal_form":
        return kind, f"{c.brand} {c.word} {other_form}", fresh_phone
    if kind == "swapped_words":
        first, second = c.word.split(" ", 1)
        return kind, f"{second} {c.brand} {first} {c.form}", fresh_phone
    if kind == "typo":
        return kind, f"{_typo(rng, c.brand + ' ' + c.word)} {c.form}", fresh_phone
    if kind == "full_width":
        return kind, _full_width(c.name), fresh_phone
    if kind == "case":
        return kind, c.name.upper().replace(",", " ,"), fresh_phone
    return kind, f"{c.brand} {c.word}", f"0086-{phone[:3]}-{phone[3:7]}-{phone[7:]}"


def near_miss(rng: random.Random, c: Company, seen: set[str]) -> str:
    """Another company one brand character (Chinese) or one word (English) apart from `c`."""
    while True:
        if c.chinese:
            i = rng.randrange(len(c.brand))
            brand = c.brand[:i] + rng.choice(BRAND_CHARS) + c.brand[i + 1:]
            name = f"{c.city}{brand}{c.word}{c.form}"
        else:
            first, second = c.word.split(" ", 1)
            name = f"{c.brand} {rng.choice(EN_WORDS)} {second} {c.form}" if rng.random() < 0.5 else \
                f"{c.brand} {first} {rng.choice(EN_KINDS)} {c.form}"
        core = normalise("company_name", name)
        if core not in seen:
            seen.add(core)
            return name


# ------------------------------------------------------------------------ building the instance

@dataclass
class Instance:
    rt: Any
    catalog: Any
    principal: Any
    admin_id: int
    table: sa.Table
    specs: frozenset[tuple[str, str]]


def build(url: str, instance_path: str) -> Instance:
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "TESTING": True, "INSTANCE_PATH": instance_path})
    rt = app.extensions[EXTENSION]
    upgrade_system_tables(rt.engine)
    with rt.engine.begin() as conn:
        admin = accounts.create_user(conn, "admin", "admin-pass-1", display_name="Admin", is_admin=True,
                                     roles=("admin",))
        install_seed(conn, "crm-default", by=admin.id)
    rt.invalidate()
    catalog = rt.catalog()
    with rt.engine.connect() as conn:
        principal = accounts.principal_for(conn, accounts.get_account(conn, admin.id))
    return Instance(rt, catalog, principal, admin.id, catalog.entities["customer"].table,
                    specs_for(catalog.mset, "customer"))


def bulk_load(inst: Instance, rows: Iterator[tuple[str, str]], start_id: int, now: dt.datetime) -> int:
    """Insert customers (name, phone) with ids from start_id, plus their match keys, in
    batches with Core, the way a migration tool would; returns the next free id."""
    rid = start_id
    K = systables.dedup_keys
    with inst.rt.engine.begin() as conn:
        batch: list[dict[str, Any]] = []
        keys: list[dict[str, Any]] = []

        def flush() -> None:
            if batch:
                conn.execute(inst.table.insert(), batch)
                conn.execute(K.insert(), keys)
                batch.clear()
                keys.clear()

        for name, phone in rows:
            values = {"name": name, "phone": phone}
            batch.append({"id": rid, "version": 1, "created_at": now, "created_by": inst.admin_id, "updated_at": now,
                          "updated_by": inst.admin_id, "owner": inst.admin_id, "name": name, "phone": phone,
                          "code": f"CUS-B-{rid:07d}", "level": "B", "deal_status": "unsold", "locked": False})
            keys += key_rows("customer", rid, inst.specs, values)
            rid += 1
            if len(batch) >= BATCH:
                flush()
        flush()
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{inst.table.name}', 'id'), {rid})")
    with inst.rt.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")
    return rid


# ------------------------------------------------------------------------ measuring

@dataclass
class Probe:
    name: str
    phone: str
    truth: int | None  # the id it duplicates, or None
    kind: str


def time_checks(inst: Instance, probes: list[Probe], rounds: int = 3) -> list[float]:
    """Milliseconds per find_matches call (the best of `rounds` per probe, after a warm-up)."""
    out = []
    with inst.rt.engine.connect() as conn:
        for p in probes[:20]:
            find_matches(conn, inst.catalog, inst.principal, "customer", {"name": p.name, "phone": p.phone}, on="create")
        for p in probes:
            best = float("inf")
            for _ in range(rounds):
                t0 = time.perf_counter()
                find_matches(conn, inst.catalog, inst.principal, "customer", {"name": p.name, "phone": p.phone},
                             on="create")
                best = min(best, time.perf_counter() - t0)
            out.append(best * 1000)
    return out


def quality(inst: Instance, probes: list[Probe]) -> tuple[float, float, dict[str, tuple[int, int]]]:
    """Precision, recall, and per duplicate kind (found, total)."""
    tp = fp = fn = 0
    kinds: dict[str, list[int]] = {}
    with inst.rt.engine.connect() as conn:
        for p in probes:
            found = {m.id for m in find_matches(conn, inst.catalog, inst.principal, "customer",
                                                {"name": p.name, "phone": p.phone}, on="create")
                     if m.entity == "customer"}
            truth = {p.truth} if p.truth is not None else set()
            tp += len(found & truth)
            fp += len(found - truth)
            fn += len(truth - found)
            if p.truth is not None:
                k = kinds.setdefault(p.kind, [0, 0])
                k[0] += p.truth in found
                k[1] += 1
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, {k: (v[0], v[1]) for k, v in sorted(kinds.items())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--large", type=int, default=1_000_000)
    ap.add_argument("--probes", type=int, default=400)
    ap.add_argument("--pairs", type=int, default=2000, help="known duplicate pairs (and as many non-duplicates)")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args(argv)
    if args.pairs > args.small:
        ap.error("--pairs can't exceed --small")

    tmp = tempfile.mkdtemp(prefix="mc-bench-dedup-")
    url = args.database_url or f"sqlite:///{tmp}/bench.db"
    if url.startswith(("postgres://", "postgresql://")):
        reset_postgres(url)
    rng = random.Random(args.seed)
    now = dt.datetime.now(UTC)
    seconds: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        inst = build(url, f"{tmp}/instance")
        seconds["install crm-default"] = time.perf_counter() - t0

        seen_names: set[str] = set()
        seen_phones: set[str] = set()
        base = [(new_company(rng, seen_names), new_phone(rng, seen_phones)) for _ in range(args.small)]
        t0 = time.perf_counter()
        next_id = bulk_load(inst, ((c.name, p) for c, p in base), 1, now)
        seconds[f"load {args.small:,} customers + keys"] = time.perf_counter() - t0

        probes: list[Probe] = []
        for i in rng.sample(range(args.small), args.pairs):
            c, phone = base[i]
            kind, name, dup_phone = duplicate_of(rng, c, phone, new_phone(rng, seen_phones))
            probes.append(Probe(name, dup_phone, i + 1, kind))
        for j in range(args.pairs):
            if j % 2:
                c, _ = base[rng.randrange(args.small)]
                probes.append(Probe(near_miss(rng, c, seen_names), new_phone(rng, seen_phones), None, "near_miss"))
            else:
                probes.append(Probe(new_company(rng, seen_names).name, new_phone(rng, seen_phones), None, "new"))
        timing = rng.sample(probes, min(args.probes, len(probes)))

        small_ms = time_checks(inst, timing)
        small_q = quality(inst, probes)

        def more() -> Iterator[tuple[str, str]]:
            for _ in range(args.large - args.small):
                yield new_company(rng, seen_names).name, new_phone(rng, seen_phones)

        t0 = time.perf_counter()
        bulk_load(inst, more(), next_id, now)
        seconds[f"generate + load {args.large - args.small:,} more customers + keys"] = time.perf_counter() - t0
        large_ms = time_checks(inst, timing)
        large_q = quality(inst, probes)
        with inst.rt.engine.connect() as conn:
            n_customers = conn.execute(sa.select(sa.func.count()).select_from(inst.table)).scalar_one()
            n_keys = conn.execute(sa.select(sa.func.count()).select_from(systables.dedup_keys)).scalar_one()
    finally:
        if not args.database_url:
            shutil.rmtree(tmp, ignore_errors=True)

    db = "PostgreSQL" if url.startswith("postgres") else "SQLite"
    print(f"\nmetacrm dedup benchmark — {db}, Python {sys.version.split()[0]}, seed {args.seed}")
    for what, s in seconds.items():
        print(f"  {what}: {s:.1f} s")
    print(f"  at the end: {n_customers:,} customers, {n_keys:,} key rows "
          f"({n_keys / n_customers:.1f} per customer)\n")
    med_s, med_l = statistics.median(small_ms), statistics.median(large_ms)
    p95 = lambda xs: sorted(xs)[int(len(xs) * 0.95) - 1]  # noqa: E731
    ratio = med_l / med_s
    rows = [
        ("check per record, median", f"{med_s:.2f} ms", f"{med_l:.2f} ms", f"{ratio:.2f}", "< 2",
         "PASS" if ratio < 2 else "FAIL"),
        ("check per record, p95", f"{p95(small_ms):.2f} ms", f"{p95(large_ms):.2f} ms",
         f"{p95(large_ms) / p95(small_ms):.2f}", "", ""),
        ("precision", f"{small_q[0]:.4f}", f"{large_q[0]:.4f}", "", ">= 0.95",
         "PASS" if min(small_q[0], large_q[0]) >= 0.95 else "FAIL"),
        ("recall", f"{small_q[1]:.4f}", f"{large_q[1]:.4f}", "", ">= 0.95",
         "PASS" if min(small_q[1], large_q[1]) >= 0.95 else "FAIL"),
    ]
    head = ("measure", f"{args.small:,} customers", f"{args.large:,} customers", "ratio", "target", "")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, tuple("-" * w for w in widths), *rows]:
        print("  " + "  ".join(str(v).ljust(w) for v, w in zip(r, widths)))
    print(f"\n  {len(timing)} timed probes (best of 3 each); quality over {args.pairs:,} known duplicates and "
          f"{args.pairs:,} non-duplicates ({args.pairs // 2:,} near misses)")
    print("  recall by kind of duplicate (at the large size): " + ", ".join(
        f"{k} {f}/{t}" for k, (f, t) in large_q[2].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
