"""Immutable model objects built from validated metadata documents.

Everything above this layer (compiler, record service, queries, screens) reads these
frozen objects instead of raw dicts, so a typo in a key is an AttributeError at the
source rather than a silent `None` three layers up. Keys that a later engine owns
(workflow steps, dedup conditions, role matrices) are kept as frozen mappings in `spec`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Sequence

from .documents import Document
from .fieldtypes import FIELD_TYPES, SYSTEM_FIELD_VALUES, system_fields_of


def freeze(value: Any) -> Any:
    """Deep-freeze parsed JSON: dicts become read-only mappings, lists become tuples."""
    if isinstance(value, dict):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """The inverse of `freeze`: plain dicts and lists again (for JSON output)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class Label:
    """A bilingual label. A plain string in metadata means the same text in both languages."""

    en: str
    zh: str

    @classmethod
    def of(cls, value: Any, fallback: str = "") -> "Label":
        if isinstance(value, Mapping):
            en = value.get("en") or value.get("zh") or fallback
            zh = value.get("zh") or value.get("en") or fallback
            return cls(str(en), str(zh))
        if value:
            return cls(str(value), str(value))
        return cls(fallback, fallback)

    def get(self, language: str = "en") -> str:
        return self.zh if language == "zh" else self.en

    def to_dict(self) -> dict[str, str]:
        return {"en": self.en, "zh": self.zh}


def _humanize(name: str) -> str:
    return name.replace("_", " ").capitalize()


@dataclass(frozen=True)
class Option:
    value: str
    label: Label
    color: str | None = None


@dataclass(frozen=True)
class Field:
    """One field of an entity. `spec` keeps the whole source dict for keys read elsewhere."""

    name: str
    type: str
    label: Label
    help: Label | None = None
    required: bool = False
    unique: bool = False
    default: Any = None
    max_length: int | None = None
    min: float | None = None
    max: float | None = None
    pattern: str | None = None
    options: tuple[Option, ...] = ()
    searchable: bool = False
    visible_when: str | None = None
    required_when: str | None = None
    readonly_when: str | None = None
    readonly: bool = False
    archived: bool = False
    target: str | None = None
    targets: tuple[str, ...] = ()
    expression: str | None = None
    result_type: str | None = None
    precision: int | None = None
    scale: int | None = None
    format: str | None = None
    renamed_from: str | None = None
    system: bool = False
    spec: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), compare=False, repr=False)

    @property
    def value_kind(self) -> str:
        """The kind of value held (text, number, integer, date, ...); formulas take their result's."""
        if self.system:
            return SYSTEM_FIELD_VALUES[self.name]
        if self.type == "formula":
            return FIELD_TYPES[self.result_type or "text"].value
        return FIELD_TYPES[self.type].value

    @property
    def stored(self) -> bool:
        return self.system or FIELD_TYPES[self.type].stored

    @property
    def writable(self) -> bool:
        return not self.system and not self.readonly and FIELD_TYPES[self.type].writable

    @property
    def option_values(self) -> tuple[str, ...]:
        return tuple(o.value for o in self.options)


@dataclass(frozen=True)
class IndexSpec:
    fields: tuple[str, ...]
    unique: bool = False
    name: str | None = None


@dataclass(frozen=True)
class ValidationRule:
    rule: str
    message: Label


@dataclass(frozen=True)
class Entity:
    name: str
    label: Label
    fields: tuple[Field, ...]
    title_field: str = "id"
    ownership: bool = False
    child_of: str | None = None
    naming: Mapping[str, Any] | None = None
    validations: tuple[ValidationRule, ...] = ()
    indexes: tuple[IndexSpec, ...] = ()
    archived: bool = False
    actions: tuple[Mapping[str, Any], ...] = ()
    #: Navigation group and icon for the screens (`"app": "customers"`); None: "other".
    app: str | None = None
    icon: str | None = None
    spec: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {f.name: f for f in self.all_fields})

    @property
    def system_fields(self) -> tuple[Field, ...]:
        return tuple(
            Field(name=n, type="system", label=Label.of(SYSTEM_LABELS.get(n), _humanize(n)), system=True)
            for n in system_fields_of(self.ownership, self.child_of is not None)
        )

    @property
    def all_fields(self) -> tuple[Field, ...]:
        """System fields first, then the declared fields (archived ones included)."""
        return self.system_fields + self.fields

    @property
    def active_fields(self) -> tuple[Field, ...]:
        """Declared fields that are not archived: what the API and screens show."""
        return tuple(f for f in self.fields if not f.archived)

    def field(self, name: str) -> Field | None:
        return self._by_name.get(name)  # type: ignore[attr-defined]

    def active_field(self, name: str) -> Field | None:
        f = self.field(name)
        return None if f is None or f.archived else f

    @property
    def table_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.active_fields if f.type == "table")


