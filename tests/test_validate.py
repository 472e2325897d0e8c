"""Coordinate checks and sweeps on real training steps (CPU, small sizes).

The coordinate check must be able to fail: at its default settings μP passes, while SP and
every negative control (one μP rule deliberately broken) fail on the axis they break."""
import json
import math

import pytest
import torch
from click.testing import CliRunner

from mup_derive.cli import main
from mup_derive.validate.coord_check import CheckError, run_coord_check
from mup_derive.validate.data import MarkovTask, batches
from mup_derive.validate.defaults import DEFAULTS
from mup_derive.validate.sweep import best_lr, run_sweep, wd_scale
from mup_derive.validate.target import gqa_target, resolve
from mup_derive.validate.train import Diverged, build, optimizer, train

from conftest import GENERATED, GQA, ROOT, fails_cleanly

AXES = {"width": DEFAULTS["widths"], "ratio": DEFAULTS["ratios"], "depth": DEFAULTS["depths"]}
QUIET = dict(echo=lambda *_: None)


def check(module, parametrization="mup", axes=tuple(AXES), **kw):
    target = gqa_target(module, parametrization, batch=DEFAULTS["batch"], seq=DEFAULTS["seq"])
    return run_coord_check(target, {a: AXES[a] for a in axes}, **QUIET, **kw)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    out = tmp_path_factory.mktemp("cc")
    return {p: check(GENERATED, p, out_dir=str(out), command=f"test {p}") for p in ("mup", "sp")}, out


def test_mup_passes_every_axis_and_step(reports):
    mup = reports[0]["mup"]
    assert mup["passed"], [(a, l) for a, r in mup["axes"].items() for l, v in r["labels"].items() if not v["passed"]]
    width = mup["axes"]["width"]["labels"]
    assert {"embedding", "q", "k", "v", "o", "mlp_up", "mlp_down", "attn_norm", "final_norm", "unembedding",
            "attn_logits", "residual"} <= set(width)             # every governed module, probes and the stream
    for label in ("q", "mlp_up", "unembedding"):                    # own updates Θ(1): slope ~ 0 at every step
        assert all(abs(s) < 0.25 for s in width[label]["metrics"]["dwx"]["slope"][1:]), label
    # μP's output logits and q.k/d at init shrink like fan_in^-1/2 (measured, not assumed)
    assert width["unembedding"]["metrics"]["rms"]["slope"][0] == pytest.approx(-0.5, abs=0.1)
    assert width["attn_logits"]["metrics"]["rms"]["slope"][0] == pytest.approx(-0.5, abs=0.1)


def test_sp_fails(reports):
    sp = reports[0]["sp"]
    assert not sp["passed"]
    width = sp["axes"]["width"]["labels"]
    assert width["q"]["metrics"]["dwx"]["slope"][1] > 0.75 and not width["q"]["passed"]   # LR not scaled: ~ n
    assert not width["attn_logits"]["passed"] and not width["unembedding"]["passed"]
    assert not sp["axes"]["depth"]["labels"]["residual"]["passed"]  # no residual multiplier: grows with L


@pytest.mark.parametrize("control,axis,label", [
    ("hidden-lr-unscaled", "width", "q"), ("attn-sqrt-d", "width", "attn_logits"),
    ("no-output-mult", "width", "unembedding"), ("kv-lr-r", "ratio", "k"), ("no-residual-mult", "depth", "residual")])
def test_negative_controls_fail(control, axis, label):
    """Same defaults as the passing μP check; only one rule is broken."""
    rep = check(GENERATED, axes=(axis,), control=control)
    assert not rep["passed"] and not rep["axes"][axis]["labels"][label]["passed"]


def test_gqa_mup_f_half_sqrt_fails_ratio_axis(tmp_path):
    """GQA-μP's published f(r) = (1+sqrt r)/2 drives K and V's own updates up with r (slope ~ +0.3);
    the default f = 1 keeps them Θ(1)."""
    spectral = tmp_path / "spectral.py"
    CliRunner().invoke(main, ["generate", str(GQA), "-o", str(spectral), "--update-target", "spectral"],
                       catch_exceptions=False)
    rep = check(spectral, axes=("ratio",))
    k = rep["axes"]["ratio"]["labels"]["k"]["metrics"]["dwx"]
    assert not rep["passed"] and k["ci"][1][0] > 0.25
    assert math.log((1 + 8 ** 0.5) / 2) / math.log(8) == pytest.approx(k["slope"][1], abs=0.08)


