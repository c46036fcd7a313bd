"""Which column goes into which field: suggested from field names and their en/zh labels,
overridable by the user with a `{column header: field name | null}` mapping.

A header is compared in a normalised form (NFKC, so full-width ＩＤ is ID; case, spaces,
underscores, punctuation and the `*` a template puts on required columns removed). It
matches a field's name, either label, or either label without the entity's own label in
front ("客户名称" on customer is also just "名称", "Customer name" also "name"). What is
still unmatched gets a close-spelling guess (difflib), never a field already taken.
"""
from __future__ import annotations

import difflib
import re
import unicodedata
from typing import Any, Mapping

from metacrm.metadata.model import Field

from ..access import Access
from ..catalog import EntityRuntime
from ..errors import BadRequest

#: Field types a flat file can't carry (child rows, polymorphic links, computed values).
NOT_IMPORTABLE = frozenset({"table", "reference", "formula", "autonumber"})
#: System fields a file may set: `id` picks the record to update, `owner` assigns it.
SYSTEM_COLUMNS = ("id", "owner")
NOISE = re.compile(r"[\s_\-*./:：()（）\[\]【】]+")
#: How close an unmatched header must be spelled to a field's key to be suggested.
GUESS_CUTOFF = 0.84


def normalise(text: str) -> str:
    return NOISE.sub("", unicodedata.normalize("NFKC", str(text)).casefold())


def importable_fields(rt: EntityRuntime, access: Access) -> list[Field]:
    """The fields a file may fill for this principal, in the entity's order (`id` and
    `owner` first): writable, storable in a cell, and not read-only or hidden for them."""
    entity = rt.entity
    out = [f for f in entity.system_fields if f.name in SYSTEM_COLUMNS and (f.name != "owner" or entity.ownership)]
    for f in entity.active_fields:
        if f.writable and f.type not in NOT_IMPORTABLE and f.name not in access.readonly \
                and f.name not in access.hidden:
            out.append(f)
    return out


def _keys(field: Field, entity_labels: tuple[str, ...]) -> set[str]:
    keys = {normalise(field.name), normalise(field.label.en), normalise(field.label.zh)}
    for label in (field.label.en, field.label.zh):
        for prefix in entity_labels:
            key, pre = normalise(label), normalise(prefix)
            if pre and key.startswith(pre) and len(key) > len(pre):
                keys.add(key[len(pre):])
    return {k for k in keys if k}


def suggest_mapping(headers: list[str], rt: EntityRuntime, access: Access) -> dict[str, str | None]:
    """`{header: field name or None}` for every header, each field used at most once."""
    fields = importable_fields(rt, access)
    entity_labels = (rt.entity.label.en, rt.entity.label.zh)
    by_key: dict[str, str] = {}
    for f in fields:
        for key in _keys(f, entity_labels):
            by_key.setdefault(key, f.name)
    taken: set[str] = set()
    out: dict[str, str | None] = {}
    for header in headers:  # exact matches first, so a guess never steals a field
        name = by_key.get(normalise(header))
        out[header] = name if name and name not in taken else None
        if out[header]:
            taken.add(out[header])  # type: ignore[arg-type]
    for header in headers:
        if out[header] is None and normalise(header):
            free = [k for k, n in by_key.items() if n not in taken]
            guess = difflib.get_close_matches(normalise(header), free, n=1, cutoff=GUESS_CUTOFF)
            if guess:
                out[header] = by_key[guess[0]]
                taken.add(by_key[guess[0]])
    return out


def resolve_mapping(headers: list[str], override: Any, rt: EntityRuntime,
                    access: Access) -> dict[int, Field]:
    """Column index → field: the suggestion with the user's `override` applied.

    The override names columns by their header; a field of null ignores the column. An
    unknown header or field, a field that can't be imported, or two columns into one
    field is a 400 naming it."""
    mapping: dict[str, str | None] = suggest_mapping(headers, rt, access)
    if override is not None:
        if not isinstance(override, Mapping) or not all(
                isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in override.items()):
            raise BadRequest('mapping must be a JSON object {"column header": "field name" or null}.')
        unknown = [k for k in override if k not in mapping]
        if unknown:
            raise BadRequest(f"mapping names column(s) not in the file: {', '.join(unknown)}.",
                             {"mapping": [f"No column '{k}'." for k in unknown]})
        explicit = {v for v in override.values() if v}
        # A field the user maps explicitly leaves any suggested column it was on.
        mapping = {h: (None if f in explicit else f) for h, f in mapping.items()}
        mapping.update(override)
    fields = {f.name: f for f in importable_fields(rt, access)}
    out: dict[int, Field] = {}
    used: dict[str, str] = {}
    for index, header in enumerate(headers):
        name = mapping.get(header)
        if not name:
            continue
        field = fields.get(name)
        if field is None:
            what = "hidden or read-only for you" if rt.entity.field(name) is not None else "not a field"
            raise BadRequest(f"mapping: column '{header}' → '{name}': {what} of {rt.name} that can be imported.",
                             {"mapping": [f"'{name}' can't be imported."]})
        if name in used:
            raise BadRequest(f"mapping: columns '{used[name]}' and '{header}' both go into '{name}'.",
                             {"mapping": [f"'{name}' is mapped twice."]})
        used[name] = header
        out[index] = field
    if not out:
        raise BadRequest("No column of the file matches a field; send a mapping "
                         '{"column header": "field name"}.', {"mapping": ["No column is mapped."]})
    return out
