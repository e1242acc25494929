"""The main job: one study config -> maps, curves, robust regions, SRVR, class robustness
scores, attacks, a turntable GIF and the HTML report, with provenance.

Every step writes into its own folder and finishes with a ``.done.json`` holding a key (a
hash of everything that determines its result: the config section, the *contents* of the
model's weight file (and of a ``python:`` model's source), the model's input settings, the
mesh file with the materials and textures it references, the dataset's boxes and image bytes,
and the robustlens version). Re-running skips a step only when its key matches and all its
output files exist; ``force`` recomputes. Every input is validated before any step runs.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .. import __version__
from ..errors import BadInput, printable
from ..fingerprint import mesh_fingerprint
from ..io import write_text_atomic
from ..models import Classifier, ModelOverrides, load_model
from ..models.runtime import prepare_runtime
from ..regions.records import RunRecord
from ..regions.starts import AUTO_STARTS_RULE
from ..render import MeshRenderer, demo_class, load_mesh
from .config import StudyConfig
from .layout import StudyLayout, check_unique_slugs
from .layout import step_key as _key
from .steps import StepContext, representation_steps, semantic_steps, turntable_steps
from .summary import run_record

Log = Callable[[str], None]


@dataclass
class _Object:
    spec: str
    up: str
    class_name: str | int
    mesh: Any
    digest: str = ""  # contents of the mesh file and the files it references
    source: str = ""  # the spec as given (spec itself is a printable name)


def _mesh_provenance(o: _Object) -> dict[str, Any]:
    from ..render.catalog import CATALOG

    entry = CATALOG.get(str(o.source or o.spec))
    info: dict[str, Any] = {"class": o.class_name, "up": o.up, "sha256": o.digest}
    if entry is not None:
        # a catalog mesh is loaded with its own up axis, whatever the config said
        info.update(up=entry.up, package=entry.distribution, path=entry.path,
                    licence=entry.licence, attribution=entry.attribution)
    return info


def model_fingerprint(clf: Classifier) -> str:
    """The model's part of a step key: its whole identity (:func:`~robustlens.fingerprint.model_key`)."""
    from ..fingerprint import model_key

    return model_key(clf)


@dataclass
class StudyPlan:
    """A validated study: every input parsed, loaded and checked before any step runs
    (:func:`plan_study`). The step functions read only this."""

    config: StudyConfig
    out: Path
    grid: list[Any]  # the semantic grid's axes (SweepAxis)
    model_grids: dict[str, list[Any]]  # a model's own grid, by model spec
    curve: tuple[list[Any], dict[str, float]] | None  # (swept axis, values of the others)
    objects: list[_Object]
    models: list[Classifier]
    overrides: list[ModelOverrides]  # one per model: how each was loaded (Ray workers too)
    class_ids: dict[tuple[str, str], int]  # (model spec, mesh spec) -> class id
    search: Any  # the regions search (`regions.scene.SceneSearch`), None with regions off
    datasets: dict[tuple[str, str], Any]  # (model spec, dataset) -> loaded dataset

    @property
    def domain(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) arrays of the regions search."""
        return self.search.domain

    @property
    def starts(self) -> np.ndarray:
        """The fixed start points (k, len(regions.params)); k = 0 with automatic starts only."""
        return self.search.starts if self.search is not None else np.zeros((0, 0))

    @property
    def layout(self) -> StudyLayout:
        return StudyLayout(self.out)

    def axes_for(self, clf: Classifier) -> list[Any]:
        """The grid a model's maps sweep: its own, else the semantic grid."""
        return self.model_grids.get(clf.spec, self.grid)


