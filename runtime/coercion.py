"""From JSON to column values and back, per field type, with marshmallow.

One marshmallow field per metadata field does the input side (types, lengths, ranges,
patterns, formats, options), so the API, imports and publish's "can this column change
type?" check all coerce a value the same way. The output side (`dump_value`) is a plain
function table: the list endpoint serialises thousands of values and doesn't need
marshmallow's machinery for that.
"""
from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from typing import Any, Callable, Mapping

from marshmallow import Schema, ValidationError, fields as mf, validate

from metacrm.metadata.model import Entity, Field

PHONE_RE = re.compile(r"^\+?[0-9][0-9 ()\-.]{2,30}([ ]?(ext|x|转)[ ]?[0-9]{1,6})?$", re.IGNORECASE)
MULTI_SEPARATOR = "|"
#: Characters no column can hold: NUL (PostgreSQL text refuses it, SQLite would keep it)
#: and unpaired surrogates (not encodable as UTF-8 on either database).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
INT64 = 2**63 - 1
#: Record ids are 32-bit INTEGER columns: a bigger id can't exist, and PostgreSQL refuses
#: to compare one with an id column (an error instead of "not found").
MAX_ID = 2**31 - 1

#: Default column lengths (must match compiler.COLUMN_TYPES), so an over-long value is a
#: field error instead of a database error.
DEFAULT_LENGTHS = {"text": 255, "select": 100, "email": 254, "phone": 40, "url": 2000,
                   "autonumber": 64, "file": 500, "image": 500}
NUMERIC_DEFAULTS = {"decimal": (18, 4), "currency": (18, 2), "percent": (9, 4)}


class _EmptyIsNone:
    """Empty input deserialises to None, and validators (length, range, options) never see it."""

    def _validate(self, value: Any) -> None:
        if value is not None:
            super()._validate(value)  # type: ignore[misc]


class TrimmedString(_EmptyIsNone, mf.String):
    """Strings are stripped; an empty string means "no value" (None).

    NUL characters and unpaired surrogates are refused (`UNSTORABLE`): a database error
    on one backend or both, instead of a field error.
    """

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool):
            value = str(value)
        result = super()._deserialize(value, attr, data, **kwargs)
        if UNSTORABLE.search(result):
            raise ValidationError("Text can't contain NUL (\\u0000) or unpaired surrogate characters.")
        result = result.strip()
        return result or None


class BoundedDecimal(_EmptyIsNone, mf.Decimal):
    """A decimal that fits its column: rounded to `scale` places, at most `precision` digits."""

    def __init__(self, precision: int, scale: int, **kwargs: Any):
        super().__init__(places=scale, rounding=decimal.ROUND_HALF_UP, as_string=True, **kwargs)
        self.limit = decimal.Decimal(10) ** (precision - scale)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, str):
            value = value.strip().replace(",", "")
            if value == "":
                return None
        # The bound is checked before marshmallow rounds to `places`: quantizing a huge
        # number fails inside decimal and would come back as a vague "Not a valid number".
        try:
            raw = decimal.Decimal(str(value)) if isinstance(value, (int, float, str)) else None
        except decimal.InvalidOperation:
            raw = None
        if raw is not None and raw.is_finite() and abs(raw) >= self.limit:
            raise ValidationError(f"Must be less than {self.limit} in absolute value.")
        result = super()._deserialize(value, attr, data, **kwargs)
        if result is not None and (result.is_nan() or result.is_infinite()):
            raise self.make_error("special")
        if result is not None and abs(result) >= self.limit:
            raise ValidationError(f"Must be less than {self.limit} in absolute value.")
        return result


def _fractional(value: Any) -> bool:
    """A JSON number with a fractional part: marshmallow's lenient Integer would truncate 1.5 to 1."""
    return isinstance(value, float) and math.isfinite(value) and not value.is_integer()


