"""Step functions: what one step of a study computes and writes, callable by the runner
(`robustlens.study.runner`) and by the CLI commands alike, so a command never repeats the
study's orchestration.

Each result that comes with a figure is written here as a pair: the data through its one
writer (`robustlens.regions.records`, `robustlens.regions.srvr`, `robustlens.semantic.maps`)
and the figure through `robustlens.figures`; data modules import no drawing code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import xarray as xr

    from ..regions.records import RegionsFile, RunRecord
    from ..regions.result import RegionResult

__all__ = ["save_map_and_plot", "save_regions", "save_srvr"]


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
