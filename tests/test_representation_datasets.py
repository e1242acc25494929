"""Box datasets: loaders, the box mapping through resize/crop, and the score arithmetic."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision import transforms

from robustlens.models import Classifier, imagenet_labels
from robustlens.representation.datasets import (
    BoxItem,
    boxes_mask,
    imagenet_wnids,
    load_dataset,
    map_boxes,
    prepare_batch,
)
from robustlens.representation.scores import bootstrap_ci, image_scores, prediction_scores

LABELS = ["cat", "dog", "ball, sports ball", "car"]


def _clf(size: int = 224, resize: int = 256) -> Classifier:
    return Classifier(module=nn.Identity(), spec="test", input_size=size, resize_size=resize,
                      labels=list(LABELS))


def _png(path, w: int, h: int, rect: tuple[int, int, int, int] | None = None) -> None:
    a = np.zeros((h, w, 3), np.uint8)
    if rect:
        x0, y0, x1, y1 = rect
        a[y0:y1, x0:x1] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)


# ------------------------------------------------------------------- box mapping
@pytest.mark.parametrize("w,h,rect", [
    (300, 200, (90, 50, 210, 120)),
    (200, 300, (40, 100, 130, 260)),
    (640, 480, (300, 10, 500, 400)),
    (333, 500, (17, 301, 290, 499)),
    (500, 250, (0, 40, 200, 200)),    # partly cropped away on the left
])
def test_box_mapping_lands_on_resized_pixels(w: int, h: int, rect: tuple[int, int, int, int],
                                             tmp_path) -> None:
    clf = _clf()
    img = np.zeros((h, w, 3), np.uint8)
    x0, y0, x1, y1 = rect
    img[y0:y1, x0:x1] = 255
    tv = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224)])
    out = np.asarray(tv(Image.fromarray(img)))[..., 0] > 127
    ys, xs = np.nonzero(out)
    seen = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)
    mapped = map_boxes(np.array([rect], float), w, h, clf)[0]
    np.testing.assert_allclose(mapped, seen, atol=1.0)
    mask = boxes_mask(mapped[None], 224)
    iou = (mask & out).sum() / (mask | out).sum()
    assert iou > 0.97
    # the library's own decode + transform agrees with torchvision on PIL
    _png(tmp_path / "x.png", w, h, rect)
    images, masks, boxes = prepare_batch([BoxItem(tmp_path / "x.png", 0, np.array([rect]))], clf)
    assert images.shape == (1, 3, 224, 224)
    ours = images[0, 0].numpy() > 0.5
    assert (ours != out).mean() < 0.01
    assert np.array_equal(masks[0], mask)


def test_boxes_mask_union_uses_pixel_centres() -> None:
    m = boxes_mask(np.array([[0, 0, 2, 2], [1.4, 1.4, 3.6, 2.6]]), 5)
    want = np.zeros((5, 5), bool)
    want[0:2, 0:2] = True
    want[1:3, 1:4] = True    # second box: centres 1.5..3.5 in x, 1.5..2.5 in y
    assert np.array_equal(m, want)


# ------------------------------------------------------------------- loaders
def test_csv_loader_unites_boxes_and_resolves_labels(tmp_path) -> None:
    _png(tmp_path / "img" / "a.png", 40, 30)
    _png(tmp_path / "img" / "b.png", 40, 30)
    (tmp_path / "boxes.csv").write_text(
        "image,label,xmin,ymin,xmax,ymax\n"
        "img/a.png,dog,1,2,10,12\n"
        "img/a.png,1,20,5,40,30\n"
        "img/b.png,sports ball,0,0,5,5\n"
        "img/a.png,cat,3,3,4,4\n")
    ds = load_dataset(tmp_path / "boxes.csv", LABELS)
    assert ds.kind == "csv" and len(ds) == 3
    a_dog, b_ball, a_cat = ds.items
    assert a_dog.class_id == 1 and a_dog.boxes.tolist() == [[1, 2, 10, 12], [20, 5, 40, 30]]
    assert b_ball.class_id == 2 and b_ball.name == "img/b.png"
    assert a_cat.class_id == 0
    # a folder holding one CSV is detected too
    assert len(load_dataset(tmp_path, LABELS)) == 3


def _voc_xml(fname: str, w: int, h: int, objs: list[tuple[str, tuple[int, ...]]]) -> str:
    body = "".join(f"<object><name>{n}</name><difficult>0</difficult><bndbox><xmin>{b[0]}</xmin>"
                   f"<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
                   for n, b in objs)
    return (f"<annotation><filename>{fname}</filename><size><width>{w}</width>"
            f"<height>{h}</height><depth>3</depth></size>{body}</annotation>")


def test_voc_loader_one_item_per_image_and_class(tmp_path) -> None:
    root = tmp_path / "VOC"
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    _png(root / "JPEGImages" / "0001.jpg", 50, 40)
    _png(root / "JPEGImages" / "0002.jpg", 50, 40)
    (root / "Annotations" / "0001.xml").write_text(
        _voc_xml("0001.jpg", 50, 40, [("dog", (1, 1, 10, 10)), ("cat", (20, 5, 50, 40)),
                                      ("dog", (30, 30, 40, 40))]))
    (root / "Annotations" / "0002.xml").write_text(_voc_xml("0002.jpg", 50, 40,
                                                            [("car", (5, 5, 6, 6))]))
    (root / "ImageSets" / "Main" / "val.txt").write_text("0001\n")
    ds = load_dataset(root, LABELS)
    assert ds.kind == "voc" and len(ds) == 2  # val split: image 0001 only, dog + cat
    dog = next(it for it in ds if it.class_id == 1)
    assert dog.boxes.tolist() == [[0, 0, 10, 10], [29, 29, 40, 40]]  # 1-based -> pixel edges
    assert len(load_dataset(root, LABELS, split=None)) == 2
    (root / "ImageSets" / "Main" / "val.txt").unlink()
    assert len(load_dataset(root, LABELS)) == 3  # no split file: every annotation


def test_coco_loader_xywh(tmp_path) -> None:
    _png(tmp_path / "images" / "p.png", 60, 50)
    coco = {"images": [{"id": 7, "file_name": "p.png", "width": 60, "height": 50}],
            "categories": [{"id": 3, "name": "car"}, {"id": 9, "name": "cat"}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [10, 5, 20, 15]},
                            {"id": 2, "image_id": 7, "category_id": 3, "bbox": [0, 0, 5, 5]},
                            {"id": 3, "image_id": 7, "category_id": 9, "bbox": [40, 30, 20, 20]}]}
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_val.json").write_text(json.dumps(coco))
    ds = load_dataset(tmp_path, LABELS)
    assert ds.kind == "coco" and len(ds) == 2
    car = next(it for it in ds if it.class_id == 3)
    assert car.boxes.tolist() == [[10, 5, 30, 20], [0, 0, 5, 5]]


def test_imagenet_layout_wnids(tmp_path) -> None:
    wnids = imagenet_wnids()
    assert len(wnids) == 1000 == len(set(wnids)) and wnids == sorted(wnids)
    labels = imagenet_labels()
    assert labels[wnids.index("n02799071")] == "baseball"
    assert wnids[0] == "n01440764" and labels[0] == "tench"
    _png(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG", 64, 48)
    (tmp_path / "bbox").mkdir()
    (tmp_path / "bbox" / "ILSVRC2012_val_00000001.xml").write_text(
        _voc_xml("ILSVRC2012_val_00000001", 64, 48, [("n02799071", (0, 3, 64, 48))]))
    ds = load_dataset(tmp_path, labels)
    assert ds.kind == "imagenet" and len(ds) == 1
    assert ds[0].class_id == wnids.index("n02799071")
    assert ds[0].boxes.tolist() == [[0, 3, 64, 48]]


def test_memory_items_and_tuples_are_accepted() -> None:
    clf = _clf(32, 32)
    img = np.zeros((32, 32, 3), np.uint8)
    img[8:16, 8:24] = 200
    t = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    images, masks, _ = prepare_batch([BoxItem(img, 0, np.array([[8, 8, 24, 16]])),
                                      BoxItem(t, 1, np.array([8, 8, 24, 16]))], clf)
    assert torch.allclose(images[0], images[1])
    assert masks[0].sum() == 8 * 16 and np.array_equal(masks[0], masks[1])


# ------------------------------------------------------------------- score arithmetic
def test_uniform_map_scores_the_box_fraction() -> None:
    m = np.zeros((2, 10, 10), bool)
    m[0, :5, :4] = True                       # 20 %
    m[1] = True                               # whole image
    cams = np.ones((2, 10, 10))
    s = image_scores(cams, m)
    np.testing.assert_allclose(s["rs"], [0.2, 1.0])
    np.testing.assert_allclose(s["box_fraction"], [0.2, 1.0])
    np.testing.assert_allclose(s["lift"], [1.0, 1.0])
    assert s["density_diff"][0] == pytest.approx(0.0) and np.isnan(s["density_diff"][1])


def test_empty_map_scores_zero_and_concentrated_map_scores_one() -> None:
    m = np.zeros((2, 8, 8), bool)
    m[:, 2:4, 2:4] = True
    cams = np.zeros((2, 8, 8))
    cams[1, 2:4, 2:4] = 0.7
    s = image_scores(cams, m)
    assert s["rs"].tolist() == [0.0, 1.0]
    assert s["lift"][1] == pytest.approx(16.0)
    assert s["density_diff"][1] == pytest.approx(0.7)


def test_prediction_scores_top1_top5() -> None:
    logits = torch.tensor([[5.0, 4, 3, 2, 1, 0, -1], [0.0, 1, 2, 3, 4, 5, 6]])
    p = prediction_scores(logits, [0, 0])
    assert p["pred"].tolist() == [0, 6] and p["correct"].tolist() == [True, False]
    assert p["top5"].tolist() == [True, False]
    p = prediction_scores(logits, [4, 2])
    assert p["top5"].tolist() == [True, True]


def test_bootstrap_ci_contains_mean_and_is_seeded() -> None:
    v = np.random.default_rng(0).uniform(size=40)
    lo, hi = bootstrap_ci(v, 500, seed=1)
    assert lo < v.mean() < hi and hi - lo < 0.3
    assert bootstrap_ci(v, 500, seed=1) == (lo, hi)
    assert bootstrap_ci(np.array([0.3]), 500) == (0.3, 0.3)
