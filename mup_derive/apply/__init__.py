"""μP on models people already train, with no edits to their code: :func:`parametrize`, and
:class:`CheckpointRecord` to keep its record in a distributed checkpoint."""
from .parametrize import CheckpointRecord, parametrize, rules_for

__all__ = ["CheckpointRecord", "parametrize", "rules_for"]
