"""Depth engines: from a photo to relative disparity (1 = nearest, 0 = farthest).

Backends: ``cues`` (embedded, no weights; always available) and, with the engines issue,
learned models (Depth Anything V2, MiDaS). ``auto`` picks the best one available locally
and falls back to ``cues``. A user's own depth map is read by ``photo3d_fast.io``.
"""

from __future__ import annotations

import numpy as np

from ..errors import Photo3DError

DEPTH_METHODS = ("auto", "cues")


def estimate_disparity(image: np.ndarray, method: str = "auto") -> tuple[np.ndarray, str]:
    """Relative disparity of a photo.

    image: (H, W, 3) uint8 sRGB. Returns ((H, W) float32 in [0, 1], a short description
    of the backend that produced it).
    """
    if method not in DEPTH_METHODS:
        raise Photo3DError(
            f"--depth {method!r} is not a depth method or an existing file; "
            f"use {' or '.join(DEPTH_METHODS)}, or the path of a depth map (.png, .tif, .npy)"
        )
    from .cues import estimate_disparity_cues

    note = "cues (embedded estimator; learned models are better)"
    if method == "auto":
        note = "cues (auto: no learned depth model is installed)"
    return estimate_disparity_cues(image), note
