""""Test this rule": the duplicate groups a draft dedup rule would find in the live data.

A published rule has stored keys (`mc_dedup_keys`) and the scan reads them; a draft rule
has none, and writing keys for a rule nobody published would leave rows behind. So the
trial computes the keys in memory over the first SAMPLE records of the entity's live
table (`scan.sample_groups`) and says so on the page: on a larger table a group whose
records lie beyond the sample is not shown.
"""
from __future__ import annotations

from typing import Any, Mapping

import sqlalchemy as sa

from metacrm.runtime.catalog import Catalog
from metacrm.runtime.dedup.rules import rule_from_spec
from metacrm.runtime.dedup.scan import sample_groups
from metacrm.runtime.errors import BadRequest

#: Records read (by id) per trial: keys for 5,000 records take well under a second.
SAMPLE = 5000
#: Groups listed at most.
MAX_GROUPS = 50


def try_rule(conn: sa.Connection, published: Catalog, rule: Mapping[str, Any],
             sample: int = SAMPLE) -> dict[str, Any]:
    """{"groups": [{"score", "records": [{"id", "title"}]}], "sampled", "total_records", "sample"}."""
    spec = rule_from_spec(rule)
    rt = published.entities.get(spec.entity)
    if rt is None or rt.entity.archived:
        raise BadRequest(f"'{spec.entity}' is not published yet: publish it before testing rules on its data.",
                         {"entity": ["Not published yet."]})
    table, entity = rt.table, rt.entity
    groups, read = sample_groups(conn, table, spec, sample)
    total = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
    title = table.c[entity.title_field] if entity.title_field and entity.title_field in table.c else table.c.id
    shown_fields = [c.field for c in spec.conditions if c.field in table.c]
    ids = sorted({i for g, _ in groups[:MAX_GROUPS] for i in g})
    rows = {r.id: r for r in conn.execute(sa.select(table.c.id, title.label("title"),
                                                    *(table.c[f] for f in shown_fields))
                                          .where(table.c.id.in_(ids)))} if ids else {}
    out = []
    for members, score in groups[:MAX_GROUPS]:
        out.append({"score": score, "records": [
            {"id": i, "title": None if rows[i].title is None else str(rows[i].title),
             "values": {f: None if getattr(rows[i], f) is None else str(getattr(rows[i], f)) for f in shown_fields}}
            for i in members if i in rows]})
    missing = sorted({c.field for c in spec.conditions} - set(table.c.keys()))
    return {"entity": spec.entity, "groups": out, "total_groups": len(groups), "sampled": read,
            "total_records": total, "sample": sample, "unpublished_fields": missing}
