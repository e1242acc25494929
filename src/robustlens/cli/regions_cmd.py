"""``robustlens regions``: robust regions of one class on one mesh from several start points."""

from __future__ import annotations

from typing import Any

import click

from .common import (
    console,
    info,
    model_from_options,
    model_options,
    pop_model_kwargs,
    progress,
    runtime_option,
    use_runtime,
)
from .map_cmd import mesh_options
from .region_args import parse_search, region_options


def _epilog() -> str:
    """The help epilog; the paper's constants come from `robustlens.paper`."""
    from .. import paper

    starts = " ".join(f"({a:g},{e:g})" for a, e in paper.STARTS)
    (az0, el0), (az1, el1) = paper.DOMAIN
    return f"""\b
Examples:
  robustlens regions --mesh demo:mug --out out/mug_regions
  robustlens regions --mesh demo:mug --map out/mug/map.nc --method oir_w --out out/mug_oirw
  robustlens regions --mesh chair.obj --up z --class 559 --start 130,30 --start 50,20 --variant paper --max-evals 400 --out out/chair
  robustlens regions --mesh demo:vase --param azimuth --set elevation=20 --start 90 --out out/vase1d
  robustlens regions --mesh demo:mug --param azimuth --param elevation --param distance --domain distance=1.5:4.5 --start 130,30,2.732 --out out/mug3d
  robustlens regions --mesh demo:mug --method oir_w --variant paper --grad mitsuba --max-evals 48 --out out/mug_whitebox
  robustlens regions --mesh demo:mug --method oir_w --grad mitsuba --spp 256 --spp-grad 32 --out out/mug_wb256

Defaults: the paper's start points {starts} over
azimuth [{az0:g},{az1:g}] (periodic) x elevation [{el0:g},{el1:g}], method oir_b, variant ours.
Methods: naive, oir_b (black box), oir_w (white box: finite differences of
the moderngl renderer, or with --grad mitsuba gradients through Mitsuba 3).
Variants: ours (threshold line search, --threshold) or paper (the reference
gradient rules, {paper.N_ITER} iterations; --max-evals caps them).
Output: DIR/regions.json (one record per start), DIR/traces/start_K.json and
DIR/regions.png (over the semantic map when --map is given, with IoU against
the map's exact largest box; for 3 or more parameters, each pair of them)."""


EPILOG = _epilog()


@click.command("regions", epilog=EPILOG)
@mesh_options
@click.option("--class", "class_", default=None,
              help="True class: id or exact label name (demo meshes know theirs).")
@click.option("--method", default="oir_b", show_default=True, help="naive, oir_b or oir_w.")
@region_options
@click.option("--map", "map_path", default=None,
              help="A map.nc (from `robustlens map`) over the same parameters: drawn under "
                   "the regions and used as ground truth (IoU).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: regions.json, traces/, regions.png.")
@model_options
@runtime_option
def command(mesh_spec: str, up: str, class_: str | None, method: str, params: tuple[str, ...],
            domains: tuple[Any, ...], starts: tuple[str, ...], variant: str, threshold: float,
            criterion: str, max_evals: int | None, sets: tuple[Any, ...], batch_size: int,
            image_size: int | None, grad: str, spp: int | None, spp_grad: int | None,
            map_path: str | None, out_dir: str, **kwargs: Any) -> None:
    """Grow robust regions (boxes where the class score stays high) around start points."""
    from ..errors import printable
    from ..io import check_out_dir
    from ..regions.criterion import criterion_values
    from ..regions.records import RegionsFile
    from ..regions.scene import ground_truth, map_for_params, regions_for_score
    from ..regions.whitebox import scene_score_fn
    from ..render import MeshRenderer, load_mesh
    from ..semantic import load_map
    from ..study.steps import save_regions
    from .common import hold_out_dir, resolve_class

    # ---- validate everything before computing anything
    search, samples = parse_search(params, domains, starts, sets, variant, [method], threshold,
                                   max_evals, batch_size, criterion, grad, spp, spp_grad)
    names, domain, pts = list(search.names), search.domain, search.starts
    threshold = search.search_threshold
    check_out_dir(out_dir)
    map_da = None
    if map_path is not None:
        map_da = map_for_params(criterion_values(load_map(map_path), criterion), names, domain,
                                periodic=search.periodic)
    mesh = load_mesh(mesh_spec, up=up)
    clf = model_from_options(**pop_model_kwargs(kwargs))
    class_id = resolve_class(clf, class_, mesh_spec)
    use_runtime(clf, kwargs.pop("runtime"))
    mesh_spec = printable(mesh_spec)  # from here on a name in files and titles
    renderer = MeshRenderer(image_size=image_size or clf.input_size)
    if map_da is not None:
        m_cls = map_da.attrs.get("class_id")
        if m_cls is not None and int(m_cls) != class_id:
            info(f"warning: --map is of class {int(m_cls)}, "
                 f"not {class_id} ({clf.labels[class_id]})")

    info(f"regions: {clf.labels[class_id]!r} (class {class_id}) on {mesh_spec}, model "
         f"{clf.spec}, {method}/{variant}, {len(pts)} start(s) over {', '.join(names)}")
    out = hold_out_dir(out_dir)
    score_fn, grad_fn = scene_score_fn(grad, clf, mesh, class_id, names, domain,
                                       dict(search.fixed), renderer, batch_size, criterion,
                                       spp=spp, spp_grad=spp_grad)
    with score_fn as fn, progress() as bar:
        task = bar.add_task("growing regions", total=len(pts))
        results = regions_for_score(fn, pts, domain, method, variant,
                                    periodic=search.periodic, grad_fn=grad_fn,
                                    on_result=lambda k, r: bar.advance(task),
                                    **search.hyper_for(method))
    gts = None
    if map_da is not None:
        gts = [ground_truth(r, map_da, threshold, search.periodic) for r in results]
    header = search.header(method) | {"threshold": threshold if variant == "ours" else None}
    doc = RegionsFile(
        model=clf.spec, mesh=mesh_spec, class_id=class_id, class_name=clf.labels[class_id],
        **header,
        extra={"fixed": dict(search.fixed), "max_evals": max_evals, "map": map_path,
               "image_size": renderer.image_size} | _grad_extra(grad, samples))
    path = save_regions(out, doc, results, map_da, gts)
    for k, r in enumerate(results):
        box = " x ".join(f"{n} [{lo:.1f}, {hi:.1f}]"
                         for n, lo, hi in zip(names, r.lower, r.upper, strict=True))
        extra = f", IoU {gts[k][2]:.2f}" if gts else ""
        console.print(f"start {k} ({', '.join(f'{v:g}' for v in r.x0)}): {box}, volume ratio "
                      f"{r.volume_ratio:.4f}{'' if r.grew else ' (not grown)'}, "
                      f"{r.n_evaluations} evaluations in {r.n_calls} calls{extra}")
    console.print(f"wrote {path}, {out / 'regions.png'} and {out / 'traces'}/")


def _grad_extra(grad: str, samples: tuple[int, int] | None) -> dict[str, Any]:
    """What regions.json records of the gradient source: nothing for fd (as before);
    ``grad`` and the samples per pixel with mitsuba."""
    if samples is None:
        return {}
    return {"grad": grad, "spp": samples[0], "spp_grad": samples[1]}
