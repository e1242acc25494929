"""Faithful models: every network is fed as its weights were trained.

Known answers: the reference pipelines are written here by hand from the source of each
checkpoint (the TensorFlow EfficientNet-Lite constants, torchvision's weights preset), not
read back from robustlens, and each test has a negative control that shows it can fail.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from robustlens.models import load_model
from robustlens.representation.datasets import BoxItem, prepare_batch

#: tensorflow/tpu models/official/efficientnet/lite/efficientnet_lite_builder.py
TF_MEAN, TF_STD = 127.0, 128.0
#: tensorflow/tpu models/official/efficientnet/preprocessing.py
CROP_PADDING = 32
LITES = [("builtin:efficientnet_lite0", 224), ("builtin:efficientnet_lite1", 240),
         ("builtin:efficientnet_lite2", 260)]
PHOTOS = ("coffee", "chelsea", "astronaut")


def _photo(name: str) -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(getattr(skimage.data, name)()[..., :3])


def _float(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255.0


def _probs_on_photos(clf, arrays: list[np.ndarray]) -> torch.Tensor:
    """robustlens' own photo path: dataset items -> prepare_batch -> probs."""
    items = [BoxItem(a, 0, np.array([[0.0, 0.0, a.shape[1], a.shape[0]]]), f"p{i}")
             for i, a in enumerate(arrays)]
    images, _, _ = prepare_batch(items, clf)
    return clf.probs(images)


def _reference_lite(x01: torch.Tensor, size: int) -> torch.Tensor:
    """The TF EfficientNet-Lite eval preprocessing by hand: bicubic resize of the shorter side
    to S + 32, centre crop S, (255 x - 127) / 128."""
    x = TF.resize(x01, [size + CROP_PADDING], interpolation=InterpolationMode.BICUBIC,
                  antialias=True)
    x = TF.center_crop(x, [size, size]).clamp(0, 1)
    return (x * 255.0 - TF_MEAN) / TF_STD


@pytest.fixture(scope="module")
def lites():
    return {spec: load_model(spec) for spec, _ in LITES}


@pytest.mark.parametrize("spec,size", LITES)
def test_builtin_photos_match_the_checkpoint_preprocessing(lites, spec, size):
    clf = lites[spec]
    assert (clf.input_size, clf.resize_size, clf.interpolation) == (size, size + 32, "bicubic")
    arrays = [_photo(n) for n in PHOTOS]
    ours = _probs_on_photos(clf, arrays)
    with torch.no_grad():
        ref = torch.cat([clf.module(_reference_lite(_float(a), size)[None]).softmax(1)
                         for a in arrays])
    assert float((ours - ref).abs().max()) <= 1e-3
    # negative control: the ImageNet mean/std the builtins were fed before is far off
    x = torch.stack([TF.center_crop(TF.resize(_float(a), [size + 32], antialias=True),
                                    [size, size]) for a in arrays])
    wrong = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) \
        / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        bad = clf.module(wrong).softmax(1)
    assert float((bad - ref).abs().max()) > 2e-2


@pytest.mark.parametrize("spec,size", LITES)
def test_builtin_photos_against_timm_pil_preset(lites, spec, size):
    """timm's own transform for the same checkpoints (PIL, uint8 bicubic, mean = std = 0.5):
    the resize code differs (PIL vs torch), so the README states this looser tolerance."""
    timm = pytest.importorskip("timm")
    clf = lites[spec]
    name = "tf_" + spec.split(":")[1]
    cfg = timm.data.resolve_data_config(
        pretrained_cfg=timm.models.get_pretrained_cfg(name).to_dict())
    assert (cfg["interpolation"], cfg["input_size"][-1]) == ("bicubic", size)
    assert abs(clf.input_size / clf.resize_size - cfg["crop_pct"]) < 2e-3
    tf = timm.data.create_transform(**cfg)
    arrays = [_photo(n) for n in PHOTOS]
    ours = _probs_on_photos(clf, arrays)
    with torch.no_grad():
        ref = torch.cat([clf.module(tf(Image.fromarray(a))[None]).softmax(1) for a in arrays])
    assert float((ours - ref).abs().max()) <= 0.05  # README: PIL's bicubic vs torch's
    assert torch.equal(ours.argmax(1), ref.argmax(1))


