"""Training data: a synthetic Markov language, or the bytes of a text file."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")


class MarkovTask:
    """Tokens from a fixed random Markov chain: each token allows ``branching`` successors with
    Dirichlet weights (entropy well below log vocab, learnable in tens of steps); with
    probability ``copy`` a token instead repeats the one ``lag`` back, which needs attention."""

    def __init__(self, vocab: int = 256, branching: int = 3, copy: float = 0.25, lag: int = 4, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.vocab, self.copy, self.lag = vocab, copy, lag
        self.succ = rng.integers(0, vocab, size=(vocab, branching))
        self.prob = rng.dirichlet(np.ones(branching), size=vocab).cumsum(-1)

    def batch(self, batch: int, seq: int, rng: np.random.Generator) -> torch.Tensor:
        out = np.empty((batch, seq + 1), dtype=np.int64)
        out[:, 0] = rng.integers(0, self.vocab, size=batch)
        for t in range(1, seq + 1):
            prev = out[:, t - 1]
            pick = (rng.random(batch)[:, None] > self.prob[prev]).sum(-1).clip(max=self.succ.shape[-1] - 1)
            out[:, t] = self.succ[prev, pick]
            if t >= self.lag:
                rep = rng.random(batch) < self.copy
                out[rep, t] = out[rep, t - self.lag]
        return torch.from_numpy(out)


class TextTask:
    """Random windows of a file's bytes (vocab 256)."""

    def __init__(self, path: str | Path, min_bytes: int = 2):
        self.data = np.frombuffer(Path(path).read_bytes(), dtype=np.uint8)
        self.vocab = 256
        if len(self.data) < min_bytes:
            raise ValueError(f"{path} has {len(self.data)} bytes; need at least {min_bytes}")

    def batch(self, batch: int, seq: int, rng: np.random.Generator) -> torch.Tensor:
        if len(self.data) < seq + 2:
            raise ValueError(f"text has {len(self.data)} bytes; need more than {seq + 1}")
        start = rng.integers(0, len(self.data) - seq - 1, size=batch)
        return torch.from_numpy(np.stack([self.data[s:s + seq + 1] for s in start]).astype(np.int64))


def batches(sample: Callable[[np.random.Generator], T], count: int, seed: int) -> list[T]:
    """A fixed list of ``count`` batches from ``sample(rng)``, identical for every model in a comparison."""
    rng = np.random.default_rng(seed)
    return [sample(rng) for _ in range(count)]
