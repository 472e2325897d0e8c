"""Declarations inferred from models people already train: shapes measured at a few widths, depths and
group ratios and fitted to expressions in n, L, r and fixed dims (:func:`~.fit.infer`); the supported families
(:mod:`.families`: Hugging Face, litgpt, torchtitan); TOML text for the user to review (:func:`~.toml.to_toml`)."""
from .families import FAMILIES, build_model, family_spec, identify, model_spec
from .fit import ModelSpec, infer
from .toml import to_toml

__all__ = ["FAMILIES", "ModelSpec", "build_model", "family_spec", "identify", "infer", "model_spec",
           "to_toml"]
