"""A tiny study that ``robustlens run`` really produces: the report tests read it.

Two tiny 3-class models (tests/data/tiny_model.py) at 32 px on two demo meshes, a 4 x 3
pose grid, a curve, one fixed start with two region methods, SRVR, class robustness with
Grad-CAM++ on the rendered demo set, attacks, a turntable and the report.
"""

from __future__ import annotations

from pathlib import Path

import yaml

TINY = Path(__file__).resolve().parent / "data" / "tiny_model.py"
MODELS = [f"python:{TINY}:build", f"python:{TINY}:build_b"]
MESHES = ["demo:mug", "demo:bucket"]


def tiny_config(out: Path) -> dict:
    return {
        "seed": 1,
        "models": [{"spec": m, "input_size": 32} for m in MODELS],
        "semantic": {"meshes": [{"mesh": MESHES[0], "class": "class_0"},
                                {"mesh": MESHES[1], "class": "class_1"}],
                     "grid": {"azimuth": "0:360:90", "elevation": "-10:90:50"},
                     "curve": {"param": "azimuth", "grid": "0:360:120", "at": {"elevation": 10}},
                     "batch_size": 16},
        "regions": {"starts": [[180, 10]], "auto_starts": 0, "methods": ["oir_b", "naive"],
                    "max_evals": 40, "criteria": ["score", "top1"]},
        "representation": {"demo_images_per_object": 2, "cams": ["gradcam++"],
                           "attack_classes": 1, "batch_size": 4},
        "turntable": True,
        "report": True,
        "out": str(out),
    }


def run_tiny_study(tmp: Path) -> Path:
    """Run ``robustlens run`` on the tiny config in ``tmp``; returns the study folder."""
    from robustlens.cli import main

    cfg = tmp / "study.yaml"
    out = tmp / "out"
    cfg.write_text(yaml.safe_dump(tiny_config(out)))
    try:
        main(["-q", "run", str(cfg)])
    except SystemExit as exc:
        if exc.code:
            raise RuntimeError(f"robustlens run failed with exit code {exc.code}") from None
    return out
