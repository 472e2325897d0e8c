"""What the validation harness trains: a generated rules module plus a model family indexed by shape.

Any ``nn.Module`` can be checked: give a factory ``make(shape, rules) -> model`` (shape is
``{"n", "L", "r"}``; ``rules`` is the module whose multipliers the model should use), a batch
sampler and a loss.  The harness seeds torch before each ``make``, scales optimizer groups with
``rules`` (a module written by ``mup-derive generate``) and hooks every module whose
parameters a declared op governs.  A target file is Python that runs when it is resolved,
like any import.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from ..infer.families import LIBRARIES
from .data import MarkovTask, TextTask
from .loader import load_module
from .rules import NotRules, RulesModule, load_rules

Batch = Any                      # a tensor, or a tuple/list of tensors
Probes = Callable[[nn.Module, dict[str, torch.Tensor]], dict[str, list[torch.Tensor]]]


class TargetError(ValueError):
    """A target that the harness cannot use; the message names what is wrong."""


@dataclass(frozen=True)
class Target:
    name: str
    rules: RulesModule
    make: Callable[[dict[str, int], RulesModule], nn.Module]   # shape, rules -> initialised model
    sample: Callable[[np.random.Generator], Batch]            # one batch of CPU tensors
    loss: Callable[[nn.Module, Batch], torch.Tensor]          # model, batch -> scalar loss
    parametrization: str = "mup"
    probes: Probes | None = None                              # {label: [tensors]} from hooked outputs
    watch: Mapping[str, str] = field(default_factory=dict)    # label -> glob of extra modules to hook
    source: str = ""
    recipe: tuple[str, str, tuple[tuple[str, Any], ...]] | None = None   # resolve()'s arguments, for workers
    control: str | None = None                                # the negative control applied to ``rules``


def to_device(batch: Batch, device: str) -> Batch:
    """Move a tensor, or a tuple/list of tensors, to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    return type(batch)(to_device(b, device) for b in batch)


def lm_loss(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy of a model whose forward returns logits (B, T, vocab)."""
    logits = model(tokens[:, :-1])
    return nn.functional.cross_entropy(logits.flatten(0, 1).float(), tokens[:, 1:].flatten())


def gqa_logits(model: nn.Module, out: dict[str, torch.Tensor]) -> dict[str, list[torch.Tensor]]:
    """Attention logits q.k * scale of every block, from the hooked q and k outputs."""
    logits = []
    blocks: nn.ModuleList = model.get_submodule("blocks")   # type: ignore[assignment]
    for i, block in enumerate(blocks):
        a: Any = block.get_submodule("attn")       # the generated Attention: heads, ratio, d_head, scale
        q, k = out[f"blocks.{i}.attn.q"], out[f"blocks.{i}.attn.k"]
        B, T, _ = q.shape
        q = q.view(B, T, a.heads, a.d_head).transpose(1, 2)
        k = k.view(B, T, a.heads // a.ratio, a.d_head).transpose(1, 2).repeat_interleave(a.ratio, 1)
        logits.append(q @ k.transpose(-1, -2) * a.scale)
    return {"attn_logits": logits}


def gqa_target(module: str | Path | RulesModule, parametrization: str = "mup", text: str | None = None,
               batch: int = 16, seq: int = 32) -> Target:
    """The generated GQA transformer of ``module`` (path or loaded module) on the synthetic Markov
    task, or on the bytes of the file ``text``."""
    if isinstance(module, str | Path):
        _import(str(module))
        try:
            mod = load_rules(module)
        except NotRules as exc:
            raise TargetError(str(exc)) from None
    else:
        mod = module
    if not hasattr(mod, "GQATransformer"):
        raise TargetError(f"{getattr(mod, '__file__', mod)}: not a generated module with a GQA model; "
                          "pass FILE.py:FACTORY for another model")
    try:
        task = TextTask(text, min_bytes=seq + 2) if text else MarkovTask(vocab=mod.DIMS["vocab"], seed=1234)
    except ValueError as exc:
        raise TargetError(f"text {text}: {exc}") from None

    def make(shape: dict[str, int], rules: RulesModule) -> nn.Module:
        model: nn.Module = rules.GQATransformer(width=shape["n"], depth=shape["L"],  # type: ignore[attr-defined]
                                                ratio=shape["r"], parametrization=parametrization)
        return model

    return Target(name=Path(mod.__file__).stem, rules=mod, make=make,
                  sample=lambda rng: task.batch(batch, seq, rng), loss=lm_loss,
                  parametrization=parametrization, probes=gqa_logits, watch={"residual": "blocks.*"},
                  source=str(mod.__file__))


def _import(path: str, fresh: bool = False) -> ModuleType:
    """Import a target file; any failure (not Python, a syntax error, an error while it runs) is named."""
    try:
        return load_module(path, fresh=fresh)
    except Exception as exc:       # the file is the user's code: whatever it raises is reported, not a traceback
        raise TargetError(f"{path}: cannot be imported as Python ({type(exc).__name__}: {exc})") from None


def _factory(path: str, factory: str, spec: str) -> Callable[..., Any]:
    fn = getattr(_import(path, fresh=True), factory, None)
    if not callable(fn):
        raise TargetError(f"target {spec!r}: {path} defines no function {factory!r}")
    return fn


def _takes(spec: str, options: dict[str, Any], accepted: set[str], what: str = "") -> None:
    """A one-line error for the first option the target ``spec`` does not take."""
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise TargetError(f"target {spec!r}{what} takes no {unknown[0]!r} option; drop --{unknown[0]}")


def resolve(spec: str, parametrization: str = "mup", **options: Any) -> Target:
    """A model family (``hf:FAMILY``, ``litgpt:gpt``, ``torchtitan:llama3``: μP absorbed into its weights),
    ``FILE.py`` (a generated module with its model; ``options`` are :func:`gqa_target`'s) or ``FILE.py:FACTORY``
    (a function ``FACTORY(parametrization, ...) -> Target`` for any model; an option it does not name, e.g.
    ``text``, is refused rather than ignored)."""
    if spec.partition(":")[0] in LIBRARIES:
        from ..apply.targets import family_target
        _takes(spec, options, {"batch", "seq", "text", "tied"})
        try:
            target = family_target(spec, parametrization, **options)
        except ValueError as exc:          # an unknown family, or one parametrize refuses, with its reason
            raise TargetError(f"target {spec!r}: {exc}") from None
        return replace(target, recipe=(spec, parametrization, tuple(sorted(options.items()))))
    path, _, factory = spec.partition(":")
    if not Path(path).is_file():
        raise TargetError(f"target {spec!r}: no file {path!r}")
    recipe = (spec, parametrization, tuple(sorted(options.items())))
    if not factory:
        _takes(spec, options, set(inspect.signature(gqa_target).parameters), " (a generated module)")
        return replace(gqa_target(path, parametrization, **options), recipe=recipe)
    fn = _factory(path, factory, spec)
    accepted = inspect.signature(fn).parameters
    ignored = sorted(set(options) - set(accepted))
    if ignored:
        raise TargetError(f"target {spec!r}: {factory}() takes no {ignored[0]!r} option, so it would be ignored; "
                          f"drop --{ignored[0]}")
    target = fn(parametrization, **options)
    if not isinstance(target, Target):
        raise TargetError(f"target {spec!r}: {factory}() returned {type(target).__name__}, not a Target")
    return replace(target, recipe=recipe)
