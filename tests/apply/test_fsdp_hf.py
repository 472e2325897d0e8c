"""A stock HF Llama parametrized by mup_derive survives FSDP2 ``fully_shard`` (2 CPU processes, gloo): the same
param groups and losses as one process."""
import json
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

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


def _worker(rank, world, store, out):
    from torch.distributed.fsdp import fully_shard
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        model = _model()
        for layer in model.model.layers:
            fully_shard(layer)
        fully_shard(model)
        groups, losses = _train(model)
        if rank == 0:
            with open(out, "w") as f:
                json.dump({"groups": groups, "losses": losses}, f)
    finally:
        dist.barrier()
        dist.destroy_process_group()
    os._exit(0)     # skip interpreter teardown, where gloo's threads have aborted a worker ("terminate called")


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo")
def test_fully_shard_a_parametrized_llama(tmp_path):
    out = tmp_path / "rank0.json"
    mp.spawn(_worker, args=(2, tmp_path / "store", str(out)), nprocs=2, join=True)
    sharded = json.loads(out.read_text())
    groups, losses = _train(_model())
    assert sharded["groups"].keys() == groups.keys()
    for op, values in groups.items():
        assert sharded["groups"][op] == pytest.approx(values), op
    assert sharded["losses"] == pytest.approx(losses, rel=1e-4)
