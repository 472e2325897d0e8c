"""Tests of mup_derive.validate."""
