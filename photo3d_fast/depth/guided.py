"""Edge-aware guided filter (He, Sun, Tang, "Guided Image Filtering", ECCV 2010 / TPAMI 2013)
and its fast upsampling variant (He & Sun, "Fast Guided Filter", arXiv:1505.00996, 2015).

The filter assumes the output ``q`` is locally an affine function of the guide ``I``: in every
(2r+1)x(2r+1) window ``w_k``, ``q = a_k . I + b_k``. Least squares with a ridge ``eps`` gives

    a_k = (Sigma_k + eps U)^-1 cov_k(I, p),     b_k = mean_k(p) - a_k . mean_k(I)

and each pixel averages the coefficients of the windows that contain it:
``q = mean(a) . I + mean(b)``. Where the guide is flat (variance << eps) the filter is a box
mean of ``p``; where the guide has an edge (variance >> eps) the output follows that edge.
That is what the cue depth estimator needs: a blurry disparity whose discontinuities move onto
the image's edges.

Shapes: guide ``(H, W)`` or ``(C, H, W)``; src ``(H, W)`` or ``(S, H, W)`` (S channels filtered
independently with the same guide); output has src's shape and dtype. Values are plain floats
(images as sRGB / 255). All work is whole-tensor torch ops; no Python loop touches pixels.

Box sums use cumulative sums with windows clamped to the image and divided by the true count
of pixels in each clamped window, so the cost does not depend on ``r`` and images smaller than
the window (1x1 included) are fine: there a window is simply the whole image.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["box_filter", "guided_filter", "guided_coefficients", "guided_upsample"]


def _box_1d(x: torch.Tensor, r: int, dim: int) -> torch.Tensor:
    n = x.shape[dim]
    dim = dim % x.ndim
    cs = torch.cumsum(x, dim=dim)
    # Extend the prefix sums with r+1 zeros in front and r copies of the total behind: then
    # the clamped window sum for every i is one slice difference ext[i+2r+1] - ext[i], with no
    # gather and no special case for borders or for n < 2r+1.
    zeros_shape = list(x.shape)
    zeros_shape[dim] = r + 1
    tail_shape = [-1] * x.ndim
    tail_shape[dim] = r
    ext = torch.cat(
        [x.new_zeros(zeros_shape), cs, cs.narrow(dim, n - 1, 1).expand(*tail_shape)], dim=dim
    )
    s = ext.narrow(dim, 2 * r + 1, n) - ext.narrow(dim, 0, n)
    idx = torch.arange(n, device=x.device)
    count = (idx + r + 1).clamp(max=n) - (idx - r).clamp(min=0)
    count_shape = [1] * x.ndim
    count_shape[dim] = n
    return s / count.to(x.dtype).view(count_shape)


def box_filter(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over the (2r+1)x(2r+1) window clamped to the image, on the last two dims.

    x: (..., H, W) float. Returns the same shape and dtype. Near the border (and everywhere,
    for images smaller than the window) the mean is over the pixels that exist, which is
    what ``avg_pool2d(count_include_pad=False)`` gives; the clamped window factorises into a
    row range times a column range, so two 1-D passes are exact.

    Prefix sums run in x's dtype. In float32 a row of W values near 1 leaves an absolute
    error of about W * 6e-8 in each window mean: harmless for smoothing, not for a variance
    E[x^2] - E[x]^2 near eps, which is why :func:`guided_coefficients` works in float64.
    """
    if r <= 0:
        return x.clone()
    return _box_1d(_box_1d(x, r, -2), r, -1)


def _as_chw(t: torch.Tensor, name: str) -> torch.Tensor:
    if t.ndim == 2:
        return t.unsqueeze(0)
    if t.ndim == 3:
        return t
    raise ValueError(f"{name} must be (H, W) or (C, H, W); got shape {tuple(t.shape)}")


