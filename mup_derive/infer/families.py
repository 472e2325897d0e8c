"""Hugging Face causal-LM families with grouped-query attention, built tiny at any (n, L, r) on demand.

Each family's config gets hidden_size n, num_hidden_layers L, num_attention_heads ``heads`` with
num_key_value_heads heads / r, head_dim n / heads, intermediate_size ``mlp_ratio`` n and a small vocabulary;
what the forward pass does beyond the shapes (Gemma2 scales its embedding by sqrt(n) and applies its norm
gains as 1 + w, Phi3 fuses q, k, v and gate, up) is stated in the family's spec, not guessed.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .fit import ModelSpec, Shape

TINY = {"vocab": 256, "heads": 8, "mlp_ratio": 4}
FAMILIES = {"llama": "Llama", "qwen2": "Qwen2", "mistral": "Mistral", "gemma2": "Gemma2", "olmo2": "Olmo2",
            "phi3": "Phi3", "granite": "Granite"}


def hf_config(family: str, shape: Shape, dims: dict[str, int] = TINY, **overrides: Any) -> Any:
    """The family's config at ``shape`` (tied embeddings off unless overridden)."""
    import transformers
    if family not in FAMILIES:
        raise ValueError(f"unknown Hugging Face family {family!r}; supported: {sorted(FAMILIES)}")
    heads, n, r = dims["heads"], shape["n"], shape["r"]
    if n % heads or heads % r:
        raise ValueError(f"width {n} must be divisible by {heads} heads, and the heads by r = {r}")
    config = getattr(transformers, f"{FAMILIES[family]}Config")
    fields = dict(hidden_size=n, num_hidden_layers=shape["L"], num_attention_heads=heads,
                  num_key_value_heads=heads // r, head_dim=n // heads, intermediate_size=dims["mlp_ratio"] * n,
                  vocab_size=dims["vocab"], tie_word_embeddings=False, pad_token_id=0, bos_token_id=1,
                  eos_token_id=2)
    return config(**{**fields, **overrides})


def hf_model(family: str, shape: Shape, dims: dict[str, int] = TINY, **overrides: Any) -> Any:
    """A ``<Family>ForCausalLM`` at ``shape``."""
    import transformers
    model = getattr(transformers, f"{FAMILIES[family]}ForCausalLM")
    return model(hf_config(family, shape, dims, **overrides))


def _phi3_blocks(dims: dict[str, int]) -> dict[str, Callable[[Shape], list[tuple[str, int]]]]:
    def qkv(shape: Shape) -> list[tuple[str, int]]:
        kv = shape["n"] // shape["r"]
        return [("q_proj", shape["n"]), ("k_proj", kv), ("v_proj", kv)]

    def gate_up(shape: Shape) -> list[tuple[str, int]]:
        return [("gate_proj", dims["mlp_ratio"] * shape["n"]), ("up_proj", dims["mlp_ratio"] * shape["n"])]
    return {"self_attn.qkv_proj.weight": qkv, "mlp.gate_up_proj.weight": gate_up}


def hf_spec(family: str, dims: dict[str, int] = TINY, **overrides: Any) -> ModelSpec:
    """What inference needs to declare ``family``."""
    if family not in FAMILIES:
        raise ValueError(f"unknown Hugging Face family {family!r}; supported: {sorted(FAMILIES)}")
    return ModelSpec(name=f"hf_{family}", build=lambda shape: hf_model(family, shape, dims, **overrides),
                     dims=dict(dims), fused=_phi3_blocks(dims) if family == "phi3" else {},
                     gates={"embed_tokens": "sqrt(n)"} if family == "gemma2" else {},
                     offsets={"*norm": 1.0} if family == "gemma2" else {})


def model_spec(text: str, layers: str = "model.layers", dims: dict[str, int] | None = None) -> ModelSpec:
    """``hf:FAMILY``, ``FILE.py:FACTORY`` or ``package.module:FACTORY`` (``FACTORY(shape) -> nn.Module``) as a spec;
    a factory's fixed dims are named by ``dims`` and its residual layers live under ``layers``."""
    if text.startswith("hf:"):
        return hf_spec(text[3:])
    where, sep, factory = text.rpartition(":")
    if not sep or not where or not factory.isidentifier():
        raise ValueError(f"model {text!r}: expected hf:FAMILY, FILE.py:FACTORY or package.module:FACTORY")
    if where.endswith(".py"):
        from ..validate.loader import load_module
        module = load_module(where)
    else:
        import importlib
        module = importlib.import_module(where)
    build = getattr(module, factory, None)
    if not callable(build):
        raise ValueError(f"model {text!r}: {where} defines no function {factory}")
    return ModelSpec(name=factory, build=build, dims=dict(dims or {}), layers=layers, head_dim=None)
