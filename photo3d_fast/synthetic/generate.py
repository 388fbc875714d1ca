"""Random but valid synthetic scenes (make_scene) and the reference camera they are framed for."""

from __future__ import annotations

import math

import numpy as np

from ..scene.camera import intrinsics_from_fov
from .primitives import Box, Cylinder, Plane, Primitive, Rect, Sphere, _unit, random_texture
from .raycast import Scene

KINDS = ("planes", "spheres", "floor", "thin", "mixed")
#: Field of view and aspect make_scene places objects for (the default camera of docs/architecture.md).
SCENE_FOV_DEG = 55.0
SCENE_ASPECT = 4.0 / 3.0


def reference_camera(size: tuple[int, int], fov_deg: float = SCENE_FOV_DEG) -> np.ndarray:
    """K (3, 3) of the reference camera make_scene frames its scenes for, at (W, H) = size."""
    return intrinsics_from_fov(size[0], size[1], fov_deg)


def make_scene(seed: int, kind: str = "mixed") -> Scene:
    """A random but valid scene for the reference camera (identity pose, 55 deg across the
    longer side of a 4:3 image).

    Every scene has a fronto-parallel back wall at z in [6.5, 8] (so every forward ray hits
    something); objects lie at depths in about [1.5, 6] and within the reference view.
    kind: "planes" (rectangular plates at several depths, some turned), "spheres",
    "floor" (a slanted floor with boxes standing on it), "thin" (a floor with thin
    vertical poles: structures a few pixels wide), "mixed" (some of everything).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown scene kind {kind!r}; choose one of {', '.join(KINDS)}")
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    tan_x = math.tan(math.radians(SCENE_FOV_DEG) / 2)
    tan_y = tan_x / SCENE_ASPECT
    prims: list[Primitive] = []
    z_wall = float(rng.uniform(6.5, 8.0))
    prims.append(Plane((0.0, 0.0, -1.0), -z_wall, random_texture(rng, (0.3, 0.9))))

    def spot(z: float, margin: float = 0.75) -> tuple[float, float]:
        """A random (x, y) at depth z inside ``margin`` of the reference view."""
        return float(rng.uniform(-margin, margin) * tan_x * z), float(rng.uniform(-margin, margin) * tan_y * z)

    floor = None
    if kind in ("floor", "thin", "mixed"):
        # Camera 0.9-1.4 above the floor, floor tilted a few degrees (rising or falling
        # away, and rolling), normal pointing up (-y).
        height = float(rng.uniform(0.9, 1.4))
        pitch, roll = np.radians(rng.uniform(-6, 6)), np.radians(rng.uniform(-5, 5))
        normal = _unit([math.sin(roll), -math.cos(roll) * math.cos(pitch), math.sin(pitch)])
        floor = (normal, float(normal @ np.array([0.0, height, 0.0])))
        prims.append(Plane(tuple(normal), floor[1], random_texture(rng, (0.3, 0.8))))

    def floor_y(x: float, z: float) -> float:
        n, c = floor
        return float((c - n[0] * x - n[2] * z) / n[1])

    def n_of(lo: int, hi: int) -> int:
        return int(rng.integers(lo, hi + 1))

    if kind in ("planes", "mixed"):
        for _ in range(n_of(3, 5) if kind == "planes" else 2):
            z = float(rng.uniform(1.8, 5.5))
            x, y = spot(z)
            half = (float(rng.uniform(0.12, 0.3) * z * tan_x), float(rng.uniform(0.12, 0.3) * z * tan_y))
            # Half the plates are turned about y, never so far that an end comes nearer
            # than 1.5 or reaches the wall.
            room = min(z - 1.5, z_wall - 0.2 - z)
            max_yaw = math.asin(min(1.0, room / half[0]))
            yaw = float(rng.uniform(-1, 1) * min(0.6, max_yaw)) if rng.random() < 0.5 else 0.0
            u = (math.cos(yaw), 0.0, math.sin(yaw))
            prims.append(Rect((x, y, z), u, (0.0, -1.0, 0.0), half, random_texture(rng)))
    if kind in ("spheres", "mixed"):
        for _ in range(n_of(3, 5) if kind == "spheres" else 2):
            r = float(rng.uniform(0.25, 0.8))
            z = float(rng.uniform(1.5 + r, min(5.5, z_wall - 0.3 - r)))
            x, y = spot(z, 0.7)
            prims.append(Sphere((x, y, z), r, random_texture(rng)))
    if kind in ("floor", "mixed"):
        for _ in range(n_of(2, 4) if kind == "floor" else 1):
            hx, hy, hz = rng.uniform(0.2, 0.5), rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.5)
            z = float(rng.uniform(2.2, min(5.5, z_wall - 1.0)))
            x, _ = spot(z, 0.6)
            y = floor_y(x, z) - hy  # standing on the floor (y grows downwards)
            prims.append(Box((x, y, z), (hx, hy, hz), float(rng.uniform(-0.7, 0.7)), random_texture(rng)))
    if kind in ("thin", "mixed"):
        for _ in range(n_of(3, 6) if kind == "thin" else 2):
            z = float(rng.uniform(1.8, 5.5))
            x, _ = spot(z, 0.8)
            # 0.01-0.04 units: 1.5-6 px wide at 320 px and z = 2.5, so the thinnest
            # structures are one or two pixels wide in the smaller benchmark images.
            r = float(rng.uniform(0.01, 0.04) * z / 2.5)
            top = float(rng.uniform(-0.5, 0.2) * z * tan_y) if rng.random() < 0.5 else -10.0 * z
            prims.append(Cylinder(x, z, top, floor_y(x, z) + 0.05, r, random_texture(rng)))
    return Scene(prims, kind=kind, seed=seed)
