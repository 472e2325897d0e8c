"""Validation of generated μP rules on real training steps (installed as ``mup_derive.validate``)."""
