#!/usr/bin/env python
"""Data-scope benchmark: what `self_and_subordinates` costs on a list of N (default 100,000)
customers, measured against the same list for an admin (no scope) in one run, on a freshly
built database holding the default CRM, a sales org and the customers it owns.

    python benchmarks/bench_scope.py                       # SQLite in a temp dir
    python benchmarks/bench_scope.py --database-url 'postgresql://postgres@/bench_scope?host=/tmp/pg&port=5433'
    python benchmarks/bench_scope.py --rows 20000 --repeat 9

A PostgreSQL database given with --database-url is WIPED (its `public` schema is dropped
and recreated; the database is created when missing). Only point it at a throwaway DB.

The data and the timing method are bench_records.py's (its helpers are imported): times are
medians over interleaved runs, each round running every variant once in rotating order;
a ratio is the median of the per-round ratios. See benchmarks/README.md.
It exits 0 whatever the outcome: PASS/FAIL is reported, not enforced.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for bench_records

import argparse  # noqa: E402

import metacrm.runtime  # noqa: E402
import datetime as dt  # noqa: E402
import difflib  # noqa: E402
import json  # noqa: E402
import platform as py_platform  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any, Callable  # noqa: E402

import sqlalchemy as sa  # noqa: E402

import bench_records as br  # noqa: E402
from bench_records import ENTITY, UTC, ListCase, Row, StatementLog  # noqa: E402
from metacrm.app import create_app  # noqa: E402
from metacrm.runtime import accounts, systables  # noqa: E402
from metacrm.runtime.access import access_for, scope_clause  # noqa: E402
from metacrm.runtime.metastore import install_seed  # noqa: E402
from metacrm.runtime.migrate import upgrade_system_tables  # noqa: E402
from metacrm.runtime.org import load_org  # noqa: E402
from metacrm.runtime.query import build_list_query, list_records, parse_list_args, query_context  # noqa: E402
from metacrm.runtime.web.context import EXTENSION  # noqa: E402

PASSWORD = "bench-pass-1"
TEAMS = ["华东销售一部", "华北销售二部", "华南销售三部", "Key Accounts"]
REPS_PER_TEAM = 10
#: The list every variant asks for.
LIST_ARGS = {"filter": json.dumps([["level", "in", ["A", "B"]]]), "sort": "-created_at", "page": "2",
             "page_size": "50"}
LIST_LABEL = "filter level in (A, B), sort=-created_at, page 2, page_size 50"


# ------------------------------------------------------------------------ setting up

@dataclass
class Person:
    account: accounts.Account
    principal: Any
    token: str


@dataclass
class Setup:
    app: Any
    runtime: Any
    catalog: Any
    admin: Person
    director: Person
    lead: Person
    rep: Person
    owners: list[tuple[int, int]]
    n_users: int
    seconds: dict[str, float] = field(default_factory=dict)


def build_instance(url: str, instance_path: str, rows: int, seed: int) -> Setup:
    """The default CRM, an org (a director heading 销售中心, 4 team leads heading a team
    department each, 10 reps per team: manager_id set on everyone), and `rows` customers
    owned by the leads and reps (bench_records.customer_rows: 5 % in the pool, no owner)."""
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench-secret", "TESTING": True,
                      "INSTANCE_PATH": instance_path, "TIMEZONE": "UTC"})
    rt = app.extensions[EXTENSION]
    upgrade_system_tables(rt.engine)
    now = dt.datetime.now(UTC)
    u, d = systables.users, systables.departments
    with rt.engine.begin() as conn:
        admin = accounts.create_user(conn, "admin", "admin-pass-1", display_name="Admin", is_admin=True,
                                     roles=("admin",))
        install_seed(conn, "crm-default", by=admin.id)
        root = conn.execute(d.insert().values(name="销售中心", position=0, created_at=now).returning(d.c.id)).scalar_one()
        teams = [conn.execute(d.insert().values(name=name, parent_id=root, position=i + 1, created_at=now)
                              .returning(d.c.id)).scalar_one() for i, name in enumerate(TEAMS)]
        # One scrypt hash for everyone (slow on purpose); the rest of the org inserted with Core.
        director = accounts.create_user(conn, "director", PASSWORD, display_name="周总", department_id=root,
                                        roles=("sales_manager",))
        pw_hash = conn.execute(sa.select(u.c.password_hash).where(u.c.id == director.id)).scalar_one()

        def person(username: str, name: str, dept: int, manager: int) -> dict[str, Any]:
            return {"username": username, "password_hash": pw_hash, "display_name": name,
                    "language": "en" if name.isascii() else "zh", "is_admin": False, "active": True,
                    "department_id": dept, "manager_id": manager, "created_at": now}

        lead_ids = [conn.execute(u.insert().values(**person(f"lead{i + 1}", f"组长{i + 1}", team, director.id))
                                 .returning(u.c.id)).scalar_one() for i, team in enumerate(teams)]
        conn.execute(u.insert(), [person(f"rep{t * REPS_PER_TEAM + k + 1:02d}", f"销售{t * REPS_PER_TEAM + k + 1}",
                                         team, lead_ids[t])
                                  for t, team in enumerate(teams) for k in range(REPS_PER_TEAM)])
        rep_rows = conn.execute(sa.select(u.c.id, u.c.department_id).where(u.c.username.like("rep%"))
                                .order_by(u.c.id)).all()
        conn.execute(systables.user_roles.insert(), [{"user_id": i, "role": "sales_manager"} for i in lead_ids]
                     + [{"user_id": r.id, "role": "sales"} for r in rep_rows])
        conn.execute(d.update().where(d.c.id == root).values(head_id=director.id))
        for team, lead_id in zip(teams, lead_ids):
            conn.execute(d.update().where(d.c.id == team).values(head_id=lead_id))
        owners = [(i, t) for i, t in zip(lead_ids, teams)] + [(r.id, r.department_id) for r in rep_rows]
        n_users = conn.execute(sa.select(sa.func.count()).select_from(u)).scalar_one()
    rt.invalidate()
    catalog = rt.catalog()
    seconds["install (system tables, crm-default, org)"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    table = catalog.entities[ENTITY].table
    data, per_year = br.customer_rows(random.Random(seed), rows, now, owners, admin.id)
    seconds["generate rows"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    br.bulk_load(rt, catalog, table, data, per_year)
    seconds[f"bulk insert {rows:,} rows + ANALYZE"] = time.perf_counter() - t0
    del data

    def make(user_id: int) -> Person:
        with rt.engine.begin() as conn:
            account = accounts.get_account(conn, user_id)
            token = accounts.create_token(conn, user_id, "bench")["token"]
            return Person(account, accounts.principal_for(conn, account), token)

    return Setup(app, rt, catalog, make(admin.id), make(director.id), make(lead_ids[0]), make(rep_rows[0].id),
                 owners, n_users, seconds)


# ------------------------------------------------------------------------ the variants

@dataclass
class Result(Row):
    """A bench_records Row whose other side is named (admin, hand-written, ...)."""

    baseline: str = "hand"


def scope_ids(p: Any) -> list[int]:
    return sorted({p.principal.user_id, *p.principal.subordinate_ids})


def hand_cases(s: Setup) -> dict[str, ListCase]:
    """The list hand-written in Core: (page, count), built per call like bench_records'."""
    t = s.catalog.entities[ENTITY].table
    tm = systables.team_members
    lead_ids = scope_ids(s.lead)
    lead_id, rep_id = s.lead.principal.user_id, s.rep.principal.user_id
    level = lambda: t.c.level.in_(["A", "B"])  # noqa: E731
    order = lambda: [t.c.created_at.desc(), t.c.id.desc()]  # noqa: E731

    def shared(user_id: int) -> sa.ColumnElement[bool]:
        return t.c.id.in_(sa.select(tm.c.record_id).where(tm.c.entity == ENTITY, tm.c.user_id == user_id,
                                                          tm.c.access.in_(["read", "write"])))

    return {
        "in": ListCase("in", "owner IN (lead + subordinates)", LIST_ARGS, br.hand_statements(
            t, lambda: sa.and_(level(), t.c.owner.in_(lead_ids)), order, page=2)),
        "in+team": ListCase("in+team", "owner IN (...) OR id IN (team members)", LIST_ARGS, br.hand_statements(
            t, lambda: sa.and_(level(), sa.or_(t.c.owner.in_(lead_ids), shared(lead_id))), order, page=2)),
        "all": ListCase("all", "no scope", LIST_ARGS, br.hand_statements(t, level, order, page=2)),
        "self": ListCase("self", "owner = rep", LIST_ARGS, br.hand_statements(
            t, lambda: sa.and_(level(), t.c.owner == rep_id), order, page=2)),
    }


