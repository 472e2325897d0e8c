"""Record one model's coordinates: per hooked layer and step, activation RMS, its change and its own update.

* ``rms``: activation RMS;
* ``delta``: RMS of the activation's change since init;
* ``dwx``: RMS of the layer's own update applied to its input at init, (W_t - W_0) x_0.
"""
from __future__ import annotations

import fnmatch
import inspect
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from .flex import eager_flex, flex_sites
from .swap import swapped
from .target import Target, to_device
from .train import Diverged, build, optimizer, train

Series = dict[str, dict[str, list[float]]]       # label -> metric -> value at step 0..steps


class CheckError(ValueError):
    """A coordinate check that cannot run as asked; the message says why."""


def rms(t: torch.Tensor) -> float:
    return t.detach().float().pow(2).mean().sqrt().item()


class Hooks:
    """Forward hooks on a model's governed and watched modules, grouped by label."""

    def __init__(self, target: Target, model: nn.Module):
        self.label: dict[str, str] = {}
        self.governed: dict[str, nn.Module] = {}
        self.out: dict[str, torch.Tensor] = {}
        self.inp: dict[str, tuple[Any, ...]] = {}
        self.blocks: dict[str, tuple[list[str], Any]] = {}   # a fused tensor's module -> its ops, RowBlocks
        self.on = True
        self.canonical = {id(p): n for n, p in model.named_parameters()}   # a shared parameter's first name
        for name, mod in model.named_modules():
            if ".parametrizations" in f".{name}":                # the blocks' own holders: not layers
                continue
            label = self._fused(target, name, mod) or self._govern(target, name, mod) or self._watch(target, name)
            if label is not None:
                self.label[name] = label
                mod.register_forward_hook(self._hook(name))
        if not self.governed:
            raise CheckError(f"{type(model).__name__} has no parameter that a declared op governs: not a "
                             "model of this declaration")

    def _fused(self, target: Target, name: str, mod: nn.Module) -> str | None:
        """A module whose weight is split into row blocks (``split_fused``): each block is measured as its op."""
        if not parametrize.is_parametrized(mod):
            return None
        holders: Any = mod.parametrizations
        for attr, plist in holders.items():
            originals = [p for pn, p in plist.named_parameters(recurse=False) if pn.startswith("original")]
            ops = [target.rules.op_of(f"{name}.parametrizations.{attr}.original{i}") for i in range(len(originals))]
            if all(ops):
                self.blocks[name] = ([str(op) for op in ops], plist[0])
                self.governed[name] = mod
                return str(ops[0])
        return None

    def _govern(self, target: Target, name: str, mod: nn.Module) -> str | None:
        own = list(mod.named_parameters(recurse=False))
        if not own:
            return None
        ops = [target.rules.op_of(f"{name}.{pn}" if name else pn) or self._tied(target, p) for pn, p in own]
        for (pn, _), op in zip(own, ops, strict=True):
            if op is None:
                raise CheckError(f"parameter {name + '.' if name else ''}{pn} is governed by no declared op")
        self.governed[name] = mod
        return ops[0]

    def _tied(self, target: Target, param: nn.Parameter) -> str | None:
        """The op tied to the one that governs ``param`` under its first name (a tied readout's module holds the
        embedding's weight): the only such op, else None."""
        partner = target.rules.op_of(self.canonical[id(param)])
        tied = [op for op, d in target.rules.DECLARED.items() if d.get("tied") == partner]
        return tied[0] if partner and len(tied) == 1 else None

    @staticmethod
    def _watch(target: Target, name: str) -> str | None:
        hit = [lab for lab, glob in target.watch.items()
               if fnmatch.fnmatchcase(name, glob) and name.count(".") == glob.count(".")]
        return hit[0] if hit else None

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(_mod: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            if self.on:
                self.out[name] = output.detach() if isinstance(output, torch.Tensor) else output[0].detach()
                self.inp[name] = tuple(i.detach() if isinstance(i, torch.Tensor) else i for i in inputs)
        return hook


def _splitter(blocks: Any) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    """Split a fused op's output features into its blocks' as its weight's rows are split (the fused tensor's own
    ``RowBlocks`` parametrization, interleaved or not); an op of one tensor is one block."""
    if blocks is None:
        return lambda t: [t]
    return lambda t: [b.movedim(0, -1) for b in blocks.right_inverse(t.movedim(-1, 0))]


def _grouped(query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """K with its grouped heads repeated to the query's head count."""
    if key.shape[-3] != query.shape[-3]:
        key = key.repeat_interleave(query.shape[-3] // key.shape[-3], dim=-3)
    return key


def eager_modules(model: nn.Module) -> list[Any]:
    """The Python modules of the model's classes whose Hugging Face ``eager_attention_forward`` (looked up at call
    time when ``attn_implementation`` is ``"eager"``) takes query, key and scaling."""
    mods = [sys.modules[k] for k in sorted({type(m).__module__ for m in model.modules()}) if k in sys.modules]
    fns = [getattr(m, "eager_attention_forward", None) for m in mods]
    return [m for m, fn in zip(mods, fns, strict=True)
            if callable(fn) and {"query", "key", "scaling"} <= set(inspect.signature(fn).parameters)]


def _logits(query: torch.Tensor, key: torch.Tensor, scale: float | None) -> torch.Tensor:
    """q.k^T * scale of one attention call (query and key as (..., heads, tokens, d_head); scale None:
    1/sqrt(d_head)), the key's grouped heads repeated."""
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    return (query @ _grouped(query, key).transpose(-2, -1) * scale).detach()


def _sdpa(query: Any, key: Any, value: Any, attn_mask: Any = None, dropout_p: float = 0.0, is_causal: bool = False,
          scale: float | None = None, enable_gqa: bool = False, **later: Any) -> None:
    """The signature of torch's built-in ``scaled_dot_product_attention``, which ``inspect`` cannot read (``later``:
    keywords a newer torch may add)."""


@contextmanager
def attention_logits(found: list[torch.Tensor], eager: Sequence[Any] = (),
                     flex: Sequence[tuple[Any, str]] = ()) -> Iterator[None]:
    """Record q.k^T * scale (the attention logits before the mask and any score_mod) of every call made inside the
    block to ``torch.nn.functional.scaled_dot_product_attention``, whatever model makes it; to the
    ``eager_attention_forward`` of the modules ``eager`` (from :func:`eager_modules`: Hugging Face's eager
    attention); and to the flex attention at ``flex`` (from :func:`flex_sites`), which then runs eagerly (a
    compiled one gives the same values)."""
    sdpa = F.scaled_dot_product_attention

    def recording(fn: Callable[..., Any]) -> Callable[..., Any]:
        flex_fn = eager_flex(fn)
        if fn is sdpa:
            call, names, signature = fn, ("query", "key", "scale"), inspect.signature(_sdpa)
        elif flex_fn is not None:
            call, names, signature = flex_fn, ("query", "key", "scale"), inspect.signature(flex_fn)
        else:                                                   # Hugging Face's eager_attention_forward
            call, names, signature = fn, ("query", "key", "scaling"), inspect.signature(fn)

        def record(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs).arguments
            found.append(_logits(bound[names[0]], bound[names[1]], bound.get(names[2])))
            return call(*args, **kwargs)
        return record

    sites = [(F, "scaled_dot_product_attention"), *((m, "eager_attention_forward") for m in eager), *flex]
    with swapped(sites, recording):
        yield


def logits_label(target: Target) -> str | None:
    """The declared correlated contraction (attention logits) that intercepted attention calls measure."""
    ops = [op for op, d in target.rules.DECLARED.items() if d["role"] == "contraction" and d["correlated"]]
    return ops[0] if len(ops) == 1 else None


class Recorder:
    """Runs the probe batch through the model and appends every label's metrics to the series.  A target
    without probes of its own gets its attention logits from intercepted attention calls (SDPA, flex, Hugging Face
    eager), and stops if it makes none.  An op the model multiplies by a declared gate is measured at its effective
    output, gate times its own."""

    def __init__(self, target: Target, model: nn.Module, batch: Any, shape: dict[str, int] | None = None):
        self.target, self.model, self.batch = target, model, batch
        self.gate = {op: d["gate"](**shape) for op, d in target.rules.DECLARED.items()   # type: ignore[typeddict-item]
                     if shape is not None and "gate" in d and not d.get("gate_inside")}
        self.intercept = logits_label(target) if target.probes is None else None
        self.eager = eager_modules(model) if self.intercept else []
        self.flex = flex_sites(model) if self.intercept else []
        self.hooks = Hooks(target, model)
        self.series: Series = {}
        self.init_out: dict[str, torch.Tensor] = {}
        self.init_inp: dict[str, tuple[Any, ...]] = {}
        self.init_probes: dict[str, list[torch.Tensor]] = {}

    def record(self) -> None:
        self.hooks.out.clear()
        found: list[torch.Tensor] = []
        with attention_logits(found, self.eager, self.flex) if self.intercept else nullcontext():
            self.target.loss(self.model, self.batch)
        if self.intercept and not found:
            model = type(self.model).__name__
            raise CheckError(f"the declared contraction {self.intercept!r} was not measured: {model} calls none of "
                             "torch's scaled_dot_product_attention, its flex_attention and a Hugging Face "
                             "eager_attention_forward (attention written out by hand); give its Target probes")
        outs = dict(self.hooks.out)
        if not self.init_out:
            self.init_out, self.init_inp = outs, dict(self.hooks.inp)
        self.hooks.on = False
        groups = self._layers(outs)
        groups.update(self._probes(outs, found))
        self.hooks.on = True
        for label, ds in groups.items():
            for m in ds[0]:
                self.series.setdefault(label, {}).setdefault(m, []).append(float(np.mean([d[m] for d in ds])))

    def _layers(self, outs: dict[str, torch.Tensor]) -> dict[str, list[dict[str, float]]]:
        groups: dict[str, list[dict[str, float]]] = {}
        for name, o in outs.items():
            now = self.hooks.governed[name](*self.init_inp[name]) if name in self.hooks.governed else None
            labels, blocks = self.hooks.blocks.get(name, ([self.hooks.label[name]], None))
            split = _splitter(blocks)
            for label, out, init, new in zip(labels, split(o), split(self.init_out[name]),
                                             split(now) if now is not None else [None] * len(labels), strict=True):
                d = {"rms": rms(out), "delta": rms(out - init)}
                if new is not None:
                    d["dwx"] = rms(new - init)
                gate = self.gate.get(label, 1.0)          # the model's factor on the op's output
                groups.setdefault(label, []).append({m: v * gate for m, v in d.items()})
        return groups

    def _probes(self, outs: dict[str, torch.Tensor], found: list[torch.Tensor]) -> dict[str, list[dict[str, float]]]:
        if self.target.probes is not None:
            probed = self.target.probes(self.model, outs)
        elif self.intercept and found:
            probed = {self.intercept: found}
        else:
            return {}
        groups = {}
        for label, ts in probed.items():
            base = self.init_probes.setdefault(label, ts)
            groups[label] = [{"rms": rms(t), "delta": rms(t - t0)} for t, t0 in zip(ts, base, strict=True)]
        return groups


@torch.no_grad()
def trace(target: Target, shape: dict[str, int], steps: int, lr: float, seed: int,
          device: str = "cpu", eps: float = 1e-8) -> Series | str:
    """The series of one model trained ``steps`` AdamW steps on the probe batch, or a divergence message."""
    model = build(target, shape, seed, device)
    batch = to_device(target.sample(np.random.default_rng(seed)), device)   # trained on and probed
    recorder = Recorder(target, model, batch, shape)
    opt = optimizer(target, model, shape, lr, eps=eps)
    recorder.record()
    for step in range(steps):
        try:
            with torch.enable_grad():
                train(target, model, opt, [batch], device)
        except Diverged as exc:
            return f"{shape} seed {seed} step {step}: {exc}"
        except NotImplementedError as exc:        # an op without a backward on this device (flex attention on a CPU)
            raise CheckError(f"{target.name} cannot train on {device}: {exc}") from None
        recorder.record()
    return recorder.series
