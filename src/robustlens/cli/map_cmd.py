"""``robustlens map``: a semantic map of one class on one mesh."""

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
from .params import GridAxisType, SceneAssignment, merge_assignments

EPILOG = """\b
Examples:
  robustlens map --mesh demo:mug --class "coffee mug" --grid azimuth=0:360:3 --grid elevation=-10:90:3 --out out/mug
  robustlens map --mesh chair.obj --up z --class 559 --grid azimuth=0:360:5 --set elevation=20 --out out/chair1d
  robustlens map --mesh demo:vase --class vase --grid azimuth=0:360:1 --grid elevation=-10:90:1 --grid distance=2:4:1 --samples 500 --out out/vase3d

Grid syntax: NAME=START:STOP:STEP (stop exclusive, like numpy.arange) or NAME=V1,V2,...
Parameters: azimuth, elevation, distance, fov, light_azimuth, light_elevation,
light_intensity, ambient, object_r/g/b, background_r/g/b (see `robustlens params`)."""


def mesh_options(fn: Any) -> Any:
    fn = click.option("--up", type=click.Choice(["y", "z"]), default="y", show_default=True,
                      help="The mesh file's vertical axis.")(fn)
    fn = click.option("--mesh", "mesh_spec", required=True,
                      help="Mesh file (.obj .glb .gltf .ply .stl .off), demo:NAME or "
                           "pkg:SOURCE/NAME (see `robustlens meshes`).")(fn)
    return fn


@click.command("map", epilog=EPILOG)
@mesh_options
@click.option("--class", "class_", default=None,
              help="True class: id or exact label name (demo meshes know theirs).")
@click.option("--grid", "grids", multiple=True, required=True, type=GridAxisType(),
              help="Swept parameter NAME=START:STOP:STEP; repeat for 2-D / n-D maps.")
@click.option("--set", "sets", multiple=True, type=SceneAssignment(),
              help="Fix another scene parameter, e.g. --set distance=3 --set object_color=.8,.2,.2.")
@click.option("--samples", type=click.IntRange(min=1), default=None,
              help="Score N random points in the grid's ranges instead of every grid point.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --samples.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Poses rendered and classified together.")
@click.option("--image-size", type=click.IntRange(8, 2048), default=None,
              help="Render size in pixels, 8..2048 (default: the model's input size).")
@click.option("--yes", "-y", "confirm", is_flag=True,
              help="Allow maps of more than 1,000,000 poses (refused otherwise, with the "
                   "estimated time).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: map.nc and map.png.")
@model_options
@runtime_option
def command(mesh_spec: str, up: str, class_: str | None, grids: tuple[Any, ...],
            sets: tuple[dict[str, float], ...],
            samples: int | None, seed: int, batch_size: int, image_size: int | None,
            confirm: bool, out_dir: str, **kwargs: Any) -> None:
    """Sweep the true-class score over 1..n scene parameters; write map.nc and map.png."""
    from ..errors import printable
    from ..io import check_out_dir, locked_out_dir
    from ..render import MeshRenderer, load_mesh
    from ..semantic import SemanticMap
    from ..semantic.grid import check_pose_count
    from ..study.steps import save_map_and_plot
    from .common import resolve_class

    # ---- validate everything before computing anything (nothing is written on bad input)
    axes = list(grids)  # parsed and checked by GridAxisType, set values by SceneAssignment
    fixed = merge_assignments(sets)
    smap = SemanticMap(axes, fixed=fixed, batch_size=batch_size, samples=samples, seed=seed)
    n = smap.check().n_poses()
    check_pose_count(n, n if confirm else None, "samples" if samples is not None else "grid")
    check_out_dir(out_dir)
    mesh = load_mesh(mesh_spec, up=up)
    clf = model_from_options(**pop_model_kwargs(kwargs))
    class_id = resolve_class(clf, class_, mesh_spec)
    mesh_spec = printable(mesh_spec)  # from here on a name in files and titles
    use_runtime(clf, kwargs.pop("runtime"))
    renderer = MeshRenderer(image_size=image_size or clf.input_size)
    info(f"map: {clf.labels[class_id]!r} (class {class_id}) on {mesh_spec}, model {clf.spec}, "
         f"{n} poses over {', '.join(a.name for a in axes)}")
    with locked_out_dir(out_dir) as out, progress() as bar:  # vanishes on failure
        task = bar.add_task("rendering + classifying", total=n)
        ds = smap.run(clf, mesh, class_id, renderer,
                      progress=lambda k: bar.advance(task, k), mesh_name=mesh_spec).map_
        nc, png = save_map_and_plot(ds, out)
    s = ds["score"]
    console.print(f"wrote {nc} and {png}: score mean {float(s.mean()):.3f}"
                  f", max {float(s.max()):.3f}, top-1 on {float((ds['top1'] == class_id).mean()):.0%}"
                  f" of poses")


@click.command("params", epilog="\b\nExample:\n  robustlens params")
def params_command() -> None:
    """List the semantic scene parameters with units, valid ranges and defaults."""
    from ..render.scene import PARAMETERS

    click.echo(f"{'name':16s} {'unit':6s} {'range':>16s} {'default':>8s}  description")
    for p in PARAMETERS.values():
        rng = f"[{p.low:g}, {p.high:g}]"
        click.echo(f"{p.name:16s} {p.unit:6s} {rng:>16s} {p.default:>8g}  {p.description}")
    click.echo("groups: object_color=R,G,B  background_color=R,G,B")


commands = [command, params_command]
