"""Exact ground truth: a ray caster of procedural scenes, independent of the renderer.

The quality benchmark (``bench/quality.py``) and the renderer's end-to-end tests need
views whose true colour and depth are known exactly, from any camera. This package casts
one ray per pixel (through the pixel centre, no anti-aliasing, so depth edges are exact)
into a scene of analytic primitives and returns colour, z-depth and object id. Torch,
float64, the whole image at once.

Conventions (docs/architecture.md, Conventions): OpenCV camera, x right, y down, z forward; pixel (i, j)
has its centre at (i + 0.5, j + 0.5); the world frame is the reference (photo) camera;
poses are camera-to-world 4x4 matrices; depth is z-depth along the camera's optical axis
in scene units.

Surface colour is a function of the 3D hit point only: a procedural texture (a soft
oblique checker plus a sinusoid, per-object colours) times Lambertian shading by a fixed
directional light with fixed (not viewer-facing) normals. Nothing depends on the camera,
so the true colour of a surface point in a novel view equals its colour in the reference
view, which is what an image-based renderer can at best reproduce.

Rays are written o + t * d with d = R K^-1 [x + 0.5, y + 0.5, 1]: the camera-frame
direction has z = 1, so the hit parameter t *is* the z-depth of the hit.

Modules: ``primitives`` (procedural textures and the analytic primitives' ray
intersections), ``raycast`` (the scene: nearest hit, shading, camera rays), ``masks``
(derived measures: visibility from the reference camera, depth edges) and ``generate``
(random valid scenes and the reference camera they are framed for).
"""

from __future__ import annotations

from .generate import KINDS, SCENE_ASPECT, SCENE_FOV_DEG, make_scene, reference_camera
from .masks import OCCLUSION_EPS, Visibility, depth_edges, disoccluded, near_depth_edges, visibility
from .primitives import T_MIN, Box, Cylinder, Plane, Primitive, Rect, Sphere, Texture, random_texture
from .raycast import AMBIENT, BACKGROUND, LIGHT_DIR, Hits, Scene, camera_rays

__all__ = [
    "AMBIENT", "BACKGROUND", "KINDS", "LIGHT_DIR", "OCCLUSION_EPS", "SCENE_ASPECT", "SCENE_FOV_DEG", "T_MIN",
    "Box", "Cylinder", "Hits", "Plane", "Primitive", "Rect", "Scene", "Sphere", "Texture", "Visibility",
    "camera_rays", "depth_edges", "disoccluded", "make_scene", "near_depth_edges", "random_texture",
    "reference_camera", "visibility",
]
