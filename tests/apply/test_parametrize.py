"""parametrize(): μP on stock Hugging Face models with no code edits; the multipliers live in the weights, so
the parametrization survives save and load; the coordinate check passes μP and fails SP on them."""
import copy
import math
from dataclasses import replace

import pytest
import torch

from mup_derive.validate import CheckSettings, resolve, run_coord_check
from mup_derive.validate.rules import load_rules
from mup_derive.validate.target import TargetError
from tests.helpers import quiet

transformers = pytest.importorskip("transformers")
from mup_derive.apply import parametrize, rules_for  # noqa: E402
from mup_derive.apply.targets import family_target  # noqa: E402
from mup_derive.infer import build_model  # noqa: E402

BASE = {"n": 64, "L": 2, "r": 1}
SHAPE = {"n": 256, "L": 4, "r": 2}


def test_three_lines_for_a_stock_llama():
    """n 64 -> 256, L 2 -> 4, r 1 -> 2: q's Adam LR 1/n over the sqrt(d_head) the model's 1/sqrt(d) attention puts
    on it; o's over L (the residual multiplier it carries); init stds measured on the tensors."""
    torch.manual_seed(0)
    model = build_model("hf:llama", SHAPE)
    groups = {g["name"]: g for g in parametrize(model, BASE, lr=1e-2, weight_decay=0.1)}
    assert groups["q_proj"]["lr"] == pytest.approx(1e-2 / 4 / 2)
    assert groups["k_proj"]["lr"] == pytest.approx(1e-2 / 4)
    assert groups["o_proj"]["lr"] == pytest.approx(1e-2 / 4 / 2)
    assert groups["o_proj"]["weight_decay"] == pytest.approx(0.1 * 4 * 2)           # eta * lambda constant
    assert groups["embed_tokens"]["lr"] == pytest.approx(1e-2)
    layer = model.model.layers[0]
    assert layer.self_attn.k_proj.weight.std().item() == pytest.approx(0.02 / 2, rel=0.05)      # n^-1/2
    assert layer.self_attn.q_proj.weight.std().item() == pytest.approx(0.02 / 2 / 2, rel=0.05)  # / sqrt(d) ratio
    assert layer.self_attn.o_proj.weight.std().item() == pytest.approx(0.02 / 2 / 2, rel=0.05)  # / L ratio
    assert model.lm_head.weight.std().item() == pytest.approx(0.02 / 4, rel=0.05)               # readout n^-1
    assert torch.all(layer.input_layernorm.weight == 1)


@pytest.mark.parametrize("family", ["qwen2", "phi3"])
def test_the_parametrization_survives_save_and_load(tmp_path, family):
    """save_pretrained writes the stock model's tensors (Phi3's split qkv_proj saved fused), from_pretrained gives
    the same logits, config.mup keeps the record and a loaded model under another one is refused."""
    torch.manual_seed(0)
    model = build_model(f"hf:{family}", SHAPE)
    groups = parametrize(model, BASE, lr=1e-3)
    model.save_pretrained(tmp_path)
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path)
    x = torch.randint(0, 256, (2, 12))
    model.eval(), back.eval()
    assert torch.allclose(model(input_ids=x).logits, back(input_ids=x).logits, atol=1e-5)
    assert back.config.mup == {"parametrization": "mup", "base": dict(sorted(BASE.items())), "alpha": "1"}
    again = parametrize(back, BASE, lr=1e-3, init=False)          # groups for a loaded model, weights kept
    assert [g["lr"] for g in again] == [g["lr"] for g in groups]
    with pytest.raises(ValueError, match="another parametrization .*alpha"):
        parametrize(back, BASE, lr=1e-3, alpha=0.5, init=False)


