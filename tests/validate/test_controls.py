"""Negative controls: each breaks one μP rule, and the check that must expose it fails."""
import pytest

from mup_derive.validate import CONTROLS, gqa_target, run_coord_check
from mup_derive.validate.controls import broken, exposed_by
from tests.helpers import GENERATED, quiet


@pytest.mark.parametrize("control,axis,label", [
    ("hidden-lr-unscaled", "width", "q"), ("attn-sqrt-d", "width", "attn_logits"),
    ("no-output-mult", "width", "unembedding"), ("kv-lr-r", "ratio", "k"), ("no-residual-mult", "depth", "residual"),
    ("branch-lr-depth", "depth", "mlp_up")])
def test_negative_controls_fail(control, axis, label):
    """Same defaults as the passing μP check; only one rule is broken."""
    rep = run_coord_check(gqa_target(GENERATED, batch=2, seq=16), [axis], control=control, echo=quiet)
    assert rep.verdict == "fail" and rep.axes[axis].labels[label].verdict == "fail"


def test_a_control_the_target_cannot_show_fails_the_run():
    """The MLP target has no attention: attn-sqrt-d cannot show there, and the run says so."""
    from mup_derive.validate import CheckError, resolve
    from tests.helpers import EXAMPLES
    with pytest.raises(CheckError, match="cannot show it here|changes nothing"):
        run_coord_check(resolve(f"{EXAMPLES / 'mlp_target.py'}:target"), ["width"], control="attn-sqrt-d", echo=quiet)


def test_every_coord_check_control_is_tested():
    assert set(exposed_by("coord-check")) == {"hidden-lr-unscaled", "attn-sqrt-d", "no-output-mult", "kv-lr-r",
                                               "no-residual-mult", "branch-lr-depth"}
    assert exposed_by("sweep") == ["wd-unscaled"] and set(CONTROLS) == {*exposed_by("coord-check"), "wd-unscaled"}


def test_a_control_edits_a_fresh_copy(gen):
    mod = broken(gen, "hidden-lr-unscaled")
    assert "lr_adamw" not in mod.RULES["mup"]["q"] and "lr_adamw" in gen.RULES["mup"]["q"]


def test_kv_lr_r_multiplies_the_rule_at_r1_by_r(gen):
    mod = broken(gen, "kv-lr-r")
    shape = {"n": 256, "L": 2, "r": 4}
    assert mod.ratio("k", "lr_adamw", shape) == pytest.approx(4 * gen.ratio("k", "lr_adamw", {**shape, "r": 1}))


def test_branch_lr_depth_divides_every_branch_lr_by_depth(gen):
    mod = broken(gen, "branch-lr-depth")
    shape = {"n": 256, "L": 8, "r": 2}
    for op, decl in gen.DECLARED.items():
        ratio = mod.ratio(op, "lr_adamw", shape) / gen.ratio(op, "lr_adamw", shape)
        slower = gen.BASE_SHAPE["L"] / shape["L"]                 # a ratio to the base shape's rule
        assert ratio == pytest.approx(slower if decl["branch"] and decl["role"] != "contraction" else 1.0), op


def test_unknown_control_is_refused(gen):
    with pytest.raises(ValueError, match="unknown control"):
        broken(gen, "nope")
