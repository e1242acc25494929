"""Every figure robustlens draws, in one matplotlib style (Figure API: no pyplot state, no
backend switch).  The CLI commands, ``robustlens run`` and the report call these same
functions.

Every function draws on a fresh :class:`matplotlib.figure.Figure` inside :func:`style`,
labels its axes with units (degrees for angles) and writes the file atomically (format from
the suffix, PNG by default).  The figures:

* :func:`map_figure` -- a semantic map: curve (1-D), heatmap (2-D), mean-projected heatmap
  (n-D) or scatter (sampled map);
* :func:`map_regions_figure` -- a 2-D (or 1-D) semantic map with the robust regions of every
  method overlaid, each with a few boxes of its optimisation trace and its start point;
* :func:`score_curves_figure` -- 1-D score curves of one object, one line per model;
* :func:`srvr_figure` -- SRVR with bootstrap CIs per method, models ranked;
* :func:`class_ranking_figure` -- class robustness scores with CIs (least robust at the top)
  and the lift in a second panel;
* :func:`turntable_gif` -- an animated GIF of the object turning in azimuth with the live
  true-class score (encoded by `robustlens.images`, the one image reader/writer);
* :func:`cam_overlays_figure` -- CAMs of the true class over images, boxes drawn, least
  robust classes first;
* :func:`attack_strip_figure` -- one attack example: original, removals, context, transplant.

Data modules (region records, SRVR, semantic maps, scores) never import this module; the
writers of a data file + figure pair are in `robustlens.study.steps`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
import pandas as pd
import xarray as xr
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .errors import BadInput
from .io import atomic_path

if TYPE_CHECKING:  # heavy imports only for annotations
    import trimesh

    from .models import Classifier
    from .render import MeshRenderer

__all__ = [
    "DPI",
    "STYLE",
    "attack_strip_figure",
    "cam_overlays_figure",
    "class_ranking_figure",
    "map_regions_figure",
    "method_colors",
    "map_figure",
    "method_label",
    "save_figure",
    "score_curves_figure",
    "srvr_figure",
    "srvr_frame",
    "style",
    "turntable_gif",
]

#: resolution of every saved figure (dots per inch)
DPI = 110
#: the rcParams every report figure is drawn with
STYLE: dict[str, Any] = {
    # titles and labels carry user strings (file names, class labels): a "$...$" in them
    # is text, never matplotlib mathtext
    "text.parse_math": False,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.framealpha": 0.85,
    "image.cmap": "viridis",
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "axes.grid": False,
    "grid.alpha": 0.3,
    "grid.linestyle": "-",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": cycler(color=[
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
        "#bcbd22", "#17becf"]),
}
#: fixed colours per method so that a method looks the same in every figure
_METHOD_COLORS = ["#d62728", "#ff7f0e", "#e377c2", "#17becf", "#bcbd22", "#8c564b", "#9467bd"]
_ANGLES = {"azimuth", "elevation", "light_azimuth", "light_elevation", "fov"}


@contextlib.contextmanager
def style() -> Iterator[dict[str, Any]]:
    """Context in which matplotlib uses the report style (:data:`STYLE`); yields the params."""
    with matplotlib.rc_context(STYLE):  # type: ignore[arg-type]  # the stubs list literal keys
        yield dict(STYLE)


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` atomically at :data:`DPI` (format from the suffix); returns the path."""
    out = Path(path)
    fmt = out.suffix.lstrip(".").lower() or "png"
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=fmt, dpi=DPI)
    return out


def method_label(method: str, variant: str | None = None, starts: str | None = None,
                 criterion: str | None = None) -> str:
    """``"ours"`` / ``"paper/naive"``: a method name with its variant when it adds anything,
    `` · auto starts`` for runs from automatic start points and `` · top-1`` for runs under
    the top-1 criterion."""
    method = str(method)
    suffix = " · auto starts" if str(starts) == "auto" else ""
    if str(criterion) == "top1":
        suffix += " · top-1"
    if variant is None or (isinstance(variant, float) and math.isnan(variant)):
        return method + suffix
    variant = str(variant)
    return (method if variant in ("", method) else f"{method}/{variant}") + suffix


def method_colors(labels: Sequence[str]) -> dict[str, str]:
    """A colour per method label, fixed by sorted order, so one study colours a method the
    same in every figure (pass the result as ``colors=``)."""
    uniq = sorted({str(x) for x in labels})
    return {m: _METHOD_COLORS[i % len(_METHOD_COLORS)] for i, m in enumerate(uniq)}


def _axis_label(ds: xr.Dataset | None, name: str) -> str:
    unit = ""
    if ds is not None and name in ds.coords:
        unit = str(ds[name].attrs.get("units", ""))
    if not unit and name in _ANGLES:
        unit = "deg"
    if not unit:  # the scene parameter registry knows the others' units (radii, ...)
        from robustlens.render.scene import PARAMETERS

        unit = PARAMETERS[name].unit if name in PARAMETERS else ""
    if unit in ("", "1"):
        return name
    return f"{name} ({unit})"


