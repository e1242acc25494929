"""The report's clickable semantic maps: a Plotly heat map (or curve) per map, the robust
regions of each method as toggled outlines with their start points, and what the page shows on
a click (the render at the nearest stored pose and its top-5), from
`robustlens.semantic.views`.

Only data is built here (the figure as Plotly JSON, the views' relative paths); plotly.js draws
it in the browser, offline: the report folder carries ``report_files/plotly.min.js``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: where the report keeps plotly.js, relative to report.html
PLOTLY_JS = "report_files/plotly.min.js"


def write_plotly_js(root: Path) -> str:
    """Copy plotly.js (from the installed ``plotly`` package) into the study folder once;
    returns its path relative to the report."""
    from plotly.offline import get_plotlyjs

    from ..io import write_text_atomic

    path = root / PLOTLY_JS
    js = get_plotlyjs()
    if not path.is_file() or path.stat().st_size != len(js.encode("utf-8")):
        write_text_atomic(path, js)
    return PLOTLY_JS


def _box_traces(doc: Any, label: str, color: str, dash: str, names: Sequence[str],
                periods: Sequence[float]) -> list[dict[str, Any]]:
    """One trace per regions file: its boxes as outlines (wrapped copies included on periodic
    axes) and its start points as stars (markers only there), so one legend click hides both."""
    xs: list[float | None] = []
    ys: list[float | None] = []
    sizes: list[float] = []
    for rec in doc.regions:
        if not rec.lower or not rec.upper:
            continue
        lo, hi = np.asarray(rec.lower, float), np.asarray(rec.upper, float)
        if rec.grew:
            shifts = [-periods[0], 0.0, periods[0]] if periods[0] else [0.0]
            for s in shifts:
                x0, x1 = lo[0] + s, hi[0] + s
                if len(lo) > 1:
                    xs += [x0, x1, x1, x0, x0, None]
                    ys += [lo[1], lo[1], hi[1], hi[1], lo[1], None]
                    sizes += [0] * 6
                else:
                    xs += [x0, x1, None]
                    ys += [0.5, 0.5, None]
                    sizes += [0] * 3
        if rec.start:
            xs += [float(rec.start[0]), None]
            ys += [float(rec.start[1]) if len(rec.start) > 1 else 0.5, None]
            sizes += [14, 0]
    return [{"type": "scatter", "mode": "lines+markers", "x": xs, "y": ys, "name": label,
             "legendgroup": label, "showlegend": True, "connectgaps": False,
             "line": {"color": color, "width": 2.5, "dash": dash},
             "marker": {"symbol": "star", "size": sizes, "color": color,
                        "line": {"color": "black", "width": 1}},
             "hovertemplate": f"{label}<extra></extra>"}]


def map_figure(ds: Any, regions: Sequence[Any], labels: Sequence[str],
               color_of: Callable[[str], str], class_names: Sequence[str] | None) -> dict | None:
    """The Plotly figure (``{"data": [...], "layout": {...}}``) of a 1-D or 2-D grid map with
    the regions ``regions`` (RegionsFile) drawn on it; None for other maps."""
    score = ds["score"]
    if "sample" in score.dims or not 1 <= score.ndim <= 2:
        return None
    dims = [str(d) for d in score.dims]
    top1 = np.asarray(ds["top1"].values) if "top1" in ds else None

    def name(i: int) -> str:
        return class_names[i] if class_names is not None and 0 <= i < len(class_names) \
            else str(i)

    units = [str(ds[d].attrs.get("units", "")) for d in dims]
    periods = [360.0 if int(ds[d].attrs.get("periodic", 0)) else 0.0 for d in dims]
    cls = str(ds.attrs.get("class_name", ""))
    if score.ndim == 2:
        x = np.asarray(ds[dims[0]].values, float)
        y = np.asarray(ds[dims[1]].values, float)
        z = np.asarray(score.values, float).T  # rows = the second dim
        pred: list[Any] | None = [[name(int(v)) for v in row] for row in top1.T] \
            if top1 is not None and np.issubdtype(top1.dtype, np.integer) else None
        trace: dict[str, Any] = {
            "type": "heatmap", "x": x.tolist(), "y": y.tolist(),
            "z": _finite(z), "zmin": 0, "zmax": 1, "colorscale": "Viridis",
            "colorbar": {"title": {"text": "p(true)"}, "len": 0.9},
            "hovertemplate": (f"{dims[0]} %{{x}} {units[0]}<br>{dims[1]} %{{y}} {units[1]}"
                              f"<br>p({cls}) %{{z:.3f}}"
                              + ("<br>predicts %{customdata}" if pred else "")
                              + "<extra></extra>")}
        if pred is not None:
            trace["customdata"] = pred
        yaxis: dict[str, Any] = {"title": {"text": f"{dims[1]} ({units[1]})".replace(" ()", "")}}
    else:
        x = np.asarray(ds[dims[0]].values, float)
        pred = [name(int(v)) for v in top1] \
            if top1 is not None and np.issubdtype(top1.dtype, np.integer) else None
        trace = {"type": "scatter", "mode": "lines+markers", "x": x.tolist(),
                 "y": _finite(score.values),
                 "marker": {"size": 5}, "name": f"p({cls})", "showlegend": False,
                 "hovertemplate": (f"{dims[0]} %{{x}} {units[0]}<br>p({cls}) %{{y:.3f}}"
                                   + ("<br>predicts %{customdata}" if pred else "")
                                   + "<extra></extra>")}
        if pred is not None:
            trace["customdata"] = pred
        yaxis = {"title": {"text": f"p({cls})"}, "range": [0, 1]}
    data = [trace]
    dashes = ["solid", "dash", "dot", "dashdot"]
    for k, (doc, label) in enumerate(zip(regions, labels, strict=True)):
        data += _box_traces(doc, label, color_of(label), dashes[k % len(dashes)], dims,
                            periods)
    layout = {
        "margin": {"l": 60, "r": 10, "t": 10, "b": 45}, "height": 380,
        "xaxis": {"title": {"text": f"{dims[0]} ({units[0]})".replace(" ()", "")},
                  "range": [float(x.min()), float(x.max())]},
        "yaxis": yaxis if score.ndim == 1 else {**yaxis, "range": [float(y.min()),
                                                                   float(y.max())]},
        "showlegend": bool(regions),
        "legend": {"orientation": "h", "y": -0.2, "groupclick": "togglegroup",
                   "title": {"text": "regions (click to hide):"}},
        "clickmode": "event",
    }
    return {"data": data, "layout": layout}


def views_payload(views: dict[str, Any], rel_dir: str) -> dict[str, Any]:
    """What the click handler needs: the stored coordinates per dim, the top-5 per stored pose,
    and where the thumbnails are (``rel_dir``: the views folder relative to the report)."""
    return {"params": views["params"], "coords": views["coords"], "top5": views["top5"],
            "thumbs": f"{rel_dir}/thumbs/", "class_name": views.get("class_name", "")}


def _finite(a: np.ndarray) -> list[Any]:
    """Values rounded to 4 digits, NaN and inf as None (a gap in the plot; JSON has no NaN)."""
    a = np.round(np.asarray(a, dtype=float), 4)
    out = a.astype(object)
    out[~np.isfinite(a)] = None
    return out.tolist()  # type: ignore[no-any-return]


def to_json(obj: Any) -> str:
    """JSON safe inside a ``<script type="application/json">`` element."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
