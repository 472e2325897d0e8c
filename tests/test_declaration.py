"""Malformed declarations name the op and the field and exit non-zero."""
import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

from mup_derive.cli import main
from mup_derive.declaration import DeclarationError, architecture, load
import sympy as sp

from conftest import GQA, fails_cleanly

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


def test_fixed_rank_above_64_and_zero_init():
    a = architecture("a", [{**GOOD, "rank": "128", "init": "zeros"}])
    assert a.ops[0].repeat == sp.Symbol("n", positive=True) / 128
    from mup_derive.solver import derive
    assert derive(a).get("w", "init_std").expr == 0


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


def test_tie_compares_shapes_not_products():
    emb = {"name": "emb", "role": "input", "fan_in": "V", "fan_out": "n"}
    architecture("ok", [emb, {"name": "head", "role": "output", "fan_in": "n", "fan_out": "V", "tied": "emb"}],
                 dims={"V": 64})
    with pytest.raises(DeclarationError, match="neither"):
        architecture("bad", [emb, {"name": "head", "role": "output", "fan_in": "2*n", "fan_out": "V/2",
                                   "tied": "emb"}], dims={"V": 64})


def _cli(*args):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("content,msg", [
    (b"\xff\xfe bad", "not UTF-8"), (b'name = "a"\n[[op]]\nname = "w"\nrole = "hidden"\nfan_in = "n"\n'
                                    b'fan_out = "__import__(\'os\')"\n', "not allowed"),
    (b'colour = 1\n', "unknown top-level key"), (b'dims = 3\n', "use a [dims] table")])
def test_cli_bad_files(tmp_path, content, msg):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(content)
    res = _cli("derive", str(bad))
    assert fails_cleanly(res, msg)


def test_cli_settings_and_outputs(tmp_path):
    res = _cli("derive", str(GQA), "--alpha", "abc")
    assert fails_cleanly(res, "--alpha") and "expected a number" in res.output
    assert fails_cleanly(_cli("derive", str(GQA), "--alpha", "2"), "alpha must lie in")
    deep = tmp_path / "a" / "b" / "table.md"
    assert _cli("derive", str(GQA), "-o", str(deep)).exit_code == 0 and deep.read_text().startswith("# gqa")
    (tmp_path / "file").write_text("x")
    res = _cli("derive", str(GQA), "-o", str(tmp_path / "file" / "t.md"))
    assert fails_cleanly(res, "cannot write")
    res = _cli("generate", str(GQA), "-o", str(tmp_path / "g.py"), "--base-width", "0")
    assert fails_cleanly(res, "--base-width")
    res = _cli("generate", str(GQA), "-o", str(tmp_path / "g.py"), "--base-width", "100")
    assert fails_cleanly(res, "not a whole positive dimension")
    assert not (tmp_path / "g.py").exists() and not list(tmp_path.glob(".*"))


def test_cli_constant_eps_convention():
    import json
    data = json.loads(_cli("derive", str(GQA), "--format", "json", "--eps", "constant").output)
    assert data["eps"] == "constant" and data["ops"]["q"]["eps"]["adam"]["exponents"]["n"] == "0"
    derived = json.loads(_cli("derive", str(GQA), "--format", "json").output)
    assert derived["eps"] == "derived" and derived["ops"]["q"]["eps"]["adam"]["exponents"]["n"] == "-1"
