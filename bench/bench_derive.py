"""Benchmark: derivation time for a 100-op declaration (25 transformer blocks' worth)."""
import time

from derive.declaration import architecture
from derive.solver import Settings, derive


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
    table = derive(arch, Settings())
    t2 = time.perf_counter()
    print(f"ops={len(arch.ops)} entries={len(table.entries)} declare={t1 - t0:.2f}s derive={t2 - t1:.2f}s")
