"""Outputs that never destroy: staged beside their targets, then put in place together or not at all.

* a target that is one of the inputs is refused;
* a target that exists and is not a regular file (a FIFO, a device, a directory) is refused; a
  symbolic link is written through (the file it points to is replaced, the link stays);
* several targets land together: if putting one in place fails, those already put in place get
  their old contents back;
* temporary files are removed on every exit path, SIGTERM and SIGINT included.
"""
from __future__ import annotations

import os
import signal
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType


class OutputError(OSError):
    """An output that cannot be written without destroying something; the message says which."""


def _real(path: Path) -> Path:
    """``path`` with symbolic links followed (the file a link points to is what gets replaced)."""
    return Path(os.path.realpath(path))


def check_target(path: Path, inputs: Iterable[str | Path] = ()) -> Path:
    """The real path to write ``path`` at, after refusing an input or a non-regular file."""
    real = _real(path)
    for src in inputs:
        if Path(src).exists() and (real == _real(Path(src)) or (real.exists() and os.path.samefile(real, src))):
            raise OutputError(f"{path} is an input of this command; choose another output")
    if real.exists() and not stat.S_ISREG(real.stat().st_mode):
        raise OutputError(f"{path} exists and is not a regular file; choose another output")
    return real


def _temp_beside(folder: Path, prefix: str, suffix: str = "") -> Path:
    """A new empty file in ``folder`` (hidden: its name starts with a dot)."""
    fd, name = tempfile.mkstemp(prefix=f".{prefix}.", suffix=suffix, dir=folder)
    os.close(fd)
    return Path(name)


def check_writable(folder: str | Path) -> None:
    """Create ``folder`` if needed and make sure a file can be written there (before any long work)."""
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        _temp_beside(path, "mup-derive-probe").unlink()
    except OSError as exc:
        raise OutputError(f"cannot write into {folder}: {exc.strerror or exc}") from None


@contextmanager
def _signals_as_exit() -> Iterator[None]:
    """SIGTERM raises SystemExit in the main thread, so that cleanup runs (SIGINT already raises)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def leave(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    old = {s: signal.signal(s, leave) for s in (signal.SIGTERM,) if signal.getsignal(s) == signal.SIG_DFL}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _put_in_place(tmps: list[Path], reals: list[Path]) -> None:
    """Rename every temporary file onto its target; on a failure, undo the ones already done."""
    backups: list[Path | None] = []
    try:
        for real in reals:                                   # keep the old contents until all have landed
            backup = _temp_beside(real.parent, f"{real.stem}.old") if real.exists() else None
            backups.append(backup)
            if backup is not None:
                _copy(real, backup)
        done: list[int] = []
        try:
            for i, (tmp, real) in enumerate(zip(tmps, reals, strict=True)):
                os.replace(tmp, real)
                done.append(i)
        except BaseException:
            for i in done:
                old = backups[i]
                if old is None:
                    reals[i].unlink(missing_ok=True)
                else:
                    os.replace(old, reals[i])
            raise
    finally:
        for b in backups:
            if b is not None:
                b.unlink(missing_ok=True)


def _copy(src: Path, dst: Path) -> None:
    """A hard link where the file system has them, else a copy."""
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        dst.write_bytes(src.read_bytes())


@contextmanager
def staged(*targets: str | Path, inputs: Iterable[str | Path] = ()) -> Iterator[list[Path]]:
    """Yield temporary paths beside ``targets`` (parents created); when the block succeeds they are
    put in place together (see the module docstring), otherwise removed."""
    inputs = list(inputs)
    reals = [check_target(Path(p), inputs) for p in targets]
    tmps: list[Path] = []
    with _signals_as_exit():
        try:
            for real in reals:
                real.parent.mkdir(parents=True, exist_ok=True)
                tmps.append(_temp_beside(real.parent, real.stem, real.suffix))
            yield tmps
            mask = os.umask(0)
            os.umask(mask)
            for tmp in tmps:
                tmp.chmod(0o666 & ~mask)
            _put_in_place(tmps, reals)
        finally:
            for tmp in tmps:
                tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str, inputs: Iterable[str | Path] = ()) -> None:
    """Write ``text`` to ``path`` atomically (never over one of ``inputs``)."""
    with staged(path, inputs=inputs) as (tmp,):
        tmp.write_text(text)
