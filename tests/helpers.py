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


def generated(tmp_path: Path, declaration: str, *args: Any) -> tuple[dict[str, Any], Result]:
    """Write ``declaration`` as TOML, run ``mup-derive generate`` on it (with ``args``) and execute the module:
    (its namespace, the CLI result)."""
    decl, out = tmp_path / "d.toml", tmp_path / "rules.py"
    decl.write_text(declaration)
    res = cli("generate", decl, "-o", out, *args)
    assert res.exit_code == 0, res.output
    ns: dict[str, Any] = {"__name__": "rules"}
    exec(compile(out.read_text(), str(out), "exec"), ns)
    return ns, res
