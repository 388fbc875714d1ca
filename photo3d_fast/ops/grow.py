"""LDI back-layer growth: the torch reference of the op ``grow`` (Triton twin:
``kernels/grow.py``; selected by ``ops.backends``). Vectorised, CPU and GPU.

Construction of one back layer from the surface S seen so far (see ``scene/ldi.py`` for the
whole LDI), in disparities d = 1/z of S. Distances are Euclidean, between pixel centers.

1. Seeds: a 4-neighbour pair (p, q) with d_p - d_q > edge_disparity is a depth edge; p is
   on the foreground side, q is a background *seed*.
2. Seed surfaces: the depth a seed hands on is the mean disparity of the seeds in its
   (2 SURFACE_RADIUS + 1)^2 window whose disparity lies within edge_disparity of its own
   (its surface), so depth noise along an edge does not streak the band, while two
   surfaces never blend. Which pixels a seed lies behind is decided by its own disparity.
3. Nearest seed behind: every pixel p holds the nearest seed s that lies *behind* p by
   more than the edge threshold, d_s < d_p - edge_disparity (among equally near ones, the
   nearest surface, largest d_s). Seeds not behind p (its own surface's, those of surfaces
   in front of it) do not exist for p, so a pixel can be a seed of one edge and lie in
   the band of another. Found by jump flooding (Rong & Tan 2006) in ``jump_steps(band)``
   passes, about log2(band) whatever the band: in a pass of step k each pixel compares
   what it holds with what its 8 neighbours at distance k offer (a seed offers itself,
   any other pixel the seed it holds). On piecewise-smooth depth this is the exact nearest
   seed behind; where depth noise itself makes edges (a rough wall whose pixels are seeds
   of each other) a few % of those pixels get a seed a little farther, or none, as JFA
   does wherever the candidates a pixel may take differ from its neighbours'.
4. Reach: p keeps its seed s only if s lies within ``band``, p is ``allowed`` (layer k
   exists only inside layer k-1), and the layer reaches p from s along the straight line
   between them: p's neighbour one step toward s (``toward``) is s itself, or is in the
   layer holding a seed that is also behind p, and so on down to s. This is the growth
   rule "a pixel joins when a neighbour of the layer lies behind it", along the line to
   the seed, so the layer grows from an edge only through pixels in front of what it
   carries: never into the background, nor across a surface that continues in front of
   the seed (a floor sloping toward the camera in front of a box's foot, a wall meeting
   the floor: the pixels next to the seed on that surface are not in front of it, and no
   line through them reaches farther). Computed by pointer jumping over those lines, a
   little over log2(band) passes.
5. The layer: the pixels that keep a seed; depth 1 / that seed's surface disparity. One
   seed gives the depth, so two waves from different depths (the box behind a pole, the
   wall behind the box) never blend into a depth that exists nowhere; the farther one is
   the next layer's job.
6. Colors: drawn from the farther of the surfaces bordering the band, along rows and
   columns (``fill_from_background``), so foreground never smears into the back layer.

Cost: the seeds, their surfaces (a 5x5 stencil at the seeds), ceil(log2(band + 1)) + 1
jump passes (10 for a band of 300) and about as many reach passes over the image (the
ring growth this replaced made one pass per pixel of band), and the fill.
"""

from __future__ import annotations

import math

import torch

from .fill import fill_from_background

#: Seeds within this many pixels (Chebyshev) of a seed and on its surface share their disparity (step 2).
SURFACE_RADIUS = 2

#: The 8 neighbour directions a jump-flooding pass looks in, in the order every
#: implementation compares them (ties keep the first).
DIRECTIONS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


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


def jump_steps(band: int) -> list[int]:
    """Step lengths (pixels) of the jump-flooding passes that reach ``band`` pixels: the
    powers of two from the smallest k with 2k - 1 >= band down to 1 (their sums cover every
    offset up to band per axis), then one more pass of 1 (JFA+1, which mends most of JFA's
    misses). [] for band <= 0."""
    if band <= 0:
        return []
    k = 1
    while 2 * k - 1 < band:
        k *= 2
    steps = []
    while k >= 1:
        steps.append(k)
        k //= 2
    return steps + [1]


