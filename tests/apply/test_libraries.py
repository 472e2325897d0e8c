"""parametrize() on litgpt's GPT and torchtitan's Llama 3, unedited: init stds measured on the tensors, the
interleaved wqkv split as torchtitan splits it, a saved state that keeps the parametrization, and the coordinate
check (μP passes along width, r and depth; SP and both controls fail)."""
import io

import pytest
import torch

from mup_derive.validate import CheckSettings, resolve, run_coord_check
from tests.helpers import quiet

pytest.importorskip("litgpt")
pytest.importorskip("torchtitan")
from mup_derive.apply import parametrize, rules_for  # noqa: E402
from mup_derive.infer import build_model  # noqa: E402

BASE = {"n": 64, "L": 2, "r": 1}
SHAPE = {"n": 256, "L": 4, "r": 2}
FAMILIES = {"litgpt:gpt": ("q", "k", "attn_proj", "transformer.h.0.attn.qkv", "transformer.h.0.attn.proj"),
            "torchtitan:llama3": ("wq", "wk", "wo", "layers.0.attention.qkv_linear.wqkv", "layers.0.attention.wo")}


@pytest.mark.parametrize("key", FAMILIES)
def test_one_call_sets_init_and_groups(key):
    """n 64 -> 256, L 2 -> 4, r 1 -> 2: q's Adam LR 1/n over the sqrt(d_head) gate of the model's 1/sqrt(d)
    attention, k's 1/n, the output projection's over L as well; stds measured on the split blocks."""
    q, k, o, qkv, proj = FAMILIES[key]
    torch.manual_seed(0)
    model = build_model(key, SHAPE)
    groups = {g["name"]: g for g in parametrize(model, BASE, lr=1e-2, weight_decay=0.1)}
    assert groups[q]["lr"] == pytest.approx(1e-2 / 4 / 2)
    assert groups[k]["lr"] == pytest.approx(1e-2 / 4)
    assert groups[o]["lr"] == pytest.approx(1e-2 / 4 / 2)
    assert groups[o]["weight_decay"] == pytest.approx(0.1 * 4 * 2)
    blocks = model.get_submodule(qkv).parametrizations.weight
    assert [tuple(b.shape) for b in (blocks.original0, blocks.original1)] == [(256, 256), (128, 256)]
    assert blocks.original0.std().item() == pytest.approx(0.02 / 2 / 2, rel=0.05)     # n^-1/2, / sqrt(d) ratio
    assert blocks.original1.std().item() == pytest.approx(0.02 / 2, rel=0.05)         # K: hidden init
    assert model.get_submodule(proj).weight.std().item() == pytest.approx(0.02 / 2 / 2, rel=0.05)   # / L
    assert sum(p.numel() for g in groups.values() for p in g["params"]) == sum(p.numel() for p in model.parameters())


def test_the_interleaved_blocks_are_torchtitans_own_q_k_v():
    """split_fused cuts wqkv into the wq, wk, wv that torchtitan's own checkpoint hook writes, and merging them
    back gives the fused tensor unchanged."""
    torch.manual_seed(0)
    model = build_model("torchtitan:llama3", SHAPE)
    stock = {k.rpartition(".")[0].rpartition(".")[2]: v.clone() for k, v in model.state_dict().items()
             if k.startswith("layers.1.attention.qkv_linear.")}
    fused = model.layers["1"].attention.qkv_linear.wqkv.weight.detach().clone()
    rules = rules_for(model, BASE)
    rules.split_fused(model, SHAPE)
    blocks = model.layers["1"].attention.qkv_linear.wqkv.parametrizations.weight
    for i, name in enumerate(("wq", "wk", "wv")):
        assert torch.equal(getattr(blocks, f"original{i}"), stock[name])
    assert torch.equal(model.layers["1"].attention.qkv_linear.wqkv.weight, fused)
    rules.merge_fused(model)
    assert torch.equal(model.layers["1"].attention.qkv_linear.wqkv.weight, fused)


