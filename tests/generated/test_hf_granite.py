"""The derived rules applied to Hugging Face transformers' GraniteForCausalLM (tiny configs, CPU)."""
import math

import pytest
import torch

from mup_derive.validate.loader import load_module
from tests.helpers import ROOT

transformers = pytest.importorskip("transformers")
RULES = ROOT / "generated" / "hf_granite.py"


@pytest.fixture(scope="module")
def hf():
    return load_module(RULES)


def granite(hf, shape, parametrization="mup", seed=0):
    torch.manual_seed(seed)
    model = transformers.GraniteForCausalLM(hf.granite_config(shape, parametrization))
    return model


def test_config_carries_the_multipliers(hf):
    base, big = hf.granite_config({"n": 128, "L": 2, "r": 1}), hf.granite_config({"n": 512, "L": 8, "r": 4})
    assert big.num_key_value_heads == 2 and big.intermediate_size == 2048
    assert big.attention_multiplier == pytest.approx(base.attention_multiplier * 128 / 512)   # 1/d_head
    assert base.attention_multiplier == pytest.approx(1 / math.sqrt(128 / 8))                # SP's at the base
    assert big.residual_multiplier == pytest.approx(2 / 8) and big.logits_scaling == pytest.approx(1.0)
    sp = hf.granite_config({"n": 512, "L": 8, "r": 4}, "sp")
    assert sp.attention_multiplier == pytest.approx(1 / math.sqrt(64)) and sp.residual_multiplier == 1.0


def test_apply_initialises_and_groups(hf):
    shape = {"n": 512, "L": 2, "r": 4}
    model = granite(hf, shape)
    groups = {g["name"]: g for g in hf.apply(model, lr=1e-2, weight_decay=0.1)}
    assert groups["q"]["lr"] == pytest.approx(1e-2 * 128 / 512) and groups["k"]["lr"] == pytest.approx(1e-2 / 4)
    assert groups["q"]["weight_decay"] == pytest.approx(0.1 * 4) and groups["attn_norm"]["weight_decay"] == 0
    q = model.model.layers[0].self_attn.q_proj.weight
    assert q.std().item() == pytest.approx(0.02 * math.sqrt(128 / 512), rel=0.05)
    assert model.lm_head.weight.std().item() == pytest.approx(0.02 * 128 / 512, rel=0.05)


def test_apply_refuses_a_config_of_other_multipliers(hf):
    wrong = transformers.GraniteForCausalLM(hf.granite_config({"n": 512, "L": 2, "r": 4}, "sp"))
    with pytest.raises(ValueError, match="build the model from granite_config"):
        hf.apply(wrong, lr=1e-2)


def test_save_pretrained_keeps_the_parametrization(hf, tmp_path):
    shape = {"n": 64, "L": 2, "r": 2}
    model = granite(hf, shape)
    hf.apply(model, lr=1e-3)
    model.save_pretrained(tmp_path)
    back = transformers.GraniteForCausalLM.from_pretrained(tmp_path)
    x = torch.randint(0, 256, (2, 12))
    model.eval(), back.eval()
    assert torch.allclose(model(input_ids=x).logits, back(input_ids=x).logits, atol=1e-6)
    assert hf.granite_multipliers(hf.shape_of(back.config)) == pytest.approx(
        {k: getattr(back.config, k) for k in hf.granite_multipliers(shape)})

    def lrs(m):
        return [g["lr"] for g in hf.param_groups(m, 1e-3, shape=hf.shape_of(m.config))]
    assert lrs(back) == lrs(model)
