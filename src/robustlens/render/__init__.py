"""Rendering: scene parameters, meshes and the batched headless renderer."""

from .gl import MeshRenderer
from .mesh import demo_class, demo_meshes, load_mesh, normalize_mesh
from .scene import PARAMETERS, SceneParameter, get_parameter, scene_batch

__all__ = ["MeshRenderer", "PARAMETERS", "SceneParameter", "demo_class", "demo_meshes", "get_parameter",
           "load_mesh", "normalize_mesh", "scene_batch"]
