"""Malformed declarations name the op and the field; valid ones build the ops they describe."""
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from mup_derive.declare import DeclarationError, architecture, load
from mup_derive.derive import solve
from tests.helpers import GQA

GOOD = {"name": "w", "role": "hidden", "fan_in": "n", "fan_out": "n"}


@pytest.mark.parametrize("patch,field,msg", [
    ({"fan_in": "n * q"}, "fan_in", "unknown symbol"),
    ({"rank": "2 * n"}, "rank", "exceeds"),
    ({"role": None}, "role", "missing"),
    ({"role": "weird"}, "role", "not one of"),
    ({"fan_out": "n - 2000"}, "fan_out", "positive"),
    ({"fan_out": "0"}, "fan_out", "positive"),
    ({"fan_in": "n +"}, "fan_in", "cannot parse"),
    ({"fan_in": "0/0"}, "fan_in", "division by zero"),
    ({"colour": "red"}, "colour", "unknown field"),
    ({"rank": "n / r", "repeat": "2"}, "repeat", "disagrees"),
    ({"tied": "nope"}, "tied", "names no other op"),
    ({"branch": "yes"}, "branch", "true or false"),
    ({"gauge": "both"}, "gauge", "not one of"),
    ({"offset": 1.0}, "offset", "role = 'vector' with init = 'keep'"),
    ({"stream_degree": 1.5}, "stream_degree", "integer in"),
    ({"stream_degree": -1}, "stream_degree", "integer in"),
    ({"role": "vector", "fan_in": None, "init": "keep", "offset": "one"}, "offset", "finite number"),
])
def test_bad_op(patch, field, msg):
    spec = {k: v for k, v in {**GOOD, **patch}.items() if v is not None}
    with pytest.raises(DeclarationError, match=msg) as err:
        architecture("a", [spec])
    assert err.value.op == "w" and err.value.field == field
    assert "op 'w'" in str(err.value) and f"field '{field}'" in str(err.value)


def test_reserved_name():
    with pytest.raises(DeclarationError, match="reserved"):
        architecture("a", [{**GOOD, "name": "residual"}])


def test_rank_and_repeat_agree():
    a = architecture("a", [{**GOOD, "rank": "n / r"}])
    b = architecture("b", [{**GOOD, "repeat": "r"}])
    assert a.ops[0].repeat == b.ops[0].repeat == a.ops[0].fan_out / a.ops[0].rank


def test_example_loads():
    arch = load(GQA)
    assert arch.op("k").rank.free_symbols and arch.op("q").repeat == 1


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=-5, max_value=0))
def test_non_positive_dims_rejected(v):
    with pytest.raises(DeclarationError, match="positive"):
        architecture("a", [GOOD], dims={"vocab": v})


def test_fixed_rank_above_64_is_a_repeat():
    a = architecture("a", [{**GOOD, "rank": "128"}])
    assert a.ops[0].repeat == sp.Symbol("n", positive=True) / 128


def test_zero_init_gives_zero_std():
    a = architecture("a", [{**GOOD, "rank": "128", "init": "zeros"}])
    assert solve(a).get("w", "init_std").expr == 0


@pytest.mark.parametrize("spec,dims,field,msg", [
    ({"name": 'bad"name'}, {}, "name", "letters, digits"), ({"name": "a\nb"}, {}, "name", "letters, digits"),
    ({"lowrank": "factorised"}, {}, "lowrank", "needs a rank"),
    ({"rank": "n", "lowrank": "repeat"}, {}, "rank", "is min"),
    ({"rank": "k", "lowrank": "factorised", "params": {"C": []}}, {"k": 4}, "params", "factors are A and B"),
    ({"params": {"A": []}}, {}, "params", "needs lowrank"),
    ({"gauge": "multiplier", "init": "zeros"}, {}, "gauge", "zero-init"),
])
def test_bad_lowrank_and_names(spec, dims, field, msg):
    with pytest.raises(DeclarationError, match=msg) as err:
        architecture("a", [{**GOOD, **spec}], dims=dims)
    assert err.value.field == field


@pytest.mark.parametrize("dims,msg", [({"vocab": 10 ** 30}, "at most 2\\*\\*40"), ({"n": 3}, "identifiers other"),
                                      ({"a-b": 3}, "identifiers other")])
def test_bad_dims(dims, msg):
    with pytest.raises(DeclarationError, match=msg):
        architecture("a", [GOOD], dims=dims)


EMB = {"name": "emb", "role": "input", "fan_in": "V", "fan_out": "n"}


def test_tie_to_the_transpose_is_accepted():
    a = architecture("ok", [EMB, {"name": "head", "role": "output", "fan_in": "n", "fan_out": "V", "tied": "emb"}],
                     dims={"V": 64})
    assert a.op("head").tied == "emb"


def test_tie_compares_shapes_not_products():
    with pytest.raises(DeclarationError, match="neither"):
        architecture("bad", [EMB, {"name": "head", "role": "output", "fan_in": "2*n", "fan_out": "V/2",
                                   "tied": "emb"}], dims={"V": 64})


def test_a_gain_may_absorb_a_tied_readouts_multiplier_only():
    """A tied readout's shared weight cannot take its multiplier: a gain ahead of it may (absorbs = 'head'); an untied
    readout takes its own, so naming it is refused."""
    gain = {"name": "g", "role": "vector", "fan_out": "n", "init": "keep", "gate": "n", "absorbs": "head"}
    head = {"name": "head", "role": "output", "fan_in": "n", "fan_out": "V"}
    a = architecture("ok", [EMB, gain, {**head, "tied": "emb"}], dims={"V": 64})
    assert a.op("g").absorbs == "head"
    with pytest.raises(DeclarationError, match="nor a tied readout") as err:
        architecture("bad", [EMB, gain, head], dims={"V": 64})
    assert err.value.op == "g" and err.value.field == "absorbs"


def test_factorised_op_expands_into_two_factors():
    a = architecture("lora", [{**GOOD, "rank": "k", "lowrank": "factorised", "init": {"B": "zeros"}}], dims={"k": 4})
    assert [(o.name, o.factor, o.init) for o in a.ops] == [("w.A", "A", "normal"), ("w.B", "B", "zeros")]
