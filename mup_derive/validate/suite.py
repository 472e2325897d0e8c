"""The evidence campaign in one call: coordinate checks (μP, SP, every control), LR-transfer sweeps
across width (μP and SP: optimum shift and transfer regret) and the GQA f(r) comparison.

``smoke`` runs it in miniature on the CPU (CI); ``gpu`` at real widths on CUDA (coordinate checks at
widths 256-4096, r = 1-16, L = 2-32; LR transfer 256 -> 2048 on a text file; f(r) with 4 seeds), its
runs spread over worker processes that share the GPU (:mod:`.pool`).  The campaign comes in parts
(:data:`SUITE_PARTS`) that can run as separate commands; each part's GPU utilisation and memory are
sampled (:mod:`.usage`), and the ``speedup`` part times the same runs one at a time and pooled.
Every report lands in the output folder with the command line that reproduces it, and a summary
(JSON and Markdown) lists each result beside its command.
"""
from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from ..atomic import write_text
from ..derive.settings import Settings
from .controls import CONTROLS, exposed_by
from .coord_check import run_coord_check
from .pool import speedup
from .settings import AXES, SUITE_PARTS, CheckSettings, SweepGrid, check_parts
from .sweep import run_one, run_sweep
from .target import Target, resolve
from .usage import nvml_reader, sampled
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
    runner: str = "local"
    workers: int = 0


PROFILES = {
    "smoke": Profile(heads=8, batch=8, seq=32, device="cpu",
                     check=CheckSettings(),                      # the default check
                     sweep=SweepGrid(axis="width", values=(64, 128, 256), lrs=(1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2),
                                     steps=60, seeds=2, shape={"n": 64, "L": 2, "r": 1}),
                     f_grid=SweepGrid(axis="ratio", values=(1, 2, 4, 8), lrs=(1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2),
                                      steps=60, seeds=2, shape={"n": 64, "L": 2, "r": 1})),
    "gpu": Profile(heads=32, batch=16, seq=128, device="cuda", runner="processes", workers=8,
                   check=CheckSettings(widths=(256, 512, 1024, 2048, 4096), ratios=(1, 2, 4, 8, 16),
                                       depths=(2, 4, 8, 16, 32), steps=4, batch=8, seq=64),
                   sweep=SweepGrid(axis="width", values=(256, 512, 1024, 2048),
                                   lrs=tuple(2.0 ** -k for k in range(12, 5, -1)), steps=400, seeds=2,
                                   shape={"n": 256, "L": 4, "r": 1}),
                   f_grid=SweepGrid(axis="ratio", values=(1, 2, 4, 8, 16),
                                    lrs=tuple(2.0 ** -k for k in range(12, 6, -1)), steps=400, seeds=4,
                                    shape={"n": 1024, "L": 4, "r": 1})),
}


@dataclass(frozen=True)
class Run:
    """One suite command's context: where, how its runs are spread, and the flags every command repeats."""

    profile: str
    out: Path
    text: str | None
    device: str
    runner: str
    workers: int
    check: CheckSettings

    @property
    def p(self) -> Profile:
        return PROFILES[self.profile]

    @cached_property
    def module(self) -> Path:
        """The shipped GQA example generated with the default rules and the profile's heads, once per command."""
        return gqa_variant(self.out, Settings(), self.p.heads)

    def flags(self) -> list[object]:
        return ["--device", self.device, "--runner", self.runner, "--workers", self.workers, "--out", self.out]

    def target(self, module: Path, parametrization: str, batch: int, seq: int) -> Target:
        return resolve(str(module), parametrization, text=self.text, batch=batch, seq=seq)


def _cmd(*parts: object) -> str:
    return " ".join(shlex.quote(str(p)) for p in ("mup-derive", *parts))


