"""μP on models people already train, with no edits to their code: :func:`parametrize`."""
from .parametrize import parametrize, rules_for

__all__ = ["parametrize", "rules_for"]
