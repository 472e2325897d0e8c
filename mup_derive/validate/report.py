"""Write a report's JSON, tidy CSV and PNG together, atomically; JSON is standard (null, never NaN).

A non-finite number (a diverged run's loss) is written as null and its place is listed under
``non_finite`` in the JSON, so that a reader can tell a missing value from a measured one.
"""
from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ..atomic import staged


class Record(Protocol):
    def to_dict(self) -> dict[str, Any]: ...

    def rows(self) -> list[dict[str, Any]]: ...


R = TypeVar("R", bound=Record)


def finite(obj: Any, where: str = "", found: list[str] | None = None) -> tuple[Any, list[str]]:
    """``obj`` with every non-finite float replaced by None, and the paths where that happened."""
    found = [] if found is None else found
    if isinstance(obj, float) and not math.isfinite(obj):
        found.append(where or "$")
        return None, found
    if isinstance(obj, dict):
        return {k: finite(v, f"{where}.{k}" if where else str(k), found)[0] for k, v in obj.items()}, found
    if isinstance(obj, list | tuple):
        return [finite(v, f"{where}[{i}]", found)[0] for i, v in enumerate(obj)], found
    return obj, found


def to_json(record: Record) -> str:
    clean, where = finite(record.to_dict())
    if where:
        clean["non_finite"] = where
    return json.dumps(clean, indent=1, allow_nan=False) + "\n"


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        fields = list(rows[0]) if rows else []
        w = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows({k: ("" if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
                    for r in rows)


def report_paths(out_dir: str | Path, stem: str) -> list[Path]:
    """The three files of a report: JSON, CSV and PNG."""
    return [Path(out_dir) / f"{stem}.{ext}" for ext in ("json", "csv", "png")]


def write_report(out_dir: str | Path, stem: str, report: R, plot: Callable[[R, Path], None],
                 inputs: Iterable[str | Path] = ()) -> Path:
    """``out_dir/stem.json``, ``.csv`` (one row per measurement) and ``.png`` (drawn by ``plot``),
    landing together; never over one of ``inputs``.  Returns the JSON path."""
    with staged(*report_paths(out_dir, stem), inputs=inputs) as (js, table, png):
        js.write_text(to_json(report))
        write_csv(table, report.rows())
        plot(report, png)
    return Path(out_dir) / f"{stem}.json"
