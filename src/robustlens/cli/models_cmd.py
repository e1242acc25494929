"""``robustlens models``: list builtin models and model spec forms."""

from __future__ import annotations

import click


@click.command("models", epilog="\b\nExample:\n  robustlens models")
def command() -> None:
    """List the builtin models and the spec forms --model accepts."""
    from ..models import list_builtins

    click.echo("builtin models (--model builtin:NAME or NAME; 'default' = efficientnet_lite0):")
    for name, desc in list_builtins().items():
        click.echo(f"  {name:22s} {desc}")
    click.echo("other specs: torchvision:NAME  timm:NAME  torchscript:PATH  onnx:PATH  "
               "python:FILE.py:FUNC")