def plan_study(cfg: StudyConfig, out: Path | str | None = None, *, log: Log = print,
               detail: Log = lambda _msg: None) -> StudyPlan:
    """Validate and load everything before any computation (fail fast, nothing written);
    last, each model's runtime is prepared (this may export a model to ONNX)."""
    out = Path(out or cfg.out)
    from ..io import check_out_dir
    from ..semantic import parse_grids
    from ..semantic.grid import check_pose_count, n_poses

    check_out_dir(out, "out")
    confirm = "raise semantic.max_poses to confirm"
    grid = parse_grids([f"{k}={v}" for k, v in cfg.semantic.grid.items()], "semantic.grid")
    check_pose_count(n_poses(grid), cfg.semantic.max_poses, "semantic.grid", confirm)
    model_grids: dict[str, list[Any]] = {}
    for mc in cfg.model_configs():
        if mc.grid:
            model_grids[mc.spec] = parse_grids(
                [f"{k}={v}" for k, v in mc.grid.items()], f"models[{mc.spec}].grid")
            check_pose_count(n_poses(model_grids[mc.spec]), cfg.semantic.max_poses,
                             f"models[{mc.spec}].grid", confirm)
    from ..render.scene import check_values, get_parameter

    for k, v in cfg.semantic.fixed.items():
        check_values(k, np.array([v]), "semantic.fixed")
    curve: tuple[list[Any], dict[str, float]] | None = None
    if cfg.semantic.curve:
        c = cfg.semantic.curve  # typed by the config model: param, grid, at
        get_parameter(c.param, "semantic.curve.param")
        curve = (parse_grids([f"{c.param}={c.grid}"], "semantic.curve.grid"),
                 {str(k): float(v) for k, v in c.at.items()})
        for k, v in curve[1].items():
            check_values(k, np.array([v]), "semantic.curve.at")
        if c.param in curve[1]:
            raise BadInput(f"config semantic.curve.at: {c.param} is the swept parameter")
    objects: list[_Object] = []
    for me in cfg.mesh_configs():
        mesh = load_mesh(me.mesh, up=me.up)
        cls = me.class_ if me.class_ is not None else demo_class(me.mesh)
        if cls is None:
            raise BadInput(f"config semantic.meshes: {me.mesh} needs a class "
                           f"(write {{mesh: {me.mesh}, class: NAME}})")
        # the spec is only a name from here on (files, titles): no undecodable bytes
        objects.append(_Object(printable(me.mesh), me.up, cls, mesh,
                               mesh_fingerprint(me.mesh, mesh), me.mesh))
    models: list[Classifier] = []
    overrides: list[ModelOverrides] = []
    for mc in cfg.model_configs():
        ov = ModelOverrides(input_size=mc.input_size, mean=mc.mean, std=mc.std,
                            interpolation=mc.interpolation, labels_file=mc.labels,
                            target_layer=mc.target_layer, weights=mc.weights,
                            device=cfg.device)
        # the runtime is prepared once every input is valid (below)
        models.append(load_model(mc.spec, ov, runtime="torch"))
        overrides.append(ov)
    # two inputs that would share a result folder are refused, never overwritten
    check_unique_slugs([o.spec for o in objects], "meshes", "mesh")
    check_unique_slugs([m.spec for m in models], "models", "model")
    if cfg.representation.enabled:
        check_unique_slugs(cfg.representation.datasets, "datasets", "data",
                           StudyLayout.dataset_name)
    class_ids = {(m.spec, o.spec): m.class_index(o.class_name)
                 for m in models for o in objects}
    search: Any = None
    if cfg.regions.enabled:
        from ..regions.scene import SceneSearch

        rc = cfg.regions
        # validated once; criterion per run (regions.criteria) by dataclasses.replace
        try:
            search = SceneSearch.create(
                rc.params, {k: (float(v[0]), float(v[1])) for k, v in rc.domain.items()},
                rc.fixed_starts(), cfg.semantic.fixed, rc.methods, rc.variant,
                rc.criteria[0], rc.threshold, rc.max_evals, rc.grad, require_starts=False)
        except BadInput as exc:  # named by the config's fields (regions.starts, ...)
            from .config import config_error

            raise config_error(exc) from None
        if rc.grad == "mitsuba":  # the white-box backend is checked now, not after the maps
            if rc.score == "map":
                raise BadInput("config regions.grad: 'mitsuba' needs regions.score: render "
                               "(a map has no renderer to differentiate)")
            from ..render.diff import backend_problem

            problem = backend_problem()
            if problem is not None:
                raise BadInput(f"config regions.grad mitsuba: {problem}")
        if cfg.regions.n_auto_starts():
            for spec, axes in [("semantic.grid", grid)] + [
                    (f"models[{k}].grid", v) for k, v in model_grids.items()]:
                if sorted(a.name for a in axes) != sorted(cfg.regions.params):
                    raise BadInput(f"config regions.auto_starts: needs a map over "
                                   f"regions.params ({', '.join(cfg.regions.params)}), but "
                                   f"{spec} sweeps {', '.join(a.name for a in axes)}")
    # datasets are read and every row checked now, against each model's labels, not an
    # hour into the study
    datasets: dict[tuple[str, str], Any] = {}
    for d in cfg.representation.datasets if cfg.representation.enabled else []:
        if d == "demo":
            continue
        if not Path(d).exists():
            raise BadInput(f"config representation.datasets: {d} not found")
        from ..representation.datasets import load_dataset

        for m in models:
            if m.differentiable and m.target_layer is not None:
                try:
                    datasets[(m.spec, d)] = load_dataset(d, m.labels)
                except BadInput as exc:  # the field leads, then the file or row and why
                    raise BadInput(f"config representation.datasets ({m.spec}): "
                                   f"{exc.render(lead='')}") from None
    for m in models:  # last: inputs are valid; this may export a model to ONNX
        prepare_runtime(m, cfg.runtime, log=log)
        detail(m.describe())
    return StudyPlan(cfg, out, grid, model_grids, curve, objects, models, overrides,
                     class_ids, search, datasets)


