"""Calibration of the coordinate check: how often it fails correct μP and passes a broken variant.

Correct μP is checked over a grid of settings (cells: widths, steps, LR, synthetic or text data,
alpha 1 and 1/2, MHA along width and depth, GQA along the ratio), each with several disjoint seed
sets; every negative control is checked along the axis it breaks, in the same cells and seed sets.
The report gives, per (cell, axis), the false-fail rate of μP with its 95% Wilson upper bound, the
inconclusive rate, and, per (cell, control), the false-pass rate.  A run may continue an earlier report:
the seed sets that report holds for a cell with the same settings are kept, and only the rest are run.
"""
from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import sympy as sp

from ..derive.settings import Settings
from .controls import CONTROLS, exposed_by
from .coord_check import run_coord_check
from .settings import AXES, CheckSettings
from .target import resolve
from .variants import gqa_variant

Echo = Callable[[str], object]
SEED_SET_STRIDE = 1000          # seed set k uses seeds 1000 k, 1000 k + 1, ...


@dataclass(frozen=True)
class Cell:
    """One setting of the grid, named by ``key`` on the command line: the check's settings, the rules'
    alpha and the data."""

    key: str
    name: str
    settings: CheckSettings
    alpha: str = "1"
    text: str | None = None


@dataclass
class Rate:
    count: int
    runs: int
    upper95: float                # Wilson score upper bound of the rate

    @classmethod
    def of(cls, count: int, runs: int) -> Rate:
        return cls(count, runs, wilson_upper(count, runs))


@dataclass
class CellResult:
    cell: str
    settings: dict[str, Any]
    mup_fail: dict[str, Rate] = field(default_factory=dict)           # axis -> rate
    mup_inconclusive: dict[str, Rate] = field(default_factory=dict)
    control_pass: dict[str, Rate] = field(default_factory=dict)       # control -> rate
    control_inconclusive: dict[str, Rate] = field(default_factory=dict)
    verdicts: list[dict[str, Any]] = field(default_factory=list)      # per seed set: its seed offset and each verdict


@dataclass
class CalibrationReport:
    command: str
    profile: str
    seed_sets: int
    cells: list[CellResult]
    earlier: list[str] = field(default_factory=list)     # commands of the runs whose seed sets it continues

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for c in self.cells:
            for kind, rates in (("mup fail", c.mup_fail), ("mup inconclusive", c.mup_inconclusive),
                                ("control pass", c.control_pass), ("control inconclusive", c.control_inconclusive)):
                out += [{"cell": c.cell, "what": kind, "of": key, "count": r.count, "runs": r.runs,
                         "rate": r.count / r.runs, "upper95": r.upper95} for key, r in rates.items()]
        return out


def wilson_upper(count: int, runs: int, z: float = 1.96) -> float:
    if runs == 0:
        return 1.0
    p = count / runs
    centre = p + z * z / (2 * runs)
    margin = z * math.sqrt(p * (1 - p) / runs + z * z / (4 * runs * runs))
    return min(1.0, (centre + margin) / (1 + z * z / runs))


def profile_cells(profile: str, text: str | None, keys: tuple[str, ...] = ()) -> list[Cell]:
    """The grid: ``smoke`` (the default check alone, for CI) or ``cpu`` (widths, steps, LR, alpha and
    text data varied around it, CPU sizes); ``keys`` keeps only those cells, in the grid's order."""
    base = CheckSettings()
    cells = [Cell("default", "default", base)]
    if profile == "cpu":
        cells += [Cell("wide", "widths 256-1024", replace(base, widths=(256, 512, 1024))),
                  Cell("steps", "10 steps", replace(base, steps=10)), Cell("lr", "lr 1e-3", replace(base, lr=1e-3)),
                  Cell("alpha", "alpha 1/2", base, alpha="1/2")]
        if text:
            cells.append(Cell("text", "text bytes", base, text=text))
    known = [c.key for c in cells]
    unknown = [k for k in keys if k not in known]
    if unknown:
        extra = " (the text cell needs --text FILE)" if "text" in unknown and profile == "cpu" else ""
        raise ValueError(f"--cells: no cell {unknown[0]!r} in the {profile} profile; "
                         f"choose from {', '.join(known)}{extra}")
    return [c for c in cells if not keys or c.key in keys]


