"""Layered depth image (LDI): the photo as a front layer plus back layers that hold what
foreground edges hide. Torch reference, vectorised, runs on CPU and GPU.

Edges are measured in disparity (1 / z-depth), because that is what parallax is made
of: a camera move t opens a gap of fx * t * |1/z_p - 1/z_q| pixels between neighbours p
and q, and a plane, however slanted, is linear in disparity. Two neighbours are on
different surfaces when their disparities differ by more than ``edge_disparity``, chosen
from the path's motion so that a gap of about one pixel could open between them.

Construction, for each back layer k = 1 .. L-1, from the surface S seen so far (the
photo for k = 1):

1. Discontinuities: a 4-neighbour pair (p, q) with 1/z_p - 1/z_q > edge_disparity is an
   edge; p is on the foreground side, q is a background *seed*.
2. Growth: the band is grown from the seeds into the foreground, one 8-neighbour ring per
   step, for ``band`` steps. A pixel joins when a known neighbour lies behind its own
   surface by more than the edge threshold, i.e. only into pixels that really are in
   front of that background, never into the background itself. The newcomer's depth
   comes from the nearest such neighbours; the band's colors are drawn from the farther
   of the surfaces bordering it (see ``grow_back_layer``): the inpainting draws from the
   background side, so foreground never smears into the back layer.
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
import torch.nn.functional as F

from .pushpull import fill_from_background

#: The widest gap (pixels) that may open between neighbours the renderer treats as one
#: surface; their footprints stretch over it. Wider gaps are edges, filled by back layers.
EDGE_GAP_PX = 1.0
#: Without a known motion, edges are disparity jumps above this share of the disparity range.
DEFAULT_EDGE_SHARE = 0.03


@dataclass
class LDI:
    """color: (L, H, W, 3) float32 sRGB/255; depth: (L, H, W) float32 z-depth (0 where not
    valid); valid: (L, H, W) bool, layer 0 all True; K: (3, 3) float64 intrinsics of the grid.
    All tensors on one device."""

    color: torch.Tensor
    depth: torch.Tensor
    valid: torch.Tensor
    K: np.ndarray
    edge_disparity: float

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


def discontinuities(depth: torch.Tensor, edge_disparity: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth edges of a (H, W) z-depth map: 4-neighbours whose disparities differ by more
    than ``edge_disparity``.

    Returns (foreground, seeds), both (H, W) bool: pixels on the near side of an edge, and
    their 4-neighbours on the far side.
    """
    disp = 1.0 / depth
    fg = torch.zeros_like(depth, dtype=torch.bool)
    bg = torch.zeros_like(depth, dtype=torch.bool)
    for dim in (0, 1):
        n = depth.shape[dim] - 1
        step = disp.narrow(dim, 0, n) - disp.narrow(dim, 1, n)
        first_near = step > edge_disparity
        second_near = step < -edge_disparity
        fg.narrow(dim, 0, n).logical_or_(first_near)
        bg.narrow(dim, 1, n).logical_or_(first_near)
        fg.narrow(dim, 1, n).logical_or_(second_near)
        bg.narrow(dim, 0, n).logical_or_(second_near)
    return fg, bg


