"""Generated code: deterministic, init stds and param groups follow the derived table."""
import math

import pytest
import torch
from click.testing import CliRunner

from mup_derive.cli import main

from conftest import GENERATED, GQA, MHA


@pytest.mark.parametrize("decl", ["gqa_transformer", "mlp"])
def test_generated_is_current(tmp_path, decl):
    src = GQA.parent / f"{decl}.toml"
    out = tmp_path / "g.py"
    res = CliRunner().invoke(main, ["generate", str(src.relative_to(GQA.parents[1])), "-o", str(out),
                                    "--base-width", "128", "--base-depth", "2", "--base-ratio", "1"],
                             catch_exceptions=False)
    assert res.exit_code == 0
    assert out.read_bytes() == (GENERATED.parent / f"{decl}.py").read_bytes(), "regenerate generated/ (see README)"


def test_regeneration_is_byte_identical(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    for p in (a, b):
        CliRunner().invoke(main, ["generate", str(MHA), "-o", str(p)], catch_exceptions=False)
    assert a.read_bytes() == b.read_bytes()


def _std(model, name):
    return dict(model.named_parameters())[name].std().item()


@pytest.mark.parametrize("ratio", [1, 4])
def test_init_std_exponents_measured(gen, ratio):
    """std(n) / std(n0) on real tensors matches n^exponent from the table."""
    torch.manual_seed(0)
    small = gen.GQATransformer(width=128, depth=2, ratio=ratio)
    big = gen.GQATransformer(width=1024, depth=2, ratio=ratio)
    expect = {"blocks.0.attn.q.weight": -0.5, "blocks.0.attn.k.weight": -0.5, "blocks.0.attn.v.weight": -0.5,
              "blocks.0.mlp.up.weight": -0.5, "blocks.0.mlp.down.weight": -0.5,
              "lm_head.weight": -1.0, "tok_emb.weight": 0.0}
    for name, exponent in expect.items():
        measured = math.log(_std(big, name) / _std(small, name)) / math.log(1024 / 128)
        assert measured == pytest.approx(exponent, abs=0.02), name
    assert torch.all(big.blocks[0].attn_norm.weight == 1)
    # K, V keep the hidden init whatever the group ratio (GQA-μP)
    assert _std(big, "blocks.0.attn.k.weight") == pytest.approx(_std(big, "blocks.0.attn.q.weight"), rel=0.05)


def test_param_groups_carry_derived_lr_wd_eps(gen):
    base = gen.GQATransformer(width=128, depth=2, ratio=1)
    model = gen.GQATransformer(width=512, depth=8, ratio=4)
    groups = {g["name"]: g for g in gen.param_groups(model, lr=1e-2, weight_decay=0.1, eps=1e-8)}
    assert groups["q"]["lr"] == pytest.approx(1e-2 * 128 / 512)                    # n^-1 L^0 (CompleteP)
    assert groups["k"]["lr"] == pytest.approx(1e-2 * 128 / 512)                   # f(r)/n, default f = 1
    assert groups["k"]["weight_decay"] == pytest.approx(0.1 * 512 / 128)          # n / f(r)
    assert groups["q"]["eps"] == pytest.approx(1e-8 * (128 / 512) * (2 / 8))      # n^-1 L^-1
    assert groups["embedding"]["lr"] == pytest.approx(1e-2)
    assert groups["unembedding"]["lr"] == pytest.approx(1e-2 * 128 / 512)
    assert groups["attn_norm"]["weight_decay"] == 0.0
    assert model.multipliers["residual"] == pytest.approx(2 / 8)
    assert model.multipliers["attn_logits"] == pytest.approx(base.multipliers["attn_logits"] * 128 / 512)
    n_params = sum(p.numel() for g in groups.values() for p in g["params"])
    assert n_params == sum(p.numel() for p in model.parameters())


def test_state_dict_roundtrip_and_compile(gen, tmp_path):
    torch.manual_seed(0)
    model = gen.GQATransformer(width=64, depth=2, ratio=2)
    x = torch.randint(0, 256, (2, 16))
    torch.save(model.state_dict(), tmp_path / "m.pt")
    other = gen.GQATransformer(width=64, depth=2, ratio=2)
    other.load_state_dict(torch.load(tmp_path / "m.pt"))
    assert torch.equal(model(x), other(x))
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)   # traces forward and backward
    logits, loss = compiled(x[:, :-1], x[:, 1:])
    loss.backward()
    assert torch.allclose(logits, model(x[:, :-1]), atol=1e-5)
    assert model.blocks[0].attn.k.weight.grad is not None


def test_hooked_attention_logits_reproduce_the_layer(gen):
    """The coordinate check's logits (from hooked q and k) are the ones SDPA uses: softmax of them
    with the causal mask, applied to the hooked v, then o, gives the attention layer's output."""
    from mup_derive.validate.target import gqa_logits
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


