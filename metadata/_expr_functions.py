"""The expression language's functions and the clock that today() and now() read.

Private to `metacrm.metadata.expressions`; FUNCTIONS is re-exported there and documented
in docs/expressions.md. Functions are None-tolerant (an empty field gives None, 0 or False
rather than an error) because conditions are evaluated on half-filled forms.
"""
from __future__ import annotations

import decimal
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ._expr_sandbox import (
    MAX_STRING_LENGTH,
    ExpressionError,
    bounded,
    is_number,
    kind,
    parse_like,
    show,
    weight,
)

MAX_ROUND_DIGITS = 20


# ---------------------------------------------------------------- the clock

def _system_clock() -> datetime:
    return datetime.now()


#: Read by today() and now() on every call; replace it with set_clock() (tests, time zones).
clock: Callable[[], datetime] = _system_clock


def set_clock(fn: Callable[[], datetime] | None) -> Callable[[], datetime]:
    """Make today()/now() read `fn()` (None restores the system clock); returns the old clock.

    The runtime can install a clock in the instance's time zone; tests freeze time with
    `set_clock(lambda: datetime(2024, 6, 30, 9, 0))` and restore the returned clock after.
    """
    global clock
    previous = clock
    clock = fn if fn is not None else _system_clock
    return previous


def _now() -> datetime:
    value = clock()
    return value if isinstance(value, datetime) else datetime.combine(value, time())


def _today() -> date:
    value = clock()
    return value.date() if isinstance(value, datetime) else value


# ---------------------------------------------------------------- functions

def _items(args: tuple[Any, ...]) -> list[Any]:
    """Aggregates take one list (a child column, a multiselect) or several values; None is skipped."""
    if len(args) == 1 and (args[0] is None or isinstance(args[0], (list, tuple))):
        args = tuple(args[0] or ())
    return [value for value in args if value is not None]


def _numbers(name: str, args: tuple[Any, ...]) -> list[Any]:
    items = _items(args)
    for value in items:
        if not is_number(value):
            raise ExpressionError(f"{name}() needs numbers, got {kind(value)} {show(value)}")
    return items


def _sum(*args: Any) -> Any:
    return bounded(sum(_numbers("sum", args), 0))


def _avg(*args: Any) -> Decimal | None:
    items = _numbers("avg", args)
    return Decimal(sum(items, 0)) / len(items) if items else None


def _count(*args: Any) -> int:
    return len(_items(args))


def _min(*args: Any) -> Any:
    items = _items(args)
    return min(items) if items else None


def _max(*args: Any) -> Any:
    items = _items(args)
    return max(items) if items else None


def _len(value: Any) -> int:
    if value is None:
        return 0
    if not isinstance(value, (str, list, tuple, dict)):
        raise ExpressionError(f"len() needs text or a list, got {kind(value)}")
    return len(value)


def _round(value: Any, ndigits: Any = None) -> Any:
    """Half up (2.5 -> 3), as people round money; Python's round() would give 2."""
    if value is None:
        return None
    if not is_number(value):
        raise ExpressionError(f"round() needs a number, got {kind(value)}")
    places = 0 if ndigits is None else ndigits
    if not isinstance(places, int) or abs(places) > MAX_ROUND_DIGITS:
        raise ExpressionError(f"round() digits must be a whole number from -{MAX_ROUND_DIGITS} to {MAX_ROUND_DIGITS}")
    result = Decimal(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    if places <= 0:
        result = result.quantize(Decimal(1))
    if ndigits is None or (places <= 0 and not isinstance(value, Decimal)):
        return int(result)
    return result


def _abs(value: Any) -> Any:
    return None if value is None else abs(value)


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str) and len(value) <= 100:
        try:
            return Decimal(value.strip())
        except (decimal.InvalidOperation, ValueError):
            pass
    raise ExpressionError(f"{show(value)} is not a number")


def _int(value: Any) -> int | None:
    """Whole part, truncating toward zero: int('12.7') is 12."""
    if value is None or isinstance(value, int):
        return None if value is None else int(value)
    number = _decimal(value)
    if not number.is_finite():
        raise ExpressionError(f"{show(value)} is not a number")
    return int(number)


