"""A small z-buffered triangle rasteriser with perspective-correct texture lookup, to look
at exported meshes from novel views and compare them with the splat renderer.

Import it as the tests import helpers (pytest puts tests/ on the path)::

    from raster import rasterize

Camera conventions as everywhere (docs/architecture.md): OpenCV pinhole, pixel centres at
integer + 0.5, c2w camera-to-world with the world the photo's camera.
"""

from __future__ import annotations

import numpy as np
import torch

#: Triangles with a vertex nearer than this (scene units) to the camera plane are dropped.
Z_NEAR = 1e-4


def rasterize(vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, texture: np.ndarray, c2w: np.ndarray,
              K: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Render a textured mesh: (H, W, 3) uint8 sRGB and (H, W) bool coverage.

    vertices: (V, 3) world points, OpenCV frame (x right, y down, z forward); faces: (F, 3)
    vertex indices (either winding: no culling); uvs: (V, 2) texture coordinates, origin
    top-left, v down; texture: (TH, TW, 3) uint8, sampled bilinearly at texel centres;
    c2w: (4, 4) camera-to-world; K: (3, 3) intrinsics; size: (W, H). A pixel is covered
    when its centre lies inside a triangle (edges inclusive); the nearest wins.
    """
    w, h = size
    v = torch.as_tensor(np.asarray(vertices), dtype=torch.float64)
    f = torch.as_tensor(np.asarray(faces), dtype=torch.int64)
    c2w = torch.as_tensor(np.asarray(c2w), dtype=torch.float64)
    cam = (v - c2w[:3, 3]) @ c2w[:3, :3]
    z = cam[:, 2]
    px = K[0, 0] * cam[:, 0] / z + K[0, 2]
    py = K[1, 1] * cam[:, 1] / z + K[1, 2]
    f = f[(z[f] > Z_NEAR).all(1)]
    fx, fy, fz = px[f], py[f], z[f]  # (F, 3)
    x0 = torch.ceil(fx.min(1).values - 0.5).clamp_min(0)
    x1 = torch.floor(fx.max(1).values - 0.5).clamp_max(w - 1)
    y0 = torch.ceil(fy.min(1).values - 0.5).clamp_min(0)
    y1 = torch.floor(fy.max(1).values - 0.5).clamp_max(h - 1)
    nx = (x1 - x0 + 1).clamp_min(0).long()
    ny = (y1 - y0 + 1).clamp_min(0).long()
    n = nx * ny
    tri = torch.repeat_interleave(torch.arange(len(f)), n)
    local = torch.arange(len(tri)) - (torch.cumsum(n, 0) - n)[tri]
    qx = x0[tri] + (local % nx[tri]) + 0.5
    qy = y0[tri] + (local // nx[tri]) + 0.5
    ax, ay = fx[tri, 0], fy[tri, 0]
    bx, by = fx[tri, 1], fy[tri, 1]
    cx, cy = fx[tri, 2], fy[tri, 2]
    area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
    w0 = ((bx - qx) * (cy - qy) - (by - qy) * (cx - qx)) / area
    w1 = ((cx - qx) * (ay - qy) - (cy - qy) * (ax - qx)) / area
    w2 = 1.0 - w0 - w1
    inside = (area.abs() > 1e-12) & (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
    tri, qx, qy, w0, w1, w2 = tri[inside], qx[inside], qy[inside], w0[inside], w1[inside], w2[inside]
    # perspective-correct: interpolate 1/z and uv/z in screen space
    iz = w0 / fz[tri, 0] + w1 / fz[tri, 1] + w2 / fz[tri, 2]
    depth = (1.0 / iz).float()
    pix = (qy.long() * w + qx.long())
    key = (depth.contiguous().view(torch.int32).to(torch.int64) << 32) | tri
    buf = torch.full((w * h,), torch.iinfo(torch.int64).max, dtype=torch.int64)
    buf.scatter_reduce_(0, pix, key, reduce="amin")
    win = buf[pix] == key
    tri, pix, w0, w1, w2, iz = tri[win], pix[win], w0[win], w1[win], w2[win], iz[win]
    uv = torch.as_tensor(np.asarray(uvs), dtype=torch.float64)[f[tri]]  # (P, 3, 2)
    zt = fz[tri]
    weights = torch.stack([w0, w1, w2], 1) / zt / iz[:, None]
    u, t = (weights[..., None] * uv).sum(1).unbind(1)
    tex = torch.as_tensor(np.array(texture), dtype=torch.float64)
    th, tw = tex.shape[:2]
    sx = (u * tw - 0.5).clamp(0, tw - 1)
    sy = (t * th - 0.5).clamp(0, th - 1)
    ix, iy = sx.floor().long().clamp(max=tw - 2), sy.floor().long().clamp(max=th - 2)
    ax_, ay_ = (sx - ix)[:, None], (sy - iy)[:, None]
    color = ((1 - ay_) * ((1 - ax_) * tex[iy, ix] + ax_ * tex[iy, ix + 1])
             + ay_ * ((1 - ax_) * tex[iy + 1, ix] + ax_ * tex[iy + 1, ix + 1]))
    out = torch.zeros(w * h, 3, dtype=torch.float64)
    out[pix] = color
    covered = torch.zeros(w * h, dtype=torch.bool)
    covered[pix] = True
    return out.round().clamp(0, 255).to(torch.uint8).reshape(h, w, 3).numpy(), covered.reshape(h, w).numpy()
