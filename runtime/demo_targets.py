"""Demo sales targets (业绩目标), so the dashboard's targets panel has something to show.

Called once at the end of the demo load (runtime/demo.py). Targets are set the way a
sales director would: from what each rep and team actually signed over the last twelve
months (a monthly average, raised a little and rounded to ¥10,000), for those months and
the next two, contract amount and receivables. Written through the record service, so
they are validated and audited like any other record.
"""
from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

import sqlalchemy as sa

from . import clock, systables
from .catalog import Runtime
from .org import load_org
from .principal import SYSTEM
from .query import _add_months
from .records import create_record

STEP = Decimal(10000)
#: A target is this much above the monthly average; receivables are this share of it.
STRETCH, RECEIVABLE_SHARE, FLOOR = Decimal("1.15"), Decimal("0.8"), Decimal(30000)
MONTHS_BACK, MONTHS_AHEAD = 12, 2


def _round_up(value: Decimal) -> Decimal:
    return max(FLOOR, (value / STEP).quantize(Decimal(1), rounding=ROUND_CEILING) * STEP)


def load_demo_targets(rt: Runtime) -> int:
    """Create monthly targets for every sales rep and their departments; how many were made
    (0 when the instance has no sales_target entity or targets exist already)."""
    with rt.engine.begin() as conn:
        catalog = rt.catalog(conn)
        if "sales_target" not in catalog.entities or "contract" not in catalog.entities:
            return 0
        targets = catalog.entities["sales_target"].table
        if conn.execute(sa.select(targets.c.id).limit(1)).first() is not None:
            return 0
        org = load_org(conn)
        ur = systables.user_roles
        reps = sorted(set(conn.execute(sa.select(ur.c.user_id).where(ur.c.role == "sales")).scalars()))
        if not reps:
            return 0
        departments: set[int] = set()
        for user in reps:
            if org.department_of.get(user) is not None:
                departments |= org.parent_departments(org.department_of[user])  # type: ignore[arg-type]
        today = clock.utcnow().date()
        first = _add_months(today.replace(day=1), -MONTHS_BACK)
        contract = catalog.entities["contract"].table
        signed = sa.func.coalesce(sa.func.sum(contract.c.amount), 0)
        dated = sa.and_(contract.c.approval_status == "approved", contract.c.sign_date >= first)
        by_owner = dict(conn.execute(sa.select(contract.c.owner, signed).where(dated).group_by(contract.c.owner)).all())
        by_dept = dict(conn.execute(sa.select(contract.c.department, signed).where(dated)
                                    .group_by(contract.c.department)).all())
        monthly = {("user", u): Decimal(by_owner.get(u) or 0) / MONTHS_BACK for u in reps}
        for d in departments:
            total = sum((Decimal(by_dept.get(x) or 0) for x in org.child_departments(d)), Decimal(0))
            monthly[("department", d)] = total / MONTHS_BACK
        made = 0
        months = [_add_months(first, i) for i in range(MONTHS_BACK + MONTHS_AHEAD + 1)]
        for (kind, sid), average in sorted(monthly.items()):
            contract_goal = _round_up(average * STRETCH)
            for month in months:
                for metric, amount in (("contract_amount", contract_goal),
                                       ("receivable_amount", _round_up(contract_goal * RECEIVABLE_SHARE))):
                    create_record(conn, catalog, SYSTEM, "sales_target", {
                        "year": month.year, "month": month.month, kind: sid, "metric": metric,
                        "amount": str(amount)}, dedup_on=None)
                    made += 1
        return made


__all__ = ["load_demo_targets"]
