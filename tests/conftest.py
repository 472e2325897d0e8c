from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GQA = ROOT / "examples" / "gqa_transformer.toml"
MHA = ROOT / "examples" / "mha_transformer.toml"
GENERATED = ROOT / "generated" / "gqa_transformer.py"


@pytest.fixture(scope="session")
def gen():
    from validate.loader import load_module
    return load_module(GENERATED)