def test_any_module_mlp_target():
    """A plain nn.Sequential with rules-only generated code: μP passes, SP fails."""
    spec = f"{ROOT / 'examples' / 'mlp_target.py'}:target"
    mup = run_coord_check(resolve(spec, "mup"), {"width": AXES["width"]}, **QUIET)
    sp = run_coord_check(resolve(spec, "sp"), {"width": AXES["width"]}, **QUIET)
    assert mup["passed"] and not sp["passed"]
    assert set(mup["axes"]["width"]["labels"]) == {"input", "hidden", "output"}


def test_report_json_png_command(reports):
    out = reports[1]
    data = json.loads((out / "coord_check_gqa_transformer_mup.json").read_text())
    assert data["command"] == "test mup" and data["axes"]["width"]["values"] == AXES["width"]
    ci = data["axes"]["width"]["labels"]["q"]["metrics"]["dwx"]["ci"]
    assert len(ci) == DEFAULTS["steps"] + 1 and all(lo <= hi for lo, hi in ci)
    assert (out / "coord_check_gqa_transformer_sp.png").stat().st_size > 10_000
    assert not list(out.glob(".*"))                                  # no temporary files left


def test_model_not_of_the_declaration():
    target = gqa_target(GENERATED)
    from dataclasses import replace
    bad = replace(target, make=lambda shape, rules: torch.nn.Linear(4, 4))
    with pytest.raises(CheckError, match="governed by no declared op"):
        run_coord_check(bad, {"width": [64, 128]}, **QUIET)


def test_divergence_is_reported_not_raised(tmp_path):
    lines = []
    rep = run_sweep(gqa_target(GENERATED, batch=4, seq=16), "width", [64], lrs=[1e-2, 1e30], wds=[0.0],
                    shape=dict(n=64, L=2, r=1), steps=8, out_dir=str(tmp_path), echo=lines.append)
    losses = rep["runs"][0]["losses"]
    assert losses[0] is not None and math.isfinite(losses[0]) and losses[1] is None
    assert any("diverged" in line for line in lines)
    assert rep["runs"][0]["best_lr"] == pytest.approx(1e-2)


def test_train_raises_diverged_on_nan():
    target = gqa_target(GENERATED, batch=2, seq=8)
    shape = dict(n=64, L=2, r=1)
    model = build(target, shape, 0)
    with torch.no_grad():
        model.lm_head.weight.fill_(float("nan"))
    with pytest.raises(Diverged):
        train(target, model, optimizer(target, model, shape, 1e-2), batches(target.sample, 2, 0))


def test_best_lr_parabola():
    assert best_lr([1, 2, 4], [1.0, 0.5, 1.0]) == pytest.approx(2.0)
    assert best_lr([1, 2, 4], [float("inf")] * 3) is None


def test_wd_scale_interpolates_the_penalty_crossing():
    assert wd_scale([0, 1, 4], [2.0, 2.01, 2.09], 0.05) == pytest.approx(2.0)        # log: 1 * 4 ** 0.5
    assert wd_scale([0, 2], [2.0, 2.1], 0.05) == pytest.approx(1.0)                  # linear from 0
    assert wd_scale([0, 1], [2.0, float("inf")], 0.05) == 1                          # diverged
    assert wd_scale([0, 1, 4], [2.0, 2.01, 2.02], 0.05) is None                      # never reached


@pytest.mark.parametrize("args,message", [
    (["--wds", "1,0"], "ascending"), (["--wd-penalty", "0"], "--wd-penalty"),
    (["--control", "wd-unscaled", "--parametrization", "sp"], "broken muP variant")])
def test_cli_sweep_errors(args, message):
    res = CliRunner().invoke(main, ["sweep", str(GENERATED), "--values", "64", "--steps", "1", *args])
    assert fails_cleanly(res, message)


def test_lr_transfer_across_group_ratio(tmp_path):
    """The consequence of f(r) in training: the stored-tensor form (r+sqrt r)/2 over-drives K and V
    as r grows (its optimal base LR drifts and r = 8 loses); the default f = 1 does not."""
    stored = tmp_path / "stored.py"
    CliRunner().invoke(main, ["generate", str(GQA), "-o", str(stored), "--update-space", "stored",
                              "--update-target", "spectral"], catch_exceptions=False)
    kw = dict(lrs=[1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2], wds=[0.0], shape=dict(n=64, L=2, r=1), steps=60, **QUIET)
    default = run_sweep(gqa_target(GENERATED, batch=8, seq=32), "ratio", [1, 2, 4, 8], **kw)
    sto = run_sweep(gqa_target(stored, batch=8, seq=32), "ratio", [1, 2, 4, 8], **kw)
    assert all(r["best_loss"] < math.log(256) - 2.0 for r in default["runs"])     # it learned
    assert default["shift_log2"] < sto["shift_log2"]
    assert default["runs"][-1]["best_loss"] < sto["runs"][-1]["best_loss"]        # r = 8


