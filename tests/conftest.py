"""Fixtures shared by the tests (helper functions live in tests/helpers.py)."""
import pytest

from tests.helpers import GENERATED


@pytest.fixture(scope="session")
def gen():
    """The checked-in generated GQA module."""
    from mup_derive.validate.rules import load_rules
    return load_rules(GENERATED)