def _solve_sym3(prods: torch.Tensor, rhs: torch.Tensor, eps: float) -> torch.Tensor:
    """Per-pixel (Sigma + eps U)^-1 rhs for symmetric 3x3 Sigma, by cofactors.

    prods: (6, H, W) upper triangle of Sigma in triu order (00, 01, 02, 11, 12, 22);
    rhs: (S, 3, H, W). Elementwise plane arithmetic is several times faster on CPU than a
    batched LAPACK solve of millions of tiny systems, and in float64 with det >= eps^3 it is
    accurate enough.
    """
    s00, s01, s02, s11, s12, s22 = (prods[i] for i in range(6))
    s00 = s00 + eps
    s11 = s11 + eps
    s22 = s22 + eps
    c00 = s11 * s22 - s12 * s12
    c01 = s02 * s12 - s01 * s22
    c02 = s01 * s12 - s02 * s11
    c11 = s00 * s22 - s02 * s02
    c12 = s01 * s02 - s00 * s12
    c22 = s00 * s11 - s01 * s01
    inv_det = 1.0 / (s00 * c00 + s01 * c01 + s02 * c02)
    r0, r1, r2 = rhs[:, 0], rhs[:, 1], rhs[:, 2]
    a0 = (c00 * r0 + c01 * r1 + c02 * r2) * inv_det
    a1 = (c01 * r0 + c11 * r1 + c12 * r2) * inv_det
    a2 = (c02 * r0 + c12 * r1 + c22 * r2) * inv_det
    return torch.stack([a0, a1, a2], dim=1)


