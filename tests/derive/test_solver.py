"""Solved exponents against published tables (TP5 Table 3, CompleteP Table 1, GQA-μP)."""
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from mup_derive.declare import architecture, load, n, r
from mup_derive.derive import Settings, gqa_factor, solve
from mup_derive.derive.render import explained
from tests.helpers import GQA, MHA

HALF = sp.Rational(1, 2)


@pytest.fixture(scope="module")
def mha():
    return solve(load(MHA), Settings(alpha=1))


@pytest.fixture(scope="module")
def mlp():
    """A width-only MLP (no residual branches): TP5's setting."""
    return solve(architecture("mlp", [
        {"name": "input", "role": "input", "fan_in": "d", "fan_out": "n"},
        {"name": "bias", "role": "vector", "fan_out": "n"},
        {"name": "hidden", "role": "hidden", "fan_in": "n", "fan_out": "n"},
        {"name": "output", "role": "output", "fan_in": "n", "fan_out": "d"},
        {"name": "out_mult", "role": "output", "fan_in": "n", "fan_out": "d", "gauge": "multiplier"},
    ], dims={"d": 10}))


@pytest.mark.parametrize("op,init,lr_adam,lr_sgd", [
    ("input", 0, 0, 1), ("bias", 0, 0, 1), ("hidden", -HALF, -1, 0), ("output", -1, -1, -1)])
def test_tp5_table3(mlp, op, init, lr_adam, lr_sgd):
    assert mlp.exponents(op, "init_std")[0] == init
    assert mlp.exponents(op, "multiplier")[0] == 0
    assert mlp.exponents(op, "lr", "adam")[0] == lr_adam
    assert mlp.exponents(op, "lr", "sgd")[0] == lr_sgd


def test_tp5_output_multiplier_gauge(mlp):
    """TP5 Table 8 / mup's MuReadout: multiplier 1/n, Theta(1) init, Adam LR Theta(1), SGD LR n."""
    assert mlp.exponents("out_mult", "multiplier")[0] == -1
    assert mlp.exponents("out_mult", "init_std")[0] == 0
    assert mlp.exponents("out_mult", "lr", "adam")[0] == 0
    assert mlp.exponents("out_mult", "lr", "sgd")[0] == 1


def test_tp5_attention_logits(mha):
    e = mha.get("attn_logits", "multiplier")
    assert e.exponents["n"] == -1 and e.expr == sp.Symbol("heads", positive=True) / n  # 1/d_head


@pytest.mark.parametrize("alpha", [sp.Integer(1), HALF])
def test_completep_table1(alpha):
    t = solve(load(MHA), Settings(alpha=alpha))
    assert t.exponents("residual", "multiplier") == (0, -alpha, 0)
    for op in ("q", "k", "v", "o", "mlp_up", "mlp_down"):
        assert t.exponents(op, "init_std") == (-HALF, 0, 0)
        assert t.exponents(op, "lr", "adam") == (-1, alpha - 1, 0)
        # q and k feed q.k/d: their gradient at init carries d^-1/2 more (test_eps_follows_the_measured_gradient)
        assert t.exponents(op, "eps", "adam") == (-1 - (HALF if op in ("q", "k") else 0), -alpha, 0)
        assert t.exponents(op, "wd", "adamw") == (1, 1 - alpha, 0)      # eta * lambda constant
    assert t.exponents("embedding", "lr", "adam") == (0, 0, 0)
    assert t.exponents("unembedding", "lr", "adam") == (-1, 0, 0)


def test_alpha_outside_range_is_rejected():
    with pytest.raises(ValueError, match="alpha"):
        Settings(alpha=2)


@pytest.mark.parametrize("space,target,f", [
    ("effective", "spectral", (1 + sp.sqrt(r)) / 2), ("stored", "spectral", (r + sp.sqrt(r)) / 2),
    ("effective", "rank-adjusted", sp.Integer(1)), ("stored", "rank-adjusted", sp.sqrt(r))])
def test_gqa_factor(space, target, f):
    assert sp.simplify(gqa_factor(space, target) - f) == 0
    assert f.subs(r, 1) == 1