@pytest.mark.parametrize("spec,size", LITES)
def test_builtin_renders_match_the_reference(lites, spec, size):
    """Renders are resized whole (no crop) with the model's interpolation; renders made at
    the input size pass unchanged, then the checkpoint's normalisation."""
    from robustlens.render import MeshRenderer, load_mesh

    clf = lites[spec]
    mesh = load_mesh("pkg:pybullet/mug", up="z")
    params = {"azimuth": np.array([30.0, 200.0]), "elevation": np.array([20.0, 5.0])}
    for render_size in (size, 320):
        with MeshRenderer(render_size) as r:
            imgs = r.render(mesh, params)
        ours = clf.probs(imgs)
        x = imgs if render_size == size else TF.resize(
            imgs, [size, size], interpolation=InterpolationMode.BICUBIC, antialias=True
        ).clamp(0, 1)
        with torch.no_grad():
            ref = clf.module((x * 255.0 - TF_MEAN) / TF_STD).softmax(1)
        assert float((ours - ref).abs().max()) <= 1e-3, render_size


def test_torchvision_bicubic_preset(tmp_path):
    """torchvision:swin_t (weights preset: resize 232 bicubic, crop 224, ImageNet mean/std)
    against ``weights.transforms()`` applied by hand. No hub weights here: a seeded random
    network whose head is scaled so that its softmax is peaked (a flat output could not
    show a preprocessing error)."""
    import torchvision

    w = torchvision.models.Swin_T_Weights.DEFAULT
    tf = w.transforms()
    assert tf.interpolation == InterpolationMode.BICUBIC
    torch.manual_seed(0)
    net = torchvision.models.swin_t()
    with torch.no_grad():
        net.head.weight.mul_(30.0)
    path = tmp_path / "swin_t.pt"
    torch.save(net.state_dict(), path)
    clf = load_model("torchvision:swin_t", weights=str(path))
    assert (clf.input_size, clf.resize_size, clf.interpolation) == (224, 232, "bicubic")
    arrays = [_photo(n) for n in PHOTOS]
    ours = _probs_on_photos(clf, arrays)
    def by_hand(x01: torch.Tensor) -> torch.Tensor:
        """The preset's own steps and values; clamped after the resize as on the uint8
        images torchvision evaluates its weights on (bicubic overshoots [0, 1])."""
        x = TF.resize(x01, tf.resize_size, interpolation=tf.interpolation,
                      antialias=tf.antialias)
        x = TF.center_crop(x, tf.crop_size).clamp(0, 1)
        return TF.normalize(x, list(tf.mean), list(tf.std))

    with torch.no_grad():
        ref = torch.cat([net.eval()(by_hand(_float(a))[None]).softmax(1) for a in arrays])
        assert float(ref.max()) > 0.2  # the check is not on a flat output
        assert float((ours - ref).abs().max()) <= 1e-3
        # the preset object itself on float images (no clamp: 1.6e-3 on the astronaut photo,
        # whose saturated pixels bicubic overshoots; README)
        ref_f = torch.cat([net(tf(_float(a))[None]).softmax(1) for a in arrays])
        assert float((ours - ref_f).abs().max()) <= 2e-3
        # the same preset on uint8 images (torchvision rounds after its resize)
        ref8 = torch.cat([net(tf(torch.from_numpy(a).permute(2, 0, 1))[None]).softmax(1)
                          for a in arrays])
        assert float((ours - ref8).abs().max()) <= 2e-2
        # negative control: bilinear, as the registry fed it before
        x = torch.stack([TF.center_crop(TF.resize(_float(a), [232], antialias=True),
                                        [224, 224]) for a in arrays])
        x = TF.normalize(x, list(tf.mean), list(tf.std))
        assert float((net(x).softmax(1) - ref).abs().max()) > 3e-3


def test_interpolation_override_and_resize_keep_the_crop_fraction():
    clf = load_model("builtin:efficientnet_lite1", interpolation="bilinear", input_size=300)
    assert clf.interpolation == "bilinear"
    assert clf.resize_size == round(300 * 272 / 240)
    assert "overridden: input_size, interpolation" in clf.preprocessing_source


# ------------------------------------------------------------------ one identity
def _keys(clf) -> dict[str, str]:
    """Every key that depends on a model, each built where the code builds it."""
    from robustlens.models.runtime import export_key
    from robustlens.representation.scores import ClassRobustness
    from robustlens.semantic.chunks import MapJob
    from robustlens.study.executor import ModelRef
    from robustlens.study.runner import model_fingerprint

    job = MapJob(("azimuth",), np.zeros((4, 1)), {}, 0, 4, 4)
    return {"study step": model_fingerprint(clf), "map chunk": job.key(clf, "mesh"),
            "crs run": ClassRobustness().run_key(clf),
            "ray worker": ModelRef.of(clf, _ov(clf), gpu=False).cache_key(),
            "onnx export": export_key(clf)}


def _ov(clf):
    from robustlens.models import ModelOverrides

    return ModelOverrides()


