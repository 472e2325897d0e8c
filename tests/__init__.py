"""Tests, laid out like the package: one file per module under test."""
