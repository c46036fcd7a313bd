"""The expression language of metadata: conditions, formulas, validation rules, routing.

Admins type these in the browser designer, so the language is deliberately small and every
expression goes through two gates: a static whitelist pass over the Python AST (here, at
design time and on compile) and a bounded evaluation with `simpleeval` (operators and
functions in `_expr_sandbox` and `_expr_functions`). Names are the record's fields; `table.field` reads a child
table's column as a list. The reference for admins is `docs/expressions.md`.
"""
from __future__ import annotations

import ast
import threading
import difflib
import functools
import warnings
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

import simpleeval

from . import _expr_sandbox as _sb
from ._expr_functions import ARITY, FUNCTIONS, arity_text, set_clock
from ._expr_sandbox import ExpressionError

__all__ = [
    "FUNCTIONS",
    "Expression",
    "ExpressionError",
    "check_expression",
    "compile_expression",
    "evaluate",
    "set_clock",
]

MAX_SOURCE_LENGTH = 1_000
MAX_NODES = 200  # counted without the context/operator marker nodes
MAX_DEPTH = 100  # keeps simpleeval's recursive evaluation far from the recursion limit
MAX_KNOWN_LISTED = 10

_EMPTY: Mapping[str, Any] = MappingProxyType({})

#: Nodes that only mark a context or an operator; not counted towards MAX_NODES.
_MARKERS = (ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)
_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
           ast.Mod: "%", ast.Pow: "**"}
_UNARYOPS = (ast.Not, ast.USub, ast.UAdd)
_UNSUPPORTED_OPS = {ast.BitOr: "|", ast.BitAnd: "&", ast.BitXor: "^", ast.LShift: "<<",
                    ast.RShift: ">>", ast.MatMult: "@"}
_FORBIDDEN = {
    ast.Subscript: "indexing with [...] is not supported",
    ast.Slice: "slicing is not supported",
    ast.Dict: "dict displays {...} are not supported",
    ast.Set: "set displays {...} are not supported",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "generator expressions are not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.NamedExpr: "assignment expressions (:=) are not allowed",
    ast.Starred: "starred (*) expressions are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
}


@dataclass(frozen=True)
class Expression:
    """A compiled, statically checked expression; cheap to evaluate many times.

    `names` are the field names it reads (a child table counts as a name too), so callers
    can tell which fields a condition depends on; `attributes` are the child-table columns
    it reads; `functions` the whitelisted functions it calls (`today`/`now` make a formula
    time-dependent).
    """

    source: str
    names: frozenset[str]
    attributes: frozenset[tuple[str, str]]
    functions: frozenset[str] = frozenset()
    _tree: ast.expr | None = field(default=None, repr=False, compare=False)

    def evaluate(self, values: Mapping[str, Any] = _EMPTY) -> Any:
        """Evaluate against a record: field name -> value (child table -> list of row dicts).

        Missing names are None; floats are turned into Decimal first so money stays exact.
        Every failure, including runtime ones like division by zero, is an ExpressionError.
        """
        if values is None:
            values = _EMPTY
        # A hand-built Expression has no checked tree: never evaluate anything unchecked.
        tree = self._tree if self._tree is not None else compile_expression(self.source)._tree
        names = {name: _sb.normalise(values.get(name)) for name in self.names}
        evaluator = _borrow_evaluator(names)
        try:
            with _sb.decimal_context():
                result = evaluator.eval(self.source, previously_parsed=tree)
        except ExpressionError as exc:
            raise ExpressionError(exc.problem, self.source) from None
        except Exception as exc:  # every runtime failure reaches the caller as one type
            raise ExpressionError(_sb.describe(exc), self.source) from None
        finally:
            evaluator.names = {}
            _idle_evaluators.pool.append(evaluator)
        return result


#: Evaluators kept for reuse, per thread: building one costs more than most evaluations
#: (a record's rules and conditions are evaluated on every save, an import's per row).
_idle_evaluators = threading.local()


def _borrow_evaluator(names: dict[str, Any]) -> "_Evaluator":
    pool = getattr(_idle_evaluators, "pool", None)
    if pool is None:
        pool = _idle_evaluators.pool = []
    evaluator = pool.pop() if pool else _Evaluator({})
    evaluator.names = names
    return evaluator


