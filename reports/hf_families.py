"""The coordinate check on stock model families parametrized by mup_derive.parametrize (CPU, default check:
widths 128-512, r 1-8, L 2-8, 4 steps, 3-12 seeds): μP, SP and the two controls that undo the absorbed
multipliers.  Run: python reports/hf_families.py llama qwen2 mistral gemma2 phi3 granite > reports/hf_families.txt
and python reports/hf_families.py litgpt:gpt torchtitan:llama3 > reports/libraries.txt (a bare name is a Hugging
Face family); with ``--ratio`` first, μP and SP along r only (reports/hf_families_ratio.txt); with ``--tied``
first, the families with tie_word_embeddings=True, and the control that undoes the final gain's gate, which
carries the tied readout's multiplier (reports/hf_families_tied.txt)."""
import sys

from mup_derive.apply.targets import family_target
from mup_derive.validate import CheckSettings, run_coord_check


def line(report) -> str:
    out = []
    for axis, res in report.axes.items():
        bad = [label for label, v in res.labels.items() if not v.passed]
        out.append(f"{axis}={res.verdict}" + (f"({','.join(bad[:4])})" if bad else ""))
    return " ".join(out)


def quiet(*_: object) -> None:
    """Print no progress."""


if __name__ == "__main__":
    flag = sys.argv[1] if sys.argv[1:2] in (["--ratio"], ["--tied"]) else None
    axes = ["ratio"] if flag == "--ratio" else ["width", "ratio", "depth"]
    controls = [("attn-sqrt-d", ["width"]), ("no-residual-mult", ["depth"])]
    if flag == "--tied":
        controls.append(("no-output-mult", ["width"]))
    for name in sys.argv[2 if flag else 1:]:
        family = name if ":" in name else f"hf:{name}"
        for p in ("mup", "sp"):
            report = run_coord_check(family_target(family, p, tied=flag == "--tied"), axes, CheckSettings(),
                                     echo=quiet)
            print(name, p, line(report), flush=True)
        if flag == "--ratio":
            continue
        for control, broken_axes in controls:
            report = run_coord_check(family_target(family, "mup", tied=flag == "--tied"), broken_axes,
                                     CheckSettings(), control=control, echo=quiet)
            print(name, control, line(report), flush=True)
