"""The evidence campaign in one call: coordinate checks (μP, SP, every control), LR-transfer sweeps
across width (μP and SP: optimum shift and transfer regret) and the GQA f(r) comparison.

``smoke`` runs it in miniature on the CPU (CI); ``gpu`` at real widths on CUDA (coordinate checks at
widths 256-4096, r = 1-16, L = 2-32; LR transfer 256 -> 2048 on a text file; f(r) with 4 seeds).
Every report lands in the output folder with the command line that reproduces it, and a summary
(JSON and Markdown) lists each result beside its command.
"""
from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import write_text
from ..derive.settings import Settings
from .controls import CONTROLS, exposed_by
from .coord_check import run_coord_check
from .settings import AXES, CheckSettings, SweepGrid
from .sweep import run_sweep
from .target import gqa_target
from .variants import gqa_variant

Echo = Callable[[str], object]
F_VARIANTS = {"1": ("effective", "rank-adjusted"), "(1+sqrt r)/2": ("effective", "spectral"),
              "(r+sqrt r)/2": ("stored", "spectral")}


@dataclass(frozen=True)
class Profile:
    heads: int
    check: CheckSettings
    sweep: SweepGrid
    f_grid: SweepGrid
    batch: int
    seq: int
    device: str


PROFILES = {
    "smoke": Profile(heads=8, batch=8, seq=32, device="cpu",
                     check=CheckSettings(),                      # the default check
                     sweep=SweepGrid(axis="width", values=(64, 128, 256), lrs=(1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2),
                                     steps=60, seeds=2, shape={"n": 64, "L": 2, "r": 1}),
                     f_grid=SweepGrid(axis="ratio", values=(1, 2, 4, 8), lrs=(1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2),
                                      steps=60, seeds=2, shape={"n": 64, "L": 2, "r": 1})),
    "gpu": Profile(heads=32, batch=16, seq=128, device="cuda",
                   check=CheckSettings(widths=(256, 512, 1024, 2048, 4096), ratios=(1, 2, 4, 8, 16),
                                       depths=(2, 4, 8, 16, 32), steps=4, batch=8, seq=64),
                   sweep=SweepGrid(axis="width", values=(256, 512, 1024, 2048),
                                   lrs=tuple(2.0 ** -k for k in range(12, 5, -1)), steps=400, seeds=2,
                                   shape={"n": 256, "L": 4, "r": 1}),
                   f_grid=SweepGrid(axis="ratio", values=(1, 2, 4, 8, 16),
                                    lrs=tuple(2.0 ** -k for k in range(12, 6, -1)), steps=400, seeds=4,
                                    shape={"n": 1024, "L": 4, "r": 1})),
}


def _cmd(*parts: object) -> str:
    return " ".join(shlex.quote(str(p)) for p in ("mup-derive", *parts))


def run_suite(profile: str, out_dir: str | Path, text: str | None = None, device: str | None = None,
              echo: Echo = print) -> dict[str, Any]:
    """Run the campaign of ``profile`` into ``out_dir``; returns the summary it also writes."""
    p = PROFILES[profile]
    device = device or p.device
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start, rows = time.perf_counter(), []
    module = gqa_variant(out, Settings(), p.heads)
    target = {par: gqa_target(module, par, text=text, batch=p.check.batch, seq=p.check.seq) for par in ("mup", "sp")}
    check_flags = ["--widths", ",".join(map(str, p.check.widths)), "--ratios", ",".join(map(str, p.check.ratios)),
                   "--depths", ",".join(map(str, p.check.depths)), "--steps", p.check.steps, "--device", device,
                   "--out", out]
    for par in ("mup", "sp"):
        rep = run_coord_check(target[par], tuple(AXES), p.check, device=device, out_dir=str(out), echo=echo,
                              command=_cmd("coord-check", module, "--parametrization", par, *check_flags))
        rows.append({"what": f"coordinate check, {par}", "result": rep.verdict, "expected": "pass" if par == "mup"
                     else "fail", "command": rep.command})
    for c in exposed_by("coord-check"):
        axis = CONTROLS[c].axis
        rep = run_coord_check(target["mup"], (axis,), p.check, device=device, out_dir=str(out), control=c, echo=echo,
                              command=_cmd("coord-check", module, "--control", c, "--axes", axis, *check_flags))
        rows.append({"what": f"control {c} ({axis})", "result": rep.verdict, "expected": "fail",
                     "command": rep.command})
    rows += _transfer(p, module, out, text, device, echo)
    rows += _f_of_r(p, out, text, device, echo)
    summary = {"profile": profile, "device": device, "seconds": round(time.perf_counter() - start, 1),
               "text": text, "results": rows}
    write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    write_text(out / "summary.md", _markdown(summary))
    return summary


def _grid_flags(g: SweepGrid) -> list[object]:
    return ["--axis", g.axis, "--values", ",".join(map(str, g.values)), "--lrs", ",".join(f"{x:g}" for x in g.lrs),
            "--width", g.shape["n"], "--depth", g.shape["L"], "--ratio", g.shape["r"], "--steps", g.steps,
            "--seeds", g.seeds]


def _transfer(p: Profile, module: Path, out: Path, text: str | None, device: str, echo: Echo) -> list[dict[str, Any]]:
    rows = []
    for par in ("mup", "sp"):
        name = f"suite_transfer_width_{par}"
        target = gqa_target(module, par, text=text, batch=p.batch, seq=p.seq)
        rep = run_sweep(target, p.sweep, device=device, out_dir=str(out), name=name, echo=echo,
                        command=_cmd("sweep", module, "--parametrization", par, *_grid_flags(p.sweep),
                                     *(["--text", text] if text else []), "--batch", p.batch, "--seq", p.seq,
                                     "--device", device, "--out", out, "--name", name))
        rows.append({"what": f"LR transfer across width, {par}", "result":
                     f"shift {_num(rep.shift_log2)} octaves, regret {_num(rep.transfer_regret)} nats",
                     "expected": "small shift and regret" if par == "mup" else "larger", "command": rep.command})
    return rows


def _f_of_r(p: Profile, out: Path, text: str | None, device: str, echo: Echo) -> list[dict[str, Any]]:
    rows = []
    for label, (space, target_norm) in F_VARIANTS.items():
        module = gqa_variant(out, Settings(update_space=space, update_target=target_norm), p.heads)
        name = f"suite_f_{space}_{target_norm}"
        rep = run_sweep(gqa_target(module, "mup", text=text, batch=p.batch, seq=p.seq), p.f_grid, device=device,
                        out_dir=str(out), name=name, echo=echo,
                        command=_cmd("sweep", module, *_grid_flags(p.f_grid), *(["--text", text] if text else []),
                                     "--batch", p.batch, "--seq", p.seq, "--device", device, "--out", out,
                                     "--name", name))
        best = ", ".join(f"{r.best_loss:.4f}" for r in rep.runs)
        rows.append({"what": f"K/V LR f(r) = {label} across r", "result": f"shift {_num(rep.shift_log2)} octaves; "
                     f"best loss per r {best}", "expected": "compare", "command": rep.command})
    return rows


def _num(x: float | None) -> str:
    return "undefined" if x is None else f"{x:.3f}"


def _markdown(summary: dict[str, Any]) -> str:
    lines = [f"# Evidence suite `{summary['profile']}` on {summary['device']} ({summary['seconds']} s)", "",
             "| what | result | expected | command |", "|---|---|---|---|"]
    lines += [f"| {r['what']} | {r['result']} | {r['expected']} | `{r['command']}` |" for r in summary["results"]]
    return "\n".join(lines) + "\n"

