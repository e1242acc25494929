"""Exploiting a non-robust representation: attacks on classes recognised from context.

For a flagged class ``c`` (``run_attacks``), on the images of ``c`` mapped to the network input:

* ``clean``: how often ``c`` is predicted on the unmodified images (the reference);
* ``removal``: the object boxes (dilated by ``pad`` px) are filled -- ``mean`` (the mean colour of
  the pixels outside the boxes), ``blur`` (a strong Gaussian blur, sigma = a quarter of the box
  side), ``inpaint`` (OpenCV ``cv2.inpaint``, Telea) -- and we report how often ``c`` is still
  predicted;
* ``context_only``: only the top-``q`` fraction of the outside-box pixels by CAM of ``c`` is kept,
  the rest is grey (0.5); rate = how often ``c`` is predicted;
* ``transplant``: that kept context of a ``c`` image is pasted (outside the target's own boxes)
  onto images of other classes; rate = targeted success, how often the prediction becomes ``c``
  (``baseline`` = how often those targets were predicted ``c`` before the paste).

Rows: ``class_id, class_name, attack, variant, n, rate``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch

from ..errors import BadInput, ref
from ..io import write_text_atomic
from ..models.base import Classifier
from .cam import check_cam_method, check_cam_model, compute_cams
from .datasets import BoxItem, as_items, prepare_batch

REMOVAL_VARIANTS: tuple[str, ...] = ("mean", "blur", "inpaint")
ATTACK_COLUMNS = ["class_id", "class_name", "attack", "variant", "n", "rate"]


# ------------------------------------------------------------------------------ edits
def dilate(masks: np.ndarray, pad: int) -> np.ndarray:
    """``(B, S, S)`` bool masks grown by ``pad`` pixels (square structuring element)."""
    if pad <= 0:
        return masks.copy()
    k = np.ones((2 * pad + 1, 2 * pad + 1), np.uint8)
    return np.stack([cv2.dilate(m.astype(np.uint8), k) > 0 for m in masks])


def remove_object(images: torch.Tensor, masks: np.ndarray, variant: str = "inpaint"
                  ) -> torch.Tensor:
    """Fill the masked object region.

    Args:
        images: ``(B, 3, S, S)`` in [0, 1].
        masks: ``(B, S, S)`` bool, True = remove.
        variant: ``mean`` | ``blur`` | ``inpaint``.

    Returns:
        ``(B, 3, S, S)`` edited copies.
    """
    if variant not in REMOVAL_VARIANTS:
        raise BadInput(f"removal variant {variant!r}: expected one of {', '.join(REMOVAL_VARIANTS)}")
    x = images.detach().cpu().float()
    m = torch.from_numpy(np.asarray(masks, bool))[:, None]
    if variant == "mean":
        out_px = (~m).float()
        mean = (x * out_px).sum(dim=(2, 3), keepdim=True) / out_px.sum(dim=(2, 3),
                                                                       keepdim=True).clamp_min(1)
        return torch.where(m, mean.expand_as(x), x)
    arr = (x.permute(0, 2, 3, 1).numpy() * 255).round().clip(0, 255).astype(np.uint8)
    res = np.empty_like(arr)
    for i, (a, mk) in enumerate(zip(arr, masks, strict=True)):
        mk8 = np.asarray(mk, np.uint8)
        if variant == "inpaint":
            res[i] = cv2.inpaint(a, mk8, 3, cv2.INPAINT_TELEA) if mk8.any() else a
        else:
            ys, xs = np.nonzero(mk8)
            side = max(int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1) if len(xs) else 4
            sigma = max(1.5, side / 4.0)
            blurred = cv2.GaussianBlur(a, (0, 0), sigmaX=sigma, sigmaY=sigma,
                                       borderType=cv2.BORDER_REFLECT)
            res[i] = np.where(mk8[..., None] > 0, blurred, a)
    return torch.from_numpy(res).permute(0, 3, 1, 2).float() / 255.0


def context_keep_mask(cams: np.ndarray, masks: np.ndarray, q: float = 0.2) -> np.ndarray:
    """``(B, S, S)`` bool: the top-``q`` fraction of outside-box pixels by CAM value
    (ties at the threshold are kept; vectorised quantile per image)."""
    if not 0 < q <= 1:
        raise BadInput(f"{q}: expected a fraction in (0, 1]", param="q")
    a = np.asarray(cams, np.float64)
    out = ~np.asarray(masks, bool)
    vals = np.where(out, a, np.nan).reshape(len(a), -1)
    thr = np.nanquantile(np.where(np.isnan(vals).all(1, keepdims=True), 0.0, vals), 1 - q, axis=1)
    return out & (a >= thr[:, None, None]) & (a > 0)


def context_only(images: torch.Tensor, keep: np.ndarray, fill: float = 0.5) -> torch.Tensor:
    """Keep ``(B, S, S)`` pixels of ``images (B, 3, S, S)``; the rest becomes ``fill`` grey."""
    k = torch.from_numpy(np.asarray(keep, bool))[:, None]
    return torch.where(k, images.cpu().float(), torch.full_like(images.cpu().float(), fill))


def transplant(donors: torch.Tensor, donor_keep: np.ndarray, targets: torch.Tensor,
               target_masks: np.ndarray) -> torch.Tensor:
    """Paste each donor's kept context onto the matching target (``(B, 3, S, S)`` each), never
    over the target's own object (``target_masks (B, S, S)``)."""
    k = torch.from_numpy(np.asarray(donor_keep, bool) & ~np.asarray(target_masks, bool))[:, None]
    return torch.where(k, donors.cpu().float(), targets.cpu().float())