def service_call(s: Setup, who: Person) -> Callable[[], dict[str, Any]]:
    rt, catalog, principal = s.runtime, s.catalog, who.principal

    def service() -> dict[str, Any]:
        with rt.engine.connect() as conn:
            return list_records(conn, catalog, principal, ENTITY, parse_list_args(LIST_ARGS), rt.timezone)
    return service


def http_call(s: Setup, who: Person) -> Callable[[], bytes]:
    client = s.app.test_client()
    url = f"/api/v1/records/{ENTITY}?{urllib.parse.urlencode(LIST_ARGS)}"
    headers = {"Authorization": f"Bearer {who.token}"}

    def http() -> bytes:
        resp = client.get(url, headers=headers)
        if resp.status_code != 200:
            raise RuntimeError(f"GET {url}: {resp.status_code} {resp.get_data(as_text=True)[:300]}")
        return resp.data
    return http


def principal_calls(s: Setup, who: Person) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """principal_for(conn, account) on a fresh pooled connection, and what it costs without
    the org closure (its roles SELECT alone)."""
    engine, account = s.runtime.engine, who.account
    ur = systables.user_roles

    def full() -> Any:
        with engine.connect() as conn:
            return accounts.principal_for(conn, account)

    def roles_only() -> Any:
        with engine.connect() as conn:
            return frozenset(conn.execute(sa.select(ur.c.role).where(ur.c.user_id == account.id)).scalars())
    return full, roles_only


