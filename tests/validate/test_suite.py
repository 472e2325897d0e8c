"""The evidence campaign and the calibration, in miniature on the CPU (the slice CI runs)."""
import json

import pytest

from mup_derive.validate.calibrate import calibrate, wilson_upper
from tests.helpers import cli


def test_smoke_suite_gives_every_expected_verdict(tmp_path):
    res = cli("suite", "smoke", "--out", tmp_path)
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    verdicts = {r["what"]: r["result"] for r in summary["results"]}
    assert verdicts["coordinate check, mup"] == "pass" and verdicts["coordinate check, sp"] == "fail"
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
    report = calibrate("smoke", seed_sets=2, echo=lambda *_: None,
                       done=lambda r: seen.append([(len(c.verdicts), c.mup_fail["width"].runs) for c in r.cells]))
    assert seen == [[(1, 1)], [(2, 2)]]
    (cell,) = report.cells
    assert all(r.count == 0 for r in cell.control_pass.values()), cell.control_pass
    assert all(r.count == 0 for r in cell.mup_fail.values()), cell.mup_fail
    assert [v["seed_offset"] for v in cell.verdicts] == [0, 1000]
    assert all(v["control attn-sqrt-d"] == "fail" and v["mup width"] != "fail" for v in cell.verdicts)


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
