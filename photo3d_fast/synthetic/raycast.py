"""Ray casting of a synthetic scene: nearest hit over its primitives, Lambertian shading of
the hits, and the camera rays of a pinhole camera (one per pixel centre).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .primitives import _DT, Primitive, _t, _unit

#: Colour of rays that hit nothing (sRGB / 255); make_scene's back wall makes this rare.
BACKGROUND = (0.0, 0.0, 0.0)
#: Direction towards the fixed light (world frame, normalised below): up (-y), left and
#: towards the reference camera (-z), so the walls and the floor both get some light.
LIGHT_DIR = (-0.35, -0.75, -0.55)
#: Shade = AMBIENT + (1 - AMBIENT) * max(0, n . light).
AMBIENT = 0.45


@dataclass
class Hits:
    """Per-ray result of a cast, for N rays (N = H*W for an image, row-major).

    t: (N,) float64 ray parameter (z-depth for camera rays), inf where nothing was hit;
    point: (N, 3) float64 world hit points (undefined where t is inf);
    normal: (N, 3) float64 outward unit normals; object_id: (N,) int64, -1 where missed.
    """

    t: torch.Tensor
    point: torch.Tensor
    normal: torch.Tensor
    object_id: torch.Tensor


@dataclass
class Scene:
    """A list of primitives; primitive i has object id i. ``kind``/``seed`` say where it
    came from (make_scene), for reports."""

    primitives: list[Primitive]
    kind: str = "custom"
    seed: int | None = None
    light: tuple[float, float, float] = field(default_factory=lambda: tuple(_unit(LIGHT_DIR)))

    # -- casting -------------------------------------------------------------------

    def intersect(self, o: torch.Tensor, d: torch.Tensor) -> Hits:
        """Nearest hit of each ray: o (3,) or (N, 3), d (N, 3), float64 world frame."""
        o = torch.as_tensor(o, dtype=_DT)
        d = torch.as_tensor(d, dtype=_DT)
        n_rays = len(d)
        best_t = torch.full((n_rays,), math.inf, dtype=_DT)
        best_n = torch.zeros(n_rays, 3, dtype=_DT)
        best_id = torch.full((n_rays,), -1, dtype=torch.int64)
        for i, prim in enumerate(self.primitives):
            t, n = prim.intersect(o, d)
            closer = t < best_t
            best_t = torch.where(closer, t, best_t)
            best_n = torch.where(closer[:, None], n, best_n)
            best_id = torch.where(closer, i, best_id)
        hit = torch.isfinite(best_t)
        point = o + torch.where(hit, best_t, 0.0)[:, None] * d
        return Hits(best_t, point, best_n, best_id)

    def shade(self, hits: Hits) -> torch.Tensor:
        """(N, 3) float64 colour in [0, 1] of each hit: texture(point) times Lambert."""
        colour = torch.tensor(BACKGROUND, dtype=_DT).repeat(len(hits.t), 1)
        light = _t(self.light)
        for i, prim in enumerate(self.primitives):
            sel = hits.object_id == i
            if not bool(sel.any()):
                continue
            lam = (hits.normal[sel] @ light).clamp_min(0.0)
            colour[sel] = prim.texture(hits.point[sel]) * (AMBIENT + (1.0 - AMBIENT) * lam[:, None])
        return colour

    def cast(self, c2w: np.ndarray, K: np.ndarray, size: tuple[int, int]) -> Hits:
        """Hits of the (W, H) = size image of camera (c2w (4, 4) camera-to-world, K (3, 3)):
        one ray through each pixel centre, N = H*W, row-major."""
        origin, dirs = camera_rays(c2w, K, size)
        return self.intersect(origin, dirs)

    def render(self, c2w: np.ndarray, K: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The exact view of camera c2w (4, 4) camera-to-world, K (3, 3), size (W, H).

        Returns rgb (H, W, 3) uint8 sRGB; depth (H, W) float32 z-depth along this camera's
        optical axis, scene units (inf where a ray hits nothing); object_id (H, W) int32,
        index into ``primitives``, -1 where nothing was hit. One ray per pixel centre, no
        anti-aliasing.
        """
        return self.images(self.cast(c2w, K, size), size)

    def images(self, hits: Hits, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``render``'s (rgb, depth, object_id) images of the hits of a cast of a (W, H) view."""
        w, h = size
        rgb = (self.shade(hits) * 255.0).round().clamp(0, 255).to(torch.uint8)
        return (
            rgb.reshape(h, w, 3).numpy(),
            hits.t.to(torch.float32).reshape(h, w).numpy(),
            hits.object_id.to(torch.int32).reshape(h, w).numpy(),
        )


def camera_rays(c2w: np.ndarray, K: np.ndarray, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Origin (3,) and directions (H*W, 3), float64 world frame, of a pinhole camera.

    Direction of pixel (x, y) = R K^-1 [x + 0.5, y + 0.5, 1]: its camera-frame z is 1, so
    the ray parameter of a hit is its z-depth.
    """
    w, h = size
    c2w = np.asarray(c2w, np.float64)
    K = np.asarray(K, np.float64)
    if c2w.shape != (4, 4) or K.shape != (3, 3):
        raise ValueError(f"c2w must be (4, 4) and K (3, 3), got {c2w.shape} and {K.shape}")
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=_DT) + 0.5, torch.arange(w, dtype=_DT) + 0.5, indexing="ij"
    )
    pix = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(-1, 3)
    cam = pix @ _t(np.linalg.inv(K)).T
    cam = cam / cam[:, 2:3]  # exact z = 1 even for a K with skew or rounding in the inverse
    return _t(c2w[:3, 3]), cam @ _t(c2w[:3, :3]).T

