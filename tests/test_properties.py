"""Property tests over declarations, CLI options and the generated runtime API: every input gives a
one-line error or a correct result, in bounded time (hypothesis' deadline), with its inputs untouched."""
import copy
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mup_derive.declare import Architecture, DeclarationError, architecture
from tests.helpers import GENERATED, GQA, cli

BOUNDED = settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
EXPR = st.one_of(st.sampled_from(["n", "4*n", "n/r", "d", "sqrt(n)", "n**2", "0", "-n", "n/0", "E*n", "1/(r-1)",
                                  "sqrt(" * 17 + "n" + ")" * 17, "n" * 300, "2**64**64", "__import__('os')"]),
                 st.text(alphabet="nLrd+-*/()0123456789. s", max_size=24), st.integers(-3, 10 ** 13),
                 st.floats(allow_nan=True), st.none(), st.booleans(), st.lists(st.just("n"), max_size=2))
FIELD = st.sampled_from(["name", "role", "fan_in", "fan_out", "rank", "repeat", "lowrank", "branch", "tied", "gauge",
                         "init", "params", "correlated", "colour"])
VALUE = st.one_of(EXPR, st.sampled_from(["hidden", "input", "output", "vector", "contraction", "repeat",
                                          "factorised", "init", "multiplier", "zeros", "ones", "w", "v"]),
                  st.dictionaries(st.sampled_from(["A", "B", "C"]), st.sampled_from(["zeros", "normal", "x"]),
                                  max_size=2))
OP = st.dictionaries(FIELD, VALUE, max_size=8)


def _one_line_error(exc: Exception) -> bool:
    return "\n" not in str(exc) and str(exc).startswith("op '")


@BOUNDED
@given(st.lists(OP, max_size=3), st.dictionaries(st.sampled_from(["d", "n", "lambda", "vocab"]),
                                                  st.one_of(st.integers(-2, 2 ** 41), st.text(max_size=3)),
                                                  max_size=2))
def test_any_declaration_builds_or_names_its_error(ops, dims):
    before = copy.deepcopy((ops, dims))
    try:
        arch = architecture("p", ops, dims)
    except DeclarationError as exc:
        assert _one_line_error(exc), str(exc)
    else:
        assert isinstance(arch, Architecture) and arch.ops
    assert (ops, dims) == before                          # inputs untouched


TEXT = st.text(alphabet="0123456789.,-+e/nainfx ", max_size=16)


@BOUNDED
@given(alpha=TEXT, fmt=st.sampled_from(["md", "csv", "json", "latex", "html"]))
def test_derive_options_give_a_table_or_a_one_line_error(alpha, fmt):
    res = cli("derive", GQA, "--alpha", alpha, "--format", fmt)
    assert res.exit_code in (0, 1, 2) and "Traceback" not in res.output
    assert res.exit_code != 0 or res.output.strip()


@BOUNDED
@given(widths=TEXT, lr=TEXT, steps=TEXT, device=st.sampled_from(["cpu", "meta", "cuda:9", "gpu", "", "cpu:0"]))
def test_coord_check_options_are_checked_before_anything_runs(widths, lr, steps, device):
    res = cli("coord-check", "no_such_target.py", "--widths", widths, "--lr", lr, "--steps", steps,
              "--device", device)
    assert res.exit_code in (1, 2) and "Traceback" not in res.output   # an option error, or the missing target


@pytest.fixture(scope="module")
def model(gen):
    return gen.GQATransformer(width=64, depth=2, ratio=2)


@BOUNDED
@given(op=st.sampled_from(["q", "k", "residual", "qq", "", "embedding"]),
       key=st.sampled_from(["lr_adamw", "init_std", "multiplier", "lr_adma", "wd_sgd", "eps_adam", ""]),
       p=st.sampled_from(["mup", "sp", "muP"]))
def test_runtime_rules_give_a_factor_or_a_one_line_error(gen, op, key, p):
    try:
        value = gen.ratio(op, key, {"n": 256, "L": 4, "r": 2}, p)
    except ValueError as exc:
        assert "\n" not in str(exc)
    else:
        assert math.isfinite(value) and value > 0


@BOUNDED
@given(lr=st.floats(allow_nan=True, allow_infinity=True), wd=st.floats(-1, 1e6), eps=st.floats(-1, 1))
def test_param_groups_take_finite_hyperparameters_or_say_which(gen, model, lr, wd, eps):
    try:
        groups = gen.param_groups(model, lr=lr, weight_decay=wd, eps=eps)
    except ValueError as exc:
        assert any(name in str(exc) for name in ("lr", "weight_decay", "eps"))
    else:
        assert all(math.isfinite(g["lr"]) and g["lr"] > 0 for g in groups)


def test_the_generated_module_is_the_one_under_test(gen):
    assert gen.__file__ == str(GENERATED)
