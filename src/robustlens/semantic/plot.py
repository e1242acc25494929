"""Pictures of semantic maps (matplotlib's Figure API: no pyplot state, and importing
robustlens never switches the user's backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..io import atomic_path


def _label(ds: xr.Dataset, name: str) -> str:
    unit = ds[name].attrs.get("units", "")
    return f"{name} ({unit})" if unit else name


def plot_map(ds: xr.Dataset, path: str | Path | None = None, ax: Axes | None = None,
             title: str | None = None) -> Figure:
    """Curve (1-D), heatmap (2-D), mean-projected heatmap (n-D) or scatter (sampled map)."""
    score = ds["score"]
    if ax is None:
        fig = Figure(figsize=(7.5, 3.6) if score.ndim != 1 else (7, 3.2), layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
    else:
        fig = ax.get_figure()
    title = title or f"{ds.attrs.get('class_name', '')} | {ds.attrs.get('mesh', '')} | " \
                     f"{ds.attrs.get('model', '')}"
    if "sample" in score.dims:
        names = [n for n in ds.coords if ds[n].dims == ("sample",)]
        x = ds[names[0]].values
        y = ds[names[1]].values if len(names) > 1 else score.values
        sc = ax.scatter(x, y, c=score.values, cmap="viridis", vmin=0, vmax=1, s=12)
        ax.set_xlabel(_label(ds, names[0]))
        ax.set_ylabel(_label(ds, names[1]) if len(names) > 1 else "score")
        fig.colorbar(sc, ax=ax, label="true-class probability")
        title += f" ({len(x)} random samples)"
    elif score.ndim == 1:
        d = score.dims[0]
        ax.plot(ds[d].values, score.values, lw=1.5)
        ax.set_xlabel(_label(ds, d))
        ax.set_ylabel("true-class probability")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    else:
        d0, d1 = score.dims[:2]
        s2 = score.mean(dim=list(score.dims[2:])) if score.ndim > 2 else score
        x, y = ds[d0].values, ds[d1].values
        mesh = ax.pcolormesh(_edges(x), _edges(y), s2.values.T, cmap="viridis", vmin=0, vmax=1,
                             shading="flat")
        ax.set_xlabel(_label(ds, d0))
        ax.set_ylabel(_label(ds, d1))
        cb_label = "true-class probability" + (" (mean over " + ", ".join(score.dims[2:]) + ")"
                                               if score.ndim > 2 else "")
        fig.colorbar(mesh, ax=ax, label=cb_label)
    ax.set_title(title, fontsize=10)
    if path is not None:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format=Path(path).suffix.lstrip(".") or "png")
    return fig


def _edges(c: np.ndarray) -> np.ndarray:
    """Cell edges around centres ``c`` (uniform or not)."""
    if len(c) == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])
