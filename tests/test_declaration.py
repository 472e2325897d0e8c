"""Malformed declarations name the op and the field and exit non-zero."""
import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

from derive.cli import main
from derive.declaration import DeclarationError, architecture, load

from conftest import GQA

GOOD = {"name": "w", "role": "hidden", "fan_in": "n", "fan_out": "n"}


@pytest.mark.parametrize("patch,field,msg", [
    ({"fan_in": "n * q"}, "fan_in", "unknown symbol"),
    ({"rank": "2 * n"}, "rank", "exceeds"),
    ({"role": None}, "role", "missing"),
    ({"role": "weird"}, "role", "not one of"),
    ({"fan_out": "n - 2000"}, "fan_out", "positive"),
    ({"fan_out": "0"}, "fan_out", "positive"),
    ({"fan_in": "n +"}, "fan_in", "cannot parse"),
    ({"fan_in": "0/0"}, "fan_in", "finite"),
    ({"colour": "red"}, "colour", "unknown field"),
    ({"rank": "n / r", "repeat": "2"}, "repeat", "disagrees"),
    ({"tied": "nope"}, "tied", "names no other op"),
    ({"branch": "yes"}, "branch", "true or false"),
    ({"gauge": "both"}, "gauge", "not one of"),
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


def test_cli_error_names_op_and_field(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[op]]\nname = "k"\nrole = "hidden"\nfan_in = "n"\nfan_out = "n"\nrank = "n * r"\n')
    res = CliRunner().invoke(main, ["derive", str(bad)])
    assert res.exit_code != 0
    assert "op 'k'" in res.output and "field 'rank'" in res.output


def test_rank_and_repeat_agree():
    a = architecture("a", [{**GOOD, "rank": "n / r"}])
    b = architecture("b", [{**GOOD, "repeat": "r"}])
    assert a.ops[0].repeat == b.ops[0].repeat == a.ops[0].fan_out / a.ops[0].rank


def test_example_loads():
    arch = load(GQA)
    assert arch.op("k").rank.free_symbols and arch.op("q").repeat == 1


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet="nLrxyz+-*/()0123456789 ", min_size=1, max_size=12))
def test_fuzzed_fan_in_is_accepted_or_named(expr):
    try:
        architecture("a", [{**GOOD, "fan_in": expr}])
    except DeclarationError as exc:
        assert exc.op == "w" and exc.field == "fan_in"


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=-5, max_value=0))
def test_non_positive_dims_rejected(v):
    with pytest.raises(DeclarationError, match="positive"):
        architecture("a", [GOOD], dims={"vocab": v})