# ---------------------------------------------------------------------------- regions
def _doc(doc: Any) -> dict[str, Any]:
    """A ``regions.json`` document (either shape) as drawn: ``records``, ``domain =
    {"lower", "upper"}`` and ``periodic`` names (`robustlens.regions.records.RegionsFile`)."""
    from .regions.records import RegionsFile

    rf = doc if isinstance(doc, RegionsFile) else RegionsFile.from_json(doc)
    return {"method": rf.method, "variant": rf.variant, "starts": rf.starts,
            "threshold": rf.threshold, "params": rf.params, "periodic": rf.periodic,
            "domain": {"lower": rf.lower.tolist(), "upper": rf.upper.tolist()},
            "records": [r.to_json() for r in rf.regions if r.lower and r.upper]}


def _trace_steps(rec: Mapping[str, Any], base_dir: Path | None) -> list[tuple[Any, Any]]:
    """The (lower, upper) boxes of a record's trace: inline or from its ``trace_file``."""
    trace = rec.get("trace")
    if trace is None and rec.get("trace_file") and base_dir is not None:
        trace = _read_trace_file(base_dir / str(rec["trace_file"]))
    steps: list[tuple[Any, Any]] = []
    for step in trace or []:
        try:
            if isinstance(step, Mapping):
                lo, hi = step["lower"], step["upper"]
            else:
                lo, hi = step[0], step[1]
            lo = np.atleast_1d(np.asarray(lo, dtype=float))
            hi = np.atleast_1d(np.asarray(hi, dtype=float))
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        if lo.shape == hi.shape and np.isfinite(lo).all() and np.isfinite(hi).all():
            steps.append((lo, hi))
    return steps