def test_gemma2_post_norm_gains_carry_the_residual_multiplier():
    """Gemma2 normalises each branch output and applies its gains as 1 + w: the residual multiplier L^-1 goes on
    the post-norm gains, so at L = 4 from a base of 2 the applied gain 1 + w is 1/2 (its LR halves too); the
    pre-norm gains stay 1; q takes the d_head gate of the model's constant attention scale; the embedding its
    sqrt(n) gate.  Measured on the tensors, and a parametrized model survives save and load."""
    torch.manual_seed(0)
    model = build_model("hf:gemma2", SHAPE)
    groups = {g["name"]: g for g in parametrize(model, BASE, lr=1e-2)}
    layer = model.model.layers[0]
    assert torch.allclose(1 + layer.post_attention_layernorm.weight, torch.tensor(0.5))
    assert torch.allclose(1 + layer.post_feedforward_layernorm.weight, torch.tensor(0.5))
    assert torch.all(layer.input_layernorm.weight == 0) and torch.all(model.model.norm.weight == 0)
    assert groups["post_attention_layernorm"]["lr"] == pytest.approx(1e-2 / 2)
    assert groups["input_layernorm"]["lr"] == pytest.approx(1e-2)
    assert groups["q_proj"]["lr"] == pytest.approx(1e-2 / 4 / 4)          # 1/n over the d_head gate
    assert layer.self_attn.q_proj.weight.std().item() == pytest.approx(0.02 / 2 / 4, rel=0.05)
    assert model.model.embed_tokens.weight.std().item() == pytest.approx(0.02 / 2, rel=0.05)   # / sqrt(n) ratio


def test_olmo2_gates_sit_after_its_norms_and_its_embedding_carries_the_stream():
    """OLMo2 has no pre-norm: q's gate sqrt(d_head) goes on q_norm and the residual multiplier on the post-norm gains
    (at L = 4 from a base of 2 they start at 1/2), and the embedding is drawn at std 1 (TP5's Θ(1) input init), so
    that it, not the L^-1 branches, carries the stream each branch reads.  SP keeps the base std."""
    torch.manual_seed(0)
    model = build_model("hf:olmo2", SHAPE)
    groups = {g["name"]: g for g in parametrize(model, BASE, lr=1e-2)}
    layer = model.model.layers[0]
    assert torch.allclose(layer.post_attention_layernorm.weight, torch.tensor(0.5))
    assert torch.allclose(layer.post_feedforward_layernorm.weight, torch.tensor(0.5))
    assert torch.allclose(layer.self_attn.q_norm.weight, torch.tensor(1 / 2))    # sqrt(d_head0 / d_head), d_head x4
    assert groups["post_attention_layernorm"]["lr"] == pytest.approx(1e-2 / 2)
    assert model.model.embed_tokens.weight.std().item() == pytest.approx(1.0, rel=0.05)
    sp = build_model("hf:olmo2", SHAPE)
    parametrize(sp, BASE, lr=1e-2, parametrization="sp")
    assert sp.model.embed_tokens.weight.std().item() == pytest.approx(0.02, rel=0.05)


