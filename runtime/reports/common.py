"""Small pieces the reports share: money as the API writes it, labels, ratios."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from metacrm.metadata.model import Field

ZERO = Decimal(0)
CENT = Decimal("0.01")


def money(value: Any) -> str:
    """A sum as the API's decimal string ("1234.50"); nothing summed is "0.00"."""
    return str(Decimal(value or 0).quantize(CENT))


def percent(part: Any, whole: Any) -> float | None:
    """part / whole in percent, one decimal; None when there is no whole to divide by."""
    whole = Decimal(whole or 0)
    if whole == 0:
        return None
    return float((Decimal(part or 0) * 100 / whole).quantize(Decimal("0.1")))


def option_label(f: Field | None, value: Any, language: str) -> str:
    """An option's label in `language` (the raw value when it is not an option)."""
    if value is None:
        return "—"
    if f is not None:
        for o in f.options:
            if o.value == value:
                return o.label.get(language)
    return str(value)


def quantity(value: Any) -> str:
    """A summed quantity as text: "12" for whole numbers, "2.5" otherwise."""
    q = Decimal(value or 0)
    return str(int(q)) if q == q.to_integral_value() else format(q.normalize(), "f")
