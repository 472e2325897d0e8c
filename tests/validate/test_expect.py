"""The slopes μP allows, derived from the declaration and alpha: the readout's own update along depth, the
repeated maps' aligned gain along r."""
import math

import numpy as np
import pytest
import torch

from mup_derive.validate.expect import expected, repeat_gain
from mup_derive.validate.expect import slope as expect_slope


def _decl(role, branch):
    return {"role": role, "branch": branch, "correlated": True, "init": "normal", "params": [],
            "shape": lambda n, L, r: (n, 256 if role == "output" else n, n)}


BASE = {"n": 128, "L": 2, "r": 1}


@pytest.mark.parametrize("alpha,low", [(1.0, -1.0), (0.5, 0.0)])
def test_a_readouts_own_update_may_fall_with_depth_as_far_as_the_streams_coherence(alpha, low):
    """The readout's step aligns with the batch's shared stream, carried by L branches of L^-alpha adding
    incoherently: L^(1 - 2 alpha); measured -0.20 to -0.34 at alpha = 1 and -0.03 to +0.01 at alpha = 1/2
    (widths 256-1024, 3 seed sets), which the old Theta(1) failed once in 108 runs."""
    assert expected(_decl("output", False), "dwx", 4, "depth", [2, 4, 8], BASE, alpha) == (low, 0.0)
    assert expected(_decl("output", False), "dwx", 4, "width", [128, 256], BASE, alpha) == (0.0, 0.0)


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_a_branch_ops_own_update_keeps_its_depth_exponent(alpha):
    """No allowance inside the branches, where an LR mis-scaled in depth would hide behind it."""
    assert expected(_decl("hidden", True), "dwx", 4, "depth", [2, 4, 8], BASE, alpha) == (alpha - 1, alpha - 1)
    assert expected(_decl("input", False), "dwx", 4, "depth", [2, 4, 8], BASE, alpha) == (0.0, 0.0)


def test_a_tied_readout_may_keep_a_coherent_part_at_init():
    """A readout tied to the embedding reads a stream that carries its own rows (the embedded tokens): its output at
    init lies between the incoherent fan_in^-1/2 and Θ(1), the token's own logit; an untied one is fan_in^-1/2."""
    tied = {**_decl("output", False), "tied": "emb"}
    assert expected(_decl("output", False), "rms", 0, "width", [128, 256, 512], BASE, 1.0) == \
        pytest.approx((-0.5, -0.5))
    assert expected(tied, "rms", 0, "width", [128, 256, 512], BASE, 1.0) == pytest.approx((-0.5, 0.0))
    assert expected(tied, "rms", 0, "depth", [2, 4, 8], BASE, 1.0) == pytest.approx((0.0, 0.5))


@pytest.mark.parametrize("k", [1, 2])
def test_an_op_reading_the_raw_stream_may_shrink_along_depth_by_its_degree(k):
    """No pre-norm (OLMo2): the stream an op reads lies between L^(1/2 - alpha) and Θ(1), so at degree k its size
    may fall to L^(k (1/2 - alpha)) and its own update, aligned with the shared part, to L^(k (1 - 2 alpha)); none
    at alpha = 1/2 or along width; a pre-norm op (degree 0) keeps its range."""
    raw, plain = {**_decl("hidden", True), "stream_degree": k}, _decl("hidden", True)
    assert expected(raw, "rms", 0, "depth", [2, 4, 8], BASE, 1.0) == pytest.approx((-0.5 * k, 0.5))
    assert expected(plain, "rms", 0, "depth", [2, 4, 8], BASE, 1.0) == pytest.approx((0.0, 0.5))
    assert expected(raw, "dwx", 4, "depth", [2, 4, 8], BASE, 1.0) == pytest.approx((-1.0 * k, 0.0))
    assert expected(raw, "delta", 4, "depth", [2, 4, 8], BASE, 1.0)[0] == pytest.approx(-0.5 - 0.5 * k)
    assert expected(raw, "rms", 0, "depth", [2, 4, 8], BASE, 0.5) == pytest.approx((0.0, 0.0))
    assert expected(raw, "dwx", 4, "width", [128, 256], BASE, 1.0) == (0.0, 0.0)


def _repeated_gains(n, c, seed):
    """Gains of A = R W (W: n/c x n, entries N(0, 1/n), each row repeated c times) on a stream change its own
    backward put there (W^T R^T g) and on a generic one."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(n // c, n, generator=gen) / math.sqrt(n)

    def a(x):
        return (w @ x).repeat_interleave(c)

    g, x = torch.randn(n, generator=gen), torch.randn(n, generator=gen)
    aligned = w.T @ g.view(n // c, c).sum(1)               # A^T g
    return float(a(aligned).norm() / aligned.norm()), float(a(x).norm() / x.norm())


@pytest.mark.parametrize("c", [1, 2, 4, 8, 16, 32])
def test_a_repeated_map_passes_its_own_backward_with_gain_sqrt_1_plus_c(c):
    """The mechanism behind the ratio allowance, on real tensors: A A^T has mean eigenvalue 1 and mean square
    1 + c, so A passes A^T g with gain sqrt(1 + c) (sqrt 2 for a full-rank square map) and a generic input
    with gain 1, whatever the init scale."""
    aligned, generic = np.mean([_repeated_gains(2048, c, s) for s in range(8)], axis=0)
    assert aligned == pytest.approx(math.sqrt(1 + c), rel=0.03)
    assert generic == pytest.approx(1.0, abs=0.1)


def test_the_ratio_allowance_is_the_declared_repeats_gain():
    """sqrt((1 + r) / 2) over r = 1..8 for GQA's K/V (rank n/r): slope 0.362; nothing along width or depth,
    and nothing for a model with no repeat."""
    kv = {**_decl("hidden", True), "shape": lambda n, L, r: (n, n, n / r)}
    full = _decl("hidden", True)
    want = expect_slope([1, 2, 4, 8], [math.sqrt((1 + r) / 2) for r in (1, 2, 4, 8)])
    assert repeat_gain({"k": kv, "o": full}, "ratio", [1, 2, 4, 8], BASE) == pytest.approx(want)
    assert want == pytest.approx(0.362, abs=1e-3)
    assert repeat_gain({"k": kv}, "width", [128, 256], BASE) == 0.0
    assert repeat_gain({"o": full}, "ratio", [1, 2, 4, 8], BASE) == 0.0
    # on the changes only: activations at init and own updates keep their exponents
    assert expected(full, "delta", 4, "ratio", [1, 2, 4, 8], BASE, 1.0, want) == (0.0, want)
    assert expected(full, "rms", 0, "ratio", [1, 2, 4, 8], BASE, 1.0, want) == (0.0, 0.0)
    assert expected(full, "dwx", 4, "ratio", [1, 2, 4, 8], BASE, 1.0, want) == (0.0, 0.0)
