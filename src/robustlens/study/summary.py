"""How long a study took and what it reused: one source for the command line and the report.

The runner records ``provenance.json["run"]`` (``wall_s``: from the start of ``run`` to the end
of the last step, the report not included; ``steps_run``; ``steps_reused``); both the
``robustlens run`` line and the report's summary print :func:`run_summary` of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def duration(seconds: float | None) -> str:
    """``42.0 s``, ``10 min 34 s``, ``1 h 5 min``; ``—`` when unknown."""
    if seconds is None:
        return "—"
    s = float(seconds)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {s % 60:.0f} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"


def run_record(wall_s: float, steps_run: int, steps_reused: int) -> dict[str, Any]:
    """The ``run`` entry of ``provenance.json``."""
    return {"wall_s": round(float(wall_s), 2), "steps_run": int(steps_run),
            "steps_reused": int(steps_reused)}


def run_summary(provenance: Mapping[str, Any]) -> str | None:
    """``10 min 34 s (12 steps run, 2 reused from earlier runs)``, or None for a study folder
    written before this record existed."""
    run = provenance.get("run")
    if not isinstance(run, Mapping) or not isinstance(run.get("wall_s"), (int, float)):
        return None
    return (f"{duration(run['wall_s'])} ({int(run.get('steps_run', 0))} steps run, "
            f"{int(run.get('steps_reused', 0))} reused from earlier runs)")