def test_mup_peer_agrees_at_r1(gen):
    """Effective per-parameter Adam LR and init scale match the PyPI `mup` package's rules."""
    mup = pytest.importorskip("mup")
    base, delta = gen.GQATransformer(width=64, depth=2), gen.GQATransformer(width=128, depth=2)
    model = gen.GQATransformer(width=512, depth=2)
    mup.set_base_shapes(model, base, delta=delta, rescale_params=False, do_assert=False)
    mup_groups = mup.MuAdam(model.parameters(), lr=1.0).param_groups
    mup_lr = {id(p): g["lr"] for g in mup_groups for p in g["params"]}
    ours = {id(p): g["lr"] for g in gen.param_groups(model, lr=1.0, optimizer="adam") for p in g["params"]}
    base_groups = {g["name"]: g["lr"] for g in gen.param_groups(base, lr=1.0, optimizer="adam")}
    readout = "lm_head.weight"
    width_mult = 512 / 64
    for name, p in model.named_parameters():
        op = gen.op_of(name)
        # mup puts the output layer's 1/width into MuReadout's multiplier; compare effective mult*lr
        mup_eff = mup_lr[id(p)] / (width_mult if name == readout else 1.0)
        ours_eff = ours[id(p)] / base_groups[op] * model.multipliers[op] / base.multipliers[op]
        assert ours_eff == pytest.approx(mup_eff, rel=1e-6), name
        # init: mup.init scales matrix-like stds by width_mult^-1/2, MuReadout by 1/width_mult
        if p.dim() == 2:
            mup_std = width_mult ** -0.5 if p.infshape.ninf() == 2 else (1 / width_mult if name == readout else 1.0)
            ours_std = gen.ratio(op, "init_std", model.shape) / gen.ratio(op, "init_std", base.shape)
            assert ours_std * model.multipliers[op] / base.multipliers[op] == pytest.approx(mup_std), name
    assert model.multipliers["attn_logits"] / base.multipliers["attn_logits"] == pytest.approx(1 / width_mult)


def test_rules_only_module_for_any_declaration(tmp_path):
    """Without a model template the module still scales init and param groups of a user's model."""
    from mup_derive.validate.loader import load_module
    decl = tmp_path / "mlp.toml"
    decl.write_text('name = "mlp"\n[dims]\nd = 10\n'
                    '[[op]]\nname = "inp"\nrole = "input"\nfan_in = "d"\nfan_out = "n"\nparams = ["0.weight"]\n'
                    '[[op]]\nname = "bias"\nrole = "vector"\nfan_out = "n"\ninit = "zeros"\nparams = ["*.bias"]\n'
                    '[[op]]\nname = "hid"\nrole = "hidden"\nfan_in = "n"\nfan_out = "n"\nparams = ["2.weight"]\n'
                    '[[op]]\nname = "out"\nrole = "output"\nfan_in = "n"\nfan_out = "d"\nparams = ["4.weight"]\n')
    out = tmp_path / "mlp_rules.py"
    CliRunner().invoke(main, ["generate", str(decl), "-o", str(out), "--base-width", "64"], catch_exceptions=False)
    mod = load_module(out)
    assert not hasattr(mod, "GQATransformer")

    def mlp(n):
        return torch.nn.Sequential(torch.nn.Linear(10, n), torch.nn.ReLU(), torch.nn.Linear(n, n), torch.nn.ReLU(),
                                   torch.nn.Linear(n, 10, bias=False))
    torch.manual_seed(0)
    small, big = mlp(64), mlp(1024)
    for model, n in ((small, 64), (big, 1024)):
        mod.init_weights(model, std=1.0, shape={"n": n, "L": 1, "r": 1})
    slope = lambda name: math.log(_std(big, name) / _std(small, name)) / math.log(16)
    assert slope("0.weight") == pytest.approx(0.0, abs=0.03)
    assert slope("2.weight") == pytest.approx(-0.5, abs=0.03)
    assert slope("4.weight") == pytest.approx(-1.0, abs=0.03)
    assert torch.all(big[0].bias == 0)
    groups = {g["name"]: g["lr"] for g in mod.param_groups(big, lr=1.0, optimizer="sgd",
                                                            shape={"n": 1024, "L": 1, "r": 1})}
    assert groups == pytest.approx({"inp": 16.0, "bias": 16.0, "hid": 1.0, "out": 1 / 16})   # TP5 Table 3, SGD


def test_module_is_slim_rule_beside_reason():
    text = GENERATED.read_text()
    assert "lambda n, L, r: 1," not in text and "lambda n, L, r: 1\n" not in text   # no constant rules
    lines = text.splitlines()
    i = lines.index('            "lr_adamw": lambda n, L, r: 1/n,')
    assert lines[i - 1].strip().startswith("# adamw: ||dA|| = sqrt(fan_out/fan_in)")


def test_assert_shapes_names_the_parameter(gen):
    model = gen.GQATransformer(width=64, depth=2, ratio=2)
    gen.assert_shapes(model)
    with pytest.raises(ValueError, match=r"blocks.0.attn.k.weight \(op 'k'\) has shape \(32, 64\), declared \(16, 64\)"):
        gen.assert_shapes(model, shape={"n": 64, "L": 2, "r": 4})
    extra = torch.nn.Module()
    extra.add_module("net", model)
    with pytest.raises(ValueError, match="net.tok_emb.weight is governed by no declared op"):
        gen.param_groups(extra, lr=1e-3, shape=model.shape)


def test_checkpoint_of_another_parametrization_is_refused(gen, tmp_path):
    mup = gen.GQATransformer(width=64, depth=2)
    assert "mup_signature" in mup.state_dict()
    for other in (gen.GQATransformer(width=64, depth=2, parametrization="sp"), gen.GQATransformer(width=64, depth=4)):
        with pytest.raises(RuntimeError, match="another parametrization"):
            other.load_state_dict(mup.state_dict(), strict=False)
    gen.GQATransformer(width=64, depth=2).load_state_dict(mup.state_dict())


def test_plain_adam_with_weight_decay_is_refused(gen):
    model = gen.GQATransformer(width=64, depth=2)
    with pytest.raises(ValueError, match="use optimizer='adamw'"):
        gen.param_groups(model, lr=1e-3, weight_decay=0.1, optimizer="adam")
    assert gen.param_groups(model, lr=1e-3, optimizer="adam")
