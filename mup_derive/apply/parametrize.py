"""Put the derived rules into a stock Hugging Face model: one call initialises it and returns its param groups.

The model's own forward has no μP attention scale (it uses 1/sqrt(d_head), or a constant) and no residual
multiplier, and it is not edited.  Both are absorbed into the weights by the abc-symmetry: the ops the
multipliers act on are declared with the factor the model applies instead as a ``gate`` (the query with
sqrt(d_head) -- the model's 1/sqrt(d) over μP's 1/d -- and each branch's last op with L^alpha), and the
engine derives their init, LR, WD and eps exactly for every optimizer.  Since the weights carry the
multipliers, ``save_pretrained``/``from_pretrained`` keep the parametrization; ``config.mup`` records it so
that a model saved under another parametrization, base or alpha is refused.
"""
from __future__ import annotations

import hashlib
import tempfile
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..atomic import write_text
from ..declare.build import architecture, load
from ..declare.ops import Architecture
from ..derive.settings import Settings
from ..generate.codegen import generate_module
from ..infer.families import FAMILIES, hf_spec
from ..infer.fit import infer
from ..validate.rules import load_rules

# family -> (the op the model's attention scale acts on, the gate it applies relative to μP's 1/d,
#            the last op of each residual branch)
ABSORB: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "llama": ("q_proj", "sqrt(n / heads)", ("o_proj", "down_proj")),
    "qwen2": ("q_proj", "sqrt(n / heads)", ("o_proj", "down_proj")),
    "mistral": ("q_proj", "sqrt(n / heads)", ("o_proj", "down_proj")),
    "phi3": ("q_proj", "sqrt(n / heads)", ("o_proj", "down_proj")),
    "granite": ("q_proj", "n / heads", ("o_proj", "down_proj")),                # config's constant scale
    # Post-norm blocks normalise each branch output, so the residual multiplier goes on the post-norm gains
    # (Gemma2's applied as 1 + w: their declared offset); OLMo2 also normalises q (QK-norm): its gate on q_norm.
    "gemma2": ("q_proj", "n / heads", ("post_attention_layernorm", "post_feedforward_layernorm")),  # constant scale
    "olmo2": ("q_norm", "sqrt(n / heads)", ("post_attention_layernorm", "post_feedforward_layernorm")),
}
# Post-norm families with no pre-norm: every branch reads the raw stream, whose size at init the depth check
# finds changing with L at L = 2-8 under HF's input init (reports/olmo2_depth.md), so parametrize refuses them.
POST_NORM = ("olmo2",)


def family_of(config: Any) -> str:
    """The supported family of a Hugging Face model, from its config's model_type."""
    kind = getattr(config, "model_type", None)
    if kind in POST_NORM:
        raise ValueError(f"model: {kind} has post-norm blocks and no pre-norm, and its depth rules did not pass the "
                         "coordinate check at L = 2-8 (reports/olmo2_depth.md), so parametrize refuses it "
                         f"(`mup-derive declare hf:{kind}` and `generate` give its rules)")
    if kind not in FAMILIES:
        raise ValueError(f"model: {type(config).__name__} (model_type {kind!r}) is not a supported family "
                         f"{sorted(FAMILIES)}; declare it (mup-derive declare) and use the generated module")
    return str(kind)


