"""Box-annotated image sets behind one interface.

A dataset is any sequence of items ``(image, class_id, boxes)`` (a :class:`BoxItem`, a plain
3- or 4-tuple, or an object with those attributes):

* ``image``: a file path, or an image already in memory (``numpy`` ``(H, W, 3)`` uint8 or
  float in [0, 1], or a ``torch`` ``(3, H, W)`` tensor in [0, 1]);
* ``class_id``: the true class, an index into the model's labels;
* ``boxes``: ``(K, 4)`` ``xmin, ymin, xmax, ymax`` in pixel-edge coordinates of the original
  image (a box covering pixel columns 10..19 has ``xmin=10, xmax=20``).

:func:`load_dataset` reads the formats below into a :class:`BoxDataset` and auto-detects them:

* CSV ``image,label,xmin,ymin,xmax,ymax`` (one row per box; paths relative to the CSV; label =
  class id or class name matched against the model's labels; pixel-edge coordinates);
* Pascal VOC (``Annotations/ JPEGImages/ ImageSets/Main/<split>.txt``; 1-based inclusive
  coordinates, converted);
* COCO instances JSON (boxes ``x, y, w, h``; category names matched against the labels);
* ImageNet validation layout: images and per-image Pascal-style XMLs anywhere under a folder,
  matched by file stem, class = the wnid in ``<name>`` (mapped with the standard sorted wnid
  list shipped as ``robustlens/data/imagenet_wnids.txt``; needs a 1000-class model);
  coordinates are taken as pixel edges.

Several boxes of one (image, class) are united into one item; an image showing several
classes gives one item per class, each with that class's boxes.

:func:`prepare_batch` decodes items and applies the model's own eval geometry
(``Resize(resize_size)`` + ``CenterCrop(input_size)``) to pixels and boxes alike, see
:func:`map_boxes` and :class:`~robustlens.models.geometry.EvalGeometry`.
"""

from __future__ import annotations

import csv
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from ..errors import BadInput, first_line
from ..images import check_image, read_rgb
from ..models.base import Classifier
from ..models.labels import LabelIndex, imagenet_wnids  # noqa: F401  (re-exported)

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
#: boxes may stick out of the image by this many pixels in XML/COCO files (rounding); clipped
EDGE_TOLERANCE = 1.0


class BoxItem(NamedTuple):
    """One image with its true class and object boxes (see the module docstring)."""

    image: Any
    class_id: int
    boxes: np.ndarray
    name: str = ""
    ref: str = ""


@dataclass
class BoxDataset(Sequence[BoxItem]):
    """A list of :class:`BoxItem` plus where it came from.

    Attributes:
        items: the items, one per (image, class).
        labels: class names, index = class id (the model's labels).
        kind: ``csv``, ``voc``, ``coco``, ``imagenet`` or ``memory``.
        source: the path it was read from.
    """

    items: list[BoxItem]
    labels: list[str] = field(default_factory=list)
    kind: str = "memory"
    source: str = ""

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> BoxItem:  # type: ignore[override]
        return self.items[i]

    def __iter__(self) -> Iterator[BoxItem]:
        return iter(self.items)

    def class_ids(self) -> list[int]:
        """Sorted distinct class ids present."""
        return sorted({it.class_id for it in self.items})

    def subset(self, class_ids: Sequence[int]) -> BoxDataset:
        """Only the items of ``class_ids``."""
        keep = set(class_ids)
        return BoxDataset([it for it in self.items if it.class_id in keep], self.labels,
                          self.kind, self.source)


# ---------------------------------------------------------------------------- items
def as_item(obj: Any, index: int = 0) -> BoxItem:
    """Coerce a dataset element (BoxItem, tuple or object with attributes) to a BoxItem."""
    if isinstance(obj, BoxItem):
        it = obj
    elif isinstance(obj, tuple) and 3 <= len(obj) <= 5:
        it = BoxItem(*obj)
    elif all(hasattr(obj, a) for a in ("image", "class_id", "boxes")):
        it = BoxItem(obj.image, obj.class_id, obj.boxes, getattr(obj, "name", ""),
                     getattr(obj, "ref", ""))
    else:
        raise BadInput(f"item {index}: expected (image, class_id, boxes), got "
                       f"{type(obj).__name__}", param="dataset")
    boxes = np.asarray(it.boxes, dtype=np.float64).reshape(-1, 4)
    name = it.name or (str(it.image) if isinstance(it.image, (str, os.PathLike)) else f"item{index}")
    return BoxItem(it.image, int(it.class_id), boxes, name, it.ref or name)


