"""Depth engines: from a photo to relative disparity (1 = nearest, 0 = farthest).

Backends: ``cues`` (embedded, no weights; always available) and the learned models of
``photo3d_fast.engines.registry`` (Depth Anything V2 small/base/large, MiDaS DPT-Large).
``auto`` runs the best learned model whose weights are here, else downloads the default
(Depth Anything V2 Small, Apache-2.0) once when downloads are allowed and the hub answers,
else falls back to ``cues`` (``engines.resolve_auto``). A user's own depth map is read by
``photo3d_fast.io``.
"""

from __future__ import annotations

import numpy as np

from ..engines.registry import get_spec, models_for
from ..engines.weights import available_locally, default_download, resolve_auto
from ..errors import Photo3DError
from .backends import EngineOptions, estimate_with_model
from .cues import estimate_disparity_cues

DEPTH_MODELS = tuple(s.name for s in models_for("depth"))
DEPTH_METHODS = ("auto", "cues", *DEPTH_MODELS)

__all__ = ["DEPTH_METHODS", "DEPTH_MODELS", "EngineOptions", "estimate_disparity", "is_depth_method", "local_depth_methods"]


def is_depth_method(name: str) -> bool:
    """Whether ``name`` names a depth method (a model alias included), not a file."""

    if name in ("auto", "cues"):
        return True
    try:
        get_spec(name, task="depth")
    except Photo3DError:
        return False
    return True


def local_depth_methods() -> list[str]:
    """The depth backends that run here without a download: cues and every model whose
    weights are in the cache (or its package)."""

    return ["cues", *(m for m in DEPTH_MODELS if available_locally(get_spec(m)))]


def estimate_disparity(image: np.ndarray, method: str = "auto", options: EngineOptions | None = None,
                       quiet: bool = True) -> tuple[np.ndarray, str]:
    """Relative disparity of a photo.

    image: (H, W, 3) uint8 sRGB; method: "auto", "cues" or a depth model's name (or alias);
    options: runtime/precision/device/weights of learned models and whether weights may be
    downloaded. auto may download the default model once (``engines.resolve_auto``); a
    named model without weights is downloaded once, or is a Photo3DError offline. Returns
    ((H, W) float32 in [0, 1], a short description of the backend that produced it).
    """
    if not is_depth_method(method):
        raise Photo3DError(
            f"--depth {method!r} is not a depth method or an existing file; use auto, cues, "
            f"{', '.join(DEPTH_MODELS)}, or the path of a depth map (.png, .tif, .npy)"
        )
    options = options or EngineOptions()
    if method == "auto":

        if options.weights is not None:
            raise Photo3DError("--weights needs --depth MODEL: say which model the file holds")
        name = resolve_auto("depth", fetch=options.fetch, quiet=quiet, fallback="cues")
        if name is not None:
            disparity, note = _learned(image, name, options, quiet)
            return disparity, f"{note}; auto: best depth model with weights here"
    elif method != "cues":
        return _learned(image, method, options, quiet)

    note = "cues (embedded estimator; learned models are better)"
    if method == "auto":
        default = default_download("depth")
        fetch = f"; `photo3d engines fetch {default.name}`" if default is not None else ""
        note = f"cues (auto: no learned depth model's weights are here{fetch})"
    return estimate_disparity_cues(image), note


def _learned(image: np.ndarray, name: str, options: EngineOptions, quiet: bool) -> tuple[np.ndarray, str]:

    return estimate_with_model(image, name, options, quiet)