def test_wd_transfer_needs_eta_lambda_constant():
    """Decay long enough to matter (eta*lambda*steps up to ~3): with eta*lambda held constant the WD
    scale (loss +0.05 nats) stays put from width 32 to 128; the wd-unscaled control quarters the hidden
    weights' eta*lambda there, so its scale should grow 2 octaves.  Each is judged against the midpoint."""
    kw = dict(lrs=[2e-3], wds=[0, 1, 2, 4, 8, 16], shape=dict(n=64, L=2, r=1), steps=100, seeds=2, **QUIET)
    target = gqa_target(GENERATED, batch=8, seq=64)
    mup = run_sweep(target, "width", [32, 128], **kw)
    unscaled = run_sweep(target, "width", [32, 128], control="wd-unscaled", **kw)
    growth = {name: math.log2(rep["wd_scale"]["mean_curve"][1] / rep["wd_scale"]["mean_curve"][0])
              for name, rep in (("mup", mup), ("unscaled", unscaled))}
    assert abs(growth["mup"]) < 1.0 < growth["unscaled"], growth
    assert mup["runs"][0]["losses"] == unscaled["runs"][0]["losses"]          # wd = 0: the same runs


@pytest.mark.parametrize("args,message", [
    (["--widths", "64"], "at least two distinct"), (["--widths", "0,64"], "not a positive"),
    (["--widths", ",,"], "at least one value"), (["--steps", "0"], "--steps"), (["--seeds", "1"], "--seeds"),
    (["--lr", "nan"], "not a positive finite"), (["--lr", "-1"], "not a positive finite"),
    (["--out", "README.md"], "not a directory"), (["--axes", "height"], "--axes"),
    (["--control", "kv-lr-r", "--parametrization", "sp"], "--control"), (["--control", "wd-unscaled"], "--control")])
def test_cli_coord_check_errors(args, message):
    res = CliRunner().invoke(main, ["coord-check", str(GENERATED), *args])
    assert fails_cleanly(res, message)


@pytest.mark.parametrize("target,message", [
    ("generated/mlp.py", "not a generated module with a GQA model"), ("nope.py", "no file"),
    ("examples/mlp_target.py:nothing", "defines no function"), ("examples/mlp_target.py:RULES", "no function")])
def test_cli_bad_targets(target, message):
    res = CliRunner().invoke(main, ["coord-check", str(ROOT / target), "--widths", "64,128"])
    assert fails_cleanly(res, message)


def test_cli_cuda_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    res = CliRunner().invoke(main, ["sweep", str(GENERATED), "--device", "cuda"])
    assert fails_cleanly(res, "CUDA is not available")


def test_cli_coord_check_and_sweep_on_text(tmp_path):
    run = CliRunner().invoke
    res = run(main, ["coord-check", str(GENERATED), "--widths", "64,128", "--axes", "width", "--steps", "2",
                     "--seeds", "2", "--parametrization", "sp", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output          # SP failing the check is expected, not an error
    assert "[sp] coordinate check FAILED" in res.output
    rep = json.loads((tmp_path / "coord_check_gqa_transformer_sp.json").read_text())
    assert rep["command"].startswith("mup-derive coord-check ") and "--widths 64,128" in rep["command"]
    res = run(main, ["sweep", str(GENERATED), "--axis", "width", "--values", "64", "--lrs", "1e-3,4e-3",
                     "--steps", "3", "--batch", "2", "--seq", "16", "--text", str(ROOT / "README.md"),
                     "--out", str(tmp_path), "--name", "text"])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "text.json").read_text())
    assert "--text" in rep["command"] and all(math.isfinite(l) for l in rep["runs"][0]["losses"])


def test_parallel_sweep_matches_sequential():
    """A process pool rebuilds the target in each worker and gives the same numbers, with a clean
    error for Ray where it is not installed."""
    target = resolve(str(GENERATED), "mup", batch=2, seq=16)
    kw = dict(axis="width", values=[64, 128], lrs=[1e-3, 4e-3], wds=[0.0], shape=dict(n=64, L=2, r=1), steps=4,
              seeds=2, **QUIET)
    local = run_sweep(target, **kw)
    pooled = run_sweep(target, runner="processes", workers=2, **kw)
    assert [r["seed_losses"] for r in pooled["runs"]] == [r["seed_losses"] for r in local["runs"]]
    try:
        import ray  # noqa: F401
    except ImportError:
        res = CliRunner().invoke(main, ["sweep", str(GENERATED), "--runner", "ray", "--values", "64", "--steps", "1"])
        assert fails_cleanly(res, "pip install 'mup-derive[ray]'")