@pytest.mark.parametrize("key", FAMILIES)
def test_a_saved_state_keeps_the_parametrization(key):
    """The multipliers live in the weights: the split model's state dict has the stock model's keys (the fused
    tensor saved whole) and loads into a fresh stock model, which then computes the same logits."""
    torch.manual_seed(0)
    model = build_model(key, SHAPE)
    parametrize(model, BASE, lr=1e-3)
    fresh = build_model(key, SHAPE)
    assert list(model.state_dict()) == list(fresh.state_dict())
    fresh.load_state_dict(model.state_dict())
    x = torch.randint(0, 256, (2, 12))
    model.eval(), fresh.eval()
    assert torch.allclose(model(x), fresh(x), atol=1e-6)


@pytest.mark.parametrize("key", FAMILIES)
def test_a_state_dict_saved_under_another_parametrization_is_refused(key):
    """The configs have no place for the record, so the state dict's metadata carries it through torch.save and
    torch.load: a model parametrized from the same base loads it (its fused tensor split into the blocks, equal
    logits), one from another base or alpha refuses it in one line that names what differs, and a stock model still
    loads it."""
    torch.manual_seed(0)
    model = build_model(key, SHAPE)
    parametrize(model, BASE, lr=1e-3)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)

    def load(into):
        buffer.seek(0)
        into.load_state_dict(torch.load(buffer))

    same, other_base, other_alpha, stock = (build_model(key, SHAPE) for _ in range(4))
    parametrize(same, BASE, lr=1e-3, init=False)
    load(same)
    x = torch.randint(0, 256, (2, 12))
    model.eval(), same.eval()
    assert torch.allclose(model(x), same(x), atol=1e-6)
    parametrize(other_base, {**BASE, "n": 2 * BASE["n"]}, lr=1e-3, init=False)
    with pytest.raises(ValueError, match=r"^model: the state dict was written under another parametrization \(base "):
        load(other_base)
    parametrize(other_alpha, BASE, lr=1e-3, alpha=0.5, init=False)
    with pytest.raises(ValueError, match=r"another parametrization \(alpha differ"):
        load(other_alpha)
    load(stock)
    with pytest.raises(ValueError, match=r"^model: it was written under another parametrization \(alpha"):
        parametrize(same, BASE, lr=1e-3, alpha=0.5, init=False)


def _titan_manager(model, folder, alpha=1, init=True):
    """torchtitan's own CheckpointManager for ``model`` parametrized from BASE, its optimizer torchtitan's
    OptimizersContainer holding the groups (one ParamGroupConfig per op, matching its parameters' names), the
    record one entry of the states it is built with."""
    import re

    from torchtitan.components.checkpointer import CheckpointManager
    from torchtitan.components.optimizer import OptimizersContainer, ParamGroupConfig
    from torchtitan.components.optimizer.lr_scheduler import LRSchedulersContainer

    from mup_derive import CheckpointRecord
    groups = parametrize(model, BASE, lr=1e-3, weight_decay=0.1, alpha=alpha, init=init)
    names = {id(p): n for n, p in model.named_parameters()}
    configs = [ParamGroupConfig(pattern="^(" + "|".join(re.escape(names[id(p)]) for p in g["params"]) + ")$",
                                optimizer_name="AdamW",
                                optimizer_kwargs={k: g[k] for k in ("lr", "weight_decay", "eps")}) for g in groups]
    optimizers = OptimizersContainer.Config(param_groups=configs, implementation="for-loop").build(model_parts=[model])
    assert sorted(g["lr"] for o in optimizers for g in o.param_groups) == sorted(g["lr"] for g in groups)
    return CheckpointManager(CheckpointManager.Config(enable=True, folder=str(folder), interval=1, keep_latest_k=0),
                             dataloader=None, model_parts=[model], optimizers=optimizers,
                             lr_schedulers=LRSchedulersContainer(optimizers, lambda step: 1.0),
                             states={"mup": CheckpointRecord(model)}, sd_adapter=None)