def mc_statements(s: Setup, who: Person) -> tuple[sa.Select[Any], sa.Select[Any]]:
    """The page and count selects list_records() builds for `who` (as it builds them)."""
    rt = s.catalog.get(ENTITY)
    access = access_for(s.catalog.mset, who.principal, rt.entity)
    scope = scope_clause(rt.table, rt.entity, who.principal, access, "read")
    ctx = query_context(who.principal, s.runtime.timezone, access.unreadable)
    return build_list_query(rt, None, parse_list_args(LIST_ARGS), ctx, scope)[:2]


def sql_diff(dialect: Any, mine: tuple[Any, ...], theirs: tuple[Any, ...]) -> str:
    texts = [(str(a.compile(dialect=dialect)), str(b.compile(dialect=dialect))) for a, b in zip(mine, theirs)]
    parts = []
    for a, b in texts:
        sm = difflib.SequenceMatcher(None, a.split(), b.split(), autojunk=False)
        for op, i1, i2, j1, j2 in sm.get_opcodes():
            if op != "equal":
                parts.append(f"metacrm '{' '.join(a.split()[max(0, i1 - 2):i2])}' vs hand "
                             f"'{' '.join(b.split()[max(0, j1 - 2):j2])}'")
    return "identical" if not parts else "differs: " + "; ".join(dict.fromkeys(parts))