def seed_surfaces(disp: torch.Tensor, seeds: torch.Tensor, edge_disparity: float) -> torch.Tensor:
    """(H, W) float32: at each seed, the mean disparity of the seeds in its (2 SURFACE_RADIUS
    + 1)^2 window whose disparity is within ``edge_disparity`` of its own (itself included);
    inf elsewhere. disp: (H, W) float32 disparity (1 / z-depth); seeds: (H, W) bool.
    Computed at the seeds only; the window is summed in row-major order (dy, then dx, from
    -R to R), as the Triton twin sums it."""
    h, w = disp.shape
    at = seeds.flatten().nonzero().squeeze(1)
    sy, sx = at // w, at % w
    seed_disp = torch.where(seeds, disp, torch.inf).flatten()
    own = seed_disp[at]
    total = torch.zeros_like(own)
    count = torch.zeros_like(own)
    r = SURFACE_RADIUS
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            ny, nx = sy + dy, sx + dx
            inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
            other = torch.where(inside, seed_disp[ny.clamp(0, h - 1) * w + nx.clamp(0, w - 1)], torch.inf)
            take = (other - own).abs() <= edge_disparity
            total += torch.where(take, other, 0.0)
            count += take.to(own.dtype)
    out = torch.full_like(seed_disp, torch.inf)
    out[at] = total / count  # count >= 1: the seed itself
    return out.view(h, w)


#: Pixels per slice of rows that a CPU jump pass works on at a time: its temporaries stay
#: in cache (the pass is memory-bound otherwise). GPUs take the whole image at once.
CPU_SLICE = 65536