def cell_settings(cell: Cell) -> dict[str, Any]:
    """What a cell's verdicts depend on, as its report's JSON records it."""
    return json.loads(json.dumps({**asdict(cell.settings), "alpha": cell.alpha, "text": cell.text}))


def kept_rows(earlier: Any, grid: list[Cell], controls: list[str], seed_sets: int,
              profile: str) -> dict[str, list[dict[str, Any]]]:
    """Per cell name, the verdict rows of ``earlier`` (a report's JSON) to keep: its first seed sets, up to
    ``seed_sets``, of each cell run with the same settings or a smaller ``max_seeds`` (then its inconclusive
    verdicts are None, to be run again); refuses a report that cannot be continued."""
    olds = earlier.get("cells") if isinstance(earlier, dict) else None
    if not isinstance(olds, list) or not all(
            isinstance(c, dict) and isinstance(c.get("settings"), dict) and isinstance(c.get("verdicts"), list)
            and all(isinstance(r, dict) for r in c["verdicts"]) for c in olds):
        raise ValueError("--resume: not a calibration report with verdict rows per seed set")
    if earlier.get("profile") != profile:
        raise ValueError(f"--resume: a {earlier.get('profile')} calibration, not {profile}")
    cells = {c.name: c for c in grid}
    keys = [f"mup {a}" for a in AXES] + [f"control {c}" for c in controls]
    kept = {}
    for old in olds:
        cell = cells.get(old.get("cell", ""))
        if cell is None:
            continue
        now, then = cell_settings(cell), old["settings"]
        differ = [k for k in now if then.get(k) != now[k]]
        raised = differ == ["max_seeds"] and isinstance(then["max_seeds"], int) and then["max_seeds"] < now["max_seeds"]
        if differ and not raised:
            raise ValueError(f"--resume: cell {cell.name!r} ran with {differ[0]} {then.get(differ[0])!r}, "
                             f"this run has {now[differ[0]]!r}")
        rows = old["verdicts"][:seed_sets]
        if [r.get("seed_set") for r in rows] != list(range(len(rows))):
            raise ValueError(f"--resume: cell {cell.name!r} does not hold seed sets 0, 1, ... in order")
        missing = [k for k in keys if any(k not in r for r in rows)]
        if missing:
            raise ValueError(f"--resume: cell {cell.name!r} has no {missing[0]!r} verdicts (run before it existed); "
                             f"run the cell afresh")
        # a larger seed cap decides a run the same way wherever the smaller one did (the same seeds, in the
        # same order): only the inconclusive ones are left to run again
        kept[cell.name] = [{k: None if raised and v == "inconclusive" else v for k, v in r.items()} for r in rows]
    if not kept:
        raise ValueError(f"--resume: the report holds none of the cells asked for ({', '.join(cells)}); it holds "
                         f"{', '.join(str(c.get('cell')) for c in olds) or 'none'}")
    return kept