# ------------------------------------------------------------------------------ runner
def _predict(classifier: Classifier, images: torch.Tensor, batch: int) -> np.ndarray:
    preds = []
    for i in range(0, len(images), batch):
        preds.append(classifier.probs(images[i:i + batch]).argmax(dim=1).cpu().numpy())
    return np.concatenate(preds) if preds else np.zeros(0, int)


def run_attacks(classifier: Classifier, dataset: Any, classes: Sequence[int], *,
                cam: str = "gradcam++", q: float = 0.2, pad: int = 1, batch_size: int = 16,
                max_images: int | None = None, max_targets: int = 200, seed: int = 0,
                examples_dir: str | os.PathLike[str] | None = None,
                target_layer: str | None = None, progress: Any = None,
                draw_example: Callable[[list[tuple[str, torch.Tensor]], Path], object]
                | None = None,
                ) -> pd.DataFrame:
    """Run the attacks of the module docstring for every class of ``classes``.

    Args:
        classifier: differentiable classifier.
        dataset: :class:`BoxDataset` or any sequence of ``(image, class_id, boxes)`` items.
        classes: flagged class ids.
        cam: CAM method used to pick the context (true class).
        q: fraction of outside-box pixels kept as context.
        pad: box dilation in input pixels before removal.
        max_images: at most this many images per flagged class (first ones).
        max_targets: at most this many images of other classes for the transplant (seeded).
        examples_dir: where to save example strips ``<id>_<name>.png``
            (`robustlens.study.layout.StudyLayout.attack_example`).
        progress: optional callable ``progress(n)`` advanced per processed image.
        draw_example: draws one example strip, ``draw_example([(title, image), ...], path)``
            (default `robustlens.figures.attack_strip_figure`).

    Returns:
        DataFrame with :data:`ATTACK_COLUMNS`.
    """
    cam = check_cam_method(cam)
    check_cam_model(classifier, target_layer)
    if draw_example is None and examples_dir is not None:
        from ..figures import attack_strip_figure as draw_example
    from ..study.layout import StudyLayout
    items = as_items(dataset)
    if not items:
        raise BadInput("dataset: empty dataset, no annotated image")
    if not classes:
        raise BadInput(": no class given", param="classes")
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    by_class: dict[int, list[BoxItem]] = {}
    for it in items:
        by_class.setdefault(it.class_id, []).append(it)
    for c in classes:
        if c not in by_class:
            raise BadInput(f"no images of this class in {ref('dataset')} (empty class)",
                           param="classes", value=f"{c} ({classifier.labels[c]!r})")
    name = classifier.labels
    for c in classes:
        own = by_class[c][:max_images] if max_images else by_class[c]
        counts = {k: 0 for k in ["clean", *REMOVAL_VARIANTS, "context_only"]}
        donors, donor_keep = [], []
        panels: list[tuple[str, torch.Tensor]] = []
        for i in range(0, len(own), batch_size):
            batch = own[i:i + batch_size]
            images, masks, _ = prepare_batch(batch, classifier)
            counts["clean"] += int((_predict(classifier, images, batch_size) == c).sum())
            rm = dilate(masks, pad)
            for v in REMOVAL_VARIANTS:
                edited = remove_object(images, rm, v)
                counts[v] += int((_predict(classifier, edited, batch_size) == c).sum())
                if i == 0:
                    panels.append((f"removal: {v}", edited[0]))
            maps = compute_cams(classifier, images, [c] * len(batch), cam, target_layer=target_layer)
            keep = context_keep_mask(maps, rm, q)
            ctx = context_only(images, keep)
            counts["context_only"] += int((_predict(classifier, ctx, batch_size) == c).sum())
            if i == 0:
                panels = [("original", images[0]), *panels, (f"context only q={q:g}", ctx[0])]
            donors.append(images)
            donor_keep.append(keep)
            if progress:
                progress(len(batch))
        n = len(own)
        rows.append(_row(c, name[c], "clean", "none", n, counts["clean"]))
        for v in REMOVAL_VARIANTS:
            rows.append(_row(c, name[c], "removal", v, n, counts[v]))
        rows.append(_row(c, name[c], "context_only", f"q={q:g}", n, counts["context_only"]))

        # transplant onto other classes
        others = [it for it in items if it.class_id != c]
        if others:
            sel = rng.permutation(len(others))[:max_targets]
            targets = [others[j] for j in sorted(sel)]
            d_img = torch.cat(donors)
            d_keep = np.concatenate(donor_keep)
            order = rng.permutation(len(targets)) % len(d_img)
            hit = base = 0
            for i in range(0, len(targets), batch_size):
                tb = targets[i:i + batch_size]
                t_img, t_mask, _ = prepare_batch(tb, classifier)
                idx = order[i:i + len(tb)]
                pasted = transplant(d_img[idx], d_keep[idx], t_img, t_mask)
                base += int((_predict(classifier, t_img, batch_size) == c).sum())
                hit += int((_predict(classifier, pasted, batch_size) == c).sum())
                if i == 0:
                    panels += [("transplant target", t_img[0]), ("transplanted", pasted[0])]
            rows.append(_row(c, name[c], "transplant", "baseline", len(targets), base))
            rows.append(_row(c, name[c], "transplant", f"q={q:g}", len(targets), hit))
        if examples_dir is not None and panels:
            assert draw_example is not None
            draw_example(panels, Path(examples_dir) / StudyLayout.attack_example(c, name[c]))
    return pd.DataFrame(rows, columns=ATTACK_COLUMNS)


def _row(c: int, name: str, attack: str, variant: str, n: int, k: int) -> dict[str, Any]:
    return {"class_id": c, "class_name": name, "attack": attack, "variant": variant, "n": n,
            "rate": k / n if n else float("nan")}


def write_attacks(df: pd.DataFrame, out_dir: str | os.PathLike[str]) -> Path:
    """Write ``out_dir/attacks.csv`` atomically."""
    p = Path(out_dir) / "attacks.csv"
    write_text_atomic(p, df.to_csv(index=False, float_format="%.6g"))
    return p
