"""Torch reference of the per-frame renderer: readable, vectorised, CPU and GPU.

One frame, for camera-to-world pose T = [R | t] and output intrinsics K':

1. Back-project and transform: every LDI texel's world point X (precomputed once per
   LDI) goes to the camera, Xc = R^T (X - t), and is projected, u = K' Xc / z.
2. Footprint: a texel covers the box halfway to its projected 4-neighbours on the same
   surface (each side separately, times ``FOOTPRINT_MARGIN``, at least half a pixel and
   at most ``MAX_HALF_EXTENT``). Neighbours come from the layer's surface grid, so slanted
   floors and zoom stretch footprints exactly as much as they need and the image has no
   cracks when the camera moves forward; a side across a depth edge reaches only half the
   texel's own size, so silhouettes neither stretch nor fatten. Between linked neighbours
   that differ by a step (more than the LDI's ``step_disparity``, set for exact depth maps
   only), the nearer texel's side is such a silhouette side and the farther texel's reaches
   across the gap to it: the gap a small step opens shows the background stretched, not
   the foreground (a pole standing on a floor, a subject close to a wall).
3. z-buffer: each (pixel, texel) pair writes key = (float bits of z) << 32 | texel id and
   the pixel keeps the minimum. For positive floats the bit pattern orders like the
   value, so the integer minimum is the nearest texel, ties broken by lower id: a
   deterministic result whatever order the pairs are processed in.
4. Resolve: the pixel's color is the tent-weighted mean of the pairs whose disparity lies
   within ``RESOLVE_SHARE`` of the LDI's edge threshold of the winner's, so adjacent texels of one surface blend
   (no shimmer between frames) while surfaces behind never bleed through.
5. Silhouettes: a pixel on the near side of a depth edge of the frame is covered by its
   surface only as far as the surface's tent weights reach (``coverage``); the rest of it
   shows what lies behind, taken from its neighbours across the edge. The z-buffer stays
   exact; only the colour of edge pixels blends, so silhouettes are anti-aliased like the
   photo's own edges instead of stair-stepped, and do not shimmer as they move.
6. Holes that no layer covers (the image border after a lateral move, disocclusions
   wider than the back layer) are filled from the farther of the surfaces bordering
   them (``fill.fill_from_background``), so the foreground never smears into them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F

from ..scene.ldi import LDI
from .fill import fill_frames, fill_from_background

#: Footprints are enlarged by this factor so that rotated or sheared texel grids (whose
#: projected boxes are not axis-aligned) still overlap and leave no cracks.
FOOTPRINT_MARGIN = 1.2
#: Largest footprint half-extent in pixels. Beyond it the surface is so stretched (or so
#: close) that a hole, filled smoothly, is better than a giant texel.
MAX_HALF_EXTENT = 4.0
#: Texels whose disparity is within this share of the LDI's edge threshold below the
#: pixel's nearest texel are blended; anything farther is another surface.
RESOLVE_SHARE = 0.5
#: Summed tent weight at which a silhouette pixel counts as fully covered by its surface.
#: Inside a surface the overlapping tents sum to 0.8-1.1, and a silhouette side reaches
#: only half a texel, so a pixel whose center the surface covers sums to 0.5 or more; only
#: pixels the surface covers less than that blend with what lies behind.
COVERAGE_FULL = 0.5
#: Points nearer than this (scene units) to the camera plane are dropped.
Z_NEAR = 1e-4


@dataclass
class SurfaceGrid:
    """What the renderer precomputes once per LDI.

    points: (L, H, W, 3) float32 world points of each layer's surface (LDI.surfaces);
    link_x: (L, H, W-1) bool, texel (y, x) and (y, x+1) on one surface;
    link_y: (L, H-1, W) bool, texel (y, x) and (y+1, x) on one surface;
    step_x, step_y: int8, shaped as the links: +1 where the link is a step (a disparity
    difference above the LDI's ``step_disparity``) whose first texel ((y, x)) is the nearer,
    -1 where its second is, 0 elsewhere;
    texels: (N,) int64 flat indices into L*H*W of the LDI's valid texels (the texel ids);
    colors: (N, 3) float32 their colors;
    edge_disparity: the LDI's disparity jump between surfaces; focal: the LDI's fx.
    """

    points: torch.Tensor
    link_x: torch.Tensor
    link_y: torch.Tensor
    step_x: torch.Tensor
    step_y: torch.Tensor
    texels: torch.Tensor
    colors: torch.Tensor
    edge_disparity: float
    focal: float

    @cached_property
    def links_u8(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(link_x, link_y) as contiguous uint8 codes, as the C++, Triton and CUDA kernels
        read them (converted once per LDI, not once per frame): 0 no link, 1 a link, 2 a step
        whose first texel is the nearer, 3 a step whose second texel is."""

        def code(link: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
            return (link.to(torch.uint8) + (step == 1).to(torch.uint8) + 2 * (step == -1).to(torch.uint8)).contiguous()

        return code(self.link_x, self.step_x), code(self.link_y, self.step_y)


def pixel_rays(K: np.ndarray, size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """(H, W, 3) float32 rays K^-1 [x + 0.5, y + 0.5, 1] (z = 1) of a (W, H) image."""
    w, h = size
    Kinv = torch.as_tensor(np.linalg.inv(K), dtype=torch.float32, device=device)
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=torch.float32) + 0.5,
        torch.arange(w, device=device, dtype=torch.float32) + 0.5,
        indexing="ij",
    )
    pix = torch.stack([xs, ys, torch.ones_like(xs)], -1)
    return pix @ Kinv.T


def prepare(ldi: LDI) -> SurfaceGrid:
    """Precompute world points, neighbour links and the texel list of an LDI."""
    depth, _ = ldi.surfaces()
    points = depth[..., None] * pixel_rays(ldi.K, ldi.size, ldi.device)
    disp = 1.0 / depth
    links = []
    for d in (disp[:, :, :-1] - disp[:, :, 1:], disp[:, :-1, :] - disp[:, 1:, :]):
        link = d.abs() <= ldi.edge_disparity
        step = ldi.step_disparity
        links += [link, ((d > step).to(torch.int8) - (d < -step).to(torch.int8)) * link]
    (link_x, step_x), (link_y, step_y) = links[:2], links[2:]
    texels = torch.nonzero(ldi.valid.flatten()).squeeze(1)
    colors = ldi.color.reshape(-1, 3)[texels]
    return SurfaceGrid(points, link_x, link_y, step_x, step_y, texels, colors, ldi.edge_disparity,
                       float(ldi.K[0, 0]))


def cameras(c2ws: torch.Tensor, Ks: torch.Tensor) -> torch.Tensor:
    """(F, 16) float32 camera blocks, as the Triton and CUDA kernels read them: R row-major
    (9), t (3), fx, fy, cx, cy. c2ws: (F, 4, 4) camera-to-world; Ks: (F, 3, 3) intrinsics."""
    return torch.cat([c2ws[:, :3, :3].reshape(-1, 9), c2ws[:, :3, 3], Ks[:, 0, 0:1], Ks[:, 1, 1:2],
                      Ks[:, 0, 2:3], Ks[:, 1, 2:3]], 1).float().contiguous()


def project(grid: SurfaceGrid, c2w: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Project every surface point: returns u, v (pixel coords), z (camera depth), each (L, H, W)."""
    R, t = c2w[:3, :3], c2w[:3, 3]
    cam = (grid.points - t) @ R  # R^T (X - t), written for row vectors
    z = cam[..., 2]
    inv_z = 1.0 / z.clamp_min(Z_NEAR)
    u = K[0, 0] * cam[..., 0] * inv_z + K[0, 2]
    v = K[1, 1] * cam[..., 1] * inv_z + K[1, 2]
    return u, v, z


def footprints(grid: SurfaceGrid, u: torch.Tensor, v: torch.Tensor, z: torch.Tensor, focal: float) -> tuple[torch.Tensor, ...]:
    """Footprint extents in pixels from a texel's projected center to each side.

    Returns (left, right, up, down), each (L, H, W). A side with a same-surface neighbour
    reaches halfway to it, times FOOTPRINT_MARGIN, with the neighbours along the other
    axis adding their shear; a side without one (a silhouette) reaches exactly half the
    texel's own projected size, taken from the opposite neighbour or, for an isolated
    texel, from the local magnification, so silhouettes are not fattened. Across a step
    (``SurfaceGrid.step_x``/``step_y``) the nearer texel's side is a silhouette side and the
    farther texel's reaches FOOTPRINT_MARGIN times the spacing less half a pixel.
    focal: the output's fx, for that magnification.
    """
    zero = u.new_zeros(())

    def pair(d: torch.Tensor, link: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        # spacing to the previous / next neighbour along dim (0 if not linked), and the links
        d = torch.where(link, d.abs(), zero)
        return (F.pad(d, _pad(dim, after=False)), F.pad(d, _pad(dim, after=True)),
                F.pad(link, _pad(dim, after=False)), F.pad(link, _pad(dim, after=True)))

    # magnification of an isolated texel: output focal over LDI focal, times depth ratio
    own = 0.5 * focal / grid.focal * grid.points[..., 2] / z.clamp_min(Z_NEAR)
    out = []
    for coord, along, across in ((u, 2, 1), (v, 1, 2)):
        link_along = grid.link_x if along == 2 else grid.link_y
        link_across = grid.link_y if along == 2 else grid.link_x
        before, after, has_before, has_after = pair(coord.diff(dim=along), link_along, along)
        sb, sa, _, _ = pair(coord.diff(dim=across), link_across, across)
        shear = torch.maximum(sb, sa)
        # A texel is the second texel of the link before it and the first of the link after.
        step = grid.step_x if along == 2 else grid.step_y
        step_before, step_after = F.pad(step, _pad(along, after=False)), F.pad(step, _pad(along, after=True))
        for near, far, has_near, has_far, nearer, farther in (
                (before, after, has_before, has_after, step_before == -1, step_before == 1),
                (after, before, has_after, has_before, step_after == 1, step_after == -1)):
            # a step's farther texel reaches across the gap to the nearer texel's box
            linked = torch.where(farther, FOOTPRINT_MARGIN * near - 0.5,
                                 0.5 * FOOTPRINT_MARGIN * torch.maximum(near, shear))
            silhouette = torch.where(has_far, 0.5 * far, own).clamp(max=MAX_HALF_EXTENT)
            out.append(torch.where(has_near & ~nearer, linked.clamp(0.5, MAX_HALF_EXTENT), silhouette))
    return tuple(out)


def _pad(dim: int, after: bool) -> list[int]:
    """F.pad spec adding one zero row (dim 1) or column (dim 2) after or before."""
    one = [0, 1] if after else [1, 0]
    return one + [0, 0] if dim == 2 else [0, 0] + one


def splat_pairs(grid: SurfaceGrid, c2w: torch.Tensor, K: torch.Tensor, size: tuple[int, int]):
    """Every (pixel, texel) pair of one frame.

    Returns pix (P,) int64 flat pixel index y*W + x; tex (P,) int64 index into
    grid.texels; z (P,) float32 camera depth; weight (P,) float32 tent weight in (0, 1].
    """
    w, h = size
    u, v, z = project(grid, c2w, K)
    sides = footprints(grid, u, v, z, float(K[0, 0]))
    # One gather of every per-texel attribute: separate fancy-indexing ops cost a third
    # of the frame on CPU.
    u, v, z, left, right, up, down = torch.stack([u, v, z, *sides]).reshape(7, -1).index_select(1, grid.texels)
    # Pixel (i, j) is covered when its center (i + 0.5, j + 0.5) lies in the footprint box.
    x0 = torch.ceil(u - left - 0.5).clamp_min(0)
    x1 = torch.floor(u + right - 0.5).clamp_max(w - 1)
    y0 = torch.ceil(v - up - 0.5).clamp_min(0)
    y1 = torch.floor(v + down - 0.5).clamp_max(h - 1)
    nx = (x1 - x0 + 1).clamp_min(0)
    ny = (y1 - y0 + 1).clamp_min(0)
    n = torch.where(z > Z_NEAR, nx * ny, 0.0).long()
    tex = torch.repeat_interleave(torch.arange(len(n), device=n.device), n)
    starts = torch.cumsum(n, 0) - n
    # per-pair copies of the texel attributes (pixel coordinates and counts are small
    # integers, exact in float32; the pair offsets are not, so they stay int64)
    pu, pv, pl, pr, pt, pb, px0, py0, pnx, pz = torch.stack(
        [u, v, left, right, up, down, x0, y0, nx, z]
    ).index_select(1, tex)
    local = torch.arange(len(tex), device=n.device) - starts.index_select(0, tex)
    pnx_i = pnx.long()
    px = px0 + (local % pnx_i).float()
    py = py0 + (local // pnx_i).float()
    dx = px + 0.5 - pu
    dy = py + 0.5 - pv
    # tent over the footprint, measured on the side of the center the pixel lies on
    wx = 1.0 - dx.abs() / (torch.where(dx < 0, pl, pr) + 0.5)
    wy = 1.0 - dy.abs() / (torch.where(dy < 0, pt, pb) + 0.5)
    return (py * w + px).long(), tex, pz, wx * wy


def zbuffer(pix: torch.Tensor, tex_id: torch.Tensor, z: torch.Tensor, n_pixels: int) -> torch.Tensor:
    """(n_pixels,) int64 of min((z bits << 32) | tex_id) per pixel; int64 max where empty."""
    key = (z.contiguous().view(torch.int32).to(torch.int64) << 32) | tex_id
    buf = torch.full((n_pixels,), torch.iinfo(torch.int64).max, dtype=torch.int64, device=z.device)
    return buf.scatter_reduce_(0, pix, key, reduce="amin")


def antialias_silhouettes(color: torch.Tensor, weight: torch.Tensor, disp: torch.Tensor, edge: float) -> torch.Tensor:
    """Blend silhouette pixels of F frames over what lies behind them (module doc, step 5).

    color: (F, 3, H, W) float; weight: (F, H, W) float, the summed tent weights of each
    pixel's surface (0 where nothing landed); disp: (F, H, W) float disparity of each
    pixel's winner (0 where nothing landed); edge: the LDI's edge_disparity. A pixel with a
    4-neighbour behind it by more than ``edge`` (and covered) is a silhouette pixel; its
    coverage is min(weight / COVERAGE_FULL, 1), and the uncovered part takes the mean colour
    of those neighbours. Other pixels are returned unchanged. Returns (F, 3, H, W).
    """
    h, w = color.shape[-2:]
    # Zero padding: a missing neighbour has weight 0, so it is never "behind".
    pad_d = F.pad(disp, (1, 1, 1, 1))
    pad_w = F.pad(weight, (1, 1, 1, 1))
    pad_c = F.pad(color, (1, 1, 1, 1))
    front = torch.where(weight > 0, disp - edge, -torch.inf)  # a neighbour behind has less disparity
    total = torch.zeros_like(color)
    count = torch.zeros_like(weight)
    for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        ys, xs = slice(1 + dy, 1 + dy + h), slice(1 + dx, 1 + dx + w)
        behind = ((pad_w[:, ys, xs] > 0) & (pad_d[:, ys, xs] < front)).to(color.dtype)
        total += pad_c[:, :, ys, xs] * behind[:, None]
        count += behind
    alpha = (weight / COVERAGE_FULL).clamp(0.0, 1.0)[:, None]
    back = total / count.clamp_min(1.0)[:, None]
    return torch.where((count > 0)[:, None], color * alpha + back * (1.0 - alpha), color)


def finish(acc: torch.Tensor, buf: torch.Tensor, size: tuple[int, int], edge: float,
           fill=fill_from_background) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalise accumulated color, anti-alias silhouettes and fill holes; shared by every
    implementation.

    acc: (H*W, 4) float32 sums of weight * (r, g, b, 1); buf: (H*W,) int64 z-buffer keys;
    edge: the LDI's edge_disparity; fill: the hole filler (``fill.fill_from_background``
    or its Triton twin). Returns (H, W, 3) float32 color in [0, 1] and (H, W) bool coverage.
    """
    color, covered = finish_frames(acc[None], buf[None], size, edge,
                                   fill=lambda v, c, d: fill(v[0], c[0], d[0])[None])
    return color[0], covered[0]


def finish_frames(acc: torch.Tensor, buf: torch.Tensor, size: tuple[int, int], edge: float,
                  fill=fill_frames, antialias=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``finish`` of F frames at once: acc (F, H*W, 4), buf (F, H*W) int64; fill takes
    (F, C, H, W) values and (F, H, W) coverage and depth (``fill.fill_frames`` or its
    Triton twin); antialias: ``antialias_silhouettes`` (None) or its Triton twin.
    Returns (F, H, W, 3) float32 in [0, 1] and (F, H, W) bool coverage.

    It never asks the device whether a frame has holes: the fill runs on every frame (it
    keeps covered pixels as they are), so a batch costs no host sync here.
    """
    w, h = size
    n = acc.shape[0]
    weight = acc[..., 3].reshape(n, h, w)
    covered = weight > 0
    color = (acc[..., :3] / acc[..., 3:].clamp_min(1e-12)).transpose(1, 2).reshape(n, 3, h, w)
    z_pix = (buf >> 32).to(torch.int32).view(torch.float32).reshape(n, h, w)
    disp = torch.where(covered, 1.0 / z_pix, 0.0)
    color = (antialias or antialias_silhouettes)(color, weight, disp, edge)
    color = fill(color, covered, z_pix)
    return color.permute(0, 2, 3, 1).clamp(0.0, 1.0), covered


def render_frame(grid: SurfaceGrid, c2w: torch.Tensor, K: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """One frame: (H, W, 3) float32 color in [0, 1] and (H, W) bool coverage (False = filled hole).

    c2w: (4, 4) float32 camera-to-world; K: (3, 3) float32 output intrinsics; size: (W, H).
    """
    w, h = size
    pix, tex, z, weight = splat_pairs(grid, c2w, K, size)
    buf = zbuffer(pix, grid.texels[tex], z, w * h)
    z_win = (buf[pix] >> 32).to(torch.int32).view(torch.float32)
    keep = 1.0 / z >= 1.0 / z_win - RESOLVE_SHARE * grid.edge_disparity
    pix, tex, weight = pix[keep], tex[keep], weight[keep]
    acc = torch.zeros(w * h, 4, device=z.device)
    acc.index_add_(0, pix, torch.cat([grid.colors[tex], torch.ones_like(weight)[:, None]], 1) * weight[:, None])
    return finish(acc, buf, size, grid.edge_disparity)


def render_frames(grid: SurfaceGrid, c2ws: torch.Tensor, Ks: torch.Tensor,
                  size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """F frames: (F, H, W, 3) float32 color and (F, H, W) bool coverage.

    c2ws: (F, 4, 4), Ks: (F, 3, 3) float32; size: (W, H). The definition the batched
    kernels must match: ``render_frame`` of each camera, one after another.
    """
    w, h = size
    if len(c2ws) == 0:
        return (torch.zeros(0, h, w, 3, device=grid.points.device),
                torch.zeros(0, h, w, dtype=torch.bool, device=grid.points.device))
    frames = [render_frame(grid, c2w, K, size) for c2w, K in zip(c2ws, Ks)]
    return torch.stack([c for c, _ in frames]), torch.stack([m for _, m in frames])
