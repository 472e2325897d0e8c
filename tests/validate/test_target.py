"""Targets: the generated GQA model, FILE.py:FACTORY, and the attention-logit probe."""
import pytest
import torch

from mup_derive.validate.target import TargetError, gqa_logits, resolve
from tests.helpers import EXAMPLES, GENERATED, ROOT


def test_hooked_attention_logits_reproduce_the_layer(gen):
    """The coordinate check's logits (from hooked q and k) are the ones SDPA uses: softmax of them
    with the causal mask, applied to the hooked v, then o, gives the attention layer's output."""
    torch.manual_seed(0)
    model = gen.GQATransformer(width=64, depth=2, ratio=4)
    out = {}
    for name in ("blocks.0.attn.q", "blocks.0.attn.k", "blocks.0.attn.v", "blocks.0.attn"):
        model.get_submodule(name).register_forward_hook(lambda _m, _i, o, name=name: out.__setitem__(name, o))
    model(torch.randint(0, 256, (2, 16)))
    out.update({f"blocks.1.attn.{x}": out[f"blocks.0.attn.{x}"] for x in "qk"})
    s = gqa_logits(model, out)["attn_logits"][0]
    a = model.blocks[0].attn
    B, T, _ = out["blocks.0.attn.v"].shape
    v = out["blocks.0.attn.v"].view(B, T, a.heads // a.ratio, a.d_head).transpose(1, 2).repeat_interleave(a.ratio, 1)
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    y = (s.masked_fill(~mask, float("-inf")).softmax(-1) @ v).transpose(1, 2).reshape(B, T, -1)
    assert torch.allclose(a.o(y), out["blocks.0.attn"], atol=1e-5)


def test_resolve_a_generated_module_keeps_its_recipe():
    target = resolve(str(GENERATED), "sp", batch=2, seq=16)
    assert target.name == "gqa_transformer" and target.parametrization == "sp"
    assert target.recipe == (str(GENERATED), "sp", (("batch", 2), ("seq", 16)))


def test_resolve_a_factory():
    assert resolve(f"{EXAMPLES / 'mlp_target.py'}:target", "mup").name == "mlp"


def test_an_option_the_factory_would_ignore_is_refused():
    with pytest.raises(TargetError, match="takes no 'batch' option"):
        resolve(f"{EXAMPLES / 'mlp_target.py'}:target", "mup", batch=2)


def test_a_toml_file_is_not_a_target():
    with pytest.raises(TargetError, match="cannot be imported as Python"):
        resolve(str(EXAMPLES / "gqa_transformer.toml"))


@pytest.mark.parametrize("spec,message", [
    ("generated/mlp.py", "not a generated module with a GQA model"), ("nope.py", "no file"),
    ("examples/mlp_target.py:nothing", "defines no function"), ("examples/mlp_target.py:RULES", "no function"),
    ("examples/mlp_target.py", "not a module written by `mup-derive generate`")])
def test_bad_targets_are_named(spec, message):
    with pytest.raises(TargetError, match=message):
        resolve(str(ROOT / spec))
