"""The LDI as a textured triangle mesh, cut where the renderer cuts it: what ``photo3d
export`` writes (``export.py``).

Surfaces. The renderer (``ops/splat.py``) treats two 4-neighbour texels of layer k as one
surface when the disparities (1 / z-depth) of LDI.surfaces()'s surface k differ by at most
the LDI's ``edge_disparity``; their footprints then stretch to meet, and across any other
pair they do not. The mesh takes those links from the renderer (``ops.splat.prepare``) and
follows the same rule: a grid cell of 2x2 texels gives

- two triangles when all four of its sides are linked (split along the diagonal whose
  disparities differ least);
- one corner triangle when two adjacent sides are linked and the diagonal closing them is
  within the threshold too (a cell on a silhouette);
- nothing otherwise,

so no triangle side ever joins texels that differ by more than ``edge_disparity``.

Layers. Layer 0 is the photo's surface, every cell. A back layer k >= 1 is its own part:
the triangles of surface k with at least one valid layer-k texel, so the back layer is
stitched, by the same rule, to the surface it continues (the background beside the
foreground that hides it), as the renderer's footprints stretch across that seam, and
never repeats a triangle of the earlier layers.

Simplification under ``max_faces``: a quadtree of flat regions. A block of s x s cells
(s = 2, 4, ... up to a top size, aligned to the grid) whose texels are all linked (and, for
a back layer, all valid) and whose disparity is planar within ``PLANAR_SHARE *
edge_disparity`` of the bilinear interpolation of its corners (a plane is linear in
disparity) becomes one coarse cell, largest blocks first; every other cell, depth edges
included, stays at full resolution, so edges are exact. A block whose sides carry vertices
of smaller neighbouring cells is a fan from its centre texel through all of them, so there
are no T-junctions and no cracks. ``build_mesh`` takes the smallest top size (1, 2, 4, ...)
whose mesh fits, first with the planarity test, then without it (merging every fully
linked block: curved surfaces are flattened within a block); if even that does not fit,
the full-resolution cells along the edges alone exceed the budget and it is an error.

Frames. Vertices are texel (k, y, x) at pixel (x + 0.5, y + 0.5) back-projected with K at
surface k's z-depth: the photo camera's OpenCV frame (x right, y down, z forward), scene
units. Faces are counter-clockwise as seen from the photo's camera. The texture is an
atlas of surface colours: layer 0's full image on top, then each back layer's bounding box
of used texels, stacked downward; UVs address texel centres, origin at the atlas's
top-left, v down (glTF's convention).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import Photo3DError
from ..ops.splat import prepare
from .ldi import LDI

#: A block may merge into one coarse cell when its disparity departs from the bilinear
#: interpolation of its corners by at most this share of the edge threshold: about a tenth
#: of a pixel of parallax error at the motion the threshold was chosen for.
PLANAR_SHARE = 0.1
#: Top block sizes tried (cells), finest first.
STRIDES = (1, 2, 4, 8, 16, 32, 64)


@dataclass
class Mesh:
    """A triangle mesh of an LDI.

    vertices: (V, 3) float32, photo camera frame (OpenCV: x right, y down, z forward), scene
    units; faces: (F, 3) int64 vertex indices, counter-clockwise seen from the photo's
    camera; uvs: (V, 2) float32 atlas coordinates in [0, 1], origin top-left, v down;
    texels: (V, 3) int64 (layer, y, x) of each vertex; colors: (V, 3) uint8 sRGB of each
    vertex's texel; face_layer: (F,) int64 the layer (part) of each face; texture: (AH, AW,
    3) uint8 sRGB atlas; stride: the quadtree's top block size, in cells (1 = full resolution).
    """

    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    texels: np.ndarray
    colors: np.ndarray
    face_layer: np.ndarray
    texture: np.ndarray
    stride: int


def _cell_triangles(disp: np.ndarray, lx: np.ndarray, ly: np.ndarray, edge: float,
                    cells: np.ndarray) -> np.ndarray:
    """Triangles (T, 3) of flat texel indices (y * W + x) of the full-resolution cells
    ``cells`` ((H-1, W-1) bool, cell (y, x) has corners (y, x) .. (y+1, x+1))."""
    h, w = disp.shape
    ys, xs = np.nonzero(cells)
    a = ys * w + xs
    b, c, d = a + 1, a + w, a + w + 1
    flat = disp.ravel()
    ab, cd = lx[ys, xs], lx[ys + 1, xs]
    ac, bd = ly[ys, xs], ly[ys, xs + 1]
    diag_ad = np.abs(flat[a] - flat[d])
    diag_bc = np.abs(flat[b] - flat[c])
    full = ab & cd & ac & bd
    split_bc = diag_bc <= diag_ad
    out = []
    # full cells: two triangles on the smaller diagonal
    f = full & split_bc
    out += [np.stack([a[f], c[f], b[f]], 1), np.stack([d[f], b[f], c[f]], 1)]
    f = full & ~split_bc
    out += [np.stack([b[f], a[f], d[f]], 1), np.stack([c[f], d[f], a[f]], 1)]
    # silhouette cells: the one corner triangle whose sides and diagonal are all linked
    # (with three linked sides two overlap; the smaller diagonal wins)
    inf = np.float32(np.inf)
    cost_a = np.where(ab & ac & (diag_bc <= edge), diag_bc, inf)  # corner a: (a, c, b)
    cost_d = np.where(cd & bd & (diag_bc <= edge), diag_bc, inf)  # corner d: (d, b, c)
    cost_b = np.where(ab & bd & (diag_ad <= edge), diag_ad, inf)  # corner b: (b, a, d)
    cost_c = np.where(ac & cd & (diag_ad <= edge), diag_ad, inf)  # corner c: (c, d, a)
    costs = np.stack([cost_a, cost_d, cost_b, cost_c])
    some = np.nonzero(~full & np.isfinite(costs.min(0)))[0]
    best = np.argmin(costs[:, some], 0)
    a, b, c, d = a[some], b[some], c[some], d[some]
    tri = np.stack([np.stack([a, c, b], 1), np.stack([d, b, c], 1), np.stack([b, a, d], 1),
                    np.stack([c, d, a], 1)])  # (4, N, 3)
    out.append(tri[best, np.arange(len(some))])
    return np.concatenate(out).astype(np.int64) if out else np.zeros((0, 3), np.int64)


def _coarse_blocks(disp: np.ndarray, full: np.ndarray, valid: np.ndarray | None, s: int,
                   tol: float) -> np.ndarray:
    """(NBY, NBX) bool: blocks of s x s cells that merge into one coarse cell. full: (H-1, W-1)
    cells with all four sides linked; valid: (H, W) texels that must all be valid (back
    layers) or None; tol: planarity tolerance in disparity (inf: none)."""
    h, w = disp.shape
    nby, nbx = (h - 1) // s, (w - 1) // s
    if s == 1 or nby == 0 or nbx == 0:
        return np.zeros((max(nby, 0), max(nbx, 0)), bool)
    ok = full[: nby * s, : nbx * s].reshape(nby, s, nbx, s).all((1, 3))
    tex = np.ones((nby * s + 1, nbx * s + 1), bool) if valid is None else valid[: nby * s + 1, : nbx * s + 1]
    if valid is not None:
        cell_valid = tex[:-1, :-1] & tex[1:, :-1] & tex[:-1, 1:] & tex[1:, 1:]
        ok &= cell_valid.reshape(nby, s, nbx, s).all((1, 3))
    if np.isfinite(tol):
        d = disp[: nby * s + 1, : nbx * s + 1]
        corners = d[::s, ::s]  # (nby + 1, nbx + 1)
        yy = np.arange(nby * s + 1)
        xx = np.arange(nbx * s + 1)
        by, bx = np.minimum(yy // s, nby - 1), np.minimum(xx // s, nbx - 1)
        fy, fx = ((yy - by * s) / s)[:, None], ((xx - bx * s) / s)[None, :]
        c00 = corners[by][:, bx]
        c01 = corners[by][:, bx + 1]
        c10 = corners[by + 1][:, bx]
        c11 = corners[by + 1][:, bx + 1]
        interp = (1 - fy) * ((1 - fx) * c00 + fx * c01) + fy * ((1 - fx) * c10 + fx * c11)
        dev = np.abs(d - interp)
        # a block's texels are its cells' corners
        cell_dev = np.maximum(np.maximum(dev[:-1, :-1], dev[1:, :-1]), np.maximum(dev[:-1, 1:], dev[1:, 1:]))
        ok &= cell_dev.reshape(nby, s, nbx, s).max((1, 3)) <= tol
    return ok


def _block_triangles(disp: np.ndarray, vert: np.ndarray, s: int, by: np.ndarray, bx: np.ndarray) -> np.ndarray:
    """Triangles (T, 3) of flat texel indices of the s x s blocks (by, bx) (block rows and
    columns): two per block, or, where a neighbouring cell puts vertices on its sides
    (``vert``: (H, W) bool, the texels that are a vertex of some cell), a fan from the
    block's centre texel through every one of them, so there are no T-junctions."""
    h, w = disp.shape
    if len(by) == 0:
        return np.zeros((0, 3), np.int64)
    a = by * s * w + bx * s
    b, c, d = a + s, a + s * w, a + s * w + s
    t = np.arange(s)
    # the ring a -> b -> d -> c (clockwise on screen), closed by a again
    ring = np.concatenate([a[:, None] + t, b[:, None] + w * t, d[:, None] - t, c[:, None] - w * t, a[:, None]], 1)
    marked = vert.ravel()[ring]
    plain = marked[:, :-1].sum(1) == 4  # the corners only
    flat = disp.ravel()
    out = []
    split_bc = np.abs(flat[b] - flat[c]) <= np.abs(flat[a] - flat[d])
    f = plain & split_bc
    out += [np.stack([a[f], c[f], b[f]], 1), np.stack([d[f], b[f], c[f]], 1)]
    f = plain & ~split_bc
    out += [np.stack([b[f], a[f], d[f]], 1), np.stack([c[f], d[f], a[f]], 1)]
    # the next marked ring position after each one
    idx = np.where(marked, np.arange(4 * s + 1), 4 * s + 1)
    after = np.minimum.accumulate(idx[:, ::-1], 1)[:, ::-1]
    nxt = np.concatenate([after[:, 1:], np.full((len(a), 1), 4 * s + 1)], 1)
    rows, cols = np.nonzero(marked[:, :-1] & ~plain[:, None])
    centre = a + (s // 2) * w + s // 2
    # segment p -> q walks clockwise on screen, so (centre, q, p) is counter-clockwise
    out.append(np.stack([centre[rows], ring[rows, nxt[rows, cols]], ring[rows, cols]], 1))
    return np.concatenate(out).astype(np.int64)


def _layer_triangles(disp: np.ndarray, lx: np.ndarray, ly: np.ndarray, valid: np.ndarray | None, edge: float,
                     top: int, tol: float) -> np.ndarray:
    """Triangles (T, 3) of flat texel indices of one layer's surface, blocks merged up to
    top x top cells (a power of two; 1: full resolution). valid: None for layer 0 (every
    cell), else the layer's (H, W) valid texels; lx (H, W-1), ly (H-1, W): the renderer's links."""
    h, w = disp.shape
    full = lx[:-1, :] & lx[1:, :] & ly[:, :-1] & ly[:, 1:]
    if valid is None:
        active = np.ones_like(full)
    else:
        active = valid[:-1, :-1] | valid[1:, :-1] | valid[:-1, 1:] | valid[1:, 1:]
    # a quadtree, largest blocks first: a block is merged unless a larger one already was
    covered = np.zeros_like(full)
    blocks = []
    s = top
    while s >= 2:
        ok = _coarse_blocks(disp, full, valid, s, tol)
        if ok.size:
            nby, nbx = ok.shape
            take = ok & ~covered[: nby * s, : nbx * s].reshape(nby, s, nbx, s).any((1, 3))
            blocks.append((s, *np.nonzero(take)))
            covered[: nby * s, : nbx * s] |= np.repeat(np.repeat(take, s, 0), s, 1)
        s //= 2
    fine = active & ~covered
    vert = np.zeros((h, w), bool)
    for dy in (0, 1):
        for dx in (0, 1):
            vert[dy : h - 1 + dy, dx : w - 1 + dx] |= fine
    for s, by, bx in blocks:
        for dy in (0, s):
            for dx in (0, s):
                vert[by * s + dy, bx * s + dx] = True
    cells = _cell_triangles(disp, lx, ly, edge, fine)
    if valid is not None:
        # a back layer's cell at its rim may close a triangle of the earlier surface alone: a copy
        cells = cells[valid.ravel()[cells].any(1)]
    return np.concatenate([cells, *(_block_triangles(disp, vert, s, by, bx) for s, by, bx in blocks)])


def build_mesh(ldi: LDI, max_faces: int = 500_000) -> Mesh:
    """The textured mesh of ``ldi`` with at most ``max_faces`` triangles (module doc).

    Photo3DError when even the coarsest mesh (full resolution only along the depth edges)
    has more than ``max_faces`` triangles; the message names the least budget that fits.
    """
    depth_t, color_t = ldi.surfaces()
    depth = depth_t.detach().cpu().double().numpy()
    color = (color_t.detach().cpu().float().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).numpy()
    valid = ldi.valid.detach().cpu().numpy()
    n_layers, h, w = depth.shape
    # the renderer's own links (float32 disparities of the surfaces), so the cut is its cut
    grid = prepare(ldi)
    link_x, link_y = grid.link_x.cpu().numpy(), grid.link_y.cpu().numpy()
    disp = (1.0 / depth_t).cpu().numpy()
    edge = np.float32(ldi.edge_disparity)  # compared in float32, as the renderer does
    layers = [k for k in range(n_layers) if k == 0 or valid[k].any()]
    strides = [s for s in STRIDES if s == 1 or s <= min(h, w) - 1]
    # a top size whose every cell merged would still be over the budget cannot fit
    fits = [s for s in strides if 2 * (h - 1) * (w - 1) / (s * s) <= max_faces] or strides[-1:]
    start = strides.index(fits[0])

    def attempt(s: int, tol: float) -> list[np.ndarray]:
        return [_layer_triangles(disp[k], link_x[k], link_y[k], None if k == 0 else valid[k], edge, s, tol)
                for k in layers]

    # planar merges at every top size before any non-planar one: they keep the geometry
    tries = [(s, PLANAR_SHARE * edge) for s in strides[start:]] + [(s, np.inf) for s in strides[start:] if s > 1]
    for s, tol in tries:
        tris = attempt(s, tol)
        if sum(len(t) for t in tris) <= max_faces:
            return _assemble(tris, layers, depth, color, ldi.K, s)
    least = min(sum(len(t) for t in attempt(s, np.inf)) for s in strides)
    raise Photo3DError(f"--max-faces {max_faces} is too few for this scene: it needs at least {least} triangles "
                       f"(its depth edges stay at full resolution); give at least that")


def _assemble(tris: list[np.ndarray], layers: list[int], depth: np.ndarray, color: np.ndarray,
              K: np.ndarray, stride: int) -> Mesh:
    """Vertices, UVs and the atlas of the per-layer triangles of flat texel indices."""
    n_layers, h, w = depth.shape
    # a back layer whose texels are all isolated has no triangle, and no tile
    keep = [i for i, (k, t) in enumerate(zip(layers, tris)) if k == 0 or len(t)]
    tris, layers = [tris[i] for i in keep], [layers[i] for i in keep]
    ids = np.concatenate([t + k * h * w for k, t in zip(layers, tris)])
    face_layer = np.concatenate([np.full(len(t), k, np.int64) for k, t in zip(layers, tris)])
    # vertex ids by marking the used texels (linear time; np.unique would sort)
    mark = np.zeros(n_layers * h * w, bool)
    mark[ids.ravel()] = True
    used = np.flatnonzero(mark)
    index = np.cumsum(mark, dtype=np.int64 if len(mark) >= 2**31 else np.int32) - 1
    faces = index[ids].astype(np.int64)
    k, rest = np.divmod(used, h * w)
    y, x = np.divmod(rest, w)
    u, v = x + 0.5, y + 0.5
    z = depth[k, y, x]
    Kinv = np.linalg.inv(K)
    rays = np.stack([u, v, np.ones_like(u)], 1) @ Kinv.T
    vertices = (rays * (z / rays[:, 2])[:, None]).astype(np.float32)
    # atlas: layer 0 whole, then each back layer's bounding box of used texels, stacked down
    tiles, origin, top = [], {}, 0
    for layer in layers:
        sel = k == layer
        y0, y1 = (0, h - 1) if layer == 0 else (int(y[sel].min()), int(y[sel].max()))
        x0, x1 = (0, w - 1) if layer == 0 else (int(x[sel].min()), int(x[sel].max()))
        tiles.append(np.pad(color[layer, y0 : y1 + 1, x0 : x1 + 1], ((0, 0), (0, w - (x1 - x0 + 1)), (0, 0))))
        origin[layer] = (top - y0, -x0)
        top += y1 - y0 + 1
    texture = np.concatenate(tiles)
    oy = np.array([origin[int(layer)][0] for layer in layers])[np.searchsorted(layers, k)]
    ox = np.array([origin[int(layer)][1] for layer in layers])[np.searchsorted(layers, k)]
    uvs = np.stack([(x + ox + 0.5) / w, (y + oy + 0.5) / texture.shape[0]], 1).astype(np.float32)
    return Mesh(vertices, faces, uvs, np.stack([k, y, x], 1), color[k, y, x], face_layer, texture, stride)


def point_cloud(ldi: LDI) -> tuple[np.ndarray, np.ndarray]:
    """Every valid texel of every layer as a point at its own z-depth: (N, 3) float32 in the
    photo camera's OpenCV frame (scene units) and (N, 3) uint8 sRGB colours."""
    valid = ldi.valid.detach().cpu().numpy()
    k, y, x = np.nonzero(valid)
    z = ldi.depth.detach().cpu().double().numpy()[k, y, x]
    rays = np.stack([x + 0.5, y + 0.5, np.ones(len(x))], 1) @ np.linalg.inv(ldi.K).T
    points = (rays * (z / rays[:, 2])[:, None]).astype(np.float32)
    colors = (np.clip(ldi.color.detach().cpu().float().numpy()[k, y, x], 0, 1) * 255.0 + 0.5).astype(np.uint8)
    return points, colors
