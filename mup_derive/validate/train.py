"""Build a target's model at a shape and train it with the derived optimizer groups."""
from __future__ import annotations

import math

import torch

from .flex import flex_sites, trainable_flex
from .target import Batch, Target, to_device


class Diverged(RuntimeError):
    """Training produced a non-finite loss."""

    def __init__(self, step: int, loss: float):
        super().__init__(f"non-finite loss {loss} at step {step}")
        self.step, self.loss = step, loss


def build(target: Target, shape: dict[str, int], seed: int, device: str = "cpu") -> torch.nn.Module:
    """The target's model at ``shape`` (n, L, r), seeded."""
    torch.manual_seed(seed)
    return target.make(dict(shape), target.rules).to(device)


def optimizer(target: Target, model: torch.nn.Module, shape: dict[str, int], lr: float, weight_decay: float = 0.0,
              eps: float = 1e-8) -> torch.optim.AdamW:
    """AdamW (betas 0.9, 0.95) over the rules' scaled param groups."""
    groups = target.rules.param_groups(model, lr=lr, weight_decay=weight_decay, eps=eps, optimizer="adamw",
                                       shape=dict(shape), parametrization=target.parametrization)
    return torch.optim.AdamW(groups, betas=(0.9, 0.95))


def train(target: Target, model: torch.nn.Module, opt: torch.optim.Optimizer, data: list[Batch],
          device: str = "cpu") -> list[float]:
    """One optimizer step per batch; raises :class:`Diverged` on a NaN/inf loss.  Flex attention trains through its
    dense reference where it has no backward (:func:`.flex.trainable_flex`)."""
    losses, sites = [], flex_sites(model)
    model.train()
    for step, batch in enumerate(data):
        with trainable_flex(sites):
            loss = target.loss(model, to_device(batch, device))
        value = loss.item()
        if not math.isfinite(value):
            raise Diverged(step, value)
        losses.append(value)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return losses


@torch.no_grad()
def evaluate(target: Target, model: torch.nn.Module, data: list[Batch], device: str = "cpu") -> float:
    """Mean loss over ``data`` in eval mode."""
    model.eval()
    total = sum(target.loss(model, to_device(b, device)).item() for b in data)
    model.train()
    return total / len(data)
