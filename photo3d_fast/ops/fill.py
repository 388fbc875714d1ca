"""Push-pull hole filling (Gortler et al. 1996, "The Lumigraph", section 3.3).

Values are averaged down an image pyramid weighted by coverage (push), then coarse
levels fill what finer levels lack (pull). Covered pixels keep their values exactly;
holes get a smooth blend of the nearest covered content at every scale. O(H*W) work,
no per-pixel loops, the same on CPU and GPU.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def push_pull(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Fill where ``weight`` is 0 from where it is positive.

    values: (C, H, W) float, meaningful where weight > 0 (anything elsewhere).
    weight: (H, W) float in [0, 1], the coverage of each pixel (1 = fully known).
    Returns (C, H, W), equal to ``values`` where weight >= 1. If nothing is covered the
    result is all zeros.
    """
    w = weight.to(values.dtype)[None]
    vw = values * w
    levels: list[tuple[torch.Tensor, torch.Tensor]] = []
    while True:
        levels.append((vw, w))
        h, wd = w.shape[-2:]
        if h == 1 and wd == 1 or bool((w > 0).all()):
            break
        # ceil_mode keeps odd rows/columns; both sums shrink alike, so their ratio is right.
        vw = F.avg_pool2d(vw[None], 2, ceil_mode=True)[0]
        w = F.avg_pool2d(w[None], 2, ceil_mode=True)[0]

    vw, w = levels[-1]
    out = vw / w.clamp_min(1e-12)
    for vw, w in reversed(levels[:-1]):
        up = F.interpolate(out[None], size=w.shape[-2:], mode="bilinear", align_corners=False)[0]
        alpha = w.clamp(0.0, 1.0)
        out = vw / w.clamp_min(1e-12) * alpha + up * (1.0 - alpha)
    return out


#: Exponent of the depth weighting of fill_from_background: among the covered pixels that
#: border a hole, one 20% farther weighs 4x more, one twice as far 256x.
FAR_POWER = 8.0


def nearest_covered(covered: torch.Tensor, dim: int, forward: bool) -> torch.Tensor:
    """Index along ``dim`` of the nearest covered pixel before (forward=False) or after
    each pixel, itself included; -1 where there is none. covered: (H, W) bool."""
    n = covered.shape[dim]
    shape = [1, 1]
    shape[dim] = n
    idx = torch.arange(n, device=covered.device).reshape(shape).expand_as(covered)
    if not forward:
        return torch.cummax(torch.where(covered, idx, -1), dim).values
    flipped = torch.where(covered.flip(dim), idx, -1)
    last = torch.cummax(flipped, dim).values.flip(dim)
    return torch.where(last >= 0, n - 1 - last, -1)


