#!/usr/bin/env python
"""Dashboard benchmark: every report, and the /dashboard page, over a year of sales data.

Builds a fresh database with the default CRM and a generated company — ~20 users in a
sales department with three teams, 2,000 customers, 1,000 leads, 3,000 opportunities,
1,200 contracts (3,600 lines), 1,500 receivables, 10,000 follow-ups and a year of
monthly targets — bulk-inserted with Core (seconds, not the record service's minutes).
Then times each report over the last 12 months (the whole data set) for an admin
(everything), a sales director (the whole department as subordinates) and a rep
(their own records), and the /dashboard page for each, and prints medians.

    python benchmarks/bench_reports.py                  # SQLite in a temp dir
    python benchmarks/bench_reports.py --database-url 'postgresql://postgres@/bench?host=/tmp/pg&port=5433'
    python benchmarks/bench_reports.py --customers 2000 --repeat 7

A PostgreSQL database given with --database-url is WIPED (public schema dropped).
Target: every report < 300 ms. Exits 0 whatever the outcome: PASS/FAIL is reported.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_records import reset_postgres  # noqa: E402

from metacrm.app import create_app  # noqa: E402
from metacrm.runtime import accounts, systables  # noqa: E402
from metacrm.runtime.clock import utcnow  # noqa: E402
from metacrm.runtime.metastore import install_seed  # noqa: E402
from metacrm.runtime.migrate import upgrade_system_tables  # noqa: E402
from metacrm.runtime.reports import REPORTS, run_report  # noqa: E402
from metacrm.runtime.web.context import EXTENSION  # noqa: E402

TARGET_MS = 300.0
PERIOD = "last_12_months"
STAGES = (("initial", 20), ("needs", 15), ("proposal", 15), ("negotiation", 10), ("won", 25), ("lost", 10),
          ("invalid", 5))
PICK = {"level": ("A", "B", "C"), "industry": ("it", "manufacturing", "finance", "education", "retail", "services"),
        "source": ("promotion", "search_engine", "referral", "exhibition", "phone_inquiry", "cold_call")}


def build(url: str, instance: str, customers: int, seed: int) -> tuple[Any, dict[str, int]]:
    """A fresh instance with the generated company; (app, {who: user id})."""
    rng = random.Random(seed)
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "TESTING": True, "INSTANCE_PATH": instance})
    rt = app.extensions[EXTENSION]
    upgrade_system_tables(rt.engine)
    now = utcnow().replace(microsecond=0)
    who: dict[str, int] = {}
    with rt.engine.begin() as conn:
        admin = accounts.create_user(conn, "admin", "admin-pass-1", display_name="Admin", is_admin=True,
                                     roles=("admin",))
        install_seed(conn, "crm-default", by=admin.id)
        d, u = systables.departments, systables.users
        sales = conn.execute(d.insert().values(name="销售部", created_at=now).returning(d.c.id)).scalar_one()
        teams = [conn.execute(d.insert().values(name=f"销售{n}组", parent_id=sales, created_at=now)
                              .returning(d.c.id)).scalar_one() for n in "一二三"]
        pw = conn.execute(sa.select(u.c.password_hash).where(u.c.id == admin.id)).scalar_one()

        def person(name: str, dept: int, manager: int | None, role: str) -> int:
            uid = conn.execute(u.insert().values(username=name, password_hash=pw, display_name=name, language="zh",
                                                 is_admin=False, active=True, department_id=dept,
                                                 manager_id=manager, created_at=now).returning(u.c.id)).scalar_one()
            conn.execute(systables.user_roles.insert().values(user_id=uid, role=role))
            return uid

        who["director"] = person("director", sales, None, "sales_manager")
        conn.execute(d.update().where(d.c.id == sales).values(head_id=who["director"]))
        reps: list[tuple[int, int]] = []
        for i, team in enumerate(teams):
            lead = person(f"lead{i + 1}", team, who["director"], "sales_manager")
            conn.execute(d.update().where(d.c.id == team).values(head_id=lead))
            reps.append((lead, team))
            reps += [(person(f"rep{i + 1}{k}", team, lead, "sales"), team) for k in range(1, 6)]
        who["rep"] = reps[1][0]
        who["admin"] = admin.id
    rt.invalidate()
    catalog = rt.catalog()
    tables = {name: catalog.entities[name].table for name in (
        "product", "customer", "lead", "opportunity", "contract", "contract_line", "receivable", "followup",
        "sales_target")}
    year_ago = now - dt.timedelta(days=365)

    def when() -> dt.datetime:
        return year_ago + dt.timedelta(seconds=rng.randrange(365 * 86400))

    def owned(at: dt.datetime) -> dict[str, Any]:
        owner, dept = rng.choice(reps)
        return {"created_at": at, "updated_at": at, "owner": owner, "department": dept, "created_by": owner,
                "updated_by": owner}

    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in tables}
    for i in range(20):
        rows["product"].append({"name": f"产品{i:02d}", "code": f"P{i:03d}", "category": rng.choice(
            ("software", "hardware", "service", "training")), "price": Decimal(rng.choice((800, 2000, 9800, 36000))),
            "on_sale": True, "created_at": now, "updated_at": now})
    for i in range(customers):
        at = when()
        rows["customer"].append({"name": f"客户{i:05d}有限公司", **{k: rng.choice(v) for k, v in PICK.items()},
                                 "deal_status": "unsold", **owned(at)})
    for i in range(customers // 2):
        rows["lead"].append({"name": f"联系人{i}", "company": f"线索公司{i}", "status": "new",
                             "source": rng.choice(PICK["source"]), **owned(when())})
    for name in ("product", "customer", "lead"):
        _insert(rt, tables[name], rows[name])
    with rt.engine.connect() as conn:
        cust = [(r.id, r.owner, r.department) for r in conn.execute(
            sa.select(tables["customer"].c.id, tables["customer"].c.owner, tables["customer"].c.department))]
        products = [(r.id, r.price) for r in conn.execute(sa.select(tables["product"].c.id,
                                                                    tables["product"].c.price))]

    def of(customer: tuple[int, int, int], at: dt.datetime) -> dict[str, Any]:
        return {"customer": customer[0], "owner": customer[1], "department": customer[2], "created_at": at,
                "updated_at": at, "created_by": customer[1], "updated_by": customer[1]}

    stages, weights = zip(*STAGES)
    for i in range(int(customers * 1.5)):
        c = rng.choice(cust)
        rows["opportunity"].append({"name": f"商机{i}", "stage": rng.choices(stages, weights)[0],
                                    "amount": Decimal(rng.randrange(10, 500) * 1000), **of(c, when())})
    contracts = []
    for i in range(int(customers * 0.6)):
        c, at = rng.choice(cust), when()
        lines = [(p, q, price) for p, price in rng.sample(products, 3) for q in [rng.randrange(1, 20)]]
        amount = sum(Decimal(q) * price for _, q, price in lines)
        status = rng.choices(("approved", "pending", "draft"), (80, 10, 10))[0]
        rows["contract"].append({"number": f"HT-B-{i:06d}", "name": f"合同{i}", "approval_status": status,
                                 "sign_date": at.date(), "amount": amount, **of(c, at)})
        contracts.append((lines, c, at, amount, status))
    _insert(rt, tables["opportunity"], rows["opportunity"])
    _insert(rt, tables["contract"], rows["contract"])
    with rt.engine.connect() as conn:
        ids = list(conn.execute(sa.select(tables["contract"].c.id).order_by(tables["contract"].c.id)).scalars())
    for cid, (lines, c, at, amount, status) in zip(ids, contracts):
        for idx, (p, q, price) in enumerate(lines):
            rows["contract_line"].append({"parent_id": cid, "idx": idx, "product": p, "quantity": Decimal(q),
                                          "price": price, "discount": Decimal(0), "amount": Decimal(q) * price,
                                          "created_at": at, "updated_at": at})
        if status == "approved" and len(rows["receivable"]) < customers * 0.75:
            paid = at + dt.timedelta(days=rng.randrange(0, 60))
            if paid < now:
                rows["receivable"].append({"number": f"HK-B-{cid:06d}", "contract": cid, "customer": c[0],
                                           "received_at": paid.date(), "amount": (amount * Decimal("0.6")).quantize(
                                               Decimal("0.01")), "approval_status": "approved", **of(c, paid)})
    for i in range(customers * 5):
        c, at = rng.choice(cust), when()
        rows["followup"].append({"subject_entity": "customer", "subject_id": c[0], "type": "call",
                                 "content": "电话跟进", "owner": c[1], "department": c[2], "created_at": at,
                                 "updated_at": at, "created_by": c[1], "updated_by": c[1]})
    first = dt.date(year_ago.year, year_ago.month, 1)
    for m in range(13):
        month = dt.date(first.year + (first.month - 1 + m) // 12, (first.month - 1 + m) % 12 + 1, 1)
        for uid, _ in reps:
            for metric in ("contract_amount", "receivable_amount"):
                rows["sales_target"].append({"year": month.year, "month": month.month, "user": uid, "metric": metric,
                                             "amount": Decimal(200000), "subject": f"user:{uid}",
                                             "created_at": now, "updated_at": now})
    for name in ("contract_line", "receivable", "followup", "sales_target"):
        _insert(rt, tables[name], rows[name])
    if rt.engine.dialect.name == "postgresql":
        with rt.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with rt.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    sizes = {k: len(v) for k, v in rows.items()}
    print("data:", ", ".join(f"{v:,} {k}" for k, v in sizes.items()), f"; {len(reps) + 2} users")
    return app, who


def _insert(rt: Any, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    with rt.engine.begin() as conn:
        for start in range(0, len(rows), 2000):
            conn.execute(table.insert(), rows[start:start + 2000])


def timed(fn: Any, repeat: int) -> float:
    fn()  # warm-up (catalog, caches)
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", help="PostgreSQL URL of a THROWAWAY database (wiped)")
    ap.add_argument("--customers", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=7, help="timed runs per measurement (median)")
    ap.add_argument("--seed", type=int, default=8)
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="bench-reports-")
    url = args.database_url or f"sqlite:///{tmp}/bench.db"
    if args.database_url:
        reset_postgres(url)
    try:
        t0 = time.perf_counter()
        app, who = build(url, os.path.join(tmp, "instance"), args.customers, args.seed)
        print(f"built in {time.perf_counter() - t0:.1f} s on {sa.engine.make_url(url).get_backend_name()}")
        rt = app.extensions[EXTENSION]
        people = {}
        with rt.engine.connect() as conn:
            for role, uid in who.items():
                people[role] = accounts.principal_for(conn, accounts.get_account(conn, uid))
        with rt.engine.begin() as conn:
            tokens = {role: accounts.create_token(conn, uid, "bench")["token"] for role, uid in who.items()}
        client = app.test_client()
        order = ("admin", "director", "rep")
        results: dict[str, dict[str, float]] = {}
        for name in REPORTS:
            results[name] = {}
            for role in order:
                def run(role: str = role, name: str = name) -> None:
                    with rt.engine.connect() as conn:
                        run_report(conn, rt.catalog(conn), people[role], name, {"period": PERIOD}, rt.timezone,
                                   utcnow())
                results[name][role] = timed(run, args.repeat)
        for label, query in (("/dashboard (this month)", ""), ("/dashboard (last 12 months)", f"?period={PERIOD}")):
            results[label] = {}
            for role in order:
                def page(role: str = role, query: str = query) -> None:
                    r = client.get("/dashboard" + query, headers={"Authorization": f"Bearer {tokens[role]}"})
                    assert r.status_code == 200, r.status_code
                results[label][role] = timed(page, args.repeat)
        print(f"\nmedian of {args.repeat} runs, ms (reports over {PERIOD}; target < {TARGET_MS:.0f} ms per report)")
        print(f"{'report':32} {'admin':>9} {'director':>9} {'rep':>9}  verdict")
        for name, by_role in results.items():
            worst = max(by_role.values())
            verdict = ("PASS" if worst < TARGET_MS else "FAIL") if not name.startswith("/") else "info"
            print(f"{name:32} " + " ".join(f"{by_role[r]:9.1f}" for r in order) + f"  {verdict}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
