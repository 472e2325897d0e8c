"""Write a report's JSON and PNG together, atomically (temporary files, then rename)."""
from __future__ import annotations

import json
from pathlib import Path

from ..atomic import staged


def write_report(out_dir, stem: str, report: dict, plot) -> Path:
    """``out_dir/stem.json`` and ``.png`` (drawn by ``plot(report, path)``); returns the JSON path."""
    out = Path(out_dir)
    with staged(out / f"{stem}.json", out / f"{stem}.png") as (js, png):
        js.write_text(json.dumps(report, indent=1) + "\n")
        plot(report, png)
    return out / f"{stem}.json"
