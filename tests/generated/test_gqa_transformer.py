"""The checked-in generated GQA module: init stds and param groups follow the table; checkpoints, compile, peers."""
import io
import math
import tokenize

import pytest
import torch

from mup_derive.validate.rules import load_rules
from tests.helpers import GENERATED

GEN = load_rules(GENERATED)


def _std(model, name):
    return dict(model.named_parameters())[name].std().item()


@pytest.mark.parametrize("ratio", [1, 4])
def test_init_std_exponents_measured(gen, ratio):
    """std(n) / std(n0) on real tensors matches n^exponent from the table."""
    torch.manual_seed(0)
    small = gen.GQATransformer(width=128, depth=2, ratio=ratio)
    big = gen.GQATransformer(width=1024, depth=2, ratio=ratio)
    expect = {"blocks.0.attn.q.weight": -0.5, "blocks.0.attn.k.weight": -0.5, "blocks.0.attn.v.weight": -0.5,
              "blocks.0.mlp.up.weight": -0.5, "blocks.0.mlp.down.weight": -0.5,
              "lm_head.weight": -1.0, "tok_emb.weight": 0.0}
    for name, exponent in expect.items():
        measured = math.log(_std(big, name) / _std(small, name)) / math.log(1024 / 128)
        assert measured == pytest.approx(exponent, abs=0.02), name
    assert torch.all(big.blocks[0].attn_norm.weight == 1)
    # K, V keep the hidden init whatever the group ratio (GQA-μP)
    assert _std(big, "blocks.0.attn.k.weight") == pytest.approx(_std(big, "blocks.0.attn.q.weight"), rel=0.05)


def test_param_groups_carry_derived_lr_wd_eps(gen):
    base = gen.GQATransformer(width=128, depth=2, ratio=1)
    model = gen.GQATransformer(width=512, depth=8, ratio=4)
    groups = {g["name"]: g for g in gen.param_groups(model, lr=1e-2, weight_decay=0.1, eps=1e-8)}
    assert groups["q"]["lr"] == pytest.approx(1e-2 * 128 / 512)                    # n^-1 L^0 (CompleteP)
    assert groups["k"]["lr"] == pytest.approx(1e-2 * 128 / 512)                   # f(r)/n, default f = 1
    assert groups["k"]["weight_decay"] == pytest.approx(0.1 * 512 / 128)          # n / f(r)
    assert groups["o"]["eps"] == pytest.approx(1e-8 * (128 / 512) * (2 / 8))      # n^-1 L^-1
    assert groups["q"]["eps"] == pytest.approx(1e-8 * (128 / 512) ** 1.5 * (2 / 8))   # an operand of q.k/d
    assert groups["embedding"]["lr"] == pytest.approx(1e-2)
    assert groups["unembedding"]["lr"] == pytest.approx(1e-2 * 128 / 512)
    assert groups["attn_norm"]["weight_decay"] == 0.0
    assert model.multipliers["residual"] == pytest.approx(2 / 8)
    assert model.multipliers["attn_logits"] == pytest.approx(base.multipliers["attn_logits"] * 128 / 512)
    n_params = sum(p.numel() for g in groups.values() for p in g["params"])
    assert n_params == sum(p.numel() for p in model.parameters())


def test_state_dict_roundtrip(gen, tmp_path):
    torch.manual_seed(0)
    model = gen.GQATransformer(width=64, depth=2, ratio=2)
    x = torch.randint(0, 256, (2, 16))
    torch.save(model.state_dict(), tmp_path / "m.pt")
    other = gen.GQATransformer(width=64, depth=2, ratio=2)
    other.load_state_dict(torch.load(tmp_path / "m.pt"))
    assert torch.equal(model(x), other(x))


def test_compiles_forward_and_backward(gen):
    torch.manual_seed(0)
    model = gen.GQATransformer(width=64, depth=2, ratio=2)
    x = torch.randint(0, 256, (2, 16))
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)   # traces forward and backward
    logits, loss = compiled(x[:, :-1], x[:, 1:])
    loss.backward()
    assert torch.allclose(logits, model(x[:, :-1]), atol=1e-5)
    assert model.blocks[0].attn.k.weight.grad is not None


