"""``robustlens srvr``: rank networks by semantic robustness volume ratio (SRVR)."""

from __future__ import annotations

from typing import Any

import click

from .common import (
    console,
    info,
    model_options,
    pop_model_kwargs,
    progress,
    runtime_option,
    use_runtime,
)
from .region_args import parse_search, region_options

EPILOG = """\b
Examples:
  robustlens srvr --model builtin:efficientnet_lite0 --model builtin:efficientnet_lite2 --mesh demo:mug --mesh demo:vase --out out/srvr
  robustlens srvr --model timm:resnet50 --model timm:vgg11_bn --mesh a.obj --mesh b.obj --class 968 --class 883 --method oir_b --method naive --max-evals 300 --out out/srvr2

SRVR = mean over meshes x start points of (region volume / domain volume), with a
95% bootstrap CI (resampling meshes when there are several) and the fraction of
runs whose region never grew.  --class: once for all meshes or once per mesh
(demo meshes know their class).  Model options other than --model apply to every
model.  Output: DIR/srvr.csv (ranking), DIR/srvr_runs.csv (one row per run),
DIR/srvr.png (bar chart with CI error bars)."""


@click.command("srvr", epilog=EPILOG)
@click.option("--mesh", "meshes", multiple=True, required=True,
              help="Mesh file, demo:NAME or pkg:SOURCE/NAME (repeat; see `robustlens meshes`).")
@click.option("--up", type=click.Choice(["y", "z"]), default="y", show_default=True,
              help="The mesh files' vertical axis.")
@click.option("--class", "classes", multiple=True,
              help="True class (id or label): once for all meshes or once per --mesh.")
@click.option("--method", "methods", multiple=True,
              help="naive, oir_b or oir_w (repeat; default oir_b).")
@region_options
@click.option("--n-boot", type=click.IntRange(min=1), default=2000, show_default=True,
              help="Bootstrap resamples for the CI.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: srvr.csv, srvr_runs.csv, srvr.png.")
@model_options
@runtime_option
def command(meshes: tuple[str, ...], up: str, classes: tuple[str, ...], methods: tuple[str, ...],
            params: tuple[str, ...], domains: tuple[Any, ...], starts: tuple[str, ...],
            variant: str, threshold: float, criterion: str, max_evals: int | None,
            sets: tuple[Any, ...],
            batch_size: int, image_size: int | None, grad: str, spp: int | None,
            spp_grad: int | None, n_boot: int, seed: int,
            out_dir: str,
            **kwargs: Any) -> None:
    """Rank models by SRVR over meshes x start points, per region method."""
    from ..errors import BadInput, printable
    from ..io import check_out_dir
    from ..render import load_mesh
    from ..study.steps import srvr_runs, srvr_step
    from .common import hold_out_dir, model_from_options, resolve_class

    model_kwargs = pop_model_kwargs(kwargs)
    runtime = kwargs.pop("runtime")
    specs: list[str] = list(model_kwargs.pop("model_spec") or ("default",))
    meths = list(methods) or ["oir_b"]
    search, _ = parse_search(params, domains, starts, sets, variant, meths, threshold,
                             max_evals, batch_size, criterion, grad, spp, spp_grad)
    pts = search.starts
    if len(classes) not in (0, 1, len(meshes)):
        raise BadInput(f"--class: given {len(classes)} times for {len(meshes)} meshes; give it "
                       f"once for all meshes or once per --mesh")
    cls_for = [classes[0] if len(classes) == 1 else (classes[i] if classes else None)
               for i in range(len(meshes))]
    check_out_dir(out_dir)
    dup = sorted({m for m in specs if specs.count(m) > 1})
    if dup:
        raise BadInput(f"--model {dup[0]}: given more than once")
    mesh_objs = [load_mesh(m, up=up) for m in meshes]
    # load every model once up front: bad specs and unknown classes fail before any work
    models = []
    for spec in specs:
        clf = model_from_options(spec, **model_kwargs)
        ids = [resolve_class(clf, c, m) for c, m in zip(cls_for, meshes, strict=True)]
        models.append((clf, ids))
    for clf, _ in models:
        use_runtime(clf, runtime)
    meshes = tuple(printable(m) for m in meshes)  # from here on names in files and titles

    n_runs = len(models) * len(meths) * len(meshes) * len(pts)
    info(f"srvr: {len(models)} model(s) x {len(meths)} method(s) x {len(meshes)} mesh(es) x "
         f"{len(pts)} start(s) = {n_runs} region runs ({variant})")
    out = hold_out_dir(out_dir)
    with progress() as bar:
        task = bar.add_task("growing regions", total=n_runs)
        runs = srvr_runs(models, list(zip(meshes, mesh_objs, strict=True)), search,
                         batch_size, image_size, spp=spp, spp_grad=spp_grad,
                         advance=lambda: bar.advance(task))
    table, (csv_path, runs_path, png) = srvr_step(
        out, runs, n_boot=n_boot, seed=seed,
        title=f"SRVR over {len(meshes)} mesh(es) x {len(pts)} start(s)")
    for r in table:
        console.print(f"#{r['rank']} {r['model']:<32s} {r['method']}/{r['variant']} "
                      f"({r['criterion']}): SRVR "
                      f"{r['srvr']:.4f} [{r['srvr_low']:.4f}, {r['srvr_high']:.4f}], not grown "
                      f"{r['frac_not_grown']:.0%} of {r['n_runs']} runs, "
                      f"{r['evaluations_per_run']:.0f} evaluations/run")
    console.print(f"wrote {csv_path}, {runs_path} and {png}")


def _multi_model(cmd: click.Command) -> click.Command:
    """Make ``--model`` repeatable (model_options declares it single-valued)."""
    for i, p in enumerate(cmd.params):
        if p.name == "model_spec":
            cmd.params[i] = click.Option(
                ["--model", "model_spec"], multiple=True, default=("default",),
                show_default=True,
                help="Model spec (repeat to rank several): default, builtin:NAME, "
                     "torchvision:NAME, timm:NAME, torchscript:PATH, onnx:PATH or "
                     "python:FILE.py:FUNC.")
    return cmd


command = _multi_model(command)
