"""The evidence campaign and the calibration, in miniature on the CPU (the slice CI runs)."""
import json
from dataclasses import asdict

import pytest

from mup_derive.validate.calibrate import calibrate, wilson_upper
from tests.helpers import cli, quiet


def test_smoke_suite_gives_every_expected_verdict(tmp_path):
    res = cli("suite", "smoke", "--out", tmp_path)
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    verdicts = {r["what"]: r["result"] for r in summary["results"]}
    assert verdicts["coordinate check, mup"] == "pass" and verdicts["coordinate check, sp"] == "fail"
    commands = {r["what"]: r["command"] for r in summary["results"]}       # each reproduces its check's settings
    assert "--steps 4 --max-seeds 24 --batch 2 --seq 16 --device cpu" in commands["coordinate check, mup"]
    assert all(v == "fail" for k, v in verdicts.items() if k.startswith("control"))
    assert (tmp_path / "suite_transfer_width_mup.csv").exists()
    assert "regret" in verdicts["LR transfer across width, mup"]
    (speed,) = [v for k, v in verdicts.items() if k.startswith("speed-up")]
    assert "same results True" in speed                    # pooled runs give the local numbers
    assert set(summary["usage"]) == {"checks", "controls", "transfer", "fr", "speedup"}
    assert summary["usage"]["checks"]["samples"] == 0 and summary["usage"]["checks"]["seconds"] > 0   # no GPU


def test_suite_parts_run_as_separate_commands(tmp_path):
    res = cli("suite", "smoke", "--only", "speedup", "--out", tmp_path, "--workers", "2")
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "summary_speedup.json").read_text())
    assert [r["what"][:8] for r in summary["results"]] == ["speed-up"] and not (tmp_path / "summary.json").exists()
    bad = cli("suite", "smoke", "--only", "checks,sweeps", "--out", tmp_path)
    assert bad.exit_code == 2 and "--only" in bad.output and "Traceback" not in bad.output
    for flag, message in (("1", "--max-seeds"), ("2", "max_seeds (2) must be at least seeds (3)")):
        bad = cli("suite", "smoke", "--only", "checks", "--max-seeds", flag, "--out", tmp_path / "bad")
        assert bad.exit_code != 0 and message in bad.output and "Traceback" not in bad.output


def test_usage_is_sampled_while_the_block_runs():
    from mup_derive.validate.usage import nvml_reader, sampled
    readings = iter([(10.0, 2 ** 30), (30.0, 3 * 2 ** 30)] + [(20.0, 2 ** 30)] * 1000)
    with sampled(lambda: next(readings), period=0.01) as usage:
        import time
        time.sleep(0.1)
    s = usage.summary()
    assert s["samples"] >= 2 and s["utilisation_peak_pct"] == 30.0 and s["memory_peak_gib"] == 3.0
    assert nvml_reader("cpu") is None


