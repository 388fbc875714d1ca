"""Measures derived from a synthetic scene's exact geometry: which pixels of a novel view the
reference camera does not see (disocclusions), and where the depth map jumps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .primitives import _DT
from .raycast import Hits, Scene

#: Relative margin of the occlusion test: an occluder must be hit before
#: (1 - OCCLUSION_EPS) of the way from the reference camera to the point. float64 hits of
#: the point's own surface land within ~1e-13 of 1; real occluders in these scenes are
#: orders of magnitude further away.
OCCLUSION_EPS = 1e-6


@dataclass
class Visibility:
    """Where a novel view's true surface points stand with respect to the reference camera.

    All (H, W) bool over the novel view's pixels: ``occluded`` - the point is hidden from
    the reference camera by other geometry (or by the back of its own object);
    ``outside`` - it projects outside the reference image or behind the reference camera;
    ``missed`` - the novel ray hit nothing (neither of the others is set there).
    ``disoccluded`` = occluded | outside.
    """

    occluded: np.ndarray
    outside: np.ndarray
    missed: np.ndarray

    @property
    def disoccluded(self) -> np.ndarray:
        return self.occluded | self.outside


def visibility(
    scene: Scene,
    c2w: np.ndarray,
    K: np.ndarray,
    size: tuple[int, int],
    ref_K: np.ndarray | None = None,
    ref_size: tuple[int, int] | None = None,
    hits: Hits | None = None,
) -> Visibility:
    """Visibility from the reference camera (identity pose, ``ref_K``/``ref_size``, default
    K/size) of each pixel's true surface point in the view (c2w, K, size).

    A shadow ray goes from the reference camera centre (the world origin) to the point P:
    o = 0, d = P, so P sits at t = 1; the point is occluded when anything is hit at
    t < 1 - OCCLUSION_EPS. ``hits``: this view's cast, if already computed.
    """
    w, h = size
    ref_K = np.asarray(K if ref_K is None else ref_K, np.float64)
    rw, rh = size if ref_size is None else ref_size
    hits = scene.cast(c2w, K, size) if hits is None else hits
    missed = ~torch.isfinite(hits.t)
    p = torch.where(missed[:, None], 1.0, hits.point)
    z = p[:, 2]
    zs = torch.where(z > 0, z, 1.0)
    u = ref_K[0, 0] * p[:, 0] / zs + ref_K[0, 1] * p[:, 1] / zs + ref_K[0, 2]
    v = ref_K[1, 1] * p[:, 1] / zs + ref_K[1, 2]
    outside = (z <= 0) | (u < 0) | (u >= rw) | (v < 0) | (v >= rh)
    shadow = scene.intersect(torch.zeros(3, dtype=_DT), p)
    occluded = shadow.t < 1.0 - OCCLUSION_EPS
    outside &= ~missed
    occluded &= ~missed & ~outside
    shape = (h, w)
    return Visibility(occluded.reshape(shape).numpy(), outside.reshape(shape).numpy(), missed.reshape(shape).numpy())


def disoccluded(
    scene: Scene,
    c2w: np.ndarray,
    K: np.ndarray,
    size: tuple[int, int],
    ref_K: np.ndarray | None = None,
    ref_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """(H, W) bool: pixels of the view (c2w (4, 4), K (3, 3), size (W, H)) whose true
    surface point the reference camera (identity pose, ref_K/ref_size, default K/size)
    does not see - hidden behind geometry or outside its image. See ``visibility`` for the
    two causes separately, and ``near_depth_edges`` for the edge mask."""
    return visibility(scene, c2w, K, size, ref_K, ref_size).disoccluded


def depth_edges(depth: np.ndarray, tau: float = 0.03) -> np.ndarray:
    """(H, W) bool: pixels with a 4-neighbour whose z-depth differs by more than the ratio
    1 + tau (both sides of the edge are marked). depth: (H, W) z-depth; inf (missed rays)
    counts as a far surface."""
    z = torch.as_tensor(np.asarray(depth, np.float64))
    edge = torch.zeros_like(z, dtype=torch.bool)
    for dim in (0, 1):
        a = z.narrow(dim, 0, z.shape[dim] - 1)
        b = z.narrow(dim, 1, z.shape[dim] - 1)
        jump = (a > b * (1 + tau)) | (b > a * (1 + tau))
        edge.narrow(dim, 0, z.shape[dim] - 1).logical_or_(jump)
        edge.narrow(dim, 1, z.shape[dim] - 1).logical_or_(jump)
    return edge.numpy()


def near_depth_edges(depth: np.ndarray, radius: int = 3, tau: float = 0.03) -> np.ndarray:
    """(H, W) bool: pixels within ``radius`` pixels (Chebyshev distance) of a depth
    discontinuity of the (H, W) z-depth map (see ``depth_edges``)."""
    edge = torch.from_numpy(depth_edges(depth, tau)).to(torch.float32)[None, None]
    grown = F.max_pool2d(edge, 2 * radius + 1, stride=1, padding=radius)
    return grown[0, 0].numpy() > 0

