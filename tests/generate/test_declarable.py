"""Layers beyond plain matrices, declared as a user would and checked on real tensors: fused tensors as
row blocks (a GQA qkv, Mamba's x_proj), conv and batched tensors by layout, MoE gates and token fractions,
a module's own structured init kept, and CompleteP's width-only weight decay."""
import math

import pytest
import sympy as sp
import torch
from torch import nn

from mup_derive.declare import DeclarationError, architecture
from mup_derive.derive import Settings, solve
from tests.helpers import generated

HALF = sp.Rational(1, 2)


QKV = """name = "fused_qkv"
[[op]]
name = "q"
role = "hidden"
fan_in = "n"
fan_out = "n"
fused = true
params = ["qkv.weight"]
[[op]]
name = "k"
role = "hidden"
fan_in = "n"
fan_out = "n"
rank = "n / r"
fused = true
params = ["qkv.weight"]
[[op]]
name = "v"
role = "hidden"
fan_in = "n"
fan_out = "n"
rank = "n / r"
fused = true
params = ["qkv.weight"]
"""


class Attn(nn.Module):
    def __init__(self, n, r):
        super().__init__()
        self.qkv = nn.Linear(n, n + 2 * n // r, bias=False)

    def forward(self, x):
        return self.qkv(x)


def test_fused_qkv_gets_one_rule_per_row_block(tmp_path):
    """litgpt / nanoGPT keep q, k, v in one tensor: under GQA its K/V rows are a repeat (rank n/r); each block
    gets its own init, LR and eps, and the forward pass is unchanged."""
    rules, _ = generated(tmp_path, QKV)
    shape = {"n": 512, "L": 2, "r": 4}
    torch.manual_seed(0)
    model = Attn(512, 4)
    x = torch.randn(3, 512)
    rules["init_weights"](model, std=1.0, shape=shape)
    blocks = dict(model.named_parameters())
    assert sorted(blocks) == [f"qkv.parametrizations.weight.original{i}" for i in range(3)]
    assert [tuple(p.shape) for p in blocks.values()] == [(512, 512), (128, 512), (128, 512)]
    for i, op in enumerate(("q", "k", "v")):
        assert blocks[f"qkv.parametrizations.weight.original{i}"].std().item() == pytest.approx(
            rules["ratio"](op, "init_std", shape), rel=0.05)
    assert torch.equal(model(x), x @ torch.cat(list(blocks.values())).T)    # forward sees the fused tensor
    groups = {g["name"]: g for g in rules["param_groups"](model, lr=1.0, eps=1.0, shape=shape)}
    assert groups["q"]["eps"] == pytest.approx(128 / 512) and groups["k"]["eps"] == pytest.approx(4 * 128 / 512)
    rules["merge_fused"](model)
    assert [n for n, _ in model.named_parameters()] == ["qkv.weight"] and torch.equal(model(x), model.qkv(x))


def test_interleaved_qkv_blocks_are_the_rows_of_each_kv_head(tmp_path):
    """torchtitan keeps, per K/V head, its r queries, its key and its value: ``interleave = "heads / r"`` makes the
    blocks exactly those rows (tagged here by value), the forward pass unchanged, and merging restores the layout."""
    rules, _ = generated(tmp_path, QKV.replace('fused = true', 'fused = true\ninterleave = "heads / r"')
                         .replace('name = "fused_qkv"', 'name = "fused_qkv"\n[dims]\nheads = 8'))
    shape = {"n": 32, "L": 2, "r": 2}                       # 8 heads of 4, 4 K/V heads: per group 8 q, 4 k, 4 v rows
    model = Attn(32, 2)
    tags = torch.tensor([0] * 8 + [1] * 4 + [2] * 4).repeat(4).float()
    with torch.no_grad():
        model.qkv.weight.copy_(tags[:, None] + torch.arange(64.0)[:, None] / 100)
    before, x = model.qkv.weight.detach().clone(), torch.randn(3, 32)
    rules["split_fused"](model, shape)
    blocks = [getattr(model.qkv.parametrizations.weight, f"original{i}") for i in range(3)]
    assert [tuple(b.shape) for b in blocks] == [(32, 32), (16, 32), (16, 32)]
    assert [set(b[:, 0].floor().tolist()) for b in blocks] == [{0.0}, {1.0}, {2.0}]
    assert torch.equal(model.qkv.weight, before) and torch.equal(model(x), x @ before.T)
    rules["init_weights"](model, std=1.0, shape=shape)
    rules["merge_fused"](model)
    assert [n for n, _ in model.named_parameters()] == ["qkv.weight"]


MAMBA = """name = "mamba_x_proj"
[dims]
d_state = 16
[[op]]
name = "dt"
role = "hidden"
fan_in = "2 * n"
fan_out = "n / 16"
fused = true
params = ["x_proj.weight"]
[[op]]
name = "B"
role = "output"
fan_in = "2 * n"
fan_out = "d_state"
fused = true
params = ["x_proj.weight"]
[[op]]
name = "C"
role = "output"
fan_in = "2 * n"
fan_out = "d_state"
fused = true
params = ["x_proj.weight"]
"""


def test_mamba_x_proj_blocks_get_their_own_sgd_lr_and_eps(tmp_path):
    """One rule for all rows gave B and C an SGD LR n times too large and an eps n times too small."""
    t = solve(architecture("m", [
        {"name": "dt", "role": "hidden", "fan_in": "2*n", "fan_out": "n/16", "fused": True, "params": ["x"]},
        {"name": "B", "role": "output", "fan_in": "2*n", "fan_out": "d_state", "fused": True, "params": ["x"]},
    ], dims={"d_state": 16}))
    assert t.exponents("dt", "lr", "sgd")[0] - t.exponents("B", "lr", "sgd")[0] == 1
    assert t.exponents("B", "eps", "adam")[0] - t.exponents("dt", "eps", "adam")[0] == 1
    rules, _ = generated(tmp_path, MAMBA)

    class Mixer(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.x_proj = nn.Linear(2 * n, n // 16 + 32, bias=False)
    model = Mixer(256)
    groups = {g["name"]: g["lr"] for g in rules["param_groups"](model, lr=1.0, optimizer="sgd",
                                                                 shape={"n": 256, "L": 2, "r": 1})}
    assert groups == pytest.approx({"dt": 1.0, "B": 0.5, "C": 0.5})


@pytest.mark.parametrize("ops,field", [
    ([{"name": "q", "role": "hidden", "fan_in": "n", "fan_out": "n", "fused": True, "params": ["w"]}], "fused"),
    ([{"name": "q", "role": "hidden", "fan_in": "n", "fan_out": "n", "fused": True, "params": ["w"]},
      {"name": "u", "role": "hidden", "fan_in": "2*n", "fan_out": "n", "fused": True, "params": ["w"]}], "fan_in"),
    ([{"name": "q", "role": "hidden", "fan_in": "n", "fan_out": "n", "fused": True}], "fused"),
    ([{"name": "q", "role": "hidden", "fan_in": "n", "fan_out": "n", "interleave": "r"}], "interleave"),
    ([{"name": "q", "role": "hidden", "fan_in": "n", "fan_out": "n", "fused": True, "params": ["w"], "interleave": 2},
      {"name": "u", "role": "hidden", "fan_in": "n", "fan_out": "n", "fused": True, "params": ["w"]}], "interleave"),
    ([{"name": "q", "role": "hidden", "fan_in": "n", "fan_out": "n", "fused": True, "params": ["w"],
       "interleave": "0 * n"}], "interleave"),
])
def test_bad_fused_blocks_are_named(ops, field):
    with pytest.raises(DeclarationError) as err:
        architecture("f", ops)
    assert err.value.field == field


CONV = """name = "vit_stem"
[dims]
patch = 16
[[op]]
name = "patch_embed"
role = "input"
fan_in = "3 * patch * patch"   # the kernel dims fold into fan_in
fan_out = "n"
layout = ["out", "in", "in", "in"]
params = ["proj.weight"]
[[op]]
name = "experts_up"
role = "hidden"
fan_in = "n"
fan_out = "4 * n"
layout = ["batch", "out", "in"]
batch = "E"
params = ["experts.up"]
[scaled]
E = "experts"
"""


class Stem(nn.Module):
    def __init__(self, n, e):
        super().__init__()
        self.proj = nn.Conv2d(3, n, 16, stride=16, bias=False)
        self.experts = nn.Module()
        self.experts.up = nn.Parameter(torch.empty(e, 4 * n, n))


def test_conv_and_batched_tensors_by_layout(tmp_path):
    rules, _ = generated(tmp_path, CONV)
    shape = {"n": 256, "L": 2, "r": 1, "E": 4}
    torch.manual_seed(0)
    model = Stem(256, 4)
    rules["init_weights"](model, std=1.0, shape=shape)
    assert model.proj.weight.std().item() == pytest.approx(rules["ratio"]("patch_embed", "init_std", shape), rel=0.05)
    assert model.experts.up.std().item() == pytest.approx(math.sqrt(128 / 256), rel=0.05)
    with pytest.raises(ValueError, match=r"experts.up \(op 'experts_up'\) has shape \(4, 1024, 256\).*layout"):
        rules["assert_shapes"](model, shape={**shape, "E": 8})


@pytest.mark.parametrize("patch,field", [({"layout": ["out", "side"]}, "layout"), ({"batch": "E"}, "batch"),
                                         ({"layout": ["out", "in"], "batch": "E"}, "layout"),
                                         ({"gate": "0"}, "gate"), ({"tokens": "1 - E"}, "tokens")])
def test_bad_layouts_and_factors_are_named(patch, field):
    with pytest.raises(DeclarationError) as err:
        architecture("b", [{"name": "w", "role": "hidden", "fan_in": "n", "fan_out": "n", **patch}],
                     scaled={"E": "experts"})
    assert err.value.field == field and "\n" not in str(err.value)


def test_moe_gates_and_token_fractions_are_derived():
    """Experts see k/E of the tokens through a gate ~1/E on their output: the down projection's init and Adam LR
    compensate the gate (E^1), SGD's LR both the gate (twice: forward and backward) and the fraction (E^3/k);
    eps follows the gradient (E^-2); the up projection only sees fewer tokens."""
    t = solve(architecture("moe", [
        {"name": "up", "role": "hidden", "fan_in": "n", "fan_out": "4*n", "tokens": "k/E", "branch": True},
        {"name": "down", "role": "hidden", "fan_in": "4*n", "fan_out": "n", "tokens": "k/E", "gate": "1/E",
         "branch": True},
    ], dims={"k": 2}, scaled={"E": "experts"}))
    def e(op, q, opt=None):
        return t.get(op, q, opt).exponents["E"]
    assert (e("down", "init_std"), e("down", "lr", "adam"), e("down", "lr", "sgd"), e("down", "eps", "adam")) == \
        (1, 1, 3, -2)
    assert (e("up", "init_std"), e("up", "lr", "adam"), e("up", "lr", "sgd"), e("up", "eps", "adam")) == (0, 0, 1, -1)
    assert "gate 1/E" in t.get("down", "init_std").reason
    assert "sees k/E of the tokens" in t.get("up", "lr", "sgd").reason


KEEP = """name = "ssm"
[[op]]
name = "A_log"
role = "hidden"
fan_in = "n"
fan_out = "n"
init = "keep"
params = ["A_log"]
"""


def test_a_structured_init_is_kept_and_scaled(tmp_path):
    """Mamba's A_log (log 1..d per row) is the module's own: init_weights keeps its structure, scaled by the ratio."""
    rules, _ = generated(tmp_path, KEEP)

    class SSM(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.A_log = nn.Parameter(torch.log(torch.arange(1, n + 1.0)).repeat(n, 1))
    for n in (128, 512):
        model = SSM(n)
        own = model.A_log.detach().clone()
        rules["init_weights"](model, std=1.0, shape={"n": n, "L": 2, "r": 1})
        assert torch.allclose(model.A_log, own * rules["ratio"]("A_log", "init_std", {"n": n, "L": 2, "r": 1}))
    assert rules["ratio"]("A_log", "init_std", {"n": 512, "L": 2, "r": 1}) == pytest.approx(0.5)


def test_completep_width_only_weight_decay():
    """eta * lambda constant: WD n L^(1/2) at alpha = 1/2; CompleteP's width-only convention: n."""
    ops = [{"name": "w", "role": "hidden", "fan_in": "n", "fan_out": "n", "branch": True}]
    full = solve(architecture("a", ops), Settings(alpha=HALF))
    width = solve(architecture("a", ops), Settings(alpha=HALF, wd="width-only"))
    assert full.exponents("w", "wd", "adamw") == (1, HALF, 0)
    assert width.exponents("w", "wd", "adamw") == (1, 0, 0)
    assert width.exponents("w", "lr", "adamw") == full.exponents("w", "lr", "adamw")
    assert "CompleteP" in width.get("w", "wd", "adamw").reason


@pytest.mark.parametrize("patch,says", [({"absorbs": "residual"}, "needs a gate"),
                                        ({"gate": "L", "absorbs": "nowhere"}, "neither 'residual', a declared")])
def test_absorbs_names_a_multiplier_and_needs_a_gate(patch, says):
    with pytest.raises(DeclarationError, match=says) as err:
        architecture("a", [{"name": "o", "role": "hidden", "fan_in": "n", "fan_out": "n", **patch}])
    assert err.value.field == "absorbs"