def _read_trace_file(path: Path) -> list[Any]:
    """A trace written beside regions.json (``traces/start_K.json``: a JSON list or
    ``{"trace": [...]}``)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, KeyError):
        return []
    if isinstance(data, Mapping):
        data = data.get("trace", [])
    return data if isinstance(data, list) else []


def _pick(seq: Sequence[Any], k: int) -> list[Any]:
    if not seq or k <= 0:
        return []
    idx = np.unique(np.linspace(0, len(seq) - 1, min(k, len(seq))).round().astype(int))
    return [seq[i] for i in idx]


def _periods(ds: xr.Dataset | None, names: Sequence[str], dlo: np.ndarray,
             dhi: np.ndarray, wrapped: Sequence[bool],
             periodic_names: Sequence[str] = ()) -> list[float]:
    """Per drawn dim: the period to repeat boxes at (0 when the dim is not periodic)."""
    out = []
    for i, n in enumerate(names):
        periodic = (bool(wrapped[i]) if i < len(wrapped) else False) or n in periodic_names
        if ds is not None and n in ds.coords:
            periodic = periodic or bool(int(ds[n].attrs.get("periodic", 0)))
        elif n == "azimuth":
            periodic = True
        out.append(float(dhi[i] - dlo[i]) if periodic and i < len(dlo) else 0.0)
    return out


def map_regions_figure(
    map_ds: xr.Dataset | None,
    regions: Sequence[Any],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    n_trace: int = 6,
    base_dirs: Sequence[Path | None] | None = None,
    colors: Mapping[str, str] | None = None,
) -> Path:
    """A semantic map with every method's robust regions and optimisation traces on top.

    Args:
        map_ds: the map (``load_map``); ``None`` draws the boxes on the domain alone.
        regions: ``regions.json`` documents (`RegionsFile` or parsed JSON, one per method); each record's final
            box is a thick rectangle (1-D: a thick bar), ``n_trace`` boxes picked along its
            trace are thin faint ones and its start point is a star.  One colour per method.
        path: the output file.
        title: figure title (default: class | mesh | model from the map's attrs).
        base_dirs: per document, the folder its ``trace_file`` entries are relative to.
        colors: method label -> colour (:func:`method_colors`; default: by sorted label).

    Periodic dims (azimuth, or any flagged ``periodic`` / ``wrapped``) repeat boxes one
    period left and right so a box that wraps shows on both edges.
    """
    docs = [_doc(d) for d in regions]
    dirs = list(base_dirs) if base_dirs is not None else [None] * len(docs)
    labels = [method_label(d.get("method", f"method {k}"), d.get("variant"), d.get("starts"),
                           d.get("criterion"))
              for k, d in enumerate(docs)]
    colors = dict(colors) if colors is not None else method_colors(labels)
    if max((len(d.get("params", [])) for d in docs), default=0) >= 3:
        return region_projections_figure(map_ds, docs, path, labels=labels, colors=colors,
                                         title=title)
    with style():
        ndim = _map_ndim(map_ds, docs)
        fig = Figure(figsize=(7.6, 4.4) if ndim >= 2 else (7.6, 3.6), layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
        names: list[str] = []
        if map_ds is not None:
            map_figure(map_ds, ax=ax, title=title)
            names = [str(d) for d in map_ds["score"].dims]
            if "sample" in names:
                names = [str(n) for n in map_ds.coords if map_ds[n].dims == ("sample",)]
        elif title:
            ax.set_title(title)
        thr_drawn = False
        for k, (doc, bdir) in enumerate(zip(docs, dirs, strict=False)):
            label = labels[k]
            color = colors.get(label, _METHOD_COLORS[k % len(_METHOD_COLORS)])
            params = [str(p) for p in doc.get("params", [])] or names
            if not names:
                names = params
            dom = doc.get("domain") or {}
            recs = [r for r in doc.get("records", []) if "lower" in r and "upper" in r]
            if not recs:
                continue
            n = len(recs[0]["lower"])
            dlo = np.asarray(dom.get("lower", np.min([r["lower"] for r in recs], 0)), float)
            dhi = np.asarray(dom.get("upper", np.max([r["upper"] for r in recs], 0)), float)
            if ndim == 1 or n == 1:
                if map_ds is not None and not thr_drawn and doc.get("threshold") is not None:
                    ax.axhline(float(doc["threshold"]), color="0.4", ls="--", lw=0.8)
                    thr_drawn = True
                _draw_intervals(ax, recs, k, color, label, dlo, dhi, n_trace, bdir, map_ds,
                                params, doc["periodic"])
            else:
                _draw_boxes(ax, recs, color, label, dlo, dhi, n_trace, bdir, map_ds, params,
                            doc["periodic"], style=k)
            if map_ds is None:
                ax.set_xlim(dlo[0], dhi[0])
                if n >= 2 and ndim >= 2:
                    ax.set_ylim(dlo[1], dhi[1])
        if map_ds is None and names:
            ax.set_xlabel(_axis_label(None, names[0]))
            ax.set_ylabel(_axis_label(None, names[1]) if len(names) > 1 and ndim >= 2
                          else "true-class probability")
        if any(doc.get("records") for doc in docs):
            ax.legend(loc="upper right")
        return save_figure(fig, path)


def region_projections_figure(
    map_ds: xr.Dataset | None,
    docs: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    labels: Sequence[str],
    colors: Mapping[str, str],
    title: str | None = None,
) -> Path:
    """Regions over n >= 3 parameters: one panel per pair of parameters (3 panels in 3-D,
    6 in 4-D; the first four parameters), each box drawn as its projection on that pair.

    Under each panel, when ``map_ds`` covers the parameters: the map's slice through
    the first record's start point (nearest grid value of every other parameter).
    """
    params = [str(p) for p in docs[0].get("params", [])][:4]
    pairs = [(i, j) for i in range(len(params)) for j in range(i + 1, len(params))]
    dims = [str(d) for d in map_ds["score"].dims] if map_ds is not None else []
    first = next((r for d in docs for r in d.get("records", []) if "start" in r), None)
    with style():
        ncol = 3
        nrow = (len(pairs) + ncol - 1) // ncol
        fig = Figure(figsize=(4.0 * ncol, 3.5 * nrow + 0.4), layout="constrained")
        mesh = None
        for k, (i, j) in enumerate(pairs):
            ax = fig.add_subplot(nrow, ncol, k + 1)
            pi, pj = params[i], params[j]
            if map_ds is not None and set(params) <= set(dims) and first is not None:
                sel = {p: float(first["start"][m]) for m, p in enumerate(params)
                       if p not in (pi, pj)}
                sl = map_ds["score"].sel(sel, method="nearest")
                mesh = ax.pcolormesh(_edges(map_ds[pi].values), _edges(map_ds[pj].values),
                                     sl.transpose(pi, pj).values.T, cmap="viridis", vmin=0,
                                     vmax=1, shading="flat")
                at = ", ".join(f"{p}={float(sl[p]):g}" for p in sel)
                ax.set_title(f"slice at {at}", fontsize=9)
            for kk, doc in enumerate(docs):
                color = colors.get(labels[kk], _METHOD_COLORS[kk % len(_METHOD_COLORS)])
                lw, ls = _BOX_STYLES[kk % len(_BOX_STYLES)]
                dom = doc.get("domain") or {}
                for n_rec, rec in enumerate(r for r in doc.get("records", []) if "lower" in r):
                    lo, hi = np.asarray(rec["lower"], float), np.asarray(rec["upper"], float)
                    ax.add_patch(Rectangle((lo[i], lo[j]), hi[i] - lo[i], hi[j] - lo[j],
                                           fill=False, ec=color, lw=lw, ls=ls,
                                           label=labels[kk] if n_rec == 0 else "_nolegend_"))
                    if rec.get("start") is not None:
                        ax.plot([rec["start"][i]], [rec["start"][j]], marker="*", color=color,
                                mec="k", mew=0.6, ms=10, ls="none")
                if mesh is None and dom.get("lower") is not None:
                    ax.set_xlim(dom["lower"][i], dom["upper"][i])
                    ax.set_ylim(dom["lower"][j], dom["upper"][j])
            ax.set_xlabel(_axis_label(map_ds, pi))
            ax.set_ylabel(_axis_label(map_ds, pj))
            if k == 0 and any(d.get("records") for d in docs):
                ax.legend(loc="upper right", fontsize=8)
        if mesh is not None:
            fig.colorbar(mesh, ax=fig.axes, label="true-class probability", shrink=0.8)
        fig.suptitle((title + ": " if title else "") + f"{len(params)}-D boxes, projected "
                     "on each pair of parameters")
        return save_figure(fig, path)


def _map_ndim(map_ds: xr.Dataset | None, docs: Sequence[Mapping[str, Any]]) -> int:
    if map_ds is not None:
        s = map_ds["score"]
        if "sample" in s.dims:
            return 2 if sum(1 for n in map_ds.coords if map_ds[n].dims == ("sample",)) > 1 else 1
        return 2 if s.ndim >= 2 else 1
    for doc in docs:
        for r in doc.get("records", []):
            return 2 if len(r.get("lower", [])) >= 2 else 1
    return 2


#: the k-th method's box outline: methods often find the same box, so each is drawn
#: thinner and with another dash pattern than the one before, and all stay visible
_BOX_STYLES: list[tuple[float, Any]] = [(3.2, "-"), (2.0, (0, (4, 2))), (1.2, (0, (1, 1.5)))]


def _draw_boxes(ax: Any, recs: Sequence[Mapping[str, Any]], color: str, label: str,
                dlo: np.ndarray, dhi: np.ndarray, n_trace: int, bdir: Path | None,
                map_ds: xr.Dataset | None, params: Sequence[str],
                periodic: Sequence[str] = (), style: int = 0) -> None:
    lw, ls = _BOX_STYLES[style % len(_BOX_STYLES)]
    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    first_label = True
    for rec in recs:
        lo = np.asarray(rec["lower"], float)
        hi = np.asarray(rec["upper"], float)
        per = _periods(map_ds, params[:2], dlo, dhi, rec.get("wrapped", []), periodic)
        shifts_x = [-per[0], 0.0, per[0]] if per[0] else [0.0]
        shifts_y = [-per[1], 0.0, per[1]] if len(per) > 1 and per[1] else [0.0]
        trace = _pick(_trace_steps(rec, bdir), n_trace)
        for sx in shifts_x:
            for sy in shifts_y:
                for tlo, thi in trace:
                    if len(tlo) < 2:
                        continue
                    ax.add_patch(Rectangle((tlo[0] + sx, tlo[1] + sy), thi[0] - tlo[0],
                                           thi[1] - tlo[1], fill=False, ec=color, lw=0.7,
                                           alpha=0.4, ls=":"))
                ax.add_patch(Rectangle((lo[0] + sx, lo[1] + sy), hi[0] - lo[0], hi[1] - lo[1],
                                       fill=False, ec=color, lw=lw, ls=ls,
                                       label=label if first_label else "_nolegend_"))
                first_label = False
        start = rec.get("start")
        if start is not None and len(start) >= 2:
            ax.plot([start[0]], [start[1]], marker="*", color=color, mec="k", mew=0.6, ms=11,
                    ls="none")
    if map_ds is not None:  # keep the map's extent; wrapped copies are clipped by it
        ax.set_xlim(xlim)
        ax.set_ylim(ylim)


def _draw_intervals(ax: Any, recs: Sequence[Mapping[str, Any]], k: int, color: str,
                    label: str, dlo: np.ndarray, dhi: np.ndarray, n_trace: int,
                    bdir: Path | None, map_ds: xr.Dataset | None,
                    params: Sequence[str], periodic: Sequence[str] = ()) -> None:
    xlim = ax.get_xlim()
    per = _periods(map_ds, params[:1], dlo, dhi, recs[0].get("wrapped", []), periodic)
    shifts = [-per[0], 0.0, per[0]] if per and per[0] else [0.0]
    for j, rec in enumerate(recs):
        y = 1.05 + 0.06 * k + 0.015 * j
        lo, hi = float(rec["lower"][0]), float(rec["upper"][0])
        for sh in shifts:
            for t, (tlo, thi) in enumerate(_pick(_trace_steps(rec, bdir), n_trace)):
                ax.hlines(y - 0.01 - 0.003 * t, tlo[0] + sh, thi[0] + sh, color=color,
                          alpha=0.35, lw=0.8)
            ax.hlines(y, lo + sh, hi + sh, color=color, lw=3,
                      label=label if (j == 0 and sh == 0) else "_nolegend_")
        start = rec.get("start")
        if start:
            ax.plot([start[0]], [y], marker="o", color=color, mec="k", ms=4, ls="none")
    ax.set_ylim(-0.02, 1.12 + 0.06 * (k + 1))
    if map_ds is not None:
        lo, hi = (float(dlo[0]), float(dhi[0])) if len(dlo) and dhi[0] > dlo[0] else xlim
        ax.set_xlim(lo, hi)


# ------------------------------------------------------------------------------- maps
def map_figure(ds: xr.Dataset, path: str | os.PathLike[str] | None = None, *,
               ax: Axes | None = None, title: str | None = None) -> Figure:
    """Curve (1-D), heatmap (2-D), mean-projected heatmap (n-D) or scatter (sampled map) of
    a map's ``score``; drawn on ``ax`` when given, saved to ``path`` when given."""
    score = ds["score"]
    with style():
        if ax is None:
            fig = Figure(figsize=(7.5, 3.6) if score.ndim != 1 else (7, 3.2),
                         layout="constrained")
            ax = fig.add_subplot(1, 1, 1)
        else:
            fig = ax.get_figure()  # type: ignore[assignment]  # an Axes of a Figure
        title = title or (f"{ds.attrs.get('class_name', '')} | {ds.attrs.get('mesh', '')} | "
                          f"{ds.attrs.get('model', '')}")
        if "sample" in score.dims:
            names = [str(n) for n in ds.coords if ds[n].dims == ("sample",)]
            x = ds[names[0]].values
            y = ds[names[1]].values if len(names) > 1 else score.values
            sc = ax.scatter(x, y, c=score.values, cmap="viridis", vmin=0, vmax=1, s=12)
            ax.set_xlabel(_axis_label(ds, names[0]))
            ax.set_ylabel(_axis_label(ds, names[1]) if len(names) > 1 else "score")
            fig.colorbar(sc, ax=ax, label="true-class probability")
            title += f" ({len(x)} random samples)"
        elif score.ndim == 1:
            d = str(score.dims[0])
            ax.plot(ds[d].values, score.values, lw=1.5)
            ax.set_xlabel(_axis_label(ds, d))
            ax.set_ylabel("true-class probability")
            ax.set_ylim(-0.02, 1.02)
            ax.grid(True)
        else:
            d0, d1 = (str(d) for d in score.dims[:2])
            s2 = score.mean(dim=list(score.dims[2:])) if score.ndim > 2 else score
            mesh = ax.pcolormesh(_edges(ds[d0].values), _edges(ds[d1].values),
                                 s2.transpose(d0, d1).values.T, cmap="viridis", vmin=0, vmax=1,
                                 shading="flat")
            ax.set_xlabel(_axis_label(ds, d0))
            ax.set_ylabel(_axis_label(ds, d1))
            extra = (" (mean over " + ", ".join(str(d) for d in score.dims[2:]) + ")"
                     if score.ndim > 2 else "")
            fig.colorbar(mesh, ax=ax, label="true-class probability" + extra)
        ax.set_title(title)
        if path is not None:
            save_figure(fig, path)
    return fig


def _edges(c: np.ndarray) -> np.ndarray:
    """Cell edges around centres ``c`` (uniform or not)."""
    c = np.asarray(c, dtype=np.float64)
    if len(c) == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


# ----------------------------------------------------------------------------- curves
def score_curves_figure(curves: Mapping[str, xr.Dataset], path: str | os.PathLike[str],
                        *, title: str | None = None) -> Path:
    """1-D score curves of one object: one line per model (``{model name: map dataset}``)."""
    if not curves:
        raise BadInput("curves: nothing to plot")
    with style():
        fig = Figure(figsize=(7.6, 3.4), layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
        dim = None
        for name, ds in curves.items():
            s = ds["score"]
            if s.ndim != 1 or "sample" in s.dims:
                continue
            dim = str(s.dims[0])
            ax.plot(ds[dim].values, s.values, lw=1.6, label=str(name))
            if dim not in ("",):
                ax.set_xlabel(_axis_label(ds, dim))
        if dim is None:
            raise BadInput("curves: no 1-D score curve among the maps")
        if dim == "azimuth":
            ax.set_xticks(np.arange(0, 361, 45))
        ax.set_ylabel("true-class probability")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(True)
        if title is None:
            first = next(iter(curves.values()))
            title = f"{first.attrs.get('class_name', '')} | {first.attrs.get('mesh', '')}"
        ax.set_title(title)
        ax.legend(loc="best")
        return save_figure(fig, path)


# ------------------------------------------------------------------------------- SRVR
def srvr_figure(table: pd.DataFrame, path: str | os.PathLike[str], *,
                colors: Mapping[str, str] | None = None, subtitle: str = "") -> Path:
    """SRVR bars with CI error bars: one group per model (ranked, most robust first), one bar
    per method.  ``table`` has the columns of ``srvr.csv`` (model, method, variant, srvr,
    srvr_low, srvr_high; variant optional); ``colors`` as in :func:`map_regions_figure`;
    ``subtitle`` (e.g. what SRVR was averaged over) goes under the title."""
    df = srvr_frame(table)
    if df.empty:
        raise BadInput("srvr: no rows to plot")
    order = df.groupby("model")["srvr"].mean().sort_values(ascending=False).index.tolist()
    methods = list(dict.fromkeys(df["label"]))
    colors = dict(colors) if colors is not None else method_colors(methods)
    width = 0.8 / max(len(methods), 1)
    with style():
        fig = Figure(figsize=(max(5.0, 1.2 + 1.1 * len(order) * max(1, len(methods)) * 0.6),
                              3.6), layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
        x = np.arange(len(order))
        for j, m in enumerate(methods):
            sub = df[df["label"] == m].set_index("model").reindex(order)
            mean = sub["srvr"].to_numpy(float)
            low = np.clip(mean - sub["srvr_low"].to_numpy(float), 0, None)
            high = np.clip(sub["srvr_high"].to_numpy(float) - mean, 0, None)
            err = np.vstack([np.nan_to_num(low), np.nan_to_num(high)])
            ax.bar(x + (j - (len(methods) - 1) / 2) * width, np.nan_to_num(mean), width * 0.92,
                   yerr=err, capsize=3,
                   color=colors.get(m, _METHOD_COLORS[j % len(_METHOD_COLORS)]),
                   label=m, error_kw={"lw": 1.0})
        ax.set_xticks(x)
        ax.set_xticklabels([_short(m) for m in order], rotation=20 if len(order) > 3 else 0,
                           ha="right" if len(order) > 3 else "center")
        ax.set_xlabel("model (ranked by mean SRVR)")
        ax.set_ylabel("SRVR (fraction of domain volume)")
        ax.set_title("Semantic robustness volume ratio, 95% bootstrap CI"
                     + (f"\n{subtitle}" if subtitle else ""))
        ax.grid(True, axis="y")
        ax.set_ylim(0, max(0.05, float(np.nanmax(df["srvr_high"].to_numpy(float))) * 1.15))
        ax.legend(title="method", loc="upper right")
        return save_figure(fig, path)


def srvr_frame(table: pd.DataFrame) -> pd.DataFrame:
    """An SRVR table (the columns of ``srvr.csv``) as drawn: numeric CIs (a missing bound is
    the mean), a ``label`` per method (:func:`method_label`); BadInput on a missing column."""
    df = table.copy()
    for c in ("model", "method", "srvr"):
        if c not in df.columns:
            raise BadInput(f"srvr: missing column {c!r}")
    if "variant" not in df.columns:
        df["variant"] = ""
    df["srvr"] = pd.to_numeric(df["srvr"], errors="coerce")
    for c in ("srvr_low", "srvr_high"):
        df[c] = pd.to_numeric(df[c], errors="coerce") if c in df.columns else df["srvr"]
        df[c] = df[c].fillna(df["srvr"])
    df["model"] = df["model"].astype(str)
    starts = df["starts"] if "starts" in df.columns else [None] * len(df)
    crit = df["criterion"] if "criterion" in df.columns else [None] * len(df)
    df["label"] = [method_label(m, v, s, c) for m, v, s, c
                   in zip(df["method"], df["variant"], starts, crit, strict=True)]
    return df.dropna(subset=["srvr"])


def _short(name: str, n: int = 28) -> str:
    return name if len(name) <= n else name[: n - 1] + "…"


# ------------------------------------------------------------------- class robustness
def class_ranking_figure(scores: pd.DataFrame, path: str | os.PathLike[str], *,
                         title: str | None = None, max_classes: int = 40) -> Path:
    """Class robustness score (CRS) per class with its CI, least robust at the top; the lift
    (CAM mass in the box relative to the box's area; < 1 leans on context) in a second panel.

    ``scores`` has the columns of ``class_scores.csv`` (class_name, crs; crs_low, crs_high,
    lift optional).  At most ``max_classes`` of the least robust classes are shown.
    """
    if "crs" not in scores.columns:
        raise BadInput("class scores: missing column 'crs'")
    df = scores.copy()
    df["crs"] = pd.to_numeric(df["crs"], errors="coerce")
    df = df.dropna(subset=["crs"]).sort_values("crs", ascending=True)
    n_all = len(df)
    df = df.head(max_classes)
    if df.empty:
        raise BadInput("class scores: no rows to plot")
    names = (df["class_name"].astype(str) if "class_name" in df.columns
             else df.get("class_id", pd.Series(range(len(df)))).astype(str)).tolist()
    crs = df["crs"].to_numpy(float)
    lo = pd.to_numeric(df.get("crs_low", df["crs"]), errors="coerce").fillna(df["crs"])
    hi = pd.to_numeric(df.get("crs_high", df["crs"]), errors="coerce").fillna(df["crs"])
    err = np.vstack([np.clip(crs - lo.to_numpy(float), 0, None),
                     np.clip(hi.to_numpy(float) - crs, 0, None)])
    has_lift = "lift" in df.columns and pd.to_numeric(df["lift"], errors="coerce").notna().any()
    y = np.arange(len(df))
    with style():
        fig = Figure(figsize=(7.6, 1.0 + 0.26 * len(df)), layout="constrained")
        if has_lift:
            ax, ax2 = fig.subplots(1, 2, sharey=True, width_ratios=[3, 2])
        else:
            ax, ax2 = fig.add_subplot(1, 1, 1), None
        colors = matplotlib.colormaps["viridis"](np.clip(crs, 0, 1) * 0.85)
        ax.barh(y, crs, xerr=err, color=colors, capsize=2.5, error_kw={"lw": 0.9})
        ax.set_yticks(y)
        ax.set_yticklabels([_short(n, 24) for n in names])
        ax.invert_yaxis()  # least robust at the top
        ax.set_xlim(0, 1)
        ax.set_xlabel("class robustness score (CAM mass in box, 0-1)")
        ax.grid(True, axis="x")
        if ax2 is not None:
            lift = pd.to_numeric(df["lift"], errors="coerce").to_numpy(float)
            ax2.barh(y, np.nan_to_num(lift), color=["#d62728" if v < 1 else "#7f7f7f"
                                                    for v in np.nan_to_num(lift, nan=1.0)])
            ax2.axvline(1.0, color="k", lw=0.8, ls="--")
            ax2.set_xlabel("lift (CRS / box area; < 1 = context)")
            ax2.grid(True, axis="x")
        title = title or "Class robustness, least robust first (95% CI)"
        if n_all > len(df):
            title += f" — the {len(df)} least robust of {n_all} classes"
        fig.suptitle(title, fontsize=STYLE["axes.titlesize"])
        return save_figure(fig, path)


# --------------------------------------------------------------------------- turntable
def turntable_gif(
    classifier: Classifier,
    mesh: trimesh.Trimesh,
    class_id: int,
    path: str | os.PathLike[str],
    frames: int = 36,
    elevation: float = 20.0,
    renderer: MeshRenderer | None = None,
    *,
    fps: float = 12.0,
    fixed: Mapping[str, float] | None = None,
) -> Path:
    """An animated GIF of ``mesh`` turning through 360 deg of azimuth at ``elevation``.

    All ``frames`` poses are rendered and classified in one batch; each frame carries a
    footer with the azimuth, the live true-class probability as text and as a bar (coloured
    with viridis, the threshold 0.5 marked) and whether the class is the top-1 prediction.
    The GIF loops forever and is written atomically.  Returns the path.
    """
    import torch
    from PIL import Image, ImageDraw, ImageFont

    from .images import write_gif
    from .render import MeshRenderer

    if frames < 1:
        raise BadInput(f"frames {frames}: expected a positive integer")
    if int(class_id) < 0 or (classifier.labels and int(class_id) >= classifier.num_classes):
        raise BadInput(f"class {class_id}: out of range for model {classifier.spec!r}")
    own = renderer is None
    rend = renderer or MeshRenderer(image_size=classifier.input_size)
    try:
        az = np.linspace(0.0, 360.0, frames, endpoint=False)
        imgs = rend.render(mesh, {"azimuth": az, "elevation": np.full(frames, float(elevation))},
                           fixed=fixed)
    finally:
        if own:
            rend.close()
    with torch.no_grad():
        probs = classifier.probs(imgs).cpu()
    if int(class_id) >= probs.shape[1]:
        raise BadInput(f"class {class_id}: the model has only {probs.shape[1]} classes")
    score = probs[:, int(class_id)].numpy()
    top1 = probs.argmax(dim=1).numpy()
    name = (classifier.labels[int(class_id)] if classifier.labels
            and int(class_id) < len(classifier.labels) else str(class_id))
    pix = (imgs.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
    side = pix.shape[1]
    scale = max(1, int(math.ceil(192 / side)))  # tiny renders are enlarged to stay legible
    w = side * scale
    footer = 34
    try:
        font = ImageFont.load_default(size=11)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    cmap = matplotlib.colormaps["viridis"]
    out_frames = []
    for i in range(frames):
        im = Image.fromarray(pix[i]).resize((w, w), Image.Resampling.NEAREST) if scale > 1 \
            else Image.fromarray(pix[i])
        canvas = Image.new("RGB", (w, w + footer), (255, 255, 255))
        canvas.paste(im, (0, 0))
        d = ImageDraw.Draw(canvas)
        s = float(score[i])
        mark = "top-1" if int(top1[i]) == int(class_id) else "not top-1"
        d.text((4, w + 2), f"az {az[i]:5.1f}°  P({_short(name, 18)}) = {s:.2f}  {mark}",
               fill=(0, 0, 0), font=font)
        bx0, by0, bx1, by1 = 4, w + footer - 13, w - 4, w + footer - 4
        d.rectangle((bx0, by0, bx1, by1), outline=(90, 90, 90), fill=(235, 235, 235))
        rgb = tuple(int(255 * c) for c in cmap(s)[:3])
        d.rectangle((bx0, by0, bx0 + int(round((bx1 - bx0) * s)), by1), fill=rgb)
        xm = bx0 + (bx1 - bx0) // 2
        d.line((xm, by0 - 2, xm, by1 + 2), fill=(0, 0, 0), width=1)
        out_frames.append(np.asarray(canvas))
    return write_gif(path, out_frames, fps)


# -------------------------------------------------------------- CAMs and attack examples
def cam_overlays_figure(classifier: Classifier, dataset: Any, image_scores: pd.DataFrame,
                        class_ids: Sequence[int], path: str | os.PathLike[str], *,
                        cam: str = "gradcam++", per_class: int = 4,
                        target_layer: str | None = None) -> Path:
    """Grid: one row per class of ``class_ids``, ``per_class`` images each (spread over the
    class's RS range, lowest first), CAM of the true class over the image, boxes in white."""
    from .representation.cam import compute_cams
    from .representation.cam_methods import cam_name
    from .representation.datasets import as_items, prepare_batch

    items = {(it.name, it.class_id): it for it in as_items(dataset)}
    rows: list[tuple[int, list[tuple[Any, float, str]]]] = []
    for cid in class_ids:
        g = image_scores[image_scores["class_id"] == cid].sort_values("rs")
        if g.empty:
            continue
        pick = np.unique(np.linspace(0, len(g) - 1, min(per_class, len(g))).round().astype(int))
        sel = g.iloc[pick]
        rows.append((cid, [(items[(r.image, cid)], float(r.rs), str(r.pred_name))
                           for r in sel.itertuples() if (r.image, cid) in items]))
    with style():  # user labels are text, never mathtext
        ncol = max([len(r[1]) for r in rows] + [1])
        fig = Figure(figsize=(2.2 * ncol, 2.35 * max(len(rows), 1)), layout="constrained")
        for ri, (cid, entries) in enumerate(rows):
            its = [e[0] for e in entries]
            images, _, boxes = prepare_batch(its, classifier)
            maps = compute_cams(classifier, images, [cid] * len(its), cam,
                                target_layer=target_layer)
            for ci, ((_it, rs, pred), img, m, bx) in enumerate(zip(entries, images, maps, boxes,
                                                                  strict=True)):
                ax = fig.add_subplot(len(rows), ncol, ri * ncol + ci + 1)
                ax.imshow(img.permute(1, 2, 0).numpy())
                ax.imshow(m, cmap="jet", alpha=0.45, vmin=0, vmax=1)
                for x0, y0, x1, y1 in bx:
                    if x1 > x0 and y1 > y0:
                        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0,
                                               fill=False, edgecolor="white", linewidth=1.2))
                ax.set_xticks([])
                ax.set_yticks([])
                name = classifier.labels[cid][:18]
                ax.set_title(f"{name}  RS {rs:.2f}\npred: {pred[:18]}", fontsize=7)
        if not rows:
            ax = fig.add_subplot(1, 1, 1)
            ax.text(0.5, 0.5, "no images", ha="center")
            ax.axis("off")
        fig.suptitle(f"{cam_name(cam)} of the true class; least robust classes first",
                     fontsize=9)
        return _save_tight(fig, path)


def attack_strip_figure(panels: Sequence[tuple[str, Any]],
                        path: str | os.PathLike[str]) -> Path:
    """One attack example: the ``(title, image)`` panels side by side, each image a
    ``(3, S, S)`` tensor or ``(S, S, 3)`` array in [0, 1], its title above it."""
    with style():
        n = max(len(panels), 1)
        fig = Figure(figsize=(1.75 * n, 2.0))
        for k, (title, img) in enumerate(panels):
            a = img.permute(1, 2, 0).cpu().numpy() if hasattr(img, "permute") else np.asarray(img)
            ax = fig.add_subplot(1, n, k + 1)
            ax.imshow(np.clip(a, 0, 1), interpolation="nearest")
            ax.set_title(str(title)[:24], fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
        return _save_tight(fig, path)


def _save_tight(fig: Figure, path: str | os.PathLike[str], dpi: int = DPI) -> Path:
    p = Path(path)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    return p
