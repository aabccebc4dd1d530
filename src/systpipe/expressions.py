"""A small, safe expression language over named numpy columns (selections, derived columns).

Expressions are parsed with :mod:`ast` and evaluated by walking a whitelisted set of nodes over
numpy arrays: nothing is ever passed to ``eval``, ``exec`` or ``compile``. Allowed:

- numbers (int, float) and column names (Python identifiers);
- arithmetic ``+ - * /`` and unary minus/plus;
- comparisons ``== != < <= > >=`` (chains such as ``0 < x < 1`` included);
- ``and``, ``or``, ``not``;
- the functions ``abs sqrt log exp cos sin cosh hypot`` (positional arguments only).

Anything else (attribute access, subscripts, other calls, lambdas, comprehensions, strings,
``**``, bitwise operators ...) is refused with a :class:`~systpipe.errors.ConfigError` naming the
expression, the offending token and what is allowed.

Example:
    >>> e = parse_expression("lep1_pt + lep2_pt > 50 and not (n_jets >= 2)", key="sel")
    >>> sorted(e.columns)
    ['lep1_pt', 'lep2_pt', 'n_jets']
    >>> cols = {"lep1_pt": np.array([30.0, 40.0]), "lep2_pt": np.array([30.0, 5.0]),
    ...         "n_jets": np.array([0, 0])}
    >>> e.evaluate(cols).tolist()
    [True, False]
    >>> parse_expression("hypot(3, x) / 2", key="k").evaluate({"x": np.array([4.0])}).tolist()
    [2.5]
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ConfigError, IngestError

#: The whitelisted functions, by the name used in expressions.
FUNCTIONS: dict[str, tuple[Callable[..., Any], int]] = {
    "abs": (np.abs, 1),
    "sqrt": (np.sqrt, 1),
    "log": (np.log, 1),
    "exp": (np.exp, 1),
    "cos": (np.cos, 1),
    "sin": (np.sin, 1),
    "cosh": (np.cosh, 1),
    "hypot": (np.hypot, 2),
}
MAX_LENGTH = 2000
ALLOWED = (
    "numbers, column names, + - * /, unary minus, comparisons (== != < <= > >=), "
    f"and/or/not, and the functions {sorted(FUNCTIONS)}"
)
_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.true_divide,
}
_CMPOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
}
_SYMBOLS = {
    ast.Pow: "**",
    ast.Mod: "%",
    ast.FloorDiv: "//",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.Invert: "~",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.MatMult: "@",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
}


def _token(node: ast.AST, text: str) -> str:
    op = getattr(node, "op", None)
    for candidate in (node, op):
        if candidate is not None and type(candidate) in _SYMBOLS:
            return repr(_SYMBOLS[type(candidate)])
    segment = ast.get_source_segment(text, node) if hasattr(node, "lineno") else None
    name = type(node).__name__
    return f"{segment!r} ({name})" if segment else name


@dataclass(frozen=True)
class Expression:
    """A parsed, checked expression: its text, the config key it came from and its columns."""

    text: str
    key: str
    tree: ast.Expression
    columns: frozenset[str]

    def check_columns(self, available: Any, *, where: str = "") -> None:
        """Raise IngestError if a column the expression uses is not among ``available``."""
        missing = sorted(self.columns - set(available))
        if missing:
            place = f"{where}: " if where else ""
            raise IngestError(
                f"{place}'{self.key}' = {self.text!r} uses column(s) {missing} that do not exist; "
                f"columns available: {sorted(available)}"
            )

    def evaluate(self, columns: Mapping[str, Any], *, where: str = "") -> np.ndarray:
        """Evaluate over ``columns`` (name -> array); returns a numpy array (or a scalar
        broadcast to the length of the columns)."""
        self.check_columns(columns, where=where)
        with np.errstate(all="ignore"):
            value = _Evaluator(self, columns).visit(self.tree.body)
        value = np.asarray(value)
        if value.ndim == 0 and columns:
            n = len(next(iter(columns.values())))
            value = np.full(n, value[()])
        return value


class _Evaluator:
    def __init__(self, expression: Expression, columns: Mapping[str, Any]) -> None:
        self.expression = expression
        self.columns = columns

    def visit(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return np.float64(node.value)  # type: ignore[arg-type]  # _check allows int|float only
        if isinstance(node, ast.Name):
            arr = np.asarray(self.columns[node.id])
            return arr.astype(np.float64) if arr.dtype.kind in "iub" else arr
        if isinstance(node, ast.BinOp):
            return _BINOPS[type(node.op)](self.visit(node.left), self.visit(node.right))
        if isinstance(node, ast.UnaryOp):
            operand = self.visit(node.operand)
            if isinstance(node.op, ast.Not):
                return np.logical_not(operand)
            return np.negative(operand) if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BoolOp):
            join = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            out = self.visit(node.values[0])
            for value in node.values[1:]:
                out = join(out, self.visit(value))
            return out
        if isinstance(node, ast.Compare):
            left = self.visit(node.left)
            out = None
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                right = self.visit(comparator)
                part = _CMPOPS[type(op)](left, right)
                out = part if out is None else np.logical_and(out, part)
                left = right
            return out
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name)
            func, _ = FUNCTIONS[node.func.id]
            return func(*(self.visit(a) for a in node.args))
        raise AssertionError(f"unchecked node {type(node).__name__}")  # pragma: no cover


def _check(node: ast.AST, text: str, key: str, columns: set[str]) -> None:
    def refuse(what: str) -> ConfigError:
        return ConfigError(f"'{key}' = {text!r}: {what} is not allowed; allowed: {ALLOWED}")

    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise refuse(f"the constant {node.value!r}")
        return
    if isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            raise refuse(f"the function name {node.id!r} without a call")
        columns.add(node.id)
        return
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINOPS:
            raise refuse(f"the operator {_token(node, text)}")
        _check(node.left, text, key, columns)
        _check(node.right, text, key, columns)
        return
    if isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, ast.USub | ast.UAdd | ast.Not):
            raise refuse(f"the operator {_token(node, text)}")
        _check(node.operand, text, key, columns)
        return
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _check(value, text, key, columns)
        return
    if isinstance(node, ast.Compare):
        for op in node.ops:
            if type(op) not in _CMPOPS:
                raise refuse(f"the comparison {_SYMBOLS.get(type(op), type(op).__name__)!r}")
        for child in (node.left, *node.comparators):
            _check(child, text, key, columns)
        return
    if isinstance(node, ast.Call):
        func = node.func
        if not isinstance(func, ast.Name) or func.id not in FUNCTIONS:
            raise refuse(f"the call {_token(node, text)}")
        if node.keywords:
            raise refuse(f"keyword arguments in {_token(node, text)}")
        arity = FUNCTIONS[func.id][1]
        if len(node.args) != arity or any(isinstance(a, ast.Starred) for a in node.args):
            raise ConfigError(
                f"'{key}' = {text!r}: {func.id}() takes {arity} positional argument(s), "
                f"got {len(node.args)}"
            )
        for arg in node.args:
            _check(arg, text, key, columns)
        return
    raise refuse(_token(node, text))


def parse_expression(text: Any, *, key: str) -> Expression:
    """Parse and check ``text``; ``key`` (the config key) is named in every error.

    Raises:
        ConfigError: not a string, a syntax error, or a construct outside the whitelist.

    Example:
        >>> parse_expression("x.__class__", key="files.samples[0].selection")
        Traceback (most recent call last):
        ...
        systpipe.errors.ConfigError: 'files.samples[0].selection' = 'x.__class__': 'x.__class__' (Attribute) is not allowed; allowed: numbers, column names, + - * /, unary minus, comparisons (== != < <= > >=), and/or/not, and the functions ['abs', 'cos', 'cosh', 'exp', 'hypot', 'log', 'sin', 'sqrt']
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"'{key}' = {text!r}: expected a non-empty expression string")
    if len(text) > MAX_LENGTH:
        raise ConfigError(f"'{key}': expression of {len(text)} characters; at most {MAX_LENGTH}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ConfigError(
            f"'{key}' = {text!r}: syntax error at column {exc.offset}: {exc.msg}; allowed: {ALLOWED}"
        ) from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise ConfigError(f"'{key}' = {text!r}: cannot parse ({type(exc).__name__})") from None
    columns: set[str] = set()
    try:
        _check(tree.body, text.strip(), key, columns)
    except RecursionError:
        raise ConfigError(f"'{key}' = {text!r}: expression nested too deeply") from None
    return Expression(text=text.strip(), key=key, tree=tree, columns=frozenset(columns))


