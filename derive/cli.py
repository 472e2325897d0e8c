"""Command line: ``mup-derive derive|generate|coord-check|sweep``."""
from __future__ import annotations

from pathlib import Path

import click

from .declaration import DeclarationError, load
from .render import FORMATS
from .solver import Settings, derive as derive_table


def _settings_options(f):
    f = click.option("--alpha", default="1", show_default=True,
                     help="Residual branch multiplier L^-alpha (1 CompleteP, 1/2 depth-muP).")(f)
    f = click.option("--update-space", type=click.Choice(["effective", "stored"]), default="effective",
                     show_default=True, help="Where a rank-deficient op's step is measured: "
                     "effective gives GQA f(r)=(1+sqrt r)/2, stored gives (r+sqrt r)/2.")(f)
    f = click.option("--update-target", type=click.Choice(["spectral", "rank-adjusted"]), default="spectral",
                     show_default=True, help="What a rank-deficient op's step must match: the init's spectral "
                     "norm (kappa = (1+sqrt r)/2) or its rank-adjusted norm (kappa = 1).")(f)
    f = click.option("--output-gauge", type=click.Choice(["init", "multiplier"]), default=None,
                     help="Output layer: width scaling in the init (TP5 Table 3) or in a multiplier (mup).")(f)
    return f


def _settings(alpha, update_space, update_target, output_gauge, parametrization="mup") -> Settings:
    try:
        return Settings(alpha=alpha, update_space=update_space, update_target=update_target,
                        parametrization=parametrization, output_gauge=output_gauge)
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(str(exc), param_hint="--alpha") from None


def _load(path):
    try:
        return load(path)
    except DeclarationError as exc:
        raise click.ClickException(f"{path}: {exc}") from None


@click.group()
def main():
    """Derive muP parameterization tables, generate PyTorch code, validate it."""


@main.command()
@click.argument("arch", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATS)), default="md", show_default=True)
@click.option("--parametrization", type=click.Choice(["mup", "sp"]), default="mup", show_default=True)
@_settings_options
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
def derive(arch, fmt, parametrization, alpha, update_space, update_target, output_gauge, output):
    """Solve the feature-learning conditions of ARCH (a TOML declaration) and print the table."""
    table = derive_table(_load(arch), _settings(alpha, update_space, update_target, output_gauge, parametrization))
    text = FORMATS[fmt](table)
    if output:
        Path(output).write_text(text)
    else:
        click.echo(text, nl=False)


@main.command()
@click.argument("arch", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
@click.option("--base-width", type=int, default=128, show_default=True)
@click.option("--base-depth", type=int, default=2, show_default=True)
@click.option("--base-ratio", type=int, default=1, show_default=True)
@_settings_options
def generate(arch, output, base_width, base_depth, base_ratio, alpha, update_space, update_target,
             output_gauge):
    """Emit standalone PyTorch code (init, param groups, multipliers; the model if declared)."""
    from .codegen import render_module
    settings = _settings(alpha, update_space, update_target, output_gauge)
    code = render_module(_load(arch), settings, base=dict(n=base_width, L=base_depth, r=base_ratio),
                         source=Path(arch).as_posix())
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(code)
    click.echo(f"wrote {output}")


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}") from None


@main.command("coord-check")
@click.argument("module", type=click.Path(exists=True, dir_okay=False))
@click.option("--widths", default="64,128,256", show_default=True)
@click.option("--ratios", default="1,2,4,8", show_default=True)
@click.option("--depths", default="2,4,8", show_default=True)
@click.option("--steps", default=5, show_default=True)
@click.option("--lr", default=1e-2, show_default=True, help="Adam base LR for the check.")
@click.option("--seeds", default=2, show_default=True)
@click.option("--parametrization", type=click.Choice(["mup", "sp", "both"]), default="both", show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", "out_dir", default="validate/reports", show_default=True)
def coord_check(module, widths, ratios, depths, steps, lr, seeds, parametrization, device, out_dir):
    """Train a few Adam steps per shape and check activation-RMS slopes against each axis."""
    from validate.coord_check import run_coord_check
    params = ["mup", "sp"] if parametrization == "both" else [parametrization]
    reports = {p: run_coord_check(module, widths=_ints(widths), ratios=_ints(ratios), depths=_ints(depths),
                                  steps=steps, lr=lr, seeds=seeds, parametrization=p, device=device,
                                  out_dir=out_dir, echo=click.echo) for p in params}
    if "mup" in reports and not reports["mup"]["passed"]:
        raise SystemExit(1)   # SP is expected to fail; μP failing is an error


@main.command()
@click.argument("module", type=click.Path(exists=True, dir_okay=False))
@click.option("--axis", type=click.Choice(["width", "ratio", "depth"]), default="width", show_default=True)
@click.option("--values", default="64,128,256", show_default=True, help="Widths, ratios or depths.")
@click.option("--lrs", default="3e-4,1e-3,2e-3,4e-3,8e-3,1.6e-2", show_default=True)
@click.option("--wds", default="0", show_default=True, help="AdamW base weight decays to sweep.")
@click.option("--width", default=128, show_default=True)
@click.option("--depth", default=2, show_default=True)
@click.option("--ratio", default=1, show_default=True)
@click.option("--steps", default=100, show_default=True)
@click.option("--batch", default=16, show_default=True)
@click.option("--seq", default=64, show_default=True)
@click.option("--seeds", default=1, show_default=True)
@click.option("--text", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Train on this text file (bytes) instead of the synthetic task.")
@click.option("--parametrization", type=click.Choice(["mup", "sp"]), default="mup", show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", "out_dir", default="validate/reports", show_default=True)
@click.option("--name", default=None, help="Report file stem.")
def sweep(module, axis, values, lrs, wds, width, depth, ratio, steps, batch, seq, seeds, text,
          parametrization, device, out_dir, name):
    """Sweep base LR (and WD) across widths, ratios or depths; report optimum shift."""
    from validate.sweep import run_sweep
    run_sweep(module, axis=axis, values=_ints(values), lrs=[float(v) for v in lrs.split(",")],
              wds=[float(v) for v in wds.split(",")], shape=dict(n=width, L=depth, r=ratio),
              steps=steps, batch=batch, seq=seq, seeds=seeds, text=text, parametrization=parametrization,
              device=device, out_dir=out_dir, name=name, echo=click.echo)


if __name__ == "__main__":
    main()
