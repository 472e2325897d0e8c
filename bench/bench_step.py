"""Benchmark: training-step time of the generated GQA model vs a plain PyTorch GQA model, eager and under
torch.compile (one ratio per mode, measured in one run, the two models interleaved).

Usage: python bench/bench_step.py [--device cuda] [--width 512] [--depth 4] [--ratio 4] [--no-compile]
"""
import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from mup_derive.validate.loader import load_module


class PlainBlock(nn.Module):
    def __init__(self, n, heads, ratio):
        super().__init__()
        self.h, self.r, self.d = heads, ratio, n // heads
        self.n1, self.n2 = nn.RMSNorm(n, eps=1e-6), nn.RMSNorm(n, eps=1e-6)
        self.q, self.k = nn.Linear(n, n, bias=False), nn.Linear(n, n // ratio, bias=False)
        self.v, self.o = nn.Linear(n, n // ratio, bias=False), nn.Linear(n, n, bias=False)
        self.up, self.down = nn.Linear(n, 4 * n, bias=False), nn.Linear(4 * n, n, bias=False)

    def forward(self, x):
        B, T, n = x.shape
        h = self.n1(x)
        q = self.q(h).view(B, T, self.h, self.d).transpose(1, 2)
        k = self.k(h).view(B, T, self.h // self.r, self.d).transpose(1, 2)
        v = self.v(h).view(B, T, self.h // self.r, self.d).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.r > 1)
        x = x + self.o(y.transpose(1, 2).reshape(B, T, n))
        return x + self.down(F.gelu(self.up(self.n2(x))))


class Plain(nn.Module):
    def __init__(self, n, L, r, heads=8, vocab=256):
        super().__init__()
        self.emb = nn.Embedding(vocab, n)
        self.blocks = nn.ModuleList(PlainBlock(n, heads, r) for _ in range(L))
        self.norm, self.head = nn.RMSNorm(n, eps=1e-6), nn.Linear(n, vocab, bias=False)

    def forward(self, idx, targets):
        x = self.emb(idx)
        for b in self.blocks:
            x = b(x)
        logits = self.head(self.norm(x))
        return logits, F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())


def step_time(model, groups, x, iters, device):
    opt = torch.optim.AdamW(groups)
    for i in range(iters + 3):
        if i == 3:
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        _, loss = model(x[:, :-1], x[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / iters


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--ratio", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--no-compile", action="store_true", help="Time the eager models only.")
    a = ap.parse_args()
    gen = load_module("generated/gqa_transformer.py")
    torch.manual_seed(0)
    x = torch.randint(0, 256, (a.batch, a.seq + 1), device=a.device)
    ours = gen.GQATransformer(width=a.width, depth=a.depth, ratio=a.ratio).to(a.device)
    plain = Plain(a.width, a.depth, a.ratio).to(a.device)
    dev = torch.device(a.device)
    where = f"cuda ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else dev.type
    print(f"device {where}, torch {torch.__version__}, width {a.width}, depth {a.depth}, ratio {a.ratio}, "
          f"batch {a.batch}, seq {a.seq}, {a.iters} steps")
    for mode in ("eager",) if a.no_compile else ("eager", "compiled"):
        run = {"eager": lambda m: m, "compiled": torch.compile}[mode]
        g_model, p_model = run(ours), run(plain)
        times = {}
        for _ in range(2):   # interleave to share machine noise; the first round also compiles
            times.setdefault("generated", []).append(step_time(g_model, gen.param_groups(ours, lr=1e-3), x, a.iters,
                                                                   a.device))
            times.setdefault("plain", []).append(step_time(p_model, plain.parameters(), x, a.iters, a.device))
        g, p = min(times["generated"]), min(times["plain"])
        print(f"{mode}: step time generated {g * 1e3:.1f} ms, plain {p * 1e3:.1f} ms, ratio {g / p:.3f} "
              f"(goal <= 1.03)")


if __name__ == "__main__":
    main()