def run_cell(cell: Cell, seed_sets: int, controls: list[str], folder: Path, echo: Echo, runner: str = "local",
             workers: int = 0, progress: Callable[[CellResult], object] | None = None,
             kept: Sequence[dict[str, Any]] = ()) -> CellResult:
    """μP along every axis and each control along the axis it breaks, over ``seed_sets`` seed sets, the first
    ones' verdicts taken from ``kept`` (a None verdict is run again; the row lists it under "rerun");
    ``progress`` gets the cell's result so far after each seed set (its rates over the seed sets run)."""
    num, _, den = cell.alpha.partition("/")
    module = gqa_variant(folder, Settings(alpha=sp.Rational(int(num), int(den or 1))))
    res = CellResult(cell.name, cell_settings(cell), verdicts=[dict(r) for r in kept])
    target = resolve(str(module), "mup", text=cell.text, batch=cell.settings.batch, seq=cell.settings.seq)
    check = partial(run_coord_check, target, runner=runner, workers=workers, echo=lambda *_: None)

    def verdict(key: str, s: CheckSettings) -> str:
        """One row entry's verdict: "mup AXIS" along its axis, "control NAME" along the axis it breaks."""
        what, _, name = key.partition(" ")
        return (check((name,), s) if what == "mup" else check((CONTROLS[name].axis,), s, control=name)).verdict
    if kept:
        echo(f"  {cell.name}: seed sets 0-{len(kept) - 1} kept from the earlier report")
    for old in res.verdicts:
        redo = [key for key, v in old.items() if v is None]
        s = replace(cell.settings, seed_offset=old["seed_offset"])
        for key in redo:
            old[key] = verdict(key, s)
        if redo:
            old["rerun"] = redo
            echo(f"  {cell.name}: seed set {old['seed_set']}: inconclusive before, up to {s.max_seeds} seeds now: "
                 f"{', '.join(f'{key} {old[key]}' for key in redo)}")
            _tally(res, controls)
            if progress is not None:
                progress(res)
    if kept:
        _tally(res, controls)
    for k in range(len(kept), seed_sets):
        s = replace(cell.settings, seed_offset=SEED_SET_STRIDE * k)
        rep = check(tuple(AXES), s)
        row: dict[str, Any] = {"seed_set": k, "seed_offset": s.seed_offset,
                               **{f"mup {a}": x.verdict for a, x in rep.axes.items()},
                               **{f"control {c}": verdict(f"control {c}", s) for c in controls}}
        res.verdicts.append(row)
        _tally(res, controls)
        passed = [c for c in controls if row[f"control {c}"] == "pass"]
        echo(f"  {cell.name}: seed set {k}: muP {rep.verdict} "
             f"({', '.join(f'{a} {x.verdict}' for a, x in rep.axes.items())}); controls passed: {passed or 'none'}")
        if progress is not None:
            progress(res)
    return res


def _tally(res: CellResult, controls: list[str]) -> None:
    """The cell's rates over the seed sets in ``res.verdicts`` (a verdict still to be rerun with more seeds,
    None, counts as inconclusive)."""
    runs = len(res.verdicts)
    def rate(key: str, verdict: str) -> Rate:
        return Rate.of(sum((v[key] or "inconclusive") == verdict for v in res.verdicts), runs)
    res.mup_fail = {a: rate(f"mup {a}", "fail") for a in AXES}
    res.mup_inconclusive = {a: rate(f"mup {a}", "inconclusive") for a in AXES}
    res.control_pass = {c: rate(f"control {c}", "pass") for c in controls}
    res.control_inconclusive = {c: rate(f"control {c}", "inconclusive") for c in controls}


def calibrate(profile: str = "smoke", seed_sets: int = 2, text: str | None = None, command: str = "",
              echo: Echo = print, done: Callable[[CalibrationReport], object] | None = None, runner: str = "local",
              workers: int = 0, cells: tuple[str, ...] = (), resume: dict[str, Any] | None = None) -> CalibrationReport:
    """Run the calibration grid of ``profile`` (only the cells named in ``cells``, if any) with ``seed_sets``
    disjoint seed sets per cell (runs spread by ``runner`` and ``workers``); ``done`` gets the report so far
    after each seed set (to write it: a long run keeps what it finished, each rate over the seed sets it ran).
    ``resume``, an earlier report's JSON, supplies the seed sets it holds for cells with the same settings."""
    controls = exposed_by("coord-check")
    grid = profile_cells(profile, text, cells)
    kept = kept_rows(resume, grid, controls, seed_sets, profile) if resume is not None else {}
    earlier = [*resume.get("earlier", []), resume.get("command", "")] if resume is not None else []
    report = CalibrationReport(command, profile, seed_sets, [], earlier)
    finished: list[CellResult] = []

    def progress(cell: CellResult) -> None:
        report.cells = [*finished, cell]
        if done is not None:
            done(report)
    with tempfile.TemporaryDirectory() as tmp:
        for cell in grid:
            echo(f"[calibrate] {cell.name}")
            finished.append(run_cell(cell, seed_sets, controls, Path(tmp), echo, runner, workers, progress,
                                     kept.get(cell.name, [])))
    report.cells = finished
    return report
