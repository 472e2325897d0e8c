"""The GQA causal-LM families that parametrize knows, built tiny at any (n, L, r) on demand, and recognised in a
model the user already has: ``hf:FAMILY`` (Hugging Face transformers), ``litgpt:gpt`` (litgpt's GPT with a
Llama-style config) and ``torchtitan:llama3`` (torchtitan's Llama 3, its q, k, v fused in one wqkv).

Each is built with width n, L layers, ``heads`` heads of dim n / heads, heads / r K/V heads, an MLP of
``mlp_ratio`` n and a small vocabulary; what the forward pass does beyond the shapes (Gemma2 scales its embedding
by sqrt(n) and applies its norm gains as 1 + w, Phi3 and litgpt fuse q, k, v in row blocks, torchtitan
interleaves them per K/V head) is stated in the family's spec, not guessed.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, NamedTuple

from .fit import ModelSpec, Shape

TINY = {"vocab": 256, "heads": 8, "mlp_ratio": 4}
HF = {"llama": "Llama", "qwen2": "Qwen2", "mistral": "Mistral", "gemma2": "Gemma2", "olmo2": "Olmo2",
      "phi3": "Phi3", "granite": "Granite"}
FAMILIES = (*(f"hf:{f}" for f in HF), "litgpt:gpt", "torchtitan:llama3")
LIBRARIES = ("hf", "litgpt", "torchtitan")


def _check(shape: Shape, dims: dict[str, int]) -> tuple[int, int, int, int]:
    """(n, L, heads, K/V heads) of ``shape``, or a one-line error when the heads do not divide it."""
    heads, n, r = dims["heads"], shape["n"], shape["r"]
    if n % heads or heads % r:
        raise ValueError(f"width {n} must be divisible by {heads} heads, and the heads by r = {r}")
    return n, shape["L"], heads, heads // r


def hf_config(family: str, shape: Shape, dims: dict[str, int] = TINY, **overrides: Any) -> Any:
    """The family's config at ``shape`` (tied embeddings off unless overridden)."""
    transformers = library("transformers")
    if family not in HF:
        raise ValueError(f"unknown model family {family!r}; supported: {sorted(HF)}")
    n, layers, heads, kv = _check(shape, dims)
    config = getattr(transformers, f"{HF[family]}Config")
    fields = dict(hidden_size=n, num_hidden_layers=layers, num_attention_heads=heads,
                  num_key_value_heads=kv, head_dim=n // heads, intermediate_size=dims["mlp_ratio"] * n,
                  vocab_size=dims["vocab"], tie_word_embeddings=False, pad_token_id=0, bos_token_id=1,
                  eos_token_id=2)
    return config(**{**fields, **overrides})


def library(name: str) -> Any:
    """The installed model library ``name`` (transformers, litgpt, torchtitan), or a one-line error saying how to
    install it."""
    import importlib
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ValueError(f"{name} is not importable ({exc}); pip install {name}") from None


def _hf_model(family: str, shape: Shape, dims: dict[str, int] = TINY, **overrides: Any) -> Any:
    """A ``<Family>ForCausalLM`` at ``shape``."""
    transformers = library("transformers")
    model = getattr(transformers, f"{HF[family]}ForCausalLM")
    return model(hf_config(family, shape, dims, **overrides))


# The litgpt config fields a supported GPT has (the shapes aside): a Llama-style block
LITGPT = dict(mlp_class_name="LLaMAMLP", norm_class_name="RMSNorm", bias=False, parallel_residual=False,
              post_attention_norm=False, post_mlp_norm=False, scale_embeddings=False)


def litgpt_model(shape: Shape, dims: dict[str, int] = TINY) -> Any:
    """litgpt's ``GPT`` with a Llama-style config (``LITGPT``: SwiGLU, RMSNorm, no biases) at ``shape``."""
    library("litgpt")
    from litgpt.config import Config
    from litgpt.model import GPT
    n, layers, heads, kv = _check(shape, dims)
    return GPT(Config(n_embd=n, n_layer=layers, n_head=heads, n_query_groups=kv, head_size=n // heads,
                      intermediate_size=dims["mlp_ratio"] * n, vocab_size=dims["vocab"],
                      padded_vocab_size=dims["vocab"], block_size=256, rotary_percentage=1.0, **LITGPT))


