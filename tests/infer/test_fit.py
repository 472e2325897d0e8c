"""Declarations inferred from models: every supported family (Hugging Face, litgpt, torchtitan), a factory model,
ties, fused and interleaved tensors, gates; inferring and declaring by hand give the same rules (Granite)."""
import importlib.util

import pytest
import sympy as sp
import torch

from mup_derive.declare import load
from mup_derive.derive import solve
from tests.helpers import EXAMPLES, cli, fails_cleanly

transformers = pytest.importorskip("transformers")
from mup_derive.infer import FAMILIES, build_model, family_spec, infer  # noqa: E402

OTHER = {"n": 256, "L": 3, "r": 4}


def _declared(tmp_path, model, *args):
    out = tmp_path / "inferred.toml"
    res = cli("declare", model, "-o", out, *args)
    assert res.exit_code == 0, res.output
    return out


def installed(family: str) -> bool:
    return importlib.util.find_spec({"hf": "transformers"}.get(family.partition(":")[0], family.partition(":")[0])) \
        is not None


@pytest.mark.parametrize("family", [pytest.param(f, marks=pytest.mark.skipif(not installed(f), reason="not installed"))
                                    for f in FAMILIES])
def test_every_family_infers_a_declaration_its_model_satisfies_at_another_shape(tmp_path, family):
    """Shapes fitted at n = 64, 128, r = 1, 2, L = 2, 4 hold at n = 256, r = 4, L = 3: the rules module generated
    from the inferred declaration initialises the real model there and gives its parameters their groups."""
    decl = _declared(tmp_path, family)
    rules = tmp_path / "rules.py"
    assert cli("generate", decl, "-o", rules).exit_code == 0
    ns: dict = {"__name__": "rules"}
    exec(compile(rules.read_text(), str(rules), "exec"), ns)
    torch.manual_seed(0)
    model = build_model(family, OTHER)
    ns["init_weights"](model, std=0.02, shape=OTHER)
    groups = {g["name"]: g for g in ns["param_groups"](model, lr=1e-2, shape=OTHER)}
    q, k_name = solve(load(decl)).arch.op("attn_logits").operands
    assert groups[q]["lr"] == pytest.approx(1e-2 * 128 / 256)
    assert groups[k_name]["lr"] == pytest.approx(1e-2 * 128 / 256)
    k = solve(load(decl)).arch.op(k_name)
    assert k.repeat == sp.Symbol("r", positive=True) and k.branch        # the K/V repeat and the branch
    assert sum(p.numel() for g in groups.values() for p in g["params"]) == sum(p.numel() for p in model.parameters())


def test_inferring_granite_gives_the_hand_written_rules():
    """examples/hf_granite.toml, written by hand, and the inferred declaration agree on every parameter's rules."""
    hand = solve(load(EXAMPLES / "hf_granite.toml"))
    spec = infer(family_spec("hf:granite"))
    from mup_derive.declare import architecture
    inferred = solve(architecture(spec["name"], spec["op"], spec["dims"]))

    def by_glob(table):
        dims = table.arch.dim_symbols
        out = {}
        for op in table.arch.ops:
            for glob in op.params:
                out[glob] = {(e.quantity, e.optimizer): sp.nsimplify(e.exact.subs(dims))
                             for e in table.entries if e.op == op.name}
        return out
    a, b = by_glob(hand), by_glob(inferred)
    assert set(a) == set(b) and len(a) == 12
    for glob in a:
        for key, value in a[glob].items():
            if key[0] != "init_std" or "norm" not in glob:      # gains: ones by hand, kept (ones) when inferred
                assert sp.simplify(value - b[glob][key]) == 0, (glob, key, value, b[glob][key])
    assert {e.op for e in inferred.entries if e.quantity == "multiplier" and e.exact != 1} == {"attn_logits",
                                                                                             "residual"}