@pytest.mark.parametrize("family,gain,emb_std,emb_lr", [("llama", 1 / 4, 0.02, 1e-2), ("gemma2", 1 / 2, 0.01, 5e-3)])
def test_a_tied_readout_takes_its_multiplier_on_the_final_gain(tmp_path, family, gain, emb_std, emb_lr):
    """A readout sharing the embedding's weight keeps the embedding's init and LR (Gemma2's over its sqrt(n) gate);
    its multiplier, n0/n (Gemma2: sqrt(n0/n)), goes on the final norm's gain, whose LR scales with it and WD (where
    gains decay) inversely.  The logits and the shared weight's gradient equal those of the same model with the
    multiplier on the readout's output instead; save and load keep the tie and the gain."""
    torch.manual_seed(0)
    model = build_model(f"hf:{family}", SHAPE, tied=True)
    groups = {g["name"]: g for g in parametrize(model, BASE, lr=1e-2, weight_decay=0.1)}
    offset = 1.0 if family == "gemma2" else 0.0                     # Gemma2 applies its gains as 1 + w
    assert model.lm_head.weight is model.model.embed_tokens.weight and "lm_head" not in groups
    assert torch.allclose(offset + model.model.norm.weight, torch.tensor(gain))
    assert groups["norm"]["lr"] == pytest.approx(1e-2 * gain)
    assert rules_for(model, BASE).ratio("norm", "wd_adamw", SHAPE) == pytest.approx(1 / gain)   # eta * lambda
    assert groups["embed_tokens"]["lr"] == pytest.approx(emb_lr)
    assert model.model.embed_tokens.weight.std().item() == pytest.approx(emb_std, rel=0.05)

    explicit = copy.deepcopy(model)                                   # unit gain, the multiplier on the readout
    with torch.no_grad():
        explicit.model.norm.weight.fill_(1 - offset)
    explicit.lm_head.register_forward_hook(lambda _m, _i, out: out * gain)
    x, w = torch.randint(0, 256, (2, 12)), torch.randn(2, 12, 256)
    outs = [m(input_ids=x).logits for m in (model, explicit)]
    assert torch.allclose(outs[0], outs[1], atol=1e-6)
    for out in outs:
        (out * w).sum().backward()
    assert torch.allclose(model.lm_head.weight.grad, explicit.lm_head.weight.grad, atol=1e-6)

    model.save_pretrained(tmp_path)
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path)
    assert back.lm_head.weight is back.model.embed_tokens.weight
    model.eval(), back.eval()
    assert torch.allclose(model(input_ids=x).logits, back(input_ids=x).logits, atol=1e-5)


def test_a_tied_model_that_needs_its_embedding_to_carry_the_stream_is_refused():
    """OLMo2 draws its embedding at std 1 (no pre-norm); a tied readout would start at that std: refused."""
    with pytest.raises(ValueError, match="tied hf:olmo2 is not supported") as err:
        parametrize(build_model("hf:olmo2", BASE, tied=True), BASE, lr=1e-3)
    assert "\n" not in str(err.value)


def test_coordinate_check_on_a_tied_llama():
    """The tied readout (hooked through the embedding's weight) passes along width at its effective output, the
    gain carrying its multiplier; undoing that gain's gate fails the readout."""
    target = family_target("hf:llama", tied=True)
    mup = run_coord_check(target, ["width"], CheckSettings(), echo=quiet)
    broken = run_coord_check(target, ["width"], CheckSettings(), control="no-output-mult", echo=quiet)
    assert mup.verdict == "pass", [lab for lab, v in mup.axes["width"].labels.items() if not v.passed]
    assert broken.axes["width"].labels["lm_head"].verdict == "fail"
    assert mup.axes["width"].labels["lm_head"].metrics["rms"].slope[0] < -0.25     # multiplier x (W x): n^-1/2


def test_olmo2_along_depth_is_judged_with_the_stream_its_branches_read():
    """OLMo2's branches read the raw stream (declared stream_degree): μP passes along L = 2-8 with the allowance
    derived from it and fails without it (down_proj's size at init, the MLP's own updates); branch LRs with an
    extra 1/L fail even with it, and so does the model without the residual multiplier."""
    target, settings = resolve("hf:olmo2"), CheckSettings()
    mup = run_coord_check(target, ["depth"], settings, echo=quiet)
    assert mup.verdict == "pass", [lab for lab, v in mup.axes["depth"].labels.items() if not v.passed]
    undeclared = load_rules(target.rules.__file__, fresh=True)
    for decl in undeclared.DECLARED.values():
        decl.pop("stream_degree", None)
    bare = run_coord_check(replace(target, rules=undeclared), ["depth"], settings, echo=quiet)
    assert bare.axes["depth"].labels["down_proj"].verdict == "fail"
    for control in ("branch-lr-depth", "no-residual-mult"):
        assert run_coord_check(target, ["depth"], settings, control=control, echo=quiet).verdict == "fail", control


