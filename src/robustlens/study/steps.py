"""Step functions: what one step of a study computes and writes, callable by the runner
(`robustlens.study.runner`) and by the CLI commands alike, so a command never repeats the
study's orchestration.

Each result that comes with a figure is written here as a pair: the data through its one
writer (`robustlens.regions.records`, `robustlens.regions.srvr`, `robustlens.semantic.maps`)
and the figure through `robustlens.figures`; data modules import no drawing code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import xarray as xr

    from ..models import Classifier
    from ..regions.records import RegionsFile, RunRecord
    from ..regions.result import RegionResult

__all__ = ["save_map_and_plot", "save_regions", "save_srvr", "srvr_runs", "srvr_step"]


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
