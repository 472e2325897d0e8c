"""Paths and assertions shared by the tests."""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from mup_derive.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
GQA = EXAMPLES / "gqa_transformer.toml"
MHA = EXAMPLES / "mha_transformer.toml"
ZOO = EXAMPLES / "lowrank_zoo.toml"
GENERATED = ROOT / "generated" / "gqa_transformer.py"


def quiet(*_: Any) -> None:
    """An ``echo`` that prints nothing."""


def cli(*args: Any) -> Result:
    """Run the command line in-process."""
    return CliRunner().invoke(main, [str(a) for a in args])


def fails_cleanly(res: Result, message: str) -> bool:
    """A CLI result that exited non-zero with ``message`` and no traceback."""
    return (res.exit_code != 0 and message in res.output and "Traceback" not in res.output
            and (res.exception is None or isinstance(res.exception, SystemExit)))


def generated(tmp_path: Path, declaration: str, *args: Any) -> tuple[dict[str, Any], Result]:
    """Write ``declaration`` as TOML, run ``mup-derive generate`` on it (with ``args``) and execute the module:
    (its namespace, the CLI result)."""
    decl, out = tmp_path / "d.toml", tmp_path / "rules.py"
    decl.write_text(declaration)
    res = cli("generate", decl, "-o", out, *args)
    assert res.exit_code == 0, res.output
    ns: dict[str, Any] = {"__name__": "rules"}
    exec(compile(out.read_text(), str(out), "exec"), ns)
    return ns, res


def _gloo_rank(rank: int, world: int, store: str, out: str, body: Callable[[], Any]) -> None:
    import torch.distributed as dist
    # A file store: no port to race for, no store server that dies with rank 0.
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        result = body()
        if rank == 0:
            Path(out).write_text(json.dumps(result))
    finally:
        dist.barrier()                                 # nobody tears down mid-collective
        dist.destroy_process_group()
    os._exit(0)     # skip interpreter teardown, where gloo's threads have aborted a worker ("terminate called")


def on_gloo_ranks(body: Callable[[], Any], tmp_path: Path, world: int = 2) -> Any:
    """``body()`` (a module-level function) run on ``world`` CPU processes joined by gloo; rank 0's result."""
    import torch.multiprocessing as mp
    out = tmp_path / "rank0.json"
    mp.spawn(_gloo_rank, args=(world, str(tmp_path / "store"), str(out), body), nprocs=world, join=True)
    return json.loads(out.read_text())


def adamw_steps(groups: list[dict[str, Any]], loss_of: Callable[[Any], Any], steps: int = 2
                ) -> tuple[dict[str, list[float]], list[float]]:
    """AdamW steps over ``groups`` on one fixed batch (4 x 17 tokens, seed 5), ``loss_of(tokens)`` the loss:
    each group's (lr, weight decay, eps) by name, and the losses."""
    import torch
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.95))
    x = torch.randint(0, 256, (4, 17), generator=torch.Generator().manual_seed(5))
    losses = []
    for _ in range(steps):
        loss = loss_of(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return {g["name"]: [g["lr"], g["weight_decay"], g["eps"]] for g in groups}, losses


def assert_same_training(sharded: dict[str, Any], groups: dict[str, list[float]], losses: list[float]) -> None:
    """The sharded run's groups equal the single process's, op by op, and so do its losses."""
    import pytest
    assert sharded["groups"].keys() == groups.keys()
    for op, values in groups.items():
        assert sharded["groups"][op] == pytest.approx(values), op
    assert sharded["losses"] == pytest.approx(losses, rel=1e-4)