def test_compiled_forward_and_backward_of_a_parametrized_phi3():
    """Phi3's fused qkv is split into row blocks; the model still compiles, forward and backward."""
    torch.manual_seed(0)
    model = build_model("hf:phi3", {"n": 64, "L": 2, "r": 2})
    parametrize(model, BASE, lr=1e-3)
    x = torch.randint(0, 256, (2, 8))
    compiled = torch.compile(model, backend="aot_eager")
    out = compiled(input_ids=x, labels=x)
    out.loss.backward()
    assert torch.allclose(out.logits, model(input_ids=x).logits, atol=1e-5)
    assert model.model.layers[0].self_attn.qkv_proj.parametrizations.weight.original1.grad is not None


@pytest.mark.parametrize("bad,message", [({"base": {"n": 64}}, "base must give"),
                                         ({"parametrization": "muP"}, "parametrization must be")])
def test_bad_calls_are_one_line(bad, message):
    model = build_model("hf:llama", BASE)
    with pytest.raises(ValueError, match=message) as err:
        parametrize(model, **{"base": BASE, "lr": 1e-3, **bad})
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="none of the supported families"):
        parametrize(torch.nn.Linear(2, 2), BASE, lr=1e-3)


def test_coordinate_check_on_a_stock_llama():
    """μP, absorbed into the weights of an unedited LlamaForCausalLM, passes along width and depth; SP fails, and
    so do the attention-scale and residual controls, which undo the gates that absorb those multipliers."""
    settings = CheckSettings()
    mup = run_coord_check(resolve("hf:llama", "mup"), ["width", "depth"], settings, echo=quiet)
    sp = run_coord_check(resolve("hf:llama", "sp"), ["width"], settings, echo=quiet)
    attn = run_coord_check(resolve("hf:llama"), ["width"], settings, control="attn-sqrt-d", echo=quiet)
    resid = run_coord_check(resolve("hf:llama"), ["depth"], settings, control="no-residual-mult", echo=quiet)
    assert attn.axes["width"].labels["q_proj"].verdict == "fail" and resid.axes["depth"].verdict == "fail"
    assert mup.axes["width"].verdict == "pass" and mup.axes["depth"].verdict == "pass", \
        [(a, lab) for a, r in mup.axes.items() for lab, v in r.labels.items() if not v.passed]
    assert sp.axes["width"].verdict == "fail"
    q = mup.axes["width"].labels["q_proj"].metrics["rms"]
    assert abs(q.slope[0]) < 0.1          # measured at its effective output: the gate sqrt(d_head) times its own


def test_coordinate_check_on_a_stock_gemma2():
    """Gemma2 (post-norm gains 1 + w carry the residual multiplier): μP passes along width and r, and the
    attention-scale and residual controls, which undo those gates, fail."""
    settings = CheckSettings()
    mup = run_coord_check(resolve("hf:gemma2", "mup"), ["width", "ratio"], settings, echo=quiet)
    attn = run_coord_check(resolve("hf:gemma2"), ["width"], settings, control="attn-sqrt-d", echo=quiet)
    resid = run_coord_check(resolve("hf:gemma2"), ["depth"], settings, control="no-residual-mult", echo=quiet)
    assert mup.verdict == "pass", [(a, lab) for a, r in mup.axes.items() for lab, v in r.labels.items() if not v.passed]
    assert attn.axes["width"].labels["q_proj"].verdict == "fail" and resid.verdict == "fail"


def test_an_unknown_family_target_is_named():
    with pytest.raises(TargetError, match="unknown model family"):
        resolve("hf:bert")
    assert math.isfinite(rules_for(build_model("hf:llama", BASE), BASE).ratio("q_proj", "init_std", SHAPE))


