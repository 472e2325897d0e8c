"""Benchmark: derivation and rendering time, each printed as a ratio to its goal.

* 100 ops of 7 signatures (25 transformer blocks' worth) and 100 ops of 100 distinct signatures;
* 10^4 ops (cost should grow with distinct signatures, not op count) and their rendering in every format;
* the CLI end to end (interpreter start included) on the shipped GQA example and on the 100
  distinct signatures written as TOML.

Goals (issue 12): 100 distinct ops declared and solved in 0.4 s, through the CLI in 1 s; the CLI on
the GQA example in 0.5 s; 10^4 repeated ops and their rendering in 1 s each.
"""
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mup_derive.declare import architecture
from mup_derive.derive import Settings, solve
from mup_derive.derive.render import FORMATS

ROOT = Path(__file__).resolve().parent.parent
GOALS = {"distinct": 0.4, "declare+solve": 1.0, "render": 1.0, "cli": 0.5, "cli distinct": 1.0}


def declaration(n_ops: int = 100, distinct: bool = False):
    """Transformer-like ops; with ``distinct`` every op has its own signature (its own fan_out multiple)."""
    return architecture("bench", op_fields(n_ops, distinct), {"V": 50304})


def op_fields(n_ops: int, distinct: bool) -> list[dict]:
    kinds = [("q", "n", "n", None), ("k", "n", "n", "n/r"), ("v", "n", "n", "n/r"), ("o", "n", "n", None),
             ("up", "n", "4*n", None), ("down", "4*n", "n", None), ("gain", 1, "n", None)]
    ops = [{"name": "emb", "role": "input", "fan_in": "V", "fan_out": "n"},
           {"name": "head", "role": "output", "fan_in": "n", "fan_out": "V"}]
    i = 0
    while len(ops) < n_ops:
        name, fi, fo, rank = kinds[i % len(kinds)]
        op = {"name": f"{name}{i}", "role": "vector" if name == "gain" else "hidden",
              "fan_out": f"{i + 1}*n" if distinct else fo, "branch": True}
        if name != "gain":
            op["fan_in"] = fi
        if rank:
            op["rank"] = rank
        ops.append(op)
        i += 1
    return ops


def toml_text(ops: list[dict]) -> str:
    """The declaration as TOML, as a user would write it."""
    lines = ['name = "bench"', "[dims]", "V = 50304"]
    for op in ops:
        lines.append("[[op]]")
        lines += [f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}".replace("'", '"')
                  for k, v in op.items()]
    return "\n".join(lines) + "\n"


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def derive_case(label: str, n_ops: int, distinct: bool = False):
    (table, _), seconds = timed(lambda: (solve(declaration(n_ops, distinct), Settings()), None))
    goal = GOALS["distinct" if distinct else "declare+solve"]
    print(f"{label}: {len(table.arch.ops)} ops, {len(table.entries)} entries, declare+solve {seconds:.3f}s, "
          f"ratio to goal {seconds / goal:.2f}")
    return table


def cli_case(label: str, path: Path, goal: str) -> None:
    runs = [timed(lambda: subprocess.run([sys.executable, "-m", "mup_derive", "derive", str(path)],
                                         check=True, capture_output=True, cwd=ROOT))[1] for _ in range(3)]
    print(f"CLI derive {label} end to end: best of 3 {min(runs):.3f}s "
          f"(runs {', '.join(f'{x:.3f}' for x in runs)}) ratio to goal {min(runs) / GOALS[goal]:.2f}")


if __name__ == "__main__":
    derive_case("100 ops, 7 signatures", 100)
    derive_case("100 ops, 100 distinct signatures", 100, distinct=True)
    big = derive_case("10^4 ops, 7 signatures", 10_000)
    for fmt, render in sorted(FORMATS.items()):
        _, seconds = timed(lambda render=render: render(big))
        print(f"render 10^4 ops as {fmt}: {seconds:.3f}s, ratio to goal {seconds / GOALS['render']:.2f}")
    cli_case("examples/gqa_transformer.toml", ROOT / "examples" / "gqa_transformer.toml", "cli")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "distinct.toml"
        path.write_text(toml_text(op_fields(100, distinct=True)))
        cli_case("100 distinct ops", path, "cli distinct")
