"""Build the shipped demo meshes procedurally with trimesh (deterministic).

Each object is an everyday thing with an ImageNet class; profiles are revolved about the
vertical axis, parts are unioned by concatenation (rendering needs no watertightness).
Writes y-up binary glTF files into ``src/robustlens/data/meshes/``.

    .venv/bin/python scripts/make_demo_meshes.py [--out DIR] [--only NAME ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import trimesh

OUT = Path(__file__).resolve().parent.parent / "src" / "robustlens" / "data" / "meshes"
SECTIONS = 64


def revolve(profile: list[tuple[float, float]], sections: int = SECTIONS) -> trimesh.Trimesh:
    """Revolve a (radius, height) polyline about +z."""
    return trimesh.creation.revolve(np.asarray(profile, dtype=np.float64), sections=sections)


def shell(outer: list[tuple[float, float]], thickness: float, bottom: float) -> list[tuple[float, float]]:
    """Profile of an open container: outer wall up, rim, inner wall down to ``bottom``."""
    inner = [(max(r - thickness, 0.0), z) for r, z in outer[1:]]
    inner = [(r, max(z, bottom)) for r, z in inner]
    top_r, top_z = outer[-1]
    return [(0.0, 0.0)] + outer + [(top_r - thickness, top_z)] + inner[::-1][1:] + [(0.0, bottom)]


def handle(radius: float, tube: float, centre_x: float, centre_z: float,
           arc: tuple[float, float] = (-np.pi / 2, np.pi / 2)) -> trimesh.Trimesh:
    """A torus arc in the x-z plane (a mug or bucket handle)."""
    t = np.linspace(arc[0], arc[1], 48)
    centre = np.stack([centre_x + radius * np.cos(t), np.zeros_like(t),
                       centre_z + radius * np.sin(t)], 1)
    normal = np.stack([np.cos(t), np.zeros_like(t), np.sin(t)], 1)  # in-plane, outward
    y = np.array([0.0, 1.0, 0.0])
    k = 16
    a = np.linspace(0.0, 2 * np.pi, k, endpoint=False)
    ring = (centre[:, None, :] + tube * (np.cos(a)[None, :, None] * normal[:, None, :]
                                         + np.sin(a)[None, :, None] * y))
    verts = ring.reshape(-1, 3)
    i, j = np.meshgrid(np.arange(len(t) - 1), np.arange(k), indexing="ij")
    v00, v01 = i * k + j, i * k + (j + 1) % k
    v10, v11 = v00 + k, v01 + k
    faces = np.concatenate([np.stack([v00, v10, v11], -1).reshape(-1, 3),
                            np.stack([v00, v11, v01], -1).reshape(-1, 3)])
    return trimesh.Trimesh(verts, faces, process=False)


def box(extents: tuple[float, float, float], centre: tuple[float, float, float]) -> trimesh.Trimesh:
    return trimesh.creation.box(extents=extents,
                                transform=trimesh.transformations.translation_matrix(centre))


def mug() -> trimesh.Trimesh:
    body = revolve(shell([(0.40, 0.0), (0.41, 0.5), (0.42, 1.0)], 0.04, 0.06))
    return trimesh.util.concatenate([body, handle(0.24, 0.05, 0.42, 0.5)])


def bottle() -> trimesh.Trimesh:
    prof = [(0.0, 0.0), (0.30, 0.0), (0.31, 0.02), (0.31, 0.62), (0.28, 0.72), (0.18, 0.84),
            (0.11, 0.92), (0.10, 1.20), (0.115, 1.22), (0.115, 1.26), (0.0, 1.26)]
    return revolve(prof)


def wine_bottle() -> trimesh.Trimesh:
    prof = [(0.0, 0.0), (0.22, 0.0), (0.23, 0.02), (0.23, 0.95), (0.20, 1.08), (0.12, 1.18),
            (0.08, 1.25), (0.075, 1.55), (0.085, 1.57), (0.085, 1.62), (0.0, 1.62)]
    return revolve(prof)


def vase() -> trimesh.Trimesh:
    z = np.linspace(0.0, 1.6, 40)
    r = 0.28 + 0.22 * np.sin(np.pi * z / 1.6 * 1.25) ** 2 * np.exp(-z) * 2.2 + 0.05 * (z / 1.6) ** 3
    outer = [(float(a), float(b)) for a, b in zip(r, z, strict=True)]
    return revolve(shell(outer, 0.03, 0.05))


def bowl() -> trimesh.Trimesh:
    t = np.linspace(0.0, np.pi / 2, 24)
    outer = [(0.25, 0.0)] + [(float(0.25 + 0.75 * np.sin(a)), float(0.05 + 0.45 * (1 - np.cos(a))))
                             for a in t[1:]]
    return revolve(shell([(0.0, 0.0)] + outer, 0.04, 0.09)[1:])


def bucket() -> trimesh.Trimesh:
    body = revolve(shell([(0.36, 0.0), (0.50, 0.9)], 0.025, 0.04))
    return trimesh.util.concatenate([body, handle(0.52, 0.015, 0.0, 0.9, (0.0, np.pi))])


def table() -> trimesh.Trimesh:
    parts = [box((2.0, 1.1, 0.08), (0.0, 0.0, 1.0))]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(box((0.08, 0.08, 1.0), (sx * 0.9, sy * 0.45, 0.5)))
    return trimesh.util.concatenate(parts)


def chair() -> trimesh.Trimesh:
    parts = [box((0.9, 0.9, 0.07), (0.0, 0.0, 0.9))]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(box((0.07, 0.07, 0.9), (sx * 0.41, sy * 0.41, 0.45)))
        parts.append(box((0.07, 0.07, 0.95), (sx * 0.41, -0.41, 1.4)))
    for k in range(3):
        parts.append(box((0.82, 0.05, 0.1), (0.0, -0.41, 1.45 + 0.3 * k)))
    return trimesh.util.concatenate(parts)


def barrel() -> trimesh.Trimesh:
    z = np.linspace(0.0, 1.3, 30)
    r = 0.45 + 0.08 * np.sin(np.pi * z / 1.3)
    return revolve([(0.0, 0.0)] + [(float(a), float(b)) for a, b in zip(r, z, strict=True)]
                   + [(0.0, 1.3)])


#: every candidate; scripts/recognition_table.py shows which the default model recognises
OBJECTS = {"mug": mug, "bottle": bottle, "wine_bottle": wine_bottle, "vase": vase,
           "bowl": bowl, "bucket": bucket, "table": table, "chair": chair,
           "barrel": barrel}

#: the candidates whose ImageNet class the default model ranks top-1 at some pose
SHIPPED = ("mug", "vase", "bucket", "table", "chair")

Z_TO_Y = trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--only", nargs="*", default=list(SHIPPED),
                    help=f"objects to build (default: the shipped ones); all: {', '.join(OBJECTS)}")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only:
        m = OBJECTS[name]()
        m.apply_transform(Z_TO_Y)  # profiles are built z-up; ship y-up like ShapeNet/glTF
        m.merge_vertices()
        path = args.out / f"{name}.glb"
        m.export(path)
        print(f"{path}  faces={len(m.faces)}")


if __name__ == "__main__":
    main()
