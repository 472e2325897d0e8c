from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GQA = ROOT / "examples" / "gqa_transformer.toml"
MHA = ROOT / "examples" / "mha_transformer.toml"
GENERATED = ROOT / "generated" / "gqa_transformer.py"


@pytest.fixture(scope="session")
def gen():
    from mup_derive.validate.loader import load_module
    return load_module(GENERATED)


def fails_cleanly(res, message: str) -> bool:
    """A CLI result that exited non-zero with ``message`` and no traceback."""
    return (res.exit_code != 0 and message in res.output and "Traceback" not in res.output
            and (res.exception is None or isinstance(res.exception, SystemExit)))
