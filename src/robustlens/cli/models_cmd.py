"""``robustlens models``: list builtin models and model spec forms; ``robustlens layers``:
the module paths of one model (what ``--target-layer`` accepts) with output shapes."""

from __future__ import annotations

from typing import Any

import click

from .common import model_from_options, model_options


@click.command("models", epilog="\b\nExample:\n  robustlens models")
def command() -> None:
    """List the builtin models and the spec forms --model accepts."""
    from ..models import list_builtins

    click.echo("builtin models (--model builtin:NAME or NAME; 'default' = efficientnet_lite0):")
    for name, desc in list_builtins().items():
        click.echo(f"  {name:22s} {desc}")
    click.echo("other specs: torchvision:NAME  timm:NAME  torchscript:PATH  onnx:PATH  "
               "python:FILE.py:FUNC")


@click.command("layers", epilog="\b\nExample:\n  robustlens layers --model builtin:planted_cue")
@model_options
def layers(**kwargs: Any) -> None:
    """List a model's module paths (--target-layer values) with output shapes for one input."""
    clf = model_from_options(**kwargs)
    click.echo(f"{clf.spec}: input (1, 3, {clf.input_size}, {clf.input_size}); "
               f"CAM layer {clf.target_layer or '-'}")
    for name, kind, shape in clf.layer_shapes():
        mark = "*" if name == clf.target_layer else " "
        click.echo(f"{mark} {name:40s} {kind:24s} {shape if shape is not None else '-'}")


commands = [command, layers]