_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def _shifted(x: torch.Tensor, dy: int, dx: int, fill: float) -> torch.Tensor:
    """x[..., y + dy, x + dx] for every pixel, ``fill`` where that falls outside the image."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), value=fill)
    return padded[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]


def grow_back_layer(
    color: torch.Tensor,
    depth: torch.Tensor,
    band: int,
    edge_disparity: float,
    allowed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One back layer behind the foreground edges of a surface.

    color: (H, W, 3) float; depth: (H, W) z-depth; band: growth steps in pixels;
    edge_disparity: see module doc; allowed: (H, W) bool where the layer may exist
    (None: anywhere). Returns (color (H, W, 3), depth (H, W), mask (H, W) bool) of the
    new layer.

    Each step, a pixel joins when one of its known 8-neighbours lies behind its surface
    by more than the edge threshold; it takes the mean of the known neighbours within
    the threshold of the *nearest* such one. Taking the nearest surface behind (not a mean of all) keeps
    two waves from different depths (the box behind a pole, the wall behind the box) from
    blending into a depth that exists nowhere; the farther one is the next layer's job.
    Seeds join too when something lies behind them, since a pixel can be background to
    one edge and foreground to another.
    """
    _, seeds = discontinuities(depth, edge_disparity)
    known = seeds.clone()
    values = torch.cat([color.permute(2, 0, 1), depth[None]], 0)  # meaningful where known
    mask = torch.zeros_like(known)
    limit = 1.0 / depth - edge_disparity  # a neighbour with less disparity is behind
    for _ in range(band):
        # disparities of known neighbours that lie behind this pixel, 0 (= infinitely far,
        # never a candidate since limit > 0 wherever an edge can start) elsewhere
        kd = torch.where(known, 1.0 / values[3], 0.0)
        behind = [torch.where(d < limit, d, 0.0) for d in (_shifted(kd, dy, dx, 0.0) for dy, dx in _NEIGHBOURS)]
        nearest = torch.stack(behind).amax(0)
        accept = ~mask & (nearest > 0)
        if allowed is not None:
            accept &= allowed
        if not bool(accept.any()):
            break
        total = torch.zeros_like(values)
        count = torch.zeros_like(depth)
        cutoff = nearest - edge_disparity
        for (dy, dx), d in zip(_NEIGHBOURS, behind):
            take = ((d > 0) & (d >= cutoff)).to(values.dtype)
            total += _shifted(values, dy, dx, 0.0) * take
            count += take
        values = torch.where(accept, total / count.clamp_min(1.0), values)
        known |= accept
        mask |= accept
    # The growth decides where the layer is and how deep; its colors (means of the
    # nearest rings) streak, so they are drawn like the renderer's hole fill instead:
    # from the farther of the surfaces bordering the band, along rows and columns.
    rgb = fill_from_background(color.permute(2, 0, 1), ~mask, depth).permute(1, 2, 0)
    return rgb * mask[..., None], values[3] * mask, mask


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


def _grower(kernels: str, device: torch.device):
    """grow_back_layer of the implementation ``kernels`` picks: the Triton twin on a CUDA
    device (auto) or when forced, else this module's torch reference."""
    from .kernels import triton_for_auto, triton_status

    if kernels == "torch" or (kernels != "triton" and not triton_for_auto(device)):
        return grow_back_layer
    usable, why = triton_status()
    if not usable:
        if kernels == "triton":
            from .errors import Photo3DError

            raise Photo3DError(f"--kernels triton is not available: {why}; use --kernels torch or auto")
        return grow_back_layer
    from .kernels.ldi import grow_back_layer as triton_grow

    return triton_grow


def build_ldi(
    image: np.ndarray | torch.Tensor,
    depth: np.ndarray | torch.Tensor,
    K: np.ndarray,
    layers: int = 2,
    band: int | None = None,
    edge_disparity: float | None = None,
    device: torch.device | str | None = None,
    kernels: str = "auto",
) -> LDI:
    """Build an LDI from a photo and its z-depth.

    image: (H, W, 3) uint8 sRGB (or float in [0, 1]); depth: (H, W) float z-depth > 0;
    K: (3, 3) intrinsics of the image; layers: total layers (1 = front only);
    band: back-layer growth in pixels (None: 3% of the longer side, at least 4);
    edge_disparity: disparity jump that makes an edge (None: DEFAULT_EDGE_SHARE of the
    disparity range; ``ldi_params_for_motion`` derives both from a path);
    device: where the LDI lives (default: where ``image`` is, else CPU);
    kernels: "auto" (Triton on a CUDA device when available), "torch", "triton"; "cuda"
    acts as auto (the CUDA C++ extension has no LDI kernels).
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

    colors = [color]
    depths = [z]
    valids = [torch.ones_like(z, dtype=torch.bool)]
    surf_c, surf_z = color, z
    allowed = None
    grow = _grower(kernels, dev)
    for _ in range(1, layers):
        c, d, m = grow(surf_c, surf_z, band, edge_disparity, allowed)
        colors.append(c)
        depths.append(d)
        valids.append(m)
        surf_c = torch.where(m[..., None], c, surf_c)
        surf_z = torch.where(m, d, surf_z)
        allowed = m
    return LDI(torch.stack(colors), torch.stack(depths), torch.stack(valids), np.asarray(K, np.float64), float(edge_disparity))
