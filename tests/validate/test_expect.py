"""The slopes μP allows, derived from the declaration and alpha: the readout's own update along depth."""
import pytest

from mup_derive.validate.expect import expected


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
