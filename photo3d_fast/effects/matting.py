"""Soft alpha and colour decontamination of a coarse mask against its photo.

``refine_alpha``: a trimap from the coarse mask (sure foreground and background by erosion
and dilation, an unknown band between) and closed-form matting in the band (Levin et al.
2008: alpha locally an affine function of the colour, one sparse solve with the sure regions
as boundary values); edges move onto the photo's, hair and fur get fractional alpha.
``estimate_foreground``: the background colour B behind a fractional pixel is the
normalised-convolution mean of nearby sure-background pixels (likewise a prior F0 for the
foreground), and F minimises |I - a F - (1 - a) B|^2 + lambda |F - F0|^2, so a cutout's edge
carries no background colour. rgb (H, W, 3) uint8 sRGB; alpha (H, W) float32 in [0, 1];
foreground (H, W, 3) float32 sRGB in [0, 1].
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ..depth.guided import guided_upsample

#: Weight of the foreground prior in the decontamination solve: small, so where alpha is
#: well above ~0.1 the compositing equation decides.
DECONTAMINATE_LAMBDA = 0.02


def band_radius(h: int, w: int) -> int:
    """Half-width of the trimap's unknown band: ~1 % of the longer side, at least 3 px."""
    return max(3, round(0.01 * max(h, w)))


#: Longest side of the closed-form solve; larger photos solve there and their alpha is
#: carried to full resolution by the guided upsampling (``depth.guided.guided_upsample``).
MATTE_SOLVE_SIDE = 1024
#: Regulariser of the closed-form matting windows (Levin et al.'s eps), (sRGB/255)^2.
MATTING_EPS = 1e-6
#: Weight of the prior (the coarse mask, blurred by half the band) in the solve: keeps
#: alpha defined where the colour model is silent (the same colour on both sides).
PRIOR_WEIGHT = 1e-3


