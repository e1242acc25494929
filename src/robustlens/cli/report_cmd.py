"""``robustlens report``: rebuild the self-contained HTML report of a study folder."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import BadInput
from .common import info

EPILOG = """\b
Examples:
  robustlens report out/study        # rebuild out/study/report.html, nothing recomputed
  robustlens -q report out/study     # only the path of the report on stdout

The report embeds every figure (no network needed); it also saves them under DIR/figures/."""


@click.command("report", epilog=EPILOG)
@click.argument("out_dir", metavar="DIR", type=click.Path(file_okay=False))
def command(out_dir: str) -> None:
    """Rebuild DIR/report.html from the results in the study folder DIR; print its path."""
    from ..io import check_out_dir
    from ..report import build_report

    if not Path(out_dir).is_dir():
        raise BadInput("no such folder (expected a study output folder)", param="DIR",
                       value=out_dir)
    check_out_dir(out_dir, "DIR")  # report.html is written there: fail before reading
    info(f"report: reading results in {out_dir}")
    path = build_report(out_dir, log=info)
    click.echo(str(path))
