"""Jinja2 templates of the generated modules (installed as ``mup_derive.templates``)."""