SYSTEM_LABELS: dict[str, dict[str, str]] = {
    "id": {"en": "ID", "zh": "ID"},
    "version": {"en": "Version", "zh": "版本"},
    "created_at": {"en": "Created at", "zh": "创建时间"},
    "created_by": {"en": "Created by", "zh": "创建人"},
    "updated_at": {"en": "Updated at", "zh": "更新时间"},
    "updated_by": {"en": "Updated by", "zh": "修改人"},
    "owner": {"en": "Owner", "zh": "负责人"},
    "department": {"en": "Department", "zh": "所属部门"},
    "parent_id": {"en": "Parent", "zh": "上级记录"},
    "idx": {"en": "Row", "zh": "行号"},
}


@dataclass(frozen=True)
class FormSection:
    label: Label
    fields: tuple[str, ...]
    columns: int = 2
    visible_when: str | None = None


@dataclass(frozen=True)
class Form:
    entity: str
    name: str
    sections: tuple[FormSection, ...]
    label: Label | None = None


@dataclass(frozen=True)
class View:
    entity: str
    name: str
    label: Label
    type: str = "table"
    columns: tuple[str, ...] = ()
    filters: tuple[Any, ...] = ()
    sort: tuple[tuple[str, str], ...] = ()
    page_size: int = 50
    group_by: str | None = None
    roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class Spec:
    """A document whose engine lives elsewhere (dedup rule, workflow, role): name, entity, frozen source."""

    kind: str
    name: str
    entity: str | None
    spec: Mapping[str, Any]
    label: Label | None = None


@dataclass(frozen=True)
class MetadataSet:
    """A whole, validated set of metadata: what gets compiled and published."""

    entities: Mapping[str, Entity]
    forms: Mapping[tuple[str, str], Form]
    views: Mapping[tuple[str, str], View]
    dedup_rules: Mapping[str, Spec]
    workflows: Mapping[str, Spec]
    roles: Mapping[str, Spec]
    documents: tuple[Document, ...] = ()
    #: Public pools (公海, `kind: pool`), by name; read by `metacrm.runtime.pool`.
    pools: Mapping[str, Spec] = field(default_factory=lambda: MappingProxyType({}))

    def entity(self, name: str) -> Entity | None:
        e = self.entities.get(name)
        return None if e is None or e.archived else e

    @property
    def active_entities(self) -> tuple[Entity, ...]:
        return tuple(e for e in self.entities.values() if not e.archived)

    def views_of(self, entity: str) -> tuple[View, ...]:
        return tuple(v for (e, _), v in self.views.items() if e == entity)

    def forms_of(self, entity: str) -> tuple[Form, ...]:
        return tuple(f for (e, _), f in self.forms.items() if e == entity)

    def children_of(self, entity: str) -> tuple[Entity, ...]:
        return tuple(e for e in self.entities.values() if e.child_of == entity)

    def raw_documents(self) -> list[dict[str, Any]]:
        return [d.data for d in self.documents]


# ---------------------------------------------------------------------------- building

def build_field(data: Mapping[str, Any]) -> Field:
    options = tuple(
        Option(value=str(o["value"]), label=Label.of(o.get("label"), str(o["value"])), color=o.get("color"))
        for o in data.get("options") or ()
    )
    return Field(
        name=data["name"],
        type=data["type"],
        label=Label.of(data.get("label"), _humanize(data["name"])),
        help=Label.of(data["help"]) if data.get("help") else None,
        required=bool(data.get("required", False)),
        unique=bool(data.get("unique", False)),
        default=data.get("default"),
        max_length=data.get("max_length"),
        min=data.get("min"),
        max=data.get("max"),
        pattern=data.get("pattern"),
        options=options,
        searchable=bool(data.get("searchable", False)),
        visible_when=data.get("visible_when"),
        required_when=data.get("required_when"),
        readonly_when=data.get("readonly_when"),
        readonly=bool(data.get("readonly", False)),
        archived=bool(data.get("archived", False)),
        target=data.get("target"),
        targets=tuple(data.get("targets") or ()),
        expression=data.get("expression"),
        result_type=data.get("result_type"),
        precision=data.get("precision"),
        scale=data.get("scale"),
        format=data.get("format"),
        renamed_from=data.get("renamed_from"),
        spec=freeze(dict(data)),
    )