def bench(s: Setup, repeat: int, warmup: int) -> tuple[list[Result], list[str]]:
    rt = s.runtime
    hands = hand_cases(s)
    lead, admin, rep = service_call(s, s.lead), service_call(s, s.admin), service_call(s, s.rep)
    hand = {k: (lambda c=c: br.hand_list(rt.engine, c)) for k, c in hands.items()}
    http_lead, http_admin = http_call(s, s.lead), http_call(s, s.admin)
    pf_lead, roles_lead = principal_calls(s, s.lead)

    # ---- checks: the variants return what they should
    notes: list[str] = []
    r_lead, r_admin, r_rep = lead(), admin(), rep()
    ok = {k: br.same_result(r, hand[k]()) for k, r in (("in", r_lead), ("in+team", r_lead), ("all", r_admin),
                                                       ("self", r_rep))}
    ok["http"] = br.same_result(json.loads(http_lead()), r_lead) and br.same_result(json.loads(http_admin()), r_admin)
    p = s.lead.principal
    notes.append(f"lead {s.lead.account.username} (roles {', '.join(sorted(p.roles))}): "
                 f"{len(p.subordinate_ids)} subordinates, IN list of {len(scope_ids(s.lead))} owners; "
                 f"sees {r_lead['total']:,} of the admin's {r_admin['total']:,} matching rows "
                 f"({r_lead['total'] / max(1, r_admin['total']):.1%}); rep {s.rep.account.username} "
                 f"(scope self) sees {r_rep['total']:,}")
    notes.append("same page and total: " + ", ".join(f"{k} {'yes' if v else 'NO!'}" for k, v in ok.items())
                 + " (lead vs hand in / in+team, admin vs hand all, rep vs hand self, HTTP vs service)")
    dialect = rt.engine.dialect
    notes.append("SQL text, lead's list_records vs hand 'in': "
                 + sql_diff(dialect, mc_statements(s, s.lead), hands["in"].statements()))
    notes.append("SQL text, lead's list_records vs hand 'in+team': "
                 + sql_diff(dialect, mc_statements(s, s.lead), hands["in+team"].statements()))
    notes.append("SQL text, admin's list_records vs hand 'all': "
                 + sql_diff(dialect, mc_statements(s, s.admin), hands["all"].statements()))
    with rt.engine.connect() as conn:
        for _ in range(2):
            hits = [conn.execute(stmt).context.cache_hit.name for stmt in mc_statements(s, s.lead)]
    notes.append(f"SQL cache on a repeated call, lead's page/count: {hits[0]}/{hits[1]}")
    log = StatementLog(rt.engine)
    for who, fn in (("lead list_records", lead), ("admin list_records", admin),
                    ("principal_for(lead)", pf_lead), ("HTTP GET with token, lead", http_lead)):
        notes.append(f"    statements per call, {who}: {', '.join(log.run(fn))}")

    # ---- measuring: three interleaved groups (the ratios compare variants of one group)
    t = br.interleaved({"lead": lead, "admin": admin, "rep": rep, "hand_in": hand["in"],
                        "hand_team": hand["in+team"], "hand_all": hand["all"]}, repeat, warmup)
    tp = br.interleaved({"pf": pf_lead, "roles": roles_lead}, max(repeat, 50), warmup)
    th = br.interleaved({"lead": http_lead, "admin": http_admin}, repeat, warmup)

    def row(label: str, a: tuple[dict[str, list[float]], str], b: tuple[dict[str, list[float]], str],
            baseline: str, target: float | None = None) -> Result:
        (ta, ka), (tb, kb) = a, b
        return Result(label, ta[ka], tb[kb], target, cpu=(ta[ka + ":cpu"], tb[kb + ":cpu"]), baseline=baseline)

    rows = [
        row("a.  list_records(), lead (self_and_subordinates)", (t, "lead"), (t, "admin"),
            "list_records(), admin", 1.5),
        row("a0. database alone: hand IN list vs hand no scope", (t, "hand_in"), (t, "hand_all"), "hand, no scope"),
        row("b.  list_records(), lead", (t, "lead"), (t, "hand_in"), "hand, owner IN (...)"),
        row("b'. list_records(), lead", (t, "lead"), (t, "hand_team"), "hand, IN (...) OR team"),
        row("c.  principal_for(lead): roles + org closure", (tp, "pf"), (tp, "roles"), "roles SELECT alone"),
        row("d.  list_records(), rep (self)", (t, "rep"), (t, "admin"), "list_records(), admin"),
        row("e.  HTTP GET, token, lead", (th, "lead"), (th, "admin"), "HTTP GET, token, admin"),
    ]
    return rows, notes


# ------------------------------------------------------------------------ where the time goes

def med(fn: Callable[[], Any], n: int) -> tuple[float, float]:
    for _ in range(3):
        fn()
    wall, cpu = [], []
    for _ in range(n):
        t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        fn()
        wall.append((time.perf_counter_ns() - t0) / 1e6)
        cpu.append((time.thread_time_ns() - c0) / 1e6)
    return statistics.median(wall), statistics.median(cpu)


