"""The expression language: semantics admins rely on, design-time checks, and the sandbox."""
from __future__ import annotations

import time
from datetime import date, datetime
from decimal import Decimal

import pytest

from metacrm.metadata.expressions import (
    FUNCTIONS,
    Expression,
    ExpressionError,
    check_expression,
    compile_expression,
    evaluate,
    set_clock,
)


@pytest.fixture
def frozen_clock():
    """today() is 2024-06-30 and now() is 09:15 that day, for the duration of a test."""
    previous = set_clock(lambda: datetime(2024, 6, 30, 9, 15))
    yield datetime(2024, 6, 30, 9, 15)
    set_clock(previous)


CONTRACT_LINES = [
    {"product": 1, "quantity": 2, "price": Decimal("19.99"), "amount": Decimal("39.98")},
    {"product": 2, "quantity": 1, "price": Decimal("0.10"), "amount": None},
    {"product": 3, "quantity": 3, "price": Decimal("5.00"), "amount": Decimal("15.00")},
]


# ---------------------------------------------------------------- arithmetic and Decimal

def test_line_amount_formula_is_exact_decimal():
    values = {"quantity": 3, "price": Decimal("19.99"), "discount": Decimal("10")}
    result = evaluate("quantity * price * (1 - discount / 100)", values)
    assert result == Decimal("53.973")
    assert isinstance(result, Decimal)


def test_decimal_literals_are_exact_not_float():
    assert evaluate("0.1 + 0.2") == Decimal("0.3")
    assert evaluate("0.1 + 0.2 == 0.3") is True
    assert isinstance(evaluate("1.5"), Decimal)


def test_integer_division_gives_decimal_and_int_arithmetic_stays_int():
    assert evaluate("1 / 4") == Decimal("0.25")
    assert evaluate("7 // 2") == 3
    assert evaluate("7 % 3") == 1
    assert evaluate("2 ** 10") == 1024
    assert evaluate("2 ** -1") == Decimal("0.5")
    assert evaluate("-amount + 1", {"amount": 5}) == -4
    assert isinstance(evaluate("2 + 3"), int)


def test_mixing_int_and_decimal_works():
    assert evaluate("price * 3", {"price": Decimal("1.10")}) == Decimal("3.30")


def test_float_values_are_converted_to_decimal_before_evaluating():
    result = evaluate("a + b", {"a": 0.1, "b": 0.2})
    assert result == Decimal("0.3")
    assert isinstance(result, Decimal)


def test_text_concatenation_and_repetition_within_limits():
    assert evaluate("name + '-' + code", {"name": "ACME", "code": "7"}) == "ACME-7"
    assert evaluate("'ab' * 3") == "ababab"


# ---------------------------------------------------------------- None semantics

def test_arithmetic_with_empty_field_is_none_instead_of_error():
    assert evaluate("quantity * price", {"quantity": 2}) is None
    assert evaluate("-amount") is None
    assert evaluate("amount / 0") is None  # None wins before the division happens


def test_ordering_against_none_is_false():
    assert evaluate("credit_limit > 0") is False
    assert evaluate("credit_limit <= 0") is False
    assert evaluate("not (credit_limit > 0)") is True


def test_equality_and_is_none_work_with_none():
    assert evaluate("credit_limit == None") is True
    assert evaluate("credit_limit != None") is False
    assert evaluate("credit_limit is None") is True
    assert evaluate("credit_limit is not None", {"credit_limit": 0}) is True


def test_validation_rule_from_metadata_example():
    rule = "credit_limit is None or credit_limit >= 0"
    assert evaluate(rule, {}) is True
    assert evaluate(rule, {"credit_limit": Decimal("10")}) is True
    assert evaluate(rule, {"credit_limit": Decimal("-1")}) is False


def test_missing_names_evaluate_as_none():
    assert evaluate("level", {}) is None
    assert evaluate("level == 'A'", {}) is False