def test_mup_peer_agrees_at_r1(gen):
    """Effective per-parameter Adam LR and init scale match the PyPI `mup` package's rules."""
    mup = pytest.importorskip("mup")
    base, delta = gen.GQATransformer(width=64, depth=2), gen.GQATransformer(width=128, depth=2)
    model = gen.GQATransformer(width=512, depth=2)
    mup.set_base_shapes(model, base, delta=delta, rescale_params=False, do_assert=False)
    mup_groups = mup.MuAdam(model.parameters(), lr=1.0).param_groups
    mup_lr = {id(p): g["lr"] for g in mup_groups for p in g["params"]}
    ours = {id(p): g["lr"] for g in gen.param_groups(model, lr=1.0, optimizer="adam") for p in g["params"]}
    base_groups = {g["name"]: g["lr"] for g in gen.param_groups(base, lr=1.0, optimizer="adam")}
    readout = "lm_head.weight"
    width_mult = 512 / 64
    for name, p in model.named_parameters():
        op = gen.op_of(name)
        # mup puts the output layer's 1/width into MuReadout's multiplier; compare effective mult*lr
        mup_eff = mup_lr[id(p)] / (width_mult if name == readout else 1.0)
        ours_eff = ours[id(p)] / base_groups[op] * model.multipliers[op] / base.multipliers[op]
        assert ours_eff == pytest.approx(mup_eff, rel=1e-6), name
        # init: mup.init scales matrix-like stds by width_mult^-1/2, MuReadout by 1/width_mult
        if p.dim() == 2:
            mup_std = width_mult ** -0.5 if p.infshape.ninf() == 2 else (1 / width_mult if name == readout else 1.0)
            ours_std = gen.ratio(op, "init_std", model.shape) / gen.ratio(op, "init_std", base.shape)
            assert ours_std * model.multipliers[op] / base.multipliers[op] == pytest.approx(mup_std), name
    assert model.multipliers["attn_logits"] / base.multipliers["attn_logits"] == pytest.approx(1 / width_mult)


def test_assert_shapes_names_the_mismatched_parameter(gen):
    model = gen.GQATransformer(width=64, depth=2, ratio=2)
    gen.assert_shapes(model)
    with pytest.raises(ValueError, match=r"blocks.0.attn.k.weight \(op 'k'\) has shape \(32, 64\), declared \(16, 64\)"):
        gen.assert_shapes(model, shape={"n": 64, "L": 2, "r": 4})


def test_param_groups_name_an_ungoverned_parameter(gen):
    model = gen.GQATransformer(width=64, depth=2, ratio=2)
    extra = torch.nn.Module()
    extra.add_module("net", model)
    with pytest.raises(ValueError, match="net.tok_emb.weight is governed by no declared op"):
        gen.param_groups(extra, lr=1e-3, shape=model.shape)


@pytest.mark.parametrize("other", [dict(parametrization="sp"), dict(depth=4)])
def test_checkpoint_of_another_parametrization_is_refused(gen, other):
    mup = gen.GQATransformer(width=64, depth=2)
    assert "mup_signature" in mup.state_dict()
    with pytest.raises(RuntimeError, match="another parametrization"):
        gen.GQATransformer(**{"width": 64, "depth": 2, **other}).load_state_dict(mup.state_dict(), strict=False)


def test_checkpoint_of_the_same_parametrization_loads(gen):
    gen.GQATransformer(width=64, depth=2).load_state_dict(gen.GQATransformer(width=64, depth=2).state_dict())


def test_plain_adam_with_weight_decay_is_refused(gen):
    model = gen.GQATransformer(width=64, depth=2)
    with pytest.raises(ValueError, match="use optimizer='adamw'"):
        gen.param_groups(model, lr=1e-3, weight_decay=0.1, optimizer="adam")
    assert gen.param_groups(model, lr=1e-3, optimizer="adam")


def test_rules_change_with_the_shape(gen):
    """The module lists only the rules that change with the shape (a constant rule is left out)."""
    base = gen.BASE_SHAPE
    moved = [{**base, k: 2 * v} for k, v in base.items()]                 # each symbol doubled on its own
    for p, table in gen.RULES.items():
        for op, rules in table.items():
            for key, rule in rules.items():
                assert any(rule(**m) != rule(**base) for m in moved), (p, op, key)


