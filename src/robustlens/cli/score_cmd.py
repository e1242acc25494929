"""``robustlens score``: class robustness scores (CRS) of a model on a box-annotated set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import BadInput
from ..representation.cam import CAM_METHODS
from .common import (
    info,
    model_from_options,
    model_options,
    pop_model_kwargs,
    progress,
)

EPILOG = """\b
Examples:
  robustlens score --data val/boxes.csv --out out/crs
  robustlens score --data VOC2012 --model python:net.py:build --labels voc.txt --cam scorecam --out out/voc
  robustlens score --data planted/boxes.csv --model planted_cue --out out/planted

\b
--data formats (auto-detected): CSV image,label,xmin,ymin,xmax,ymax (paths relative to the CSV,
pixel-edge coordinates, label = class id or name); Pascal VOC root; COCO instances JSON;
ImageNet validation layout (images + Pascal XMLs with wnids).
Writes DIR/class_scores.csv, DIR/image_scores.csv, DIR/class_ranking.png, DIR/cam_overlays.png.
A killed run resumes where it stopped when rerun with the same --out, model and --cam."""


@click.command("score", epilog=EPILOG)
@click.option("--data", required=True, help="Box-annotated image set (file or folder).")
@model_options
@click.option("--cam", default="gradcam++", show_default=True,
              type=click.Choice(list(CAM_METHODS)),
              help="CAM method ('smooth' = Grad-CAM++ with grad-cam's aug_smooth TTA).")
@click.option("--correct-only", is_flag=True,
              help="Per-class CAM scores over correctly classified images only.")
@click.option("--batch-size", type=int, default=16, show_default=True, help="Images per CAM call.")
@click.option("--n-boot", type=int, default=1000, show_default=True,
              help="Bootstrap resamples for the CRS 95% CI.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--split", default=None, help="VOC image set (ImageSets/Main/SPLIT.txt).")
@click.option("--skip-unknown-labels", is_flag=True,
              help="Drop objects whose label is not a model class instead of failing.")
@click.option("--top", type=click.IntRange(min=1), default=20, show_default=True,
              help="Classes in the ranking chart.")
@click.option("--overlay-classes", type=int, default=4, show_default=True,
              help="Least robust classes shown in cam_overlays.png.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
def command(**kwargs: Any) -> None:
    """Class robustness score: which classes the model recognises from context, not the object.

    For every image, RS = share of the true-class CAM inside the object boxes; per class, CRS =
    mean RS with a bootstrap CI, beside top-1/top-5 and the chance-corrected lift
    (RS / box-area fraction, 1 = chance)."""
    from .. import figures
    from ..figures import cam_overlays_figure
    from ..io import check_out_dir
    from ..representation.cam_methods import cam_name
    from ..representation.datasets import load_dataset
    from ..representation.scores import ClassRobustness, remove_partials
    from .common import hold_out_dir

    mk = pop_model_kwargs(kwargs)
    data = kwargs["data"]
    if not Path(data).expanduser().exists():
        raise BadInput("no such file or directory", param="dataset", value=data)
    check_out_dir(kwargs["out"])
    clf = model_from_options(**mk)
    est = ClassRobustness(cam=kwargs["cam"], batch_size=kwargs["batch_size"],
                          correct_only=kwargs["correct_only"], n_boot=kwargs["n_boot"],
                          seed=kwargs["seed"], target_layer=mk["target_layer"]).check()
    ds = load_dataset(data, clf.labels, split=kwargs["split"],
                      skip_unknown=kwargs["skip_unknown_labels"])
    out = hold_out_dir(kwargs["out"])
    info(f"{len(ds)} images of {len(ds.class_ids())} classes ({ds.kind}); model {clf.spec}, "
         f"CAM {est.cam_} at {est.target_layer or clf.target_layer}, device {clf.device}")
    with progress() as bar:
        task = bar.add_task(f"scoring ({est.cam_})", total=len(ds))

        def on_total(total: int, done: int) -> None:
            bar.update(task, total=total, completed=done)
            if done:
                info(f"resuming: {done} of {total} images already scored")

        est.run(clf, ds, out_dir=out, progress=lambda n: bar.advance(task, n), on_total=on_total,
                keep_partial=True)  # until the plots are written: a kill never rescores
    cs = est.class_scores_
    assert cs is not None and est.image_scores_ is not None
    figures.class_ranking_figure(
        cs, out / "class_ranking.png", max_classes=kwargs["top"],
        title=f"{clf.spec}, {cam_name(est.cam_)}: least robust classes first (95% CI)")
    worst = cs["class_id"].head(max(kwargs["overlay_classes"], 0)).tolist()
    cam_overlays_figure(clf, ds, est.image_scores_, worst, out / "cam_overlays.png", cam=est.cam_,
                      target_layer=mk["target_layer"])
    remove_partials(out)
    info("least robust classes:   CRS [95% CI]      lift  top-1")
    for r in cs.head(5).itertuples():
        info(f"  {r.class_id:>4} {r.class_name[:16]:16s} {r.crs:.3f} [{r.crs_low:.3f},"
             f"{r.crs_high:.3f}] {r.lift:5.2f}  {r.top1:.2f}")
    info(f"wrote {out}/ class_scores.csv image_scores.csv class_ranking.png cam_overlays.png")