def test_torchtitans_checkpoint_manager_keeps_the_record_in_full_checkpoints(tmp_path):
    """torchtitan's CheckpointManager, the record among its states: a resume from a full checkpoint loads under
    the same parametrization and refuses another alpha in one line; its model-only saves (the last step's, by
    default) keep the model's tensors alone, without the record."""
    import torch.distributed.checkpoint as dcp
    torch.manual_seed(0)
    model = build_model("torchtitan:llama3", SHAPE)
    manager = _titan_manager(model, tmp_path)
    assert manager.save(1) and manager.save(2, last_step=True)
    same = build_model("torchtitan:llama3", SHAPE)
    assert _titan_manager(same, tmp_path, init=False).load(step=1)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), same.state_dict().values(), strict=True))
    with pytest.raises(ValueError, match=r"^model: the checkpoint was written under another parametrization \(alpha"):
        _titan_manager(build_model("torchtitan:llama3", SHAPE), tmp_path, alpha=0.5, init=False).load(step=1)
    saved = {step: set(dcp.FileSystemReader(str(tmp_path / f"step-{step}")).read_metadata().state_dict_metadata)
             for step in (1, 2)}
    assert "mup.record" in saved[1] and "mup.record" not in saved[2]
    assert saved[2] == set(model.state_dict())


@pytest.mark.parametrize("key", FAMILIES)
def test_coordinate_check_on_a_stock_library_model(key):
    """μP passes along width, r and depth; SP fails along width and depth; the attention-scale and residual
    controls, which undo the gates that absorb those multipliers, fail."""
    settings = CheckSettings()
    q = FAMILIES[key][0]
    mup = run_coord_check(resolve(key, "mup"), ["width", "ratio", "depth"], settings, echo=quiet)
    sp = run_coord_check(resolve(key, "sp"), ["width", "depth"], settings, echo=quiet)
    attn = run_coord_check(resolve(key), ["width"], settings, control="attn-sqrt-d", echo=quiet)
    resid = run_coord_check(resolve(key), ["depth"], settings, control="no-residual-mult", echo=quiet)
    assert mup.verdict == "pass", [(a, lab) for a, r in mup.axes.items() for lab, v in r.labels.items() if not v.passed]
    assert sp.axes["width"].verdict == "fail" and sp.axes["depth"].verdict == "fail"
    assert attn.axes["width"].labels[q].verdict == "fail" and resid.verdict == "fail"


def test_a_model_outside_the_supported_configs_is_refused_in_one_line():
    from litgpt.config import Config
    from litgpt.model import GPT
    model = GPT(Config(n_embd=64, n_layer=1, n_head=4, vocab_size=256, padded_vocab_size=256, block_size=32))
    with pytest.raises(ValueError, match=r"litgpt config .* differs from the supported Llama-style GPT"):
        parametrize(model, BASE, lr=1e-3)


def test_the_libraries_own_configs_are_parametrized():
    """torchtitan's own debugmodel flavour (built on meta, then init_states, as its trainer does; flex attention, a
    3n MLP) and a litgpt Llama-3.2 config shrunk by overrides: every parameter lands in a group."""
    import torchtitan.models.llama3 as titan
    from litgpt.config import Config
    from litgpt.model import GPT
    with torch.device("meta"):
        flavour = titan.model_registry("debugmodel").model.build()
    flavour.to_empty(device="cpu")
    flavour.init_states()
    llama = GPT(Config.from_name("Llama-3.2-1B", n_layer=2, n_embd=256, n_head=8, n_query_groups=2, head_size=32,
                                 intermediate_size=1024, padded_vocab_size=512, vocab_size=512))
    for model in (flavour, llama):
        groups = parametrize(model, base={"n": 128, "L": 2, "r": 1}, lr=1e-3)
        assert sum(p.numel() for g in groups for p in g["params"]) == sum(p.numel() for p in model.parameters())
