"""Command line: ``mup-derive derive|generate|examples|declare|coord-check|sweep|suite|calibrate``."""
from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import click
import sympy as sp

from . import __version__
from .declare.build import architecture, load
from .declare.grammar import DeclarationError
from .declare.ops import Architecture
from .derive.render import FORMATS
from .derive.settings import Settings
from .derive.solver import growing_repeats, regime_of, solve
from .validate.controls import CONTROLS, exposed_by
from .validate.settings import AXES, RUNNERS, SUITE_PARTS, CheckSettings, SweepGrid, check_parts

CHECK = CheckSettings()
# Upper bounds that keep a run within one machine's time and memory (a typo is refused, not run).
MAX_WIDTH, MAX_DEPTH, MAX_RATIO, MAX_STEPS, MAX_SEEDS = 2 ** 16, 1024, 1024, 10 ** 6, 64
MAX_BATCH, MAX_SEQ, MAX_LR, MAX_WD = 4096, 2 ** 16, 10.0, 1e6
ALPHA = re.compile(r"\s*\d{1,6}(\.\d{1,6})?(/\d{1,6})?\s*\Z")


Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _alpha(ctx: click.Context, param: click.Parameter, value: str) -> Fraction:
    """A small rational such as 1, 0.5 or 1/2 (nothing that takes long to parse)."""
    try:
        if not ALPHA.match(value):
            raise ValueError(value)
        return Fraction(value)
    except (ValueError, ZeroDivisionError):
        raise click.BadParameter(f"expected a number such as 1 or 1/2, got {value!r}") from None


def _settings_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--alpha", default="1", show_default=True, callback=_alpha,
                     help="Residual branch multiplier L^-alpha (1 CompleteP, 1/2 depth-muP).")(f)
    f = click.option("--update-space", type=click.Choice(["effective", "stored"]), default="effective",
                     show_default=True, help="Where a rank-deficient op's step is measured: the repeated map "
                     "(effective) or the stored n/r x n parameter (stored, a factor sqrt r more).")(f)
    f = click.option("--update-target", type=click.Choice(["spectral", "rank-adjusted"]), default="rank-adjusted",
                     show_default=True, help="What a rank-deficient op's step must match: the init's spectral "
                     "norm (kappa = (1+sqrt r)/2) or its rank-adjusted norm (kappa = 1). GQA's f(r): effective + "
                     "rank-adjusted 1, effective + spectral (1+sqrt r)/2, stored + spectral (r+sqrt r)/2.")(f)
    f = click.option("--output-gauge", type=click.Choice(["init", "multiplier"]), default=None,
                     help="Output layer: width scaling in the init (TP5 Table 3) or in a multiplier (mup).")(f)
    f = click.option("--eps", "eps_rule", type=click.Choice(["derived", "constant"]), default="derived",
                     show_default=True, help="Adam eps: scaled with the typical gradient entry (derived) or "
                     "one constant for every shape (microsoft/mup's convention).")(f)
    f = click.option("--wd", "wd_rule", type=click.Choice(["eta-lambda", "width-only"]), default="eta-lambda",
                     show_default=True, help="Weight decay: eta*lambda held constant in every symbol, or in width "
                     "only (CompleteP's convention).")(f)
    return f


def _runner_options(default: str | None = "local") -> Decorator:
    """--runner and --workers: how a command spreads its independent runs (one way for every command)."""
    def add(f: Callable[..., Any]) -> Callable[..., Any]:
        f = click.option("--workers", default=None if default is None else 0, type=click.IntRange(0, 256),
                         show_default=default is not None,
                         help="Runs at once for processes or ray (0: one per CPU)"
                              + ("; default: the profile's." if default is None else "."))(f)
        return click.option("--runner", type=click.Choice(RUNNERS), default=default, show_default=default is not None,
                            help="Run one at a time in this process (local), in worker processes on this machine "
                                 "that share the device (processes), or on a Ray cluster (ray, extra 'ray')"
                                 + ("; default: the profile's." if default is None else "."))(f)
    return add


