"""The o-along-r finding (reports/ratio_axis.md): the aligned gain of a repeated map on random tensors, and the
coordinate check along r (and along width in the MQA limit) with V's gradient into the stream cut and with K/V's
init scaled to the spectral condition.  Run: python reports/ratio_axis.py > reports/ratio_axis.txt (CPU, 70 s), then
``python reports/ratio_axis.py calibrate >> reports/ratio_axis.txt``.

``spectral_kv`` is also a sweep target: K/V init x 2 / (1 + sqrt r), the rest the shipped GQA model's rules."""
import math
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mup_derive.apply.targets import family_target  # noqa: E402
from mup_derive.validate import CheckSettings, gqa_target, run_coord_check  # noqa: E402
from mup_derive.validate.target import Target  # noqa: E402
from tests.validate.test_coord_check import MQA_TOML, _mqa_target  # noqa: E402

GQA = ROOT / "generated" / "gqa_transformer.py"


def quiet(*_: object) -> None:
    """Print no progress."""


def gains(n: int, c: int, seeds: int = 8) -> tuple[float, float]:
    """Mean gains of A = R W (W: n/c x n, N(0, 1/n), rows repeated c times) on A^T g and on a generic input."""
    out = []
    for seed in range(seeds):
        gen = torch.Generator().manual_seed(seed)
        w = torch.randn(n // c, n, generator=gen) / math.sqrt(n)
        g, x = torch.randn(n, generator=gen), torch.randn(n, generator=gen)
        aligned = w.T @ g.view(n // c, c).sum(1)
        out.append(((w @ aligned).repeat_interleave(c).norm() / aligned.norm(),
                    (w @ x).repeat_interleave(c).norm() / x.norm()))
    return tuple(float(sum(v) / seeds) for v in zip(*out, strict=True))   # type: ignore[return-value]


KV = Callable[[torch.nn.Module], list[tuple[torch.nn.Module, ...]]]   # a model -> each attention's (K, ..., V)


def blocks_kv(layers: str, attn: str, names: tuple[str, str]) -> KV:
    """K and V of every block: ``layers``[i].``attn``.``names``."""
    return lambda model: [tuple(b.get_submodule(f"{attn}.{x}") for x in names) for b in model.get_submodule(layers)]


def gqa_spectral(shape: dict[str, int]) -> float:
    """K/V init to the spectral condition against the default: 2 / (1 + sqrt r)."""
    return 2 / (1 + math.sqrt(shape["r"]))


def variant(target: Target, kind: str, kv: KV, spectral: Callable[[dict[str, int]], float] = gqa_spectral) -> Target:
    """``cut``: V (the last of each group) reads the stream detached, its gradient into the stream cut;
    ``spectral``: K/V init x ``spectral(shape)``."""
    make = target.make

    def made(shape, rules):
        model = make(shape, rules)
        for group in kv(model):
            if kind == "cut":
                group[-1].register_forward_pre_hook(lambda _m, a: (a[0].detach(),))
            elif kind == "spectral":
                with torch.no_grad():
                    for m in group:
                        m.weight.mul_(spectral(shape))
        return model

    return replace(target, make=made)


GQA_KV = blocks_kv("blocks", "attn", ("k", "v"))
HF_KV = blocks_kv("model.layers", "self_attn", ("k_proj", "v_proj"))


def mqa_spectral(shape: dict[str, int]) -> float:
    """The toy's one K/V map (8 rows repeated c = n/8 times): sigma sqrt(c) (sqrt(8) + sqrt(n)) = 1 against
    sigma 2 sqrt(n) = 1."""
    n, c = shape["n"], shape["n"] / 8
    return 2 * math.sqrt(n) / (math.sqrt(c) * (math.sqrt(8) + math.sqrt(n)))


def spectral_kv(parametrization: str = "mup", batch: int = 16, seq: int = 32, text: str | None = None) -> Target:
    """The shipped GQA model with K/V's init scaled to the spectral condition, 2 / (1 + sqrt r) x the default."""
    return variant(gqa_target(GQA, parametrization, text, batch, seq), "spectral", GQA_KV)


def row(name: str, axis, labels: tuple[str, ...]) -> str:
    cells = []
    for lab in labels:
        f = axis.labels[lab].metrics
        d, w = f["delta"], f.get("dwx")
        own = f" own {w.slope[-1]:+.3f} [{w.ci[-1][0]:+.3f},{w.ci[-1][1]:+.3f}]" if w else ""
        cells.append(f"{lab} delta {d.slope[-1]:+.3f} [{d.ci[-1][0]:+.3f},{d.ci[-1][1]:+.3f}] "
                     f"init {f['rms'].slope[0]:+.3f}{own}")
    return f"{name:<28} verdict {axis.verdict:<12} " + " | ".join(cells)


def main() -> None:
    print("# aligned gain of R W on W^T R^T g vs sqrt(1 + c), and its gain on a generic input (n = 2048, 8 seeds)")
    for c in (1, 2, 4, 8, 16, 32):
        a, g = gains(2048, c)
        print(f"c = {c:<3} aligned {a:.3f}  sqrt(1+c) {math.sqrt(1 + c):.3f}  generic {g:.3f}")

    s = CheckSettings(widths=(256,), ratios=(1, 2, 4, 8), depths=(2,), seeds=6, max_seeds=6)
    print("\n# built-in GQA model along r = 1, 2, 4, 8 at n = 256 (8 heads), batch 16 x 32, 4 AdamW steps, 6 seeds; "
          "allowed change slope up to 0.362 + band 0.25")
    base = gqa_target(GQA, batch=16, seq=32)
    for kind in ("default", "cut", "spectral"):
        t = base if kind == "default" else variant(base, kind, GQA_KV)
        ax = run_coord_check(t, ["ratio"], s, echo=quiet).axes["ratio"]
        print(row(f"gqa {kind}", ax, ("v", "o", "residual")), flush=True)

    s = CheckSettings(ratios=(1, 2, 4, 8), seeds=6, max_seeds=6)
    print("\n# HF families (parametrize) along r = 1, 2, 4, 8 at n = 512, default check settings, 6 seeds")
    for family in ("llama", "granite"):
        base = family_target(f"hf:{family}")
        for kind in ("default", "cut", "spectral"):
            t = base if kind == "default" else variant(base, kind, HF_KV)
            ax = run_coord_check(t, ["ratio"], s, echo=quiet).axes["ratio"]
            print(row(f"{family} {kind}", ax, ("v_proj", "o_proj", "residual")), flush=True)

    print("\n# MQA limit: the toy n -> repeated(8 rows) -> n -> 16 along width 128-1024 (repeat n/8), lr 1e-3, "
          "4 steps, 4 seeds")
    from click.testing import CliRunner

    from mup_derive.cli import main as cli
    folder = Path("out") / "ratio_axis"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mqa.toml").write_text(MQA_TOML)
    CliRunner().invoke(cli, ["generate", str(folder / "mqa.toml"), "-o", str(folder / "mqa_rules.py")])
    toy = _mqa_target(str(folder / "mqa_rules.py"))
    s = CheckSettings(widths=(128, 256, 512, 1024), lr=1e-3, seeds=4, max_seeds=4)
    for kind in ("default", "cut", "spectral"):
        t = toy if kind == "default" else variant(toy, kind, lambda model: [(model[2],)], mqa_spectral)
        ax = run_coord_check(t, ["width"], s, echo=quiet).axes["width"]
        print(row(f"mqa {kind}", ax, ("kv", "hid", "out")), flush=True)


def calibrate(seed_sets: int = 6) -> None:
    """μP and the kv-lr-r control along r over disjoint seed sets (seeds 1000 k, ...), in the calibration's
    default cell and its widths 256-1024 cell (the ratio axis runs at the largest width)."""
    print("\n# ratio-axis calibration with the allowance: verdicts per seed set (3-12 seeds each)")
    for cell, widths in (("default", (128, 256, 512)), ("widths 256-1024", (256, 512, 1024))):
        for control in (None, "kv-lr-r"):
            verdicts = []
            for k in range(seed_sets):
                s = CheckSettings(widths=widths, seed_offset=1000 * k)
                rep = run_coord_check(gqa_target(GQA, batch=s.batch, seq=s.seq), ["ratio"], s, control=control,
                                      echo=quiet)
                verdicts.append(rep.axes["ratio"].verdict)
            print(f"{cell:<16} {control or 'mup':<8} " + " ".join(verdicts), flush=True)


if __name__ == "__main__":
    calibrate() if sys.argv[1:] == ["calibrate"] else main()
