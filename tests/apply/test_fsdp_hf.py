"""A stock HF Llama parametrized by mup_derive survives FSDP2 ``fully_shard`` (2 CPU processes, gloo): the same
param groups and losses as one process."""

import pytest
import torch
import torch.distributed as dist

from tests.helpers import adamw_steps, assert_same_training, on_gloo_ranks

pytest.importorskip("transformers")

BASE = {"n": 64, "L": 2, "r": 1}
SHAPE = {"n": 128, "L": 2, "r": 2}


def _model():
    from mup_derive.apply import parametrize
    from mup_derive.infer import build_model
    torch.manual_seed(0)
    model = build_model("hf:llama", SHAPE)
    parametrize(model, BASE, lr=1e-2)                              # init before sharding
    return model


def _train(model):
    from mup_derive.apply import parametrize
    groups = parametrize(model, BASE, lr=1e-2, weight_decay=0.1, init=False)
    return adamw_steps(groups, lambda x: model(input_ids=x, labels=x).loss)


def _sharded():
    from torch.distributed.fsdp import fully_shard
    model = _model()
    for layer in model.model.layers:
        fully_shard(layer)
    fully_shard(model)
    groups, losses = _train(model)
    return {"groups": groups, "losses": losses}


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo")
def test_fully_shard_a_parametrized_llama(tmp_path):
    sharded = on_gloo_ranks(_sharded, tmp_path)
    assert_same_training(sharded, *_train(_model()))