def test_any_module_with_a_declaration(tmp_path):
    """Any nn.Module with a declaration is parametrized in one call with its shape (here an MLP)."""
    decl = tmp_path / "mlp.toml"
    decl.write_text('name = "mlp"\n[dims]\nd = 10\n'
                    '[[op]]\nname = "inp"\nrole = "input"\nfan_in = "d"\nfan_out = "n"\nparams = ["0.weight"]\n'
                    '[[op]]\nname = "hid"\nrole = "hidden"\nfan_in = "n"\nfan_out = "n"\nparams = ["2.weight"]\n'
                    '[[op]]\nname = "out"\nrole = "output"\nfan_in = "n"\nfan_out = "d"\nparams = ["4.weight"]\n')
    model = torch.nn.Sequential(torch.nn.Linear(10, 256, bias=False), torch.nn.ReLU(),
                                torch.nn.Linear(256, 256, bias=False), torch.nn.ReLU(),
                                torch.nn.Linear(256, 10, bias=False))
    groups = {g["name"]: g["lr"] for g in parametrize(model, BASE, lr=1.0, declaration=decl,
                                                       shape={"n": 256, "L": 2, "r": 1})}
    assert groups == pytest.approx({"inp": 1.0, "hid": 0.25, "out": 0.25})        # TP5 Table 3, Adam
    assert model[2].weight.std().item() == pytest.approx(0.02 / 2, rel=0.05)
    with pytest.raises(ValueError, match="shape: a model given with a declaration"):
        parametrize(model, BASE, lr=1.0, declaration=decl)
    torch.save(model.state_dict(), tmp_path / "mlp.pt")             # the record rides in the state dict's metadata
    other = torch.nn.Sequential(*(type(m)(m.in_features, m.out_features, bias=False) if hasattr(m, "in_features")
                                  else m for m in model))
    parametrize(other, {**BASE, "n": 128}, lr=1.0, declaration=decl, shape={"n": 256, "L": 2, "r": 1}, init=False)
    with pytest.raises(ValueError, match=r"the state dict was written under another parametrization \(base"):
        other.load_state_dict(torch.load(tmp_path / "mlp.pt"))


@pytest.mark.parametrize("family", ["hf:llama", "torchtitan:llama3"])
def test_a_distributed_checkpoint_keeps_the_record_beside_the_model(tmp_path, family):
    """DCP keeps only the tensors of a state dict; the record saved beside them is checked on load: the same
    parametrization loads the same weights, another base or alpha is refused in one line."""
    import torch.distributed.checkpoint as dcp

    from mup_derive import CheckpointRecord
    if family.startswith("torchtitan"):
        pytest.importorskip("torchtitan")
    torch.manual_seed(0)
    model = build_model(family, SHAPE)
    parametrize(model, BASE, lr=1e-3)
    dcp.save({"model": model.state_dict(), "mup": CheckpointRecord(model)}, checkpoint_id=tmp_path / "ckpt")
    for base, alpha, refused in ((BASE, 1, None), ({**BASE, "n": 128}, 1, "base"), (BASE, 0.5, "alpha")):
        again = build_model(family, SHAPE)
        parametrize(again, base, lr=1e-3, alpha=alpha, init=False)
        state = {"model": again.state_dict(), "mup": CheckpointRecord(again)}
        if refused is None:
            dcp.load(state, checkpoint_id=tmp_path / "ckpt")
            again.load_state_dict(state["model"])           # as DCP's set_model_state_dict: fused wqkv from wq, wk, wv
            assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values(),
                                                         strict=True))
        else:
            with pytest.raises(ValueError, match=rf"^model: the checkpoint was written under another "
                                                 rf"parametrization \({refused} differ"):
                dcp.load(state, checkpoint_id=tmp_path / "ckpt")
    with pytest.raises(ValueError, match="carries no parametrization record; parametrize it first"):
        CheckpointRecord(build_model(family, SHAPE))
