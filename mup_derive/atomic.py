"""Atomic output: write to temporary files beside the targets, then rename them into place."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged(*targets: str | Path) -> Iterator[list[Path]]:
    """Yield temporary paths beside ``targets`` (parents created); when the block succeeds they
    are renamed onto ``targets`` together, otherwise removed."""
    paths = [Path(p) for p in targets]
    tmps: list[Path] = []
    try:
        for p in paths:
            p.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{p.stem}.", suffix=p.suffix, dir=p.parent)
            os.close(fd)
            tmps.append(Path(name))
        yield tmps
        mask = os.umask(0)
        os.umask(mask)
        for tmp, p in zip(tmps, paths, strict=True):
            tmp.chmod(0o666 & ~mask)
            os.replace(tmp, p)
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with staged(path) as (tmp,):
        tmp.write_text(text)
