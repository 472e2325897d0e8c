"""Write a report's JSON and PNG together, atomically (temporary files, then rename)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def write_report(out_dir, stem: str, report: dict, plot) -> Path:
    """``out_dir/stem.json`` and ``.png`` (drawn by ``plot(report, path)``); returns the JSON path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    final = {ext: out / f"{stem}.{ext}" for ext in ("json", "png")}
    tmp = {}
    try:
        for ext in final:
            fd, name = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".{ext}", dir=out)
            os.close(fd)
            tmp[ext] = Path(name)
        tmp["json"].write_text(json.dumps(report, indent=1) + "\n")
        plot(report, tmp["png"])
        mask = os.umask(0)
        os.umask(mask)
        for ext in final:
            tmp[ext].chmod(0o666 & ~mask)
            os.replace(tmp[ext], final[ext])
    finally:
        for path in tmp.values():
            path.unlink(missing_ok=True)
    return final["json"]
