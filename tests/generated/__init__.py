"""Tests of the checked-in generated modules (generated/)."""
