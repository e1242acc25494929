"""Renderer known answers: analytic silhouettes, periodicity, camera/mesh equivalence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from robustlens.errors import BadInput
from robustlens.render import MeshRenderer, load_mesh, normalize_mesh
from robustlens.render.scene import parse_assignments, scene_batch


@pytest.fixture(scope="module")
def sphere():
    return normalize_mesh(trimesh.creation.icosphere(subdivisions=5))


def silhouette(img: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, H, W) foreground coverage (black background)."""
    return (img.amax(dim=1) > 0.02).float()


@pytest.mark.parametrize("distance,fov", [(2.732, 60.0), (4.0, 40.0), (1.8, 90.0)])
def test_sphere_silhouette_matches_analytic_disc(sphere, renderer, distance, fov):
    img = renderer.render(sphere, {"azimuth": np.array([0.0, 123.0]), "distance": distance,
                                   "fov": fov})
    area = silhouette(img).sum(dim=(1, 2)).numpy()
    # perspective silhouette of a unit sphere at distance d: a disc of angular radius asin(1/d)
    radius_px = np.tan(np.arcsin(1.0 / distance)) / np.tan(np.radians(fov) / 2) * 224 / 2
    expected = np.pi * radius_px**2
    np.testing.assert_allclose(area, expected, rtol=0.02)


def test_output_contract_and_determinism(renderer):
    mug = load_mesh("demo:mug")
    params = {"azimuth": np.array([10.0, 200.0, 33.0]), "elevation": np.array([0.0, 45.0, -10.0])}
    a = renderer.render(mug, params)
    b = renderer.render(mug, params)
    assert a.shape == (3, 3, 224, 224) and a.dtype == torch.float32
    # known answers: the default background is black; a set background colour is exact in
    # the corners (8-bit framebuffer); the lit white object's brightest pixel is near 1
    assert torch.equal(a[:, :, 0, 0], torch.zeros(3, 3))
    assert float(a.max()) <= 1.0 and float(a.max()) > 0.9
    c = renderer.render(mug, params, fixed={"background_r": 0.2, "background_g": 0.4,
                                            "background_b": 0.6})
    torch.testing.assert_close(c[:, :, -1, -1], torch.tensor([[0.2, 0.4, 0.6]] * 3),
                               atol=1 / 255, rtol=0)
    assert torch.equal(a, b)
    assert not torch.equal(a[0], a[1])


def test_azimuth_is_periodic(renderer):
    mug = load_mesh("demo:mug")
    img = renderer.render(mug, {"azimuth": np.array([0.0, 360.0, 90.0, 90.0])})
    assert torch.equal(img[0], img[1])
    assert torch.equal(img[2], img[3])


@pytest.mark.parametrize("theta", [37.0, 180.0, 301.5])
def test_camera_azimuth_equals_rotating_mesh_backwards(renderer, theta):
    mug = load_mesh("demo:mug")
    rotated = mug.copy()
    rotated.apply_transform(trimesh.transformations.rotation_matrix(np.radians(-theta), [0, 1, 0]))
    a = renderer.render(mug, {"azimuth": np.array([theta]), "elevation": np.array([20.0])})
    b = renderer.render(rotated, {"azimuth": np.array([0.0]), "elevation": np.array([20.0])})
    diff = (a - b).abs()
    assert float(diff.mean()) < 2e-3  # only anti-aliased edge pixels may differ
    assert float((diff > 0.05).float().mean()) < 2e-3
    # and it is not trivially true: a different angle differs a lot
    c = renderer.render(mug, {"azimuth": np.array([(theta + 90.0) % 360.0]), "elevation": np.array([20.0])})
    assert float((c - b).abs().mean()) > 0.01


def test_up_axis_and_elevation(renderer):
    """A tall thin box along +y: tall from the side, a small square from the top."""
    tall = normalize_mesh(trimesh.creation.box(extents=(0.2, 1.0, 0.2)))
    img = silhouette(renderer.render(tall, {"elevation": np.array([0.0, 90.0])}))
    rows = img[0].any(dim=1).sum().item()
    cols = img[0].any(dim=0).sum().item()
    assert rows > 3 * cols
    assert img[1].sum() < 0.5 * img[0].sum()
    # elevation -90 sees the same square from below
    below = silhouette(renderer.render(tall, {"elevation": np.array([-90.0])}))
    assert abs(float(below.sum() - img[1].sum())) < 0.05 * float(img[1].sum())