def as_items(dataset: Any) -> list[BoxItem]:
    """All items of any dataset object (a :class:`BoxDataset` or a sequence of items)."""
    try:
        return [as_item(x, i) for i, x in enumerate(dataset)]
    except TypeError:
        raise BadInput(f": expected a sequence of (image, class_id, boxes) items, got "
                       f"{type(dataset).__name__}", param="dataset") from None


# ---------------------------------------------------------------------------- loaders
def load_dataset(path: str | os.PathLike[str], labels: Sequence[str], *, split: str | None = None,
                 skip_unknown: bool = False) -> BoxDataset:
    """Read a box-annotated image set; the format is detected from ``path``.

    Args:
        path: a CSV file, a COCO JSON file, a VOC root (with ``Annotations/``), a folder with
            one CSV or a COCO ``annotations/instances_*.json``, or a folder of images + XMLs
            (ImageNet validation layout).
        labels: the model's class names (index = class id) used to resolve label names.
        split: VOC image set (``ImageSets/Main/<split>.txt``; default ``val`` if present,
            else every annotation).
        skip_unknown: drop objects whose label is not a model class instead of failing.

    Raises:
        BadInput: missing path, unknown format, unreadable/invalid annotations, bad boxes,
            unknown labels, or no annotated image at all.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise BadInput("no such file or directory", param="dataset", value=path)
    lab = LabelIndex(labels)
    if p.is_file():
        if p.suffix.lower() == ".csv":
            ds = _load_csv(p, lab, skip_unknown)
        elif p.suffix.lower() == ".json":
            ds = _load_coco(p, lab, skip_unknown)
        else:
            raise BadInput("expected a .csv or COCO .json file, or a folder", param="dataset",
                           value=path)
    elif (p / "Annotations").is_dir():
        ds = _load_voc(p, lab, split, skip_unknown)
    else:
        coco = sorted((p / "annotations").glob("instances_*.json")) if (p / "annotations").is_dir() \
            else []
        csvs = sorted(p.glob("*.csv"))
        if len(coco) == 1:
            ds = _load_coco(coco[0], lab, skip_unknown)
        elif len(coco) > 1:
            raise BadInput(f"several COCO files in annotations/; pass one of "
                           f"{', '.join(c.name for c in coco)}", param="dataset", value=path)
        elif len(csvs) == 1:
            ds = _load_csv(csvs[0], lab, skip_unknown)
        elif len(csvs) > 1:
            raise BadInput(f"several CSV files; pass one of {', '.join(c.name for c in csvs)}",
                           param="dataset", value=path)
        else:
            ds = _load_xml_folder(p, lab, skip_unknown)
    if not ds.items:
        raise BadInput("empty dataset, no annotated image found", param="dataset", value=path)
    ds.labels = list(labels)
    return ds


def _group(rows: list[tuple[Any, int, np.ndarray, str, str]], kind: str, source: Path,
           labels: LabelIndex) -> BoxDataset:
    """Unite the boxes of each (image, class), keeping first-appearance order."""
    groups: dict[tuple[str, int], list[Any]] = {}
    for image, cid, box, name, ref in rows:
        key = (name, cid)
        if key in groups:
            groups[key][2].append(box)
        else:
            groups[key] = [image, cid, [box], name, ref]
    items = [BoxItem(g[0], g[1], np.asarray(g[2], np.float64).reshape(-1, 4), g[3], g[4])
             for g in groups.values()]
    return BoxDataset(items, labels.labels, kind, str(source))


def _image_size(path: Path, where: str) -> tuple[int, int]:
    if not path.is_file():
        raise BadInput(f"{where}: image {path} not found", param="dataset")
    try:
        # decoded now: a truncated file would only fail after an hour of maps
        return check_image(path)
    except Exception as exc:
        raise BadInput(f"{where}: cannot read image {path} ({first_line(exc)})",
                       param="dataset") from None


def _check_box(box: np.ndarray, w: float, h: float, where: str, tol: float = 0.0) -> np.ndarray:
    x0, y0, x1, y1 = box
    if not np.all(np.isfinite(box)):
        raise BadInput(f"{where}: box coordinates must be numbers, got {list(box)}",
                       param="dataset")
    if x0 >= x1:
        raise BadInput(f"{where}: xmin {x0:g} >= xmax {x1:g}", param="dataset")
    if y0 >= y1:
        raise BadInput(f"{where}: ymin {y0:g} >= ymax {y1:g}", param="dataset")
    if x0 < -tol or y0 < -tol or x1 > w + tol or y1 > h + tol:
        raise BadInput(f"{where}: box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) lies outside the "
                       f"{int(w)}x{int(h)} image", param="dataset")
    return np.array([max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)], np.float64)


def _load_csv(path: Path, labels: LabelIndex, skip_unknown: bool) -> BoxDataset:
    need = ["image", "label", "xmin", "ymin", "xmax", "ymax"]
    try:
        f = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise BadInput(f"cannot read ({first_line(exc)})", param="dataset",
                       value=path) from None
    rows: list[tuple[Any, int, np.ndarray, str, str]] = []
    sizes: dict[Path, tuple[int, int]] = {}
    with f:
        reader = csv.DictReader(f)
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        missing = [c for c in need if c not in header]
        if missing:
            raise BadInput(f"missing column(s) {', '.join(missing)}; expected header "
                           f"{','.join(need)}", param="dataset", value=path)
        reader.fieldnames = header
        for n, row in enumerate(reader, start=2):
            where = f"{path.name} line {n}"
            if not row.get("image"):
                raise BadInput(f"{where}: empty image path", param="dataset")
            try:
                box = np.array([float(row[c]) for c in need[2:]], np.float64)
            except (TypeError, ValueError):
                raise BadInput(f"{where}: xmin,ymin,xmax,ymax must be numbers, got "
                               f"{[row.get(c) for c in need[2:]]}", param="dataset") from None
            cid = labels.require(row["label"] or "", where, skip_unknown)
            if cid is None:
                continue
            img = Path(row["image"].strip())
            img_path = img if img.is_absolute() else path.parent / img
            if img_path not in sizes:
                sizes[img_path] = _image_size(img_path, where)
            w, h = sizes[img_path]
            box = _check_box(box, w, h, f"{where} ({row['image'].strip()})")
            rows.append((img_path, cid, box, row["image"].strip(), where))
    return _group(rows, "csv", path, labels)


def _parse_xml(path: Path) -> tuple[str | None, tuple[int, int] | None, list[tuple[str, list[float]]]]:
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise BadInput(f"not a readable Pascal-style XML ({first_line(exc)})", param="dataset",
                       value=path) from None
    fname = root.findtext("filename")
    size = None
    if root.find("size") is not None:
        try:
            size = (int(float(root.findtext("size/width") or 0)),
                    int(float(root.findtext("size/height") or 0)))
            if size[0] <= 0 or size[1] <= 0:
                size = None
        except ValueError:
            size = None
    objs = []
    for i, obj in enumerate(root.findall("object")):
        name = (obj.findtext("name") or "").strip()
        try:
            vals = [float(obj.findtext(f"bndbox/{k}") or "nan")
                    for k in ("xmin", "ymin", "xmax", "ymax")]
        except ValueError:
            raise BadInput(f"object {i + 1} has a non-numeric box", param="dataset",
                           value=path) from None
        objs.append((name, vals))
    return fname, size, objs


def _xml_rows(xml: Path, img: Path, labels: LabelIndex, skip_unknown: bool, one_based: bool,
              rel: str) -> list[tuple[Any, int, np.ndarray, str, str]]:
    _, size, objs = _parse_xml(xml)
    if size is None:
        size = _image_size(img, str(xml))
    rows = []
    for i, (name, vals) in enumerate(objs):
        where = f"{xml.name} object {i + 1}"
        cid = labels.require(name, where, skip_unknown)
        if cid is None:
            continue
        box = np.array(vals, np.float64)
        if one_based:
            box[:2] -= 1.0
        box = _check_box(box, size[0], size[1], where, tol=EDGE_TOLERANCE)
        rows.append((img, cid, box, rel, where))
    return rows


def _load_voc(root: Path, labels: LabelIndex, split: str | None, skip_unknown: bool) -> BoxDataset:
    ann, jpg = root / "Annotations", root / "JPEGImages"
    sets = root / "ImageSets" / "Main"
    if split is None and (sets / "val.txt").is_file():
        split = "val"
    if split is not None:
        lst = sets / f"{split}.txt"
        if not lst.is_file():
            raise BadInput(f"{lst} not found", param="split", value=split)
        ids = [ln.split()[0] for ln in lst.read_text().splitlines() if ln.strip()]
    else:
        ids = sorted(p.stem for p in ann.glob("*.xml"))
    rows = []
    for sid in ids:
        xml = ann / f"{sid}.xml"
        if not xml.is_file():
            raise BadInput(f"annotation {xml} listed in the split is missing", param="dataset",
                           value=root)
        fname, _, _ = _parse_xml(xml)
        img = jpg / (fname or f"{sid}.jpg")
        if not img.is_file():
            raise BadInput(f"{xml.name}: image {img} not found", param="dataset")
        rows += _xml_rows(xml, img, labels, skip_unknown, True, f"JPEGImages/{img.name}")
    return _group(rows, "voc", root, labels)


def _load_xml_folder(root: Path, labels: LabelIndex, skip_unknown: bool) -> BoxDataset:
    xmls = sorted(root.rglob("*.xml"))
    if not xmls:
        raise BadInput("no annotations found (expected a CSV, a COCO JSON, a VOC root or "
                       "images with Pascal-style XMLs)", param="dataset", value=root)
    images: dict[str, Path] = {}
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in IMAGE_EXTS:
            images.setdefault(p.stem, p)
    rows = []
    for xml in xmls:
        fname, _, _ = _parse_xml(xml)
        img = images.get(xml.stem) or (images.get(Path(fname).stem) if fname else None)
        if img is None:
            raise BadInput(f"no image named {xml.stem}.* under {root}", param="dataset",
                           value=xml)
        rows += _xml_rows(xml, img, labels, skip_unknown, False, str(img.relative_to(root)))
    return _group(rows, "imagenet", root, labels)


def _load_coco(path: Path, labels: LabelIndex, skip_unknown: bool) -> BoxDataset:
    try:
        data = json.loads(path.read_text())
        images = {int(im["id"]): (im["file_name"], float(im["width"]), float(im["height"]))
                  for im in data["images"]}
        cats = {int(c["id"]): str(c["name"]) for c in data["categories"]}
        anns = data["annotations"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"not a COCO instances file ({first_line(exc)})", param="dataset",
                       value=path) from None
    if not images:
        raise BadInput("empty dataset, no images in the COCO file", param="dataset",
                       value=path)
    first = next(iter(images.values()))[0]
    split = path.stem.split("_")[-1]
    cands = [path.parent, path.parent / "images", path.parent.parent, path.parent.parent / "images",
             path.parent.parent / split, path.parent.parent / "images" / split]
    img_root = next((c for c in cands if (c / first).is_file()), None)
    if img_root is None:
        raise BadInput(f"cannot find image {first}; looked in "
                       f"{', '.join(str(c) for c in cands)}", param="dataset", value=path)
    cat_ids: dict[int, int | None] = {}
    rows = []
    for n, a in enumerate(anns):
        where = f"{path.name} annotation {a.get('id', n)}"
        try:
            img_id, cat_id = int(a["image_id"]), int(a["category_id"])
            x, y, w, h = (float(v) for v in a["bbox"])
        except (KeyError, TypeError, ValueError):
            raise BadInput(f"{where}: expected image_id, category_id and bbox [x, y, w, h]",
                           param="dataset") from None
        if img_id not in images:
            raise BadInput(f"{where}: image_id {img_id} not in images", param="dataset")
        if cat_id not in cat_ids:
            name = cats.get(cat_id)
            if name is None:
                raise BadInput(f"{where}: category_id {cat_id} not in categories",
                               param="dataset")
            cat_ids[cat_id] = labels.require(name, where, skip_unknown)
        cid = cat_ids[cat_id]
        if cid is None:
            continue
        fname, iw, ih = images[img_id]
        box = _check_box(np.array([x, y, x + w, y + h]), iw, ih, where, tol=EDGE_TOLERANCE)
        rows.append((img_root / fname, cid, box, fname, where))
    return _group(rows, "coco", path, labels)


# ---------------------------------------------------------------------------- geometry
def map_boxes(boxes: np.ndarray, width: int, height: int, classifier: Classifier) -> np.ndarray:
    """Map ``(K, 4)`` boxes of a ``width x height`` photo into the ``S x S`` network input.

    Same mapping as the pixels (:meth:`~robustlens.models.geometry.EvalGeometry.boxes` of
    ``classifier.geometry``), then clipped to ``[0, S]``.  Boxes cropped away end up with
    zero area.  Returns ``(K, 4)`` float64.
    """
    return classifier.geometry.boxes(boxes, width, height)


def boxes_mask(boxes: np.ndarray, size: int) -> np.ndarray:
    """Union of ``(K, 4)`` input-space boxes as a bool mask ``(S, S)``; a pixel belongs to a
    box when its centre does (vectorised, no pixel loops)."""
    c = np.arange(size) + 0.5
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    inx = (c[None, :] >= b[:, 0:1]) & (c[None, :] < b[:, 2:3])  # (K, S)
    iny = (c[None, :] >= b[:, 1:2]) & (c[None, :] < b[:, 3:4])
    return np.asarray((iny[:, :, None] & inx[:, None, :]).any(axis=0))


def read_image(item: BoxItem) -> torch.Tensor:
    """Decode an item's image to float ``(3, H, W)`` in [0, 1]; BadInput names the file."""
    img = item.image
    if isinstance(img, torch.Tensor):
        t = img.detach().cpu()
        if t.ndim != 3 or t.shape[0] != 3:
            raise BadInput(f"{item.ref}: image tensor must be (3, H, W), got {tuple(t.shape)}",
                           param="dataset")
        return t.float() / 255.0 if t.dtype == torch.uint8 else t.float()
    if isinstance(img, np.ndarray):
        if img.ndim != 3 or img.shape[2] != 3:
            raise BadInput(f"{item.ref}: image array must be (H, W, 3), got {img.shape}",
                           param="dataset")
        t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
        return t.float() / 255.0 if img.dtype == np.uint8 else t.float()
    try:
        arr = read_rgb(img)
    except Exception as exc:
        raise BadInput(f"{item.ref}: cannot read image {img} ({first_line(exc)})",
                       param="dataset") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255.0


def prepare_batch(items: Sequence[BoxItem], classifier: Classifier
                  ) -> tuple[torch.Tensor, np.ndarray, list[np.ndarray]]:
    """Decode and transform items.

    Returns ``(images (B, 3, S, S) float in [0, 1] on CPU, masks (B, S, S) bool,
    boxes in input coordinates [(K, 4), ...])``.
    """
    s = classifier.input_size
    geometry = classifier.geometry  # one owner: pixels and boxes get the same resize + crop
    imgs, masks, boxes = [], [], []
    for it in (as_item(x, i) for i, x in enumerate(items)):
        img = read_image(it)
        h, w = img.shape[-2:]
        checked = np.stack([_check_box(b, w, h, f"{it.ref}", tol=EDGE_TOLERANCE)
                            for b in it.boxes]) if len(it.boxes) else np.zeros((0, 4))
        if not len(checked):
            raise BadInput(f"{it.ref}: item has no boxes", param="dataset")
        b = geometry.boxes(checked, w, h)
        imgs.append(geometry.images(img))
        boxes.append(b)
        masks.append(boxes_mask(b, s))
    return torch.stack(imgs), np.stack(masks), boxes

