"""Statements and time per transition request (submit, approve) vs a plain PATCH, over HTTP.

Run from the repository root: `python benchmarks/bench_workflow.py` (SQLite) or with
`URL=postgresql://...` (that database is emptied first)."""
import os, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import sqlalchemy as sa
from metacrm.app import create_app
from metacrm.runtime import accounts
from metacrm.runtime.metastore import install_template
from metacrm.runtime.migrate import upgrade_system_tables
from metacrm.runtime.web.context import EXTENSION
from tests.support import package, ADMIN
from tests import workflow_support as ws

tmp = tempfile.mkdtemp()
url = os.environ.get("URL") or f"sqlite:///{tmp}/b.db"
if url.startswith("postgresql"):
    from tests.conftest import _reset_postgres
    _reset_postgres(url)

def make_app(docs):
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "x", "TESTING": True, "INSTANCE_PATH": tmp})
    rt = app.extensions[EXTENSION]
    upgrade_system_tables(rt.engine)
    with rt.engine.begin() as conn:
        accounts.create_user(conn, ADMIN[0], ADMIN[1], is_admin=True, roles=("admin",))
        install_template(conn, package(docs))
    rt.invalidate()
    return app

c = ws.company(make_app, ws.workflow([{"name": "manager", "approvers": {"type": "manager"}},
                                      {"name": "fin", "approvers": {"type": "role", "role": "finance"}, "when": "amount >= 100000"}]))
engine = c.app.extensions[EXTENSION].engine
counter = {"n": 0}
@sa.event.listens_for(engine, "before_cursor_execute")
def _count(*a):
    counter["n"] += 1
deals = [c.deal(amount="150000") for _ in range(50)]
for name, who in (("submit", "rep"), ("approve", "lead"), ("approve", "fin1")):
    counter["n"] = 0
    t0 = time.perf_counter()
    for d in deals:
        c.fire(who, d["id"], name)
    dt = (time.perf_counter() - t0) / len(deals)
    print(f"{name} by {who}: {counter['n'] / len(deals):.1f} statements per request (incl. auth), {dt * 1000:.1f} ms")
counter["n"] = 0
t0 = time.perf_counter()
for d in deals[:20]:
    cur = c.as_("rep").get(f"/api/v1/records/deal/{d['id']}").get_json()
counter["n"] = 0
t0 = time.perf_counter()
fresh = [c.deal() for _ in range(20)]
counter["n"] = 0
t0 = time.perf_counter()
for d in fresh:
    r = c.as_("rep").patch(f"/api/v1/records/deal/{d['id']}", json={"version": d["version"], "note": "x"})
print(f"plain PATCH: {counter['n'] / 20:.1f} statements per request, {(time.perf_counter()-t0)/20*1000:.1f} ms")
