"""Tests of mup_derive.generate."""
