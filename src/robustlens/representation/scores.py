"""Robustness scores of representations: per image RS, per class CRS (Szyc et al. 2021).

Per image, with ``A`` the CAM of the true class (``(S, S)`` in [0, 1]) and ``M`` the union of
its boxes in input pixels:

* ``rs`` = sum(A * M) / sum(A) (0 when the map is empty);
* ``box_fraction`` = mean(M) (what a uniform map would score);
* ``lift`` = rs / box_fraction (1 = chance; NaN when no box pixel is left after the crop);
* ``density_diff`` = mean(A | inside) - mean(A | outside);
* ``pred`` (top-1), ``top5`` (true class among the 5 highest logits), ``correct``.

Per class: ``n_images``, ``top1``, ``top5``, ``crs`` = mean ``rs`` with a bootstrap 95% CI
(``crs_low``, ``crs_high``), mean ``lift``, mean ``box_fraction`` and ``density_diff``;
with ``correct_only`` the CAM scores use only the correctly classified images (``n_scored``).

:class:`ClassRobustness` runs it all in batches, resumably when given an output folder.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..errors import BadInput
from ..estimator import Estimator, check_int
from ..io import write_text_atomic
from ..models.base import Classifier
from ..stats import bootstrap_mean_ci
from .cam import check_cam_method, check_cam_model, compute_cams_and_logits
from .datasets import BoxItem, as_items, prepare_batch

IMAGE_COLUMNS = ["image", "class_id", "class_name", "rs", "box_fraction", "lift", "density_diff",
                 "pred", "pred_name", "correct", "top5", "p_true", "n_boxes"]
CLASS_COLUMNS = ["rank", "class_id", "class_name", "n_images", "n_scored", "top1", "top5", "crs",
                 "crs_low", "crs_high", "crs_correct", "lift", "box_fraction", "density_diff"]


# ------------------------------------------------------------------------- per image
def image_scores(cams: np.ndarray | torch.Tensor, masks: np.ndarray | torch.Tensor
                 ) -> dict[str, np.ndarray]:
    """Vectorised per-image scores.

    Args:
        cams: ``(B, S, S)`` non-negative maps.
        masks: ``(B, S, S)`` bool box unions.

    Returns:
        dict of ``(B,)`` float64 arrays: ``rs``, ``box_fraction``, ``lift``, ``density_diff``.
    """
    a = torch.as_tensor(np.asarray(cams), dtype=torch.float64)
    m = torch.as_tensor(np.asarray(masks)).bool()
    if a.shape != m.shape or a.ndim != 3:
        raise ValueError(f"cams {tuple(a.shape)} and masks {tuple(m.shape)} must both be (B, S, S)")
    mf = m.to(a.dtype)
    total = a.sum(dim=(1, 2))
    inside = (a * mf).sum(dim=(1, 2))
    n_in = mf.sum(dim=(1, 2))
    n_all = float(a.shape[1] * a.shape[2])
    n_out = n_all - n_in
    rs = torch.where(total > 0, inside / total.clamp_min(1e-300), torch.zeros_like(total))
    frac = n_in / n_all
    nan = torch.full_like(total, float("nan"))
    lift = torch.where(frac > 0, rs / frac.clamp_min(1e-300), nan)
    mean_in = torch.where(n_in > 0, inside / n_in.clamp_min(1), nan)
    mean_out = torch.where(n_out > 0, (total - inside) / n_out.clamp_min(1), nan)
    return {"rs": rs.numpy(), "box_fraction": frac.numpy(), "lift": lift.numpy(),
            "density_diff": (mean_in - mean_out).numpy()}


def prediction_scores(logits: torch.Tensor, class_ids: Sequence[int] | np.ndarray, k: int = 5
                      ) -> dict[str, np.ndarray]:
    """``logits (B, C)`` -> ``pred`` (B,) int, ``correct`` (B,) bool, ``top5`` (B,) bool
    (true class among the ``k`` highest), ``p_true`` (B,) softmax probability of the true class."""
    lg = logits.detach().float().cpu()
    y = torch.as_tensor(np.asarray(class_ids), dtype=torch.long)
    topk = lg.topk(min(k, lg.shape[1]), dim=1).indices
    pred = topk[:, 0]
    return {"pred": pred.numpy(), "correct": (pred == y).numpy(),
            "top5": (topk == y[:, None]).any(dim=1).numpy(),
            "p_true": lg.softmax(dim=1).gather(1, y[:, None])[:, 0].numpy()}


# ------------------------------------------------------------------------- per class
def bootstrap_ci(values: np.ndarray, n_boot: int = 1000, seed: int | Sequence[int] = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of the finite ``values (n,)``
    (:func:`robustlens.stats.bootstrap_mean_ci`)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan")
    if n_boot <= 0:
        return float(v.mean()), float(v.mean())
    return bootstrap_mean_ci(v, n_boot, level, seed)


def class_scores(images: pd.DataFrame, labels: Sequence[str], *, n_boot: int = 1000,
                 seed: int = 0, correct_only: bool = False) -> pd.DataFrame:
    """Aggregate an ``image_scores`` table per class (see the module docstring); rows sorted
    from the least robust class (lowest ``crs``), ``rank`` 1 = least robust."""
    rows = []
    for cid, g in images.groupby("class_id", sort=True):
        scored = g[g["correct"].astype(bool)] if correct_only else g
        rs = scored["rs"].to_numpy(np.float64)
        lo, hi = bootstrap_ci(rs, n_boot, [seed, int(cid)])
        lift = scored["lift"].to_numpy(np.float64)
        rows.append({
            "class_id": int(cid), "class_name": labels[int(cid)] if int(cid) < len(labels) else "",
            "n_images": len(g), "n_scored": len(scored),
            "top1": float(g["correct"].astype(bool).mean()),
            "top5": float(g["top5"].astype(bool).mean()),
            "crs": float(rs.mean()) if len(rs) else float("nan"), "crs_low": lo, "crs_high": hi,
            # CRS over the images the model gets right, reported beside CRS either way
            "crs_correct": float(g.loc[g["correct"].astype(bool), "rs"].mean())
            if g["correct"].astype(bool).any() else float("nan"),
            "lift": float(np.nanmean(lift)) if np.isfinite(lift).any() else float("nan"),
            "box_fraction": float(scored["box_fraction"].mean()) if len(scored) else float("nan"),
            "density_diff": float(np.nanmean(scored["density_diff"].to_numpy(np.float64)))
            if np.isfinite(scored["density_diff"].to_numpy(np.float64)).any() else float("nan"),
        })
    df = pd.DataFrame(rows, columns=[c for c in CLASS_COLUMNS if c != "rank"])
    df = df.sort_values(["crs", "class_id"], na_position="last", kind="stable").reset_index(drop=True)
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    return df


# ------------------------------------------------------------------------- estimator
ProgressFn = Callable[[int], None]


class ClassRobustness(Estimator):
    """Class robustness scores of a classifier on a box-annotated dataset.

    An estimator in scikit-learn's sense: the constructor stores its named parameters as
    given, :meth:`run` validates them (:meth:`check`), :meth:`get_params` /
    :meth:`set_params` read and change them.

    Example::

        cr = ClassRobustness(cam="gradcam++", batch_size=16).run(classifier, dataset)
        cr.class_scores_.head()     # least robust classes first

    Args:
        cam: CAM method (``gradcam++``, ``gradcam``, ``scorecam``, ``smooth``).
        batch_size: images per CAM call.
        correct_only: per-class CAM scores over correctly classified images only.
        n_boot: bootstrap resamples for the CRS confidence interval.
        seed: bootstrap seed.
        target_layer: CAM layer (default: the classifier's).
        scorecam_batch: masked images per forward for Score-CAM.

    Attributes (after :meth:`run`):
        image_scores_: one row per (image, class) (:data:`IMAGE_COLUMNS`), dataset order.
        class_scores_: one row per class present (:data:`CLASS_COLUMNS`), least robust first.
    Attribute (after :meth:`check`): ``cam_``, the canonical CAM method name.
    """

    def __init__(self, cam: str = "gradcam++", batch_size: int = 16, correct_only: bool = False,
                 n_boot: int = 1000, seed: int = 0, target_layer: str | None = None,
                 scorecam_batch: int = 32) -> None:
        self.cam = cam
        self.batch_size = batch_size
        self.correct_only = correct_only
        self.n_boot = n_boot
        self.seed = seed
        self.target_layer = target_layer
        self.scorecam_batch = scorecam_batch

    def check(self) -> ClassRobustness:
        """Validate the parameters (``cam_`` is the canonical CAM name); returns ``self``.
        BadInput names the parameter."""
        self.cam_ = check_cam_method(self.cam)
        check_int(self.batch_size, "batch_size", 1)
        check_int(self.n_boot, "n_boot", 0)
        check_int(self.seed, "seed", 0)
        check_int(self.scorecam_batch, "scorecam_batch", 1)
        if not isinstance(self.correct_only, (bool, np.bool_)):
            raise BadInput(f"{self.correct_only!r}: expected True or False", param="correct_only")
        if self.target_layer is not None and not isinstance(self.target_layer, str):
            raise BadInput(f"{self.target_layer!r}: expected a dotted module path or None",
                           param="target_layer")
        return self

    # ---------------------------------------------------------------- resume key
    def run_key(self, classifier: Classifier, dataset: Any = None) -> str:
        """Hash of everything that changes a per-image score: model, geometry, CAM and, when
        given, the dataset's contents (classes, boxes and image bytes)."""
        from ..fingerprint import items_digest, model_key

        data = items_digest(as_items(dataset)) if dataset is not None else None
        return model_key(classifier, data, self.target_layer or classifier.target_layer,
                         check_cam_method(self.cam))[:16]

    def partial_path(self, out_dir: str | os.PathLike[str], classifier: Classifier,
                     dataset: Any = None) -> Path:
        """Where per-batch rows are appended while running (kept until the run ends, or
        until :func:`remove_partials` with ``keep_partial``)."""
        key = self.run_key(classifier, dataset)
        return Path(out_dir) / ".partial" / f"image_scores.{key}.partial.csv"

    # ---------------------------------------------------------------- running
    def run(self, classifier: Classifier, dataset: Any, out_dir: str | os.PathLike[str] | None = None,
            *, classes: Sequence[int] | None = None, progress: ProgressFn | None = None,
            on_total: Callable[[int, int], None] | None = None,
            keep_partial: bool = False) -> ClassRobustness:
        """Score every item of ``dataset`` (a :class:`BoxDataset` or any sequence of
        ``(image, class_id, boxes)`` items).

        With ``out_dir`` the run is resumable: rows are appended per batch to
        :meth:`partial_path`; a rerun skips finished (image, class) pairs, and at the end
        ``out_dir/image_scores.csv`` and ``out_dir/class_scores.csv`` are written atomically.
        ``progress(n)`` is called after each batch with the number of new items;
        ``on_total(total, done)`` once before the first batch. The partial rows are keyed by
        the model, CAM and the dataset's contents, so an edited box or image is rescored;
        partial files of other keys are deleted. ``keep_partial`` keeps the rows after the
        run (the caller removes them with :func:`remove_partials` once its own outputs, such
        as plots, are written), so a kill after scoring never means scoring again.
        """
        self.check()
        check_cam_model(classifier, self.target_layer)
        items = as_items(dataset)
        if not items:
            raise BadInput(": empty dataset, no annotated image", param="dataset")
        n_cls = classifier.num_classes
        for it in items:
            if not 0 <= it.class_id < n_cls:
                raise BadInput(f"class id {it.class_id} out of range for model "
                               f"{classifier.spec!r} (0..{n_cls - 1})", param="dataset",
                               value=it.ref)
        if classes is not None:
            present = {it.class_id for it in items}
            for c in classes:
                if not 0 <= c < n_cls:
                    raise BadInput(f"out of range for model {classifier.spec!r} "
                                   f"(0..{n_cls - 1})", param="classes", value=f"class {c}")
                if c not in present:
                    raise BadInput("no images of this class in the dataset (empty class)",
                                   param="classes", value=f"class {c} ({classifier.labels[c]!r})")
            keep = set(classes)
            items = [it for it in items if it.class_id in keep]
        keys = [(it.name, it.class_id) for it in items]
        if len(set(keys)) != len(keys):
            dup = next(k for i, k in enumerate(keys) if k in keys[:i])
            raise BadInput(f": image {dup[0]!r} appears twice for class {dup[1]}; "
                           f"give items unique names", param="dataset")

        done: dict[tuple[str, int], dict[str, Any]] = {}
        part = None
        if out_dir is not None:
            part = self.partial_path(out_dir, classifier, items)
            for other in part.parent.glob("image_scores.*.partial.csv"):
                if other != part:  # rows of another model/CAM/dataset: never valid here
                    other.unlink(missing_ok=True)
            done = _read_partial(part)
        todo = [it for it in items if (it.name, it.class_id) not in done]
        if on_total:
            on_total(len(items), len(items) - len(todo))

        def on_rows(rows: list[dict[str, Any]]) -> None:
            for r in rows:
                done[(r["image"], r["class_id"])] = r
            if part is not None:
                _append_rows(part, rows)
            if progress:
                progress(len(rows))

        self._score_items(classifier, todo, on_rows)
        df = pd.DataFrame([done[k] for k in keys], columns=IMAGE_COLUMNS)
        df = df.astype({"class_id": int, "pred": int, "n_boxes": int, "correct": bool, "top5": bool})
        self.image_scores_ = df
        self.class_scores_ = class_scores(df, classifier.labels, n_boot=self.n_boot,
                                          seed=self.seed, correct_only=self.correct_only)
        if out_dir is not None:
            self.save(out_dir)
        if part is not None and not keep_partial:
            part.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                part.parent.rmdir()  # only when empty
        return self

    def _score_items(self, classifier: Classifier, todo: list[BoxItem],
                     on_rows: Callable[[list[dict[str, Any]]], None]) -> None:
        """Score ``todo`` batch by batch, handing each batch's rows (one per item) to
        ``on_rows``; a subclass may score the batches elsewhere, in any order
        (`robustlens.study.executor` runs them as Ray tasks)."""
        for i in range(0, len(todo), self.batch_size):
            on_rows(self.score_batch(classifier, todo[i:i + self.batch_size]))

    def score_batch(self, classifier: Classifier, batch: list[BoxItem]) -> list[dict[str, Any]]:
        """The rows (image scores and predictions) of one batch of items; public: the
        executor scores batches as Ray tasks through it."""
        images, masks, boxes = prepare_batch(batch, classifier)
        ids = [it.class_id for it in batch]
        # the canonical name even when a worker calls this without run() (Ray shards)
        cams, logits = compute_cams_and_logits(classifier, images, ids, check_cam_method(self.cam),
                                               target_layer=self.target_layer,
                                               scorecam_batch=self.scorecam_batch)
        sc = image_scores(cams, masks)
        pr = prediction_scores(logits, ids)
        labels = classifier.labels
        rows = []
        for j, it in enumerate(batch):
            rows.append({
                "image": it.name, "class_id": it.class_id, "class_name": labels[it.class_id],
                "rs": float(sc["rs"][j]), "box_fraction": float(sc["box_fraction"][j]),
                "lift": float(sc["lift"][j]), "density_diff": float(sc["density_diff"][j]),
                "pred": int(pr["pred"][j]), "pred_name": labels[int(pr["pred"][j])],
                "correct": bool(pr["correct"][j]), "top5": bool(pr["top5"][j]),
                "p_true": float(pr["p_true"][j]),
                "n_boxes": int(((boxes[j][:, 2] > boxes[j][:, 0]) &
                                (boxes[j][:, 3] > boxes[j][:, 1])).sum()),
            })
        return rows

    def save(self, out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write ``image_scores.csv`` and ``class_scores.csv`` atomically into ``out_dir``."""
        if getattr(self, "image_scores_", None) is None or getattr(
                self, "class_scores_", None) is None:
            raise RuntimeError("call run() first")
        out = Path(out_dir)
        img_csv, cls_csv = out / "image_scores.csv", out / "class_scores.csv"
        write_text_atomic(img_csv, self.image_scores_.to_csv(index=False, float_format="%.6g"))
        write_text_atomic(cls_csv, self.class_scores_.to_csv(index=False, float_format="%.6g"))
        return img_csv, cls_csv


# ------------------------------------------------------------------------- partial rows
def _parse_row(rec: dict[str, str]) -> dict[str, Any]:
    def b(s: str) -> bool:
        if s not in ("True", "False"):
            raise ValueError(s)
        return s == "True"

    return {"image": rec["image"], "class_id": int(rec["class_id"]), "class_name": rec["class_name"],
            "rs": float(rec["rs"]), "box_fraction": float(rec["box_fraction"]),
            "lift": float(rec["lift"]), "density_diff": float(rec["density_diff"]),
            "pred": int(rec["pred"]), "pred_name": rec["pred_name"], "correct": b(rec["correct"]),
            "top5": b(rec["top5"]), "p_true": float(rec["p_true"]), "n_boxes": int(rec["n_boxes"])}


def _read_partial(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """Rows of a partial file; a line cut short by a kill is dropped and the file rewritten
    clean so appends continue on a line boundary."""
    if not path.is_file():
        return {}
    text = path.read_text(errors="replace")
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip("\r\n").split(",") != IMAGE_COLUMNS:
        path.unlink()
        return {}
    good = [lines[0]]
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for ln in lines[1:]:
        if not ln.endswith("\n"):
            continue  # truncated last line
        try:
            rec = next(csv.DictReader(io.StringIO(lines[0] + ln)))
            r = _parse_row(rec)
        except (ValueError, KeyError, TypeError, StopIteration):
            continue
        rows[(r["image"], r["class_id"])] = r
        good.append(ln)
    if len(good) != len(lines):
        write_text_atomic(path, "".join(good))
    return rows


def _append_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Append rows with one write + fsync (a kill leaves at most one cut line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=IMAGE_COLUMNS, lineterminator="\n")
    new = not path.is_file()
    if new:
        w.writeheader()
    w.writerows({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()} for r in rows)
    with open(path, "a", encoding="utf-8") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())


def remove_partials(out_dir: str | os.PathLike[str]) -> None:
    """Delete ``out_dir/.partial`` (all unfinished runs)."""
    shutil.rmtree(Path(out_dir) / ".partial", ignore_errors=True)


__all__ = ["CLASS_COLUMNS", "IMAGE_COLUMNS", "ClassRobustness", "bootstrap_ci",
           "class_scores", "image_scores", "prediction_scores", "remove_partials"]
