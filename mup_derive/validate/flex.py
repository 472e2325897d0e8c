"""torch's flex attention as the check meets it: where a model's classes reach it (with no model edit), and a
dense reference that trains where flex has no backward (the CPU).

The reference computes flex's own definition: softmax over keys of ``score_mod(q.k^T * scale, b, h, q, kv)``,
keys outside the block mask (its blocks and its ``mask_mod``) left out, times V; a query with no key left gets 0
and a log-sum-exp of -inf, as flex gives.  It materialises the scores, which the CPU sizes of the check afford.
"""
from __future__ import annotations

import math
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn

from .swap import swapped


def flex_sites(model: nn.Module) -> list[tuple[Any, str]]:
    """Where the model's classes reach torch's ``flex_attention``: (owner, name) for each name in their Python
    modules or in the classes themselves bound to it or to a ``torch.compile`` of it (torchtitan's
    ``FlexAttention._compiled_flex_attn``), looked up at call time."""
    classes = {c for m in model.modules() for c in type(m).__mro__ if c is not object}
    owners: list[Any] = [*(sys.modules[k] for k in sorted({c.__module__ for c in classes}) if k in sys.modules),
                         *sorted(classes, key=lambda c: (c.__module__, c.__qualname__))]
    return [(o, name) for o in owners for name, v in list(vars(o).items()) if eager_flex(v) is not None]


def eager_flex(value: Any) -> Callable[..., Any] | None:
    """torch's eager ``flex_attention`` if ``value`` is it, a static method of it or a ``torch.compile`` of it."""
    from torch.nn.attention.flex_attention import flex_attention
    fn = value.__func__ if isinstance(value, staticmethod) else value
    if fn is flex_attention or getattr(fn, "_torchdynamo_orig_callable", None) is flex_attention:
        return flex_attention
    return None


def _per_score(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """``fn(score, b, h, q_idx, kv_idx)`` of one score, vmapped over a (B, H, Q, KV) grid as flex applies it."""
    for axis in (4, 3, 2, 1):                                  # kv, q, h, b: innermost first
        fn = torch.vmap(fn, in_dims=(0, *(0 if i == axis else None for i in (1, 2, 3, 4))))
    return fn


def _allowed(block_mask: Any, shape: tuple[int, int, int, int], device: torch.device) -> torch.Tensor:
    """The keys each query may attend to, (B, H, Q, KV): inside the block mask's blocks and its ``mask_mod``."""
    b, h, q, kv = shape
    rows, cols = block_mask.BLOCK_SIZE
    blocks = block_mask.to_dense().to(device).bool()
    blocks = blocks.repeat_interleave(rows, -2).repeat_interleave(cols, -1)[..., :q, :kv].expand(b, h, q, kv)
    idx = [torch.arange(n, device=device) for n in shape]
    inside = _per_score(lambda _, *i: block_mask.mask_mod(*i))(torch.zeros(shape, device=device), *idx)
    return blocks & inside.bool()


def dense_flex_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, score_mod: Any = None,
                         block_mask: Any = None, scale: float | None = None, enable_gqa: bool = False,
                         return_lse: bool = False, kernel_options: Any = None, *, return_aux: Any = None) -> Any:
    """``flex_attention``'s result from its definition, differentiable on any device (same signature and return
    forms; ``kernel_options`` only tune flex's kernel)."""
    from torch.nn.attention.flex_attention import AuxOutput
    b, h, q, e = query.shape
    if key.shape[-3] != h:                                      # grouped K/V heads, each serving h / h_kv queries
        if not enable_gqa:
            raise ValueError(f"flex attention: {h} query heads and {key.shape[-3]} K/V heads need enable_gqa=True")
        key, value = (t.repeat_interleave(h // key.shape[-3], dim=-3) for t in (key, value))
    scores = query @ key.transpose(-2, -1) * (1.0 / math.sqrt(e) if scale is None else scale)
    shape = (b, h, q, key.shape[-2])
    if score_mod is not None:
        scores = _per_score(score_mod)(scores, *(torch.arange(n, device=scores.device) for n in shape))
    if block_mask is not None:
        scores = scores.masked_fill(~_allowed(block_mask, shape, scores.device), -math.inf)
    dead = torch.isneginf(scores).all(-1, keepdim=True)      # a query with no key left
    weights = torch.softmax(scores.masked_fill(dead, 0.0), -1).masked_fill(dead, 0.0)
    out = (weights @ value).to(query.dtype)
    lse = torch.logsumexp(scores, -1)
    if return_aux is not None:
        return out, AuxOutput(lse=lse if return_aux.lse else None,
                              max_scores=scores.amax(-1) if return_aux.max_scores else None)
    return (out, lse) if return_lse else out


def _needs_dense(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> bool:
    """Flex refuses the call: CPU inputs that require a gradient (flex has no backward there)."""
    return query.device.type == "cpu" and any(t.requires_grad for t in (query, key, value))


def trainable_flex(sites: list[tuple[Any, str]]) -> AbstractContextManager[None]:
    """Inside the block, a flex attention call at ``sites`` on CPU inputs that require a gradient runs
    :func:`dense_flex_attention` instead; every other call runs as before (the GPU kernels, the probes)."""
    def routed(fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            return (dense_flex_attention if _needs_dense(query, key, value) else fn)(query, key, value, *args,
                                                                                     **kwargs)
        return call
    return swapped(sites, routed)
