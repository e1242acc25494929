"""The self-contained HTML report of a study folder (``robustlens report OUT``).

:func:`build_report` reads whatever results a study folder holds -- semantic maps, 1-D
curves, robust regions, SRVR, class robustness, CAM overlays, attacks, turntable GIFs and
provenance -- draws the report figures (into ``OUT/figures/``) and writes one
``OUT/report.html`` with every picture embedded as a base64 data URI, a little inline CSS
and vanilla JS (sortable tables) and no network resources.  Nothing is recomputed: no model
is loaded and nothing is rendered.  Parts a study did not run are listed as "not run".
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from .. import __version__
from .. import figures as F
from ..errors import BadInput
from ..io import atomic_path
from ..regions.criterion import CRITERIA_SENTENCE
from ..regions.records import RegionsFile
from ..representation.cam_methods import cam_name
from ..semantic.views import load_views
from ..study.layout import PARTS, StudyLayout, slug, spec_of
from ..study.summary import duration, run_summary
from . import interactive

Log = Callable[[str], None]

__all__ = ["Cell", "StudyResults", "Table", "build_report", "load_study", "render_report"]

_TEMPLATES = Path(__file__).resolve().parent / "templates"
_MIME = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
         ".svg": "image/svg+xml", ".webp": "image/webp"}
#: at most this many attack example pictures are embedded per attacks.csv (the rest linked)
MAX_EXAMPLES = 12


# ------------------------------------------------------------------------------ tables
@dataclass
class Cell:
    """One table cell: shown ``text``, optional numeric/string ``sort`` key, link, CSS class."""

    text: str
    sort: str | None = None
    href: str | None = None
    cls: str = ""


@dataclass
class Table:
    """A sortable HTML table."""

    headers: list[str]
    rows: list[list[Cell]]
    caption: str = ""
    title: str = ""


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def fmt(x: Any, digits: int = 3) -> str:
    """A number for people: ``0.123``, ``1.2e-05``, ``1234``; ``—`` when missing."""
    if isinstance(x, bool):
        return "yes" if x else "no"
    v = _num(x)
    if v is None:
        return "—" if x is None or (isinstance(x, float) and math.isnan(x)) or x == "" \
            else str(x)
    if v == int(v) and abs(v) < 1e15 and not isinstance(x, float):
        return str(int(v))
    if v != 0 and (abs(v) < 10 ** -(digits) or abs(v) >= 1e6):
        return f"{v:.{digits - 1}e}"
    if abs(v) >= 100:
        return f"{v:.0f}" if v == int(v) else f"{v:.1f}"
    return f"{v:.{digits}f}"


def _ncell(x: Any, digits: int = 3, cls: str = "") -> Cell:
    v = _num(x)
    return Cell(fmt(x, digits), "" if v is None else repr(v), cls=f"num {cls}".strip())


def _ci_cell(mean: Any, low: Any, high: Any, digits: int = 3) -> Cell:
    m = _num(mean)
    if m is None:
        return Cell("—", "", cls="num")
    lo, hi = _num(low), _num(high)
    ci = f" [{fmt(lo, digits)}, {fmt(hi, digits)}]" if lo is not None and hi is not None else ""
    return Cell(f"{fmt(m, digits)}{ci}", repr(m), cls="num")


#: fewer objects than this give no meaningful bootstrap interval (it resamples objects)
MIN_OBJECTS_FOR_CI = 5


def _few_objects(r: Any) -> int | None:
    """The object count of an SRVR row when it is too small for an interval, else None."""
    n = _num(r.get("n_meshes")) if hasattr(r, "get") else None
    return int(n) if n is not None and n < MIN_OBJECTS_FOR_CI else None


def _frame_table(df: pd.DataFrame, title: str = "", caption: str = "") -> Table:
    """Any data frame as a table (numbers formatted, numeric sort keys)."""
    rows = []
    for _, r in df.iterrows():
        rows.append([_ncell(v) if _num(v) is not None and not isinstance(v, str)
                     else Cell(fmt(v), str(v)) for v in r.tolist()])
    return Table([str(c) for c in df.columns], rows, caption, title)


# ------------------------------------------------------------------------------- study
@dataclass
class Item:
    """One result file (or folder) with what the report shows about it."""

    key: tuple[str, ...]
    path: Path
    data: Any = None
    name: str = ""


@dataclass
class StudyResults:
    """Everything found in a study folder (see :func:`load_study`)."""

    root: Path
    maps: list[Item] = field(default_factory=list)
    curves: list[Item] = field(default_factory=list)
    regions: list[Item] = field(default_factory=list)
    srvr: pd.DataFrame | None = None
    representation: list[Item] = field(default_factory=list)
    attacks: list[Item] = field(default_factory=list)
    gifs: list[tuple[tuple[str, ...], Path]] = field(default_factory=list)  # (key, GIF)
    provenance: dict[str, Any] = field(default_factory=dict)
    config_text: str = ""
    problems: list[str] = field(default_factory=list)

    def has(self, part: str) -> bool:
        """Whether the study ran ``part`` (one of :data:`PARTS`' keys)."""
        v = getattr(self, part)
        return v is not None and (len(v) > 0)

    @property
    def empty(self) -> bool:
        return not any(self.has(k) for k, _, _ in PARTS) and not self.gifs

    def model_name(self, folder: str) -> str:
        """The model spec whose folder name (`robustlens.study.layout.slug`) is ``folder``,
        from provenance, maps, regions and SRVR; ``folder`` when none matches."""
        names: list[str] = []
        models = self.provenance.get("models")
        if isinstance(models, Mapping):
            names += [str(m) for m in models]
        names += [it.name for it in self.maps + self.curves + self.regions if it.name]
        if self.srvr is not None and "model" in self.srvr.columns:
            names += [str(m) for m in self.srvr["model"]]
        return spec_of(folder, names)

    @property
    def layout(self) -> StudyLayout:
        return StudyLayout(self.root)

    def rel(self, p: Path) -> str:
        """``p`` relative to the study folder, as a URL-quoted relative href."""
        return quote(p.relative_to(self.root).as_posix())


def load_study(out_dir: str | os.PathLike[str]) -> StudyResults:
    """Read every result in ``out_dir``; unreadable files become ``problems``, not errors.

    Raises :class:`BadInput` when ``out_dir`` is not a folder or holds no results at all.
    """
    from ..semantic.maps import load_map

    root = Path(out_dir)
    if not root.is_dir():
        raise BadInput(f"{out_dir}: not a folder (expected a study folder written by "
                       f"`robustlens run`)")
    st = StudyResults(root=root.resolve())
    r = st.root
    lay = StudyLayout(r)
    for attr, found in (("maps", lay.maps()), ("curves", lay.curves())):
        for key, p in found:
            try:
                ds = load_map(p)
            except BadInput as exc:
                st.problems.append(f"{st.rel(p)}: {_about_file(exc, p)}")
                continue
            getattr(st, attr).append(Item(key, p, ds, str(ds.attrs.get("model", key[0]))))
    for key, p in lay.regions_files():
        try:
            doc = RegionsFile.read(p)
        except (OSError, ValueError, TypeError) as exc:
            st.problems.append(f"{st.rel(p)}: unreadable ({_first(exc)})")
            continue
        st.regions.append(Item(key, p, doc, doc.model or key[0]))
    sp = lay.srvr_csv
    if sp.is_file():
        try:
            df = pd.read_csv(sp)
            F.srvr_frame(df)  # checks the columns
            st.srvr = df
        except (OSError, ValueError, BadInput) as exc:
            st.problems.append(f"{st.rel(sp)}: unreadable ({_first(exc)})")
    for key, p in lay.class_scores_files():
        try:
            df = pd.read_csv(p)
            if "crs" not in df.columns:
                raise ValueError("no 'crs' column")
        except (OSError, ValueError) as exc:
            st.problems.append(f"{st.rel(p)}: unreadable ({_first(exc)})")
            continue
        st.representation.append(Item(key, p.parent, df, key[0]))

    for key, p in lay.attacks_files():
        try:
            df = pd.read_csv(p)
        except (OSError, ValueError) as exc:
            st.problems.append(f"{st.rel(p)}: unreadable ({_first(exc)})")
            continue
        st.attacks.append(Item(key, p.parent, df, key[0]))

    st.gifs = lay.turntables()
    pp = lay.provenance_json
    if pp.is_file():
        try:
            prov = json.loads(pp.read_text())
            st.provenance = prov if isinstance(prov, dict) else {}
        except (OSError, ValueError) as exc:
            st.problems.append(f"provenance.json: unreadable ({_first(exc)})")
    cp = lay.config_yaml
    if cp.is_file():
        try:
            st.config_text = cp.read_text()
        except OSError as exc:
            st.problems.append(f"config.yaml: unreadable ({_first(exc)})")
    for it in st.representation + st.attacks:
        it.name = st.model_name(it.name)
    if st.empty:
        raise BadInput(f"{out_dir}: no robustlens results found (expected maps/, curves/, "
                       f"regions/, srvr/, representation/ or attacks/ from `robustlens run`)")
    return st


def _where(it: Item, cam: bool = False) -> str:
    """``model / dataset`` (``/ CAM method`` with ``cam``) with the model's spec and the
    method's display name (``Grad-CAM++``), never folder names."""
    rest = list(it.key[1:])
    if cam and rest:
        rest[-1] = cam_name(rest[-1])
    return " / ".join([it.name or (it.key[0] if it.key else "")] + rest)


def _gif_name(st: StudyResults, key: tuple[str, ...], p: Path) -> str:
    """``model — mesh`` of a turntable (specs, not folder names; the layout gives the folder
    names, `StudyLayout.turntables`); the path of any other GIF."""
    if len(key) != 2:
        return st.rel(p)
    meshes = st.provenance.get("meshes")
    return (f"{st.model_name(key[0])} — "
            f"{spec_of(key[1], meshes if isinstance(meshes, Mapping) else [])}")


def _first(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:160] if lines else type(exc).__name__


def _about_file(exc: BadInput, path: Path) -> str:
    """What ``exc`` says is wrong with the file at ``path``, for a line that already names
    the file: just the reason (``exc.message``) when the error is about that file (its
    ``value``, e.g. ``load_map``'s ``param="map", value=path``), else the whole error."""
    if exc.value is not None and Path(exc.value) == path:
        return exc.message
    return str(exc)


# ----------------------------------------------------------------------------- helpers
def data_uri(path: str | os.PathLike[str]) -> str:
    """A file as a ``data:`` URI (MIME type from the suffix)."""
    p = Path(path)
    mime = _MIME.get(p.suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(p.read_bytes()).decode('ascii')}"


def _slug(*parts: str) -> str:
    """File / anchor name of a figure of the result in folder ``parts``."""
    return slug("_".join(parts))


_duration = duration


def _time(x: Any) -> dt.datetime | None:
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return dt.datetime.fromtimestamp(float(x), tz=dt.UTC)
    if isinstance(x, str) and x:
        try:
            t = dt.datetime.fromisoformat(x.replace("Z", "+00:00"))
        except ValueError:
            return None
        return t if t.tzinfo else t.replace(tzinfo=dt.UTC)
    return None


def study_seconds(prov: Mapping[str, Any]) -> float | None:
    """Wall time of the study: the ``run`` record, else ``finished - started``, else the sum
    of ``timings_s``."""
    run = prov.get("run")
    if isinstance(run, Mapping) and _num(run.get("wall_s")) is not None:
        return _num(run["wall_s"])
    a, b = _time(prov.get("started")), _time(prov.get("finished"))
    if a and b and b >= a:
        return (b - a).total_seconds()
    t = prov.get("timings_s")
    if isinstance(t, Mapping):
        if _num(t.get("total")) is not None:
            return _num(t["total"])
        vals = [v for v in (_num(x) for x in t.values()) if v is not None]
        return sum(vals) if vals else None
    return None


def _vec(v: Any, digits: int = 1) -> str:
    try:
        return "(" + ", ".join(fmt(float(x), digits) for x in v) + ")"
    except (TypeError, ValueError):
        return "—"


def _box_text(lo: Sequence[float], hi: Sequence[float], params: Sequence[str],
              units: Mapping[str, str]) -> str:
    parts = []
    for i, (a, b) in enumerate(zip(lo, hi, strict=False)):
        n = params[i] if i < len(params) else f"x{i}"
        u = units.get(n, "")
        u = "°" if u in ("deg", "degree", "degrees") else (f" {u}" if u and u != "1" else "")
        parts.append(f"{n} {fmt(float(a), 1)}–{fmt(float(b), 1)}{u}")
    return ", ".join(parts)


# ------------------------------------------------------------------------------ report
def _summary(st: StudyResults) -> dict[str, Any]:
    """The headline findings: most robust model, classes leaning on context, study time."""
    out: dict[str, Any] = {"robust": [], "robust_note": "", "context": [], "context_note": "",
                           "time": "", "not_run": []}
    if st.srvr is not None:
        df = F.srvr_frame(st.srvr)
        for label, sub in df.groupby("label", sort=False):
            sub = sub.sort_values("srvr", ascending=False)
            best = sub.iloc[0]
            few = _few_objects(best)
            line = {"method": str(label), "model": str(best["model"]),
                    "srvr": fmt(best["srvr"]), "low": fmt(best["srvr_low"]),
                    "high": fmt(best["srvr_high"]), "runner_up": "", "overlap": None,
                    "n_models": int(sub["model"].nunique()), "few_objects": few}
            if len(sub) > 1:
                second = sub.iloc[1]
                line["runner_up"] = (f"{second['model']} ({fmt(second['srvr'])}"
                                     + (f" [{fmt(second['srvr_low'])}, "
                                        f"{fmt(second['srvr_high'])}])" if few is None
                                        else ")"))
                line["overlap"] = bool(float(best["srvr_low"]) <= float(second["srvr_high"])) \
                    if few is None else None
            out["robust"].append(line)
    else:
        out["robust_note"] = "SRVR was not run, so no model ranking by semantic robustness."
    for it in st.representation:
        df = it.data.copy()
        df["crs"] = pd.to_numeric(df["crs"], errors="coerce")
        df = df.dropna(subset=["crs"])
        if df.empty:
            continue
        where = _where(it, cam=True)
        lift = pd.to_numeric(df["lift"], errors="coerce") if "lift" in df.columns else None
        ctx = df[lift < 1].sort_values("crs") if lift is not None else df.iloc[:0]
        lowest = df.sort_values("crs").iloc[0]
        out["context"].append({
            "where": where,
            "classes": [_class_text(r) for _, r in ctx.iterrows()],
            "lowest": _class_text(lowest),
        })
    if not st.representation:
        out["context_note"] = "Class robustness (representation) was not run."
    secs = study_seconds(st.provenance)
    summary = run_summary(st.provenance)
    if summary is not None:
        out["time"] = summary
    elif secs is not None:
        t = dict(st.provenance.get("timings_s") or {})
        reused = st.provenance.get("reused_steps_s")
        reused = reused if isinstance(reused, Mapping) else {}
        t.update(reused)  # steps reused from earlier runs count with the time they took then
        parts = []
        if t:
            steps = sorted(((str(k), v) for k, v in ((k, _num(x)) for k, x in t.items())
                            if k != "total" and v is not None), key=lambda kv: -kv[1])
            parts = [f"{k} {_duration(v)}" for k, v in steps[:3]]
            if len(steps) > 3:
                parts = ["longest steps: " + parts[0]] + parts[1:] + \
                    [f"{len(steps) - 3} more under Provenance"]
        out["time"] = _duration(secs) + (f" ({'; '.join(parts)})" if parts else "")
        done = [v for v in (_num(x) for x in reused.values()) if v is not None]
        if done:
            out["time"] += (f"; {len(done)} steps were reused from earlier runs, where they "
                            f"took {_duration(sum(done))}")
    out["not_run"] = [title for key, title, _ in PARTS if not st.has(key)]
    return out


def _class_text(r: pd.Series) -> str:
    name = str(r.get("class_name", r.get("class_id", "?")))
    s = f"{name} (CRS {fmt(r['crs'])}"
    if _num(r.get("crs_low")) is not None and _num(r.get("crs_high")) is not None:
        s += f" [{fmt(r['crs_low'])}, {fmt(r['crs_high'])}]"
    if _num(r.get("lift")) is not None:
        s += f", lift {fmt(r['lift'], 2)}"
    return s + ")"


def _links(st: StudyResults, paths: Iterable[Path]) -> list[dict[str, str]]:
    """Relative links to the files that exist; clashing names get their folder too."""
    ps = [p for p in paths if p.exists()]
    rels = [p.relative_to(st.root).parts for p in ps]
    out = []
    for p, r in zip(ps, rels, strict=True):
        same = [x for x in rels if x is not r and x[-1] == r[-1]]
        tail = [r[-1]]
        for i in range(2, len(r) + 1):  # add the folders that tell same-named files apart
            if not same:
                break
            if any(x[-i:-i + 1] != r[-i:-i + 1] for x in same):
                tail.insert(0, r[-i])
            same = [x for x in same if x[-i:] == r[-i:]]
        out.append({"href": st.rel(p), "text": "/".join(tail)})
    return out


def _colors(st: StudyResults) -> dict[str, str]:
    """One colour per method label across every figure of the study."""
    labels = [F.method_label(it.data.method or it.key[2], it.data.variant, it.data.starts,
                              it.data.criterion)
              for it in st.regions]
    if st.srvr is not None:
        labels += list(F.srvr_frame(st.srvr)["label"])
    return F.method_colors(labels)


def _map_sections(st: StudyResults, figdir: Path, log: Log | None = None
                  ) -> tuple[list[dict[str, Any]], Table | None]:
    """One entry per model x object: the map (with every method's regions drawn on it).
    ``log`` gets a line at least every 10% of the maps."""
    regions_by_key: dict[tuple[str, ...], list[Item]] = {}
    for it in st.regions:
        regions_by_key.setdefault(it.key[:2], []).append(it)
    out, rows = [], []
    colors = _colors(st)
    step = max(1, len(st.maps) // 10)
    for k, it in enumerate(st.maps):
        if log is not None and k and k % step == 0:
            log(f"report: drawing maps {k}/{len(st.maps)}")
        ds = it.data
        regs = regions_by_key.get(it.key[:2], [])
        # the map is the true-class score: draw the regions of the score criterion on it (the
        # top-1 criterion's boxes are in the regions table), unless there are no others
        regs = [r for r in regs if r.data.criterion == "score"] or regs
        title = (f"{ds.attrs.get('class_name', '')} | {ds.attrs.get('mesh', it.key[1])} | "
                 f"{it.name}")
        labels = [F.method_label(r.data.method or r.key[2], r.data.variant, r.data.starts,
                                 r.data.criterion) for r in regs]
        vdir = st.layout.views_dir(it.name, str(ds.attrs.get("mesh", it.key[1])))
        views = load_views(vdir)
        try:
            fig = interactive.map_figure(ds, [r.data for r in regs], labels,
                                         lambda lab: colors.get(lab, "#d62728"),
                                         views.get("labels") if views is not None else None)
        except (ValueError, KeyError, IndexError, TypeError) as exc:  # the static figure then
            st.problems.append(f"{st.rel(it.path)}: interactive map failed ({_first(exc)})")
            fig = None
        views = views if fig is not None else None
        img = ""
        if fig is None:  # a sampled or n-D map: the static figure
            fig_path = figdir / f"map_{_slug(*it.key)}.png"
            try:
                F.map_regions_figure(ds, [r.data for r in regs], fig_path, title=title,
                                     base_dirs=[r.path.parent for r in regs], colors=colors)
                img = data_uri(fig_path)
            except (BadInput, ValueError, KeyError, IndexError, TypeError) as exc:
                st.problems.append(f"{st.rel(it.path)}: figure failed ({_first(exc)})")
                png = it.path.parent / "map.png"
                img = data_uri(png) if png.is_file() else ""
        files = [it.path, it.path.parent / "map.png"] + [r.path for r in regs] + \
            [r.path.parent / "regions.png" for r in regs]
        conf = _confusions(st, views, vdir) if views is not None else None
        out.append({"title": f"{it.name} — {ds.attrs.get('mesh', it.key[1])}", "img": img,
                    "alt": f"semantic map {title}", "key": _slug(*it.key),
                    "fig": interactive.to_json(fig) if fig is not None else "",
                    "views": interactive.to_json(interactive.views_payload(
                        views, st.rel(vdir))) if views is not None else "",
                    "confusions": conf,
                    "caption": (f"True-class probability of “{ds.attrs.get('class_name', '')}”"
                                + (f"; robust regions of {len(regs)} method(s) (score "
                                   "criterion), star = start point"
                                   if regs else "")
                                + ("; hover a cell for its pose, score and prediction, click "
                                   "it for the render and the top-5" if views is not None
                                   else "")),
                    "links": _links(st, files), "anchor": "map-" + _slug(*it.key)})
        s = ds["score"]
        top1 = ds["top1"] if "top1" in ds else None
        cid = ds.attrs.get("class_id")
        rows.append([
            Cell(it.name, it.name, href="#map-" + _slug(*it.key)),
            Cell(str(ds.attrs.get("mesh", it.key[1]))),
            Cell(str(ds.attrs.get("class_name", ""))),
            Cell(" × ".join(f"{d} ({s.sizes[d]})" for d in s.dims), str(int(s.size))),
            _ncell(float(s.mean())),
            _ncell(float((s >= 0.5).mean())),
            _ncell(float((top1 == int(cid)).mean()) if top1 is not None and cid is not None
                   else None),
        ])
    table = Table(["model", "object", "class", "grid", "mean score", "share ≥ 0.5",
                   "top-1 share"], rows, "Per map: mean true-class probability, share of "
                  "poses scoring at least 0.5 and share where the class is the top-1 "
                  "prediction.") if rows else None
    return out, table


def _confusions(st: StudyResults, views: dict[str, Any], vdir: Path) -> dict[str, Any] | None:
    """The "what it says instead" panel of one map: the predictions at its non-robust poses,
    most frequent first, with an example render of each other class."""
    conf = views.get("confusions") or {}
    classes = conf.get("classes") or []
    if not conf.get("failing"):
        return {"text": f"No pose scores below {fmt(conf.get('threshold', 0.5))}: the model "
                        f"never fails on this map.", "rows": []}
    rows = []
    for c in classes:
        ex = vdir / "examples" / f"{c['example']}.jpg" if "example" in c else None
        pose = ", ".join(f"{k} {float(v):g}" for k, v in (c.get("pose") or {}).items())
        rows.append({"name": str(c["class_name"]), "share": f"{100 * float(c['share']):.0f}%",
                     "n": int(c["n"]), "true": bool(c.get("true_class")),
                     "img": st.rel(ex) if ex is not None and ex.is_file() else "",
                     "pose": pose, "prob": fmt(c.get("example_prob"))
                     if c.get("example_prob") is not None else ""})
    return {"text": f"At the {conf['failing']} of {conf['poses']} poses where "
                    f"p({views.get('class_name', '')}) < {fmt(conf.get('threshold', 0.5))}, "
                    f"the model predicts:", "rows": rows}


def _curve_sections(st: StudyResults, figdir: Path) -> list[dict[str, Any]]:
    by_mesh: dict[str, list[Item]] = {}
    for it in st.curves:
        by_mesh.setdefault(it.key[1], []).append(it)
    out = []
    for mesh, items in by_mesh.items():
        one_d = {it.name: it.data for it in items
                 if it.data["score"].ndim == 1 and "sample" not in it.data["score"].dims}
        path = figdir / f"curves_{_slug(mesh)}.png"
        try:
            F.score_curves_figure(one_d, path,
                                  title=f"{items[0].data.attrs.get('class_name', '')} | "
                                        f"{items[0].data.attrs.get('mesh', mesh)}")
            img = data_uri(path)
        except (BadInput, ValueError, KeyError) as exc:
            st.problems.append(f"curves/{mesh}: figure failed ({_first(exc)})")
            continue
        out.append({"title": str(items[0].data.attrs.get("mesh", mesh)), "img": img,
                    "alt": f"score curves {mesh}",
                    "caption": "True-class probability along the sweep, one line per model.",
                    "links": _links(st, [it.path for it in items])})
    return out


def _region_tables(st: StudyResults, figdir: Path) -> dict[str, Any] | None:
    """The regions of the whole study: one summary table (a row per model x object x method,
    start set and criterion; filterable), per-start details collapsed beneath it, and a
    figure only for regions that have no map to be drawn on."""
    if not st.regions:
        return None
    mapped = {it.key[:2] for it in st.maps}
    units: dict[tuple[str, ...], dict[str, str]] = {}
    for it in st.maps:
        units[it.key[:2]] = {str(c): str(it.data[c].attrs.get("units", ""))
                             for c in it.data.coords}
    groups: dict[tuple[str, ...], list[Item]] = {}
    for it in st.regions:
        groups.setdefault(it.key[:2], []).append(it)
    summary, details, figures = [], [], []
    for key, items in groups.items():
        first = items[0].data
        title = f"{first.model or key[0]} — {first.mesh or key[1]}"
        anchor = "map-" + _slug(*key) if key in mapped else ""
        if key not in mapped:
            path = figdir / f"regions_{_slug(*key)}.png"
            try:
                F.map_regions_figure(None, [i.data for i in items], path, title=title,
                                     base_dirs=[i.path.parent for i in items],
                                     colors=_colors(st))
                figures.append({"title": title, "img": data_uri(path)})
            except (BadInput, ValueError, KeyError, IndexError, TypeError) as exc:
                st.problems.append(f"regions/{'/'.join(key)}: figure failed ({_first(exc)})")
        for it in items:
            doc = it.data
            label = F.method_label(doc.method or it.key[2], doc.variant, doc.starts,
                                   doc.criterion)
            recs = doc.regions
            grew = [r for r in recs if r.grew]
            ratios = [v for v in (_num(r.volume_ratio) for r in recs) if v is not None]
            summary.append([
                Cell(doc.model or key[0], href="#" + anchor if anchor else None),
                Cell(doc.mesh or key[1]), Cell(doc.class_name or str(doc.class_id)),
                Cell(F.method_label(doc.method or it.key[2], doc.variant)),
                Cell(str(doc.starts)), Cell(str(doc.criterion)),
                _ncell(float(np.mean(ratios)) if ratios else None, 4),
                Cell(f"{len(grew)}/{len(recs)}", str(len(grew)),
                     cls="warn" if recs and not grew else ""),
                Cell(f"{sum(bool(r.converged) for r in recs)}/{len(recs)}",
                     str(sum(bool(r.converged) for r in recs))),
                _ncell(float(np.mean([r.evaluations for r in recs])) if recs else None, 0),
            ])
            params, u = doc.params, units.get(key, {})
            rows = []
            for i, rec in enumerate(recs):
                lo, hi, start = rec.lower, rec.upper, rec.start
                grown = bool(rec.grew)
                rows.append([
                    Cell(str(i + 1), str(i + 1)),
                    Cell(_vec(start), repr(float(start[0])) if start else ""),
                    Cell(_box_text(lo, hi, params, u) if grown and lo and hi else
                         "never grew: the start is not robust", repr(_num(rec.volume) or 0.0),
                         cls="" if grown else "warn"),
                    _ncell(rec.volume_ratio, 4),
                    # an IoU of two empty boxes says nothing
                    _ncell(rec.iou) if grown else Cell("—"),
                    Cell(fmt(rec.converged), str(rec.converged)),
                    _ncell(rec.evaluations),
                    _ncell(rec.wall_s, 2),
                ])
            thr = doc.threshold
            cap = (f"threshold {fmt(thr)}; " if thr is not None else "") + \
                "box = final region per parameter; volume ratio = its share of the domain."
            details.append({
                "title": f"{title}: {label}",
                "table": Table(["#", "start", "box", "volume ratio", "IoU vs map", "converged",
                                "evaluations", "wall (s)"], rows, cap),
                "links": _links(st, [it.path] + [it.path.parent / str(r.trace_file)
                                                 for r in recs if r.trace_file]),
            })
    table = Table(["model", "object", "class", "method", "starts", "criterion",
                   "mean volume ratio (SRVR share)", "grew", "converged", "evaluations / run"],
                  summary, "One row per model, object, method, start set and criterion; its "
                  "mean volume ratio is what it adds to that model's SRVR. Type in the box to "
                  "filter; click a header to sort. The boxes are drawn on the semantic maps "
                  "(click a model name).")
    return {"table": table, "details": details, "figures": figures}


def _srvr_section(st: StudyResults, figdir: Path) -> dict[str, Any] | None:
    if st.srvr is None:
        return None
    df = F.srvr_frame(st.srvr)
    img = ""
    try:
        F.srvr_figure(st.srvr, figdir / "srvr.png", colors=_colors(st))
        img = data_uri(figdir / "srvr.png")
    except (BadInput, ValueError, KeyError) as exc:
        st.problems.append(f"srvr/srvr.csv: figure failed ({_first(exc)})")
    known = {"model", "method", "variant", "srvr", "srvr_low", "srvr_high", "frac_not_grown",
             "n_runs", "evaluations", "label"}
    extra = [c for c in df.columns if c not in known]
    rows = []
    for _, r in df.sort_values("srvr", ascending=False).iterrows():
        rows.append([Cell(str(r["model"])), Cell(str(r["method"])),
                     Cell(fmt(r["variant"]) if str(r["variant"]) not in ("", "nan") else "—"),
                     _ci_cell(r["srvr"], r["srvr_low"], r["srvr_high"], 4)
                     if _few_objects(r) is None else
                     Cell(f"{fmt(r['srvr'], 4)} (no interval: {_few_objects(r)} object(s))",
                          repr(_num(r["srvr"])), cls="num warn"),
                     _ncell(r.get("frac_not_grown")), _ncell(r.get("n_runs")),
                     _ncell(r.get("evaluations"))] + [_ncell(r[c]) if _num(r[c]) is not None
                                                      else Cell(fmt(r[c])) for c in extra])
    table = Table(["model", "method", "variant", "SRVR [95% CI]", "share not grown", "runs",
                   "evaluations"] + extra, rows,
                  "SRVR = mean share of the domain volume covered by the robust region found "
                  "from each start point (bootstrap CI); “share not grown” = runs whose "
                  "start was not robust.")
    criteria = sorted(set(df["criterion"].astype(str))) if "criterion" in df.columns \
        else ["score"]
    return {"img": img, "table": table, "calibration": _calibration_table(st),
            "criteria_note": CRITERIA_SENTENCE if len(criteria) > 1 or criteria != ["score"]
            else "",
            "links": _links(st, [st.layout.srvr_dir / n for n in ("srvr.csv", "srvr_runs.csv",
                                                                 "srvr.png")])}


def _calibration_table(st: StudyResults) -> Table | None:
    """Per model, over every pose of its maps: top-1 accuracy against mean top-1 confidence
    (and the mean true-class score), so a reader can see whether an SRVR ranking under the
    score criterion is about confidence rather than about the decision changing."""
    from ..regions.criterion import calibration, pooled_calibration

    per_model: dict[str, list[dict[str, float]]] = {}
    for it in st.maps:
        try:
            per_model.setdefault(it.name, []).append(calibration(it.data))
        except (KeyError, ValueError, TypeError):
            continue
    rows = []
    for model, cals in per_model.items():
        c = pooled_calibration(cals)
        acc, conf = c["accuracy"], c["confidence"]
        gap = conf - acc if acc is not None and conf is not None else None
        rows.append([Cell(model), _ncell(c["poses"]), _ncell(acc), _ncell(conf),
                     _ncell(gap), _ncell(c["mean_score"]), _ncell(c["score_robust"])])
    if not rows:
        return None
    return Table(["model", "poses", "top-1 accuracy", "mean top-1 confidence",
                  "confidence − accuracy", "mean true-class score", "share score ≥ 0.5"], rows,
                 "Calibration on the study's own map poses (all objects). A confidence well "
                 "below the accuracy means the model is right but unsure: its SRVR under the "
                 "score criterion is small because of low confidence, not because its "
                 "decision changes; compare the top-1 rows above.")


def _class_sections(st: StudyResults, figdir: Path) -> list[dict[str, Any]]:
    out = []
    for it in st.representation:
        df = it.data
        where = _where(it, cam=True)
        img = ""
        path = figdir / f"classes_{_slug(*it.key)}.png"
        try:
            F.class_ranking_figure(df, path, title=f"Class robustness: {where}")
            img = data_uri(path)
        except (BadInput, ValueError, KeyError) as exc:
            st.problems.append(f"{st.rel(it.path)}: figure failed ({_first(exc)})")
        rows = []
        d = df.copy()
        d["crs"] = pd.to_numeric(d["crs"], errors="coerce")
        for _, r in d.sort_values("crs", ascending=True, na_position="last").iterrows():
            lift = _num(r.get("lift"))
            rows.append([
                _ncell(r.get("class_id")),
                Cell(str(r.get("class_name", "")), cls="warn" if lift is not None and lift < 1
                     else ""),
                _ncell(r.get("n_images")), _ncell(r.get("top1")), _ncell(r.get("top5")),
                _ci_cell(r.get("crs"), r.get("crs_low"), r.get("crs_high")),
                _ncell(r.get("crs_correct")),
                _ncell(r.get("lift"), 2, cls="warn" if lift is not None and lift < 1 else ""),
            ])
        table = Table(["class id", "class", "images", "top-1", "top-5", "CRS [95% CI]",
                       "CRS, correct only", "lift"],
                      rows, "CRS = share of the class-activation mass inside the object box "
                      "(over all images; “correct only”: over the images whose top-1 is the "
                      "true class); lift = CRS relative to the box's share of the image (< 1, "
                      "in red: the model looks at context more than at the object).")
        cams = it.path / "cam_overlays.png"
        files = [it.path / n for n in ("class_scores.csv", "image_scores.csv",
                                       "class_ranking.png", "cam_overlays.png")]
        out.append({"title": where, "img": img, "table": table,
                    "cam": data_uri(cams) if cams.is_file() else "",
                    "links": _links(st, files)})
    return out


#: what the ``rate`` of each attack row measures (`robustlens.representation.attacks`)
ATTACK_RATE_MEANING = {
    "clean": "accuracy: class predicted, unmodified images",
    "removal": "class still predicted with its object removed",
    "context_only": "class predicted from its context alone",
    "transplant": "other classes' images now predicted as it",
}


def _attack_sections(st: StudyResults) -> list[dict[str, Any]]:
    out = []
    for it in st.attacks:
        df = it.data
        ex = sorted((it.path / "examples").glob("*.png")) if (it.path / "examples").is_dir() \
            else []
        if "attack" in df.columns:
            df = df.copy()
            df.insert(df.columns.get_loc("attack") + 1, "rate measures",
                      [ATTACK_RATE_MEANING.get(str(a), "") for a in df["attack"]])
        out.append({
            "title": _where(it),
            "table": _frame_table(df, caption=(
                "“rate” is a share of images; what it measures depends on the row: accuracy "
                "on the unmodified images (clean), the class still predicted after its object "
                "is removed (removal), the class predicted from its context alone "
                "(context_only), other classes' images now predicted as the class "
                "(transplant; baseline: before the paste). High removal and context rates "
                "mean the class is recognised from its context.")),
            "examples": [{"img": data_uri(p), "name": p.stem, "href": st.rel(p)}
                         for p in ex[:MAX_EXAMPLES]],
            "more": len(ex) - min(len(ex), MAX_EXAMPLES),
            "links": _links(st, [it.path / "attacks.csv"]) +
            ([{"href": st.rel(it.path / "examples"), "text": "examples/"}] if ex else []),
        })
    return out


def _mapping(v: Any) -> Mapping[str, Any]:
    """``v`` when it is a mapping (a provenance section), else an empty one."""
    return v if isinstance(v, Mapping) else {}


def _provenance(st: StudyResults) -> dict[str, Any]:
    p = st.provenance
    kv: list[tuple[str, str]] = []

    def val(v: Any) -> str:
        return v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)

    for k in ("started", "finished"):
        if k in p:
            kv.append((k, val(p[k])))
    secs = study_seconds(p)
    if secs is not None:
        kv.append(("wall time", _duration(secs)))
    versions = _mapping(p.get("versions"))
    machine = _mapping(p.get("machine"))
    models = _mapping(p.get("models"))
    timings = _mapping(p.get("timings_s"))
    mrows = []
    mkeys: list[str] = []
    for info in models.values():
        info = info if isinstance(info, Mapping) else {"value": info}
        for k in info:
            if k not in mkeys:
                mkeys.append(str(k))
    for spec, info in models.items():
        info = info if isinstance(info, Mapping) else {"value": info}
        mrows.append([Cell(str(spec))] + [Cell(val(info[k]) if k in info else "—", cls="mono"
                                               if "sha" in k else "") for k in mkeys])
    steps = _mapping(p.get("steps"))
    reused = _mapping(p.get("reused_steps_s"))

    def nodes(name: str) -> str:
        info = steps.get(name)
        ids = info.get("nodes") if isinstance(info, Mapping) else None
        return ", ".join(str(n)[:16] for n in ids) if isinstance(ids, list) and ids else "—"

    trows = [[Cell(str(k)), _ncell(v, 2), Cell(_duration(_num(v)), repr(_num(v) or 0.0)),
              Cell("run"), Cell(nodes(str(k)), cls="mono")] for k, v in timings.items()]
    trows += [[Cell(f"{k} (reused)"), _ncell(v, 2), Cell(_duration(_num(v)),
                                                         repr(_num(v) or 0.0)),
               Cell("reused (its time when it was computed)"), Cell(nodes(str(k)), cls="mono")]
              for k, v in reused.items()]
    meshes = _mapping(p.get("meshes"))
    mesh_cols = ["class", "package", "path", "licence", "attribution", "up", "sha256"]
    mesh_rows = [[Cell(str(name))] + [Cell(val(info.get(c)) if isinstance(info, Mapping)
                                           and info.get(c) is not None else "—",
                                           cls="mono" if c in ("sha256", "path") else "")
                                      for c in mesh_cols] for name, info in meshes.items()]
    ex = p.get("executor") if isinstance(p.get("executor"), Mapping) else None
    if ex is not None:
        kv.append(("executor", ", ".join(f"{k} {val(v)}" for k, v in ex.items()
                                          if v is not None)))
    run = run_summary(p)
    if run is not None:
        kv.insert(0, ("this run", run))
    shown = ("config", "versions", "models", "machine", "timings_s", "started", "finished",
             "steps", "reused_steps_s", "meshes", "executor", "run")
    other = {k: v for k, v in p.items() if k not in shown}
    config = st.config_text
    if not config and p.get("config") is not None:
        config = json.dumps(p["config"], indent=2, sort_keys=True, default=str)
    return {
        "present": bool(p) or bool(config),
        "kv": kv,
        "raw": json.dumps(other, indent=1, sort_keys=True, default=str) if other else "",
        "meshes": Table(["mesh"] + mesh_cols, mesh_rows) if mesh_rows else None,
        "versions": Table(["package", "version"], [[Cell(str(k)), Cell(val(v))]
                                                   for k, v in versions.items()]),
        "models": Table(["model"] + mkeys, mrows),
        "machine": Table(["key", "value"], [[Cell(str(k)), Cell(val(v))]
                                            for k, v in machine.items()]),
        "timings": Table(["step", "seconds", "time", "this run", "nodes"], trows),
        "config": config,
        "links": _links(st, [st.layout.provenance_json, st.layout.config_yaml]),
    }


def render_report(st: StudyResults, figdir: Path | None = None, log: Log | None = None) -> str:
    """The report HTML of a loaded study (figures drawn into ``figdir``, default
    ``OUT/figures``); ``log`` gets progress lines."""
    import jinja2

    figdir = figdir or st.layout.figures_dir
    say = log or (lambda _m: None)
    say(f"report: {len(st.maps)} maps, {len(st.regions)} region files, "
        f"{len(st.representation)} class-robustness tables, {len(st.attacks)} attack tables")
    maps, maps_table = _map_sections(st, figdir, log)
    plotly_js = interactive.write_plotly_js(st.root) if any(m["fig"] for m in maps) else ""
    say("report: drawing regions, SRVR, class robustness and attacks")
    ctx: dict[str, Any] = {
        "title": f"robustlens report — {st.root.name}",
        "study": st.root.name,
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "version": __version__,
        "summary": _summary(st),
        "parts": [{"key": k, "title": t, "run": st.has(k), "marker": m} for k, t, m in PARTS],
        "maps": maps,
        "maps_table": maps_table,
        "plotly_js": plotly_js,
        "curves": _curve_sections(st, figdir),
        "regions": _region_tables(st, figdir),
        "srvr": _srvr_section(st, figdir),
        "classes": _class_sections(st, figdir),
        "attacks": _attack_sections(st),
        "gifs": [{"img": data_uri(p), "name": _gif_name(st, key, p), "href": st.rel(p)}
                 for key, p in st.gifs],
        "provenance": _provenance(st),
    }
    ctx["problems"] = list(st.problems)  # after the figures: their failures are listed too
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    return env.get_template("report.html.j2").render(**ctx)


def build_report(out_dir: str | os.PathLike[str], log: Log | None = None) -> Path:
    """Write ``OUT/report.html`` (self-contained) from the results in ``out_dir``.

    Report figures are also saved as PNG files under ``OUT/figures/``.  Nothing is
    recomputed.  Raises :class:`BadInput` if ``out_dir`` holds no robustlens results.
    Returns the path of the report. ``log`` gets progress lines.
    """
    st = load_study(out_dir)
    html = render_report(st, log=log)
    with atomic_path(st.layout.report_html) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return StudyLayout(Path(out_dir)).report_html
