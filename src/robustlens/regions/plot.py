"""Figures of robust regions over semantic maps (matplotlib, no pyplot state)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from robustlens.errors import BadInput
from robustlens.io import atomic_path
from robustlens.regions.ground_truth import _grid
from robustlens.regions.result import RegionResult

__all__ = ["plot_regions"]

_ANGLES = {"azimuth", "elevation", "roll", "pitch", "yaw", "tilt", "fov", "angle", "rotation"}


def _label(name: str, units: dict[str, str] | None) -> str:
    if units and name in units:
        unit = units[name]
    else:
        unit = "deg" if name.lower() in _ANGLES else ""
    return f"{name} ({unit})" if unit else name


def _pick(trace: Sequence[Any], k: int) -> list[Any]:
    if not trace or k <= 0:
        return []
    idx = np.unique(np.linspace(0, len(trace) - 1, min(k, len(trace))).round().astype(int))
    return [trace[i] for i in idx]


def _shifts(res: RegionResult, dim: int) -> list[float]:
    """Copies of a box to draw along ``dim`` so that wrapped boxes show on both edges."""
    if res.periodic.size and res.periodic[dim]:
        p = float(res.domain_upper[dim] - res.domain_lower[dim])
        return [-p, 0.0, p]
    return [0.0]


def plot_regions(
    path: str | os.PathLike[str],
    results: RegionResult | Sequence[RegionResult],
    map_da: Any = None,
    names: Sequence[str] | None = None,
    *,
    axis_names: Sequence[str] | None = None,
    units: dict[str, str] | None = None,
    n_trace: int = 6,
    title: str | None = None,
    dpi: int = 120,
) -> Path:
    """Draw regions (and their optimisation traces) over a 1-D or 2-D semantic map.

    2-D: the map as a heatmap (``map_da`` dims = x, y axes) with its threshold
    contour, each region as a rectangle, ``n_trace`` faint boxes from its trace and
    its start point.  1-D: the score curve with each interval as a horizontal bar
    (trace intervals faint below it).  n > 2: the first two dims are shown.  Axis
    labels carry units (degrees for angles).  The file (format from its suffix,
    default PNG) is written atomically.  Returns the path.
    """
    res_list = [results] if isinstance(results, RegionResult) else list(results)
    if not res_list:
        raise BadInput("results: nothing to plot")
    if not all(isinstance(r, RegionResult) for r in res_list):
        raise BadInput("results: expected RegionResult objects")
    n = res_list[0].n
    if any(r.n != n for r in res_list):
        raise BadInput("results: regions have different numbers of dimensions")
    if names is not None and len(names) != len(res_list):
        raise BadInput(f"names: got {len(names)} names for {len(res_list)} results")
    labels = list(names) if names is not None else [f"{r.method}/{r.variant}" for r in res_list]

    grid = None
    if map_da is not None:
        dims, coords, values = _grid(map_da)
        if len(dims) != n:
            raise BadInput(f"map_da: has {len(dims)} dims but the regions have {n}")
        grid = (dims, coords, values)
        axis_names = dims
    if axis_names is None:
        axis_names = ["azimuth", "elevation"][:n] if n <= 2 else [f"x{i}" for i in range(n)]
    if len(axis_names) != n:
        raise BadInput(f"axis_names: expected {n} names, got {len(axis_names)}")

    fig = Figure(figsize=(7.5, 4.8) if n >= 2 else (7.5, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    colors = [f"C{i % 10}" for i in range(len(res_list))]
    thresholds = [r.threshold for r in res_list if r.threshold is not None]
    thr = thresholds[0] if thresholds else 0.5
    dlo, dhi = res_list[0].domain_lower, res_list[0].domain_upper

    if n == 1:
        if grid is not None:
            ax.plot(grid[1][0], grid[2], color="0.3", lw=1.2, label="score")
            ax.axhline(thr, color="0.5", ls="--", lw=0.8)
        for i, (r, c, lab) in enumerate(zip(res_list, colors, labels, strict=True)):
            y = 1.05 + 0.07 * i
            for sh in _shifts(r, 0):
                for k, (lo, hi, _) in enumerate(_pick(r.trace, n_trace)):
                    ax.hlines(
                        y - 0.02 - 0.004 * k, lo[0] + sh, hi[0] + sh, color=c, alpha=0.3, lw=1
                    )
                ax.hlines(
                    y,
                    r.lower[0] + sh,
                    r.upper[0] + sh,
                    color=c,
                    lw=4,
                    label=lab if sh == 0 else "_nolegend_",
                )
            ax.plot([r.x0[0]], [y], marker="o", color=c, mec="k", ms=5)
        ax.set_xlim(dlo[0], dhi[0])
        ax.set_ylim(-0.02, 1.1 + 0.07 * len(res_list))
        ax.set_xlabel(_label(axis_names[0], units))
        ax.set_ylabel("score")
    else:
        if grid is not None:
            _, coords, values = grid
            if n > 2:
                values = values.reshape(values.shape[:2] + (-1,)).mean(axis=2)
            mesh = ax.pcolormesh(
                coords[0],
                coords[1],
                values.T,
                shading="nearest",
                cmap="viridis",
                vmin=0.0,
                vmax=1.0,
            )
            fig.colorbar(mesh, ax=ax, label="score")
            if np.nanmin(values) < thr < np.nanmax(values):
                ax.contour(
                    coords[0],
                    coords[1],
                    values.T,
                    levels=[thr],
                    colors="w",
                    linewidths=0.8,
                    linestyles="--",
                )
        for r, c, lab in zip(res_list, colors, labels, strict=True):
            for sx in _shifts(r, 0):
                for sy in _shifts(r, 1):
                    first = sx == 0 and sy == 0
                    for lo, hi, _ in _pick(r.trace, n_trace):
                        ax.add_patch(
                            Rectangle(
                                (lo[0] + sx, lo[1] + sy),
                                hi[0] - lo[0],
                                hi[1] - lo[1],
                                fill=False,
                                ec=c,
                                lw=0.7,
                                alpha=0.35,
                            )
                        )
                    ax.add_patch(
                        Rectangle(
                            (r.lower[0] + sx, r.lower[1] + sy),
                            r.upper[0] - r.lower[0],
                            r.upper[1] - r.lower[1],
                            fill=False,
                            ec=c,
                            lw=2.2,
                            label=lab if first else "_nolegend_",
                        )
                    )
            ax.plot([r.x0[0]], [r.x0[1]], marker="*", color=c, mec="k", ms=12, ls="none")
        ax.set_xlim(dlo[0], dhi[0])
        ax.set_ylim(dlo[1], dhi[1])
        ax.set_xlabel(_label(axis_names[0], units))
        ax.set_ylabel(_label(axis_names[1], units))
    ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
    if title is None and n > 2:
        title = f"first two of {n} dims"
    if title:
        ax.set_title(title)
    fig.tight_layout()

    out = Path(path)
    fmt = out.suffix.lstrip(".").lower() or "png"
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)
    return out