#: The implicit field an entity gets from `naming.autonumber` when it declares no autonumber field.
NAMING_FIELD = "code"


def build_entity(data: Mapping[str, Any]) -> Entity:
    fields = [build_field(f) for f in data.get("fields") or ()]
    naming = data.get("naming")
    if naming and naming.get("autonumber") and not any(f.type == "autonumber" for f in fields):
        fields.insert(0, Field(name=NAMING_FIELD, type="autonumber", label=Label("Number", "编号"),
                               format=naming["autonumber"], searchable=True, unique=True))
    indexes = []
    for ix in data.get("indexes") or ():
        if isinstance(ix, Mapping):
            indexes.append(IndexSpec(tuple(ix["fields"]), bool(ix.get("unique", False)), ix.get("name")))
        else:
            indexes.append(IndexSpec(tuple(ix)))
    return Entity(
        name=data["name"],
        label=Label.of(data.get("label"), _humanize(data["name"])),
        fields=tuple(fields),
        title_field=data.get("title_field") or ("name" if any(f.name == "name" for f in fields) else "id"),
        ownership=bool(data.get("ownership", False)),
        child_of=data.get("child_of"),
        naming=freeze(naming) if naming else None,
        validations=tuple(
            ValidationRule(v["rule"], Label.of(v.get("message"), "Invalid record"))
            for v in data.get("validations") or ()
        ),
        indexes=tuple(indexes),
        archived=bool(data.get("archived", False)),
        actions=freeze(list(data.get("actions") or ())),
        app=data.get("app"),
        icon=data.get("icon"),
        spec=freeze(dict(data)),
    )


def build_form(data: Mapping[str, Any]) -> Form:
    return Form(
        entity=data["entity"],
        name=data["name"],
        label=Label.of(data["label"]) if data.get("label") else None,
        sections=tuple(
            FormSection(
                label=Label.of(s.get("label"), ""),
                fields=tuple(s.get("fields") or ()),
                columns=int(s.get("columns", 2)),
                visible_when=s.get("visible_when"),
            )
            for s in data.get("sections") or ()
        ),
    )


def build_view(data: Mapping[str, Any]) -> View:
    return View(
        entity=data["entity"],
        name=data["name"],
        label=Label.of(data.get("label"), _humanize(data["name"])),
        type=data.get("type", "table"),
        columns=tuple(data.get("columns") or ()),
        filters=freeze(list(data.get("filters") or ())),
        sort=tuple((s[0], s[1] if len(s) > 1 else "asc") for s in data.get("sort") or ()),
        page_size=int(data.get("page_size", 50)),
        group_by=data.get("group_by"),
        roles=tuple(data.get("roles") or ()),
    )


def build_spec(data: Mapping[str, Any]) -> Spec:
    return Spec(
        kind=data["kind"],
        name=data["name"],
        entity=data.get("entity"),
        spec=freeze(dict(data)),
        label=Label.of(data["label"]) if data.get("label") else None,
    )


def build_metadata_set(documents: Sequence[Document] | Iterable[Document]) -> MetadataSet:
    """Build the model from documents that already passed validation (templates are skipped)."""
    documents = tuple(documents)
    entities: dict[str, Entity] = {}
    forms: dict[tuple[str, str], Form] = {}
    views: dict[tuple[str, str], View] = {}
    dedup: dict[str, Spec] = {}
    workflows: dict[str, Spec] = {}
    roles: dict[str, Spec] = {}
    pools: dict[str, Spec] = {}
    for doc in documents:
        data = doc.data
        kind = doc.kind
        if kind == "entity":
            entities[data["name"]] = build_entity(data)
        elif kind == "form":
            forms[(data["entity"], data["name"])] = build_form(data)
        elif kind == "view":
            views[(data["entity"], data["name"])] = build_view(data)
        elif kind == "dedup":
            dedup[data["name"]] = build_spec(data)
        elif kind == "workflow":
            workflows[data["name"]] = build_spec(data)
        elif kind == "role":
            roles[data["name"]] = build_spec(data)
        elif kind == "pool":
            pools[data["name"]] = build_spec({"entity": "customer", **data})
    return MetadataSet(
        entities=MappingProxyType(entities),
        forms=MappingProxyType(forms),
        views=MappingProxyType(views),
        dedup_rules=MappingProxyType(dedup),
        workflows=MappingProxyType(workflows),
        roles=MappingProxyType(roles),
        documents=tuple(d for d in documents if d.kind != "template"),
        pools=MappingProxyType(pools),
    )
