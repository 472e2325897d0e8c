"""An inferred declaration as TOML text for the user to review: deterministic, one [[op]] table per op."""
from __future__ import annotations

import json
from typing import Any

ORDER = ("name", "role", "fan_in", "fan_out", "rank", "branch", "tied", "init", "offset", "gate", "gate_inside",
         "stream_degree", "fused", "interleave", "correlated", "operands", "params")


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    return json.dumps(v)                 # strings and lists of strings are valid TOML as JSON


def to_toml(decl: dict[str, Any], header: str = "") -> str:
    """``decl`` (name, dims, op) as a TOML declaration, ``header`` as leading comment lines."""
    lines = [f"# {line}" for line in header.splitlines()]
    lines += [f"name = {_value(decl['name'])}", "", "[dims]"]
    lines += [f"{k} = {v}" for k, v in decl["dims"].items()]
    for op in decl["op"]:
        lines += ["", "[[op]]"]
        lines += [f"{k} = {_value(op[k])}" for k in ORDER if k in op and not (k == "params" and not op[k])]
    return "\n".join(lines) + "\n"
