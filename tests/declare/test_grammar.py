"""The restricted shape grammar: only declared names, numbers, + - * / ** and sqrt."""
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from mup_derive.declare import DeclarationError, architecture

GOOD = {"name": "w", "role": "hidden", "fan_in": "n", "fan_out": "n"}


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet="nLrxyz+-*/()0123456789 ", min_size=1, max_size=12))
def test_fuzzed_fan_in_is_accepted_or_named(expr):
    try:
        architecture("a", [{**GOOD, "fan_in": expr}])
    except DeclarationError as exc:
        assert exc.op == "w" and exc.field == "fan_in"


@pytest.mark.parametrize("expr,msg", [
    ("E * n", "unknown symbol 'E'"), ("pi * n", "unknown symbol 'pi'"), ("N * n", "unknown symbol 'N'"),
    ("S", "unknown symbol 'S'"), ("Q + n", "unknown symbol 'Q'"), ("I * n", "unknown symbol 'I'"),
    ("gamma", "unknown symbol 'gamma'"), ("beta * n", "unknown symbol 'beta'"),
    ("()", "not allowed"), ("n,n", "not allowed"), ("__import__('os').getcwd()", "not allowed"),
    ("n.real", "not allowed"), ("n ** n", "exponents"), ("2 ** 999", "exponents"), ("[n]", "not allowed"),
    ("lambda: n", "not allowed"), ("1/vocab", "at least 1"), ("n / 1e30", "out of range"), ("", "cannot parse"),
])
def test_restricted_grammar(expr, msg):
    with pytest.raises(DeclarationError, match=msg) as err:
        architecture("a", [{**GOOD, "fan_in": expr}], dims={"vocab": 256})
    assert err.value.field == "fan_in" and "\n" not in str(err.value)


def test_declared_names_shadow_nothing():
    """Names SymPy would read as constants or functions are plain dims once declared."""
    a = architecture("a", [{**GOOD, "fan_in": "N * n", "fan_out": "sqrt(E) * gamma * n"}],
                     dims={"N": 2, "gamma": 3}, scaled={"E": "experts"})
    assert str(a.ops[0].fan_in) == "N*n" and a.ops[0].fan_out.free_symbols == {
        sp.Symbol(s, positive=True) for s in ("E", "gamma", "n")}


@pytest.mark.parametrize("expr,msg", [
    ("sqrt(" * 20 + "n" + ")" * 20, "nests deeper"),            # evaluated once per level, refused past 16
    ("((((2**64)**64)**64)**64)**64", "out of range"),            # no giant integers
    ("((((n**64)**64)**64)**64)**64", "degree above"),            # no giant exponents
    ("(" * 300 + "n" + ")" * 300, "at most 200"),
    ("+".join(["n"] * 40), "more than 64"),
])
def test_work_is_bounded(expr, msg):
    with pytest.raises(DeclarationError, match=msg):
        architecture("a", [{**GOOD, "fan_in": expr}])


@pytest.mark.parametrize("expr", ["n/(r-1)", "sqrt(n-2000)", "(n-2000)**(1/2)", "n**64*2**64"])
def test_undefined_or_overflowing_values_are_named(expr):
    with pytest.raises(DeclarationError, match="positive dimension") as err:
        architecture("a", [{**GOOD, "fan_in": expr}])
    assert err.value.field == "fan_in"


@pytest.mark.parametrize("name", ["lambda", "min", "print"])
def test_scaled_symbols_that_python_cannot_take_are_refused(name):
    with pytest.raises(DeclarationError, match="Python keywords"):
        architecture("a", [GOOD], scaled={name: "bad"})
