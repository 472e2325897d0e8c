"""A stock HF Llama parametrized by mup_derive survives FSDP2 ``fully_shard`` (2 CPU processes, gloo): the same
param groups and losses as one process."""

import pytest
import torch
import torch.distributed as dist

from tests.helpers import on_gloo_ranks

pytest.importorskip("transformers")

BASE = {"n": 64, "L": 2, "r": 1}
SHAPE = {"n": 128, "L": 2, "r": 2}


def _model():
    from mup_derive.apply import parametrize
    from mup_derive.infer import hf_model
    torch.manual_seed(0)
    model = hf_model("llama", SHAPE)
    parametrize(model, BASE, lr=1e-2)                              # init before sharding
    return model


def _train(model, steps=2):
    from mup_derive.apply import parametrize
    groups = parametrize(model, BASE, lr=1e-2, weight_decay=0.1, init=False)
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.95))
    x = torch.randint(0, 256, (4, 17), generator=torch.Generator().manual_seed(5))
    losses = []
    for _ in range(steps):
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return {g["name"]: [g["lr"], g["weight_decay"], g["eps"]] for g in groups}, losses


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
    groups, losses = _train(_model())
    assert sharded["groups"].keys() == groups.keys()
    for op, values in groups.items():
        assert sharded["groups"][op] == pytest.approx(values), op
    assert sharded["losses"] == pytest.approx(losses, rel=1e-4)