class StrictInteger(_EmptyIsNone, mf.Integer):
    def __init__(self, **kwargs: Any):
        super().__init__(strict=False, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or _fractional(value):
            raise self.make_error("invalid")
        if isinstance(value, str) and value.strip() == "":
            return None
        result = super()._deserialize(value, attr, data, **kwargs)
        if result is not None and abs(result) > INT64:
            raise ValidationError("Number too large.")
        return result


class AwareDateTime(mf.DateTime):
    """Datetimes are stored in UTC; a value without an offset is taken as UTC."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str) and value.strip() == "":
            return None
        result = super()._deserialize(value, attr, data, **kwargs)
        if result.tzinfo is None:
            result = result.replace(tzinfo=dt.timezone.utc)
        try:
            return result.astimezone(dt.timezone.utc)
        except OverflowError:  # 9999-12-31T23:00-05:00 is past the last representable instant
            raise ValidationError("Not a valid datetime: out of range.") from None


class LenientDate(mf.Date):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str) and value.strip() == "":
            return None
        if isinstance(value, str) and "T" in value:
            value = value.split("T", 1)[0]
        return super()._deserialize(value, attr, data, **kwargs)


class RecordId(_EmptyIsNone, mf.Integer):
    """A lookup/user/department value: a positive id (existence is checked by the service)."""

    def __init__(self, **kwargs: Any):
        super().__init__(strict=False, validate=validate.Range(min=1, max=MAX_ID), **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, Mapping) and "id" in value:
            value = value["id"]
        if isinstance(value, bool) or _fractional(value):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class Reference(mf.Field):
    """`{"entity": "customer", "id": 5}` — a link to a record of one of `targets`."""

    def __init__(self, targets: tuple[str, ...], **kwargs: Any):
        super().__init__(**kwargs)
        self.targets = targets

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, Mapping) or set(value) - {"entity", "id", "title"}:
            raise ValidationError('Expected {"entity": ..., "id": ...}.')
        entity, rid = value.get("entity"), value.get("id")
        if entity not in self.targets:
            raise ValidationError(f"Entity must be one of: {', '.join(self.targets)}.")
        if isinstance(rid, str) and rid.isascii() and rid.isdigit():
            rid = int(rid)
        if isinstance(rid, bool) or not isinstance(rid, int) or not 1 <= rid <= MAX_ID:
            raise ValidationError("Expected a record id.")
        return {"entity": entity, "id": rid}


class Location(mf.Field):
    """`{"lat": 31.23, "lng": 121.47, "address": "..."}` (a check-in point)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, Mapping) or set(value) - {"lat", "lng", "address"}:
            raise ValidationError('Expected {"lat": ..., "lng": ..., "address": ...}.')
        out: dict[str, Any] = {}
        for key, bound in (("lat", 90), ("lng", 180)):
            raw = value.get(key)
            if raw is None:
                out[key] = None
                continue
            try:
                number = decimal.Decimal(str(raw))
            except decimal.InvalidOperation:
                raise ValidationError(f"{key} must be a number.") from None
            if isinstance(raw, bool) or not number.is_finite() or abs(number) > bound:
                raise ValidationError(f"{key} must be between -{bound} and {bound}.")
            out[key] = number.quantize(decimal.Decimal("0.0000001"))
        address = value.get("address")
        if address is not None and (not isinstance(address, str) or len(address) > 500
                                    or UNSTORABLE.search(address)):
            raise ValidationError("address must be text of at most 500 characters.")
        out["address"] = address
        if (out["lat"] is None) != (out["lng"] is None):
            raise ValidationError("lat and lng go together.")
        return out


class MultiSelect(mf.List):
    """A list of option values (or "a,b" text, as imports send it).

    Options are checked here rather than by an inner OneOf, so a bad option is reported
    on the field itself (`tags`), not on a list position (`tags.1`) clients don't show.
    """

    def __init__(self, choices: tuple[str, ...], **kwargs: Any):
        super().__init__(mf.String(), **kwargs)
        self.choices = choices

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()] if value.strip() else []
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValidationError("Expected a list of option values.")
        seen: list[str] = []
        for item in value:
            item = item.strip()
            if item not in seen:
                seen.append(item)
        bad = [v for v in seen if v not in self.choices]
        if bad:
            raise ValidationError(f"Must be one of: {', '.join(self.choices)} (not {', '.join(bad)}).")
        return seen


def _length(field: Field) -> int:
    return field.max_length or DEFAULT_LENGTHS.get(field.type, 255)


def _text_validators(field: Field) -> list[Callable[[Any], Any]]:
    checks: list[Callable[[Any], Any]] = []
    if field.type not in ("textarea", "richtext"):
        checks.append(validate.Length(max=_length(field)))
    elif field.max_length:
        checks.append(validate.Length(max=field.max_length))
    if field.pattern:
        checks.append(validate.Regexp(field.pattern, error="Does not match the required format."))
    return checks


def _number_validators(field: Field) -> list[Callable[[Any], Any]]:
    if field.min is None and field.max is None:
        return []
    return [validate.Range(min=field.min, max=field.max)]


def _decimal(field: Field) -> mf.Field:
    precision, scale = NUMERIC_DEFAULTS.get(field.type, (18, 4))
    return BoundedDecimal(field.precision or precision, field.scale if field.scale is not None else scale,
                          validate=_number_validators(field), allow_none=True)