def torchtitan_model(shape: Shape, dims: dict[str, int] = TINY) -> Any:
    """torchtitan's ``Llama3Model`` at ``shape``, built as its flavours are (fused wqkv, its own inits) but with
    the SDPA inner attention: the flex backend needs a block mask per batch and compiles on first use."""
    library("torchtitan")
    import torchtitan.models.llama3 as t
    from torchtitan.models.common import ComplexRoPE, Embedding, Linear, RMSNorm
    from torchtitan.models.common.attention import ScaledDotProductAttention
    from torchtitan.models.common.config_utils import make_ffn_config, make_gqa_config
    n, layers, heads, kv = _check(shape, dims)
    vocab = dims["vocab"]

    def norm() -> Any:
        return RMSNorm.Config(normalized_shape=n, param_init=t._NORM_INIT)
    rope = ComplexRoPE.Config(dim=n // heads, max_seq_len=256, theta=500000, scaling="none")
    blocks = [t.Llama3TransformerBlock.Config(
        attention_norm=norm(), ffn_norm=norm(),
        attention=make_gqa_config(dim=n, n_heads=heads, n_kv_heads=kv, wqkv_param_init=t._LINEAR_INIT,
                                  wo_param_init=t._depth_init(i), inner_attention=ScaledDotProductAttention.Config(),
                                  fuse_qkv=True, rope=rope),
        feed_forward=make_ffn_config(dim=n, hidden_dim=dims["mlp_ratio"] * n, w1_param_init=t._LINEAR_INIT,
                                     w2w3_param_init=t._depth_init(i))) for i in range(layers)]
    config = t.Llama3Model.Config(
        dim=n, vocab_size=vocab, layers=blocks, norm=norm(),
        tok_embeddings=Embedding.Config(num_embeddings=vocab, embedding_dim=n, param_init=t._EMBEDDING_INIT),
        lm_head=Linear.Config(in_features=n, out_features=vocab, param_init=t._output_linear_init(n)))
    model = config.build()
    if not any(p.is_meta for p in model.parameters()):
        model.init_states()
    return model


def _tieable(key: str, tied: bool) -> None:
    """Only a Hugging Face family is built tied (``tie_word_embeddings``); the libraries' configs tie nothing."""
    if tied and not key.startswith("hf:"):
        raise ValueError(f"tied: {key}'s config ties no weights; only a Hugging Face family is built tied")


def build_model(key: str, shape: Shape, dims: dict[str, int] = TINY, tied: bool = False, **overrides: Any) -> Any:
    """The family ``key``'s model at ``shape``; ``tied``: its readout shares the input embedding's weight (Hugging
    Face's ``tie_word_embeddings``); ``overrides``: Hugging Face config fields."""
    _tieable(key, tied)
    if key.startswith("hf:"):
        return _hf_model(key[3:], shape, dims, **{"tie_word_embeddings": tied, **overrides})
    if overrides:
        raise ValueError(f"{key}: config overrides {sorted(overrides)} are for Hugging Face families only")
    if key == "litgpt:gpt":
        return litgpt_model(shape, dims)
    if key == "torchtitan:llama3":
        return torchtitan_model(shape, dims)
    raise ValueError(f"unknown model family {key!r}; supported: {', '.join(FAMILIES)}")


def _rows(*blocks: tuple[str, Callable[[Shape], int]]) -> Callable[[Shape], list[tuple[str, int]]]:
    return lambda shape: [(name, rows(shape)) for name, rows in blocks]


def _qkv(q: str, k: str, v: str) -> Callable[[Shape], list[tuple[str, int]]]:
    return _rows((q, lambda s: s["n"]), (k, lambda s: s["n"] // s["r"]), (v, lambda s: s["n"] // s["r"]))


def family_spec(key: str, dims: dict[str, int] = TINY, tied: bool = False, **overrides: Any) -> ModelSpec:
    """What inference needs to declare the family ``key`` (``tied``, ``overrides``: as :func:`build_model`)."""
    if key not in FAMILIES:
        raise ValueError(f"unknown model family {key!r}; supported: {', '.join(FAMILIES)}")
    _tieable(key, tied)                                    # before any model is built
    spec = ModelSpec(name=key.replace(":", "_"), build=lambda shape: build_model(key, shape, dims, tied, **overrides),
                     dims=dict(dims))
    mlp = dims["mlp_ratio"]
    if key == "hf:phi3":
        return replace(spec, fused={"self_attn.qkv_proj.weight": _qkv("q_proj", "k_proj", "v_proj"),
                                    "mlp.gate_up_proj.weight": _rows(("gate_proj", lambda s: mlp * s["n"]),
                                                                     ("up_proj", lambda s: mlp * s["n"]))})
    if key == "hf:olmo2":                 # no pre-norm: the branches read the raw stream; SwiGLU's product squares it
        return replace(spec, stream_degree={**dict.fromkeys(("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                              "up_proj"), 1), "down_proj": 2})
    if key == "hf:gemma2":
        return replace(spec, gates={"embed_tokens": "sqrt(n)"}, offsets={"*norm": 1.0})
    if key == "litgpt:gpt":
        return replace(spec, layers="transformer.h", query_key=("q", "k"),
                       fused={"attn.qkv.weight": _qkv("q", "k", "v")})
    if key == "torchtitan:llama3":
        return replace(spec, layers="layers", query_key=("wq", "wk"),
                       fused={"qkv_linear.wqkv.weight": _qkv("wq", "wk", "wv")},
                       interleave={"qkv_linear.wqkv.weight": lambda s: dims["heads"] // s["r"]})
    return spec


class Identity(NamedTuple):
    """What parametrize needs to know of a model the user already has."""

    key: str                 # the family
    shape: Shape             # its (n, L, r)
    dims: dict[str, int]     # its fixed dims
    tied: bool = False       # its readout shares the input embedding's weight


def shares_storage(model: Any) -> bool:
    """Whether one of ``model``'s parameters is reached under two names (a tied readout)."""
    return len(list(model.named_parameters(remove_duplicate=False))) > len(list(model.parameters()))


def identify(model: Any) -> Identity:
    """The family, shape, dims and tie of a model the user already has, or a one-line error saying why it is none
    of the supported families."""
    kind = type(model)
    if kind.__module__.startswith(("litgpt.", "torchtitan.")) and shares_storage(model):
        raise ValueError(f"model: a {kind.__module__.split('.')[0]} model with shared (tied) weights is not a "
                         "supported family (their configs tie nothing); declare it (mup-derive declare)")
    if kind.__module__.startswith("litgpt.") and kind.__name__ == "GPT":
        c = model.config
        differ = sorted(k for k, v in LITGPT.items() if getattr(c, k, v) != v)
        if differ or c.head_size * c.n_head != c.n_embd or c.intermediate_size % c.n_embd:
            raise ValueError(f"model: litgpt config {c.name!r} differs from the supported Llama-style GPT ({LITGPT}, "
                             f"head_size n_embd / n_head, intermediate_size a multiple of n_embd) in "
                             f"{differ or ['head_size or intermediate_size']}; declare it (mup-derive declare)")
        return Identity("litgpt:gpt", {"n": c.n_embd, "L": c.n_layer, "r": c.n_head // c.n_query_groups},
                        {"vocab": c.padded_vocab_size, "heads": c.n_head, "mlp_ratio": c.intermediate_size // c.n_embd})
    if kind.__module__.startswith("torchtitan.") and kind.__name__ == "Llama3Model":
        first = next(iter(model.layers.values()))
        attn, mlp = first.attention, first.feed_forward
        if not hasattr(attn.qkv_linear, "wqkv") or mlp.w1.out_features % model.config.dim:
            raise ValueError("model: torchtitan Llama3 is supported with fuse_qkv=True (its flavours' default) and a "
                             "hidden dim a multiple of dim; declare it (mup-derive declare)")
        n = model.config.dim
        shape = {"n": n, "L": len(model.layers), "r": attn.n_heads // attn.n_kv_heads}
        return Identity("torchtitan:llama3", shape, {"vocab": model.config.vocab_size, "heads": attn.n_heads,
                                                     "mlp_ratio": mlp.w1.out_features // n})
    config: Any = getattr(model, "config", None)
    family = getattr(config, "model_type", None)
    if family not in HF:
        raise ValueError(f"model: {kind.__name__} is none of the supported families ({', '.join(FAMILIES)}); "
                         "declare it (mup-derive declare) and pass declaration=")
    return Identity(f"hf:{family}", {"n": config.hidden_size, "L": config.num_hidden_layers,
                                     "r": config.num_attention_heads // config.num_key_value_heads},
                    {"vocab": config.vocab_size, "heads": config.num_attention_heads,
                     "mlp_ratio": config.intermediate_size // config.hidden_size}, shares_storage(model))


def model_spec(text: str, layers: str = "model.layers", dims: dict[str, int] | None = None,
               tied: bool = False) -> ModelSpec:
    """A family (``hf:FAMILY``, ``litgpt:gpt``, ``torchtitan:llama3``; ``tied`` as :func:`build_model`),
    ``FILE.py:FACTORY`` or ``package.module:FACTORY`` (``FACTORY(shape) -> nn.Module``) as a spec; a factory's
    fixed dims are named by ``dims`` and its residual layers live under ``layers``."""
    if text.partition(":")[0] in LIBRARIES:
        return family_spec(text, tied=tied)
    if tied:
        raise ValueError("tied: only a family (hf:FAMILY) is built tied; a factory's ties are read from its "
                         "shared weights")
    where, sep, factory = text.rpartition(":")
    if not sep or not where or not factory.isidentifier():
        raise ValueError(f"model {text!r}: expected a family ({', '.join(FAMILIES)}), FILE.py:FACTORY or "
                         "package.module:FACTORY")
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
