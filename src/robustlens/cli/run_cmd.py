"""``robustlens run``: the whole study from one config file, then the report."""

from __future__ import annotations

from pathlib import Path

import click

from .common import console, debug, info, progress

EPILOG = """\b
Examples:
  robustlens run                          # the embedded default study -> results/demo
  robustlens run my_study.yaml --out results/mine
  robustlens run my_study.yaml --force    # recompute finished steps
  robustlens run my_study.yaml --ray local        # Ray tasks on this machine
  robustlens run my_study.yaml --ray auto         # on the Ray cluster this node belongs to
  robustlens run my_study.yaml --ray 10.0.0.5:6379

Re-running the same config reuses finished steps. See configs/ for annotated examples."""


#: the Study parameters this command sets from its own options rather than the config file:
#: errors about them name the flag the user typed (``--ray ADDRESS: cannot reach ...``)
RUN_FLAGS = {"ray": "--ray"}


@click.command("run", epilog=EPILOG)
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Output folder (default: the config's `out`).")
@click.option("--force", is_flag=True, help="Recompute steps that are already finished.")
@click.option("--runtime", type=click.Choice(["auto", "torch", "onnxruntime"]), default=None,
              help="Engine for forward-only passes (default: the config's `runtime`, auto).")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS",
              help="Run map chunks and region searches as Ray tasks: local (start Ray here), "
                   "auto, HOST:PORT or ray://HOST:10001. Default: this process (or the "
                   "config's ray.address).")
def command(config: str | None, out_dir: str | None, force: bool, runtime: str | None,
            ray_address: str | None) -> None:
    """Run a whole study (maps, regions, SRVR, class robustness, attacks, report)."""
    from ..errors import BadInput
    from ..study import Study, load_config
    from ..study.config import config_error

    cfg = load_config(config)
    if runtime is not None:
        cfg.runtime = runtime  # type: ignore[assignment]
    try:
        study = Study(cfg, out=Path(out_dir) if out_dir is not None else None, force=force,
                      log=info, progress=progress, ray=ray_address, detail=debug)
        result = study.run()
    except BadInput as exc:  # name the config field (or this command's flag that set it)
        raise config_error(exc, flags=RUN_FLAGS) from None
    from ..study.summary import run_summary

    console.print(f"study finished in {run_summary({'run': study.run_})}: {result}")
