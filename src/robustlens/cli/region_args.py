"""The search options ``regions`` and ``srvr`` share, and their parsing into arrays."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import click
import numpy as np

from ..errors import BadInput
from .params import NamedRange, SceneAssignment, Span, merge_assignments


def region_options(fn: Any) -> Any:
    """Options shared by ``regions`` and ``srvr``: parameters, domain, starts, search."""
    opts = [
        click.option("--param", "params", multiple=True,
                     help="Searched scene parameter (repeat; default azimuth, elevation)."),
        click.option("--domain", "domains", multiple=True,
                     type=NamedRange(parts=2, lib_param="domain"),
                     help="NAME=LOW:HIGH search range (default azimuth=0:360, "
                          "elevation=-10:90, else the parameter's valid range)."),
        click.option("--start", "starts", multiple=True,
                     help="Start point, one value per --param, e.g. 130,30 (repeat; default: "
                          "the paper's four)."),
        click.option("--variant", default="ours", show_default=True,
                     help="ours or paper."),
        click.option("--threshold", type=click.FloatRange(0, 1, min_open=True, max_open=True),
                     default=0.5, show_default=True,
                     help="Score the region must keep, in (0, 1) (variant ours; ground truth)."),
        click.option("--criterion", type=click.Choice(["score", "top1"]), default="score",
                     show_default=True,
                     help="What a robust pose is: score = true-class probability >= "
                          "--threshold (the paper's); top1 = the true class is the top-1 "
                          "prediction at any confidence (--threshold does not apply)."),
        click.option("--max-evals", type=click.IntRange(min=1), default=None,
                     help="Cap the score evaluations per region (ours: default "
                          "750*2^n, at least 12000 from 3-D on; paper: iterations = "
                          "max-evals / evaluations per iteration)."),
        click.option("--set", "sets", multiple=True, type=SceneAssignment("fixed"),
                     help="Fix another scene parameter, e.g. --set distance=3."),
        click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
                     help="Poses rendered and classified together."),
        click.option("--image-size", type=click.IntRange(8, 2048), default=None,
                     help="Render size in pixels, 8..2048 (default: the model's input size)."),
        click.option("--grad", default="fd", show_default=True,
                     help="Score gradients of oir_w: fd = finite differences of the moderngl "
                          "renderer; mitsuba = through the differentiable Mitsuba 3 renderer "
                          "(white box; scores then come from Mitsuba too; needs the whitebox "
                          "extra)."),
        click.option("--spp", type=click.IntRange(min=1), default=None,
                     help="Samples per pixel of the Mitsuba image, with --grad mitsuba "
                          "(default 64)."),
        click.option("--spp-grad", type=click.IntRange(min=1), default=None,
                     help="Samples per pixel of Mitsuba's gradient (adjoint) pass, with "
                          "--grad mitsuba (default 16)."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def parse_search(params: tuple[str, ...], domains: tuple[Span, ...], starts: tuple[str, ...],
                 sets: tuple[dict[str, float], ...], variant: str, methods: list[str], threshold: float,
                 max_evals: int | None, batch_size: int,
                 criterion: str = "score", grad: str = "fd", spp: int | None = None,
                 spp_grad: int | None = None) -> tuple[Any, tuple[int, int] | None]:
    """The search options (everything that needs no model) as one validated
    `robustlens.regions.scene.SceneSearch`, and Mitsuba's samples per pixel (None with
    grad fd).  Errors name the library's parameters; the CLI's table names the flags."""
    from ..regions.scene import DEFAULT_PARAMS, SceneSearch
    from ..regions.whitebox import check_spp

    names = list(params) if params else list(DEFAULT_PARAMS)
    search = SceneSearch.create(
        names, parse_domain_specs(domains),
        [parse_start(x, names) for x in starts] or None, merge_assignments(sets),
        methods, variant, criterion, threshold, max_evals, grad)
    samples = check_spp(grad, spp, spp_grad)
    if grad == "mitsuba":  # fail before any model loads
        from ..render.diff import backend_problem

        problem = backend_problem()
        if problem is not None:
            raise BadInput(f"mitsuba: {problem}", param="grad")
    if batch_size < 1:
        raise BadInput(f"{batch_size}: expected a positive integer", param="batch_size")
    if criterion == "top1" and threshold != 0.5:
        from .common import info

        info(f"note: --threshold {threshold:g} does not apply to --criterion top1 (a pose is "
             f"robust where the class is the top-1)")
    return search, samples


def parse_domain_specs(items: Iterable[Span]) -> dict[str, tuple[float, float]]:
    """``--domain`` values (parsed by `NamedRange`) -> ``{name: (low, high)}``, each once."""
    out: dict[str, tuple[float, float]] = {}
    for sp in items:
        if sp.name in out:
            raise BadInput(f"{sp.name}: given more than once", param="domain")
        out[sp.name] = (sp.start, sp.stop)
    return out


def parse_start(text: str, names: Sequence[str]) -> np.ndarray:
    """Parse ``"130,30"`` into a float vector with one value per parameter."""
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        raise BadInput(
            f"{text!r}: expected {len(names)} comma-separated numbers ({', '.join(names)})",
            param="starts") from None
    if len(vals) != len(names):
        raise BadInput(
            f"{text}: has {len(vals)} value(s) but {len(names)} parameter(s) are "
            f"searched ({', '.join(names)})", param="starts")
    return np.asarray(vals, dtype=np.float64)
