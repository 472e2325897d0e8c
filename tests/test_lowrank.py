"""Low-rank kinds and extra scaled symbols: MQA, MLA (c fixed and c ~ n), LoRA, MoE with scaled E."""
import math

import pytest
import sympy as sp
import torch
from click.testing import CliRunner
from torch import nn

from mup_derive.cli import main
from mup_derive.declaration import load
from mup_derive.solver import Settings, derive
from mup_derive.validate.coord_check import run_coord_check
from mup_derive.validate.loader import load_module
from mup_derive.validate.target import Target

from conftest import ROOT, fails_cleanly

HALF = sp.Rational(1, 2)
ZOO = ROOT / "examples" / "lowrank_zoo.toml"


@pytest.fixture(scope="module")
def zoo():
    return derive(load(ZOO))


def exps(table, op, q, opt=None):
    return table.get(op, q, opt).exponents


def test_mqa_fixed_head_dim(zoo):
    """K of rank d_head (fixed), repeated n/d_head times: hidden init, Adam LR 1/n -- per coordinate
    the update is Θ(1) whatever the repeat.  The spectral target gives kappa ~ sqrt(n) and LR n^-1/2."""
    assert exps(zoo, "mqa_k", "init_std")["n"] == -HALF
    assert exps(zoo, "mqa_k", "lr", "adam")["n"] == -1
    spectral = derive(load(ZOO), Settings(update_target="spectral"))
    assert exps(spectral, "mqa_k", "lr", "adam")["n"] == -HALF


def test_mla_latent_fixed_and_growing(zoo):
    # c fixed: the down factor keeps its output's RMS (init n^-1/2, LR 1/n); the up factor is input-like
    assert exps(zoo, "mla_kv_fixed.A", "init_std")["n"] == -HALF
    assert exps(zoo, "mla_kv_fixed.A", "lr", "adam")["n"] == -1
    assert exps(zoo, "mla_kv_fixed.B", "init_std")["n"] == 0
    assert exps(zoo, "mla_kv_fixed.B", "lr", "adam")["n"] == 0
    # c ~ n: both factors are hidden weights
    for f in ("A", "B"):
        assert exps(zoo, f"mla_kv_wide.{f}", "init_std")["n"] == -HALF
        assert exps(zoo, f"mla_kv_wide.{f}", "lr", "adam")["n"] == -1


def test_lora_plus_ratio_and_zero_b(zoo):
    """LoRA+ (Hayou et al. 2024): with Adam, eta_B / eta_A = Θ(n); B starts at zero."""
    assert zoo.get("lora.B", "init_std").expr == 0 and "zero init" in zoo.get("lora.B", "init_std").reason
    assert exps(zoo, "lora.A", "init_std")["n"] == -HALF                      # A's output feeds B: RMS kept
    ratio = zoo.get("lora.B", "lr", "adam").expr / zoo.get("lora.A", "lr", "adam").expr
    assert sp.simplify(ratio - sp.Symbol("n", positive=True) / sp.Symbol("k", positive=True)) == 0


def test_moe_scaled_experts(zoo):
    E = "E"
    assert set(exps(zoo, "router", "lr", "adam")) == {"n", "L", "r", E}
    assert exps(zoo, "router", "lr", "adam")[E] == 0 and exps(zoo, "router", "lr", "adam")["n"] == -1
    assert exps(zoo, "router", "init_std") == {"n": -1, "L": 0, "r": 0, E: HALF}   # readout to E logits
    assert exps(zoo, "expert_up", "lr", "adam") == {"n": -1, "L": 0, "r": 0, E: 0}


def test_scaled_symbol_in_outputs(tmp_path):
    res = CliRunner().invoke(main, ["derive", str(ZOO), "--format", "csv"])
    assert res.exit_code == 0 and res.output.splitlines()[0].endswith("exp_n,exp_L,exp_r,exp_E,reason")
    out = tmp_path / "zoo.py"
    res = CliRunner().invoke(main, ["generate", str(ZOO), "-o", str(out), "--base", "E=8"])
    assert res.exit_code == 0, res.output
    mod = load_module(out)
    assert mod.BASE_SHAPE == {"n": 128, "L": 2, "r": 1, "E": 8}
    shape = {"n": 512, "L": 2, "r": 1, "E": 32}
    assert mod.ratio("router", "init_std", shape) == pytest.approx(math.sqrt(32 / 8) * 128 / 512)
    assert mod.ratio("lora.B", "lr_adam", shape) / mod.ratio("lora.A", "lr_adam", shape) == pytest.approx(4.0)
    res = CliRunner().invoke(main, ["generate", str(ZOO), "-o", str(out), "--base", "Q=8"])
    assert fails_cleanly(res, "--base") and "Q" in res.output


MQA_TOML = """
name = "mqa_mlp"
[dims]
d = 16
h = 8
[[op]]
name = "inp"
role = "input"
fan_in = "d"
fan_out = "n"
params = ["0.weight"]
[[op]]
name = "kv"
role = "hidden"
fan_in = "n"
fan_out = "n"
rank = "h"
lowrank = "repeat"
params = ["2.weight"]
[[op]]
name = "hid"
role = "hidden"
fan_in = "n"
fan_out = "n"
params = ["4.weight"]
[[op]]
name = "out"
role = "output"
fan_in = "n"
fan_out = "d"
params = ["6.weight"]
"""


class Repeated(nn.Module):
    """A stored (h x n) map whose h rows are each repeated n / h times: MQA's shared K."""

    def __init__(self, n, h):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(h, n))

    def forward(self, x):
        return (x @ self.weight.T).repeat_interleave(x.shape[-1] // self.weight.shape[0], -1)


def _mqa_target(rules_path):
    rules = load_module(rules_path)
    teacher = torch.randn(16, 16, generator=torch.Generator().manual_seed(0)) / 4

    def make(shape, rules):
        n = shape["n"]
        model = nn.Sequential(nn.Linear(16, n, bias=False), nn.ReLU(), Repeated(n, 8), nn.ReLU(),
                              nn.Linear(n, n, bias=False), nn.ReLU(), nn.Linear(n, 16, bias=False))
        rules.init_weights(model, std=1.0, shape=shape)
        return model

    def sample(rng):
        x = torch.from_numpy(rng.standard_normal((8, 16))).float()
        return x, torch.tanh(x @ teacher)

    return Target(name="mqa", rules=rules, make=make, sample=sample,
                  loss=lambda m, b: nn.functional.mse_loss(m(b[0]), b[1]))


@pytest.mark.parametrize("target,passes", [("rank-adjusted", True), ("spectral", False)])
def test_mqa_coordinate_check_decides_the_target(tmp_path, target, passes):
    """Fixed rank, growing repeat: the spectral target's LR n^-1/2 makes K's own update grow like
    sqrt(n) (the check fails); the default rank-adjusted target keeps it Θ(1).  (lr 1e-3: at the
    default 3e-3 this one-batch regression toy leaves the linear regime by step 3 at every target.)"""
    decl, rules = tmp_path / "mqa.toml", tmp_path / f"mqa_{target}.py"
    decl.write_text(MQA_TOML)
    res = CliRunner().invoke(main, ["generate", str(decl), "-o", str(rules), "--update-target", target])
    assert res.exit_code == 0, res.output
    rep = run_coord_check(_mqa_target(rules), {"width": [128, 256, 512]}, lr=1e-3, echo=lambda *_: None)
    kv = rep["axes"]["width"]["labels"]["kv"]["metrics"]["dwx"]
    assert rep["passed"] is passes
    assert kv["slope"][1] == pytest.approx(0.0 if passes else 0.5, abs=0.15)