# ---------------------------------------------------------------- comparisons, in, conditionals

def test_chained_comparisons():
    assert evaluate("0 < win_rate <= 100", {"win_rate": 40}) is True
    assert evaluate("0 < win_rate <= 100", {"win_rate": 140}) is False
    assert evaluate("0 < win_rate <= 100", {}) is False


def test_in_and_not_in_with_lists_and_tuples():
    assert evaluate("level in ['A', 'B']", {"level": "A"}) is True
    assert evaluate("level not in ('A', 'B')", {"level": "C"}) is True
    assert evaluate("'vip' in tags", {"tags": ["vip", "hot"]}) is True
    assert evaluate("'vip' in tags", {"tags": None}) is False
    assert evaluate("'vip' not in tags", {}) is True
    assert evaluate("'Ltd' in name", {"name": "ACME Ltd"}) is True


def test_conditional_expression_from_metadata_example():
    assert evaluate("100 if level == 'A' else 50", {"level": "A"}) == 100
    assert evaluate("100 if level == 'A' else 50", {"level": "B"}) == 50


def test_boolean_operators():
    assert evaluate("amount > 0 and stage == 'won'", {"amount": 5, "stage": "won"}) is True
    assert evaluate("amount > 0 or stage == 'won'", {"stage": "won"}) is True
    assert evaluate("not locked", {"locked": False}) is True


def test_dates_compare_with_iso_strings_and_datetimes():
    values = {"sign_date": date(2024, 6, 1), "signed_at": datetime(2024, 6, 1, 10, 30)}
    assert evaluate("sign_date < '2024-06-30'", values) is True
    assert evaluate("sign_date == '2024-06-01'", values) is True
    assert evaluate("signed_at > '2024-06-01'", values) is True
    assert evaluate("signed_at >= sign_date", values) is True


# ---------------------------------------------------------------- functions

def test_whitelist_is_exactly_the_documented_functions():
    assert set(FUNCTIONS) == {
        "len", "round", "abs", "min", "max", "sum", "avg", "count", "int", "decimal", "str",
        "upper", "lower", "trim", "today", "now", "days_between", "add_days", "contains",
        "coalesce", "year", "month",
    }


def test_len():
    assert evaluate("len(name)", {"name": "ACME"}) == 4
    assert evaluate("len(tags)", {"tags": ["a", "b"]}) == 2
    assert evaluate("len(name)", {}) == 0


def test_round_is_half_up_for_money():
    assert evaluate("round(2.5)") == 3
    assert evaluate("round(amount, 2)", {"amount": Decimal("2.675")}) == Decimal("2.68")
    assert evaluate("round(1234, -2)") == 1200
    assert evaluate("round(amount)", {}) is None


def test_abs_min_max():
    assert evaluate("abs(-3.5)") == Decimal("3.5")
    assert evaluate("min(3, 1, 2)") == 1
    assert evaluate("max(lines.amount)", {"lines": CONTRACT_LINES}) == Decimal("39.98")
    assert evaluate("min(lines.amount)", {"lines": []}) is None
    assert evaluate("max(a, b)", {"a": 2}) == 2


def test_sum_count_avg_ignore_none():
    assert evaluate("sum([1, None, 2])") == 3
    assert evaluate("sum([])") == 0
    assert evaluate("count([1, None, 2])") == 2
    assert evaluate("count(tags)", {}) == 0
    assert evaluate("avg([1, None, 2])") == Decimal("1.5")
    assert evaluate("avg([])") is None


def test_int_decimal_str():
    assert evaluate("int('12.7')") == 12
    assert evaluate("int(amount)", {"amount": Decimal("-3.9")}) == -3
    assert evaluate("decimal('19.99')") == Decimal("19.99")
    assert evaluate("decimal(amount)", {}) is None
    assert evaluate("str(12.50)") == "12.50"
    assert evaluate("str(amount)", {}) == ""
    assert evaluate("str(tags)", {"tags": ["a", "b"]}) == "a, b"


