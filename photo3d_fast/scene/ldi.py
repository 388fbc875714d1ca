"""Layered depth image (LDI): the photo as a front layer plus back layers that hold what
foreground edges hide, and how it is built (on the device of the photo).

Edges are measured in disparity (1 / z-depth), because that is what parallax is made
of: a camera move t opens a gap of fx * t * |1/z_p - 1/z_q| pixels between neighbours p
and q, and a plane, however slanted, is linear in disparity. Two neighbours are on
different surfaces when their disparities differ by more than ``edge_disparity``, chosen
from the path's motion so that a gap of about one pixel could open between them.

Construction. First the depth map is conditioned for the edge threshold
(``depth/condition.py``: smoothed within surfaces, its edges snapped onto the photo's), so
that its noise does not cut surfaces. An exact map (no noise: a renderer's depth, the
quality benchmark's) is not smoothed, and its steps below the edge threshold are real: the
LDI's ``step_disparity`` tells the renderer to stretch their farther side only. Then for
each back layer k = 1 .. L-1, from the surface S seen so far (the photo for k = 1):

1-2. Discontinuities and growth: the op ``grow`` (``ops/grow.py``, its Triton twin
   ``kernels/grow.py``) grows a band behind every depth edge of S into the foreground:
   where the layer is and how deep. With an exact map, a surface seen on both sides of the
   band in a row or column is bridged across it (``inpaint.bridge``): its plane gives the
   depth there instead of the nearest seed's, and its two sides the colour.
   Colour: the band is inpainted from the background around it, never from the
   foreground in front of it (``inpaint.fill_behind``: the exemplar fill, or a learned model);
   with the first back layer and a learned model, the photo's background pixels that
   touch a silhouette take the fill's colour too, so the foreground's colour mixed into
   them does not float beside the foreground as a dotted fringe.
3. Nesting: layer k may only grow inside layer k-1's band (a pixel needs a (k-1)-th layer
   before it can have a k-th), so extra layers peel nested occlusions (a pole in front of
   a box in front of a wall) instead of extending the same band.

Texel (k, y, x) sits at pixel (x + 0.5, y + 0.5) of the intrinsics K at depth
``depth[k, y, x]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..depth.backends import EngineOptions
from ..depth.condition import CLEAN_NOISE, condition_disparity, noise_level
from ..inpaint import fill_behind
from ..inpaint.bridge import bridge_layer
from ..ops.backends import select

#: The widest gap (pixels) that may open between neighbours the renderer treats as one
#: surface; their footprints stretch over it (up to render's MAX_HALF_EXTENT). Wider gaps
#: are edges, filled by back layers. A 3 px stretch reads as the soft edge a lens gives;
#: cutting at 1 px turned every small step of an estimated depth map into a tear.
EDGE_GAP_PX = 3.0
#: Without a known motion, edges are disparity jumps above this share of the disparity range.
DEFAULT_EDGE_SHARE = 0.03
#: In an exact depth map, linked neighbours whose disparities differ by more than this share
#: of the edge threshold are a step (``LDI.step_disparity``): 0.2 of a 3 px gap is 0.6 px.
STEP_SHARE = 0.2


@dataclass
class LDI:
    """color: (L, H, W, 3) float32 sRGB/255; depth: (L, H, W) float32 z-depth (0 where not
    valid); valid: (L, H, W) bool, layer 0 all True; K: (3, 3) float64 intrinsics of the grid.
    All tensors on one device. edge_disparity: the disparity jump between two surfaces;
    step_disparity: the jump above which neighbours on one surface are a step, whose nearer
    side the renderer does not stretch (ops/splat.py); inf (no steps) unless the depth map
    was exact, since in an estimated map which side of a small step is in front is noise."""

    color: torch.Tensor
    depth: torch.Tensor
    valid: torch.Tensor
    K: np.ndarray
    edge_disparity: float
    step_disparity: float = math.inf

    @property
    def layers(self) -> int:
        return self.color.shape[0]

    @property
    def size(self) -> tuple[int, int]:
        """(W, H) of the grid."""
        return self.color.shape[2], self.color.shape[1]

    @property
    def device(self) -> torch.device:
        return self.color.device

    def surfaces(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per layer k, the deepest surface of layers 0..k: depth (L, H, W) and color (L, H, W, 3).

        Surface k is what a camera would see of the scene with layers < k peeled off where
        layer k exists; the renderer uses it to tell which texels are neighbours on the
        same surface.
        """
        depth = self.depth.clone()
        color = self.color.clone()
        for k in range(1, self.layers):
            depth[k] = torch.where(self.valid[k], self.depth[k], depth[k - 1])
            color[k] = torch.where(self.valid[k, ..., None], self.color[k], color[k - 1])
        return depth, color