def test_z_up_files_are_rotated(tmp_path, renderer):
    tall_z = trimesh.creation.box(extents=(0.2, 0.2, 1.0))
    path = tmp_path / "tall_z.stl"
    tall_z.export(path)
    m = load_mesh(path, up="z")
    ext = m.bounds[1] - m.bounds[0]
    assert ext[1] > 3 * ext[0]


def test_colours_and_light(renderer):
    sphere = normalize_mesh(trimesh.creation.icosphere(subdivisions=3))
    img = renderer.render(sphere, {}, fixed={"object_r": 1.0, "object_g": 0.0, "object_b": 0.0,
                                               "background_b": 1.0, "ambient": 1.0,
                                               "light_intensity": 0.0})
    centre = img[0, :, 112, 112]
    corner = img[0, :, 2, 2]
    torch.testing.assert_close(centre, torch.tensor([1.0, 0.0, 0.0]), atol=0.01, rtol=0)
    torch.testing.assert_close(corner, torch.tensor([0.0, 0.0, 1.0]), atol=0.01, rtol=0)
    # light from above: the top of the sphere is brighter than the bottom
    lit = renderer.render(sphere, {"elevation": np.array([0.0])})
    top, bottom = lit[0, 0, 40, 112], lit[0, 0, 184, 112]
    assert float(top) > float(bottom) + 0.2


def test_normalisation_unit_sphere():
    m = trimesh.creation.box(extents=(4.0, 2.0, 1.0))
    m.apply_translation([10.0, -3.0, 2.0])
    n = normalize_mesh(m)
    assert np.allclose((n.bounds[0] + n.bounds[1]) / 2, 0.0, atol=1e-9)
    assert np.isclose(np.linalg.norm(n.vertices, axis=1).max(), 1.0)


@pytest.mark.parametrize("suffix", [".obj", ".glb", ".ply", ".stl", ".off"])
def test_formats_load(tmp_path, suffix):
    m = trimesh.creation.icosphere(subdivisions=2)
    p = tmp_path / f"s{suffix}"
    m.export(p)
    loaded = load_mesh(p)
    assert len(loaded.faces) == len(m.faces)


def test_bad_meshes(tmp_path):
    with pytest.raises(BadInput, match="file not found"):
        load_mesh(tmp_path / "missing.obj")
    empty = tmp_path / "empty.obj"
    empty.write_text("")
    with pytest.raises(BadInput, match="empty"):
        load_mesh(empty)
    junk = tmp_path / "junk.glb"
    junk.write_bytes(b"this is not a glb file at all")
    with pytest.raises(BadInput, match="junk.glb"):
        load_mesh(junk)
    nofaces = tmp_path / "points.obj"
    nofaces.write_text("v 0 0 0\nv 1 0 0\n")
    with pytest.raises(BadInput, match="points.obj"):
        load_mesh(nofaces)
    with pytest.raises(BadInput, match="unknown demo mesh"):
        load_mesh("demo:nope")
    with pytest.raises(BadInput, match="unsupported format"):
        (tmp_path / "x.txt").write_text("hi")
        load_mesh(tmp_path / "x.txt")


def test_scene_parameter_validation():
    with pytest.raises(BadInput, match="unknown scene parameter"):
        scene_batch({"zoom": np.array([1.0])})
    with pytest.raises(BadInput, match="outside the valid range"):
        scene_batch({"elevation": np.array([0.0, 120.0])})
    with pytest.raises(BadInput, match="object_color"):
        parse_assignments(["object_color=1,0"])
    assert parse_assignments(["object_color=1,0,0.5", "distance=3"]) == {
        "object_r": 1.0, "object_g": 0.0, "object_b": 0.5, "distance": 3.0}
    with pytest.raises(BadInput, match="^image_size"):
        MeshRenderer(image_size=2)