class _Evaluator(simpleeval.SimpleEval):
    """simpleeval with our operators and functions, no name fallbacks, and child columns.

    The static pass has already removed everything but the whitelisted node types; this
    class only decides what the remaining nodes mean.
    """

    def __init__(self, names: dict[str, Any]) -> None:
        super().__init__(operators=_sb.OPERATORS, functions=FUNCTIONS, names=names)
        self.nodes[ast.List] = lambda node: [self._eval(item) for item in node.elts]
        self.nodes[ast.Tuple] = lambda node: tuple(self._eval(item) for item in node.elts)

    def _eval_name(self, node: ast.Name) -> Any:
        # Unlike simpleeval, never fall back to the function table: `sum` alone is a field.
        return self.names.get(node.id)

    def _eval_attribute(self, node: ast.Attribute) -> Any:
        if not isinstance(node.value, ast.Name):  # the static pass refuses this already
            raise ExpressionError("attribute access is only for child tables, as table.field")
        return _sb.column(node.value.id, self.names.get(node.value.id), node.attr)

    def _eval_call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise ExpressionError("only the documented functions can be called")
        args = [self._eval(arg) for arg in node.args]
        return _sb.bounded(FUNCTIONS[node.func.id](*args))


@dataclass
class _Analysis:
    tree: ast.expr | None
    problems: list[str]
    names: set[str] = field(default_factory=set)
    attributes: set[tuple[str, str]] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)


def _known(candidates: Collection[str], wanted: str, word: str = "known") -> str:
    """'(known: a, b, ...)' with the closest matches first, at most MAX_KNOWN_LISTED."""
    ordered = sorted(candidates)
    if not ordered:
        return f"(no {word} names)" if word == "known" else f"({word}: none)"
    close = difflib.get_close_matches(wanted, ordered, n=3, cutoff=0.6)
    listed = close + [c for c in ordered if c not in close]
    more = ", ..." if len(listed) > MAX_KNOWN_LISTED else ""
    return f"({word}: {', '.join(listed[:MAX_KNOWN_LISTED])}{more})"


def _parse(source: str) -> tuple[ast.expr | None, str | None]:
    if not isinstance(source, str):
        return None, f"an expression must be a string, not {type(source).__name__}"
    if len(source) > MAX_SOURCE_LENGTH:
        return None, f"expression is too long ({len(source)} characters; the limit is {MAX_SOURCE_LENGTH})"
    if not source.strip():
        return None, "empty expression"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarnings such as "'is' with a literal"
            tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        where = f" at column {exc.offset}" if exc.offset else ""
        return None, f"syntax error{where}: {exc.msg}"
    except (ValueError, RecursionError, MemoryError):
        return None, "expression is too complex to parse"
    return tree.body, None


def _measure(tree: ast.AST) -> tuple[int, int]:
    """Node count and depth without recursion, so hostile nesting can't overflow the stack."""
    count, depth, stack = 0, 0, [(tree, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, _MARKERS):
            continue
        count += 1
        depth = max(depth, level)
        if count > MAX_NODES or depth > MAX_DEPTH:
            break
        stack.extend((child, level + 1) for child in ast.iter_child_nodes(node))
    return count, depth


@functools.lru_cache(maxsize=4096)
def _analyse(source: str) -> _Analysis:
    """Parse and run the whitelist pass, collecting every problem (not just the first)."""
    tree, problem = _parse(source)
    if tree is None:
        return _Analysis(None, [problem or "invalid expression"])
    count, depth = _measure(tree)
    if count > MAX_NODES:
        return _Analysis(None, [f"expression is too complex (more than {MAX_NODES} parts)"])
    if depth > MAX_DEPTH:
        return _Analysis(None, [f"expression is nested too deeply (more than {MAX_DEPTH} levels)"])
    result = _Analysis(tree, [])
    _visit(tree, result, source.strip())
    if result.problems:
        result.tree = None
    return result


def _visit(node: ast.AST, out: _Analysis, source: str) -> None:  # noqa: C901 - one branch per node type
    """The whitelist: anything not handled here is refused. Depth is bounded by MAX_DEPTH."""
    problems = out.problems
    if type(node) in _FORBIDDEN:
        problems.append(_FORBIDDEN[type(node)])
    elif isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, float):
            number = _decimal_literal(node, source)
            if number is None:
                problems.append(f"number {ast.get_source_segment(source, node)} is too large")
            node.value = number
        elif isinstance(value, bool) or value is None:
            pass
        elif isinstance(value, int):
            if abs(value) >= _sb.MAX_NUMBER:
                problems.append(f"number {str(value)[:20]}... is too large")
        elif isinstance(value, str):
            if len(value) > _sb.MAX_STRING_LENGTH:
                problems.append("text literal is too long")
        else:
            problems.append(f"{type(value).__name__} literals are not supported")
    elif isinstance(node, ast.Name):
        if _reserved(node.id, problems):
            return
        out.names.add(node.id)
    elif isinstance(node, ast.Attribute):
        if not isinstance(node.value, ast.Name):
            problems.append(f"'.{node.attr}' is not allowed: attribute access is only for "
                            "child tables, as table.field")
        elif not _reserved(node.value.id, problems) and not _reserved(node.attr, problems):
            out.names.add(node.value.id)
            out.attributes.add((node.value.id, node.attr))
    elif isinstance(node, ast.Call):
        _visit_call(node, out, source)
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _BINOPS:
            symbol = _UNSUPPORTED_OPS.get(type(node.op), type(node.op).__name__)
            problems.append(f"operator '{symbol}' is not supported")
        _visit(node.left, out, source)
        _visit(node.right, out, source)
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, _UNARYOPS):
            problems.append("operator '~' is not supported")
        _visit(node.operand, out, source)
    elif isinstance(node, ast.Compare):
        for op, right in zip(node.ops, node.comparators):
            if isinstance(op, (ast.Is, ast.IsNot)) and not (
                isinstance(right, ast.Constant) and right.value is None
            ):
                problems.append("'is' is only allowed as 'is None' or 'is not None'; use == otherwise")
        for child in (node.left, *node.comparators):
            _visit(child, out, source)
    elif isinstance(node, (ast.BoolOp, ast.List, ast.Tuple, ast.IfExp)):
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, _MARKERS):
                _visit(child, out, source)
    else:
        problems.append(f"{type(node).__name__} is not allowed in expressions")