def test_ties_fused_tensors_and_gates_come_from_the_model():
    tied = infer(family_spec("hf:llama", tied=True))
    head = next(op for op in tied["op"] if op["name"] == "lm_head")
    assert head["tied"] == "embed_tokens" and head["role"] == "output"
    phi3 = {op["name"]: op for op in infer(family_spec("hf:phi3"))["op"]}
    assert [phi3[k]["fused"] for k in ("q_proj", "k_proj", "v_proj")] == [True] * 3
    assert phi3["k_proj"]["rank"] == "n / r" and phi3["q_proj"]["params"] == phi3["k_proj"]["params"]
    gemma = {op["name"]: op for op in infer(family_spec("hf:gemma2"))["op"]}
    assert gemma["embed_tokens"]["gate"] == "sqrt(n)"            # Gemma scales its embedding by sqrt(n)
    assert {k: op.get("offset") for k, op in gemma.items() if op["role"] == "vector"} == dict.fromkeys(
        ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm",
         "norm"), 1.0)                                          # and applies its norm gains as 1 + w
    olmo2 = {op["name"]: op.get("stream_degree", 0) for op in infer(family_spec("hf:olmo2"))["op"]}
    assert olmo2 == {**dict.fromkeys(olmo2, 0), **dict.fromkeys(("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                                  "up_proj"), 1), "down_proj": 2}   # no pre-norm


FACTORY = '''
import torch
from torch import nn

class Block(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.ln = nn.LayerNorm(n)
        self.c_attn = nn.Linear(n, 3 * n)
        self.c_proj = nn.Linear(n, n)
        self.mlp = nn.Module()
        self.mlp.c_proj = nn.Linear(4 * n, n)

class GPT(nn.Module):
    def __init__(self, n, L):
        super().__init__()
        self.wte = nn.Embedding(100, n)
        self.h = nn.ModuleList(Block(n) for _ in range(L))
        self.head = nn.Linear(n, 100, bias=False)

def build(shape):
    return GPT(shape["n"], shape["L"])

def odd(shape):
    return nn.Linear(shape["n"], 3 * shape["n"] + 1)
'''


def test_a_factory_model_is_inferred_with_its_layers_and_dims(tmp_path):
    path = tmp_path / "gpt.py"
    path.write_text(FACTORY)
    decl = load(_declared(tmp_path, f"{path}:build", "--layers", "h", "--dim", "vocab=100"))
    ops = {op.name: op for op in decl.ops}
    assert ops["wte"].role == "input" and str(ops["wte"].fan_in) == "vocab"
    assert ops["head"].role == "output" and not ops["head"].branch
    assert ops["c_attn"].role == "hidden" and str(ops["c_attn"].fan_out) == "3*n" and ops["c_attn"].branch
    assert ops["c_attn_bias"].role == "vector" and ops["ln"].init == "keep"
    assert str(ops["mlp_c_proj"].fan_in) == "4*n" and str(ops["c_proj"].fan_in) == "n"   # names kept apart


@pytest.mark.parametrize("model,message", [("hf:nope", "unknown model family"),
                                           ("{path}:odd", "no power of 2"), ("{path}:missing", "no function"),
                                           ("{path}", "expected a family")])
def test_declare_errors_are_one_line(tmp_path, model, message):
    path = tmp_path / "gpt.py"
    path.write_text(FACTORY)
    assert fails_cleanly(cli("declare", model.format(path=path), "-o", tmp_path / "x.toml"), message)


def test_declare_tied_writes_the_readout_tied_to_the_embedding(tmp_path):
    """``--tied`` builds the family with tie_word_embeddings=True: lm_head is declared tied to embed_tokens, and the
    engine solves the shared weight's readout multiplier (vocab/n for Llama); a library or factory refuses it."""
    table = solve(load(_declared(tmp_path, "hf:llama", "--tied")))
    assert table.arch.op("lm_head").tied == "embed_tokens"
    n, vocab = sp.Symbol("n", positive=True), sp.Symbol("vocab", positive=True)
    assert sp.simplify(table.get("lm_head", "multiplier").exact - vocab / n) == 0
    path = tmp_path / "gpt.py"
    path.write_text(FACTORY)
    for model, said in (("litgpt:gpt", "ties no weights"), (f"{path}:build", "only a family")):
        assert fails_cleanly(cli("declare", model, "--tied", "-o", tmp_path / "x.toml"), said)


@pytest.mark.skipif(not installed("litgpt:gpt") or not installed("torchtitan:llama3"), reason="not installed")
def test_litgpt_fuses_qkv_in_blocks_and_torchtitan_interleaves_them_per_kv_head():
    """litgpt's attn.qkv holds q, k, v one after another; torchtitan's wqkv holds, per K/V head, its queries, its
    key and its value: the same row blocks, interleaved in heads / r groups."""
    lit = {op["name"]: op for op in infer(family_spec("litgpt:gpt"))["op"]}
    assert [lit[k].get("fused") for k in "qkv"] == [True] * 3 and "interleave" not in lit["k"]
    assert lit["k"]["rank"] == "n / r" and lit["attn_proj"]["branch"] and lit["mlp_proj"]["fan_in"] == "mlp_ratio * n"
    tt = {op["name"]: op for op in infer(family_spec("torchtitan:llama3"))["op"]}
    assert [tt[k]["interleave"] for k in ("wq", "wk", "wv")] == ["heads / r"] * 3
    assert tt["wv"]["rank"] == "n / r" and tt["attn_logits"]["operands"] == ["wq", "wk"]
