"""Generate: standalone PyTorch modules rendered from solved tables with the Jinja2 templates beside this file."""
from .codegen import MODELS, check_base, default_base, generate_module

__all__ = ["MODELS", "check_base", "default_base", "generate_module"]
