"""mup-derive: derive μP parameterization tables, generate PyTorch code, validate it.

Installed as ``mup_derive``; the repository keeps one folder per stage:

* ``derive/``    -> ``mup_derive``            declarations, solver, renderers, codegen, CLI
* ``templates/`` -> ``mup_derive.templates``  Jinja2 templates of the generated modules
* ``validate/``  -> ``mup_derive.validate``   coordinate checks, sweeps, reports
* ``generated/``                             generated modules, checked in (not installed)
"""
