"""``robustlens meshes``: list the demo meshes and the real meshes of installed packages."""

from __future__ import annotations

import click


@click.command("meshes", epilog="\b\nExamples:\n  robustlens meshes\n  robustlens meshes --attribution")
@click.option("--attribution", is_flag=True,
              help="Also print the attribution text each licence asks for.")
def command(attribution: bool) -> None:
    """List the mesh specs --mesh accepts: demo:NAME (shipped) and pkg:SOURCE/NAME (real
    meshes inside installed packages), with ImageNet class, licence and install state."""
    from ..render.catalog import CATALOG
    from ..render.mesh import demo_class, demo_meshes

    click.echo("shipped demo meshes (procedural, part of robustlens):")
    for name in demo_meshes():
        click.echo(f"  demo:{name:24s} {demo_class('demo:' + name) or '-'}")
    click.echo("real meshes in installed packages (--mesh pkg:...):")
    click.echo(f"  {'spec':28s} {'ImageNet class':18s} {'licence':38s} installed")
    for spec, e in CATALOG.items():
        state = "yes" if e.file() is not None else f"no (pip install {e.distribution})"
        click.echo(f"  {spec:28s} {f'{e.class_name} ({e.class_id})':18s} {e.licence:38s} {state}")
        if attribution:
            click.echo(f"      {e.attribution}")
    click.echo("other specs: a file path (.obj .glb .gltf .ply .stl .off); textures, material "
               "and vertex colours are rendered")