def test_every_override_changes_every_model_key(tmp_path):
    base = _keys(load_model("builtin:planted_cue"))
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"c{i}" for i in range(6)) + "\n")
    sd = load_model("builtin:planted_cue").module.state_dict()
    sd = {k: v + 0.01 if v.is_floating_point() else v for k, v in sd.items()}
    weights = tmp_path / "w.pt"
    torch.save(sd, weights)
    overrides = {"mean": (0.4, 0.5, 0.5), "std": (0.25, 0.3, 0.25), "input_size": 72,
                 "interpolation": "bicubic", "labels_file": str(labels),
                 "target_layer": "block2", "weights": str(weights)}
    for name, value in overrides.items():
        keys = _keys(load_model("builtin:planted_cue", **{name: value}))
        same = [k for k in base if keys[k] == base[k]]
        assert not same, f"changing {name} left these keys unchanged: {same}"


def test_python_model_source_is_part_of_the_identity(tmp_path):
    src = tmp_path / "net.py"
    src.write_text("import torch\ndef make():\n    torch.manual_seed(0)\n"
                   "    return torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), "
                   "torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())\n")
    a = load_model(f"python:{src}:make", input_size=16)
    src.write_text(src.read_text() + "# a comment is still another model file\n")
    b = load_model(f"python:{src}:make", input_size=16)
    assert a.source_sha256 and a.source_sha256 != b.source_sha256
    ka, kb = _keys(a), _keys(b)
    assert all(ka[k] != kb[k] for k in ka if k != "onnx export")


def test_resumed_map_after_a_model_change_equals_a_clean_run(tmp_path):
    """A map's chunks of one model setting are never reused for another: the resumed map
    equals a clean run; with the same setting, chunks are reused."""
    from robustlens.render import MeshRenderer, load_mesh
    from robustlens.semantic import SemanticMap
    from robustlens.semantic.chunks import chunk_files, run_chunked_map

    mesh = load_mesh("demo:mug")
    smap = SemanticMap({"azimuth": "0:360:45", "elevation": "0:40:20"}, batch_size=4)
    before = load_model("builtin:planted_cue")
    after = load_model("builtin:planted_cue", mean=(0.2, 0.5, 0.8))
    folder = tmp_path / "map"
    with MeshRenderer(64) as r:
        run_chunked_map(smap, before, mesh, 1, folder, renderer=r, chunk_size=4)
        assert len(chunk_files(folder)) == 4  # as left by a run killed before map.nc
        logs: list[str] = []
        resumed = run_chunked_map(smap, after, mesh, 1, folder, renderer=r, chunk_size=4,
                                  log=logs.append)
        clean = run_chunked_map(smap, after, mesh, 1, tmp_path / "clean", renderer=r,
                                chunk_size=4)
        assert not logs  # nothing of the other setting was resumed
        np.testing.assert_allclose(resumed["score"], clean["score"], atol=2e-6)
        np.testing.assert_allclose(resumed["margin"], clean["margin"], atol=2e-6)
        old = run_chunked_map(smap, before, mesh, 1, tmp_path / "old", renderer=r,
                              chunk_size=4)
        assert float(np.abs(old["score"] - clean["score"]).max()) > 1e-3  # it matters
        again: list[str] = []
        run_chunked_map(smap, after, mesh, 1, folder, renderer=r, chunk_size=4,
                        log=again.append)
        assert again and "resumed" in again[0]


# ------------------------------------------------------------------ bad input
def test_bad_interpolation_is_one_line_naming_model_and_field(capsys):
    from conftest import run_cli

    code, _, err = run_cli(["layers", "--model", "builtin:planted_cue",
                            "--interpolation", "cubic-ish"], capsys)
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert "--interpolation" in line and "planted_cue" in line and "bicubic" in line


def test_input_size_contradicting_an_onnx_model(tmp_path, capsys):
    from conftest import run_cli

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten())
    path = tmp_path / "fixed.onnx"
    torch.onnx.export(net, (torch.rand(1, 3, 32, 32),), str(path), input_names=["x"],
                      dynamo=False)
    code, _, err = run_cli(["layers", "--model", f"onnx:{path}", "--input-size", "64"], capsys)
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert "--input-size" in line and "fixed.onnx" in line and "32" in line


def test_study_config_names_the_interpolation_field(tmp_path, capsys):
    from conftest import run_cli

    cfg = tmp_path / "s.yaml"
    cfg.write_text("models: [{spec: builtin:planted_cue, interpolation: sideways}]\n"
                   "semantic: {meshes: [demo:mug]}\n")
    code, _, err = run_cli(["run", str(cfg), "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    assert "models.interpolation" in err and "planted_cue" in err
    assert not (tmp_path / "out" / "report.html").exists()
