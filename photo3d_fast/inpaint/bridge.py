"""A back layer bridged across its band where one surface shows on both sides of it.

The op ``grow`` gives each band pixel the depth of its nearest background seed. Behind a
box standing on a floor in front of a wall, the seeds nearest the middle of the box's top
half are the wall's, above the box, although the floor runs on behind the box up to the
horizon: a V of wall reaching down into the floor (bench/RESULTS.md, issue 19). The floor
shows to the box's left and right in the same rows, and a surface seen on both sides of an
occluder in one row (or column) runs on behind it. A plane's disparity is affine in image
coordinates, so along that row it is the straight line between the two sides. Used for
exact depth maps only (``scene.ldi``): on cue depth it bridged 1-5% of a photo's band and
lowered the artifact ratios by at most 0.005, for a second far-side fill of the whole
image (+1 s at 1080p; bench/RESULTS.md).
"""

from __future__ import annotations

import torch

from ..ops.fill import nearest_covered

#: Pixels skipped outward past an edge before a side's disparity is read: the silhouette's
#: own pixel on the far side is the one depth conditioning snaps (``depth.condition``).
SKIP_PX = 1
#: Pixels over which a side's slope is measured, outward from there.
SLOPE_PX = 2


def _outward(disp: torch.Tensor, flat: torch.Tensor, step: int, edge: float
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Read a side's surface outward from ``flat`` (flat indices into disp (H, W); ``step``:
    the flat offset of one pixel toward the band): (ok, anchor, slope), the first SKIP_PX +
    SLOPE_PX pixels outward stay in the image and on one surface (no step over ``edge``),
    the flat index SKIP_PX pixels out, and the disparity change per pixel toward the band
    measured over the SLOPE_PX pixels beyond it."""
    n, w = disp.numel(), disp.shape[1]
    d = disp.reshape(-1)
    prev = flat
    ok = torch.ones_like(flat, dtype=torch.bool)
    anchor = flat
    for i in range(SKIP_PX + SLOPE_PX):
        nxt = prev - step
        inside = (nxt >= 0) & (nxt < n) & ((nxt // w == prev // w) if abs(step) == 1 else True)
        nxt = nxt.clamp(0, n - 1)
        ok &= inside & ((d[nxt] - d[prev]).abs() <= edge)
        prev = nxt
        if i + 1 == SKIP_PX:
            anchor = nxt
    return ok, anchor, (d[anchor] - d[prev]) / SLOPE_PX


def edge_neighbours(disp: torch.Tensor, edge: float, at: torch.Tensor | None = None
                    ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per pixel, the pixel just past the nearest depth edge to its left, right, top and
    bottom: the first pixel of another surface along its row or column (an edge: two
    4-neighbours whose disparities differ by more than ``edge``). disp: (H, W) float
    disparity; at: (N,) int64 flat indices of the pixels wanted (None: all). Returns per
    side (ok, flat, dist), each (H, W) (or (N,) at ``at``): whether there is one, its flat
    index into H * W, its distance in pixels."""
    h, w = disp.shape
    at = torch.arange(h * w, device=disp.device) if at is None else at
    y, x = at // w, at % w
    sides = []
    for dim in (1, 0):
        n = disp.shape[dim]
        jump = (disp.narrow(dim, 1, n - 1) - disp.narrow(dim, 0, n - 1)).abs() > edge
        # before p: the nearest pixel i <= p with an edge between i - 1 and i; past it, i - 1
        ends = torch.zeros_like(disp, dtype=torch.bool)
        ends.narrow(dim, 1, n - 1).copy_(jump)
        before = nearest_covered(ends, dim, False).reshape(-1)[at] - 1
        # after p: the nearest pixel i >= p with an edge between i and i + 1; past it, i + 1
        ends = torch.zeros_like(disp, dtype=torch.bool)
        ends.narrow(dim, 0, n - 1).copy_(jump)
        after = nearest_covered(ends, dim, True).reshape(-1)[at]
        own = x if dim == 1 else y
        for j, ok in ((before, before >= 0), (after + 1, after >= 0)):
            j = j.clamp(0, n - 1)
            flat = y * w + j if dim == 1 else j * w + x
            sides.append((ok, flat, (j - own).abs().clamp_min(1)))
    if at.numel() == h * w:
        return [tuple(t.view(h, w) for t in side) for side in sides]
    return sides


