"""The individual pictorial cues of the embedded depth estimator, each a map at working
resolution: ground plane, defocus / texture, haze and sky, figure / ground by the border,
centre prior and saturation (what each measures and why: ``photo3d_fast.depth.cues``, which
fuses them), with the small torch filters they share.
"""

from __future__ import annotations

import numpy as np
import torch

from .guided import box_filter


def _radius(frac: float, s: int) -> int:
    return max(1, int(round(frac * s)))


def _blur(x: torch.Tensor, r: int) -> torch.Tensor:
    # Two box passes: a triangle kernel, smooth enough to avoid box ringing, O(1) in r.
    return box_filter(box_filter(x, r), r)


def _grad_mag(x: torch.Tensor) -> torch.Tensor:
    # Central differences with replicated borders; size-1 axes give zero gradient.
    xp = torch.nn.functional.pad(x[None, None], (1, 1, 1, 1), mode="replicate")[0, 0]
    gx = 0.5 * (xp[1:-1, 2:] - xp[1:-1, :-2])
    gy = 0.5 * (xp[2:, 1:-1] - xp[:-2, 1:-1])
    return torch.sqrt(gx * gx + gy * gy)


def _min_filter(x: torch.Tensor, r: int) -> torch.Tensor:
    # Replicate padding + max_pool without implicit padding works for any image size; a
    # square min is separable, so two 1-D passes cost O(r) instead of O(r^2) per pixel.
    k = 2 * r + 1
    xp = torch.nn.functional.pad(-x[None, None], (r, r, r, r), mode="replicate")
    xp = torch.nn.functional.max_pool2d(xp, (k, 1), stride=1)
    return -torch.nn.functional.max_pool2d(xp, (1, k), stride=1)[0, 0]


def _max_filter(x: torch.Tensor, r: int) -> torch.Tensor:
    return -_min_filter(-x, r)


def _quantiles(x: torch.Tensor, qs: tuple[float, ...]) -> list[float]:
    """Quantiles by k-th order statistic (nearest rank): O(n), no 2**24 size limit."""
    flat = x.flatten()
    n = flat.numel()
    ranks = [min(n, max(1, int(round(q * (n - 1))) + 1)) for q in qs]
    return [float(torch.kthvalue(flat, k).values) for k in ranks]


def _robust_unit(x: torch.Tensor, lo_q: float = 0.02, hi_q: float = 0.98, floor: float = 1e-3):
    """Map x to [0, 1] by its lo_q/hi_q quantiles; a cue with no spread becomes a constant 0.5."""
    lo, hi = _quantiles(x, (lo_q, hi_q))
    if not (hi - lo > floor):
        return torch.full_like(x, 0.5)
    return ((x - lo) / (hi - lo)).clamp_(0.0, 1.0)


def _luminance(img: torch.Tensor) -> torch.Tensor:
    return 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]


def _local_contrast(lum: torch.Tensor, r: int) -> torch.Tensor:
    """Local standard deviation of luminance over a (2r+1)^2 box, normalised to [0, 1]."""
    m = box_filter(lum, r)
    v = (box_filter(lum * lum, r) - m * m).clamp_(min=0.0)
    # A std of 0.1 (in sRGB / 255 units) is already strong contrast; saturating there instead
    # of normalising by percentiles keeps a uniformly hazy photo from being stretched into
    # "contrasty".
    return (torch.sqrt(v) / 0.1).clamp_(0.0, 1.0)


