"""``robustlens attack``: exploit classes recognised from context (object removal, context
only, context transplant)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import BadInput, ref
from ..representation.cam import CAM_METHODS
from .common import (
    info,
    model_from_options,
    model_options,
    pop_model_kwargs,
    progress,
    runtime_option,
    use_runtime,
)

EPILOG = """\b
Examples:
  robustlens attack --data planted/boxes.csv --model planted_cue --classes ball,disc --out out/att
  robustlens attack --data val/boxes.csv --classes basketball --out out/basketball

\b
Attacks per flagged class: removal (box filled with mean colour / blur / cv2.inpaint; rate = class
still predicted), context_only (top-q CAM pixels outside the box kept, rest grey; rate = class
predicted), transplant (that context pasted onto other classes' images; rate = prediction becomes
the flagged class; 'baseline' = before pasting). Writes DIR/attacks.csv and DIR/examples/*.png."""


@click.command("attack", epilog=EPILOG)
@click.option("--data", required=True, help="Box-annotated image set (as for `score`).")
@click.option("--classes", required=True,
              help="Flagged classes: comma-separated ids or names, e.g. 430,basketball.")
@model_options
@runtime_option
@click.option("--cam", default="gradcam++", show_default=True,
              type=click.Choice(list(CAM_METHODS)),
              help="CAM method that picks the context.")
@click.option("--q", type=click.FloatRange(0, 1, min_open=True), default=0.2, show_default=True,
              help="Fraction of outside-box pixels kept as context.")
@click.option("--pad", type=int, default=1, show_default=True,
              help="Box dilation (input pixels) before object removal.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--max-images", type=int, default=None, help="At most N images per flagged class.")
@click.option("--max-targets", type=int, default=200, show_default=True,
              help="Images of other classes used for the transplant.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--split", default=None, help="VOC image set (ImageSets/Main/SPLIT.txt).")
@click.option("--skip-unknown-labels", is_flag=True,
              help="Drop objects whose label is not a model class instead of failing.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
def command(**kwargs: Any) -> None:
    """Attack classes flagged by `robustlens score`: does the class survive without its object?"""
    from ..io import check_out_dir
    from ..representation.attacks import run_attacks, write_attacks
    from ..representation.datasets import load_dataset
    from .common import hold_out_dir

    mk = pop_model_kwargs(kwargs)
    runtime = kwargs.pop("runtime")
    data = kwargs["data"]
    if not Path(data).expanduser().exists():
        raise BadInput("no such file or directory", param="dataset", value=data)
    check_out_dir(kwargs["out"])
    clf = model_from_options(**mk)
    names = [c.strip() for c in kwargs["classes"].split(",") if c.strip()]
    if not names:
        raise BadInput(": expected comma-separated class ids or names", param="classes")
    classes = []
    for nm in names:
        try:
            classes.append(clf.class_index(nm))
        except BadInput:
            raise BadInput(f"unknown class for model {clf.spec!r} (expected an id "
                           f"0..{clf.num_classes - 1} or a label)", param="classes",
                           value=repr(nm)) from None
    ds = load_dataset(data, clf.labels, split=kwargs["split"],
                      skip_unknown=kwargs["skip_unknown_labels"])
    present = set(ds.class_ids())
    for c in classes:
        if c not in present:
            raise BadInput(f"no images of this class in {ref('dataset')} (empty class)",
                           param="classes", value=f"{c} ({clf.labels[c]!r})")
    use_runtime(clf, runtime)
    out = hold_out_dir(kwargs["out"])
    total = sum(1 for it in ds if it.class_id in set(classes))
    if kwargs["max_images"]:
        total = sum(min(sum(1 for it in ds if it.class_id == c), kwargs["max_images"])
                    for c in classes)
    with progress() as bar:
        task = bar.add_task("attacking", total=total)
        df = run_attacks(clf, ds, classes, cam=kwargs["cam"], q=kwargs["q"], pad=kwargs["pad"],
                         batch_size=kwargs["batch_size"], max_images=kwargs["max_images"],
                         max_targets=kwargs["max_targets"], seed=kwargs["seed"],
                         examples_dir=out / "examples", target_layer=mk["target_layer"],
                         progress=lambda n: bar.advance(task, n))
    path = write_attacks(df, out)
    for r in df.itertuples():
        info(f"  {r.class_id:>4} {r.class_name[:16]:16s} {r.attack:12s} {r.variant:8s} "
             f"n={r.n:<5d} rate {r.rate:.2f}")
    info(f"wrote {path} and {out / 'examples'}/")
