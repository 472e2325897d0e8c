"""The coordinate check on stock model families parametrized by mup_derive.parametrize (CPU, default check:
widths 128-512, r 1-8, L 2-8, 4 steps, 3-12 seeds): μP, SP and the two controls that undo the absorbed
multipliers.  Run: python reports/hf_families.py llama qwen2 mistral gemma2 phi3 granite > reports/hf_families.txt
and python reports/hf_families.py litgpt:gpt torchtitan:llama3 > reports/libraries.txt (a bare name is a Hugging
Face family); with ``--ratio`` first, μP and SP along r only (reports/hf_families_ratio.txt)."""
import sys

from mup_derive.validate import CheckSettings, resolve, run_coord_check


def line(report) -> str:
    out = []
    for axis, res in report.axes.items():
        bad = [label for label, v in res.labels.items() if not v.passed]
        out.append(f"{axis}={res.verdict}" + (f"({','.join(bad[:4])})" if bad else ""))
    return " ".join(out)


def quiet(*_: object) -> None:
    """Print no progress."""


if __name__ == "__main__":
    ratio_only = sys.argv[1:2] == ["--ratio"]
    axes = ["ratio"] if ratio_only else ["width", "ratio", "depth"]
    for name in sys.argv[2 if ratio_only else 1:]:
        family = name if ":" in name else f"hf:{name}"
        for p in ("mup", "sp"):
            report = run_coord_check(resolve(family, p), axes, CheckSettings(), echo=quiet)
            print(name, p, line(report), flush=True)
        if ratio_only:
            continue
        for control, broken_axes in (("attn-sqrt-d", ["width"]), ("no-residual-mult", ["depth"])):
            report = run_coord_check(resolve(family, "mup"), broken_axes, CheckSettings(), control=control,
                                     echo=quiet)
            print(name, control, line(report), flush=True)