def run_suite(profile: str, out_dir: str | Path, text: str | None = None, device: str | None = None,
              echo: Echo = print, runner: str | None = None, workers: int | None = None,
              parts: tuple[str, ...] = SUITE_PARTS, max_seeds: int | None = None) -> dict[str, Any]:
    """Run ``parts`` of the campaign of ``profile`` into ``out_dir`` (runs spread by ``runner`` and ``workers``,
    default the profile's; ``max_seeds`` caps the seeds an inconclusive check axis gets, default the check's);
    returns the summary it also writes (``summary.json``, or for some parts ``summary_PART-PART.json``)."""
    parts = check_parts(parts)
    p = PROFILES[profile]
    check = p.check if max_seeds is None else replace(p.check, max_seeds=max_seeds)
    r = Run(profile, Path(out_dir), text, device or p.device, runner or p.runner,
            p.workers if workers is None else workers, check)
    r.out.mkdir(parents=True, exist_ok=True)
    start, rows, usage = time.perf_counter(), [], {}
    read = nvml_reader(r.device)
    for part in (x for x in SUITE_PARTS if x in parts):
        echo(f"[suite] {part}")
        with sampled(read) as used:
            rows += STEPS[part](r, echo)
        usage[part] = used.summary()
    summary = {"profile": profile, "device": r.device, "runner": r.runner, "workers": r.workers,
               "seconds": round(time.perf_counter() - start, 1), "text": text, "usage": usage, "results": rows}
    stem = "summary" if set(parts) == set(SUITE_PARTS) else "summary_" + "-".join(x for x in SUITE_PARTS if x in parts)
    write_text(r.out / f"{stem}.json", json.dumps(summary, indent=1) + "\n")
    write_text(r.out / f"{stem}.md", _markdown(summary))
    summary["files"] = [f"{stem}.json", f"{stem}.md"]
    return summary


def _check_flags(r: Run) -> list[object]:
    c = r.check
    return ["--widths", ",".join(map(str, c.widths)), "--ratios", ",".join(map(str, c.ratios)),
            "--depths", ",".join(map(str, c.depths)), "--steps", c.steps, "--max-seeds", c.max_seeds,
            "--batch", c.batch, "--seq", c.seq, *(["--text", r.text] if r.text else []), *r.flags()]


def _checks(r: Run, echo: Echo) -> list[dict[str, Any]]:
    rows = []
    for par in ("mup", "sp"):
        rep = run_coord_check(r.target(r.module, par, r.check.batch, r.check.seq), tuple(AXES), r.check,
                              device=r.device, out_dir=str(r.out), echo=echo, runner=r.runner, workers=r.workers,
                              command=_cmd("coord-check", r.module, "--parametrization", par, *_check_flags(r)))
        rows.append({"what": f"coordinate check, {par}", "result": rep.verdict, "expected": "pass" if par == "mup"
                     else "fail", "command": rep.command})
    return rows


def _controls(r: Run, echo: Echo) -> list[dict[str, Any]]:
    rows = []
    target = r.target(r.module, "mup", r.check.batch, r.check.seq)
    for c in exposed_by("coord-check"):
        axis = CONTROLS[c].axis
        rep = run_coord_check(target, (axis,), r.check, device=r.device, out_dir=str(r.out), control=c, echo=echo,
                              runner=r.runner, workers=r.workers,
                              command=_cmd("coord-check", r.module, "--control", c, "--axes", axis, *_check_flags(r)))
        rows.append({"what": f"control {c} ({axis})", "result": rep.verdict, "expected": "fail",
                     "command": rep.command})
    return rows


def _grid_flags(g: SweepGrid) -> list[object]:
    return ["--axis", g.axis, "--values", ",".join(map(str, g.values)), "--lrs", ",".join(f"{x:g}" for x in g.lrs),
            "--width", g.shape["n"], "--depth", g.shape["L"], "--ratio", g.shape["r"], "--steps", g.steps,
            "--seeds", g.seeds]


def _sweep_flags(r: Run, g: SweepGrid, name: str) -> list[object]:
    return [*_grid_flags(g), *(["--text", r.text] if r.text else []), "--batch", r.p.batch, "--seq", r.p.seq,
            *r.flags(), "--name", name]


