"""What the expression language's operators mean, with the limits every result obeys.

Private to `metacrm.metadata.expressions`, which owns parsing and the static whitelist
(the functions live in `_expr_functions`). Every operator here is None-safe in the SQL
way (arithmetic with None is None, ordering against None is False), keeps money exact
(int / int is a Decimal), and checks the size of what it is about to build *before*
building it, so a hostile expression is refused in microseconds instead of exhausting
memory.
"""
from __future__ import annotations

import ast
import decimal
import math
import operator
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

MAX_NUMBER = 10**30  # |result| of any arithmetic must stay below this
MAX_STRING_LENGTH = 10_000
MAX_LIST_SIZE = 100_000  # items plus characters of the strings inside, for built lists
MAX_EXPONENT = 1_000

_CONTEXT = decimal.Context(
    prec=28,
    rounding=decimal.ROUND_HALF_EVEN,
    Emax=999_999,
    Emin=-999_999,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)


class ExpressionError(ValueError):
    """Bad expression (syntax, forbidden construct, unknown name/function) or a failed evaluation.

    `problem` is the bare message (what check_expression reports); `source` the expression
    it concerns, if known. str() is one line: "division by zero in 'a / b'".
    """

    def __init__(self, problem: str, source: str | None = None) -> None:
        self.problem = problem
        self.source = source
        message = problem if source is None else f"{problem} in {_quote(source)}"
        super().__init__(message)


def _quote(source: str) -> str:
    text = " ".join(str(source).split())
    return repr(text if len(text) <= 80 else text[:77] + "...")


def decimal_context() -> decimal.localcontext:
    """The Decimal context evaluation runs in: 28 digits, errors instead of NaN/Infinity."""
    return decimal.localcontext(_CONTEXT)


# ---------------------------------------------------------------- values and limits

def kind(value: Any) -> str:
    """A type name an admin understands, for messages."""
    if value is None:
        return "empty (None)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, Decimal)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, datetime):
        return "a datetime"
    if isinstance(value, date):
        return "a date"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def is_number(value: Any) -> bool:
    return isinstance(value, (int, Decimal))  # bool is an int: True counts as 1


def weight(value: Any, limit: int) -> int:
    """Items plus characters, counted without recursion and stopping once past `limit`."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        total += 1
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return total


def bounded(value: Any) -> Any:
    """Refuse numbers and text past the limits; everything an operator returns passes here."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ExpressionError("the result is not a finite number")
        if abs(value) >= MAX_NUMBER:
            raise ExpressionError("number too large (the limit is 10**30)")
    elif isinstance(value, int) and not isinstance(value, bool):
        if abs(value) >= MAX_NUMBER:
            raise ExpressionError("number too large (the limit is 10**30)")
    elif isinstance(value, str) and len(value) > MAX_STRING_LENGTH:
        raise ExpressionError(f"text longer than {MAX_STRING_LENGTH} characters")
    return value


def normalise(value: Any) -> Any:
    """Floats become Decimal (via their shortest repr, so 0.1 stays 0.1); lists are scanned."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, (list, tuple)) and any(isinstance(v, float) for v in value):
        return [Decimal(repr(v)) if isinstance(v, float) else v for v in value]
    return value


def column(table: str, rows: Any, field: str) -> list[Any]:
    """`table.field`: the field's value in each row of a child table (a list of dicts)."""
    if rows is None:
        return []
    if not isinstance(rows, (list, tuple)):
        raise ExpressionError(f"'{table}' is not a child table, so '{table}.{field}' is not allowed")
    values = []
    for row in rows:
        if not isinstance(row, Mapping):
            raise ExpressionError(f"'{table}' is not a child table, so '{table}.{field}' is not allowed")
        values.append(normalise(row.get(field)))
    return values


def describe(exc: BaseException) -> str:
    """One readable line for an exception raised while evaluating."""
    if isinstance(exc, ZeroDivisionError):  # includes decimal.DivisionByZero
        return "division by zero"
    if isinstance(exc, (OverflowError, decimal.Overflow)):
        return "number too large"
    if isinstance(exc, decimal.InvalidOperation):
        return "invalid arithmetic operation"
    if isinstance(exc, RecursionError):
        return "expression is nested too deeply"
    if isinstance(exc, MemoryError):
        return "expression needs too much memory"
    text = " ".join(str(exc).split()) or type(exc).__name__
    for python, plain in (("'decimal.Decimal'", "'number'"), ("'int'", "'number'"),
                          ("'str'", "'text'"), ("'NoneType'", "'empty'"),
                          ("'datetime.datetime'", "'datetime'"), ("'datetime.date'", "'date'")):
        text = text.replace(python, plain)
    return text if len(text) <= 200 else text[:197] + "..."


# ---------------------------------------------------------------- operators

