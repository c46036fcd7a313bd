"""Pass 2 of validation: checks that need the whole document set.

The schema pass settles each document's shape; this pass settles how documents fit
together (references, expressions, state machines, permissions). Checks are small
generator functions per kind, listed in `CHECKS`, so adding one is adding a row.

The pass must never crash: a bug in a check is reported as an error on that document
(and logged) instead of escaping as an exception, because callers run validation on
uploads and drafts and must answer with errors, not with a 500.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from .documents import Document, MetadataError, pointer
from .fieldtypes import KIND_KEYS
from .semantic_context import Context, Problem, did_you_mean, quoted
from .semantic_entity import ENTITY_CHECKS
from .semantic_pool import POOL_CHECKS
from .semantic_views import FORM_CHECKS, VIEW_CHECKS
from .semantic_workflow import WORKFLOW_CHECKS

log = logging.getLogger(__name__)

Check = Callable[[Context, Mapping[str, Any]], Iterable[Problem]]

#: Actions a role may grant on every entity (workflow transitions and entity actions add more).
ROLE_ACTIONS = ("create", "read", "update", "delete", "export", "import", "transfer")


def check_dedup(ctx: Context, data: Mapping[str, Any]) -> Iterator[Problem]:
    """The rule's entity and condition fields exist; also_check maps real fields both sides."""
    problem = ctx.entity_problem(data["entity"])
    if problem:
        yield "/entity", problem
    entity = ctx.entity(data["entity"])
    if entity is not None:
        for i, cond in enumerate(data["conditions"]):
            problem = entity.problem(cond["field"], system=False)
            if problem:
                yield pointer("conditions", i, "field"), problem
    for i, other in enumerate(data.get("also_check") or ()):
        problem = ctx.entity_problem(other["entity"])
        if problem:
            yield pointer("also_check", i, "entity"), problem
        target = ctx.entity(other["entity"])
        for ours, theirs in other["fields"].items():
            here = pointer("also_check", i, "fields", ours)
            mine = entity.problem(ours, system=False) if entity is not None else None
            if mine:
                yield here, mine
            theirs_problem = target.problem(theirs, system=False) if target is not None else None
            if theirs_problem:
                yield here, theirs_problem


def check_role(ctx: Context, data: Mapping[str, Any]) -> Iterator[Problem]:
    """Permissions name known entities and actions; field permissions name real fields.

    An action is one of ROLE_ACTIONS, a transition of a workflow on that entity, or one of
    the entity's own `actions` (convert, claim, ...): those are what the API checks.
    """
    for entity_name, actions in (data.get("permissions") or {}).items():
        problem = ctx.entity_problem(entity_name)
        if problem:
            yield pointer("permissions", entity_name), problem
            continue
        entity = ctx.entity(entity_name)
        if entity is None:
            continue
        known = list(ROLE_ACTIONS)
        known += sorted(ctx.transitions_of(entity_name))
        known += [a["name"] for a in entity.data.get("actions") or ()]
        for action in actions:
            if action not in known:
                yield pointer("permissions", entity_name, action), (
                    f"unknown action '{action}' for entity '{entity_name}'{did_you_mean(action, known)}"
                    f" (one of {quoted(known)})"
                )
    for entity_name, fields in (data.get("fields") or {}).items():
        problem = ctx.entity_problem(entity_name)
        if problem:
            yield pointer("fields", entity_name), problem
            continue
        entity = ctx.entity(entity_name)
        if entity is None:
            continue
        for name in fields:
            problem = entity.problem(name, archived_ok=True)
            if problem:
                yield pointer("fields", entity_name, name), problem


#: Every semantic check, by document kind.
CHECKS: dict[str, tuple[Check, ...]] = {
    "entity": ENTITY_CHECKS,
    "form": FORM_CHECKS,
    "view": VIEW_CHECKS,
    "dedup": (check_dedup,),
    "workflow": WORKFLOW_CHECKS,
    "role": (check_role,),
    "pool": POOL_CHECKS,
    "template": (),
}


def check_semantics(valid: Sequence[Document], invalid: Sequence[Document] = ()) -> list[MetadataError]:
    """All semantic problems of `valid` (documents that passed the schema pass).

    `invalid` are the documents that failed it: their names still count as existing, so a
    form on a broken entity isn't also reported as naming an unknown entity.
    """
    try:
        ctx = Context.build(valid, invalid)
    except Exception as exc:  # noqa: BLE001 - see the module docstring
        log.exception("semantic validation: building the context failed")
        return [MetadataError(valid[0].source if valid else "", "", f"internal validation error: {exc!r}")]
    errors = list(duplicate_documents(valid))
    for doc in valid:
        for check in CHECKS.get(doc.kind or "", ()):
            errors.extend(_run(check, ctx, doc))
    return errors


def _run(check: Check, ctx: Context, doc: Document) -> list[MetadataError]:
    """Run one check on one document; a crash becomes an error on that document."""
    found: list[MetadataError] = []
    try:
        for path, message in check(ctx, doc.data):
            found.append(MetadataError(doc.source, path, message))
    except Exception as exc:  # noqa: BLE001 - see the module docstring
        log.exception("semantic check %s crashed on %s", check.__name__, doc.source)
        found.append(MetadataError(doc.source, "", f"internal validation error in {check.__name__}: {exc!r}"))
    return found


def duplicate_documents(docs: Sequence[Document]) -> Iterator[MetadataError]:
    """Two documents of one kind with the same identity (KIND_KEYS): the later one is reported."""
    first: dict[tuple[str, tuple[Any, ...]], Document] = {}
    for doc in docs:
        keys = KIND_KEYS.get(doc.kind or "")
        if not keys:
            continue
        identity = tuple(doc.data.get(k) for k in keys)
        earlier = first.setdefault((doc.kind or "", identity), doc)
        if earlier is not doc:
            shown = "/".join(str(v) for v in identity)
            yield MetadataError(
                doc.source, pointer(keys[-1]), f"duplicate {doc.kind} '{shown}' (first defined in {earlier.source})"
            )
