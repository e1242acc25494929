"""Step functions: what one step of a study computes and writes, callable by the runner
(`robustlens.study.runner`) and by the CLI commands alike, so a command never repeats the
study's orchestration.

Each result that comes with a figure is written here as a pair: the data through its one
writer (`robustlens.regions.records`, `robustlens.regions.srvr`, `robustlens.semantic.maps`)
and the figure through `robustlens.figures`; data modules import no drawing code.

The study's steps (:func:`semantic_steps`: map, views and curve per mesh;
:func:`representation_steps`: the demo dataset, class robustness scores and attacks;
:func:`turntable_steps`) read a validated :class:`~robustlens.study.runner.StudyPlan` and an
executor (`robustlens.study.executor`), and run each unit of work through a
:class:`StepContext`: ``Study`` passes its own (a step is reused when its key matches, timed
and recorded in provenance); the default runs every step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .layout import slug, step_key

if TYPE_CHECKING:
    import xarray as xr

    from ..models import Classifier
    from ..regions.records import RegionsFile, RunRecord
    from ..regions.result import RegionResult
    from ..render import MeshRenderer
    from .executor import Executor
    from .runner import StudyPlan, _Object

__all__ = ["StepContext", "attacks_step", "curve_step", "demo_dataset_step", "map_step",
           "representation_steps", "run_every_step", "save_map_and_plot", "save_regions",
           "save_srvr", "scores_step", "semantic_steps", "srvr_runs", "srvr_step",
           "turntable_steps", "views_step"]

Advance = Callable[[int], None]


class RunStep(Protocol):
    """Runs one step: ``fn`` computes and writes into ``folder``; ``key`` and ``outputs`` say
    when an earlier result may be reused instead (``Study._step``)."""

    def __call__(self, name: str, folder: Path, key: str, fn: Callable[[], object],
                 outputs: list[Path] | None = None) -> None: ...


def run_every_step(name: str, folder: Path, key: str, fn: Callable[[], object],
                   outputs: list[Path] | None = None) -> None:
    """A :class:`RunStep` without reuse: make ``folder`` and run ``fn``."""
    folder.mkdir(parents=True, exist_ok=True)
    fn()


def no_bar(description: str, total: int) -> tuple[Any, Advance]:
    """No progress bar: ``(None, advance that does nothing)``."""
    return None, lambda k: None


def _silent(msg: str) -> None:
    pass


@dataclass(frozen=True)
class StepContext:
    """How the steps run.

    Attributes:
        run: runs one step (:class:`RunStep`); ``Study`` reuses finished steps and records
            timings, the default runs every step.
        bar: ``(description, total) -> (bar, advance)``, a started progress bar (None for
            none) the step stops when done.
        log: progress lines (``resumed map ...``, ``skip representation ...``).
        resume: resume a map from the chunks a killed run left (False: ``force``).
    """

    run: RunStep = run_every_step
    bar: Callable[[str, int], tuple[Any, Advance]] = no_bar
    log: Callable[[str], None] = _silent
    resume: bool = True


def _model_key(clf: Classifier) -> str:
    from ..fingerprint import model_key

    return model_key(clf)


def save_map_and_plot(ds: xr.Dataset, folder: str | Path) -> tuple[Path, Path]:
    """Write ``folder/map.nc`` and ``folder/map.png`` as a pair: both are written to temporary
    files first, so a failure never leaves one run's map beside another run's plot."""
    from ..figures import map_figure
    from ..io import atomic_paths

    folder = Path(folder)
    nc, png = folder / "map.nc", folder / "map.png"
    with atomic_paths([nc, png]) as (tmp_nc, tmp_png):
        ds.to_netcdf(tmp_nc, engine="h5netcdf")
        map_figure(ds, tmp_png)
    return nc, png


def save_regions(out_dir: str | Path, doc: RegionsFile, results: Sequence[RegionResult],
                 map_da: Any = None, gts: Sequence[Any] | None = None) -> Path:
    """Write ``traces/start_K.json``, ``regions.png`` and (last) ``regions.json``
    (`robustlens.regions.records.write_regions`); ``map_da``: the score map drawn under the
    regions. Returns the path of ``regions.json``."""
    from ..figures import map_regions_figure
    from ..regions.records import write_regions

    out = Path(out_dir)
    map_ds = None
    if map_da is not None:
        map_ds = map_da.to_dataset(name="score")
        map_ds.attrs.update(map_da.attrs)

    def figure(data: dict[str, Any]) -> None:
        map_regions_figure(map_ds, [data], out / "regions.png", base_dirs=[out],
                           title=f"{doc.class_name} on {doc.mesh}: {doc.method}/{doc.variant}")

    return write_regions(out, doc, results, gts, figure=figure)


def save_srvr(out_dir: str | Path, runs: Sequence[RunRecord | Mapping[str, Any]],
              table: Sequence[Mapping[str, Any]], title: str = "") -> tuple[Path, Path, Path]:
    """Write ``srvr_runs.csv``, ``srvr.png`` (`robustlens.figures.srvr_figure`) and (last)
    ``srvr.csv`` atomically; returns (srvr.csv, srvr_runs.csv, srvr.png)."""
    import pandas as pd

    from ..figures import srvr_figure
    from ..regions.srvr import write_srvr

    out = Path(out_dir)
    csv_path, runs_path = write_srvr(
        out, runs, table,
        figure=lambda t: srvr_figure(pd.DataFrame(list(t)), out / "srvr.png", subtitle=title))
    return csv_path, runs_path, out / "srvr.png"


def srvr_runs(models: Sequence[tuple[Classifier, Sequence[int]]],
              meshes: Sequence[tuple[str, Any]], search: Any, batch_size: int,
              image_size: int | None = None, *, spp: int | None = None,
              spp_grad: int | None = None,
              advance: Callable[[], None] = lambda: None) -> list[RunRecord]:
    """Grow the regions of every model x mesh x method of ``search`` (a validated
    `robustlens.regions.scene.SceneSearch`: parameters, domain, starts, fixed
    parameters, methods, variant, criterion, gradient source) from every start point,
    rendering: the runs SRVR ranks.

    Args:
        models: (classifier, class id per mesh).
        meshes: (printable spec, loaded mesh).
        spp, spp_grad: Mitsuba's samples per pixel (``search.grad`` mitsuba only).
        advance: called once per finished run (progress).
    """
    import gc

    from ..regions.records import RunRecord
    from ..regions.scene import regions_for_score
    from ..regions.whitebox import scene_score_fn
    from ..render import MeshRenderer

    runs: list[RunRecord] = []
    for clf, ids in models:
        renderer: MeshRenderer | None = MeshRenderer(image_size=image_size or clf.input_size)
        for (mesh_spec, mesh), cid in zip(meshes, ids, strict=True):
            score_fn, grad_fn = scene_score_fn(search.grad, clf, mesh, cid, list(search.names),
                                               search.domain, dict(search.fixed), renderer,
                                               batch_size, search.criterion, spp=spp,
                                               spp_grad=spp_grad)
            with score_fn as fn:
                for meth in search.methods:
                    res = regions_for_score(fn, search.starts, search.domain, meth,
                                            search.variant, periodic=search.periodic,
                                            grad_fn=grad_fn, on_result=lambda k, r: advance(),
                                            **search.hyper_for(meth))
                    runs += [RunRecord.from_result(clf.spec, mesh_spec, cid, clf.labels[cid],
                                                   r, criterion=search.criterion) for r in res]
        renderer = None  # released before the next model's renderer is made
        gc.collect()
    return runs


def srvr_step(out_dir: str | Path, runs: Sequence[RunRecord | Mapping[str, Any]], *,
              n_boot: int = 2000, seed: int = 0, title: str = ""
              ) -> tuple[list[dict[str, Any]], tuple[Path, Path, Path]]:
    """The SRVR ranking of ``runs`` (`robustlens.regions.srvr.srvr_table`) written with its
    figure (:func:`save_srvr`); returns the table and (srvr.csv, srvr_runs.csv, srvr.png)."""
    from ..regions.srvr import srvr_table

    table = srvr_table(runs, n_boot=n_boot, seed=seed)
    return table, save_srvr(out_dir, runs, table, title=title)


# ------------------------------------------------------------------ the study's steps
def map_step(plan: StudyPlan, executor: Executor | None, ctx: StepContext, clf: Classifier,
             obj: _Object, renderer: MeshRenderer) -> str:
    """The semantic map of ``clf`` on ``obj`` over the model's grid (`plan.axes_for`),
    chunked and resumed (`robustlens.semantic.chunks.run_chunked_map`) on ``executor``
    (None: in this process), then ``map.nc`` + ``map.png``. Returns the step's key (the
    views and regions steps name the map they read by it)."""
    from ..semantic import SemanticMap
    from ..semantic.chunks import clear_chunks, run_chunked_map

    cfg = plan.config.semantic
    axes = plan.axes_for(clf)
    cid = plan.class_ids[(clf.spec, obj.spec)]
    folder = plan.layout.map_dir(clf.spec, obj.spec)
    key = step_key("map", _model_key(clf), obj.spec, obj.digest, obj.up, cid,
                   [(a.name, a.values.tolist()) for a in axes], cfg.fixed)

    def run() -> None:
        smap = SemanticMap(axes, fixed=cfg.fixed, batch_size=cfg.batch_size,
                           seed=plan.config.seed)
        bar, adv = ctx.bar(f"map {slug(clf.spec)} {obj.spec}", smap.n_poses())
        try:
            ds = run_chunked_map(smap, clf, obj.mesh, cid, folder, executor, renderer,
                                 chunk_size=cfg.chunk_size, mesh_name=obj.spec, log=ctx.log,
                                 progress=adv, resume=ctx.resume)
        finally:
            if bar:
                bar.stop()
        save_map_and_plot(ds, folder)
        clear_chunks(folder)

    ctx.run(f"map {clf.spec} {obj.spec}", folder, key, run,
            [folder / "map.nc", folder / "map.png"])
    return key


def views_step(plan: StudyPlan, ctx: StepContext, clf: Classifier, obj: _Object,
               renderer: MeshRenderer, map_key: str) -> None:
    """Renders and top-5 at every ``stride``-th cell of the map :func:`map_step` made (key
    ``map_key``), and the classes predicted where it fails (the report's clickable maps)."""
    from ..semantic import load_map
    from ..semantic.views import ViewSpec, compute_views

    cfg = plan.config
    vc = cfg.semantic.views
    spec = ViewSpec(stride=None if vc.stride == "auto" else vc.stride, size=vc.size)
    cid = plan.class_ids[(clf.spec, obj.spec)]
    map_folder = plan.layout.map_dir(clf.spec, obj.spec)
    folder = plan.layout.views_dir(clf.spec, obj.spec)
    threshold = cfg.regions.threshold
    key = step_key("views", map_key, vc.model_dump(), threshold)

    def run() -> None:
        compute_views(load_map(map_folder / "map.nc"), clf, obj.mesh, cid,
                      cfg.semantic.fixed, renderer, folder, spec, threshold,
                      cfg.semantic.batch_size)

    # maps that can be clicked (1-D / 2-D grids) write views.json; it is the step's result
    clickable = 1 <= len(plan.axes_for(clf)) <= 2
    ctx.run(f"views {clf.spec} {obj.spec}", folder, key, run,
            [folder / "views.json"] if clickable else [])


def curve_step(plan: StudyPlan, executor: Executor | None, ctx: StepContext,
               clf: Classifier, obj: _Object, renderer: MeshRenderer) -> None:
    """The score curve of ``clf`` on ``obj`` (``semantic.curve``: one swept parameter, the
    others at given values), chunked like a map; ``map.nc`` + ``map.png`` in its folder."""
    from ..semantic import SemanticMap
    from ..semantic.chunks import clear_chunks, run_chunked_map

    if plan.curve is None:
        return
    cfg = plan.config.semantic
    axes1, at = plan.curve
    cid = plan.class_ids[(clf.spec, obj.spec)]
    folder = plan.layout.curve_dir(clf.spec, obj.spec)
    fixed = {**cfg.fixed, **at}

    def run() -> None:
        ds = run_chunked_map(
            SemanticMap(axes1, fixed=fixed, batch_size=cfg.batch_size), clf, obj.mesh, cid,
            folder, executor, renderer, chunk_size=cfg.chunk_size, mesh_name=obj.spec,
            label="curve", log=ctx.log, resume=ctx.resume)
        save_map_and_plot(ds, folder)
        clear_chunks(folder)

    ctx.run(f"curve {clf.spec} {obj.spec}", folder,
            step_key("curve", _model_key(clf), obj.spec, obj.digest, obj.up, cid,
                     axes1[0].values.tolist(), fixed), run,
            [folder / "map.nc", folder / "map.png"])


def semantic_steps(plan: StudyPlan, executor: Executor | None, ctx: StepContext,
                   clf: Classifier, renderer: MeshRenderer) -> dict[tuple[str, str], str]:
    """Every mesh's map (:func:`map_step`), then its views (when ``semantic.views`` is on)
    and curve (when ``semantic.curve`` is set); returns the map keys by (model, mesh)."""
    keys: dict[tuple[str, str], str] = {}
    for obj in plan.objects:
        key = keys[(clf.spec, obj.spec)] = map_step(plan, executor, ctx, clf, obj, renderer)
        if plan.config.semantic.views.enabled:
            views_step(plan, ctx, clf, obj, renderer, key)
        curve_step(plan, executor, ctx, clf, obj, renderer)
    return keys


def demo_dataset_step(plan: StudyPlan, ctx: StepContext) -> Path:
    """The study's own objects rendered onto backgrounds, boxes from the render
    (`robustlens.render.composite.make_rendered_dataset`); returns its ``boxes.csv``."""
    from ..render.composite import make_rendered_dataset

    cfg = plan.config
    rc = cfg.representation
    data_dir = plan.layout.demo_data_dir
    meshes = [o.spec for o in plan.objects]
    classes = [str(o.class_name) for o in plan.objects]
    ups = [o.up for o in plan.objects]
    key = step_key("demo-data", meshes, [o.digest for o in plan.objects], classes, ups,
                   rc.demo_images_per_object, rc.demo_background, cfg.seed)
    ctx.run("demo dataset", data_dir, key, functools.partial(
        make_rendered_dataset, data_dir, [o.source for o in plan.objects], classes,
        rc.demo_images_per_object, seed=cfg.seed, background=rc.demo_background, ups=ups),
        [data_dir / "boxes.csv"])
    return data_dir / "boxes.csv"


def scores_step(plan: StudyPlan, executor: Executor, ctx: StepContext, clf: Classifier,
                dataset: Any, dname: str, data_digest: str, cam: str) -> None:
    """Class robustness scores of ``clf`` on ``dataset`` (named ``dname``) with one CAM
    method (`robustlens.representation.scores.ClassRobustness`, from the executor): the CSVs,
    the class ranking and the CAM overlays of the least robust classes."""
    from ..figures import cam_overlays_figure, class_ranking_figure
    from ..representation.cam_methods import cam_name
    from ..representation.scores import remove_partials

    cfg = plan.config
    rc = cfg.representation
    folder = plan.layout.representation_dir(clf.spec, dname, cam)
    key = step_key("score", _model_key(clf), data_digest, cam, rc.correct_only, cfg.seed)

    def run() -> None:
        est = executor.class_robustness(cam=cam, batch_size=rc.batch_size,
                                        correct_only=rc.correct_only, seed=cfg.seed)
        bar, adv = ctx.bar(f"CAM {cam} {dname}", len(dataset))
        try:
            # saves the CSVs; partial rows are kept until the plots are written
            # (a kill while plotting never means scoring again)
            est.run(clf, dataset, folder, progress=adv, keep_partial=True)
        finally:
            if bar:
                bar.stop()
        class_ranking_figure(est.class_scores_, folder / "class_ranking.png",
                             title=f"Class robustness: {clf.spec} / {dname} / {cam_name(cam)}")
        # least robust classes first (the overlays take class ids, not the table)
        class_ids = [int(c) for c in est.class_scores_.sort_values("crs")["class_id"]]
        cam_overlays_figure(clf, dataset, est.image_scores_, class_ids,
                            folder / "cam_overlays.png", cam=cam)
        remove_partials(folder)

    ctx.run(f"scores {clf.spec} {dname} {cam}", folder, key, run,
            [folder / "class_scores.csv", folder / "image_scores.csv"])


def attacks_step(plan: StudyPlan, ctx: StepContext, clf: Classifier, dataset: Any,
                 dname: str, data_digest: str) -> None:
    """Object removal and context attacks (`robustlens.representation.attacks`) on the
    ``representation.attack_classes`` least robust classes of the first CAM's scores."""
    import pandas as pd

    from ..representation.attacks import run_attacks, write_attacks

    cfg = plan.config
    rc = cfg.representation
    cs = pd.read_csv(plan.layout.representation_dir(clf.spec, dname, rc.cams[0])
                     / "class_scores.csv")
    flagged = [int(c) for c in cs.sort_values("crs")["class_id"][:rc.attack_classes]]
    folder = plan.layout.attacks_dir(clf.spec, dname)
    key = step_key("attacks", _model_key(clf), data_digest, flagged, rc.cams[0], cfg.seed,
                   rc.batch_size)

    def run() -> None:
        df = run_attacks(clf, dataset, flagged, cam=rc.cams[0], batch_size=rc.batch_size,
                         seed=cfg.seed, examples_dir=folder / "examples")
        write_attacks(df, folder)

    ctx.run(f"attacks {clf.spec} {dname}", folder, key, run, [folder / "attacks.csv"])


def representation_steps(plan: StudyPlan, executor: Executor, ctx: StepContext,
                         clf: Classifier) -> None:
    """Per dataset of ``representation.datasets`` (``demo``: :func:`demo_dataset_step`
    first): :func:`scores_step` per CAM method, then :func:`attacks_step`. A model without
    gradients or a CAM layer is skipped (logged)."""
    from ..fingerprint import items_digest
    from ..representation.datasets import load_dataset

    rc = plan.config.representation
    if not clf.differentiable or clf.target_layer is None:
        ctx.log(f"skip representation for {clf.spec}: no gradients / CAM layer")
        return
    for d in rc.datasets:
        if d == "demo":
            path, dname = demo_dataset_step(plan, ctx), "demo"
            dataset = load_dataset(path, clf.labels)
        else:
            dname = plan.layout.dataset_name(d)
            dataset = plan.datasets[(clf.spec, d)]  # loaded and checked by plan_study
        data_digest = items_digest(dataset)  # boxes, classes and image bytes
        for cam in rc.cams:
            scores_step(plan, executor, ctx, clf, dataset, dname, data_digest, cam)
        if rc.attacks and rc.attack_classes > 0:
            attacks_step(plan, ctx, clf, dataset, dname, data_digest)


def turntable_steps(plan: StudyPlan, ctx: StepContext, clf: Classifier,
                    renderer: MeshRenderer) -> None:
    """A turntable GIF of each mesh with ``clf``'s prediction (`robustlens.figures`)."""
    from ..figures import turntable_gif

    for obj in plan.objects:
        cid = plan.class_ids[(clf.spec, obj.spec)]
        path = plan.layout.turntable_gif(clf.spec, obj.spec)
        key = step_key("turntable", _model_key(clf), obj.spec, obj.digest, obj.up, cid)
        ctx.run(f"turntable {clf.spec} {obj.spec}", path.parent / f".{path.stem}", key,
                functools.partial(turntable_gif, clf, obj.mesh, cid, path, renderer=renderer),
                [path])
