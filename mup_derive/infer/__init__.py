"""Declarations inferred from models people already train: shapes measured at a few widths, depths and
group ratios and fitted to expressions in n, L, r and fixed dims (:func:`~.fit.infer`); Hugging Face
families (:mod:`.families`); TOML text for the user to review (:func:`~.toml.to_toml`)."""
from .families import FAMILIES, hf_model, hf_spec, model_spec
from .fit import ModelSpec, infer
from .toml import to_toml

__all__ = ["FAMILIES", "ModelSpec", "hf_model", "hf_spec", "infer", "model_spec", "to_toml"]
