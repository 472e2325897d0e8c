"""Coordinate checks and sweeps on real training steps (CPU, small sizes)."""
import json
import math

import pytest
import torch

from validate.coord_check import run_coord_check
from validate.data import MarkovTask, batches
from validate.sweep import best_lr, run_sweep
from validate.train import Diverged, build, optimizer, train

from conftest import GENERATED

SHAPES = dict(widths=[64, 128, 256], ratios=[1, 2, 4, 8], depths=[2, 4, 8], steps=5, lr=1e-2, seeds=2)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    out = tmp_path_factory.mktemp("cc")
    quiet = lambda *_: None
    return {p: run_coord_check(str(GENERATED), parametrization=p, out_dir=str(out), echo=quiet, **SHAPES)
            for p in ("mup", "sp")}, out


def test_mup_passes_coord_check(reports):
    mup = reports[0]["mup"]
    assert mup["passed"]
    for axis in ("width", "ratio", "depth"):
        for layer in mup["axes"][axis]["layers"].values():
            assert layer["slope_rms"] <= mup["axes"][axis]["bound"]


def test_sp_fails_coord_check_with_width(reports):
    sp = reports[0]["sp"]
    assert not sp["passed"]
    width = sp["axes"]["width"]["layers"]
    assert width["attn_logits"]["slope_delta"] > 1.0 and not width["attn_logits"]["passed"]
    assert width["residual"]["slope_delta"] > 1.0 and not width["residual"]["passed"]
    assert width["logits"]["slope_delta"] > 0.3   # logits grow with width too
    assert not sp["axes"]["depth"]["passed"]      # no residual multiplier: the stream grows with L


def test_coord_check_writes_report_and_plot(reports):
    out = reports[1]
    data = json.loads((out / "coord_check_gqa_transformer_mup.json").read_text())
    assert data["axes"]["width"]["values"] == [64, 128, 256]
    assert (out / "coord_check_gqa_transformer_sp.png").stat().st_size > 10_000


def test_divergence_is_reported_not_raised(tmp_path):
    lines = []
    rep = run_sweep(str(GENERATED), "width", [64], lrs=[1e-2, 1e30], wds=[0.0], shape=dict(n=64, L=2, r=1),
                    steps=8, batch=4, seq=16, out_dir=str(tmp_path), echo=lines.append)
    losses = rep["runs"][0]["losses"]
    assert losses[0] is not None and math.isfinite(losses[0]) and losses[1] is None
    assert any("diverged" in line for line in lines)
    assert rep["runs"][0]["best_lr"] == pytest.approx(1e-2)


def test_train_raises_diverged_on_nan():
    mod, model = build(str(GENERATED), dict(n=64, L=2, r=1), "mup", 0)
    with torch.no_grad():
        model.lm_head.weight.fill_(float("nan"))
    with pytest.raises(Diverged):
        train(model, optimizer(mod, model, 1e-2), batches(MarkovTask(), 2, 2, 8, 0))


def test_best_lr_parabola():
    assert best_lr([1, 2, 4], [1.0, 0.5, 1.0]) == pytest.approx(2.0)
    assert best_lr([1, 2, 4], [float("inf")] * 3) is None


def test_lr_transfer_across_group_ratio_picks_f(tmp_path):
    """The consequence of f(r): with f = (1+sqrt r)/2 (effective space) the optimal base LR stays
    put across r = 1, 2, 4, 8; with f = (r+sqrt r)/2 (stored space) it drifts down and loss degrades."""
    from click.testing import CliRunner
    from derive.cli import main
    from conftest import GQA
    stored = tmp_path / "stored.py"
    CliRunner().invoke(main, ["generate", str(GQA), "-o", str(stored), "--update-space", "stored"],
                       catch_exceptions=False)
    kw = dict(lrs=[3e-4, 1e-3, 2e-3, 4e-3, 8e-3], wds=[0.0], shape=dict(n=64, L=2, r=1), steps=60, batch=8,
              seq=32, echo=lambda *_: None)
    eff = run_sweep(str(GENERATED), "ratio", [1, 2, 4, 8], **kw)
    sto = run_sweep(str(stored), "ratio", [1, 2, 4, 8], **kw)
    assert all(r["best_loss"] < math.log(256) - 2.0 for r in eff["runs"])     # it learned
    assert eff["shift_log2"] <= 0.5
    assert eff["shift_log2"] < sto["shift_log2"]
    assert eff["runs"][-1]["best_loss"] < sto["runs"][-1]["best_loss"]        # r = 8


def test_cli_coord_check_and_sweep_on_text(tmp_path):
    from click.testing import CliRunner
    from derive.cli import main
    from conftest import ROOT
    run = CliRunner().invoke
    res = run(main, ["coord-check", str(GENERATED), "--widths", "64,128", "--ratios", "1,2", "--depths", "2,4",
                     "--steps", "2", "--seeds", "1", "--parametrization", "sp", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output          # SP failing the check is expected, not an error
    assert "[sp] coordinate check FAILED" in res.output
    assert (tmp_path / "coord_check_gqa_transformer_sp.json").exists()
    res = run(main, ["sweep", str(GENERATED), "--axis", "width", "--values", "64", "--lrs", "1e-3,4e-3",
                     "--steps", "3", "--batch", "2", "--seq", "16", "--text", str(ROOT / "README.md"),
                     "--out", str(tmp_path), "--name", "text"])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "text.json").read_text())
    assert rep["data"].endswith("README.md") and all(math.isfinite(l) for l in rep["runs"][0]["losses"])