def parse_columns(definitions: Mapping[str, Any] | None, *, key: str) -> dict[str, Expression]:
    """Parse an ordered mapping ``name -> expression`` (``files.derived_columns``).

    Example:
        >>> d = parse_columns({"s": "a + b", "r": "s / a"}, key="files.derived_columns")
        >>> [(n, sorted(e.columns)) for n, e in d.items()]
        [('s', ['a', 'b']), ('r', ['a', 's'])]
    """
    out: dict[str, Expression] = {}
    for name, text in (definitions or {}).items():
        if not str(name).isidentifier():
            raise ConfigError(f"'{key}': column name {name!r} is not an identifier")
        out[str(name)] = parse_expression(text, key=f"{key}.{name}")
    return out


def evaluate_columns(
    frame: Any, definitions: Mapping[str, Expression], *, where: str = ""
) -> dict[str, np.ndarray]:
    """Evaluate derived columns in order over ``frame`` (a DataFrame or a mapping); later
    definitions may use earlier ones. Returns name -> float64 array."""
    scope: dict[str, Any] = {c: frame[c] for c in frame.keys()}
    out: dict[str, np.ndarray] = {}
    for name, expression in definitions.items():
        value = np.asarray(expression.evaluate(scope, where=where), dtype=np.float64)
        scope[name] = value
        out[name] = value
    return out


__all__ = [
    "ALLOWED",
    "FUNCTIONS",
    "Expression",
    "evaluate_columns",
    "parse_columns",
    "parse_expression",
]
