"""Functions swapped where a model looks them up at call time, without editing the model."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any


@contextmanager
def swapped(sites: Sequence[tuple[Any, str]],
            wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Iterator[None]:
    """Inside the block, each function at ``sites`` ((owner, name): a module or class attribute) is ``wrap`` of
    it (a static method stays one); every site gets its own function back on exit."""
    patched = [(owner, name, vars(owner)[name]) for owner, name in sites]
    for owner, name, was in patched:
        new = wrap(was.__func__ if isinstance(was, staticmethod) else was)
        setattr(owner, name, staticmethod(new) if isinstance(was, staticmethod) else new)
    try:
        yield
    finally:
        for owner, name, was in patched:
            setattr(owner, name, was)
