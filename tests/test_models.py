"""Model registry: every adapter round-trips a spec; bad specs fail in one clear line."""

from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

from robustlens.errors import BadInput
from robustlens.models import load_model
from robustlens.models.registry import imagenet_labels


class Tiny(nn.Module):
    """Mean colour -> 5 logits; a conv layer so a CAM layer exists."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return Tiny().eval()


def _reference(tiny: nn.Module, x01: torch.Tensor, size: int = 224) -> torch.Tensor:
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        return tiny((x01 - mean) / std)


def test_default_model_is_a_real_imagenet_classifier(default_model):
    assert default_model.spec == "builtin:efficientnet_lite0"
    assert default_model.num_classes == 1000 and default_model.labels[504] == "coffee mug"
    assert default_model.target_layer == "_conv_head"
    assert default_model.weights_sha256 and len(default_model.weights_sha256) == 64
    p = default_model.probs(torch.rand(2, 3, 224, 224))
    assert p.shape == (2, 1000)
    torch.testing.assert_close(p.sum(1), torch.ones(2))


def test_torchscript_roundtrip(tmp_path, tiny):
    path = tmp_path / "tiny.pt"
    torch.jit.script(tiny).save(str(path))
    clf = load_model(f"torchscript:{path}")
    x = torch.rand(3, 3, 224, 224)
    torch.testing.assert_close(clf.logits(x), _reference(tiny, x))
    assert clf.labels == [f"class_{i}" for i in range(5)]


def test_onnx_roundtrip(tmp_path, tiny):
    path = tmp_path / "tiny.onnx"
    torch.onnx.export(tiny, (torch.rand(1, 3, 224, 224),), str(path), input_names=["x"],
                      dynamic_axes={"x": {0: "b"}}, dynamo=False)
    clf = load_model(f"onnx:{path}")
    x = torch.rand(2, 3, 224, 224)
    torch.testing.assert_close(clf.logits(x), _reference(tiny, x), atol=1e-4, rtol=1e-4)
    assert clf.differentiable is False and clf.target_layer is None


def test_python_factory_roundtrip_and_overrides(tmp_path, tiny):
    torch.save(tiny.state_dict(), tmp_path / "w.pt")
    src = tmp_path / "factory.py"
    src.write_text(textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(tmp_path)!r})
        import torch
        from torch import nn
        {_tiny_source()}
        def make():
            return Tiny()
    """))
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\nd\ne\n")
    clf = load_model(f"python:{src}:make", weights=str(tmp_path / "w.pt"), labels_file=str(labels),
                     input_size=64, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert clf.labels == list("abcde") and clf.input_size == 64
    assert clf.target_layer == "features"  # found by the probe: last spatial block
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ref = tiny((x - 0.5) / 0.25)
    torch.testing.assert_close(clf.logits(x), ref)
    assert clf.class_index("c") == 2 and clf.class_index("4") == 4


def _tiny_source() -> str:
    import inspect

    return textwrap.indent(textwrap.dedent(inspect.getsource(Tiny)), "        ").lstrip()


def test_torchvision_with_weights_file(tmp_path):
    import torchvision

    net = torchvision.models.get_model("mobilenet_v3_small", weights=None).eval()
    torch.save(net.state_dict(), tmp_path / "mv3.pth")
    clf = load_model("torchvision:mobilenet_v3_small", weights=str(tmp_path / "mv3.pth"))
    assert clf.labels == imagenet_labels() and clf.input_size == 224 and clf.resize_size == 256
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        ref = net(clf.normalize(x))
    torch.testing.assert_close(clf.logits(x), ref)
    assert clf.target_layer == "features"


def test_timm_with_weights_file(tmp_path):
    import timm

    net = timm.create_model("test_resnet", pretrained=False).eval()
    torch.save(net.state_dict(), tmp_path / "t.pth")
    clf = load_model("timm:test_resnet", weights=str(tmp_path / "t.pth"))
    x = torch.rand(1, 3, clf.input_size, clf.input_size)
    with torch.no_grad():
        ref = net(clf.normalize(x))
    torch.testing.assert_close(clf.logits(x), ref)


def test_missing_hub_weights_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(BadInput, match=r"torchvision:resnet18: weights not found .*; pass weights FILE"):
        load_model("torchvision:resnet18")
    with pytest.raises(BadInput, match=r"timm:resnet18: pretrained weights not in the local cache"):
        load_model("timm:resnet18")


@pytest.mark.parametrize("spec,match", [
    ("nonsense", "unknown model spec"),
    ("keras:foo", "unknown model kind"),
    ("torchvision:not_a_net", "unknown torchvision model"),
    ("timm:not_a_net_xyz", "unknown timm model"),
    ("torchscript:/no/such/file.pt", "file not found"),
    ("onnx:/no/such/file.onnx", "file not found"),
    ("python:/no/such/file.py:make", "file not found"),
])
def test_bad_specs(spec, match):
    with pytest.raises(BadInput, match=match):
        load_model(spec)


def test_model_output_not_BC(tmp_path):
    src = tmp_path / "bad.py"
    src.write_text("import torch\nfrom torch import nn\n"
                   "class M(nn.Module):\n    def forward(self, x):\n        return x.mean(1)\n"
                   "def make():\n    return M()\n")
    with pytest.raises(BadInput, match=r"output has shape \(2, 224, 224\), expected \(B, C\)"):
        load_model(f"python:{src}:make")


def test_bad_overrides(tmp_path, tiny):
    path = tmp_path / "tiny.pt"
    torch.jit.script(tiny).save(str(path))
    with pytest.raises(BadInput, match="^labels"):
        load_model(f"torchscript:{path}", labels_file=str(tmp_path / "none.txt"))
    (tmp_path / "three.txt").write_text("a\nb\nc\n")
    with pytest.raises(BadInput, match="5 classes but 3 labels"):
        load_model(f"torchscript:{path}", labels_file=str(tmp_path / "three.txt"))
    with pytest.raises(BadInput, match="^weights"):
        load_model(f"torchscript:{path}", weights=str(tmp_path / "nope.pth"))


def test_class_and_layer_lookup(default_model):
    assert default_model.class_index("coffee mug") == 504
    assert default_model.class_index(968) == 968
    with pytest.raises(BadInput, match="out of range"):
        default_model.class_index(1000)
    with pytest.raises(BadInput, match="unknown class name"):
        default_model.class_index("flux capacitor")
    with pytest.raises(BadInput, match="no module 'nope'"):
        default_model.layer("nope.conv")
    assert isinstance(default_model.layer("_blocks.3"), nn.Module)
