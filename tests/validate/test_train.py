"""Training with the derived param groups."""
import pytest
import torch

from mup_derive.validate import gqa_target
from mup_derive.validate.data import batches
from mup_derive.validate.train import Diverged, build, optimizer, train
from tests.helpers import GENERATED


def test_train_raises_diverged_on_nan():
    target = gqa_target(GENERATED, batch=2, seq=8)
    shape = {"n": 64, "L": 2, "r": 1}
    model = build(target, shape, 0)
    with torch.no_grad():
        model.lm_head.weight.fill_(float("nan"))
    with pytest.raises(Diverged):
        train(target, model, optimizer(target, model, shape, 1e-2), batches(target.sample, 2, 0))


def test_optimizer_groups_follow_the_rules():
    target = gqa_target(GENERATED, batch=2, seq=8)
    shape = {"n": 256, "L": 2, "r": 1}
    opt = optimizer(target, build(target, shape, 0), shape, 1e-2)
    assert {g["name"]: g["lr"] for g in opt.param_groups}["q"] == pytest.approx(1e-2 * 128 / 256)
