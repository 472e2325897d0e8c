"""Axes and default settings of the coordinate check, shared by the CLI and the tests (no heavy imports)."""

AXES = {"width": "n", "ratio": "r", "depth": "L"}   # axis -> shape key

# the default check (CLI and tests): one batch of 2 x 16 tokens trained on and probed, 4 AdamW steps
DEFAULTS = {"widths": [128, 256, 512], "ratios": [1, 2, 4, 8], "depths": [2, 4, 8], "steps": 4, "lr": 3e-3,
            "seeds": 3, "alpha": 1.0, "band": 0.25, "batch": 2, "seq": 16}