def _parts(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    try:
        return check_parts(tuple(x.strip() for x in value.split(",") if x.strip()))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _settings(alpha: Fraction, update_space: str, update_target: str, output_gauge: str | None, eps_rule: str,
              wd_rule: str, parametrization: str = "mup") -> Settings:
    try:
        return Settings(alpha=sp.Rational(alpha.numerator, alpha.denominator), update_space=update_space,
                        update_target=update_target, parametrization=parametrization, output_gauge=output_gauge,
                        eps=eps_rule, wd=wd_rule)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--alpha") from None


def _load(path: str) -> Architecture:
    try:
        return load(path)
    except DeclarationError as exc:
        raise click.ClickException(f"{path}: {exc}") from None


def _write(path: str, text: str, inputs: list[str]) -> None:
    from .atomic import write_text
    try:
        write_text(path, text, inputs=inputs)
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from None


@click.group()
@click.version_option(__version__, prog_name="mup-derive")
def main() -> None:
    """Derive muP parameterization tables, generate PyTorch code, validate it."""


@main.command()
@click.argument("arch", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATS)), default="md", show_default=True)
@click.option("--parametrization", type=click.Choice(["mup", "sp"]), default="mup", show_default=True)
@_settings_options
@click.option("--regime", default=None, metavar="SYMBOLS",
              help="Scaled symbols that grow, fastest first, comma-separated (default: all, n first); the "
                   "others are held fixed. Decides the exponents shown; the rules stay exact.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
def derive(arch: str, fmt: str, parametrization: str, alpha: Fraction, update_space: str, update_target: str,
           output_gauge: str | None, eps_rule: str, wd_rule: str, regime: str | None, output: str | None) -> None:
    """Solve the feature-learning conditions of ARCH (a TOML declaration) and print the table."""
    settings = _settings(alpha, update_space, update_target, output_gauge, eps_rule, wd_rule, parametrization)
    decl = _load(arch)
    if regime is not None:
        grow = tuple(k.strip() for k in regime.split(",") if k.strip())
        try:
            settings = replace(settings, regime=grow)
            regime_of(decl, settings)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--regime") from None
    table = solve(decl, settings)
    for warning in growing_repeats(table):
        click.echo(f"{arch}: {warning}", err=True)
    text = FORMATS[fmt](table)
    if output:
        _write(output, text, [arch])
    else:
        click.echo(text, nl=False)


def _bases(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, int]:
    out = {}
    for item in values:
        key, sep, val = item.partition("=")
        if not sep or not key or not val.strip().isdigit() or int(val) < 1:
            raise click.BadParameter(f"expected SYMBOL=POSITIVE_INTEGER, got {item!r}")
        out[key.strip()] = int(val)
    return out


@main.command()
@click.argument("arch", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
@click.option("--base-width", type=click.IntRange(1, MAX_WIDTH), default=128, show_default=True)
@click.option("--base-depth", type=click.IntRange(1, MAX_DEPTH), default=2, show_default=True)
@click.option("--base-ratio", type=click.IntRange(1, MAX_RATIO), default=1, show_default=True)
@click.option("--base", "bases", multiple=True, callback=_bases, metavar="SYMBOL=VALUE",
              help="Base value of a declared [scaled] symbol (default 1); repeatable.")
@_settings_options
def generate(arch: str, output: str, base_width: int, base_depth: int, base_ratio: int, bases: dict[str, int],
             alpha: Fraction, update_space: str, update_target: str, output_gauge: str | None, eps_rule: str,
             wd_rule: str) -> None:
    """Emit standalone PyTorch code (init, param groups, multipliers; the model if declared)."""
    from .generate.codegen import check_module, generate_module, wide_dims
    settings = _settings(alpha, update_space, update_target, output_gauge, eps_rule, wd_rule)
    decl = _load(arch)
    unknown = set(bases) - set(decl.scaled)
    if unknown:
        raise click.BadParameter(f"{sorted(unknown)} not among the declared [scaled] symbols "
                                 f"{sorted(decl.scaled)}", param_hint="--base")
    base = {"n": base_width, "L": base_depth, "r": base_ratio, **{k: bases.get(k, 1) for k in decl.scaled}}
    try:
        code = generate_module(decl, settings, base=base, source=Path(arch).as_posix())
        check_module(code, base)
    except ValueError as exc:
        raise click.ClickException(f"{arch}: {exc}") from None
    table = solve(decl, settings)
    for warning in wide_dims(table, base) + growing_repeats(table):
        click.echo(f"{arch}: {warning}", err=True)
    _write(output, code, [arch])
    click.echo(f"wrote {output}")


@main.command()
@click.argument("folder", type=click.Path(file_okay=False))
def examples(folder: str) -> None:
    """Write the shipped examples into FOLDER as a checkout has them: the declarations and targets in
    FOLDER/examples, the modules generated from them in FOLDER/generated (never over a file)."""
    from .kit import write_kit
    try:
        written = write_kit(folder)
    except (FileExistsError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {len(written)} files into {folder}: try  cd {shlex.quote(folder)} && mup-derive derive "
               "examples/gqa_transformer.toml")


TIED_HELP = "A family target (hf:FAMILY) with tie_word_embeddings=True: its readout shares the embedding's weight."


@main.command()
@click.argument("model")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
@click.option("--layers", default="model.layers", show_default=True,
              help="Where a factory model keeps its residual layers (their parameters are branch ops).")
@click.option("--dim", "dims", multiple=True, callback=_bases, metavar="NAME=VALUE",
              help="A fixed dim of a factory model, to name the constants it appears in; repeatable.")
@click.option("--tied", is_flag=True, help=TIED_HELP)
def declare(model: str, output: str, layers: str, dims: dict[str, int], tied: bool) -> None:
    """Infer MODEL's declaration (hf:FAMILY, FILE.py:FACTORY or package.module:FACTORY, FACTORY(shape) ->
    nn.Module) from its parameter shapes at a few widths, depths and ratios, and write it as TOML to review."""
    from .infer import infer, model_spec, to_toml
    try:
        spec = model_spec(model, layers, dims, tied)
        decl = infer(spec)
        architecture(decl["name"], decl["op"], decl["dims"])          # what is written must load
    except (ValueError, ImportError, DeclarationError) as exc:
        raise click.ClickException(f"{model}: {exc}") from None
    except Exception as exc:                                        # the user's factory failing at a shape
        raise click.ClickException(f"{model}: building it failed: {type(exc).__name__}: {exc}") from None
    _write(output, to_toml(decl, f"Inferred by `mup-derive declare {model}`: review the roles, branches, ties and\n"
                                 "fixed dims before you use it."), [])
    click.echo(f"wrote {output}")


def _csv(values: tuple[int, ...]) -> str:
    return ",".join(map(str, values))


def _numbers(kind: type[int] | type[float], top: float, positive: bool = True) -> Callable[..., list[Any]]:
    """Click callback: comma-separated finite numbers (positive, or non-negative), at most ``top``, at least one."""
    def parse(ctx: click.Context, param: click.Parameter, text: str) -> list[Any]:
        try:
            vals = [kind(t) for t in str(text).split(",") if t.strip()]
        except ValueError:
            raise click.BadParameter(f"expected comma-separated {kind.__name__}s, got {text!r}") from None
        if not vals:
            raise click.BadParameter("needs at least one value")
        bad = [v for v in vals if not math.isfinite(v) or v < 0 or (positive and v == 0)]
        if bad:
            raise click.BadParameter(f"{bad[0]} is not a {'positive' if positive else 'non-negative'} finite number")
        if max(vals) > top:
            raise click.BadParameter(f"{max(vals)} is above the largest allowed, {top:g}")
        return vals
    return parse


def _positive(top: float) -> Callable[[click.Context, click.Parameter, float | None], float | None]:
    """Click callback: a positive finite number at most ``top``."""
    def check(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
        if value is not None and (not math.isfinite(value) or value <= 0):
            raise click.BadParameter(f"{value} is not a positive finite number")
        if value is not None and value > top:
            raise click.BadParameter(f"{value} is above the largest allowed, {top:g}")
        return value
    return check


def _device(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from .validate.preflight import PreflightError, check_device
    try:
        check_device(value)
    except PreflightError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def _writable_dir(value: str) -> str:
    """``value`` is a folder (created if missing) that a file can be written into."""
    from .atomic import OutputError, check_writable
    if Path(value).exists() and not Path(value).is_dir():
        raise click.BadParameter(f"{value} exists and is not a directory", param_hint="--out")
    try:
        check_writable(value)
    except OutputError as exc:
        raise click.BadParameter(str(exc), param_hint="--out") from None
    return value


def _out_dir(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return None if value is None else _writable_dir(value)


def _tie(tied: bool) -> dict[str, bool]:
    """The tied option, only where given (a target that cannot tie then refuses it)."""
    return {"tied": True} if tied else {}


def _target(spec: str, parametrization: str, **options: Any) -> Any:
    """The target; a FILE.py:FACTORY gets only the options given on the command line (and refuses
    those it would ignore), a generated module every option with its default."""
    from .validate.target import TargetError, resolve
    ctx = click.get_current_context()
    if ":" in spec:
        options = {k: v for k, v in options.items()
                   if ctx.get_parameter_source(k) is click.core.ParameterSource.COMMANDLINE}
    try:
        return resolve(spec, parametrization, **options)
    except TargetError as exc:
        raise click.ClickException(str(exc)) from None


def _command() -> str:
    """The full command line behind a report, every option spelled out."""
    ctx = click.get_current_context()
    parts = ["mup-derive", str(ctx.info_name)]
    for p in ctx.command.params:
        v = ctx.params[str(p.name)]
        if isinstance(p, click.Argument):
            parts.append(str(v))
        elif v is not None and v is not False:
            flag = max(p.opts, key=len)
            parts += [flag] if v is True else [flag, ",".join(map(str, v)) if isinstance(v, list) else str(v)]
    return " ".join(shlex.quote(x) for x in parts)


def _axes(text: str) -> list[str]:
    chosen = [a.strip() for a in text.split(",") if a.strip()]
    if not chosen or any(a not in AXES for a in chosen):
        raise click.BadParameter(f"expected axes among {sorted(AXES)}, got {text!r}", param_hint="--axes")
    return chosen


def _parametrizations(parametrization: str, control: str | None) -> list[str]:
    """mup, sp or both; a control is a broken muP variant, so it runs on muP alone."""
    if control and parametrization == "sp":
        raise click.BadParameter("a control breaks the muP rules: drop --parametrization sp", param_hint="--control")
    if control:
        return ["mup"]
    return ["mup", "sp"] if parametrization == "both" else [parametrization]


@main.command("coord-check")
@click.argument("target")
@click.option("--widths", default=_csv(CHECK.widths), show_default=True, callback=_numbers(int, MAX_WIDTH))
@click.option("--ratios", default=_csv(CHECK.ratios), show_default=True, callback=_numbers(int, MAX_RATIO))
@click.option("--depths", default=_csv(CHECK.depths), show_default=True, callback=_numbers(int, MAX_DEPTH))
@click.option("--axes", default="width,ratio,depth", show_default=True, help="Axes to check.")
@click.option("--lr", default=CHECK.lr, show_default=True, callback=_positive(MAX_LR), help="AdamW base LR.")
@click.option("--batch", default=CHECK.batch, show_default=True, type=click.IntRange(1, MAX_BATCH),
              help="Sequences in the one batch that is trained on and probed (built-in model).")
@click.option("--seq", default=CHECK.seq, show_default=True, type=click.IntRange(1, MAX_SEQ))
@click.option("--text", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Train and probe on this text file (bytes) instead of the synthetic task.")
@click.option("--alpha", default=None, type=float, callback=_positive(2.0),
              help="Depth exponent the check expects (per-layer dW.x of a branch op ~ L^(alpha-1)); default: "
                   "the rules module's own, read from its residual multiplier.")
@click.option("--band", default=CHECK.band, show_default=True, callback=_positive(2.0),
              help="Half-width of the band of slopes around the theoretical one that counts as Theta.")
@click.option("--parametrization", type=click.Choice(["mup", "sp", "both"]), default="both", show_default=True)
@click.option("--control", type=click.Choice(exposed_by("coord-check")),
              default=None, help="Check a deliberately broken muP variant (a negative control).")
@click.option("--steps", default=CHECK.steps, show_default=True, type=click.IntRange(1, MAX_STEPS))
@click.option("--seeds", default=CHECK.seeds, show_default=True, type=click.IntRange(2, MAX_SEEDS),
              help="Seeds per shape; their spread gives each slope's confidence interval.")
@click.option("--max-seeds", default=CHECK.max_seeds, show_default=True, type=click.IntRange(2, MAX_SEEDS),
              help="An inconclusive axis gets --seeds more seeds at a time, up to this many.")
@click.option("--seed-offset", default=0, show_default=True, type=click.IntRange(0, 10 ** 6),
              help="Seeds are OFFSET, OFFSET+1, ...: rerun any seed set of a calibration.")
@click.option("--eps", "base_eps", default=CHECK.eps, show_default=True, callback=_positive(1.0),
              help="AdamW's base eps (scaled per op by the rules).")
@click.option("--plot-steps", is_flag=True, help="Plot the change since init at every step.")
@click.option("--tied", is_flag=True, help=TIED_HELP)
@click.option("--device", default="cpu", show_default=True, callback=_device)
@click.option("--out", "out_dir", default="out", show_default=True, callback=_out_dir)
@_runner_options()
def coord_check(target: str, widths: list[int], ratios: list[int], depths: list[int], axes: str, lr: float,
                batch: int, seq: int, text: str | None, alpha: float | None, band: float, parametrization: str,
                control: str | None,
                steps: int, seeds: int, max_seeds: int, seed_offset: int, base_eps: float, plot_steps: bool,
                tied: bool, device: str, out_dir: str, runner: str, workers: int) -> None:
    """Train a few AdamW steps per shape; fit log-log slopes of every hooked layer's activation
    RMS, its change and its own dW.x along each axis, and test them against muP theory.

    Exit status: 0 when every run gave its expected verdict (muP passes; SP and a control fail),
    1 when one did not, 3 when one stayed inconclusive after --max-seeds seeds."""
    from .validate.coord_check import run_coord_check
    from .validate.trace import CheckError
    chosen = _axes(axes)
    try:
        settings = CheckSettings(widths=tuple(widths), ratios=tuple(ratios), depths=tuple(depths), steps=steps,
                                 lr=lr, seeds=seeds, alpha=alpha, band=band, batch=batch, seq=seq,
                                 max_seeds=max(seeds, max_seeds), seed_offset=seed_offset, eps=base_eps)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    outcomes = []
    for p in _parametrizations(parametrization, control):
        try:
            rep = run_coord_check(_target(target, p, batch=batch, seq=seq, text=text, **_tie(tied)), chosen, settings,
                                  device=device, control=control, out_dir=out_dir, command=_command(), echo=click.echo,
                                  per_step_plot=plot_steps, runner=runner, workers=workers)
        except (CheckError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
        expected = "pass" if p == "mup" and not control else "fail"
        outcomes.append("inconclusive" if rep.verdict == "inconclusive" else
                        "expected" if rep.verdict == expected else "unexpected")
    if "unexpected" in outcomes:
        raise SystemExit(1)   # muP failing, or SP or a control passing: the check cannot tell them apart
    if "inconclusive" in outcomes:
        click.echo(f"inconclusive after {settings.max_seeds} seeds per shape: the CI straddles a band edge; "
                   f"a larger --max-seeds narrows it", err=True)
        raise SystemExit(3)


@main.command()
@click.argument("target")
@click.option("--axis", type=click.Choice(sorted(AXES)), default="width", show_default=True)
@click.option("--values", default="64,128,256", show_default=True, callback=_numbers(int, MAX_WIDTH),
              help="Widths, ratios or depths.")
@click.option("--lrs", default="5e-4,1e-3,2e-3,4e-3,8e-3", show_default=True, callback=_numbers(float, MAX_LR))
@click.option("--wds", default="0", show_default=True, callback=_numbers(float, MAX_WD, positive=False),
              help="AdamW base weight decays to sweep (the smallest is the reference).")
@click.option("--wd-penalty", default=0.05, show_default=True, callback=_positive(10.0),
              help="Loss (nats) over the first WD's that defines each shape's WD scale.")
@click.option("--width", default=128, show_default=True, type=click.IntRange(1, MAX_WIDTH))
@click.option("--depth", default=2, show_default=True, type=click.IntRange(1, MAX_DEPTH))
@click.option("--ratio", default=1, show_default=True, type=click.IntRange(1, MAX_RATIO))
@click.option("--batch", default=8, show_default=True, type=click.IntRange(1, MAX_BATCH))
@click.option("--seq", default=64, show_default=True, type=click.IntRange(1, MAX_SEQ))
@click.option("--text", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Train on this text file (bytes) instead of the synthetic task.")
@click.option("--parametrization", type=click.Choice(["mup", "sp"]), default="mup", show_default=True)
@click.option("--control", type=click.Choice(sorted(CONTROLS)), default=None,
              help="Sweep a deliberately broken muP variant (a negative control).")
@click.option("--steps", default=200, show_default=True, type=click.IntRange(1, MAX_STEPS))
@click.option("--seeds", default=2, show_default=True, type=click.IntRange(1, MAX_SEEDS))
@click.option("--tied", is_flag=True, help=TIED_HELP)
@click.option("--device", default="cpu", show_default=True, callback=_device)
@click.option("--out", "out_dir", default="out", show_default=True, callback=_out_dir)
@click.option("--name", default=None, help="Report file stem.")
@_runner_options()
def sweep(target: str, axis: str, values: list[int], lrs: list[float], wds: list[float], wd_penalty: float,
          width: int, depth: int, ratio: int, batch: int, seq: int, text: str | None, parametrization: str,
          control: str | None, steps: int, seeds: int, tied: bool, device: str, out_dir: str, name: str | None,
          runner: str, workers: int) -> None:
    """Sweep base LR (and WD) across widths, ratios or depths; report the shift of the optimal LR
    and, for several WDs, of the WD scale."""
    from .validate.sweep import SweepError, run_sweep
    tgt = _target(target, parametrization, text=text, batch=batch, seq=seq, **_tie(tied))
    grid = SweepGrid(axis=axis, values=tuple(values), lrs=tuple(lrs), wds=tuple(wds),
                     shape={"n": width, "L": depth, "r": ratio}, steps=steps, seeds=seeds, wd_penalty=wd_penalty)
    try:
        run_sweep(tgt, grid, control=control, device=device, runner=runner, workers=workers, out_dir=out_dir,
                  name=name, command=_command(), echo=click.echo, inputs=[text] if text else [])
    except SweepError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.argument("profile", type=click.Choice(["smoke", "gpu"]))
@click.option("--text", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Train the sweeps on this text file (bytes); the gpu profile wants real text.")
@click.option("--device", default=None, help="Default: cpu for smoke, cuda for gpu.")
@click.option("--out", "out_dir", default=None, callback=_out_dir, help="Default: out/suite_PROFILE.")
@click.option("--only", default=",".join(SUITE_PARTS), show_default=True, callback=_parts,
              help="Parts to run (separate commands can run the parts of one campaign).")
@click.option("--max-seeds", default=None, type=click.IntRange(2, MAX_SEEDS),
              help=f"Seeds an inconclusive check axis may get (default {CHECK.max_seeds}); bounds the checks' time.")
@_runner_options(default=None)
def suite(profile: str, text: str | None, device: str | None, out_dir: str | None, only: tuple[str, ...],
          max_seeds: int | None, runner: str | None, workers: int | None) -> None:
    """The evidence campaign: coordinate checks (muP, SP, every control), LR transfer across width
    (shift and regret), the GQA f(r) comparison and the speed-up of pooled runs; smoke on the CPU in
    miniature, gpu at real widths with its runs spread over worker processes that share the GPU."""
    from .validate.preflight import PreflightError, check_device
    from .validate.suite import PROFILES, run_suite
    device = device or PROFILES[profile].device
    try:
        check_device(device)
    except PreflightError as exc:
        raise click.ClickException(f"{exc} (the {profile} profile runs on {PROFILES[profile].device})") from None
    out = out_dir or _writable_dir(f"out/suite_{profile}")
    try:
        summary = run_suite(profile, out, text=text, device=device, echo=click.echo, runner=runner, workers=workers,
                            parts=only, max_seeds=max_seeds)
    except ValueError as exc:        # a check or sweep that cannot run as asked, a missing example
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {' and '.join(f'{out}/{f}' for f in summary['files'])} ({summary['seconds']} s)")
    unexpected = [r["what"] for r in summary["results"] if r["expected"] in ("pass", "fail")
                  and r["result"] != r["expected"]]
    if unexpected:
        click.echo(f"not as expected: {', '.join(unexpected)}")
        raise SystemExit(1)


@main.command()
@click.option("--profile", type=click.Choice(["smoke", "cpu"]), default="smoke", show_default=True)
@click.option("--seed-sets", default=2, show_default=True, type=click.IntRange(1, 200))
@click.option("--text", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Add a cell on this text file's bytes.")
@click.option("--cells", default="", metavar="KEYS",
              help="Run only these cells, comma-separated (cpu: default, wide, steps, lr, alpha, text); the "
                   "report is named after them.")
@click.option("--resume", type=click.Path(exists=True, dir_okay=False), default=None, metavar="REPORT.json",
              help="Continue this earlier calibration report: keep the seed sets it holds for cells with the same "
                   "settings and run only the rest (the new report goes to --out, never over it).")
@click.option("--out", "out_dir", default="out", show_default=True, callback=_out_dir)
@_runner_options()
def calibrate(profile: str, seed_sets: int, text: str | None, cells: str, resume: str | None, out_dir: str,
              runner: str, workers: int) -> None:
    """Measure the coordinate check's false-fail rate on correct muP and false-pass rate on every
    negative control, over a grid of settings and disjoint seed sets."""
    from .atomic import OutputError, check_target
    from .validate.calibrate import calibrate as run
    from .validate.plots import plot_calibration
    from .validate.report import report_paths, write_report
    keys = tuple(k.strip() for k in cells.split(",") if k.strip())
    name = "_".join((f"calibration_{profile}", *keys))
    inputs = [resume] if resume else []
    def save(report: Any) -> None:
        write_report(out_dir, name, report, plot_calibration, inputs=inputs)

    try:
        for path in report_paths(out_dir, name):
            check_target(path, inputs)
        earlier = json.loads(Path(resume).read_text()) if resume else None
        report = run(profile, seed_sets, text=text, command=_command(), echo=click.echo, done=save, runner=runner,
                     workers=workers, cells=keys, resume=earlier)
    except OutputError as exc:
        raise click.ClickException(f"--out: {exc}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise click.ClickException(f"--resume: cannot read {resume} as JSON: {exc}") from None
    except ValueError as exc:        # a check that cannot run as asked, an unknown cell, a report that cannot resume
        raise click.ClickException(str(exc)) from None
    path = Path(out_dir) / f"{name}.json"
    for c in report.cells:
        fails = ", ".join(f"{a} {r.count}/{r.runs}" for a, r in c.mup_fail.items())
        passes = ", ".join(f"{k} {r.count}/{r.runs}" for k, r in c.control_pass.items())
        click.echo(f"  {c.cell}: muP false fails {fails}; control false passes {passes}")
    click.echo(f"wrote {path}, .csv and .png")


if __name__ == "__main__":
    main()
