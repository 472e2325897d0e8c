"""Independent runs (a sweep's trainings, a coordinate check's traces) one at a time or many at once.

``local`` runs them one by one in this process; ``processes`` in a pool of worker processes on this
machine, all on the same device (several small runs keep a GPU busy where one cannot); ``ray`` on
an existing Ray cluster.  A worker rebuilds the target from its recipe and control, and every run
draws its init and data from its own seed, so the results do not depend on the runner.
"""
from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch
from tqdm import tqdm

from .settings import RUNNERS
from .target import Target, resolve


class RunnerError(ValueError):
    """Runs that cannot be spread as asked."""


def check_runner(target: Target, runner: str) -> None:
    """``runner`` is known, and a pooled target can be rebuilt in a worker."""
    if runner not in RUNNERS:
        raise RunnerError(f"runner must be one of {RUNNERS}, got {runner!r}")
    if runner != "local" and target.recipe is None:
        raise RunnerError("a pooled run rebuilds the target in each worker: make it with "
                          "mup_derive.validate.target.resolve")
    if runner == "ray":
        try:
            import ray.util.multiprocessing  # noqa: F401
        except ImportError:
            raise RunnerError("runner 'ray' needs Ray: pip install 'mup-derive[ray]'") from None


@cache
def _rebuilt(recipe: tuple[str, str, tuple[tuple[str, Any], ...]], control: str | None) -> Target:
    from .controls import with_control
    spec, parametrization, options = recipe
    return with_control(resolve(spec, parametrization, **dict(options)), control)


def _call(job: tuple[Callable[..., Any], Any, str | None, tuple[Any, ...]]) -> Any:
    fn, recipe, control, args = job
    return fn(_rebuilt(recipe, control), *args)


def _threads(n: int) -> None:
    torch.set_num_threads(n)


@contextmanager
def _pool(runner: str, workers: int) -> Iterator[Any]:
    """``processes``: spawned workers (safe with CUDA) sharing this machine's cores; ``ray``: a Ray pool."""
    if runner == "processes":
        size = workers or os.cpu_count() or 1
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(size, initializer=_threads, initargs=(max(1, (os.cpu_count() or 1) // size),)) as pool:
            yield pool
        return
    from ray.util.multiprocessing import Pool
    with Pool(workers or None) as pool:
        yield pool


def run_all(fn: Callable[..., Any], target: Target, jobs: Sequence[tuple[Any, ...]], runner: str = "local",
            workers: int = 0, desc: str = "") -> list[Any]:
    """``fn(target, *job)`` for every job, in order; ``fn`` is a module-level function (workers import it)."""
    check_runner(target, runner)
    progress: dict[str, Any] = dict(total=len(jobs), desc=desc, disable=None)
    if runner == "local":
        return [fn(target, *job) for job in tqdm(jobs, **progress)]
    with _pool(runner, workers) as pool:
        return list(tqdm(pool.imap(_call, [(fn, target.recipe, target.control, job) for job in jobs]), **progress))


@dataclass(frozen=True)
class Speedup:
    """The same runs one at a time in this process and ``workers`` at once (pool start-up included)."""

    runs: int
    workers: int
    one_at_a_time_s: float
    pooled_s: float
    ratio: float
    same_results: bool


def speedup(fn: Callable[..., Any], target: Target, jobs: Sequence[tuple[Any, ...]], workers: int) -> Speedup:
    """Wall-clock ratio of running ``jobs`` one at a time over running them in ``workers`` processes."""
    start = time.perf_counter()
    alone = run_all(fn, target, jobs)
    middle = time.perf_counter()
    pooled = run_all(fn, target, jobs, "processes", workers)
    end = time.perf_counter()
    return Speedup(len(jobs), workers, round(middle - start, 2), round(end - middle, 2),
                   round((middle - start) / (end - middle), 2), alone == pooled)
