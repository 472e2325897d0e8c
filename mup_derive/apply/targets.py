"""Family targets (``hf:FAMILY``, ``litgpt:gpt``, ``torchtitan:llama3``) for the coordinate check and the sweeps:
tiny models of the family at each shape, initialised as parametrize does (:func:`~.parametrize.family_init`: μP with
the multipliers absorbed, or SP)."""
from __future__ import annotations

from typing import Any

from ..infer.families import TINY, build_model, family_spec
from ..validate.data import MarkovTask, TextTask
from ..validate.target import Target
from .parametrize import family_init, family_rules

BASE = {"n": 128, "L": 2, "r": 1}


def logits(model: Any, tokens: Any) -> Any:
    """The model's next-token logits: Hugging Face's output ``.logits``, litgpt's and torchtitan's the tensor."""
    out = model(tokens)
    return getattr(out, "logits", out)


def family_target(key: str, parametrization: str = "mup", batch: int = 2, seq: int = 16, text: str | None = None,
                  alpha: float = 1, tied: bool = False) -> Target:
    """The family's causal LM on the synthetic Markov task (or the bytes of ``text``), rules from ``BASE``; ``tied``:
    its readout shares the input embedding's weight (Hugging Face families)."""
    from torch.nn.functional import cross_entropy

    rules = family_rules(key, TINY, BASE, alpha, parametrization, tied)
    task = TextTask(text, min_bytes=seq + 2) if text else MarkovTask(vocab=TINY["vocab"], seed=1234)

    def make(shape: dict[str, int], rules: Any) -> Any:
        model = build_model(key, shape, TINY, tied)
        family_init(key, rules, model, shape, parametrization=parametrization)
        return model

    def loss(model: Any, tokens: Any) -> Any:
        out = logits(model, tokens[:, :-1])
        return cross_entropy(out.flatten(0, 1).float(), tokens[:, 1:].flatten())

    layers = family_spec(key).layers
    return Target(name=key.replace(":", "_") + ("_tied" if tied else ""), rules=rules, make=make,
                  sample=lambda rng: task.batch(batch, seq, rng), loss=loss, parametrization=parametrization,
                  watch={"residual": f"{layers}.*"}, source=key)
