"""Paths and assertions shared by the tests."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from mup_derive.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
GQA = EXAMPLES / "gqa_transformer.toml"
MHA = EXAMPLES / "mha_transformer.toml"
ZOO = EXAMPLES / "lowrank_zoo.toml"
GENERATED = ROOT / "generated" / "gqa_transformer.py"


def quiet(*_: Any) -> None:
    """An ``echo`` that prints nothing."""


def cli(*args: Any) -> Result:
    """Run the command line in-process."""
    return CliRunner().invoke(main, [str(a) for a in args])


def fails_cleanly(res: Result, message: str) -> bool:
    """A CLI result that exited non-zero with ``message`` and no traceback."""
    return (res.exit_code != 0 and message in res.output and "Traceback" not in res.output
            and (res.exception is None or isinstance(res.exception, SystemExit)))