def _none_safe(symbol: str, fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Arithmetic with None is None (SQL-like), so a formula over an empty field is empty."""
    def apply(a: Any, b: Any) -> Any:
        if a is None or b is None:
            return None
        try:
            return bounded(fn(a, b))
        except TypeError:
            raise ExpressionError(f"can't use '{symbol}' with {kind(a)} and {kind(b)}") from None
    return apply


def _no_dates(symbol: str, a: Any, b: Any) -> None:
    """Date arithmetic would yield timedeltas nobody can compare; the functions are clearer."""
    if isinstance(a, (date, timedelta)) or isinstance(b, (date, timedelta)):
        raise ExpressionError(f"can't use '{symbol}' with dates; use days_between() or add_days()")


def _sub(a: Any, b: Any) -> Any:
    _no_dates("-", a, b)
    return a - b


def _add(a: Any, b: Any) -> Any:
    _no_dates("+", a, b)
    if isinstance(a, str) and isinstance(b, str) and len(a) + len(b) > MAX_STRING_LENGTH:
        raise ExpressionError(f"text longer than {MAX_STRING_LENGTH} characters")
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if weight(a, MAX_LIST_SIZE) + weight(b, MAX_LIST_SIZE) > MAX_LIST_SIZE:
            raise ExpressionError("list too large")
    return a + b


def _mul(a: Any, b: Any) -> Any:
    for seq, times in ((a, b), (b, a)):
        if isinstance(seq, (str, list, tuple)) and isinstance(times, int) and times > 0:
            if isinstance(seq, str) and len(seq) * times > MAX_STRING_LENGTH:
                raise ExpressionError(f"text longer than {MAX_STRING_LENGTH} characters")
            if not isinstance(seq, str) and weight(seq, MAX_LIST_SIZE) * times > MAX_LIST_SIZE:
                raise ExpressionError("list too large")
    return a * b


def _div(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int):
        return Decimal(a) / Decimal(b)  # 1 / 4 is Decimal('0.25'), never a float
    return a / b


def _mod(a: Any, b: Any) -> Any:
    if isinstance(a, str):  # '%999999999d' % 1 would build a gigabyte of text
        raise ExpressionError("'%' needs numbers (text formatting is not supported)")
    return a % b


def _log10(value: int | Decimal) -> float:
    return float(value.log10()) if isinstance(value, Decimal) else math.log10(value)


def _pow(a: Any, b: Any) -> Any:
    if not (is_number(a) and is_number(b)):
        raise ExpressionError(f"'**' needs numbers, got {kind(a)} and {kind(b)}")
    if abs(b) > MAX_EXPONENT:
        raise ExpressionError(f"exponent too large (the limit is {MAX_EXPONENT})")
    if a != 0 and abs(a) != 1 and float(b) * _log10(abs(a)) >= 30:
        raise ExpressionError("number too large (the limit is 10**30)")
    if isinstance(a, Decimal) or isinstance(b, Decimal) or b < 0:
        return Decimal(a) ** Decimal(b)
    return a**b


def _unary(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda a: None if a is None else bounded(fn(a))


def parse_like(text: str, other: date) -> Any:
    """An ISO string as a date/datetime to compare with `other`; the text itself if not ISO."""
    text = text.strip()
    if len(text) > 40:
        return text
    try:
        if not isinstance(other, datetime) and len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text)
    except ValueError:
        return text


def _align(a: Any, b: Any) -> tuple[Any, Any]:
    """Let `close_date < '2024-06-30'` and date-vs-datetime comparisons work."""
    if isinstance(a, str) and isinstance(b, date):
        a = parse_like(a, b)
    elif isinstance(b, str) and isinstance(a, date):
        b = parse_like(b, a)
    if isinstance(a, date) and isinstance(b, date) and isinstance(a, datetime) != isinstance(b, datetime):
        if isinstance(a, datetime):
            b = datetime.combine(b, time(), a.tzinfo)
        else:
            a = datetime.combine(a, time(), b.tzinfo)
    return a, b


def _ordering(symbol: str, fn: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        if a is None or b is None:
            return False  # SQL-like: an empty field is neither above nor below anything
        try:
            return fn(*_align(a, b))
        except TypeError:
            if isinstance(a, datetime) and isinstance(b, datetime):  # naive vs aware
                raise ExpressionError("can't compare a datetime that has a time zone with one "
                                      "that has none") from None
            raise ExpressionError(f"can't compare {kind(a)} and {kind(b)} with '{symbol}'") from None
    return compare


def _eq(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    a, b = _align(a, b)
    return a == b


def _contains(container: Any, item: Any) -> bool:
    if container is None:
        return False
    if isinstance(container, str) and not isinstance(item, str):
        if item is None:
            return False
        raise ExpressionError(f"'in' on text needs text on the left, got {kind(item)}")
    return item in container


OPERATORS: dict[type, Callable[..., Any]] = {
    ast.Add: _none_safe("+", _add),
    ast.Sub: _none_safe("-", _sub),
    ast.Mult: _none_safe("*", _mul),
    ast.Div: _none_safe("/", _div),
    ast.FloorDiv: _none_safe("//", operator.floordiv),
    ast.Mod: _none_safe("%", _mod),
    ast.Pow: _none_safe("**", _pow),
    ast.USub: _unary(operator.neg),
    ast.UAdd: _unary(operator.pos),
    ast.Not: operator.not_,
    ast.Eq: _eq,
    ast.NotEq: lambda a, b: not _eq(a, b),
    ast.Lt: _ordering("<", operator.lt),
    ast.LtE: _ordering("<=", operator.le),
    ast.Gt: _ordering(">", operator.gt),
    ast.GtE: _ordering(">=", operator.ge),
    ast.In: lambda a, b: _contains(b, a),
    ast.NotIn: lambda a, b: not _contains(b, a),
    ast.Is: lambda a, b: a is b,  # only `is None` passes the static check
    ast.IsNot: lambda a, b: a is not b,
}