def _rule_keys_and_comments():
    """(line, key) of every rule in RULES (a string key whose value is a lambda) and {line: comment}."""
    comments, keys = {}, []
    tokens = list(tokenize.generate_tokens(io.StringIO(GENERATED.read_text()).readline))
    start = next(t.start[0] for t in tokens if t.type == tokenize.NAME and t.string == "RULES")
    for tok, colon, value in zip(tokens, tokens[1:], tokens[2:]):
        if tok.start[0] < start:
            continue
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string
        elif tok.type == tokenize.STRING and colon.string == ":" and value.string == "lambda":
            keys.append((tok.start[0], tok.string.strip('"')))
    return keys, comments


def test_every_rule_sits_under_its_reason():
    """Each rule in RULES is preceded by a comment that states the condition it solves."""
    keys, comments = _rule_keys_and_comments()
    assert len(keys) == sum(len(rules) for table in GEN.RULES.values() for rules in table.values())
    for line, key in keys:
        reason, (quantity, _, optimizer) = comments.get(line - 1, ""), key.partition("_")
        if quantity in ("lr", "wd"):
            assert reason.startswith((f"# {optimizer}: ", "# SP: ")), key
        else:
            assert reason.startswith("# ") and any(w in reason for w in ("eps", "init", "multiplier", "sum", "residual",
                                                                         "gauge", "LLN", "CLT")), (key, reason)
    adamw = [line for line, key in keys if key == "lr_adamw"]
    assert comments[adamw[0] - 1].startswith("# adamw: ||dA|| = sqrt(fan_out/fan_in)")


def test_a_missing_signature_is_refused_unless_accepted(gen):
    model = gen.GQATransformer(width=64, depth=2)
    unsigned = {k: v for k, v in model.state_dict().items() if k != "mup_signature"}
    with pytest.raises(RuntimeError, match="no mup_signature"):
        gen.GQATransformer(width=64, depth=2).load_state_dict(unsigned, strict=False)
    other = gen.GQATransformer(width=64, depth=2)
    other.accept_unsigned = True
    other.load_state_dict(unsigned, strict=False)


def test_signatures_compare_exactly_and_name_the_difference(gen):
    with pytest.raises(RuntimeError, match="shape L 100 vs 101"):
        gen.GQATransformer(width=64, depth=101).load_state_dict(gen.GQATransformer(width=64, depth=100).state_dict())


@pytest.mark.parametrize("op,key,message", [("qq", "lr_adam", "unknown op"), ("q", "lr_adma", "unknown rule")])
def test_misspelt_ops_and_rules_are_errors(gen, op, key, message):
    with pytest.raises(ValueError, match=message):
        gen.ratio(op, key, gen.BASE_SHAPE)


@pytest.mark.parametrize("kw", [dict(lr=float("nan")), dict(lr=-1.0), dict(lr=1e-3, weight_decay=float("inf")),
                                dict(lr=1e-3, eps=0.0)])
def test_hyperparameters_must_be_finite(gen, kw):
    with pytest.raises(ValueError, match="finite number"):
        gen.param_groups(gen.GQATransformer(width=64, depth=2), **kw)


def test_overlapping_globs_are_an_error(gen, monkeypatch):
    model = gen.GQATransformer(width=64, depth=2)
    monkeypatch.setitem(gen.DECLARED["embedding"], "params", ["tok_emb.weight", "lm_head.weight"])
    with pytest.raises(ValueError, match="matched by the params globs of ops"):
        gen.param_groups(model, lr=1e-3)


def test_an_op_that_governs_nothing_is_an_error(gen, monkeypatch):
    model = gen.GQATransformer(width=64, depth=2)
    monkeypatch.setitem(gen.DECLARED["mlp_norm"], "params", ["nowhere.weight"])
    monkeypatch.setitem(gen.DECLARED["final_norm"], "params", ["final_norm.weight", "blocks.*.mlp_norm.weight"])
    with pytest.raises(ValueError, match="op 'mlp_norm' governs no parameter"):
        gen.assert_shapes(model)