def guided_coefficients(
    guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The window-averaged affine coefficients of the guided filter.

    guide: (C, H, W) float; src: (S, H, W) float. Returns ``(A, B)`` with A (S, C, H, W) and
    B (S, H, W), both float64, such that the filter output is ``sum_c A[:, c] * guide[c] + B``.
    They are smooth (box-averaged), which is why they can be upsampled to apply the filter to a
    higher-resolution guide (:func:`guided_upsample`).
    """
    if guide.shape[-2:] != src.shape[-2:]:
        raise ValueError(
            f"guide is {tuple(guide.shape)} but src is {tuple(src.shape)}; their H, W must match"
        )
    r = max(int(radius), 0)
    I = guide.to(torch.float64)  # noqa: E741 (the paper's name)
    p = src.to(torch.float64)
    C = I.shape[0]
    mean_I = box_filter(I, r)  # (C,H,W)
    mean_p = box_filter(p, r)  # (S,H,W)
    # cov(I_c, p_s) for every pair: (S, C, H, W)
    mean_Ip = box_filter(p[:, None] * I[None], r)
    cov_Ip = mean_Ip - mean_p[:, None] * mean_I[None]
    if C == 1:
        var_I = box_filter(I * I, r) - mean_I * mean_I  # (1,H,W)
        a = cov_Ip / (var_I[None] + eps)
    else:
        # Sigma_k is C x C per pixel, symmetric positive semi-definite; + eps*U makes it
        # positive definite, so the solve is well posed even on flat patches.
        ii, jj = torch.triu_indices(C, C)
        prods = box_filter(I[ii] * I[jj], r) - mean_I[ii] * mean_I[jj]  # (C(C+1)/2,H,W)
        if C == 3:
            a = _solve_sym3(prods, cov_Ip, eps)
        else:
            H, W = I.shape[-2:]
            sigma = I.new_zeros(H, W, C, C)
            sigma[:, :, ii, jj] = prods.permute(1, 2, 0)
            sigma[:, :, jj, ii] = prods.permute(1, 2, 0)
            sigma = sigma + eps * torch.eye(C, dtype=I.dtype, device=I.device)
            rhs = cov_Ip.permute(2, 3, 1, 0)  # (H, W, C, S)
            a = torch.linalg.solve(sigma, rhs).permute(3, 2, 0, 1)  # (S, C, H, W)
    b = mean_p - (a * mean_I[None]).sum(dim=1)
    return box_filter(a, r), box_filter(b, r)


def guided_filter(
    guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float, subsample: int = 1
) -> torch.Tensor:
    """Guided filter of ``src`` with ``guide`` (He et al. 2010).

    guide: (H, W) or (C, H, W) float, e.g. an sRGB/255 image as (3, H, W); a colour guide
        separates edges between regions of equal brightness that a grey one would miss.
    src: (H, W) or (S, H, W) float, the signal to smooth (here: disparity).
    radius: window half-size in pixels (window 2r+1); any r >= 0, larger than the image too.
    eps: ridge on the guide's variance, in guide units squared: edges whose variance is well
        above eps are kept, texture well below it is smoothed away. 1e-3 ~ a 0.03 step.
    subsample: solve for the coefficients at 1/subsample resolution (area average, radius
        divided likewise) and apply their bilinear upsampling to the full guide: the "fast
        guided filter" (He & Sun 2015), about subsample^2 times less work for wide windows,
        with the output's edges still those of the full-resolution guide. 1 = exact filter.
    Returns a tensor of src's shape and dtype. The solve works in float64 (about 20 planes
    of the solve's resolution for a colour guide).
    """
    g = _as_chw(guide, "guide")
    s = _as_chw(src, "src")
    H, W = g.shape[-2:]
    k = max(int(subsample), 1)
    if k > 1 and min(H, W) >= 2 * k:
        size = (-(-H // k), -(-W // k))
        g_lo = torch.nn.functional.interpolate(g[None].float(), size=size, mode="area")[0]
        s_lo = torch.nn.functional.interpolate(s[None].float(), size=size, mode="area")[0]
        A, B = guided_coefficients(g_lo, s_lo, max(1, round(radius / k)), eps)
        A = _linear_resize_axis(_linear_resize_axis(A, H, dim=2), W, dim=3)
        B = _linear_resize_axis(_linear_resize_axis(B, H, dim=1), W, dim=2)
    else:
        A, B = guided_coefficients(g, s, radius, eps)
    q = (A * g.to(A.dtype)[None]).sum(dim=1) + B
    return q.to(src.dtype).reshape(src.shape)


def _linear_resize_axis(x: torch.Tensor, n_out: int, dim: int) -> torch.Tensor:
    """Linear resampling of one axis, pixel centres at i+0.5 (``align_corners=False``)."""
    n_in = x.shape[dim]
    if n_in == n_out:
        return x
    pos = (torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5
    pos = pos.clamp(0, n_in - 1)
    i0 = pos.floor().long()
    i1 = (i0 + 1).clamp(max=n_in - 1)
    w = (pos - i0.to(torch.float64)).to(x.dtype)
    shape = [1] * x.ndim
    shape[dim] = n_out
    w = w.view(shape)
    return x.index_select(dim, i0) * (1 - w) + x.index_select(dim, i1) * w


def guided_upsample(
    guide_low: torch.Tensor,
    src_low: torch.Tensor,
    photo: np.ndarray,
    radius: int,
    eps: float,
    rows_per_strip: int = 256,
) -> torch.Tensor:
    """Fast guided filter to the photo's resolution: solve small, apply to the full photo.

    guide_low: (C, h, w) float, the photo downsampled and / 255; src_low: (h, w) float;
    photo: (H, W, C) uint8 numpy array, channels last as it arrives at the API. Returns
    (H, W) float32 ``q = up(A) . photo / 255 + up(B)`` (bilinear ``up``, pixel centres at
    i+0.5), so the photo's own edges land in the output at full sharpness while the solve
    costs only the low resolution.

    The full-resolution work runs in strips of rows: a 48 Mpx photo never exists as a float
    tensor, only ``rows_per_strip`` rows of it at a time (plus the float32 output).
    """
    s = src_low if src_low.ndim == 3 else src_low[None]
    A, B = guided_coefficients(guide_low, s, radius, eps)
    coef = torch.cat([A[0], B], dim=0).to(torch.float32)  # (C+1, h, w)
    H, W, C = (int(n) for n in photo.shape)
    if C != coef.shape[0] - 1:
        raise ValueError(f"photo has {C} channels but guide_low has {coef.shape[0] - 1}")
    # Resample columns once for all low-res rows (small: (C+1) x h x W); rows per strip below.
    coef_w = _linear_resize_axis(coef, W, dim=2)
    h = coef.shape[1]
    pos = ((torch.arange(H, dtype=torch.float64) + 0.5) * (h / H) - 0.5).clamp(0, h - 1)
    i0_all = pos.floor().long()
    i1_all = (i0_all + 1).clamp(max=h - 1)
    w_all = (pos - i0_all.to(torch.float64)).to(torch.float32)
    out = torch.empty(H, W, dtype=torch.float32)
    for y0 in range(0, H, rows_per_strip):
        y1 = min(H, y0 + rows_per_strip)
        wy = w_all[y0:y1].view(1, -1, 1)
        cs = coef_w.index_select(1, i0_all[y0:y1]) * (1 - wy) + coef_w.index_select(
            1, i1_all[y0:y1]
        ) * wy  # (C+1, rows, W)
        # Copy the strip: the caller's array may be read-only (np.asarray of a PIL image).
        g = torch.from_numpy(np.array(photo[y0:y1], dtype=np.float32)).mul_(1.0 / 255.0)
        q = cs[C].clone()
        for c in range(C):  # C is 3: a loop over channels, not pixels
            q.add_(cs[c] * g[..., c])
        out[y0:y1] = q
    return out
