"""LDI back-layer growth: the torch reference of the op ``grow`` (Triton twin:
``kernels/grow.py``; selected by ``ops.backends``). Vectorised, CPU and GPU.

Construction of one back layer from the surface S seen so far (see ``scene/ldi.py`` for the
whole LDI):

1. Discontinuities: a 4-neighbour pair (p, q) with 1/z_p - 1/z_q > edge_disparity is an
   edge; p is on the foreground side, q is a background *seed*.
2. Growth: the band is grown from the seeds into the foreground, one 8-neighbour ring per
   step, for ``band`` steps. A pixel joins when a known neighbour lies behind its own
   surface by more than the edge threshold, i.e. only into pixels that really are in
   front of that background, never into the background itself. The newcomer's depth
   comes from the nearest such neighbours; the band's colors are drawn from the farther
   of the surfaces bordering it: the inpainting draws from the background side, so
   foreground never smears into the back layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .fill import fill_from_background


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
