"""Workflow metadata compiled into frozen state machines, once per published catalog.

Validation (metadata/semantic_workflow.py) has made sure the machine can run: states
are options of the state field, one is initial, transitions and outcomes land on known
states. This module only indexes the document for the engine.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Mapping

from metacrm.metadata.model import Label

from ..catalog import Catalog

#: Names the approval engine answers while a record waits for a decision (besides the
#: workflow's own transitions): POST .../transitions/<name>.
DECISIONS = ("approve", "reject", "reassign", "add_signer", "withdraw")


@dataclass(frozen=True)
class State:
    name: str
    label: Label
    initial: bool = False
    final: bool = False
    locked: bool = False


@dataclass(frozen=True)
class Transition:
    name: str
    label: Label
    sources: tuple[str, ...]
    to: str
    when: str | None = None
    roles: tuple[str, ...] = ()
    by: str | None = None  # "submitter" | "owner"
    approval: str | None = None


@dataclass(frozen=True)
class Step:
    name: str
    label: Label
    approvers: tuple[Mapping[str, Any], ...]
    mode: str = "any"  # any | all | ratio
    min_approvals: float | None = None
    when: str | None = None
    skip_submitter: bool = False
    on_empty: str | None = None  # approve | escalate (None: escalate when the chain has fallbacks)
    editable_fields: tuple[str, ...] = ()
    cc: tuple[Mapping[str, Any], ...] = ()

    @property
    def ordered(self) -> bool:
        """Consecutive managers decide one after another (and all of them)."""
        return any(a.get("type") == "manager" and (a.get("consecutive") or a.get("until_role"))
                   for a in self.approvers)


@dataclass(frozen=True)
class Chain:
    name: str
    label: Label
    steps: tuple[Step, ...]
    on_approve: str | None = None
    on_reject: str | None = None
    fallback_approvers: tuple[Mapping[str, Any], ...] = ()
    restart_on_resubmit: str = "first"

    def step(self, name: str | None) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)

    def index(self, name: str | None) -> int:
        return next((i for i, s in enumerate(self.steps) if s.name == name), -1)


@dataclass(frozen=True)
class Action:
    on: str
    set: Mapping[str, Any]
    notify: tuple[str, ...]
    create: Mapping[str, Any] | None
    rollup: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Machine:
    name: str
    entity: str
    label: Label
    state_field: str
    states: Mapping[str, State]
    transitions: tuple[Transition, ...]
    chains: Mapping[str, Chain]
    actions: tuple[Action, ...]

    @property
    def initial(self) -> str:
        return next(s.name for s in self.states.values() if s.initial)

    def state(self, name: Any) -> State | None:
        return self.states.get(name) if isinstance(name, str) else None

    def transitions_from(self, state: Any) -> list[Transition]:
        return [t for t in self.transitions if state in t.sources]

    def transition(self, name: str, state: Any) -> Transition | None:
        return next((t for t in self.transitions if t.name == name and state in t.sources), None)

    def actions_on(self, *names: str) -> list[Action]:
        return [a for a in self.actions if a.on in names]


def _specs(value: Any) -> tuple[Mapping[str, Any], ...]:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def _label(value: Any, name: str) -> Label:
    return Label.of(value, name.replace("_", " ").capitalize())


def compile_machine(spec: Mapping[str, Any]) -> Machine:
    states = {s["name"]: State(s["name"], _label(s.get("label"), s["name"]), bool(s.get("initial")),
                               bool(s.get("final")), bool(s.get("locked"))) for s in spec["states"]}
    transitions = tuple(Transition(t["name"], _label(t.get("label"), t["name"]), tuple(t["from"]), t["to"],
                                   t.get("when"), tuple(t.get("roles") or ()), t.get("by"), t.get("approval"))
                        for t in spec["transitions"])
    chains = {}
    for name, c in (spec.get("approvals") or {}).items():
        steps = tuple(Step(s["name"], _label(s.get("label"), s["name"]), _specs(s["approvers"]), s.get("mode", "any"),
                           s.get("min_approvals"), s.get("when"), bool(s.get("skip_submitter")), s.get("on_empty"),
                           tuple(s.get("editable_fields") or ()), _specs(s.get("cc")))
                      for s in c["steps"])
        chains[name] = Chain(name, _label(c.get("label"), name), steps, c.get("on_approve"), c.get("on_reject"),
                             _specs(c.get("fallback_approvers")), c.get("restart_on_resubmit", "first"))
    actions = tuple(Action(a["on"], dict(a.get("set") or {}), tuple(a.get("notify") or ()), a.get("create"),
                           a.get("rollup"))
                    for a in spec.get("actions") or ())
    return Machine(spec["name"], spec["entity"], _label(spec.get("label"), spec["name"]), spec["state_field"],
                   states, transitions, chains, actions)


_cache: dict[int, tuple[Catalog, dict[str, tuple[Machine, ...]]]] = {}
_lock = threading.Lock()


def machines_of(catalog: Catalog, entity: str) -> tuple[Machine, ...]:
    """The workflows of an entity (usually zero or one), compiled once per catalog."""
    cached = _cache.get(catalog.version)
    if cached is None or cached[0] is not catalog:
        by_entity: dict[str, list[Machine]] = {}
        for spec in catalog.mset.workflows.values():
            machine = compile_machine(spec.spec)
            by_entity.setdefault(machine.entity, []).append(machine)
        cached = (catalog, {e: tuple(ms) for e, ms in by_entity.items()})
        with _lock:
            _cache.clear()
            _cache[catalog.version] = cached
    return cached[1].get(entity, ())


def machine_named(catalog: Catalog, entity: str, name: str) -> Machine | None:
    return next((m for m in machines_of(catalog, entity) if m.name == name), None)