def trimap(coarse: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(sure foreground, sure background), (H, W) bool each, of a coarse mask (H, W) bool:
    the mask eroded and its complement eroded by a disc of ``radius`` px; the rest is the
    unknown band."""
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    m = coarse.astype(np.uint8)
    fg = cv2.erode(m, k, borderType=cv2.BORDER_REPLICATE) > 0
    bg = cv2.dilate(m, k, borderType=cv2.BORDER_REPLICATE) == 0
    return fg, bg


def _matting_laplacian(image: np.ndarray, centres: np.ndarray, eps: float):
    """Levin, Lischinski and Weiss's matting Laplacian ("A Closed-Form Solution to Natural
    Image Matting", TPAMI 2008) of the 3x3 windows centred on ``centres`` ((H, W) bool):
    scipy CSR (H*W, H*W). image: (H, W, 3) float64 in [0, 1]. In each window alpha is
    assumed an affine function of the colour; L sums, per window, delta_ij - (1 + (I_i -
    mu)^T (Sigma + eps/9 U)^-1 (I_j - mu)) / 9 over its pixel pairs."""
    import scipy.sparse as sp

    h, w = centres.shape
    inner = centres.copy()
    inner[[0, -1], :] = False
    inner[:, [0, -1]] = False
    ys, xs = np.nonzero(inner)
    dy, dx = np.mgrid[-1:2, -1:2]
    idx = (ys[:, None] + dy.ravel()) * w + (xs[:, None] + dx.ravel())  # (K, 9)
    win = image.reshape(-1, 3)[idx]  # (K, 9, 3)
    d = win - win.mean(axis=1, keepdims=True)
    cov = np.einsum("kni,knj->kij", d, d) / 9.0 + (eps / 9.0) * np.eye(3)
    inv = np.linalg.inv(cov)
    vals = (1.0 + np.einsum("kni,kij,kmj->knm", d, inv, d)) / 9.0
    vals = np.eye(9)[None] - vals
    rows = np.repeat(idx, 9, axis=1).ravel()
    cols = np.tile(idx, (1, 9)).ravel()
    return sp.csr_matrix((vals.ravel(), (rows, cols)), shape=(h * w, h * w))


def _closed_form(rgb: np.ndarray, fg: np.ndarray, bg: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Alpha (H, W) float64 of the closed-form matting of rgb (H, W, 3) uint8 with the sure
    regions fg/bg fixed and a weak pull (``PRIOR_WEIGHT``) towards ``prior`` (H, W)."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    h, w = fg.shape
    unknown = ~(fg | bg)
    alpha = np.where(fg, 1.0, 0.0)
    if not unknown.any():
        return alpha
    # Only windows that hold an unknown pixel put anything in its rows.
    centres = cv2.dilate(unknown.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    L = _matting_laplacian(rgb.astype(np.float64) / 255.0, centres, MATTING_EPS)
    u = np.flatnonzero(unknown.ravel())
    k = np.flatnonzero(~unknown.ravel())
    Luu = L[u][:, u]
    rhs = -(L[u][:, k] @ alpha.ravel()[k]) + PRIOR_WEIGHT * prior.ravel()[u]
    A = (Luu + PRIOR_WEIGHT * sp.identity(len(u), format="csr")).tocsc()
    alpha.ravel()[u] = spla.spsolve(A, rhs)
    return alpha


def refine_alpha(rgb: np.ndarray, coarse: np.ndarray, radius: int | None = None) -> np.ndarray:
    """Edge-accurate soft alpha (H, W) float32 in [0, 1] from a coarse subject ``coarse``
    ((H, W) bool, or float in [0, 1] thresholded at 0.5) and the photo rgb (H, W, 3) uint8.

    Trimap by erosion/dilation of ``radius`` px (default ``band_radius``). In the unknown
    band: closed-form matting (``_matting_laplacian``): alpha locally an affine function
    of the colour, solved as one sparse system over the band with the sure regions as
    boundary values, weakly pulled towards the coarse mask blurred by half the band.
    Edges move onto the photo's and fine structure (hair) gets
    fractional values. Photos larger than ``MATTE_SOLVE_SIDE`` solve at that size and the
    alpha is carried to full resolution by the guided upsampling. Sure regions are
    exactly 0 and 1.
    """
    h, w = coarse.shape
    if rgb.shape[:2] != (h, w):
        raise ValueError(f"rgb {rgb.shape[:2]} and mask {coarse.shape} differ in size")
    mask = coarse > 0.5 if coarse.dtype != bool else coarse
    r = radius or band_radius(h, w)
    fg, bg = trimap(mask, r)
    scale = min(1.0, MATTE_SOLVE_SIDE / max(h, w))
    if scale < 1.0:
        size = (max(8, round(w * scale)), max(8, round(h * scale)))
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        m_small = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.5
        fg_s, bg_s = trimap(m_small, max(2, round(r * scale)))
    else:
        small, m_small, fg_s, bg_s = rgb, mask, fg, bg
    r_s = max(2, round(r * scale))
    prior = cv2.GaussianBlur(m_small.astype(np.float64), (0, 0), 0.5 * r_s)
    a = np.clip(_closed_form(small, fg_s, bg_s, prior), 0.0, 1.0)
    if scale < 1.0:
        guide = torch.from_numpy(small).permute(2, 0, 1).float() / 255.0
        a = guided_upsample(guide, torch.from_numpy(a.astype(np.float32)), rgb, radius=1, eps=1e-5).numpy()
        a = np.clip(a, 0.0, 1.0)
    a[fg] = 1.0
    a[bg] = 0.0
    return a.astype(np.float32)


# -- colour decontamination --------------------------------------------------------------

def _normalized_mean(image: np.ndarray, weight: np.ndarray, radius: int) -> np.ndarray:
    """Weighted local mean (H, W, C) float32 of ``image`` (H, W, C) float32 under ``weight``
    (H, W) in [0, 1]: box normalised convolution at radius r, 4r, 16r... until every pixel
    has support (the image's weighted mean beyond that). A smooth field: it is computed at
    most ``MATTE_SOLVE_SIDE`` px across and resized bilinearly."""
    h, w = weight.shape
    scale = min(1.0, MATTE_SOLVE_SIDE / max(h, w))
    wt = weight.astype(np.float32)
    num = image.astype(np.float32) * wt[..., None]
    if scale < 1.0:
        size = (max(8, round(w * scale)), max(8, round(h * scale)))
        num = cv2.resize(num, size, interpolation=cv2.INTER_AREA)
        wt = cv2.resize(wt, size, interpolation=cv2.INTER_AREA)
    out = np.zeros_like(num)
    done = np.zeros(wt.shape, bool)
    r = max(1, round(radius * scale))
    while True:
        k = (2 * r + 1, 2 * r + 1)
        n = cv2.boxFilter(num, -1, k, borderType=cv2.BORDER_REFLECT)
        d = cv2.boxFilter(wt, -1, k, borderType=cv2.BORDER_REFLECT)
        ok = (d > 1e-3) & ~done
        out[ok] = n[ok] / d[ok][:, None]
        done |= ok
        if done.all() or r > max(wt.shape):
            break
        r *= 4
    if not done.all():
        total = float(wt.sum())
        mean = num.reshape(-1, num.shape[2]).sum(0) / total if total > 0 else image.reshape(-1, image.shape[2]).mean(0)
        out[~done] = mean
    if scale < 1.0:
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
    return out.astype(np.float32)


def estimate_foreground(rgb: np.ndarray, alpha: np.ndarray, radius: int | None = None,
                        lam: float = DECONTAMINATE_LAMBDA) -> np.ndarray:
    """The subject's own colour F (H, W, 3) float32 sRGB in [0, 1], background colour
    removed from fractional pixels.

    rgb: (H, W, 3) uint8; alpha: (H, W) float32 in [0, 1]. B: the local mean of sure
    background (alpha < 0.02) at radius ``radius`` (default 2x the band); F0 likewise of
    sure foreground (alpha > 0.98). Per pixel F = argmin |I - a F - (1 - a) B|^2 +
    lam |F - F0|^2 = (a (I - (1 - a) B) + lam F0) / (a^2 + lam), clamped; I itself where
    alpha > 0.98. Linear sRGB would be more exact; the photo's own blend happened in the
    camera's encoded values anyway, as far as a photo can tell.
    """
    I = rgb.astype(np.float32) / 255.0
    a = np.clip(alpha.astype(np.float32), 0.0, 1.0)
    h, w = a.shape
    r = radius or 2 * band_radius(h, w)
    B = _normalized_mean(I, (a < 0.02).astype(np.float32), r)
    F0 = _normalized_mean(I, (a > 0.98).astype(np.float32), r)
    a3 = a[..., None]
    F = (a3 * (I - (1.0 - a3) * B) + lam * F0) / (a3 * a3 + lam)
    F = np.where(a3 > 0.98, I, np.clip(F, 0.0, 1.0))
    return F.astype(np.float32)
