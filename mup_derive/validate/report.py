"""Write a report's JSON and PNG together, atomically (temporary files, then rename)."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ..atomic import staged


class Record(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=Record)


def write_report(out_dir: str | Path, stem: str, report: R, plot: Callable[[R, Path], None]) -> Path:
    """``out_dir/stem.json`` and ``.png`` (drawn by ``plot(report, path)``); returns the JSON path."""
    out = Path(out_dir)
    with staged(out / f"{stem}.json", out / f"{stem}.png") as (js, png):
        js.write_text(json.dumps(report.to_dict(), indent=1) + "\n")
        plot(report, png)
    return out / f"{stem}.json"