def breakdown(s: Setup, repeat: int) -> list[tuple[str, tuple[float, float]]]:
    rt, catalog = s.runtime, s.catalog
    ent = catalog.get(ENTITY)
    mset = catalog.mset
    lead, admin = s.lead.principal, s.admin.principal
    access = access_for(mset, lead, ent.entity)
    req = parse_list_args(LIST_ARGS)
    lead_stmts, admin_stmts = mc_statements(s, s.lead), mc_statements(s, s.admin)

    def run(stmts: tuple[Any, ...]) -> Callable[[], None]:
        def go() -> None:
            with rt.engine.connect() as conn:
                conn.execute(stmts[0]).mappings().all()
                conn.execute(stmts[1]).scalar_one()
        return go

    with rt.engine.connect() as conn:
        org = load_org(conn)
    ur = systables.user_roles

    def roles() -> None:
        with rt.engine.connect() as conn:
            conn.execute(sa.select(ur.c.role).where(ur.c.user_id == lead.user_id)).all()

    def org_queries() -> None:
        with rt.engine.connect() as conn:
            load_org(conn)

    def both(a: Callable[[], Any], b: Callable[[], Any]) -> tuple[tuple[float, float], tuple[float, float]]:
        out = br.interleaved({"a": a, "b": b}, repeat, 3)
        return ((statistics.median(out["a"]), statistics.median(out["a:cpu"])),
                (statistics.median(out["b"]), statistics.median(out["b:cpu"])))

    db_lead, db_admin = both(run(lead_stmts), run(admin_stmts))
    director = s.director.principal
    return [
        ("access_for(): the lead's roles -> rights on customer", med(lambda: access_for(mset, lead, ent.entity), 500)),
        ("scope_clause(): owner IN (...) OR id IN (team members)",
         med(lambda: scope_clause(ent.table, ent.entity, lead, access, "read"), 500)),
        ("build_list_query(), lead (with the scope)",
         med(lambda: build_list_query(ent, None, req, query_context(lead, rt.timezone, access.unreadable),
                                      scope_clause(ent.table, ent.entity, lead, access, "read")), 300)),
        ("build_list_query(), admin (no scope)",
         med(lambda: build_list_query(ent, None, req, query_context(admin, rt.timezone)), 300)),
        ("execute page + count, lead's statements (the database's share)", db_lead),
        ("execute page + count, admin's statements", db_admin),
        ("principal_for: SELECT mc_user_roles on a fresh connection", med(roles, 100)),
        ("principal_for: load_org(), SELECT mc_users + mc_departments, fresh connection", med(org_queries, 100)),
        (f"OrgChart.subordinates(lead) ({len(lead.subordinate_ids)} found)",
         med(lambda: org.subordinates(lead.user_id), 500)),
        (f"OrgChart.subordinates(director) ({len(director.subordinate_ids)} found)",
         med(lambda: org.subordinates(director.user_id), 500)),
        ("OrgChart.child_departments(lead's department)",
         med(lambda: org.child_departments(lead.department_id), 500)),
    ]


