"""Tests of mup_derive.derive."""