def _text(value: Any) -> str:
    """str(): None is '', numbers never in E-notation, lists joined with ', '."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Decimal):  # 'f' for 1E+3, but not for 1E-999999 (a megabyte of zeros)
        return format(value, "f") if value.adjusted() >= -30 else str(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (list, tuple)):
        if weight(value, MAX_STRING_LENGTH) > MAX_STRING_LENGTH:
            raise ExpressionError(f"text longer than {MAX_STRING_LENGTH} characters")
        return ", ".join(_text(item) for item in value)
    return bounded(str(value))


def _upper(value: Any) -> str | None:
    return None if value is None else _text(value).upper()


def _lower(value: Any) -> str | None:
    return None if value is None else _text(value).lower()


def _trim(value: Any) -> str | None:
    return None if value is None else _text(value).strip()


def _as_date(value: Any, fn: str) -> date | None:
    """date/datetime as they are; ISO strings parsed; None stays None."""
    if value is None or isinstance(value, date):
        return value
    if isinstance(value, str):
        parsed = parse_like(value, date.min)
        if isinstance(parsed, date):
            return parsed
    raise ExpressionError(f"{fn}() needs a date, got {kind(value)} {show(value)}")


def _days_between(a: Any, b: Any) -> int | None:
    """Calendar days from a to b (times of day are ignored): b - a."""
    start, end = _as_date(a, "days_between"), _as_date(b, "days_between")
    if start is None or end is None:
        return None
    start = start.date() if isinstance(start, datetime) else start
    end = end.date() if isinstance(end, datetime) else end
    return (end - start).days


def _add_days(value: Any, days: Any) -> date | None:
    start = _as_date(value, "add_days")
    if start is None or days is None:
        return None
    if not is_number(days):
        raise ExpressionError(f"add_days() needs a number of days, got {kind(days)}")
    return start + timedelta(days=int(days))


def _contains_fn(haystack: Any, needle: Any) -> bool:
    if haystack is None or needle is None:
        return False
    if isinstance(haystack, str):
        return _text(needle) in haystack
    if isinstance(haystack, (list, tuple)):
        return needle in haystack
    raise ExpressionError(f"contains() needs text or a list, got {kind(haystack)}")


def _coalesce(*args: Any) -> Any:
    return next((value for value in args if value is not None), None)


def _year(value: Any) -> int | None:
    day = _as_date(value, "year")
    return None if day is None else day.year


def _month(value: Any) -> int | None:
    day = _as_date(value, "month")
    return None if day is None else day.month


#: name -> (callable, minimum arguments, maximum arguments or None for "any number").
_TABLE: dict[str, tuple[Callable[..., Any], int, int | None]] = {
    "len": (_len, 1, 1),
    "round": (_round, 1, 2),
    "abs": (_abs, 1, 1),
    "min": (_min, 1, None),
    "max": (_max, 1, None),
    "sum": (_sum, 1, None),
    "avg": (_avg, 1, None),
    "count": (_count, 1, None),
    "int": (_int, 1, 1),
    "decimal": (_decimal, 1, 1),
    "str": (_text, 1, 1),
    "upper": (_upper, 1, 1),
    "lower": (_lower, 1, 1),
    "trim": (_trim, 1, 1),
    "today": (_today, 0, 0),
    "now": (_now, 0, 0),
    "days_between": (_days_between, 2, 2),
    "add_days": (_add_days, 2, 2),
    "contains": (_contains_fn, 2, 2),
    "coalesce": (_coalesce, 1, None),
    "year": (_year, 1, 1),
    "month": (_month, 1, 1),
}

#: The whitelist: the only names an expression may call (see docs/expressions.md).
FUNCTIONS: dict[str, Callable[..., Any]] = {name: entry[0] for name, entry in _TABLE.items()}
ARITY: dict[str, tuple[int, int | None]] = {name: entry[1:] for name, entry in _TABLE.items()}


def arity_text(name: str) -> str:
    low, high = ARITY[name]
    if high is None:
        return f"at least {low} argument{'s' if low != 1 else ''}"
    if low == high:
        return "no arguments" if low == 0 else f"{low} argument{'s' if low != 1 else ''}"
    return f"{low} to {high} arguments"
