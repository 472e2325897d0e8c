"""Tests of mup_derive.declare."""
