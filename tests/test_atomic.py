"""Outputs never destroy: inputs, links, FIFOs and devices are safe; several files land together or not at all."""
import os
import signal
import subprocess
import sys

import pytest

from mup_derive import atomic
from mup_derive.atomic import OutputError, staged, write_text
from tests.helpers import ROOT


def test_an_input_is_never_an_output(tmp_path):
    src = tmp_path / "decl.toml"
    src.write_text("keep")
    with pytest.raises(OutputError, match="is an input"):
        write_text(src, "new", inputs=[src])
    assert src.read_text() == "keep"


def test_an_input_reached_through_a_link_is_refused(tmp_path):
    src = tmp_path / "decl.toml"
    src.write_text("keep")
    (tmp_path / "link.toml").symlink_to(src)
    with pytest.raises(OutputError, match="is an input"):
        write_text(tmp_path / "link.toml", "new", inputs=[src])


def test_a_link_is_written_through(tmp_path):
    real, link = tmp_path / "real.md", tmp_path / "link.md"
    real.write_text("old")
    link.symlink_to(real)
    write_text(link, "new")
    assert link.is_symlink() and real.read_text() == "new"


def test_a_fifo_is_refused(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="not a regular file"):
        write_text(fifo, "x")
    assert fifo.exists() and not fifo.is_file()


def test_a_device_is_refused():
    with pytest.raises(OutputError, match="not a regular file"):
        write_text("/dev/null", "x")


def test_files_land_together_or_not_at_all(tmp_path, monkeypatch):
    a, b = tmp_path / "r.json", tmp_path / "r.png"
    a.write_text("old json")
    real_replace, calls = os.replace, []

    def failing(src, dst):
        calls.append(dst)
        if len(calls) == 2:                     # the second file cannot be put in place
            raise OSError(28, "No space left on device")
        real_replace(src, dst)
    monkeypatch.setattr(atomic.os, "replace", failing)
    with pytest.raises(OSError, match="No space"), staged(a, b) as (ta, tb):
        ta.write_text("new json")
        tb.write_text("new png")
    monkeypatch.undo()
    assert a.read_text() == "old json" and not b.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]     # no temporary file left


def test_a_failing_block_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), staged(tmp_path / "t.md") as (tmp,):
        tmp.write_text("half")
        raise RuntimeError("plot failed")
    assert list(tmp_path.iterdir()) == []


def test_sigterm_removes_temporary_files(tmp_path):
    code = (f"import os, signal, sys; sys.path.insert(0, {str(ROOT)!r}); from mup_derive.atomic import staged\n"
            f"with staged({str(tmp_path / 'out.json')!r}) as (t,):\n"
            "    t.write_text('half'); os.kill(os.getpid(), signal.SIGTERM)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert res.returncode == 128 + signal.SIGTERM, res.stderr
    assert list(tmp_path.iterdir()) == []
