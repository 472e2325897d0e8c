"""Generated code: deterministic, current with generated/, and usable without a model template."""
import math

import pytest
import torch

from mup_derive.declare import load
from mup_derive.generate import generate_module
from mup_derive.validate.loader import load_module
from mup_derive.validate.rules import is_rules_module
from tests.helpers import GENERATED, GQA, MHA, ROOT, ZOO, cli


@pytest.mark.parametrize("decl", ["gqa_transformer", "mlp", "hf_granite"])
def test_generated_is_current(tmp_path, decl):
    src = GQA.parent / f"{decl}.toml"
    out = tmp_path / "g.py"
    res = cli("generate", src.relative_to(ROOT), "-o", out, "--base-width", "128", "--base-depth", "2",
              "--base-ratio", "1")
    assert res.exit_code == 0
    assert out.read_bytes() == (GENERATED.parent / f"{decl}.py").read_bytes(), "regenerate generated/ (see README)"


def test_regeneration_is_byte_identical(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    for p in (a, b):
        cli("generate", MHA, "-o", p)
    assert a.read_bytes() == b.read_bytes()


def test_python_api_writes_what_the_cli_writes(tmp_path):
    out = tmp_path / "g.py"
    cli("generate", GQA.relative_to(ROOT), "-o", out)
    assert generate_module(load(GQA), source="examples/gqa_transformer.toml") == out.read_text()


def test_generated_module_satisfies_the_rules_protocol(gen):
    assert is_rules_module(gen)


def _std(model, name):
    return dict(model.named_parameters())[name].std().item()


def test_rules_only_module_for_any_declaration(tmp_path):
    """Without a model template the module still scales init and param groups of a user's model."""
    decl = tmp_path / "mlp.toml"
    decl.write_text('name = "mlp"\n[dims]\nd = 10\n'
                    '[[op]]\nname = "inp"\nrole = "input"\nfan_in = "d"\nfan_out = "n"\nparams = ["0.weight"]\n'
                    '[[op]]\nname = "bias"\nrole = "vector"\nfan_out = "n"\ninit = "zeros"\nparams = ["*.bias"]\n'
                    '[[op]]\nname = "hid"\nrole = "hidden"\nfan_in = "n"\nfan_out = "n"\nparams = ["2.weight"]\n'
                    '[[op]]\nname = "out"\nrole = "output"\nfan_in = "n"\nfan_out = "d"\nparams = ["4.weight"]\n')
    out = tmp_path / "mlp_rules.py"
    cli("generate", decl, "-o", out, "--base-width", "64")
    mod = load_module(out)
    assert not hasattr(mod, "GQATransformer")

    def mlp(n):
        return torch.nn.Sequential(torch.nn.Linear(10, n), torch.nn.ReLU(), torch.nn.Linear(n, n), torch.nn.ReLU(),
                                   torch.nn.Linear(n, 10, bias=False))
    torch.manual_seed(0)
    small, big = mlp(64), mlp(1024)
    for model, n in ((small, 64), (big, 1024)):
        mod.init_weights(model, std=1.0, shape={"n": n, "L": 1, "r": 1})

    def slope(name):
        return math.log(_std(big, name) / _std(small, name)) / math.log(16)
    assert slope("0.weight") == pytest.approx(0.0, abs=0.03)
    assert slope("2.weight") == pytest.approx(-0.5, abs=0.03)
    assert slope("4.weight") == pytest.approx(-1.0, abs=0.03)
    assert torch.all(big[0].bias == 0)
    groups = {g["name"]: g["lr"] for g in mod.param_groups(big, lr=1.0, optimizer="sgd",
                                                            shape={"n": 1024, "L": 1, "r": 1})}
    assert groups == pytest.approx({"inp": 16.0, "bias": 16.0, "hid": 1.0, "out": 1 / 16})   # TP5 Table 3, SGD


def test_scaled_symbol_base_and_rules(tmp_path):
    out = tmp_path / "zoo.py"
    res = cli("generate", ZOO, "-o", out, "--base", "E=8")
    assert res.exit_code == 0, res.output
    mod = load_module(out)
    assert mod.BASE_SHAPE == {"n": 128, "L": 2, "r": 1, "E": 8}
    shape = {"n": 512, "L": 2, "r": 1, "E": 32}
    assert mod.ratio("router", "init_std", shape) == pytest.approx(math.sqrt(32 / 8) * 128 / 512)
    assert mod.ratio("lora.B", "lr_adam", shape) / mod.ratio("lora.A", "lr_adam", shape) == pytest.approx(4.0)