def nearest_seed_behind(disp: torch.Tensor, seeds: torch.Tensor, band: int, edge_disparity: float
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Jump flooding (step 3 of the module doc): per pixel, the nearest seed whose disparity
    is below the pixel's own by more than ``edge_disparity``, searched within ``band``.

    disp: (H, W) float32 disparity; seeds: (H, W) bool; band: pixels, sets the passes
    (``jump_steps``). Returns (y, x, d, d2), each (H, W): int32 row and column of that
    seed, its float32 disparity, int32 squared distance; where none was found y = x = 0,
    d = inf, d2 = 2^31 - 1. The caller keeps d2 <= band^2 (a seed found farther than band
    can be found only where no nearer seed is: the same cut as searching within band).

    A pass of step k: every pixel p reads, at p + k (dy, dx) for the 8 DIRECTIONS in order,
    what that neighbour offers (itself if it is a seed, else the seed it held after the
    previous pass), and takes a candidate behind p (disparity < p's - edge_disparity) that
    is nearer than what p holds, or as near and on a nearer surface (larger disparity).
    """
    h, w = disp.shape
    band = min(int(band), h + w)  # no two pixels lie farther apart
    dev = disp.device
    limit = disp - edge_disparity  # a seed with less disparity is behind the pixel
    ys = torch.arange(h, device=dev, dtype=torch.int32)[:, None]
    xs = torch.arange(w, device=dev, dtype=torch.int32)[None, :]
    seed_disp = torch.where(seeds, disp, torch.inf)
    # what each pixel holds: the seed's row, column, disparity (inf: none) and d2
    by = torch.zeros((h, w), dtype=torch.int32, device=dev)
    bx = torch.zeros_like(by)
    bd = torch.full_like(disp, torch.inf)
    bd2 = torch.full_like(by, 2**31 - 1)
    rows = h if dev.type != "cpu" else max(1, CPU_SLICE // max(w, 1))
    for k in jump_steps(band):
        # what each pixel offers this pass, padded by k (double-buffered: a pass reads the
        # previous pass's holdings only)
        def offered(seed_value, held, fill):
            out = torch.full((h + 2 * k, w + 2 * k), fill, dtype=held.dtype, device=dev)
            out[k : k + h, k : k + w] = torch.where(seeds, seed_value, held)
            return out

        oy, ox, od = offered(ys, by, 0), offered(xs, bx, 0), offered(seed_disp, bd, torch.inf)
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            y = ys[r0:r1]
            hy, hx, hd, hd2, lim = by[r0:r1], bx[r0:r1], bd[r0:r1], bd2[r0:r1], limit[r0:r1]
            for dy, dx in DIRECTIONS:
                at = (slice(k + r0 + dy * k, k + r1 + dy * k), slice(k + dx * k, k + dx * k + w))
                cy, cx, cd = oy[at], ox[at], od[at]
                ey, ex = cy - y, cx - xs
                d2 = ey * ey + ex * ex
                better = (cd < lim) & ((d2 < hd2) | ((d2 == hd2) & (cd > hd)))
                torch.where(better, cy, hy, out=hy)
                torch.where(better, cx, hx, out=hx)
                torch.where(better, cd, hd, out=hd)
                torch.where(better, d2, hd2, out=hd2)
    return by, bx, bd, bd2


def reach_rounds(h: int, w: int) -> int:
    """The most pointer-jumping passes ``reach`` makes on an (h, w) image: pass j follows
    2^j steps of the lines, and no line is longer than the image has pixels. It stops
    earlier, when every line has been followed to its end (about log2 of the longest line:
    a little over log2 band)."""
    return max(1, math.ceil(math.log2(max(h * w, 2))))


def toward(y: torch.Tensor, x: torch.Tensor, sy: torch.Tensor, sx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The 8-neighbour of pixel (y, x) one step along the line to (sy, sx) (int32 tensors):
    a component steps (by its sign) unless it is under 5/12 (about tan 22.5 degrees) of the
    other, so the step is the one of the 8 directions nearest the line's, and the larger
    component always steps: every step brings the Chebyshev distance to the seed down by 1.
    Returns (y, x) of that neighbour (the pixel itself where it is the seed)."""
    vy, vx = sy - y, sx - x
    ay, ax = vy.abs(), vx.abs()
    return (y + torch.where(12 * ay > 5 * ax, vy.sign(), 0), x + torch.where(12 * ax > 5 * ay, vx.sign(), 0))


def reach(by: torch.Tensor, bx: torch.Tensor, bd: torch.Tensor, limit: torch.Tensor, held: torch.Tensor
          ) -> torch.Tensor:
    """Step 4 of the module doc: (H, W) bool, the pixels the layer reaches from their seed.

    by, bx, bd: the held seeds (``nearest_seed_behind``); limit: (H, W) float32 disparity -
    edge_disparity (a seed with less disparity is behind the pixel); held: (H, W) bool,
    the pixels that hold a seed within band and are allowed. A pixel is reached when it is
    held and its neighbour toward its seed (``toward``) is the seed, or is held with a seed
    behind the pixel (bd there < limit here) and is reached itself (from its own seed:
    where the seeds change along the way, the line follows each pixel's). An AND along these
    lines, by pointer jumping: passes of (ok, up) <- (ok & ok[up], up[up]) until every ``up``
    is a line's end (a pixel next to its seed, or one not held), at most
    ``reach_rounds(H, W)`` passes.
    """
    h, w = held.shape
    dev = held.device
    ys = torch.arange(h, device=dev, dtype=torch.int32)[:, None].expand(h, w)
    xs = torch.arange(w, device=dev, dtype=torch.int32)[None, :].expand(h, w)
    ty, tx = toward(ys, xs, by, bx)
    root = ((ty == by) & (tx == bx)).flatten()
    up = (ty.clamp(0, h - 1) * w + tx.clamp(0, w - 1)).flatten()  # int32 flat index
    flat_held = held.flatten()
    ok = flat_held & (root | (flat_held.index_select(0, up) & (bd.flatten().index_select(0, up) < limit.flatten())))
    up = torch.where(root | ~flat_held, torch.arange(h * w, device=dev, dtype=torch.int32), up)
    for _ in range(reach_rounds(h, w)):
        ok = ok & ok.index_select(0, up)
        further = up.index_select(0, up)
        if torch.equal(further, up):
            break
        up = further
    return ok.view(h, w)


def grow_back_layer(
    color: torch.Tensor,
    depth: torch.Tensor,
    band: int,
    edge_disparity: float,
    allowed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One back layer behind the foreground edges of a surface (the module doc's steps).

    color: (H, W, 3) float; depth: (H, W) float z-depth > 0; band: the farthest a layer
    pixel may lie from its seed, in pixels (Euclidean, between pixel centers);
    edge_disparity: the disparity jump of an edge; allowed: (H, W) bool where the layer may
    exist (None: anywhere). Returns (color (H, W, 3), depth (H, W), mask (H, W) bool) of
    the new layer, color and depth 0 outside the mask.
    """
    h, w = depth.shape
    band = min(int(band), h + w)  # no two pixels lie farther apart (keeps band^2 in int32)
    depth = depth.float()
    disp = 1.0 / depth
    _, seeds = discontinuities(depth, edge_disparity)
    surface = seed_surfaces(disp, seeds, edge_disparity)
    by, bx, bd, bd2 = nearest_seed_behind(disp, seeds, band, edge_disparity)
    held = bd2 <= band * band
    if allowed is not None:
        held &= allowed
    mask = reach(by, bx, bd, disp - edge_disparity, held)
    seed_of = (by * w + bx).long()
    layer_depth = torch.where(mask, 1.0 / surface.flatten()[seed_of.flatten()].view_as(depth), 0.0)
    rgb = fill_from_background(color.permute(2, 0, 1).float(), ~mask, depth).permute(1, 2, 0)
    return rgb * mask[..., None], layer_depth, mask