def test_upper_lower_trim():
    assert evaluate("upper(code)", {"code": "ab"}) == "AB"
    assert evaluate("lower('AB')") == "ab"
    assert evaluate("trim('  x ')") == "x"
    assert evaluate("upper(code)", {}) is None


def test_today_and_now_read_the_frozen_clock(frozen_clock):
    assert evaluate("today()") == date(2024, 6, 30)
    assert evaluate("now()") == frozen_clock
    assert evaluate("next_followup_at < today()", {"next_followup_at": date(2024, 6, 29)}) is True


def test_set_clock_none_restores_system_clock():
    previous = set_clock(lambda: datetime(2000, 1, 1))
    try:
        assert evaluate("year(today())") == 2000
    finally:
        set_clock(None)
    assert evaluate("today()") == date.today()
    set_clock(previous)


def test_days_between_counts_calendar_days_from_dates_datetimes_and_strings(frozen_clock):
    assert evaluate("days_between('2024-06-01', '2024-06-30')") == 29
    assert evaluate("days_between(today(), due)", {"due": datetime(2024, 7, 1, 8, 0)}) == 1
    assert evaluate("days_between(start, end)", {"start": date(2024, 1, 10), "end": date(2024, 1, 1)}) == -9
    assert evaluate("days_between(start, today())", {}) is None


def test_add_days():
    assert evaluate("add_days(d, 30)", {"d": date(2024, 1, 15)}) == date(2024, 2, 14)
    assert evaluate("add_days('2024-03-01', -1)") == date(2024, 2, 29)
    assert evaluate("add_days(d, 3)", {}) is None


def test_contains_is_substring_for_text_and_membership_for_lists():
    assert evaluate("contains(name, 'Ltd')", {"name": "ACME Ltd"}) is True
    assert evaluate("contains(tags, 'vip')", {"tags": ["vip"]}) is True
    assert evaluate("contains(tags, 'vip')", {}) is False
    assert evaluate("contains(name, x)", {"name": "abc"}) is False


def test_coalesce_returns_first_non_empty_value():
    assert evaluate("coalesce(discount, 0)", {}) == 0
    assert evaluate("coalesce(a, b, 'x')", {"b": "B"}) == "B"
    assert evaluate("coalesce(a)", {}) is None


def test_year_and_month():
    assert evaluate("year(d)", {"d": date(2024, 6, 30)}) == 2024
    assert evaluate("month('2024-06-30T10:00:00')") == 6
    assert evaluate("month(d)", {}) is None


def test_a_field_may_share_a_function_name():
    assert evaluate("count + 1", {"count": 2}) == 3
    assert compile_expression("count(tags) + count").names == {"tags", "count"}


# ---------------------------------------------------------------- child tables

def test_child_aggregates_over_rows():
    values = {"lines": CONTRACT_LINES}
    assert evaluate("sum(lines.amount)", values) == Decimal("54.98")
    assert evaluate("count(lines.amount)", values) == 2
    assert evaluate("sum(lines.quantity)", values) == 6
    assert evaluate("lines.product", values) == [1, 2, 3]
    assert evaluate("sum(lines.amount)", {}) == 0


def test_contract_total_must_match_its_lines():
    rule = "amount == sum(lines.amount)"
    assert evaluate(rule, {"amount": Decimal("54.98"), "lines": CONTRACT_LINES}) is True


def test_child_rows_with_float_values_sum_exactly():
    assert evaluate("sum(lines.amount)", {"lines": [{"amount": 0.1}, {"amount": 0.2}]}) == Decimal("0.3")


# ---------------------------------------------------------------- compile

def test_compile_reports_names_attributes_and_functions():
    expr = compile_expression("sum(lines.amount) > credit_limit and level == 'A' and today() > d")
    assert isinstance(expr, Expression)
    assert expr.names == {"lines", "credit_limit", "level", "d"}
    assert expr.attributes == {("lines", "amount")}
    assert expr.functions == {"sum", "today"}