def _transfer(r: Run, echo: Echo) -> list[dict[str, Any]]:
    rows = []
    for par in ("mup", "sp"):
        name = f"suite_transfer_width_{par}"
        rep = run_sweep(r.target(r.module, par, r.p.batch, r.p.seq), r.p.sweep, device=r.device, runner=r.runner,
                        workers=r.workers, out_dir=str(r.out), name=name, echo=echo,
                        command=_cmd("sweep", r.module, "--parametrization", par, *_sweep_flags(r, r.p.sweep, name)))
        rows.append({"what": f"LR transfer across width, {par}", "result":
                     f"shift {_num(rep.shift_log2)} octaves, regret {_num(rep.transfer_regret)} nats",
                     "expected": "small shift and regret" if par == "mup" else "larger", "command": rep.command})
    return rows


def _f_of_r(r: Run, echo: Echo) -> list[dict[str, Any]]:
    rows = []
    for label, (space, target_norm) in F_VARIANTS.items():
        module = gqa_variant(r.out, Settings(update_space=space, update_target=target_norm), r.p.heads)
        name = f"suite_f_{space}_{target_norm}"
        rep = run_sweep(r.target(module, "mup", r.p.batch, r.p.seq), r.p.f_grid, device=r.device, runner=r.runner,
                        workers=r.workers, out_dir=str(r.out), name=name, echo=echo,
                        command=_cmd("sweep", module, *_sweep_flags(r, r.p.f_grid, name)))
        best = ", ".join(f"{x.best_loss:.4f}" for x in rep.runs)
        rows.append({"what": f"K/V LR f(r) = {label} across r", "result": f"shift {_num(rep.shift_log2)} octaves; "
                     f"best loss per r {best}", "expected": "compare", "command": rep.command})
    return rows


def _speedup(r: Run, echo: Echo) -> list[dict[str, Any]]:
    """The transfer sweep's runs at its smallest width, two per worker, one at a time and then pooled."""
    g, workers = r.p.sweep, r.workers or 2
    lr = g.lrs[len(g.lrs) // 2]
    jobs = [(g.shape, lr, 0.0, seed, g.steps, g.checkpoints, r.device) for seed in range(2 * workers)]
    s = speedup(run_one, r.target(r.module, "mup", r.p.batch, r.p.seq), jobs, workers)
    echo(f"  {s.runs} runs: one at a time {s.one_at_a_time_s} s, {s.workers} at once {s.pooled_s} s "
         f"(x{s.ratio}); same results: {s.same_results}")
    return [{"what": f"speed-up of {s.workers} runs at once over one at a time ({s.runs} runs of the transfer sweep)",
             "result": f"x{s.ratio} ({s.one_at_a_time_s} s -> {s.pooled_s} s), same results {s.same_results}",
             "expected": "compare", "command": _cmd("suite", r.profile, "--only", "speedup", *r.flags())}]


STEPS: dict[str, Callable[[Run, Echo], list[dict[str, Any]]]] = {
    "checks": _checks, "controls": _controls, "transfer": _transfer, "fr": _f_of_r, "speedup": _speedup}


def _num(x: float | None) -> str:
    return "undefined" if x is None else f"{x:.3f}"


def _markdown(summary: dict[str, Any]) -> str:
    lines = [f"# Evidence suite `{summary['profile']}` on {summary['device']} ({summary['seconds']} s, runner "
             f"{summary['runner']}, workers {summary['workers']})", "",
             "| what | result | expected | command |", "|---|---|---|---|"]
    lines += [f"| {r['what']} | {r['result']} | {r['expected']} | `{r['command']}` |" for r in summary["results"]]
    lines += ["", "| part | seconds | GPU utilisation, mean (peak) % | GPU memory peak, GiB |", "|---|---|---|---|"]
    lines += [f"| {part} | {u['seconds']} | {_pct(u)} | {u['memory_peak_gib'] or 'not sampled'} |"
              for part, u in summary["usage"].items()]
    return "\n".join(lines) + "\n"


def _pct(u: dict[str, Any]) -> str:
    if u["utilisation_mean_pct"] is None:
        return "not sampled (no CUDA device)"
    return f"{u['utilisation_mean_pct']} ({u['utilisation_peak_pct']})"