def _haze(img: torch.Tensor, lum: torch.Tensor, s: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(haze, sky) scores in [0, 1]; sky is haze that is also bright and smooth."""
    mx = img.max(dim=0).values
    mn = img.min(dim=0).values
    dark = _min_filter(mn, _radius(0.015, s))
    low_contrast = 1.0 - _local_contrast(lum, _radius(0.02, s))
    desat = 1.0 - ((mx - mn) / (mx + 0.05)).clamp(0.0, 1.0)
    # Blue tint of airlight and sky: blue above the red-green mean, relative to brightness.
    blue = ((img[2] - 0.5 * (img[0] + img[1])) / (mx + 0.05) * 4.0).clamp_(0.0, 1.0)
    # Airlight is bright in every channel *and* flat; gating the dark channel (and the grey
    # term) by low contrast keeps a textured white object, or a plain red one, from counting.
    haze = 0.55 * dark * low_contrast + 0.30 * blue + 0.15 * low_contrast * desat
    haze = _blur(haze, _radius(0.01, s))
    bright = (lum / 0.6).clamp(0.0, 1.0)
    sky = low_contrast * bright * (0.5 + 0.5 * torch.maximum(blue, desat))
    return haze, sky


def _lab(img: torch.Tensor) -> torch.Tensor:
    """(3, h, w) sRGB in [0, 1] -> CIE L*a*b* (D65), where distances track perceived difference."""
    lin = torch.where(img <= 0.04045, img / 12.92, ((img + 0.055) / 1.055) ** 2.4)
    m = torch.tensor(
        [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]],
        dtype=img.dtype,
    )
    xyz = torch.einsum("ij,jhw->ihw", m, lin) / torch.tensor(
        [0.9505, 1.0, 1.089], dtype=img.dtype
    ).view(3, 1, 1)
    f = torch.where(xyz > 0.008856, xyz.clamp(min=1e-6) ** (1.0 / 3.0), 7.787 * xyz + 16.0 / 116.0)
    return torch.stack([116.0 * f[1] - 16.0, 500.0 * (f[0] - f[1]), 200.0 * (f[1] - f[2])])


def _figure(img: torch.Tensor, s: int) -> torch.Tensor:
    """Background prior: how unlike the frame's border a pixel's colour is (Lab distance)."""
    lab = _lab(img)
    h, w = lab.shape[1:]
    sm = _blur(lab, _radius(0.01, s))
    border = _blur(lab, _radius(0.02, s))
    n = 16
    ys = torch.linspace(0, h - 1, n).round().long()
    xs = torch.linspace(0, w - 1, n).round().long()
    samples = torch.cat(
        [border[:, 0, xs], border[:, h - 1, xs], border[:, ys, 0], border[:, ys, w - 1]], dim=1
    )  # (3, 4n)
    # Distances at half resolution: this cue is smooth anyway (it is blurred below and the
    # guided filters put its edges back), and the h*w x 64 distance table dominates its cost.
    size = (max(1, h // 2), max(1, w // 2))
    sm = torch.nn.functional.interpolate(sm[None], size=size, mode="area")[0]
    dist = torch.cdist(sm.reshape(3, -1).T.contiguous(), samples.T.contiguous())  # (n_px, 4n)
    # The 10th percentile over border samples, not the minimum: an object that touches the
    # border in one or two samples should still stand out from the rest of the border.
    k = max(1, int(0.1 * dist.shape[1]))
    d = torch.topk(dist, k, dim=1, largest=False, sorted=True).values[:, -1].reshape(size)
    d = torch.nn.functional.interpolate(
        d[None, None], size=(h, w), mode="bilinear", align_corners=False
    )[0, 0]
    d = _blur(d, _radius(0.01, s))
    # 5 Lab units ~ two just-noticeable differences: below that spread there is no figure.
    return _robust_unit(d, floor=5.0)


def _horizon(sky: torch.Tensor) -> float:
    """Horizon row as a fraction of the height (0 = top edge = no sky found)."""
    h = sky.shape[0]
    if h < 4:
        return 0.0
    prof = sky.mean(dim=1).to(torch.float64)
    cs = torch.cumsum(prof, 0)
    t = torch.arange(1, h, dtype=torch.float64)  # split after row t-1
    above = cs[:-1] / t
    below = (cs[-1] - cs[:-1]) / (h - t)
    frac = t / h
    # Only splits in the upper 70% of the frame; a "horizon" below that is usually a
    # bright floor or table, not sky.
    score = (above - below) * torch.sqrt(frac * (1 - frac))
    score = torch.where(frac <= 0.7, score, torch.full_like(score, -1.0))
    k = int(torch.argmax(score))
    contrast = float(above[k] - below[k])
    # Confidence grows from 0 at a 0.15 sky-score difference to 1 at 0.35.
    conf = min(max((contrast - 0.15) / 0.20, 0.0), 1.0)
    return conf * float(frac[k])


def _ground(h: int, w: int, horizon: float) -> torch.Tensor:
    y = (torch.arange(h, dtype=torch.float32) + 0.5) / h
    g = ((y - horizon) / max(1.0 - horizon, 1e-3)).clamp_(0.0, 1.0)
    return g[:, None].expand(h, w).clone()


def _focus(lum: torch.Tensor, s: int) -> torch.Tensor:
    g1 = _grad_mag(lum)
    g2 = _grad_mag(_blur(lum, 1))
    ratio = g1 / (g2 + 1e-3)
    sharp = (ratio - 1.0).clamp_(0.0, 3.0)
    # Only edges carry the ratio; weight by edge strength relative to the image's strong edges.
    ref = _quantiles(g1, (0.9,))[0] + 1e-3
    wgt = (g1 / ref).clamp_(0.0, 1.0) ** 2
    r = _radius(0.06, s)
    mean_sharp = float((sharp * wgt).sum() / (wgt.sum() + 1e-6))
    k = 0.02  # pseudo-count: where no edge is near, fall back to the image's mean sharpness
    sharp_map = (_blur(sharp * wgt, r) + k * mean_sharp) / (_blur(wgt, r) + k)

    b0 = lum
    b1 = _blur(lum, 1)
    b2 = _blur(lum, 2)
    b4 = _blur(lum, 4)
    band = (b0 - b1).abs() + (b1 - b2).abs() + 0.5 * (b2 - b4).abs()
    rt = _radius(0.02, s)
    energy = _blur(band, rt) / (_blur(lum, rt) + 0.1)
    texture = torch.log(energy + 1e-3)
    return 0.5 * _robust_unit(sharp_map, floor=1e-2) + 0.5 * _robust_unit(texture, floor=0.05)


def _centre(h: int, w: int) -> torch.Tensor:
    y = (torch.arange(h, dtype=torch.float32) + 0.5) / h
    x = (torch.arange(w, dtype=torch.float32) + 0.5) / w
    return torch.exp(-((y[:, None] - 0.55) ** 2 + (x[None, :] - 0.5) ** 2) / (2 * 0.3**2))


def _saturation(img: torch.Tensor, s: int) -> torch.Tensor:
    mx = img.max(dim=0).values
    mn = img.min(dim=0).values
    return _blur((mx - mn) / (mx + 0.05), _radius(0.01, s)).clamp_(0.0, 1.0)


#: A scene whose median luminance is below this is a night scene (``_lights``).
NIGHT_MEDIAN = 0.15


def _lights(lum: torch.Tensor, s: int) -> torch.Tensor:
    """Light sources of a night scene and their glow: (h, w) weight in [0, 1].

    In a night photo the brightest small blobs are lamps: emitters, at the depth of what
    holds them, but the figure and saturation cues call them the nearest things in the frame,
    and the guided filters then cut a star-shaped near object out of each lamp's glare, which
    tears apart as soon as the camera moves. A core is a blob narrower than ~2% of the frame
    in both directions (the smaller of a horizontal and a vertical white top-hat, so a thin
    bright pole or a lit facade is not one), near the frame's brightest (70% of its 99.9th
    percentile) and at least 3x its local background (the opened luminance, blurred); its
    glow is what is connected to it, within 4% of the frame, above 8% of the way from the
    background to that peak. Lit scenes (median luminance >= NIGHT_MEDIAN) get
    zeros: there a bright spot is a highlight on a surface, which the cues place right.
    """
    import cv2  # the depth conditioning's dependency too

    y = lum.contiguous().numpy().astype(np.float32)
    if float(np.median(y)) >= NIGHT_MEDIAN:
        return torch.zeros_like(lum)
    k = 2 * _radius(0.01, s) + 1
    tophat = np.minimum(y - cv2.morphologyEx(y, cv2.MORPH_OPEN, np.ones((1, k), np.uint8)),
                        y - cv2.morphologyEx(y, cv2.MORPH_OPEN, np.ones((k, 1), np.uint8)))
    background = cv2.blur(cv2.morphologyEx(y, cv2.MORPH_OPEN, np.ones((k, k), np.uint8)), (k, k))
    peak = float(np.quantile(y, 0.999))
    core = (tophat > 0.2) & (y > 0.7 * peak) & (y > 3.0 * background + 0.05)
    if not core.any():
        return torch.zeros_like(lum)
    rg = _radius(0.04, s)
    near = cv2.dilate(core.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rg + 1, 2 * rg + 1)))
    bright = (near > 0) & (y > background + 0.08 * (peak - background))
    n, label = cv2.connectedComponents(bright.astype(np.uint8), connectivity=8)
    lit = np.zeros(n, bool)
    lit[np.unique(label[core & bright])] = True
    lit[0] = False
    return torch.from_numpy(cv2.GaussianBlur(lit[label].astype(np.float32), (0, 0), 1.0))


def flatten_lights(d: torch.Tensor, lights: torch.Tensor, s: int) -> torch.Tensor:
    """``d`` (h, w) with the pixels of ``lights`` (weights in [0, 1]) given the mean of their
    surroundings within 5% of the frame (a normalised convolution that leaves them out)."""
    if not bool(lights.any()):
        return d
    r = _radius(0.05, s)
    keep = 1.0 - lights
    surround = _blur(d * keep, r) / _blur(keep, r).clamp_min(1e-3)
    return d * keep + surround * lights