@dataclass
class Study:
    """Run a :class:`StudyConfig` into ``out``: plan it (:func:`plan_study`), then run the
    step functions of `robustlens.study.steps` in order, each step reused when finished
    (:meth:`_step`: keys, timings, the nodes that ran it), then SRVR, provenance and report.

    Args:
        config: the validated study.
        out: output folder (default ``config.out``).
        force: recompute finished steps.
        log: where progress lines go.
        detail: where the lines of ``-v`` go (each model's preprocessing and identity, each
            step's key and why it was reused or run); dropped by default.
        progress: factory of a rich Progress (or None for silent runs).
        ray: a Ray address (``local``, ``auto``, ``HOST:PORT``, ``ray://HOST:10001``) to run
            map chunks and region searches as Ray tasks; overrides the config's
            ``ray.address``. None (and no ``ray.address``): everything in this process.
    """

    config: StudyConfig
    out: Path | None = None
    force: bool = False
    log: Log = print
    progress: Callable[[], Any] | None = None
    ray: str | None = None
    detail: Log = lambda _msg: None
    timings_: dict[str, float] = field(default_factory=dict)
    skipped_: list[str] = field(default_factory=list)
    auto_starts_: dict[str, list[list[float]]] = field(default_factory=dict)
    reused_timings_: dict[str, float] = field(default_factory=dict)
    run_: dict[str, Any] = field(default_factory=dict)  # wall time and reuse, after run()
    nodes_: dict[str, list[str]] = field(default_factory=dict)
    # set by _prepare (declared here: nothing else is added to a Study)
    plan: StudyPlan = field(init=False)
    layout_: StudyLayout = field(init=False)
    executor_: Any = field(init=False, default=None)
    map_keys_: dict[tuple[str, str], str] = field(init=False, default_factory=dict)

    # ------------------------------------------------------------ preparation
    def _prepare(self) -> None:
        """Validate and load everything before any computation (:func:`plan_study`), then
        make the executor (connects to Ray, if asked, and checks every node; still before
        any output)."""
        self.plan = plan_study(self.config, self.out, log=self.log, detail=self.detail)
        self.out = self.plan.out
        self.layout_ = self.plan.layout
        from .executor import make_executor

        # last: connects to Ray (if asked) and checks every node, still before any output
        self.executor_ = make_executor(self.ray, self.config.ray, self.config.device,
                                       list(zip(self.plan.models, self.plan.overrides,
                                                strict=True)))

    # ------------------------------------------------------------ step helper
    def _step(self, name: str, folder: Path, key: str, fn: Callable[[], object],
              outputs: list[Path] | None = None) -> None:
        """Run ``fn`` unless the step's key matches the finished one and all ``outputs``
        exist (a deleted result file is recomputed, never assumed)."""
        done = folder / ".done.json"
        present = all(p.is_file() for p in outputs or [])
        why = "force=True" if self.force else ("never run" if not done.is_file() else
                                            "a result file is missing" if not present else "")
        if not self.force and done.is_file() and present:
            try:
                prev = json.loads(done.read_text())
                why = "its inputs changed (key was " + str(prev.get("key"))[:12] + ")"
                if prev.get("key") == key:
                    self.detail(f"{name}: key {key[:12]} matches, reusing {folder}")
                    self.skipped_.append(name)
                    self.reused_timings_[name] = round(float(prev.get("seconds", 0.0)), 2)
                    self.nodes_[name] = list(prev.get("nodes", []))
                    self.log(f"reuse {name}")
                    return
            except (OSError, json.JSONDecodeError):
                pass
        self.detail(f"{name}: key {key[:12]}, running ({why})")
        t = time.perf_counter()
        folder.mkdir(parents=True, exist_ok=True)
        self.executor_.begin_step()
        fn()
        dt = time.perf_counter() - t
        self.timings_[name] = round(dt, 2)
        self.nodes_[name] = self.executor_.end_step()
        write_text_atomic(done, json.dumps({"key": key, "seconds": dt,
                                            "nodes": self.nodes_[name]}))
        self.log(f"done {name} ({dt:.1f} s)")

    def _bar(self, description: str, total: int) -> tuple[Any, Callable[[int], None]]:
        if self.progress is None:
            return None, lambda k: None
        bar = self.progress()
        bar.start()
        task = bar.add_task(description, total=total)
        return bar, lambda k: bar.advance(task, k)

    def _context(self) -> StepContext:
        """How this study runs a step function's steps (`robustlens.study.steps`): reused when
        finished (:meth:`_step`), with this study's bars and log; ``force`` never resumes."""
        return StepContext(run=self._step, bar=self._bar, log=self.log, resume=not self.force)

    # ------------------------------------------------------------------ steps
    def _regions(self, clf: Classifier, renderer: MeshRenderer) -> list[RunRecord]:
        from ..regions.criterion import criterion_values
        from ..regions.scene import map_for_params
        from ..regions.starts import auto_starts
        from ..semantic import load_map

        rc = self.config.regions
        search = self.plan.search
        names, periodic = list(search.names), search.periodic
        runs: list[RunRecord] = []
        for o in self.plan.objects:
            cid = self.plan.class_ids[(clf.spec, o.spec)]
            map_path = self.layout_.map_dir(clf.spec, o.spec) / "map.nc"
            map_da = top1_da = None
            crit_das: dict[str, Any] = {}
            if map_path.is_file():
                try:
                    ds = load_map(map_path)
                    map_da = map_for_params(ds, names)
                    if "top1" in ds:
                        top1_da = map_for_params(ds["top1"], names)
                    crit_das = {c: map_for_params(criterion_values(ds, c, cid), names)
                                for c in rc.criteria}
                except BadInput:
                    map_da = top1_da = None
                    crit_das = {}
            start_sets: list[tuple[str, np.ndarray]] = []
            if len(self.plan.starts):
                start_sets.append(("fixed", self.plan.starts))
            if rc.n_auto_starts():
                if top1_da is None or map_da is None:
                    raise BadInput(f"config regions.auto_starts: no map with top-1 classes "
                                   f"for {clf.spec} on {o.spec}")
                auto = auto_starts(map_da.values, top1_da.values,
                                   [map_da.coords[n].values for n in names], cid,
                                   rc.n_auto_starts(), [bool(p) for p in periodic],
                                   list(search.upper - search.lower), rc.threshold)
                self.auto_starts_[f"{clf.spec} {o.spec}"] = auto.tolist()
                if len(auto):
                    start_sets.append(("auto", auto))
                else:
                    self.log(f"no auto starts for {clf.spec} on {o.spec}: top-1 is never "
                             f"{clf.labels[cid]!r} at probability >= {rc.threshold} on its map")
            for criterion in rc.criteria:
                for starts_kind, starts in start_sets:
                    s = replace(search, criterion=criterion).with_starts(starts)
                    for method in rc.methods:
                        runs += self._region_step(clf, renderer, o, cid, method, starts_kind,
                                                  s, crit_das.get(criterion))
        return runs

    def _region_step(self, clf: Classifier, renderer: MeshRenderer, o: _Object, cid: int,
                     method: str, starts_kind: str, search: Any, map_da: Any
                     ) -> list[RunRecord]:
        """One regions step: every start of one start set (``search.starts``), one method,
        one object, one criterion (``search.criterion``; ``map_da`` holds the map's values
        under it)."""
        from ..regions.ground_truth import map_score_fn
        from ..regions.ours import SEARCH_REVISION
        from ..regions.records import RegionsFile
        from ..regions.scene import ground_truth, regions_for_score
        from ..regions.whitebox import check_spp
        from .steps import save_regions

        rc = self.config.regions
        criterion, starts, periodic = search.criterion, search.starts, search.periodic
        folder = self.layout_.regions_dir(clf.spec, o.spec, method, starts_kind, criterion)
        sub = folder.name
        threshold = search.search_threshold
        # searching or scoring against the map: its key says which map it was
        map_key = self.map_keys_.get((clf.spec, o.spec)) if map_da is not None else None
        # grad and samples per pixel enter the key only with mitsuba (fd studies keep theirs);
        # the samples as used (defaults filled in)
        samples = check_spp(rc.grad, rc.spp, rc.spp_grad, param="regions.grad")
        fields = rc.model_dump(exclude={"criteria", "spp", "spp_grad"}
                               | ({"grad"} if rc.grad == "fd" else set()))
        if samples is not None:
            fields |= {"spp": samples[0], "spp_grad": samples[1]}
        key = _key("regions", SEARCH_REVISION, model_fingerprint(clf), o.spec, o.digest, o.up,
                   cid, fields, criterion,
                   self.config.semantic.fixed, map_key,
                   self.config.semantic.batch_size if rc.score == "render" else None,
                   starts_kind, starts.tolist())

        def run() -> None:
            hyper = search.hyper_for(method)
            bar, adv = self._bar(f"regions {method} {o.spec}", len(starts))
            try:
                if rc.score == "map":
                    if map_da is None:
                        raise BadInput("config regions.score: 'map' needs a semantic "
                                       "map over regions.params (semantic.grid)")
                    res = regions_for_score(
                        map_score_fn(map_da, periodic), starts, search.domain,
                        method, search.variant, periodic=periodic,
                        on_result=lambda k, r: adv(1), **hyper)
                elif rc.grad == "mitsuba":
                    from ..regions.whitebox import scene_score_fn

                    if self.executor_.kind != "local":
                        self.log(f"regions {method} {o.spec}: grad mitsuba runs on the driver, "
                                 f"not as {self.executor_.kind} tasks (white-box searches "
                                 f"are not sent to workers)")
                    fn, grad_fn = scene_score_fn(
                        "mitsuba", clf, o.mesh, cid, list(search.names), search.domain,
                        dict(search.fixed), renderer,
                        self.config.semantic.batch_size, criterion, param="regions.grad",
                        spp=rc.spp, spp_grad=rc.spp_grad)
                    with fn:
                        res = regions_for_score(fn, starts, search.domain, method,
                                                search.variant, periodic=periodic,
                                                grad_fn=grad_fn,
                                                on_result=lambda k, r: adv(1), **hyper)
                else:
                    res = self.executor_.regions_for_mesh(
                        clf, o.mesh, cid, search, method, renderer=renderer,
                        batch_size=self.config.semantic.batch_size,
                        on_result=lambda k, r: adv(1))
            finally:
                if bar:
                    bar.stop()
            gts = [ground_truth(r, map_da, threshold, periodic) for r in res] \
                if map_da is not None else None
            doc = RegionsFile(
                model=clf.spec, mesh=o.spec, class_id=cid, class_name=clf.labels[cid],
                starts=starts_kind, **search.header(method),
                extra={"score_source": rc.score} | (
                    {} if samples is None else
                    {"grad": rc.grad, "spp": samples[0], "spp_grad": samples[1],
                     "ran_on": "driver"}))
            save_regions(folder, doc, res, map_da, gts)

        self._step(f"regions {clf.spec} {o.spec} {sub}", folder, key, run,
                   [folder / "regions.json"])
        saved = RegionsFile.read(folder / "regions.json")
        return [RunRecord.from_record(clf.spec, o.spec, cid, clf.labels[cid], rec,
                                      saved.method, saved.variant, starts_kind, criterion)
                for rec in saved.regions]

    # -------------------------------------------------------------------- run
    def run(self) -> Path:
        """Run every step; returns the report (or the output folder when report is off)."""
        started = datetime.now(UTC).isoformat(timespec="seconds")
        t0 = time.perf_counter()
        try:
            return self._run(started, t0)
        finally:
            if getattr(self, "executor_", None) is not None:
                self.executor_.close()

    def _run(self, started: str, t0: float) -> Path:
        from ..fingerprint import save_cache
        from ..io import locked_out_dir

        self._prepare()
        save_cache()
        assert self.out is not None
        # one run at a time per folder: a second one is refused instead of mixing results
        with locked_out_dir(self.out, "out"):
            return self._run_steps(started, t0)

    def _run_steps(self, started: str, t0: float) -> Path:
        assert self.out is not None
        write_text_atomic(self.layout_.config_yaml,
                          yaml.safe_dump(self.config.model_dump(by_alias=True), sort_keys=False))
        all_runs: list[RunRecord] = []
        ctx = self._context()
        for clf in self.plan.models:
            renderer = MeshRenderer(image_size=clf.input_size)
            try:
                self.map_keys_.update(semantic_steps(self.plan, self.executor_, ctx, clf,
                                                     renderer))
                if self.config.regions.enabled:
                    all_runs += self._regions(clf, renderer)
                if self.config.turntable and clf is self.plan.models[0]:
                    turntable_steps(self.plan, ctx, clf, renderer)
            finally:
                renderer.close()
            if self.config.representation.enabled:
                representation_steps(self.plan, self.executor_, ctx, clf)
        if all_runs:
            from .steps import srvr_step

            srvr_step(self.layout_.srvr_dir, all_runs, seed=self.config.seed,
                      title=f"SRVR over {len(self.plan.objects)} objects x "
                            f"({len(self.plan.starts)} fixed + "
                            f"{self.config.regions.n_auto_starts()} auto) starts")
        self.timings_["total"] = round(time.perf_counter() - t0, 2)
        self.run_ = run_record(self.timings_["total"], len(self.timings_) - 1,
                               len(self.reused_timings_))
        self._provenance(started)
        if self.config.report:
            from ..report.html import build_report

            return build_report(self.out, log=self.log)
        return self.out

    def _provenance(self, started: str) -> None:
        import moderngl
        import torch
        import torchvision

        assert self.out is not None
        gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
        prov = {
            "config": self.config.model_dump(by_alias=True),
            "versions": {"robustlens": __version__, "torch": torch.__version__,
                         "torchvision": torchvision.__version__, "numpy": np.__version__,
                         "moderngl": getattr(moderngl, "__version__", None),
                         "python": platform.python_version()},
            "models": {m.spec: {"weights_sha256": m.weights_sha256, "input_size": m.input_size,
                                "target_layer": m.target_layer, "runtime": m.runtime}
                       for m in self.plan.models},
            # where each mesh comes from and under which licence (CC-BY scans need credit)
            "meshes": {o.spec: _mesh_provenance(o) for o in self.plan.objects},
            "machine": {"host": socket.gethostname(), "platform": platform.platform(),
                        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                        "gpu": gpu, "device": self.config.device},
            "regions_starts": {
                "fixed": self.config.regions.fixed_starts(),
                "auto_starts": self.config.regions.n_auto_starts(),
                "auto_rule": AUTO_STARTS_RULE,
                "auto": self.auto_starts_,
            },
            "timings_s": self.timings_,
            # the one record of this run's wall time and reuse (CLI line and report alike)
            "run": self.run_,
            # steps reused from an earlier run, with the seconds they took then
            "reused_steps_s": self.reused_timings_,
            # where the work ran: local, or a Ray cluster; per step the node ids that ran it
            "executor": self.executor_.describe(),
            "steps": {name: {"nodes": nodes} for name, nodes in self.nodes_.items()},
            "started": started, "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_text_atomic(self.layout_.provenance_json, json.dumps(prov, indent=2, default=str))

