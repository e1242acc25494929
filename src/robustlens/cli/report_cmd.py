"""``robustlens report``: rebuild the self-contained HTML report of a study folder."""

from __future__ import annotations

import click

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
    from ..report import build_report

    info(f"report: reading results in {out_dir}")
    path = build_report(out_dir)
    click.echo(str(path))
