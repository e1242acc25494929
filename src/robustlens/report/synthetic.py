"""A small synthetic study folder with the layout of ``robustlens run`` (tests and demos).

Nothing in it comes from a model: the scores are smooth made-up functions, so the folder is
written in well under a second and the report built from it has known answers (the model
``builtin:robust_net`` is the most robust by SRVR; the class ``ball`` leans on context).
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..io import atomic_path, write_text_atomic

__all__ = ["ALL_PARTS", "MODELS", "write_synthetic_study"]

#: model specs of the synthetic study, most robust first
MODELS = ("builtin:robust_net", "builtin:fragile_net")
ALL_PARTS = frozenset({"maps", "curves", "regions", "srvr", "representation", "attacks",
                       "provenance"})
_MESH = "demo:mug"


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in s)


def _map(model_k: int, dims: tuple[str, ...]) -> xr.Dataset:
    az = np.arange(0.0, 360.0, 10.0)
    el = np.arange(-10.0, 90.0, 10.0)
    width = 70.0 if model_k == 0 else 35.0
    if dims == ("azimuth",):
        a = az
        score = 0.9 * np.exp(-0.5 * (np.angle(np.exp(1j * np.radians(a - 120))) * 180 / np.pi
                                     / width) ** 2) + 0.05
        coords = {"azimuth": az}
        shape_dims: tuple[str, ...] = ("azimuth",)
    else:
        a, e = np.meshgrid(az, el, indexing="ij")
        d_az = np.angle(np.exp(1j * np.radians(a - 120))) * 180 / np.pi
        score = 0.9 * np.exp(-0.5 * ((d_az / width) ** 2 + ((e - 30) / 30) ** 2)) + 0.05
        coords = {"azimuth": az, "elevation": el}
        shape_dims = ("azimuth", "elevation")
    top1 = np.where(score >= 0.5, 504, 1).astype(np.int32)
    ds = xr.Dataset({"score": (shape_dims, score.astype(np.float32)),
                     "top1": (shape_dims, top1)}, coords=coords)
    for n in shape_dims:
        ds[n].attrs.update(units="deg", periodic=int(n == "azimuth"))
    ds["score"].attrs.update(long_name="softmax probability of class 504 (coffee mug)",
                             units="1")
    ds.attrs.update(model=MODELS[model_k], mesh=_MESH, class_id=504, class_name="coffee mug",
                    kind="grid")
    return ds


def _regions(model_k: int, method: str, trace_dir: Path | None) -> dict:
    starts = [(130.0, 30.0), (50.0, 20.0), (200.0, 15.0)]
    half = 60.0 if model_k == 0 else 25.0
    records = []
    for i, (a, e) in enumerate(starts):
        grow = half * (1.0 if method == "oir_b" else 0.8) / (1 + i)
        lo, hi = [a - grow, max(-10.0, e - grow / 2)], [a + grow, min(90.0, e + grow / 2)]
        vol = (hi[0] - lo[0]) * (hi[1] - lo[1])
        trace = [[[a - grow * t, e - grow * t / 2], [a + grow * t, e + grow * t / 2], -t]
                 for t in (0.1, 0.3, 0.6, 1.0)]
        rec = {"start": [a, e], "lower": lo, "upper": hi, "volume": vol,
               "volume_ratio": vol / 36000.0, "evaluations": 40 + 17 * i + 5 * model_k,
               "calls": 8 + i, "converged": True, "grew": True,
               "wrapped": [lo[0] < 0 or hi[0] > 360, False], "wall_s": 1.5 + i,
               "iou": round(0.9 - 0.1 * i, 3)}
        if trace_dir is None:
            rec["trace"] = trace
        else:
            name = f"traces/start_{i}.json"
            write_text_atomic(trace_dir / name, json.dumps(
                {"trace": [{"lower": lo_, "upper": hi_, "loss": loss}
                           for lo_, hi_, loss in trace]}))
            rec["trace_file"] = name
        records.append(rec)
    return {"model": MODELS[model_k], "mesh": _MESH, "class_id": 504,
            "class_name": "coffee mug", "method": method, "variant": "ours",
            "params": ["azimuth", "elevation"],
            "domain": {"lower": [0.0, -10.0], "upper": [360.0, 90.0]}, "threshold": 0.5,
            "records": records}


def _png(path: Path, seed: int, size: int = 48) -> None:
    import imageio.v3 as iio

    rng = np.random.default_rng(seed)
    img = (rng.random((size, size, 3)) * 255).astype(np.uint8)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, img, extension=".png")


def write_synthetic_study(out_dir: str | os.PathLike[str],
                          parts: Collection[str] = ALL_PARTS) -> Path:
    """Write a synthetic study with the given ``parts`` (see :data:`ALL_PARTS`) to
    ``out_dir``; returns its path."""
    from ..semantic.maps import save_map

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    unknown = set(parts) - ALL_PARTS
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}")
    mesh = _slug(_MESH)
    for k, model in enumerate(MODELS):
        m = _slug(model)
        if "maps" in parts:
            save_map(_map(k, ("azimuth", "elevation")), out / "maps" / m / mesh / "map.nc")
        if "curves" in parts:
            save_map(_map(k, ("azimuth",)), out / "curves" / m / mesh / "map.nc")
        if "regions" in parts:
            for method in ("oir_b", "naive"):
                d = out / "regions" / m / mesh / method
                doc = _regions(k, method, d if method == "naive" else None)
                write_text_atomic(d / "regions.json", json.dumps(doc, indent=1))
        if "representation" in parts:
            d = out / "representation" / m / "planted_cue" / "gradcam"
            d.mkdir(parents=True, exist_ok=True)
            crs = np.array([0.82, 0.74, 0.77, 0.69, 0.21]) - 0.05 * k
            df = pd.DataFrame({
                "class_id": range(5), "class_name": ["square", "disc", "triangle", "cross",
                                                     "ball"],
                "n_images": 40, "top1": [0.95, 0.9, 0.92, 0.88, 0.97],
                "top5": 1.0, "crs": crs, "crs_low": crs - 0.04, "crs_high": crs + 0.04,
                "lift": crs / np.array([0.3, 0.3, 0.25, 0.28, 0.3]),
            })
            with atomic_path(d / "class_scores.csv") as tmp:
                df.to_csv(tmp, index=False)
            with atomic_path(d / "image_scores.csv") as tmp:
                pd.DataFrame({"image": ["img_000.png"], "class_id": [4], "rs": [0.2],
                              "box_fraction": [0.3], "lift": [0.67], "pred": [4]}).to_csv(
                    tmp, index=False)
            _png(d / "cam_overlays.png", 10 + k, 64)
        if "attacks" in parts:
            d = out / "attacks" / m / "planted_cue"
            d.mkdir(parents=True, exist_ok=True)
            with atomic_path(d / "attacks.csv") as tmp:
                pd.DataFrame({"class_id": [4, 4, 0], "class_name": ["ball", "ball", "square"],
                              "attack": ["cue_removal", "cue_paste", "cue_paste"],
                              "variant": ["", "", ""], "n": [40, 40, 40],
                              "rate": [0.85 - 0.1 * k, 0.6, 0.05]}).to_csv(tmp, index=False)
            _png(d / "examples" / "ball_cue_removal_0.png", 20 + k)
    if "srvr" in parts:
        rows = []
        for k, model in enumerate(MODELS):
            for method, base in (("oir_b", 0.21), ("naive", 0.15)):
                v = base / (1 + 2 * k)
                rows.append({"model": model, "method": method, "variant": "ours", "srvr": v,
                             "srvr_low": v * 0.8, "srvr_high": v * 1.2,
                             "frac_not_grown": 0.25 * k, "n_runs": 4, "evaluations": 180 + k})
        (out / "srvr").mkdir(exist_ok=True)
        with atomic_path(out / "srvr" / "srvr.csv") as tmp:
            pd.DataFrame(rows).to_csv(tmp, index=False)
    if "provenance" in parts:
        prov = {"config": {"models": list(MODELS), "meshes": [_MESH]},
                "versions": {"robustlens": "0.1.0", "torch": "2.14.1", "python": "3.11.7"},
                "models": {m: {"weights_sha256": f"{k:x}" * 64} for k, m in enumerate(MODELS)},
                "machine": {"cpu": "synthetic", "cores": 2, "gpu": None},
                "timings_s": {"maps": 61.5, "regions": 120.25, "srvr": 3.0},
                "started": "2026-11-01T10:00:00+00:00",
                "finished": "2026-11-01T10:03:05+00:00"}
        write_text_atomic(out / "provenance.json", json.dumps(prov, indent=1))
        write_text_atomic(out / "config.yaml", "models: [builtin:robust_net, "
                                               "builtin:fragile_net]\nmeshes: [demo:mug]\n")
    return out
