"""Tests of systpipe.expressions: the safe expression language of selections and derived columns."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from systpipe.errors import ConfigError, IngestError
from systpipe.expressions import ALLOWED, evaluate_columns, parse_columns, parse_expression

DEEP = ": expression nested too deeply"
COLS = {
    "a": np.array([1.0, 2.0, 3.0, 4.0]),
    "b": np.array([4.0, 3.0, 2.0, 1.0]),
    "pid": np.array([1, 2, 3, 2]),
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a + b * 2 - 1", [8.0, 7.0, 6.0, 5.0]),
        ("a / b", [0.25, 2 / 3, 1.5, 4.0]),
        ("-a + +b", [3.0, 1.0, -1.0, -3.0]),
        ("abs(b - a)", [3.0, 1.0, 1.0, 3.0]),
        ("sqrt(a) * sqrt(a)", [1.0, 2.0, 3.0, 4.0]),
        ("hypot(a, b)", list(np.hypot(COLS["a"], COLS["b"]))),
        ("log(exp(a))", [1.0, 2.0, 3.0, 4.0]),
        ("cos(0 * a) + sin(0 * a) + cosh(0 * a)", [2.0, 2.0, 2.0, 2.0]),
        ("pid == 2", [False, True, False, True]),
        ("pid != 2 and a > 1", [False, False, True, False]),
        ("pid == 1 or not (b < 2)", [True, True, True, False]),
        ("1 < a <= 3", [False, True, True, False]),
        ("2.5e0 >= a", [True, True, False, False]),
    ],
)
def test_evaluates_whitelisted_nodes(text, expected):
    out = parse_expression(text, key="k").evaluate(COLS)
    np.testing.assert_allclose(out.astype(float), np.asarray(expected, dtype=float), rtol=1e-12)


def test_constant_expression_broadcasts_and_columns_are_reported():
    e = parse_expression("3", key="k")
    assert e.evaluate(COLS).tolist() == [3.0] * 4
    assert parse_expression("a + hypot(b, pid)", key="k").columns == {"a", "b", "pid"}


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("a.__class__", "'a.__class__' (Attribute)"),
        ("__import__('os').system('true')", "the call"),
        ("eval('1')", "the call \"eval('1')\""),
        ("a[0]", "'a[0]' (Subscript)"),
        ("(lambda x: x)(a)", "the call"),
        ("lambda: 1", "Lambda"),
        ("[x for x in a]", "ListComp"),
        ("'text' == a", "the constant 'text'"),
        ("a ** 2", "'**'"),
        ("a & b", "'&'"),
        ("~a", "'~'"),
        ("a in b", "'in'"),
        ("True", "the constant True"),
        ("sqrt", "the function name 'sqrt' without a call"),
        ("sqrt(x=a)", "keyword arguments"),
        ("(a := 1)", "NamedExpr"),
        ("a if b else pid", "IfExp"),
    ],
)
def test_refuses_everything_else_naming_expression_token_and_allowed(text, token):
    with pytest.raises(ConfigError) as info:
        parse_expression(text, key="files.samples[1].selection")
    msg = str(info.value)
    assert msg.startswith(f"'files.samples[1].selection' = {text!r}: "), msg
    assert token in msg, msg
    assert "is not allowed; allowed: " + ALLOWED in msg


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a +", "syntax error at column"),
        ("", "expected a non-empty expression string"),
        ("hypot(a)", "hypot() takes 2 positional argument(s), got 1"),
        ("a; b", "syntax error"),
        ("-" * 3000 + "a", "at most 2000"),
    ],
)
def test_malformed_expressions(text, fragment):
    with pytest.raises(ConfigError, match="files.derived_columns.x") as info:
        parse_expression(text, key="files.derived_columns.x")
    assert fragment in str(info.value)


def test_deep_nesting_is_refused_not_a_crash():
    with pytest.raises(ConfigError) as info:
        parse_expression("-" * 1999 + "a", key="k")
    assert str(info.value).startswith("'k' = '---")
    assert str(info.value).endswith(DEEP)
    assert parse_expression("(" * 150 + "a" + ")" * 150, key="k").evaluate(COLS).tolist() == [
        1.0,
        2.0,
        3.0,
        4.0,
    ]


def test_unknown_column_names_the_expression_and_the_columns_available():
    with pytest.raises(IngestError) as info:
        parse_expression("a + nope", key="files.samples[0].selection").evaluate(
            COLS, where="f.root"
        )
    msg = str(info.value)
    assert "f.root: 'files.samples[0].selection' = 'a + nope' uses column(s) ['nope']" in msg
    assert "columns available: ['a', 'b', 'pid']" in msg


def test_derived_columns_are_evaluated_in_order():
    defs = parse_columns({"s": "a + b", "r": "s / b"}, key="files.derived_columns")
    out = evaluate_columns(COLS, defs)
    assert out["s"].tolist() == [5.0] * 4
    assert out["r"].tolist() == [1.25, 5 / 3, 2.5, 5.0]
    with pytest.raises(ConfigError, match="column name 'not ok' is not an identifier"):
        parse_columns({"not ok": "a"}, key="files.derived_columns")


def test_the_module_never_calls_eval_exec_or_compile():
    source = Path(__import__("systpipe.expressions").expressions.__file__).read_text()
    calls = {
        node.func.id
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert not calls & {"eval", "exec", "compile", "__import__"}
