"""The generated init and param groups survive FSDP2 ``fully_shard`` (2 CPU processes, gloo)."""
import pytest
import torch
import torch.distributed as dist

from mup_derive.validate.loader import load_module
from tests.helpers import GENERATED, adamw_steps, assert_same_training, on_gloo_ranks

SHAPE = dict(width=128, depth=2, ratio=2)


def _train(gen, model):
    return adamw_steps(gen.param_groups(model, lr=1e-2, weight_decay=0.1), lambda x: model(x[:, :-1], x[:, 1:])[1])


def _sharded():
    from torch.distributed.fsdp import fully_shard
    gen = load_module(GENERATED)
    torch.manual_seed(0)
    model = gen.GQATransformer(**SHAPE)                      # init before sharding
    for block in model.blocks:
        fully_shard(block)
    fully_shard(model)
    groups, losses = _train(gen, model)
    torch.manual_seed(1)
    gen.init_weights(model)                                  # and init of the sharded parameters
    stds = {n: p.full_tensor().std().item() for n, p in model.named_parameters() if p.dim() == 2}
    return {"groups": groups, "losses": losses, "stds": stds}


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo")
def test_fully_shard_keeps_groups_init_and_training(tmp_path):
    sharded = on_gloo_ranks(_sharded, tmp_path)
    gen = load_module(GENERATED)
    torch.manual_seed(0)
    ref = gen.GQATransformer(**SHAPE)
    assert_same_training(sharded, *_train(gen, ref))
    torch.manual_seed(1)
    gen.init_weights(ref)
    for name, std in sharded["stds"].items():
        assert std == pytest.approx(dict(ref.named_parameters())[name].std().item(), rel=0.1), name
