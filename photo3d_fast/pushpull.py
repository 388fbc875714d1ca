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


def push_pull_fill(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """NumPy convenience: (H, W) float map with a (H, W) bool mask of valid pixels."""
    v = torch.from_numpy(np.ascontiguousarray(values, np.float32))[None]
    w = torch.from_numpy(np.ascontiguousarray(valid, np.float32))
    return push_pull(v, w)[0].numpy()
