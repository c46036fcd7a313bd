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
    """{"groups": [{"score", "records": [{"entity", "id", "title", "values"}]}], "total_groups",
    "sampled", "total_records", "sample", "unpublished_fields"} — `sampled` and
    `total_records` count the rule's own entity; `also_checked` the others read."""
    spec = rule_from_spec(rule)
    own = published.entities.get(spec.entity)
    if own is None or own.entity.archived:
        raise BadRequest(f"'{spec.entity}' is not published yet: publish it before testing rules on its data.",
                         {"entity": ["Not published yet."]})
    tables = {name: rt.table for name, rt in published.entities.items()
              if not rt.entity.archived and (name == spec.entity or any(o.entity == name for o in spec.also_check))}
    groups, read = sample_groups(conn, tables, spec, sample)
    shown = groups[:MAX_GROUPS]
    fields = {spec.entity: [c.field for c in spec.conditions]}
    for other in spec.also_check:
        fields[other.entity] = [other.fields[c.field] for c in spec.conditions if c.field in other.fields]
    rows: dict[tuple[str, int], Any] = {}
    for entity in {e for members, _ in shown for e, _ in members}:
        rt = published.entities[entity]
        t, title_field = rt.table, rt.entity.title_field
        title = t.c[title_field] if title_field and title_field in t.c else t.c.id
        cols = [f for f in fields.get(entity, []) if f in t.c]
        ids = sorted({i for members, _ in shown for e, i in members if e == entity})
        for r in conn.execute(sa.select(t.c.id, title.label("title"), *(t.c[f] for f in cols)).where(t.c.id.in_(ids))):
            rows[(entity, r.id)] = (r, cols)
    out = []
    for members, score in shown:
        records = []
        for entity, i in members:
            if (entity, i) not in rows:
                continue
            r, cols = rows[(entity, i)]
            records.append({"entity": entity, "id": i, "title": None if r.title is None else str(r.title),
                            "values": {f: None if getattr(r, f) is None else str(getattr(r, f)) for f in cols}})
        out.append({"score": score, "records": records})
    table = own.table
    total = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
    missing = sorted({c.field for c in spec.conditions} - set(table.c.keys()))
    return {"entity": spec.entity, "groups": out, "total_groups": len(groups), "sampled": read.get(spec.entity, 0),
            "also_checked": {e: n for e, n in read.items() if e != spec.entity},
            "total_records": total, "sample": sample, "unpublished_fields": missing}
