"""Put the derived rules into a stock model (Hugging Face, litgpt, torchtitan): one call initialises it and
returns its param groups.

The model's own forward has no μP attention scale (it uses 1/sqrt(d_head), or a constant) and no residual
multiplier, and it is not edited.  Both are absorbed into the weights by the abc-symmetry: the ops the
multipliers act on are declared with the factor the model applies instead as a ``gate`` (the query with
sqrt(d_head) -- the model's 1/sqrt(d) over μP's 1/d -- and each branch's last op with L^alpha; a readout tied to
the embedding, whose shared weight cannot take its multiplier, has it carried by the final norm's gain), and the
engine derives their init, LR, WD and eps exactly for every optimizer.  Since the weights carry the
multipliers, a saved and loaded state keeps the parametrization (``save_pretrained``/``from_pretrained``, litgpt's
and torchtitan's state dicts); a Hugging Face ``config.mup`` also records it, so that a model saved under another
parametrization, base or alpha is refused; litgpt's and torchtitan's configs have no place for that record, so it
goes into their state dict's metadata, and a state dict saved under another parametrization is refused on load.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import sympy as sp

from ..atomic import write_text
from ..declare.build import architecture, load
from ..declare.ops import Architecture
from ..derive.settings import Settings
from ..derive.solver import solve
from ..generate.codegen import generate_module
from ..infer.families import family_spec, identify
from ..infer.fit import infer
from ..validate.rules import load_rules

# family -> (the op the model's attention scale acts on, the gate it applies relative to μP's 1/d,
#            the last op of each residual branch)
ABSORB: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "hf:llama": ("q_proj", "sqrt(n / heads)", ("o_proj", "down_proj")),
    "hf:qwen2": ("q_proj", "sqrt(n / heads)", ("o_proj", "down_proj")),
    "hf:mistral": ("q_proj", "sqrt(n / heads)", ("o_proj", "down_proj")),
    "hf:phi3": ("q_proj", "sqrt(n / heads)", ("o_proj", "down_proj")),
    "hf:granite": ("q_proj", "n / heads", ("o_proj", "down_proj")),             # config's constant scale
    # Post-norm blocks normalise each branch output, so the residual multiplier goes on the post-norm gains
    # (Gemma2's applied as 1 + w: their declared offset); OLMo2 also normalises q (QK-norm): its gate on q_norm.
    "hf:gemma2": ("q_proj", "n / heads", ("post_attention_layernorm", "post_feedforward_layernorm")),  # constant
    "hf:olmo2": ("q_norm", "sqrt(n / heads)", ("post_attention_layernorm", "post_feedforward_layernorm")),
    "litgpt:gpt": ("q", "sqrt(n / heads)", ("attn_proj", "mlp_proj")),
    "torchtitan:llama3": ("wq", "sqrt(n / heads)", ("wo", "w2")),
}
# Families with no pre-norm (post-norm blocks only): every branch reads the raw stream, so the depth rules hold only
# where the embedding carries the stream at init, not the L^-alpha branches.  HF's input std of 0.02 leaves it to
# the branches (OLMo2's LR optimum moved 1.7 octaves over L = 2-8); Tensor Programs V's Theta(1) input init at std 1
# (PyTorch's nn.Embedding default) moved it 0.1 (reports/olmo2_depth.md): their embedding is drawn at that std.
INPUT_STD = {"hf:olmo2": 1.0}


# The gain ahead of a tied readout (the final norm's): a readout that shares the input embedding's weight cannot take
# its multiplier into that weight, so the gain carries it, as a gate of 1 / multiplier (Hugging Face families).
READOUT_GAIN = "norm"


@lru_cache(maxsize=32)
def _rules(key: str, dims: tuple[tuple[str, int], ...], base: tuple[tuple[str, int], ...], alpha: Fraction,
           parametrization: str, tied: bool = False) -> Any:
    decl = infer(family_spec(key, dict(dims), tied))
    if parametrization == "mup":
        query, gate, outputs = ABSORB[key]
        for op in decl["op"]:
            if op["name"] == query:
                op["gate"], op["absorbs"] = gate, "attn_logits"
            elif op["name"] in outputs:
                op["gate"], op["absorbs"] = f"L ** ({alpha})", "residual"
        if tied:
            _carry_readout(decl, alpha)
    arch = architecture(f"{decl['name']}{'_tied' if tied else ''}_{parametrization}", decl["op"], decl["dims"])
    return _module(arch, base, alpha, key)


def _carry_readout(decl: dict[str, Any], alpha: Fraction) -> None:
    """Gate the gain ahead of the tied readout by 1 / the readout's multiplier, which the engine derives for the
    shared weight: the gain then carries the multiplier, and its own init, LR, WD and eps are compensated
    (abc-symmetry), while the readout sees its input times the multiplier: the same logits and the same gradient
    into the shared weight as a multiplier on the readout's output."""
    readout = next(op["name"] for op in decl["op"] if op.get("tied") and op["role"] == "output")
    table = solve(architecture(decl["name"], decl["op"], decl["dims"]), Settings(alpha=alpha))
    m = table.get(readout, "multiplier").exact
    gain = next(op for op in decl["op"] if op["name"] == READOUT_GAIN)
    gain["gate"], gain["absorbs"] = sp.sstr(1 / m), readout


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
    family and dims with the multipliers absorbed (μP)."""
    if declaration is None:
        key, _, dims, tied = identify(model)
        return family_rules(key, dims, base, alpha, parametrization, tied)
    arch = declaration if isinstance(declaration, Architecture) else load(declaration)
    source = arch.name if isinstance(declaration, Architecture) else str(declaration)
    return _module(arch, *_checked(base, {s.name for s in arch.scaling}, alpha, parametrization), source)


def family_rules(key: str, dims: dict[str, int], base: dict[str, int], alpha: float | Fraction = 1,
                 parametrization: str = "mup", tied: bool = False) -> Any:
    """The rules module of the family ``key`` with fixed ``dims``, the multipliers absorbed (μP); ``tied``: its
    readout shares the input embedding's weight (Hugging Face families but OLMo2; the others' builder refuses it)."""
    if key not in ABSORB:
        raise ValueError(f"unknown model family {key!r}; supported: {', '.join(ABSORB)}")
    if tied and key in INPUT_STD:
        raise ValueError(f"model: a tied {key} is not supported: its embedding is drawn at std {INPUT_STD[key]} to "
                         "carry the stream (reports/olmo2_depth.md), which a tied readout would take as its init; "
                         "untie it (tie_word_embeddings=False)")
    base_key, a = _checked(base, {"n", "L", "r"}, alpha, parametrization)
    return _rules(key, tuple(sorted(dims.items())), base_key, a, parametrization, tied)


def _checked(base: dict[str, int], symbols: set[str], alpha: float | Fraction,
             parametrization: str) -> tuple[tuple[tuple[str, int], ...], Fraction]:
    """(base as a sorted key, alpha as a fraction), or a one-line error naming the bad argument."""
    if parametrization not in ("mup", "sp"):
        raise ValueError(f"parametrization must be 'mup' or 'sp', got {parametrization!r}")
    if set(base) != symbols or not all(isinstance(v, int) and v >= 1 for v in base.values()):
        raise ValueError(f"base must give positive integers {sorted(symbols)}, got {base!r}")
    return tuple(sorted(base.items())), _fraction(alpha)


def _fraction(alpha: float | Fraction) -> Fraction:
    """alpha as the fraction the rules are derived at (denominator at most 64)."""
    return Fraction(alpha).limit_denominator(64)


RECORD = "mup_record"     # the attribute that holds a litgpt or torchtitan model's record


def _refuse(have: dict | None, want: dict, where: str) -> None:
    if have is not None and have != want:
        diff = sorted(k for k in want if have.get(k) != want[k])
        raise ValueError(f"model: {where} was written under another parametrization ({', '.join(diff)} differ: "
                         f"{have} vs {want})")


def _save_record(module: Any, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    local_metadata["mup"] = dict(getattr(module, RECORD))


def _check_record(module: Any, state_dict: dict, prefix: str, local_metadata: dict, *_: Any) -> None:
    _refuse(local_metadata.get("mup"), getattr(module, RECORD), "the state dict")


def _record(model: Any, key: str, base: dict[str, int], alpha: Fraction, parametrization: str) -> None:
    """Record the parametrization with the model, refusing one that carries another: a Hugging Face model's
    ``config.mup``; for litgpt, torchtitan and a declared module, which have no config with a place for it, the
    state dict's metadata
    (``state_dict()._metadata``, which ``torch.save`` keeps), checked when a state dict loads into the model."""
    want = {"parametrization": parametrization, "base": dict(sorted(base.items())), "alpha": str(alpha)}
    if key.startswith("hf:"):
        _refuse(getattr(model.config, "mup", None), want, "its config.mup")
        model.config.mup = want
        return
    have = getattr(model, RECORD, None)
    _refuse(have, want, "it")
    if have is None:
        model.register_state_dict_post_hook(_save_record)
        model.register_load_state_dict_pre_hook(_check_record)
    setattr(model, RECORD, want)


def record_of(model: Any) -> dict:
    """The parametrization :func:`parametrize` recorded with ``model`` (its ``config.mup`` or state-dict record)."""
    have = getattr(model, RECORD, None) or getattr(getattr(model, "config", None), "mup", None)
    if not isinstance(have, dict):
        raise ValueError(f"model: {type(model).__name__} carries no parametrization record; parametrize it first")
    return dict(have)


class CheckpointRecord:
    """The model's parametrization as an entry of a ``torch.distributed.checkpoint`` (DCP) state dict, which keeps
    the tensors of the model's state dict but neither its metadata nor a config: saved beside the model,
    ``dcp.save({"model": model.state_dict(), "mup": CheckpointRecord(model)}, ...)``, and loaded the same way
    (``dcp.load(state, ...)``, then ``model.load_state_dict(state["model"])``), it refuses a checkpoint written under
    another parametrization, base or alpha.  DCP hands it the saved record after it has read the tensors into the
    state dict given, which holds the parameters themselves unless the model's state-dict hooks copy them."""

    def __init__(self, model: Any) -> None:
        self.want = record_of(model)

    def state_dict(self) -> dict[str, str]:
        return {"record": json.dumps(self.want, sort_keys=True)}

    def load_state_dict(self, state: dict[str, str]) -> None:
        _refuse(json.loads(state["record"]), self.want, "the checkpoint")


