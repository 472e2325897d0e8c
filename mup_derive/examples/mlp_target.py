"""A model the harness knows nothing about: a plain ``torch.nn.Sequential`` MLP on a regression
task, scaled by the rules generated from ``examples/mlp.toml`` (``generated/mlp.py``).

    mup-derive coord-check examples/mlp_target.py:target --axes width
"""
from pathlib import Path

import torch
from torch import nn

from mup_derive.validate.rules import load_rules
from mup_derive.validate.target import Target

RULES = Path(__file__).absolute().parent.parent / "generated" / "mlp.py"


def target(parametrization: str = "mup") -> Target:
    rules = load_rules(RULES)
    d = rules.DIMS["d"]
    teacher = torch.randn(d, d, generator=torch.Generator().manual_seed(0)) / d ** 0.5

    def make(shape, rules):
        n = shape["n"]
        model = nn.Sequential(nn.Linear(d, n), nn.ReLU(), nn.Linear(n, n), nn.ReLU(), nn.Linear(n, d, bias=False))
        rules.init_weights(model, std=1.0, shape=shape, parametrization=parametrization)
        return model

    def sample(rng):
        x = torch.from_numpy(rng.standard_normal((8, d))).float()
        return x, torch.sin(3 * x @ teacher)

    def loss(model, batch):
        x, y = batch
        return nn.functional.mse_loss(model(x), y)

    return Target(name="mlp", rules=rules, make=make, sample=sample, loss=loss, parametrization=parametrization,
                  source=str(RULES))
