"""Flex attention in the check: its dense reference equals torch's flex_attention (forward and log-sum-exp) and
SDPA's gradients, and torchtitan's Llama with its default flex backend is checked on the CPU, where flex itself
has no backward."""
import warnings
from dataclasses import replace
from functools import lru_cache

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import AuxRequest, create_block_mask, flex_attention

from mup_derive.validate import CheckSettings, run_coord_check
from mup_derive.validate.flex import dense_flex_attention, trainable_flex
from tests.helpers import quiet

B, H, H_KV, T, E = 2, 4, 2, 40, 8
DOCS = torch.tensor([[0] * 15 + [1] * 25, [0] * 30 + [1] * 10])       # two documents per row, cut differently


def causal(b, h, q, kv):
    return q >= kv


def documents(b, h, q, kv):
    return (DOCS[b, q] == DOCS[b, kv]) & (q >= kv)


def blind_query(b, h, q, kv):
    return (q >= kv) & (q != 3)                                      # query 3 sees no key


def capped(score, b, h, q, kv):
    return 20 * torch.tanh(score / 20) + 0.1 * (h + 1) * (kv - q)    # soft cap and a per-head ALiBi-like bias


def _mask(fn, batch=None):
    return create_block_mask(fn, batch, None, T, T, device="cpu", BLOCK_SIZE=16)


CASES = {"no mask": {}, "causal": {"block_mask": _mask(causal)}, "documents": {"block_mask": _mask(documents, B)},
         "a query with no key": {"block_mask": _mask(blind_query)}, "score_mod": {"score_mod": capped, "scale": 0.3}}


def _qkv(requires_grad=False):
    torch.manual_seed(0)
    return [torch.randn(B, h, T, E, requires_grad=requires_grad) for h in (H, H_KV, H_KV)]


@pytest.mark.parametrize("case", CASES)
def test_the_dense_reference_is_flex_attention(case):
    """Same output and log-sum-exp as torch's own flex_attention (GQA), -inf where a query has no key."""
    q, k, v = _qkv()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                             # flex's "called without torch.compile"
        want, want_aux = flex_attention(q, k, v, enable_gqa=True, return_aux=AuxRequest(lse=True), **CASES[case])
    got, aux = dense_flex_attention(q, k, v, enable_gqa=True, return_aux=AuxRequest(lse=True), **CASES[case])
    assert torch.allclose(got, want, atol=1e-6)
    assert torch.equal(torch.isinf(aux.lse), torch.isinf(want_aux.lse))
    assert torch.allclose(aux.lse.nan_to_num(neginf=0), want_aux.lse.nan_to_num(neginf=0), atol=1e-5)
    assert torch.isinf(aux.lse).any() == (case == "a query with no key")


def test_the_dense_reference_has_sdpas_gradients():
    """Document-causal mask: the gradients into q, k and v equal SDPA's with the same boolean mask; a query with no
    key gets output 0 and finite gradients."""
    q, k, v = _qkv(requires_grad=True)
    weights = torch.arange(E, dtype=torch.float32)
    allowed = torch.stack([(d[:, None] == d[None, :]) & torch.ones(T, T).tril().bool() for d in DOCS])[:, None]
    (F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, enable_gqa=True) * weights).sum().backward()
    want = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    (dense_flex_attention(q, k, v, block_mask=CASES["documents"]["block_mask"], enable_gqa=True) * weights).sum() \
        .backward()
    assert all(torch.allclose(t.grad, w, atol=1e-4) for t, w in zip((q, k, v), want, strict=True))
    q, k, v = _qkv(requires_grad=True)
    out = dense_flex_attention(q, k, v, block_mask=CASES["a query with no key"]["block_mask"], enable_gqa=True)
    out.sum().backward()
    assert out[:, :, 3].abs().max() == 0 and all(torch.isfinite(t.grad).all() for t in (q, k, v))


class _Owner:
    attend = staticmethod(flex_attention)


def test_only_a_cpu_call_that_needs_a_backward_is_routed():
    """Inside trainable_flex, a call on CPU inputs that require a gradient runs the reference; a call on inputs
    that do not runs flex itself (the probes); the site is restored on exit."""
    q, k, v = _qkv(requires_grad=True)
    with trainable_flex([(_Owner, "attend")]):
        _Owner.attend(q, k, v, enable_gqa=True).sum().backward()    # flex itself would raise NotImplementedError
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            probe = _Owner.attend(q.detach(), k.detach(), v.detach(), enable_gqa=True)
    assert q.grad is not None and torch.allclose(probe, dense_flex_attention(q, k, v, enable_gqa=True).detach(),
                                                   atol=1e-6)
    assert vars(_Owner)["attend"].__func__ is flex_attention
    with pytest.raises(NotImplementedError, match="FlexAttention does not support backward on CPU"):
        _Owner.attend(q, k, v, enable_gqa=True).sum().backward()


@lru_cache(maxsize=8)
def _causal_mask(tokens: int):
    return create_block_mask(causal, None, None, tokens, tokens, device="cpu")


def test_torchtitans_flex_llama_is_checked_on_the_cpu():
    """torchtitan's Llama 3 with its default flex backend (a causal block mask per batch, its class-level compiled
    flex_attention): μP passes along width, r and depth, and the attention-scale control fails on q."""
    pytest.importorskip("torchtitan")
    from torchtitan.models.common.attention import FlexAttention

    from mup_derive.apply.targets import family_target
    target = family_target("torchtitan:llama3")
    make = target.make

    def flexed(shape, rules):
        model = make(shape, rules)
        for block in model.layers.values():
            block.attention.inner_attention = FlexAttention(FlexAttention.Config())
        return model

    def loss(model, tokens):
        inputs = tokens[:, :-1]
        logits = model(inputs, attention_masks=_causal_mask(inputs.shape[1]))
        return F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
    flex = replace(target, make=flexed, loss=loss)
    settings = CheckSettings()
    mup = run_coord_check(flex, ["width", "ratio", "depth"], settings, echo=quiet)
    attn = run_coord_check(flex, ["width"], settings, control="attn-sqrt-d", echo=quiet)
    assert mup.verdict == "pass", [(a, lab) for a, r in mup.axes.items() for lab, v in r.labels.items() if not v.passed]
    assert attn.axes["width"].labels["wq"].verdict == "fail"
