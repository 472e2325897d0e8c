"""The coordinate check and LR sweeps on Hugging Face transformers' GraniteForCausalLM, built from
the rules generated from ``examples/hf_granite.toml`` (``generated/hf_granite.py``):

    mup-derive coord-check examples/hf_granite_target.py:target
    mup-derive sweep examples/hf_granite_target.py:target --axis width --values 64,128,256
"""
from pathlib import Path

from mup_derive.validate.data import MarkovTask, TextTask
from mup_derive.validate.rules import load_rules
from mup_derive.validate.target import Target

RULES = Path(__file__).absolute().parent.parent / "generated" / "hf_granite.py"


def target(parametrization: str = "mup", batch: int = 2, seq: int = 16, text: str | None = None) -> Target:
    from torch.nn.functional import cross_entropy
    from transformers import GraniteForCausalLM

    rules = load_rules(RULES)
    task = TextTask(text, min_bytes=seq + 2) if text else MarkovTask(vocab=rules.DIMS["vocab"], seed=1234)

    def make(shape, rules):
        model = GraniteForCausalLM(rules.granite_config(shape, parametrization))
        rules.init_weights(model, shape=shape, parametrization=parametrization)
        return model

    def loss(model, tokens):
        logits = model(input_ids=tokens[:, :-1]).logits
        return cross_entropy(logits.flatten(0, 1).float(), tokens[:, 1:].flatten())

    return Target(name="hf_granite", rules=rules, make=make, sample=lambda rng: task.batch(batch, seq, rng),
                  loss=loss, parametrization=parametrization, watch={"residual": "model.layers.*"},
                  source=str(RULES))
