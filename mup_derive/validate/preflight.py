"""Checks made before any training, so that a run that cannot finish fails in seconds, not at the end:
every shape builds (on the meta device, no memory), the device computes, the outputs can be written."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from ..atomic import OutputError, check_target, check_writable
from .report import report_paths
from .target import Target

DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")


class PreflightError(ValueError):
    """A run that cannot finish as asked; the message says what to change."""


def check_device(device: str) -> None:
    """``device`` is a torch device of a kind that trains, available here, and computes."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise PreflightError(f"{device!r} is not a torch device") from None
    if dev.type not in DEVICE_TYPES:
        raise PreflightError(f"device {device!r} cannot train; use one of {DEVICE_TYPES}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PreflightError("CUDA is not available on this machine")
    try:
        torch.ones(1, device=dev).add(1).cpu()
    except (RuntimeError, AssertionError) as exc:
        raise PreflightError(f"device {device!r} does not compute here: {exc}") from None


def check_shapes(target: Target, shapes: Iterable[dict[str, int]], lr: float) -> None:
    """Every shape builds and gets its param groups (on the meta device: no memory, no compute)."""
    for shape in shapes:
        try:
            with torch.device("meta"):
                model = target.make(dict(shape), target.rules)
                target.rules.param_groups(model, lr=lr, optimizer="adamw", shape=dict(shape),
                                          parametrization=target.parametrization)
        except Exception as exc:   # the user's model code: whatever it raises is named with the shape
            raise PreflightError(f"{target.name} cannot be built at shape {shape}: {type(exc).__name__}: "
                                 f"{exc}") from None


def check_outputs(out_dir: str | Path, stem: str, inputs: Iterable[str | Path]) -> None:
    """The report's files can be written in ``out_dir`` and none of them is an input."""
    try:
        check_writable(out_dir)
        for path in report_paths(out_dir, stem):
            check_target(path, inputs)
    except OutputError as exc:
        raise PreflightError(str(exc)) from None


def preflight(target: Target, shapes: Iterable[dict[str, int]], lr: float, device: str, out_dir: str | Path | None,
              stem: str, inputs: Iterable[str | Path]) -> None:
    """All of the above before a check or sweep trains: the device, every shape, the report's files."""
    check_device(device)
    check_shapes(target, shapes, lr)
    if out_dir:
        check_outputs(out_dir, stem, inputs)