def side_neighbours(covered: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The nearest covered pixel to the left, right, top and bottom of each pixel (itself
    when covered). covered: (H, W) bool. Returns per side (ok, flat, dist), each (H, W):
    whether there is one, its flat index into H * W (any where there is none), and its
    distance in pixels (at least 1)."""
    h, w = covered.shape
    rows = torch.arange(h, device=covered.device)[:, None].expand(h, w)
    cols = torch.arange(w, device=covered.device)[None, :].expand(h, w)
    sides = []
    for dim, forward in ((1, False), (1, True), (0, False), (0, True)):
        j = nearest_covered(covered, dim, forward)
        ok = j >= 0
        j = j.clamp_min(0)
        flat = rows * w + j if dim == 1 else j * w + cols
        dist = (j - (cols if dim == 1 else rows)).abs().clamp_min(1)
        sides.append((ok, flat, dist))
    return sides


def fill_from_background(values: torch.Tensor, covered: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """Fill holes from the farther of the surfaces that border them.

    values: (C, H, W) float; covered: (H, W) bool; depth: (H, W) float z-depth, meaningful
    where covered. Holes a camera move opens are disocclusions, and what belongs there is
    the background; an averaging fill smears the foreground's color into them. Each hole
    pixel takes the nearest covered pixel to its left, right, top and bottom, weighted by
    (z / z_farthest) ** FAR_POWER / distance: the farther side wins, sides at similar
    depth blend by distance. Pixels with no covered pixel in their row or column fall
    back to push-pull. Returns (C, H, W), equal to ``values`` where covered.
    """
    if bool(covered.all()) or not bool(covered.any()):
        return values
    h, w = covered.shape
    flat_v = values.reshape(values.shape[0], -1)
    flat_z = torch.where(covered, depth, 0.0).reshape(-1)
    cand_z, cand_i, cand_d = [], [], []
    for ok, flat, dist in side_neighbours(covered):
        cand_z.append(torch.where(ok, flat_z[flat.reshape(-1)].reshape(h, w), 0.0))
        cand_i.append(flat)
        cand_d.append(dist.to(values.dtype))
    z = torch.stack(cand_z)
    weight = (z / z.amax(0).clamp_min(1e-12)) ** FAR_POWER / torch.stack(cand_d)
    total = weight.sum(0)
    filled = sum(flat_v[:, i.reshape(-1)].reshape(values.shape) * wt for i, wt in zip(cand_i, weight))
    filled = filled / total.clamp_min(1e-30)
    out = torch.where(covered, values, filled)
    orphan = ~covered & (total <= 0)
    if bool(orphan.any()):
        out = torch.where(orphan, push_pull(out, (~orphan).float()), out)
    return out


def fill_frames(values: torch.Tensor, covered: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """``fill_from_background`` of F frames: values (F, C, H, W), covered (F, H, W) bool,
    depth (F, H, W). Returns (F, C, H, W). The reference of the batched Triton fill: one
    frame after another."""
    if len(values) == 0:
        return values.clone()
    return torch.stack([fill_from_background(v, c, d) for v, c, d in zip(values, covered, depth)])


def check_fill_args(values: torch.Tensor, covered: torch.Tensor, depth: torch.Tensor, out: torch.Tensor | None,
                    batched: bool) -> None:
    """ValueError unless the fast fills' arguments fit their contract: values (C, H, W) or,
    batched, (F, C, H, W) float32; covered and depth its (H, W) / (F, H, W) bool and
    float32, on values' device; out None or a contiguous float32 tensor like values."""
    dims = "(F, C, H, W)" if batched else "(C, H, W)"
    if values.dim() != (4 if batched else 3) or values.dtype != torch.float32:
        raise ValueError(f"values must be a {dims} float32 tensor, got {tuple(values.shape)} {values.dtype}")
    mask_shape = (values.shape[0], *values.shape[2:]) if batched else tuple(values.shape[1:])
    if tuple(covered.shape) != mask_shape or covered.dtype != torch.bool:
        raise ValueError(f"covered must be a {mask_shape} bool tensor, got {tuple(covered.shape)} {covered.dtype}")
    if tuple(depth.shape) != mask_shape or depth.dtype != torch.float32:
        raise ValueError(f"depth must be a {mask_shape} float32 tensor, got {tuple(depth.shape)} {depth.dtype}")
    if not (values.device == covered.device == depth.device):
        raise ValueError(f"values, covered and depth must be on one device, got "
                         f"{values.device}, {covered.device}, {depth.device}")
    if out is not None and (out.shape != values.shape or out.dtype != torch.float32
                            or out.device != values.device or not out.is_contiguous()):
        raise ValueError(f"out must be a contiguous {tuple(values.shape)} float32 tensor on {values.device}, "
                         f"got {tuple(out.shape)} {out.dtype} on {out.device}")


def push_pull_fill(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """NumPy convenience: (H, W) float map with a (H, W) bool mask of valid pixels."""
    v = torch.from_numpy(np.ascontiguousarray(values, np.float32))[None]
    w = torch.from_numpy(np.ascontiguousarray(valid, np.float32))
    return push_pull(v, w)[0].numpy()