def ldi_params_for_motion(K: np.ndarray, depth: torch.Tensor | np.ndarray, max_translation: float, size: tuple[int, int]) -> tuple[int, float]:
    """(band, edge_disparity) for a path that moves the camera at most ``max_translation``.

    A move t shifts neighbours apart by fx * t * |disparity difference| pixels, so the
    edge threshold is the jump that opens EDGE_GAP_PX, and the band is the widest gap the
    scene's nearest-to-farthest jump can open, plus 25% and 2 pixels for the footprint;
    it is capped at a quarter of the longer side. Forward motion opens less than a lateral
    move of the same length at the image center, and about half as much at the border.
    """
    z = torch.as_tensor(depth).float().flatten()
    z_near = float(torch.quantile(z[:: max(1, z.numel() // 65536)], 0.001))
    span = 1.0 / z_near - 1.0 / float(z.max())
    fx_t = float(K[0, 0]) * max_translation
    band = int(min(math.ceil(1.25 * fx_t * span) + 2, max(2, max(size) // 4)))
    edge = EDGE_GAP_PX / fx_t if fx_t > 0 else float("inf")
    # Never finer than 0.5% of the range: depth-map noise is not geometry.
    return band, max(edge, 0.005 * span)


def build_ldi(
    image: np.ndarray | torch.Tensor,
    depth: np.ndarray | torch.Tensor,
    K: np.ndarray,
    layers: int = 2,
    band: int | None = None,
    edge_disparity: float | None = None,
    device: torch.device | str | None = None,
    kernels: str = "auto",
    clean_depth: bool = True,
    inpaint: str = "classic",
    engine: EngineOptions | None = None,
) -> LDI:
    """Build an LDI from a photo and its z-depth.

    image: (H, W, 3) uint8 sRGB (or float in [0, 1]); depth: (H, W) float z-depth > 0;
    K: (3, 3) intrinsics of the image; layers: total layers (1 = front only);
    band: back-layer growth in pixels (None: 3% of the longer side, at least 4);
    edge_disparity: disparity jump that makes an edge (None: DEFAULT_EDGE_SHARE of the
    disparity range; ``ldi_params_for_motion`` derives both from a path);
    device: where the LDI lives (default: where ``image`` is, else CPU);
    kernels: "auto" (Triton on a CUDA device when available), "torch", "triton"; "cuda"
    acts as auto (the CUDA C++ extension has no LDI kernels);
    clean_depth: condition the depth for the edge threshold first (module doc);
    inpaint: how the back layers are coloured: "classic" or a learned model name (resolve
    "auto" first with ``inpaint.resolve_inpaint``); engine: how a learned model runs.
    """
    if isinstance(image, np.ndarray) and not image.flags.writeable:
        image = image.copy()  # torch warns about (and may write through) read-only arrays
    img = torch.as_tensor(image)
    dev = torch.device(device) if device is not None else img.device
    img = img.to(dev)
    color = img.float() / 255.0 if img.dtype == torch.uint8 else img.float()
    z = torch.as_tensor(depth, dtype=torch.float32).to(dev)
    h, w = z.shape
    if color.shape != (h, w, 3):
        raise ValueError(f"image is {tuple(color.shape)} but depth is {(h, w)}; expected image (H, W, 3)")
    if band is None:
        band = max(4, int(0.03 * max(h, w)))
    if edge_disparity is None:
        span = float(1.0 / z.min() - 1.0 / z.max())
        edge_disparity = DEFAULT_EDGE_SHARE * span if span > 0 else float("inf")
    exact = noise_level(1.0 / z, edge_disparity) < CLEAN_NOISE
    if clean_depth:
        z = 1.0 / condition_disparity(color, 1.0 / z, edge_disparity, kernels=kernels, smooth=not exact)

    colors = [color]
    depths = [z]
    valids = [torch.ones_like(z, dtype=torch.bool)]
    surf_c, surf_z = color, z
    allowed = None
    _, impl = select("grow", kernels, dev)
    for _ in range(1, layers):
        grown, d, m = impl.grow_back_layer(surf_c, surf_z, band, edge_disparity, allowed)
        bridged = None
        if exact:
            # a surface seen on both sides of the band runs on behind it (inpaint.bridge)
            layer_disp, bridged_c, bridged_m = bridge_layer(surf_c, 1.0 / surf_z, m, torch.where(m, 1.0 / d, 0.0),
                                                            edge_disparity)
            d = torch.where(m, 1.0 / layer_disp.clamp_min(1e-12), 0.0)
            bridged = (bridged_m, bridged_c)
        # the op coloured its band with the far-side fill: the classic method's fallback
        filled, rim = fill_behind(surf_c, 1.0 / surf_z, m, edge_disparity, inpaint, engine, fallback=grown,
                                  hole_disp=torch.where(m, 1.0 / d, 0.0), exact=exact, bridged=bridged)
        c = filled * m[..., None]
        if len(colors) == 1:
            # the photo's background pixels next to a silhouette, decontaminated
            colors[0] = torch.where(rim[..., None], filled, colors[0])
            surf_c = colors[0]
        colors.append(c)
        depths.append(d)
        valids.append(m)
        surf_c = torch.where(m[..., None], c, surf_c)
        surf_z = torch.where(m, d, surf_z)
        allowed = m
    return LDI(torch.stack(colors), torch.stack(depths), torch.stack(valids), np.asarray(K, np.float64),
               float(edge_disparity), STEP_SHARE * float(edge_disparity) if exact else math.inf)
