"""Batched camera and light geometry (numpy, float64).

Conventions: world is y-up; the camera orbits the origin and looks at it. Azimuth rotates
about +y (0 deg = camera on +z), elevation tilts towards +y. The camera-to-world rotation is
``Ry(azimuth) @ Rx(-elevation)``, which stays well defined at elevation +-90 deg.
"""

from __future__ import annotations

import numpy as np


def rot_x(t: np.ndarray) -> np.ndarray:
    """``(B,)`` radians -> ``(B, 3, 3)`` rotations about x."""
    c, s = np.cos(t), np.sin(t)
    z, o = np.zeros_like(t), np.ones_like(t)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1),
                     np.stack([z, s, c], -1)], -2)


def rot_y(t: np.ndarray) -> np.ndarray:
    """``(B,)`` radians -> ``(B, 3, 3)`` rotations about y."""
    c, s = np.cos(t), np.sin(t)
    z, o = np.zeros_like(t), np.ones_like(t)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1),
                     np.stack([-s, z, c], -1)], -2)


def _rad(deg: np.ndarray, periodic: bool = False) -> np.ndarray:
    d = np.asarray(deg, dtype=np.float64)
    if periodic:  # 0 and 360 must give bit-identical images
        d = np.mod(d, 360.0)
    return np.deg2rad(d)


def camera_pose(azimuth: np.ndarray, elevation: np.ndarray, distance: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Camera-to-world rotation ``(B, 3, 3)`` and eye position ``(B, 3)``."""
    rot = rot_y(_rad(azimuth, True)) @ rot_x(-_rad(elevation))
    eye = rot[:, :, 2] * np.asarray(distance, dtype=np.float64)[:, None]
    return rot, eye


def view_matrix(azimuth: np.ndarray, elevation: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """World-to-camera ``(B, 4, 4)``."""
    rot, eye = camera_pose(azimuth, elevation, distance)
    b = rot.shape[0]
    view = np.zeros((b, 4, 4))
    rt = np.transpose(rot, (0, 2, 1))
    view[:, :3, :3] = rt
    view[:, :3, 3] = -np.einsum("bij,bj->bi", rt, eye)
    view[:, 3, 3] = 1.0
    return view


def perspective(fov_deg: np.ndarray, near: np.ndarray, far: np.ndarray) -> np.ndarray:
    """OpenGL perspective ``(B, 4, 4)`` for a square image, vertical field of view ``fov``."""
    f = 1.0 / np.tan(np.deg2rad(np.asarray(fov_deg, dtype=np.float64)) / 2.0)
    b = f.shape[0]
    p = np.zeros((b, 4, 4))
    p[:, 0, 0] = f
    p[:, 1, 1] = f
    p[:, 2, 2] = (far + near) / (near - far)
    p[:, 2, 3] = 2.0 * far * near / (near - far)
    p[:, 3, 2] = -1.0
    return p


def light_direction(azimuth: np.ndarray, elevation: np.ndarray) -> np.ndarray:
    """Unit vectors ``(B, 3)`` pointing from the object towards the light (world frame)."""
    az, el = _rad(azimuth, True), _rad(elevation)
    return np.stack([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)], -1)
