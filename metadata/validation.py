"""Validating metadata documents: the JSON Schema pass, then the semantic pass.

Pass 1 checks each document on its own against its kind's JSON Schema
(`metadata/schemas/<kind>.json`), so shapes, key names and enums are settled before anything
reads them. Pass 2 (`semantic.py`) checks what one document can't know alone: that
references, expressions, states and permissions line up across the whole set. Both passes
report *every* problem they find as a `MetadataError` naming the file and the JSON pointer,
because an admin or a consultant fixing a template wants the whole list in one run.
"""
from __future__ import annotations

import difflib
import json
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable, Sequence

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from .documents import Document, MetadataError, pointer
from .fieldtypes import KIND_KEYS
from .semantic import check_semantics

#: The package the schema files are read from (a folder `schemas/` inside it).
SCHEMA_PACKAGE = "metacrm.metadata"
#: Every kind of document that has a schema, in the order documents are usually listed.
KINDS: tuple[str, ...] = tuple(KIND_KEYS)
#: Enums longer than this are shortened in messages (the field type list has 25 entries).
MAX_CHOICES_SHOWN = 8
#: Long values (a whole object in a type error) are cut to keep one error on one line.
MAX_VALUE_REPR = 80

_NAME_PATTERN = "^[a-z][a-z0-9_]{0,62}$"
_PATTERN_HINTS = {
    _NAME_PATTERN: "is not a valid name (lowercase letters, digits and '_', starting with a letter, at most 63 characters)",
    "^[a-z][a-z0-9_-]{0,62}$": "is not a valid name (lowercase letters, digits, '_' and '-', starting with a letter)",
}


@lru_cache(maxsize=None)
def schema_for(kind: str) -> dict[str, Any]:
    """The JSON Schema of one metadata kind, read once from the installed package.

    Read with importlib.resources rather than a path relative to this file so that the
    schemas are found in a wheel or a zip as well as in a checkout.
    """
    if kind not in KIND_KEYS:
        raise KeyError(f"no schema for metadata kind {kind!r}")
    text = resources.files(SCHEMA_PACKAGE).joinpath("schemas", f"{kind}.json").read_text(encoding="utf-8")
    return json.loads(text)


@lru_cache(maxsize=None)
def _validator_for(kind: str) -> Draft202012Validator:
    """A compiled validator per kind; building one resolves `$ref`s, so it is cached too."""
    return Draft202012Validator(schema_for(kind))


def validate_documents(docs: Sequence[Document]) -> list[MetadataError]:
    """Every problem of a set of documents, grouped by document in the order given.

    A document that fails the schema pass gets only its schema errors: the semantic pass
    reads just the documents that passed (so it can trust their shape), and is handed the
    names of the others so that a reference to a broken document isn't reported a second
    time as "unknown".
    """
    errors: list[MetadataError] = []
    valid: list[Document] = []
    invalid: list[Document] = []
    for doc in docs:
        doc_errors = schema_errors(doc)
        errors.extend(doc_errors)
        (invalid if doc_errors else valid).append(doc)
    errors.extend(check_semantics(valid, invalid))
    # Group by document (in the order given), keeping each document's own order.
    position: dict[str, int] = {}
    for i, doc in enumerate(docs):
        position.setdefault(doc.source, i)
    return sorted(errors, key=lambda e: position.get(e.source, len(position)))


def schema_errors(doc: Document) -> list[MetadataError]:
    """Pass 1 for one document: its kind, then its kind's schema, in document order."""
    data = doc.data
    if not isinstance(data, dict):
        return [MetadataError(doc.source, "", f"a metadata document must be a JSON object, not {_type_name(data)}")]
    kind = data.get("kind")
    known = ", ".join(KINDS)
    if kind is None:
        return [MetadataError(doc.source, "/kind", f"'kind' is missing (one of {known})")]
    if kind not in KIND_KEYS:
        return [MetadataError(doc.source, "/kind", f"unknown kind {_short(kind)}{_did_you_mean(kind, KINDS)} (one of {known})")]
    found: dict[tuple[str, str], MetadataError] = {}
    for error in _leaf_errors(_validator_for(kind).iter_errors(data)):
        for path_parts, message in _describe(error):
            key = (pointer(*path_parts), message)
            found.setdefault(key, MetadataError(doc.source, key[0], message))
    return sorted(found.values(), key=lambda e: _document_order(data, e.path))


def _leaf_errors(errors: Iterable[ValidationError]) -> Iterable[ValidationError]:
    """Replace an anyOf/oneOf failure by the sub-error that best explains it.

    Without this, one bad value under an `anyOf` reports every alternative it didn't match;
    `best_match` picks the deepest, most specific one, which is what a person needs to see.
    """
    for error in errors:
        if error.context:
            yield from _leaf_errors([best_match(error.context)])
        else:
            yield error


def _describe(error: ValidationError) -> list[tuple[tuple[Any, ...], str]]:
    """Turn one jsonschema error into (path, message) pairs a person can act on."""
    path = tuple(error.absolute_path)
    validator = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    instance = error.instance
    if "propertyNames" in error.absolute_schema_path:
        # The error is about a key: point at the key, not at the object that holds it.
        return [(path + (instance,), f"{_short(instance)} {_pattern_hint(error.validator_value)}")]
    if validator == "additionalProperties" and isinstance(instance, dict):
        allowed = tuple(schema.get("properties", {}))
        extras = [k for k in instance if k not in allowed]
        return [(path + (k,), f"unknown key {_short(k)}{_did_you_mean(k, allowed)}") for k in extras] or [
            (path, error.message)
        ]
    if validator == "enum":
        choices = list(error.validator_value)
        hint = _did_you_mean(instance, [c for c in choices if isinstance(c, str)]) if isinstance(instance, str) else ""
        return [(path, f"{_short(instance)} is not one of {_choices(choices)}{hint}")]
    if validator == "const":
        return [(path, f"{_short(instance)} must be {_short(error.validator_value)}")]
    if validator == "pattern":
        return [(path, f"{_short(instance)} {_pattern_hint(error.validator_value)}")]
    if validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return [(path, f"{_short(instance)} is not of type {expected}")]
    return [(path, _truncate(error.message))]


def _pattern_hint(pattern: str) -> str:
    if pattern in _PATTERN_HINTS:
        return _PATTERN_HINTS[pattern]
    if pattern.startswith("^(0|[1-9]"):
        return "is not a semantic version such as '1.0.0'"
    return f"does not match {pattern!r}"


def _choices(choices: list[Any]) -> str:
    shown = ", ".join(repr(c) for c in choices[:MAX_CHOICES_SHOWN])
    more = f", ... ({len(choices)} choices)" if len(choices) > MAX_CHOICES_SHOWN else ""
    return f"[{shown}{more}]"


def _did_you_mean(value: Any, candidates: Iterable[str]) -> str:
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, list(candidates), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _short(value: Any) -> str:
    return _truncate(repr(value), MAX_VALUE_REPR)


def _truncate(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(value: Any) -> str:
    return {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def _document_order(data: Any, path: str) -> tuple[int, ...]:
    """Sort key placing errors in the order their elements appear in the document."""
    order: list[int] = []
    node = data
    for raw in path.split("/")[1:] if path else []:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict):
            keys = list(node)
            order.append(keys.index(part) if part in keys else len(keys))
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            order.append(int(part))
            node = node[int(part)]
        else:
            order.append(1 << 30)
            node = None
    return tuple(order)
