"""Benchmark: derivation time for a 100-op declaration (25 transformer blocks' worth) and the
CLI end to end on the shipped GQA example; prints each against its goal (1 s)."""
import subprocess
import sys
import time
from pathlib import Path

from mup_derive.declare import architecture
from mup_derive.derive import Settings, solve

ROOT = Path(__file__).resolve().parent.parent
GOAL_S = 1.0


def declaration(n_ops: int = 100):
    kinds = [("q", "n", "n", None), ("k", "n", "n", "n/r"), ("v", "n", "n", "n/r"), ("o", "n", "n", None),
             ("up", "n", "4*n", None), ("down", "4*n", "n", None), ("gain", 1, "n", None)]
    ops = [{"name": "emb", "role": "input", "fan_in": "V", "fan_out": "n"},
           {"name": "head", "role": "output", "fan_in": "n", "fan_out": "V"}]
    i = 0
    while len(ops) < n_ops:
        name, fi, fo, rank = kinds[i % len(kinds)]
        op = {"name": f"{name}{i}", "role": "vector" if name == "gain" else "hidden",
              "fan_out": fo, "branch": True}
        if name != "gain":
            op["fan_in"] = fi
        if rank:
            op["rank"] = rank
        ops.append(op)
        i += 1
    return architecture("bench", ops, {"V": 50304})


if __name__ == "__main__":
    t0 = time.perf_counter()
    arch = declaration()
    t1 = time.perf_counter()
    table = solve(arch, Settings())
    t2 = time.perf_counter()
    print(f"100 ops: ops={len(arch.ops)} entries={len(table.entries)} declare={t1 - t0:.3f}s "
          f"derive={t2 - t1:.3f}s total={t2 - t0:.3f}s ratio to goal {(t2 - t0) / GOAL_S:.2f}")
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mup_derive", "derive", str(ROOT / "examples" / "gqa_transformer.toml")],
                       check=True, capture_output=True, cwd=ROOT)
        runs.append(time.perf_counter() - t)
    best = min(runs)
    print(f"CLI derive examples/gqa_transformer.toml end to end: best of 3 {best:.3f}s "
          f"(runs {', '.join(f'{x:.3f}' for x in runs)}) ratio to goal {best / GOAL_S:.2f}")
