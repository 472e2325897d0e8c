"""How busy the GPU was while a block of work ran: utilisation and memory sampled through NVML.

On a CUDA device a thread reads ``torch.cuda.utilization`` (the percent of time a kernel ran over the
driver's last sample period) and ``torch.cuda.device_memory_used`` (every process on the device,
pooled workers included) every ``period`` seconds; elsewhere nothing is sampled.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

Reading = tuple[float, float]            # utilisation (percent), memory used (bytes)


@dataclass
class Usage:
    """Samples taken while a block ran (none off CUDA, or where NVML cannot be read)."""

    seconds: float = 0.0
    utilisation: list[float] = field(default_factory=list)
    memory: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float | int | None]:
        u, m = self.utilisation, self.memory
        return {"seconds": round(self.seconds, 1), "samples": len(u),
                "utilisation_mean_pct": round(sum(u) / len(u), 1) if u else None,
                "utilisation_peak_pct": max(u) if u else None,
                "memory_peak_gib": round(max(m) / 2 ** 30, 2) if m else None}


def nvml_reader(device: str) -> Callable[[], Reading] | None:
    """A reader of ``device``'s utilisation and memory, or None where there is none (CPU, no NVML)."""
    import torch
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    dev = torch.device(device)
    try:
        torch.cuda.utilization(dev)
        torch.cuda.device_memory_used(dev)
    except Exception:            # NVML missing or refused: run unmeasured rather than fail the campaign
        return None
    return lambda: (float(torch.cuda.utilization(dev)), float(torch.cuda.device_memory_used(dev)))


@contextmanager
def sampled(read: Callable[[], Reading] | None, period: float = 0.5) -> Iterator[Usage]:
    """The :class:`Usage` of the block, filled in when it ends (``read`` None: only its seconds)."""
    usage, stop = Usage(), threading.Event()

    def loop() -> None:
        assert read is not None
        while not stop.is_set():
            util, mem = read()
            usage.utilisation.append(util)
            usage.memory.append(mem)
            stop.wait(period)

    thread = threading.Thread(target=loop, daemon=True) if read is not None else None
    start = time.perf_counter()
    if thread:
        thread.start()
    try:
        yield usage
    finally:
        stop.set()
        if thread:
            thread.join()
        usage.seconds = time.perf_counter() - start
