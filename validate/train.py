"""Build a generated model at a shape and train it with the derived optimizer groups."""
from __future__ import annotations

import math

import torch

from .loader import load_module


AXES = {"width": "n", "ratio": "r", "depth": "L"}   # sweep axis -> shape key


class Diverged(RuntimeError):
    """Training produced a non-finite loss."""

    def __init__(self, step: int, loss: float):
        super().__init__(f"non-finite loss {loss} at step {step}")
        self.step, self.loss = step, loss


def build(module, shape: dict, parametrization: str, seed: int, device: str = "cpu"):
    """The module's GQATransformer at ``shape`` (n, L, r), seeded."""
    module = load_module(module) if isinstance(module, str) else module
    torch.manual_seed(seed)
    model = module.GQATransformer(width=shape["n"], depth=shape["L"], ratio=shape["r"],
                                  parametrization=parametrization)
    return module, model.to(device)


def optimizer(module, model, lr: float, weight_decay: float = 0.0, eps: float = 1e-8):
    """AdamW over the module's scaled param groups."""
    groups = module.param_groups(model, lr=lr, weight_decay=weight_decay, eps=eps, optimizer="adamw")
    return torch.optim.AdamW(groups, betas=(0.9, 0.95))


def train(model, opt, data: list[torch.Tensor], device: str = "cpu", on_step=None) -> list[float]:
    """One optimizer step per batch; raises :class:`Diverged` on a NaN/inf loss."""
    losses = []
    model.train()
    for step, tokens in enumerate(data):
        tokens = tokens.to(device)
        _, loss = model(tokens[:, :-1], tokens[:, 1:])
        value = loss.item()
        if not math.isfinite(value):
            raise Diverged(step, value)
        losses.append(value)
        if on_step is not None:
            on_step(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return losses


@torch.no_grad()
def evaluate(model, data: list[torch.Tensor], device: str = "cpu") -> float:
    model.eval()
    total = sum(model(t[:, :-1].to(device), t[:, 1:].to(device))[1].item() for t in data)
    model.train()
    return total / len(data)