def family_init(key: str, rules: Any, model: Any, shape: dict[str, int], std: float = 0.02,
                parametrization: str = "mup") -> None:
    """Initialise a family's model by its rules from base std ``std``; the input embedding of a family without a
    pre-norm from its :data:`INPUT_STD` instead (μP)."""
    import torch
    rules.init_weights(model, std=std, shape=shape, parametrization=parametrization)
    if parametrization == "mup" and key in INPUT_STD:
        weight = model.get_input_embeddings().weight
        op = rules.op_of(next(n for n, p in model.named_parameters() if p is weight))
        with torch.no_grad():
            weight.normal_(0.0, INPUT_STD[key] * rules.ratio(op, "init_std", shape))


def parametrize(model: Any, base: dict[str, int], lr: float, weight_decay: float = 0.0, eps: float = 1e-8,
                optimizer: str = "adamw", std: float = 0.02, alpha: float | Fraction = 1,
                parametrization: str = "mup", init: bool = True,
                declaration: str | Path | Architecture | None = None,
                shape: dict[str, int] | None = None) -> list[dict]:
    """Make a model follow the derived rules from ``base``: initialise it (``init=False`` for one loaded from a
    checkpoint) and return its optimizer param groups; fused tensors are split into their row blocks.

    A GQA causal LM of a supported family (Hugging Face, litgpt's GPT, torchtitan's Llama 3) needs nothing else:
    its declaration is inferred and the attention scale and residual multiplier are absorbed into its weights
    (module docstring); the parametrization is recorded with the model (:func:`_record`), so that a model or
    state dict made under another one is refused.  Any other
    ``nn.Module`` takes a ``declaration`` and its ``shape``; it must apply the table's multipliers itself
    (``rules_for(...).multiplier``) or declare gates that absorb them."""
    if declaration is not None and shape is None:
        raise ValueError("shape: a model given with a declaration needs its shape, e.g. {'n': 512, 'L': 4, 'r': 1}")
    if declaration is None:
        key, shape, dims, tied = identify(model)
        rules = family_rules(key, dims, base, alpha, parametrization, tied)
        _record(model, key, base, _fraction(alpha), parametrization)
        if init:
            family_init(key, rules, model, shape, std, parametrization)
    else:
        rules = rules_for(model, base, alpha, parametrization, declaration)
        _record(model, "declared", base, _fraction(alpha), parametrization)
        if init:
            rules.init_weights(model, std=std, shape=shape, parametrization=parametrization)
    return list(rules.param_groups(model, lr=lr, weight_decay=weight_decay, eps=eps, optimizer=optimizer,
                                   shape=shape, parametrization=parametrization))
