import sys

import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self, n: int = 3, nan: bool = False) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, n)
        self.nan = nan

    def forward(self, x):
        y = self.fc(self.pool(self.features(x)).flatten(1))
        return y * float("nan") if self.nan else y


def build():
    torch.manual_seed(0)
    return Tiny()


def build_nan():
    return Tiny(nan=True)


def boom():
    raise RuntimeError("weights file corrupt\nsecond line")


def leave():
    sys.exit(3)


def build_b():
    """A second tiny model with other weights (a study ranking two models)."""
    torch.manual_seed(1)
    return Tiny()
