"""``hf:FAMILY`` targets for the coordinate check and the sweeps: tiny configs of the family at each shape,
initialised by :func:`~.parametrize.hf_rules` (μP with the multipliers absorbed, or SP)."""
from __future__ import annotations

from typing import Any

from ..infer.families import TINY, hf_config, hf_model
from ..validate.data import MarkovTask, TextTask
from ..validate.target import Target
from .parametrize import hf_rules

BASE = {"n": 128, "L": 2, "r": 1}


def hf_target(family: str, parametrization: str = "mup", batch: int = 2, seq: int = 16, text: str | None = None,
              alpha: float = 1) -> Target:
    """The family's causal LM on the synthetic Markov task (or the bytes of ``text``), rules from ``BASE``."""
    from torch.nn.functional import cross_entropy

    rules = hf_rules(hf_config(family, BASE), BASE, alpha, parametrization)
    task = TextTask(text, min_bytes=seq + 2) if text else MarkovTask(vocab=TINY["vocab"], seed=1234)

    def make(shape: dict[str, int], rules: Any) -> Any:
        model = hf_model(family, shape)
        rules.init_weights(model, shape=shape, parametrization=parametrization)
        return model

    def loss(model: Any, tokens: Any) -> Any:
        logits = model(input_ids=tokens[:, :-1]).logits
        return cross_entropy(logits.flatten(0, 1).float(), tokens[:, 1:].flatten())

    return Target(name=f"hf_{family}", rules=rules, make=make, sample=lambda rng: task.batch(batch, seq, rng),
                  loss=loss, parametrization=parametrization, watch={"residual": "model.layers.*"},
                  source=f"hf:{family}")