def test_compile_excludes_constants_and_function_names_from_names():
    assert compile_expression("coalesce(a, None) == True").names == {"a"}


def test_compile_is_cached():
    assert compile_expression("amount > 1000") is compile_expression("amount > 1000")


def test_compiled_expression_evaluates_many_records():
    expr = compile_expression("amount >= 100000")
    assert [expr.evaluate({"amount": a}) for a in (5, 100000, None)] == [False, True, False]


def test_hand_built_expression_is_still_checked():
    with pytest.raises(ExpressionError):
        Expression("().__class__", frozenset(), frozenset()).evaluate({})


def test_compile_refuses_unknown_functions_and_wrong_arity():
    with pytest.raises(ExpressionError, match="unknown function 'foo'"):
        compile_expression("foo(1)")
    with pytest.raises(ExpressionError, match=r"days_between\(\) takes 2 arguments, got 1"):
        compile_expression("days_between(a)")


# ---------------------------------------------------------------- check_expression

def test_check_expression_accepts_a_valid_expression():
    assert check_expression("100 if level == 'A' else 50", ["level"]) == []
    assert check_expression("sum(lines.amount) > 0", ["amount"], {"lines": ["amount"]}) == []


def test_check_expression_reports_unknown_names_with_known_ones():
    errors = check_expression("amout > 0", ["amount", "level", "name"])
    assert errors == ["unknown name 'amout' (known: amount, level, name)"]


def test_check_expression_lists_at_most_ten_known_names():
    names = [f"field_{i:02}" for i in range(30)]
    [message] = check_expression("nope == 1", names)
    assert message.endswith(", ...)")
    assert message.count("field_") == 10


def test_check_expression_reports_unknown_functions():
    [message] = check_expression("foo(amount)", ["amount"])
    assert message.startswith("unknown function 'foo' (available: ")


def test_check_expression_reports_attribute_on_non_table_and_unknown_child_field():
    errors = check_expression("name.upper == 1 or sum(lines.amout) > 0", ["name"], {"lines": ["amount", "price"]})
    assert "'name.upper' is not allowed: 'name' is not a child table (child tables: lines)" in errors
    assert "unknown field 'amout' in child table 'lines' (known: amount, price)" in errors


def test_check_expression_reports_syntax_errors():
    [message] = check_expression("amount >", ["amount"])
    assert message.startswith("syntax error")


def test_check_expression_reports_forbidden_constructs():
    assert check_expression("[x for x in tags]", ["tags"]) == ["comprehensions are not allowed"]


def test_check_expression_reports_several_problems_at_once():
    errors = check_expression("foo(a) + bar", ["a"])
    assert len(errors) == 2


# ---------------------------------------------------------------- runtime errors

def test_division_by_zero_is_a_readable_expression_error():
    with pytest.raises(ExpressionError) as info:
        evaluate("a / b", {"a": 1, "b": 0})
    assert str(info.value) == "division by zero in 'a / b'"
    assert isinstance(info.value, ValueError)


def test_type_errors_are_readable_expression_errors():
    with pytest.raises(ExpressionError, match="can't use '\\+' with text and a number"):
        evaluate("'a' + 1")
    with pytest.raises(ExpressionError, match="can't compare text and a number with '<'"):
        evaluate("name < 3", {"name": "x"})
    with pytest.raises(ExpressionError, match="is not a number"):
        evaluate("int(code)", {"code": "abc"})


def test_date_arithmetic_points_to_the_date_functions():
    with pytest.raises(ExpressionError, match="use days_between"):
        evaluate("today() - sign_date", {"sign_date": date(2024, 1, 1)})


def test_error_messages_are_one_line():
    with pytest.raises(ExpressionError) as info:
        evaluate("(a\n +\n 'x')", {"a": 1})
    assert "\n" not in str(info.value)


