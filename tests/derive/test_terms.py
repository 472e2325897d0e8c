"""Products of powers: factoring, primitive sums, solving, and exponents by linear algebra on the bases."""
import pytest
import sympy as sp

from mup_derive.derive.asymptotics import exponents, lead
from mup_derive.derive.terms import Term

n, L, r, E, V = sp.symbols("n L r E V", positive=True)
HALF = sp.Rational(1, 2)


def test_a_product_of_symbols_and_numbers_factors_into_its_bases():
    t = Term.of(4 * n ** HALF / (sp.sqrt(2) * L))
    assert t.coeff == 2 * sp.sqrt(2)
    assert dict(t.powers) == {n: HALF, L: -1}


@pytest.mark.parametrize("expr,monomial,primitive", [
    (sp.sqrt(n / r) + sp.sqrt(n), sp.sqrt(n) / sp.sqrt(r), 1 + sp.sqrt(r)),   # the KV repeat's sum
    (sp.sqrt(3 * n) + sp.sqrt(n), sp.sqrt(n), None),                          # a constant sum folds into coeff
    (sp.sqrt(E) + sp.sqrt(n), 1, sp.sqrt(E) + sp.sqrt(n)),                   # already primitive
])
def test_a_sum_splits_into_its_common_monomial_and_a_primitive_sum(expr, monomial, primitive):
    t = Term.of(expr)
    assert sp.simplify(t.expr - expr) == 0                                  # exact
    sums = [b for b, _ in t.powers if b.is_Add]
    assert sums == ([] if primitive is None else [sp.expand(primitive)])
    assert sp.simplify(t.without(sums[0]).expr / t.coeff - monomial) == 0 if sums else True


def test_solving_a_linear_condition_divides_terms():
    sigma = sp.Symbol("sigma", positive=True)
    lhs = Term.of(sigma) * Term.of(sp.sqrt(E) + sp.sqrt(n))
    sol = lhs.solve(sigma, Term.of(sp.sqrt(E / n)))
    assert sp.simplify(sol.expr - sp.sqrt(E / n) / (sp.sqrt(E) + sp.sqrt(n))) == 0
    with pytest.raises(ArithmeticError):
        (lhs * Term.of(sigma)).solve(sigma, Term.of(n))


def test_exponents_depend_on_the_regime_the_user_states():
    """The router init sqrt(E/n) / (sqrt(E) + sqrt(n)): E^(1/2) n^-1 when n dominates, E^0 n^(-1/2) when E does."""
    t = Term.of(sp.sqrt(E / n) / (sp.sqrt(E) + sp.sqrt(n)))
    assert exponents(t, (n, E)) == {"n": -1, "E": HALF}
    assert exponents(t, (E, n)) == {"E": 0, "n": -HALF}
    assert exponents(t, (n,)) == {"n": -1}                                 # E held fixed: not reported
    assert sp.simplify(lead(t, n) - sp.sqrt(E) / n) == 0
    assert lead(t, None) == t.expr