@pytest.mark.parametrize("space,target,f", [("effective", "rank-adjusted", sp.Integer(1)),
                                           ("effective", "spectral", (1 + sp.sqrt(r)) / 2),
                                           ("stored", "spectral", (r + sp.sqrt(r)) / 2)])
def test_gqa_kv_rules(space, target, f):
    t = solve(load(GQA), Settings(update_space=space, update_target=target))
    for op in ("k", "v"):
        assert t.exponents(op, "init_std") == (-HALF, 0, 0)               # hidden init, no r
        assert sp.simplify(t.get(op, "lr", "adam").expr - f / n) == 0     # f(r)/n
        assert sp.simplify(t.get(op, "wd", "adamw").expr - n / f) == 0    # n/f(r)
    assert Settings() == Settings(update_space="effective", update_target="rank-adjusted")   # default f = 1
    for op in ("q", "o"):                                                 # plain hidden weights
        assert t.get(op, "lr", "adam").expr == 1 / n
        assert t.exponents(op, "lr", "adam")[2] == 0


def test_sp_table(mha):
    t = solve(load(MHA), Settings(parametrization="sp"))
    assert t.exponents("unembedding", "init_std")[0] == -HALF
    assert t.exponents("attn_logits", "multiplier")[0] == -HALF
    assert t.exponents("q", "lr", "adam") == (0, 0, 0)
    assert t.exponents("residual", "multiplier") == (0, 0, 0)


def test_tied_embedding_is_consistent():
    t = solve(architecture("tied", [
        {"name": "emb", "role": "input", "fan_in": "V", "fan_out": "n"},
        {"name": "head", "role": "output", "fan_in": "n", "fan_out": "V", "tied": "emb"},
    ], dims={"V": 100}))
    assert t.exponents("head", "multiplier")[0] == -1
    assert t.exponents("head", "init_std")[0] == 0
    assert "consistent" in t.get("head", "lr", "adam").reason
    assert "consistent" in t.get("head", "lr", "sgd").reason


def test_every_entry_has_a_reason_and_renders_with_its_solution(mha):
    assert all(e.reason and "=>" not in e.reason for e in mha.entries)      # the condition alone
    assert all(explained(e).endswith(f" => {sp.sstr(e.expr)}") for e in mha.entries)
    assert "rank n/r" in solve(load(GQA)).get("k", "init_std").reason


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 8), st.integers(1, 8), st.booleans())
def test_any_width_by_width_op_is_hidden_like(a, b, branch):
    """fan_in = a n, fan_out = b n: init n^-1/2, Adam LR n^-1, SGD LR n^0 whatever a and b."""
    t = solve(architecture("h", [{"name": "w", "role": "hidden", "fan_in": f"{a}*n", "fan_out": f"{b}*n",
                                   "branch": branch}]))
    assert t.exponents("w", "init_std")[0] == -HALF
    assert t.exponents("w", "lr", "adam")[0] == -1
    assert t.exponents("w", "lr", "sgd")[0] == 0


@pytest.mark.parametrize("role,fan_in,fan_out", [("output", "n", "V"), ("hidden", "n", "n"), ("input", "V", "n")])
def test_gauge_invariance(role, fan_in, fan_out):
    """abc-symmetry: moving scale between init and multiplier leaves the effective weight
    (m sigma), the effective Adam step (m eta) and SGD step (m^2 eta) unchanged."""
    def table(gauge):
        return solve(architecture("g", [{"name": "w", "role": role, "fan_in": fan_in, "fan_out": fan_out,
                                          "gauge": gauge}], dims={"V": 7}))
    a, b = table("init"), table("multiplier")
    def m(t):
        return t.get("w", "multiplier").expr
    for expr in (lambda t: m(t) * t.get("w", "init_std").expr,
                 lambda t: m(t) * t.get("w", "lr", "adam").expr,
                 lambda t: m(t) ** 2 * t.get("w", "lr", "sgd").expr):
        assert sp.simplify(expr(a) - expr(b)) == 0