def bridge_layer(color: torch.Tensor, disp: torch.Tensor, hole: torch.Tensor, layer_disp: torch.Tensor, edge: float
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A back layer's disparity and colour, bridged across its band along rows and columns.

    color: (H, W, 3) float and disp: (H, W) float32 disparity of the surface the layer lies
    behind; hole: (H, W) bool, the layer's band; layer_disp: (H, W) float32, the layer's
    disparity in the band (the op ``grow``'s); edge: the LDI's edge threshold (disparity).
    A band pixel p is bridged along its row when the surfaces just past the nearest depth
    edges to its left and right (``edge_neighbours``, read SKIP_PX further out) both lie
    behind p by more than ``edge`` and on one plane: each side's slope, measured outward
    (SLOPE_PX), carried across the gap predicts the other side within ``edge``. Its
    disparity is then the line between the two sides' readings, its colour the line between
    the colours of the two pixels just past the edges; likewise along its column.
    Bridged both ways, p takes the mean when the two agree within ``edge`` and is left
    unbridged when they do not. Returns the disparity (H, W) (``layer_disp`` where not
    bridged), the colour (H, W, 3) (0 where not bridged) and (H, W) bool, the bridged pixels.
    """
    h, w = hole.shape
    at = hole.reshape(-1).nonzero().squeeze(1)  # the band's pixels: all the work is theirs
    d, c = disp.reshape(-1), color.reshape(-1, 3).float()
    limit = d[at] - edge
    sides = [(ok, flat, dist.to(disp.dtype)) for ok, flat, dist in edge_neighbours(disp, edge, at)]
    spans = []
    for (ok_a, flat_a, dist_a), (ok_b, flat_b, dist_b), step in ((sides[0], sides[1], 1), (sides[2], sides[3], w)):
        # from a the flat index grows toward p, from b it falls
        in_a, anchor_a, ga = _outward(disp, flat_a, step, edge)
        in_b, anchor_b, gb = _outward(disp, flat_b, -step, edge)
        da, db = d[anchor_a], d[anchor_b]
        gap = dist_a + dist_b + 2 * SKIP_PX  # between the anchors
        ok = ok_a & ok_b & in_a & in_b & (da < limit) & (db < limit)
        ok &= ((da + ga * gap - db).abs() <= edge) & ((db + gb * gap - da).abs() <= edge)
        t = (dist_a + SKIP_PX) / gap
        # The colour is the sides' own pixels', as surface_fill takes it: on the ray-cast
        # thin scene, reading it SKIP_PX further out cost 0.6 dB behind the poles.
        ca, cb = c[flat_a], c[flat_b]
        tc = (dist_a / (dist_a + dist_b))[:, None]
        spans.append((ok, da + (db - da) * t, ca + (cb - ca) * tc))
    (ok_r, row, row_c), (ok_c, col, col_c) = spans
    both = ok_r & ok_c
    took = (ok_r | ok_c) & ~(both & ((row - col).abs() > edge))
    value = torch.where(both, 0.5 * (row + col), torch.where(ok_r, row, col))
    rgb = torch.where(both[:, None], 0.5 * (row_c + col_c), torch.where(ok_r[:, None], row_c, col_c))
    out_disp = layer_disp.clone().reshape(-1)
    out_disp[at] = torch.where(took, value, out_disp[at])
    out_rgb = torch.zeros(h * w, 3, dtype=c.dtype, device=c.device)
    out_rgb[at] = rgb * took[:, None]
    bridged = torch.zeros(h * w, dtype=torch.bool, device=hole.device)
    bridged[at] = took
    return out_disp.view(h, w), out_rgb.view(h, w, 3), bridged.view(h, w)