def test_gpu_suite_needs_cuda(tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    res = cli("suite", "gpu", "--out", tmp_path)
    assert res.exit_code != 0 and "CUDA is not available" in res.output and "Traceback" not in res.output


def test_calibration_slice_has_no_false_pass_and_no_false_fail():
    seen = []                                   # what a stopped run would have written after each seed set
    def done(r):
        seen.append([(len(c.verdicts), c.mup_fail["width"].runs) for c in r.cells])
    first = calibrate("smoke", seed_sets=1, echo=quiet, done=done, command="first")
    report = calibrate("smoke", seed_sets=2, echo=quiet, done=done, command="second",
                       resume=json.loads(json.dumps(first.to_dict())))     # continued: only seed set 1 runs
    assert seen == [[(1, 1)], [(2, 2)]] and report.earlier == ["first"]
    (cell,) = report.cells
    assert cell.verdicts[0] == first.cells[0].verdicts[0]
    assert all(r.count == 0 for r in cell.control_pass.values()), cell.control_pass
    assert all(r.count == 0 for r in cell.mup_fail.values()), cell.mup_fail
    assert [v["seed_offset"] for v in cell.verdicts] == [0, 1000]
    assert all(v["control attn-sqrt-d"] == "fail" and v["mup width"] != "fail" for v in cell.verdicts)


def test_calibration_resumes_only_a_report_it_can_continue(tmp_path):
    from mup_derive.validate.calibrate import CalibrationReport, CellResult, cell_settings, profile_cells
    from mup_derive.validate.controls import exposed_by
    (cell,) = profile_cells("smoke", None)
    row = {"seed_set": 0, "seed_offset": 0, **{f"mup {a}": "pass" for a in ("width", "ratio", "depth")},
           **{f"control {c}": "fail" for c in exposed_by("coord-check")}}
    def report(settings=None, rows=(row,), profile="smoke", name=cell.name):
        r = CalibrationReport("earlier", profile, 1, [CellResult(name, settings or cell_settings(cell),
                                                                 verdicts=list(rows))])
        path = tmp_path / f"in{len(list(tmp_path.iterdir()))}" / "calibration_smoke.json"
        path.parent.mkdir()
        path.write_text(json.dumps(asdict(r)))
        return path
    cases = [(report(profile="cpu"), "a cpu calibration, not smoke"),
             (report({**cell_settings(cell), "steps": 10}), "ran with steps 10, this run has 4"),
             (report(rows=[{k: v for k, v in row.items() if k != "control branch-lr-depth"}]),
              "no 'control branch-lr-depth' verdicts"),
             (report(rows=[{**row, "seed_set": 1}]), "seed sets 0, 1, ... in order"),
             (report({**cell_settings(cell), "max_seeds": 48}), "ran with max_seeds 48, this run has 24"),
             (report(name="text bytes"), "holds none of the cells asked for (default); it holds text bytes")]
    for path, said in cases:
        bad = cli("calibrate", "--resume", path, "--out", tmp_path / "out")
        assert bad.exit_code == 1 and said in bad.output and "Traceback" not in bad.output, bad.output
    (tmp_path / "junk.json").write_text("{")
    bad = cli("calibrate", "--resume", tmp_path / "junk.json", "--out", tmp_path / "out")
    assert bad.exit_code == 1 and "cannot read" in bad.output and "Traceback" not in bad.output
    path = report()
    bad = cli("calibrate", "--resume", path, "--out", path.parent)              # would write over its input
    assert bad.exit_code == 1 and "is an input" in bad.output and "--out" in bad.output
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())   # refused before any run
    assert json.loads(path.read_text())["command"] == "earlier"


def test_a_larger_seed_cap_reruns_only_the_inconclusive_verdicts(tmp_path):
    from mup_derive.validate.calibrate import CellResult, cell_settings, profile_cells
    from mup_derive.validate.controls import exposed_by
    (cell,) = profile_cells("smoke", None)
    row = {"seed_set": 0, "seed_offset": 0, "mup width": "inconclusive", "mup ratio": "pass", "mup depth": "pass",
           **{f"control {c}": "fail" for c in exposed_by("coord-check")}}
    earlier = {"command": "earlier", "profile": "smoke",
               "cells": [asdict(CellResult(cell.name, {**cell_settings(cell), "max_seeds": 12}, verdicts=[row]))]}
    report = calibrate("smoke", seed_sets=1, echo=quiet, resume=earlier, command="later")
    (new,) = report.cells[0].verdicts
    assert new["rerun"] == ["mup width"] and new["mup width"] == "pass"      # seed set 0 passes width at 3 seeds
    assert {k: v for k, v in new.items() if k not in ("rerun", "mup width")} == \
        {k: v for k, v in row.items() if k != "mup width"}
    assert report.cells[0].mup_inconclusive["width"].count == 0 and report.cells[0].settings["max_seeds"] == 24


def test_wilson_upper_bound():
    assert wilson_upper(0, 20) == pytest.approx(0.161, abs=0.002)
    assert wilson_upper(0, 60) < 0.061


def test_calibration_runs_the_cells_it_is_given_and_refuses_others(tmp_path):
    from mup_derive.validate.calibrate import profile_cells
    assert [c.key for c in profile_cells("cpu", "LICENSE", ("text", "alpha"))] == ["alpha", "text"]
    assert len(profile_cells("cpu", None)) == 5
    for args, said in ((("--cells", "alpha,bogus"), "no cell 'bogus'"), (("--cells", "text"), "needs --text")):
        bad = cli("calibrate", "--profile", "cpu", *args, "--out", tmp_path)
        assert bad.exit_code == 1 and said in bad.output and "Traceback" not in bad.output
    assert not list(tmp_path.iterdir())            # refused before any run