LOADERS: dict[str, Callable[[Field], mf.Field]] = {
    "text": lambda f: TrimmedString(validate=_text_validators(f), allow_none=True),
    "textarea": lambda f: TrimmedString(validate=_text_validators(f), allow_none=True),
    "richtext": lambda f: TrimmedString(validate=_text_validators(f), allow_none=True),
    "integer": lambda f: StrictInteger(validate=_number_validators(f), allow_none=True),
    "decimal": _decimal,
    "currency": _decimal,
    "percent": _decimal,
    "boolean": lambda f: mf.Boolean(allow_none=True),
    "date": lambda f: LenientDate(allow_none=True),
    "datetime": lambda f: AwareDateTime(allow_none=True),
    "select": lambda f: TrimmedString(validate=validate.OneOf(f.option_values), allow_none=True),
    "multiselect": lambda f: MultiSelect(f.option_values, allow_none=True),
    "email": lambda f: TrimmedString(validate=[validate.Email(), validate.Length(max=_length(f))], allow_none=True),
    "phone": lambda f: TrimmedString(validate=[validate.Regexp(PHONE_RE, error="Not a valid phone number."),
                                               *_text_validators(f)], allow_none=True),
    "url": lambda f: TrimmedString(validate=[validate.URL(relative=False), validate.Length(max=_length(f))],
                                   allow_none=True),
    "lookup": lambda f: RecordId(allow_none=True),
    "user": lambda f: RecordId(allow_none=True),
    "department": lambda f: RecordId(allow_none=True),
    "reference": lambda f: Reference(f.targets, allow_none=True),
    "location": lambda f: Location(allow_none=True),
    "autonumber": lambda f: TrimmedString(validate=_text_validators(f), allow_none=True),
    "file": lambda f: TrimmedString(validate=_text_validators(f), allow_none=True),
    "image": lambda f: TrimmedString(validate=_text_validators(f), allow_none=True),
}


def loader_for(field: Field) -> mf.Field:
    """The marshmallow field that coerces input for `field` (formulas: their result type)."""
    if field.type == "formula":
        proxy = Field(name=field.name, type=field.result_type or "text", label=field.label,
                      precision=field.precision, scale=field.scale)
        return loader_for(proxy)
    return LOADERS[field.type](field)


def build_schema(entity: Entity, child_schemas: Mapping[str, Schema] | None = None) -> Schema:
    """A marshmallow schema for the writable, active fields of an entity.

    Child-table fields become lists of nested child schemas. Required-ness is not
    declared here: it depends on other fields (`required_when`) and on create vs
    update, so the record service checks it on the merged record.
    """
    declared: dict[str, mf.Field] = {}
    for field in entity.active_fields:
        if not field.writable:
            continue
        if field.type == "table":
            child = (child_schemas or {}).get(field.target or "")
            if child is None:
                continue
            declared[field.name] = mf.List(mf.Nested(child), allow_none=True)
        else:
            declared[field.name] = loader_for(field)
    if entity.child_of:
        declared["id"] = mf.Integer(allow_none=True)
    return Schema.from_dict(declared, name=f"{entity.name}_schema")()


# ------------------------------------------------------------------------------ output

def utc(value: dt.datetime) -> dt.datetime:
    """A stored datetime in UTC: SQLite gives naive UTC values, PostgreSQL aware ones in the
    session's time zone (a server set to Asia/Shanghai answers +08:00). One form for both
    keeps the API's output stable and lets "unchanged" compare equal."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def _iso(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return utc(value).isoformat()
    return value.isoformat() if isinstance(value, dt.date) else value


def _decimal_out(value: Any) -> Any:
    return None if value is None else str(value)


def _multi_out(value: Any) -> Any:
    if value is None:
        return []
    return [v for v in value.split(MULTI_SEPARATOR) if v]


#: Column value -> JSON value, per value kind.
DUMPERS: dict[str, Callable[[Any], Any]] = {
    "number": _decimal_out,
    "date": lambda v: None if v is None else _iso(v),
    "datetime": lambda v: None if v is None else _iso(v),
    "list": _multi_out,
}


def dumper_for(field: Field) -> Callable[[Any], Any] | None:
    """How to turn a column value into JSON, or None when it is JSON already."""
    return DUMPERS.get(field.value_kind)


def to_column_value(field: Field, value: Any) -> Any:
    """A coerced value as the column stores it (multiselect lists become delimited text)."""
    if field.type == "multiselect" and value is not None:
        return MULTI_SEPARATOR + MULTI_SEPARATOR.join(value) + MULTI_SEPARATOR if value else None
    if field.value_kind == "number" and isinstance(value, str):
        return decimal.Decimal(value)
    return value


def to_python(field: Field, column_value: Any) -> Any:
    """A stored value as expressions see it (Decimal, date, list of options)."""
    if field.type == "multiselect":
        return _multi_out(column_value)
    if isinstance(column_value, dt.datetime):
        return utc(column_value)
    return column_value