def plans(s: Setup) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL, EXPLAIN QUERY PLAN on SQLite, of the page and
    count selects: the lead's (as list_records builds them), the hand-written IN list, the admin's."""
    engine = s.runtime.engine
    pg = engine.dialect.name == "postgresql"
    hands = hand_cases(s)
    out: list[str] = []
    table = s.catalog.entities[ENTITY].table
    owner_ix = sorted(i.name for i in table.indexes if "owner" in [c.name for c in i.columns])
    with engine.connect() as conn:
        for label, stmts in (("lead, list_records (owner IN (...) OR id IN (team members))", mc_statements(s, s.lead)),
                             ("lead, hand-written owner IN (...)", hands["in"].statements()),
                             ("admin, list_records (no scope)", mc_statements(s, s.admin))):
            for which, stmt in zip(("page", "count"), stmts):
                sql = str(stmt.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
                if pg:
                    text = [r[0] for r in conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql)]
                else:
                    text = [r[3] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]
                hits = [n for n in owner_ix if any(n in line for line in text)]
                out.append(f"--- {label}: {which} -- index with owner used: {', '.join(hits) or 'none'}")
                out += ["    " + line for line in text]
    out.insert(0, f"(indexes with owner on {table.name}: {', '.join(owner_ix) or 'none'})")
    return out


# ------------------------------------------------------------------------ reporting

def print_table(rows: list[Result], show_cpu: bool) -> None:
    head = ("operation", "ms", "vs", "vs ms", "ratio", "target", "result", "diff ms") + \
        (("cpu ratio",) if show_cpu else ())
    body = [(r.operation, f"{r.mc_ms:.3f}", r.baseline, f"{r.hand_ms:.3f}", f"{r.ratio:.2f}x",
             f"<= {r.target:g}x" if r.target else "-", r.verdict, f"{r.mc_ms - r.hand_ms:+.3f}")
            + ((f"{r.cpu_ratio:.2f}x" if r.cpu_ratio else "-",) if show_cpu else ()) for r in rows]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    fmt = lambda cells: "  ".join(c.ljust(w) if i in (0, 2) else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    print(fmt(head))
    print("  ".join("-" * w for w in widths))
    for b in body:
        print(fmt(b))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", help="PostgreSQL URL of a THROWAWAY database (its public schema is "
                                           "dropped); default: SQLite in a temporary directory")
    ap.add_argument("--rows", type=int, default=100_000, help="customers to load (default 100000)")
    ap.add_argument("--repeat", type=int, default=30, help="timed rounds per group (default 30)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--no-plans", action="store_true", help="leave out the query plans")
    ap.add_argument("--keep", action="store_true", help="keep the temporary SQLite directory")
    args = ap.parse_args(argv)

    tmp = tempfile.mkdtemp(prefix="metacrm-bench-scope-")
    url = args.database_url or f"sqlite:///{os.path.join(tmp, 'bench.db')}"
    if url.startswith(("postgres://", "postgresql")):
        br.reset_postgres(url)
    try:
        print(f"Building the database ({args.rows:,} customers) ...", flush=True)
        s = build_instance(url, os.path.join(tmp, "instance"), args.rows, args.seed)
        engine = s.runtime.engine
        with engine.connect() as conn:
            n = conn.execute(sa.select(sa.func.count()).select_from(s.catalog.entities[ENTITY].table)).scalar_one()
        print("\n== Environment")
        print(f"database : {engine.dialect.name} ({br.server_version(engine)}), driver {engine.dialect.driver}, "
              f"url {engine.url.render_as_string(hide_password=True)}")
        print(f"rows     : {n:,} customers owned by {len(s.owners)} users (4 leads, {len(s.owners) - 4} reps; 5 % "
              f"unowned); {s.n_users} users in {len(TEAMS) + 1} departments; catalog version {s.catalog.version}")
        print(f"python   : {sys.version.split()[0]} ({py_platform.platform()}), {os.cpu_count()} CPUs")
        print(f"packages : {br.versions()}")
        print(f"code     : {os.path.dirname(metacrm.runtime.__file__)} (the installed metacrm; "
              "pip install -e . from this checkout to measure it)")
        print(f"list     : {LIST_LABEL}")
        print(f"method   : median of {args.repeat} interleaved rounds after {args.warmup} warm-up "
              f"(principal_for: {max(args.repeat, 50)}); a round runs each variant of its group once, "
              "in rotating order")
        print(f"load     : {' / '.join(f'{x:.2f}' for x in os.getloadavg())} (1/5/15 min) on {os.cpu_count()} CPUs "
              "before measuring")
        for step, secs in s.seconds.items():
            print(f"setup    : {step}: {secs:.1f} s")

        rows, notes = bench(s, args.repeat, args.warmup)
        print("\n== Results (ms per operation, medians; ratio = median of the per-round ratios ms / vs ms)")
        print_table(rows, show_cpu=engine.dialect.name == "sqlite")
        print(f"(load average after measuring: {' / '.join(f'{x:.2f}' for x in os.getloadavg())})")
        print("\nwhat the rows measure (every call opens its own pooled connection, as a request does):")
        print(f"  all list rows: {LIST_LABEL}; the principals are built once with principal_for()")
        print("  a   list_records() as the lead (role sales_manager, read scope self_and_subordinates: "
              "owner IN (lead + team) OR")
        print("      id IN (SELECT record_id FROM mc_team_members ...)) vs list_records() as the admin (no scope)")
        print("  a0  the database's part of a: the hand-written IN-list query vs the hand-written unscoped query")
        print("  b   the lead's list_records() vs the same list hand-written in Core with owner IN (...) only")
        print("  b'  as b, the hand-written side adding the team-member OR list_records() sends (same SQL)")
        print("  c   principal_for(conn, lead) (SELECT roles, load_org: SELECT users + departments, the closure in")
        print("      Python) vs its roles SELECT alone (what it cost before data scopes), each on a fresh connection")
        print("  d   list_records() as a rep (role sales, scope self: owner = me OR team) vs as the admin")
        print("  e   GET /api/v1/records/customer?... with 'Authorization: Bearer <token>' (token lookup + UPDATE")
        print("      last_used_at, principal_for, catalog check, list, jsonify) as the lead vs as the admin")
        print("\nchecks:")
        for note in notes:
            print(f"  {note}")
        print("\nspread (ms):")
        for r in rows:
            print(f"  {r.operation} vs {r.baseline}")
            print(f"      this  {br.spread(r.metacrm)}")
            print(f"      vs    {br.spread(r.hand)}")

        print("\n== Where the time goes (median ms, informational)")
        print(f"  {'wall':>9}  {'cpu':>9}")
        for step, (ms, cpu_ms) in breakdown(s, args.repeat):
            print(f"  {ms:9.3f}  {cpu_ms:9.3f}  {step}")

        if not args.no_plans:
            print("\n== Query plans" + (" (EXPLAIN (ANALYZE, BUFFERS), values inlined)"
                                       if engine.dialect.name == "postgresql" else " (EXPLAIN QUERY PLAN)"))
            for line in plans(s):
                print(line)
        engine.dispose()
    finally:
        if args.keep and not args.database_url:
            print(f"\n(kept {tmp})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
