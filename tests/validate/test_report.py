"""Reports: standard JSON (null plus a flag for non-finite numbers), tidy CSV, all files together."""
import csv
import json
import math

from mup_derive.validate import SweepGrid, gqa_target, run_sweep
from mup_derive.validate.report import finite
from tests.helpers import GENERATED, quiet


def test_non_finite_numbers_become_null_with_their_place_listed():
    clean, where = finite({"a": [1.0, math.inf], "b": {"c": math.nan}, "d": "x"})
    assert clean == {"a": [1.0, None], "b": {"c": None}, "d": "x"} and where == ["a[1]", "b.c"]


def test_a_diverged_sweep_writes_standard_json_and_a_tidy_csv(tmp_path):
    grid = SweepGrid(axis="width", values=(64,), lrs=(1e30,), shape={"n": 64, "L": 2, "r": 1}, steps=2)
    rep = run_sweep(gqa_target(GENERATED, batch=2, seq=8), grid, out_dir=str(tmp_path), name="div", echo=quiet)
    assert rep.runs[0].best_lr is None and rep.shift_log2 is None
    data = json.loads((tmp_path / "div.json").read_text(), parse_constant=lambda c: pytest_fail(c))
    assert data["runs"][0]["best_loss"] is None and "runs[0].best_loss" in data["non_finite"]
    rows = list(csv.DictReader((tmp_path / "div.csv").open()))
    assert rows == [{"axis": "width", "value": "64", "wd": "0.0", "lr": "1e+30", "seed": "0", "steps": "2",
                     "loss": ""}]


def pytest_fail(constant):
    raise AssertionError(f"non-standard JSON constant {constant}")


def test_coordinate_check_csv_has_one_row_per_seed_step_layer_and_metric(tmp_path):
    from mup_derive.validate import CheckSettings, run_coord_check
    s = CheckSettings(widths=(64, 128), steps=1, seeds=2, max_seeds=2, seed_offset=7)
    run_coord_check(gqa_target(GENERATED, batch=2, seq=8), ["width"], s, out_dir=str(tmp_path), echo=quiet)
    rows = list(csv.DictReader((tmp_path / "coord_check_gqa_transformer_mup.csv").open()))
    q = [r for r in rows if r["layer"] == "q" and r["metric"] == "dwx"]
    assert len(q) == 2 * 2 * 2 and {r["seed"] for r in q} == {"7", "8"}     # widths x seeds x steps
    assert all(float(r["measured"]) >= 0 for r in rows)


def test_a_check_gives_its_measurements_as_a_dataframe(tmp_path):
    from mup_derive.validate import CheckSettings, run_coord_check
    s = CheckSettings(widths=(64, 128), steps=1, seeds=2, max_seeds=2)
    frame = run_coord_check(gqa_target(GENERATED, batch=2, seq=8), ["width"], s, echo=quiet).frame()
    assert list(frame.columns) == ["axis", "value", "seed", "step", "layer", "metric", "measured"]
    assert set(frame["layer"]) >= {"q", "k", "v", "attn_logits", "residual"} and len(frame) > 100