def shape_of(config: Any) -> dict[str, int]:
    """(n, L, r) of a GQA decoder's config."""
    return {"n": config.hidden_size, "L": config.num_hidden_layers,
            "r": config.num_attention_heads // config.num_key_value_heads}


def _dims(config: Any) -> dict[str, int]:
    return {"vocab": config.vocab_size, "heads": config.num_attention_heads,
            "mlp_ratio": config.intermediate_size // config.hidden_size}


@lru_cache(maxsize=32)
def _rules(family: str, dims: tuple[tuple[str, int], ...], base: tuple[tuple[str, int], ...], alpha: Fraction,
           parametrization: str) -> Any:
    decl = infer(hf_spec(family, dict(dims)))
    if parametrization == "mup":
        query, gate, outputs = ABSORB[family]
        for op in decl["op"]:
            if op["name"] == query:
                op["gate"], op["absorbs"] = gate, "attn_logits"
            elif op["name"] in outputs:
                op["gate"], op["absorbs"] = f"L ** ({alpha})", "residual"
    arch = architecture(f"{decl['name']}_{parametrization}", decl["op"], decl["dims"])
    return _module(arch, base, alpha, f"hf:{family}")


def _module(arch: Architecture, base: tuple[tuple[str, int], ...], alpha: Fraction, source: str) -> Any:
    """The rules module generated for ``arch``, as a file in the temp folder (controls load fresh copies of it)."""
    code = generate_module(arch, Settings(alpha=alpha), base=dict(base), source=source)
    digest = hashlib.sha256(code.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / "mup_derive_rules" / f"{arch.name}_{digest}.py"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, code)
    return load_rules(path)


def rules_for(model: Any, base: dict[str, int], alpha: float | Fraction = 1, parametrization: str = "mup",
              declaration: str | Path | Architecture | None = None) -> Any:
    """The generated rules module for ``model``: from ``declaration`` (a TOML path or an Architecture), else from its
    Hugging Face family and dims with the multipliers absorbed (μP)."""
    if declaration is None:
        return hf_rules(getattr(model, "config", None), base, alpha, parametrization)
    arch = declaration if isinstance(declaration, Architecture) else load(declaration)
    source = arch.name if isinstance(declaration, Architecture) else str(declaration)
    return _module(arch, *_checked(base, {s.name for s in arch.scaling}, alpha, parametrization), source)


def hf_rules(config: Any, base: dict[str, int], alpha: float | Fraction = 1, parametrization: str = "mup") -> Any:
    """The rules module of a Hugging Face config's family and dims, the multipliers absorbed (μP)."""
    family = family_of(config)
    key, a = _checked(base, {"n", "L", "r"}, alpha, parametrization)
    return _rules(family, tuple(sorted(_dims(config).items())), key, a, parametrization)


def _checked(base: dict[str, int], symbols: set[str], alpha: float | Fraction,
             parametrization: str) -> tuple[tuple[tuple[str, int], ...], Fraction]:
    """(base as a sorted key, alpha as a fraction), or a one-line error naming the bad argument."""
    if parametrization not in ("mup", "sp"):
        raise ValueError(f"parametrization must be 'mup' or 'sp', got {parametrization!r}")
    if set(base) != symbols or not all(isinstance(v, int) and v >= 1 for v in base.values()):
        raise ValueError(f"base must give positive integers {sorted(symbols)}, got {base!r}")
    return tuple(sorted(base.items())), Fraction(alpha).limit_denominator(64)


def _record(model: Any, base: dict[str, int], alpha: Fraction, parametrization: str) -> None:
    """Write the parametrization into ``config.mup``, refusing a model that carries another one."""
    want = {"parametrization": parametrization, "base": dict(sorted(base.items())), "alpha": str(alpha)}
    have = getattr(model.config, "mup", None)
    if have is not None and have != want:
        diff = sorted(k for k in want if have.get(k) != want[k])
        raise ValueError(f"model: its config.mup was written under another parametrization ({', '.join(diff)} "
                         f"differ: {have} vs {want})")
    model.config.mup = want


def parametrize(model: Any, base: dict[str, int], lr: float, weight_decay: float = 0.0, eps: float = 1e-8,
                optimizer: str = "adamw", std: float = 0.02, alpha: float | Fraction = 1,
                parametrization: str = "mup", init: bool = True,
                declaration: str | Path | Architecture | None = None,
                shape: dict[str, int] | None = None) -> list[dict]:
    """Make a model follow the derived rules from ``base``: initialise it (``init=False`` for one loaded from a
    checkpoint) and return its optimizer param groups; fused tensors are split into their row blocks.

    A Hugging Face GQA causal LM of a supported family needs nothing else: its declaration is inferred and the
    attention scale and residual multiplier are absorbed into its weights (module docstring).  Any other
    ``nn.Module`` takes a ``declaration`` and its ``shape``; it must apply the table's multipliers itself
    (``rules_for(...).multiplier``) or declare gates that absorb them."""
    if declaration is not None and shape is None:
        raise ValueError("shape: a model given with a declaration needs its shape, e.g. {'n': 512, 'L': 4, 'r': 1}")
    rules = rules_for(model, base, alpha, parametrization, declaration)
    if declaration is None:
        _record(model, base, Fraction(alpha).limit_denominator(64), parametrization)
        shape = shape_of(model.config)
    if init:
        rules.init_weights(model, std=std, shape=shape, parametrization=parametrization)
    return list(rules.param_groups(model, lr=lr, weight_decay=weight_decay, eps=eps, optimizer=optimizer,
                                   shape=shape, parametrization=parametrization))
