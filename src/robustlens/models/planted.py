"""The planted-cue classifier (builtin model ``planted_cue``): a small CNN trained by
``scripts/make_planted_cue.py`` on the shape set of :mod:`robustlens.representation.planted`
(the known answer for class robustness scores).  Registers itself on import.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import BadInput
from .base import Classifier
from .registry import DATA_DIR, file_sha256, register_builtin

PLANTED_LABELS: list[str] = ["square", "disc", "triangle", "cross", "ball", "empty"]
#: where the committed weights live
WEIGHTS_DIR: Path = DATA_DIR / "planted_cue"


def _block(cin: int, cout: int, n: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1, bias=False),
                   nn.BatchNorm2d(cout), nn.ReLU()]
    return nn.Sequential(*layers)


class PlantedCueNet(nn.Module):
    """Small all-convolutional CNN: ``(B, 3, 64, 64)`` normalised -> logits ``(B, 5)``.

    Three conv stages (64 -> 32 -> 16 px), global average pooling and a linear head; the
    CAM layer is ``block3`` (48 channels at 1/4 resolution).  Six outputs (the five shape
    classes and ``empty``).
    """

    def __init__(self, n_classes: int = len(PLANTED_LABELS)) -> None:
        super().__init__()
        self.block1 = _block(3, 16, 1)
        self.block2 = _block(16, 32, 2)
        self.block3 = _block(32, 48, 2)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(48, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.block1(x))
        x = self.pool(self.block2(x))
        x = self.block3(x)
        return self.fc(x.mean(dim=(2, 3)))


PLANTED_MEAN = (0.5, 0.5, 0.5)
PLANTED_STD = (0.25, 0.25, 0.25)


@register_builtin("planted_cue", "small CNN trained on the planted-cue shape set (64 px, 5 shape classes "
                  "+ empty; 'ball' is recognised from a context cue outside its box)")
def planted_cue() -> Classifier:
    """The committed planted-cue classifier (data: :mod:`robustlens.representation.planted`)."""
    path = WEIGHTS_DIR / "model.pt"
    if not path.is_file():
        raise BadInput(f"model planted_cue: weight file {path} is missing; run "
                       f"scripts/make_planted_cue.py")
    module = PlantedCueNet()
    module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return Classifier(module=module.eval(), spec="builtin:planted_cue", input_size=64,
                      resize_size=64, mean=PLANTED_MEAN, std=PLANTED_STD,
                      labels=list(PLANTED_LABELS), target_layer="block3",
                      preprocessing_source="scripts/make_planted_cue.py (trained on 64 px "
                                           "images, mean 0.5, std 0.25)",
                      weights_sha256=file_sha256(path))
