"""Semantic checks of workflow documents (pass 2): states, transitions, approvals, actions.

A workflow is a state machine over one select field of its entity. These checks make sure
the machine can actually run: its states are options of that field, there is one place to
start, every transition and approval outcome lands on a known state, every state can be
reached, and approvers, roles and fields named by steps exist.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

from .documents import pointer
from .semantic_context import Context, EntityInfo, Problem, did_you_mean, expression_problems, quoted


def _states(data: Mapping[str, Any]) -> list[str]:
    return [s["name"] for s in data["states"]]


def _unknown_state(name: str, states: list[str]) -> str:
    return f"unknown state '{name}'{did_you_mean(name, states)} (states: {quoted(states)})"


def check_states(ctx: Context, data: Mapping[str, Any]) -> Iterator[Problem]:
    """State names are unique and options of `state_field`; exactly one initial state."""
    seen: set[str] = set()
    for i, state in enumerate(data["states"]):
        if state["name"] in seen:
            yield pointer("states", i, "name"), f"duplicate state '{state['name']}'"
        seen.add(state["name"])
    initial = [i for i, s in enumerate(data["states"]) if s.get("initial")]
    if not initial:
        yield "/states", "no initial state (mark exactly one state with \"initial\": true)"
    for i in initial[1:]:
        names = quoted([data["states"][k]["name"] for k in initial])
        yield pointer("states", i, "initial"), f"more than one initial state ({names})"

    problem = ctx.entity_problem(data["entity"])
    if problem:
        yield "/entity", problem
    entity = ctx.entity(data["entity"])
    if entity is None:
        return
    name = data["state_field"]
    problem = entity.problem(name, system=False)
    field = entity.active(name)
    if problem:
        yield "/state_field", problem
    elif field is None or field.get("type") != "select":
        yield "/state_field", f"state_field '{name}' must be a select field, not {field.get('type') if field else 'this'}"
    else:
        options = {o["value"] for o in field.get("options") or ()}
        default = field.get("default")
        if default is not None and len(initial) == 1 and default != data["states"][initial[0]]["name"]:
            yield "/state_field", (f"field '{name}' defaults to '{default}' but the workflow starts in "
                                   f"'{data['states'][initial[0]]['name']}' (new records start in the initial state)")
        for i, state in enumerate(data["states"]):
            if state["name"] not in options:
                yield pointer("states", i, "name"), (
                    f"state '{state['name']}' is not an option of field '{name}' of entity '{entity.name}'"
                )


def check_transitions(ctx: Context, data: Mapping[str, Any]) -> Iterator[Problem]:
    """from/to/approval name known things; roles exist; `when` is a valid expression.

    Two transitions may share a name only when they start from different states: the API
    fires a transition by name, so an overlap would make the name ambiguous.
    """
    states = _states(data)
    approvals = data.get("approvals") or {}
    entity = ctx.entity(data["entity"])
    by_name: dict[str, set[str]] = {}
    for i, t in enumerate(data["transitions"]):
        for j, source in enumerate(t["from"]):
            if source not in states:
                yield pointer("transitions", i, "from", j), _unknown_state(source, states)
        if t["to"] not in states:
            yield pointer("transitions", i, "to"), _unknown_state(t["to"], states)
        if "approval" in t and t["approval"] not in approvals:
            yield pointer("transitions", i, "approval"), (
                f"unknown approval '{t['approval']}'{did_you_mean(t['approval'], approvals)}"
            )
        for j, role in enumerate(t.get("roles") or ()):
            problem = ctx.role_problem(role)
            if problem:
                yield pointer("transitions", i, "roles", j), problem
        if "when" in t and entity is not None:
            yield from expression_problems(ctx, entity, t["when"], pointer("transitions", i, "when"))
        overlap = by_name.setdefault(t["name"], set()) & set(t["from"])
        if overlap:
            yield pointer("transitions", i, "name"), (
                f"duplicate transition '{t['name']}' from {quoted(sorted(overlap))}"
            )
        by_name[t["name"]].update(t["from"])


def check_reachable(ctx: Context, data: Mapping[str, Any]) -> Iterator[Problem]:
    """Every state can be reached from the initial state.

    Edges are the transitions plus, for a transition with an approval, the approval's
    `on_approve`/`on_reject` outcomes (reached from the transition's target state).
    """
    states = _states(data)
    initial = [s["name"] for s in data["states"] if s.get("initial")]
    if len(initial) != 1:
        return  # reported by check_states; reachability from "no start" means nothing
    approvals = data.get("approvals") or {}
    edges: dict[str, set[str]] = {}
    for t in data["transitions"]:
        targets = {t["to"]}
        chain = approvals.get(t.get("approval")) if t.get("approval") else None
        if chain:
            targets |= {chain[k] for k in ("on_approve", "on_reject") if k in chain}
        for source in t["from"]:
            edges.setdefault(source, set()).update(targets)
    reached = {initial[0]}
    todo = [initial[0]]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in reached:
                reached.add(nxt)
                todo.append(nxt)
    for i, name in enumerate(states):
        if name not in reached:
            yield pointer("states", i, "name"), f"state '{name}' can't be reached from the initial state '{initial[0]}'"


def check_approvals(ctx: Context, data: Mapping[str, Any]) -> Iterator[Problem]:
    """Approval outcomes are states; steps' approvers, editable fields and conditions exist."""
    states = _states(data)
    entity = ctx.entity(data["entity"])
    for chain_name, chain in (data.get("approvals") or {}).items():
        base = ("approvals", chain_name)
        for key in ("on_approve", "on_reject"):
            if key in chain and chain[key] not in states:
                yield pointer(*base, key), _unknown_state(chain[key], states)
        if "fallback_approvers" in chain:
            yield from _approver_problems(ctx, entity, chain["fallback_approvers"], base + ("fallback_approvers",))
        seen: set[str] = set()
        for i, step in enumerate(chain["steps"]):
            here = base + ("steps", i)
            if step["name"] in seen:
                yield pointer(*here, "name"), f"duplicate step '{step['name']}'"
            seen.add(step["name"])
            yield from _approver_problems(ctx, entity, step["approvers"], here + ("approvers",))
            if "cc" in step:
                yield from _approver_problems(ctx, entity, step["cc"], here + ("cc",))
            if entity is None:
                continue
            if "when" in step:
                yield from expression_problems(ctx, entity, step["when"], pointer(*here, "when"))
            for j, name in enumerate(step.get("editable_fields") or ()):
                problem = entity.problem(name, system=False)
                if problem:
                    yield pointer(*here, "editable_fields", j), problem


def _approver_problems(ctx: Context, entity: EntityInfo | None, spec: Any, base: tuple[Any, ...]) -> Iterator[Problem]:
    """One approver spec or a list of them: roles exist, `field` approvers name user fields."""
    specs = list(enumerate(spec)) if isinstance(spec, list) else [(None, spec)]
    for i, one in specs:
        here = base if i is None else base + (i,)
        for key in ("role", "until_role"):
            if key in one:
                problem = ctx.role_problem(one[key])
                if problem:
                    yield pointer(*here, key), problem
        if one["type"] == "field" and entity is not None:
            name = one["field"]
            problem = entity.problem(name)
            if problem:
                yield pointer(*here, "field"), problem
            elif not entity.is_user_field(name):
                yield pointer(*here, "field"), f"approver field '{name}' must be a user field"


def check_actions(ctx: Context, data: Mapping[str, Any]) -> Iterator[Problem]:
    """Actions fire on a known state or transition and set/create real fields."""
    known = _states(data) + [t["name"] for t in data["transitions"]]
    entity = ctx.entity(data["entity"])
    for i, action in enumerate(data.get("actions") or ()):
        if action["on"] not in known:
            yield pointer("actions", i, "on"), (
                f"unknown state or transition '{action['on']}'{did_you_mean(action['on'], known)}"
            )
        if entity is not None:
            for key in action.get("set") or {}:
                problem = entity.problem(key, system=False)
                if problem:
                    yield pointer("actions", i, "set", key), problem
        if entity is not None and action.get("rollup"):
            yield from _rollup_problems(ctx, entity, action["rollup"], pointer("actions", i, "rollup"))
        create = action.get("create")
        if create:
            problem = ctx.entity_problem(create["entity"])
            target = ctx.entity(create["entity"])
            if problem:
                yield pointer("actions", i, "create", "entity"), problem
            elif target is not None:
                for key in create.get("values") or {}:
                    problem = target.problem(key)
                    if problem:
                        yield pointer("actions", i, "create", "values", key), problem


def _rollup_problems(ctx: Context, entity: Any, spec: Mapping[str, Any], here: str) -> Iterator[Problem]:
    """A rollup reads a lookup of this entity, sums a number of it, and writes a number
    (and `set` expressions) on the lookup's target."""
    lookup = entity.active(spec["lookup"])
    if lookup is None or lookup.get("type") != "lookup":
        yield here + "/lookup", (entity.problem(spec["lookup"], system=False)
                                 or f"field '{spec['lookup']}' of entity '{entity.name}' is not a lookup")
        return
    for key in ("sum",):
        problem = entity.problem(spec[key])
        if problem:
            yield f"{here}/{key}", problem
        elif entity.value_kind(spec[key]) not in ("integer", "number"):
            yield f"{here}/{key}", f"field '{spec[key]}' is not a number"
    for name in spec.get("where") or {}:
        problem = entity.problem(name)
        if problem:
            yield f"{here}/where/{name}", problem
    target = ctx.entity(lookup.get("target"))
    if target is None:
        return
    problem = target.problem(spec["field"], system=False)
    if problem:
        yield f"{here}/field", problem
    elif target.value_kind(spec["field"]) not in ("integer", "number"):
        yield f"{here}/field", f"field '{spec['field']}' of entity '{target.name}' is not a number"
    for name, source in (spec.get("set") or {}).items():
        problem = target.problem(name, system=False)
        if problem:
            yield f"{here}/set/{name}", problem
        else:
            yield from expression_problems(ctx, target, source, f"{here}/set/{name}")


#: Names the engine answers while an approval is pending (runtime/workflow/machine.py DECISIONS).
DECISIONS = ("approve", "reject", "reassign", "add_signer")


def check_engine_rules(ctx: Context, data: Mapping[str, Any]) -> Iterator[Problem]:
    """What the engine needs beyond a well-formed machine: one workflow per state field,
    transition names unambiguous across an entity's workflows, decisions not shadowed,
    editable fields that aren't the state, and actions whose values and recipients work."""
    for other in ctx.workflows:
        if other is data or other.get("entity") != data["entity"] or other.get("name") == data["name"]:
            continue
        if other.get("state_field") == data["state_field"]:
            yield "/state_field", (f"workflow '{other.get('name')}' already drives field '{data['state_field']}' "
                                   f"of entity '{data['entity']}'")
        theirs = {t.get("name") for t in other.get("transitions") or ()}
        for i, t in enumerate(data["transitions"]):
            if t["name"] in theirs:
                yield pointer("transitions", i, "name"), (
                    f"transition '{t['name']}' is also in workflow '{other.get('name')}' of entity "
                    f"'{data['entity']}'; the API fires transitions by name, so names must differ")
    waiting = {t["to"] for t in data["transitions"] if t.get("approval")}
    for i, t in enumerate(data["transitions"]):
        if t["name"] in DECISIONS and waiting & set(t["from"]):
            yield pointer("transitions", i, "name"), (
                f"'{t['name']}' is an approval decision in state(s) {quoted(sorted(waiting & set(t['from'])))}; "
                "name this transition differently")
    for chain_name, chain in (data.get("approvals") or {}).items():
        for i, step in enumerate(chain["steps"]):
            for j, name in enumerate(step.get("editable_fields") or ()):
                if name == data["state_field"]:
                    yield pointer("approvals", chain_name, "steps", i, "editable_fields", j), (
                        "the state field changes only through transitions")
    entity = ctx.entity(data["entity"])
    if entity is None:
        return
    for i, action in enumerate(data.get("actions") or ()):
        for key, value in (action.get("set") or {}).items():
            if key == data["state_field"]:
                yield pointer("actions", i, "set", key), "the state field changes only through transitions"
            elif isinstance(value, str) and not value.startswith("$"):
                yield from expression_problems(ctx, entity, value, pointer("actions", i, "set", key))
            elif isinstance(value, str) and value not in PLACEHOLDERS:
                yield pointer("actions", i, "set", key), (
                    f"unknown placeholder {value!r} (one of {quoted(PLACEHOLDERS)})")
        for j, who in enumerate(action.get("notify") or ()):
            problem = _recipient_problem(ctx, entity, who)
            if problem:
                yield pointer("actions", i, "notify", j), problem
        target = ctx.entity((action.get("create") or {}).get("entity"))
        for key, value in ((action.get("create") or {}).get("values") or {}).items():
            if isinstance(value, str) and not value.startswith("$") and target is not None:
                yield from expression_problems(ctx, entity, value, pointer("actions", i, "create", "values", key))
            elif isinstance(value, str) and value.startswith("$") and value not in PLACEHOLDERS:
                yield pointer("actions", i, "create", "values", key), (
                    f"unknown placeholder {value!r} (one of {quoted(PLACEHOLDERS)})")


#: Values an action may set besides expressions (strings) and literals (numbers, booleans, null).
PLACEHOLDERS = ("$now", "$today", "$me", "$my_department", "$submitter", "$record", "$id")


def _recipient_problem(ctx: Context, entity: EntityInfo, who: str) -> str | None:
    """notify: "submitter", "$me", "role:<role>", "user:<username>", or a user field."""
    if who in ("submitter", "$me") or who.startswith("user:"):
        return None
    if who.startswith("role:"):
        return ctx.role_problem(who[5:])
    if entity.is_user_field(who):
        return None
    return (f"can't notify '{who}': expected a user field of '{entity.name}', 'submitter', '$me', "
            "'role:<role>' or 'user:<username>'")


#: The workflow checks, in the order their errors are listed.
WORKFLOW_CHECKS = (check_states, check_transitions, check_reachable, check_approvals, check_actions,
                   check_engine_rules)