def test_expression_errors_are_raised_for_non_string_sources():
    with pytest.raises(ExpressionError):
        compile_expression(None)  # type: ignore[arg-type]
    assert check_expression(42, []) == ["an expression must be a string, not int"]  # type: ignore[arg-type]


# ---------------------------------------------------------------- the sandbox

HOSTILE = [
    "().__class__",
    "().__class__.__bases__",
    "().__class__.__bases__[0].__subclasses__()",
    "x.__dict__",
    "x.__class__",
    "lines.amount.__class__",
    "sum.__self__",
    "len.__self__.__dict__",
    "__import__('os')",
    "__import__('os').system('id')",
    "__builtins__",
    "_private",
    "open('/etc/passwd')",
    "getattr(x, 'y')",
    "exec('1')",
    "eval('1')",
    "compile('1', '', 'eval')",
    "type(1)",
    "globals()",
    "locals()",
    "vars()",
    "dir()",
    "lambda: 1",
    "(lambda: 1)()",
    "[i for i in lines]",
    "{i for i in lines}",
    "{i: i for i in lines}",
    "sum(i for i in lines)",
    "{1, 2}",
    "{'a': 1}",
    "f'{x}'",
    "f'{x.__class__}'",
    "(y := 1)",
    "max(*tags)",
    "round(amount, ndigits=2)",
    "[].append",
    "[].append(1)",
    "'x'.format",
    "'{0.__class__}'.format(x)",
    "'abc'[0]",
    "x[0]",
    "tags[0:1]",
    "x.y.z",
    "name.upper",
    "name.upper()",
    "9**9**9",
    "10**100000",
    "9 ** 999",
    "'a' * 10**9",
    "[1] * 10**9",
    "'a' * 5000 + 'a' * 5000 + 'a' * 5000",
    "('a' * 9000) + ('b' * 9000)",
    "[[1] * 1000] * 1000",
    "str([['a' * 9000] * 10] * 10)",
    "upper('\u00df' * 6000)",
    "10**29 * 10**29",
    "sum([10**29] * 100)",
    "'%0999999999d' % 1",
    "1 << 100000",
    "~1",
    "1 | 2",
    "b'bytes'",
    "1j",
    "...",
    "1e999",
    "decimal('1e999999')",
    "int('9' * 5000)",
    "add_days(today(), 10**20)",
    "round(1, 10**9)",
    "x is 1",
    "await x",
    "(yield)",
    "import os",
    "1; 2",
    "a = 1",
    "'a\x00b'",
    "1 + " * 300 + "1",
    "(" * 500 + "1" + ")" * 500,
    "(" * 250 + "1" + ")" * 250,
    "[" * 150 + "]" * 150,
    "-" * 900 + "1",
    "not " * 240 + "x",
    "x" + ".y" * 300,
    "+".join(["a"] * 250),
    "str(lines.amount) * 10**9",
    "",
    "   ",
]


@pytest.mark.parametrize("source", HOSTILE, ids=lambda s: repr(s[:40]))
def test_hostile_expression_is_refused_quickly(source):
    values = {"x": 1, "name": "ACME", "tags": ["a"], "amount": Decimal("1.5"), "lines": [{"amount": 1}]}
    started = time.perf_counter()
    with pytest.raises(ExpressionError) as info:
        evaluate(source, values)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"took {elapsed:.3f}s"
    assert "\n" not in str(info.value)


def test_hostile_inputs_cover_at_least_thirty_cases():
    assert len(HOSTILE) >= 30


def test_limits_allow_ordinary_large_values():
    assert evaluate("'a' * 10000") == "a" * 10000
    assert evaluate("10**29") == 10**29
    assert evaluate("amount * 1000", {"amount": Decimal("99999999999.99")}) == Decimal("99999999999990.00")


def test_tiny_decimal_does_not_turn_into_a_megabyte_of_text():
    assert evaluate("str(decimal('1e-999999'))") == "1E-999999"