def _visit_call(node: ast.Call, out: _Analysis, source: str) -> None:
    problems = out.problems
    func = node.func
    if isinstance(func, ast.Attribute):
        problems.append(f"method calls like '.{func.attr}(...)' are not allowed")
        return
    if not isinstance(func, ast.Name):
        problems.append("only the documented functions can be called")
        return
    if _reserved(func.id, problems):
        return
    if func.id not in FUNCTIONS:
        problems.append(f"unknown function '{func.id}' {_known(FUNCTIONS, func.id, 'available')}")
        return
    if node.keywords:
        problems.append(f"keyword arguments are not allowed (in {func.id}(...))")
    if any(isinstance(arg, ast.Starred) for arg in node.args):
        problems.append(f"starred arguments are not allowed (in {func.id}(...))")
        return
    low, high = ARITY[func.id]
    if not low <= len(node.args) <= (high if high is not None else len(node.args)):
        problems.append(f"{func.id}() takes {arity_text(func.id)}, got {len(node.args)}")
    out.functions.add(func.id)
    for arg in node.args:
        _visit(arg, out, source)


def _reserved(name: str, problems: list[str]) -> bool:
    if name.startswith("_"):
        problems.append(f"'{name}' is not allowed: names starting with '_' are reserved")
        return True
    return False


def _decimal_literal(node: ast.Constant, source: str) -> Decimal | None:
    """The literal as written (not via float), so 0.1 is exactly Decimal('0.1').

    None when the number is out of range (the caller reports it).
    """
    text = ast.get_source_segment(source, node) or repr(node.value)
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        value = Decimal(repr(node.value))
    if not value.is_finite() or abs(value) >= _sb.MAX_NUMBER:
        return None
    return value


def compile_expression(source: str) -> Expression:
    """Parse and statically check `source`; raise ExpressionError on the first problem.

    Results are cached, so evaluating the same metadata expression per record costs no
    parsing. Unknown *field* names are not checked here (use check_expression with the
    entity's fields); unknown *functions* and forbidden constructs are.
    """
    if not isinstance(source, str):
        raise ExpressionError(f"an expression must be a string, not {type(source).__name__}")
    return _compiled(source)


@functools.lru_cache(maxsize=4096)
def _compiled(source: str) -> Expression:
    analysis = _analyse(source)
    if analysis.problems:
        raise ExpressionError(analysis.problems[0], source)
    return Expression(source, frozenset(analysis.names), frozenset(analysis.attributes),
                      frozenset(analysis.functions), analysis.tree)


def check_expression(
    source: str,
    names: Collection[str],
    child_fields: Mapping[str, Collection[str]] = _EMPTY,
) -> list[str]:
    """Design-time validation: every problem as a message; an empty list means fine.

    `names` are the fields the expression may read; `child_fields` maps each child-table
    field to its row fields (the only valid `table.field` references).
    """
    if not isinstance(source, str):
        return [f"an expression must be a string, not {type(source).__name__}"]
    analysis = _analyse(source)
    problems = list(analysis.problems)
    known = set(names) | set(child_fields)
    table_names = {table for table, _ in analysis.attributes}
    for name in sorted(analysis.names - table_names):
        if name not in known:
            problems.append(f"unknown name '{name}' {_known(known, name)}")
    for table, column in sorted(analysis.attributes):
        if table not in child_fields:
            problems.append(f"'{table}.{column}' is not allowed: '{table}' is not a child table "
                            f"{_known(child_fields, table, 'child tables')}")
        elif column not in child_fields[table]:
            problems.append(f"unknown field '{column}' in child table '{table}' "
                            f"{_known(child_fields[table], column)}")
    return problems


def evaluate(source: str, values: Mapping[str, Any] = _EMPTY) -> Any:
    """compile_expression(source).evaluate(values) — the one-shot convenience."""
    return compile_expression(source).evaluate(values)
