"""Pre- and post-processing of the learned depth models, independent of any runtime.

``run_depth_model(rgb, run, prep)`` is the whole path from a photo to disparity:
:func:`preprocess` (resize to the network's size, normalise) -> ``run`` (a torch module, or
an engine with the same call: (N, 3, h, w) float32 in, (N, 1, h, w) out) ->
:func:`postprocess` (upsample to the photo as the reference does, optional edge-aware
refinement, robust normalisation to [0, 1] with 1 = nearest).

What the references do, and we reproduce:

- Depth Anything V2 (``depth_anything_v2/dpt.py`` ``image2tensor`` / ``infer_image``):
  RGB / 255, ``Resize(518, 518, keep_aspect_ratio=True, ensure_multiple_of=14,
  resize_method="lower_bound", cv2.INTER_CUBIC)``, ImageNet mean / std; output upsampled
  bilinearly with ``align_corners=True``.
- MiDaS v3 DPT-Large 384 (``midas/model_loader.py`` ``dpt_large_384``, ``run.py``
  ``process``): RGB / 255, ``Resize(384, 384, keep_aspect_ratio=True,
  ensure_multiple_of=32, resize_method="minimal", cv2.INTER_CUBIC)``, mean = std = 0.5;
  output upsampled bicubically with ``align_corners=False``.

Both models predict relative inverse depth (larger = nearer), so no sign flip is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import Photo3DError
from .guided import guided_upsample

__all__ = [
    "DEPTH_ANYTHING_PREPROCESS",
    "MIDAS_PREPROCESS",
    "DepthPreprocess",
    "network_size",
    "postprocess",
    "preprocess",
    "run_depth_model",
]


@dataclass(frozen=True)
class DepthPreprocess:
    """How a depth network wants its input and how its output is brought back.

    input_size: the target side length in pixels (the reference ``Resize(width=height=...)``).
    multiple: network sides are multiples of this (patch size, or the decoder's 32).
    resize_method: "lower_bound" (both sides >= input_size), "upper_bound" (both <=) or
        "minimal" (scale by the factor closest to 1), keeping the aspect ratio.
    mean, std: per-channel normalisation of RGB in [0, 1].
    upsample_mode, align_corners: ``F.interpolate`` of the prediction to the photo's size.
    """

    input_size: int
    multiple: int
    resize_method: Literal["lower_bound", "upper_bound", "minimal"]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    upsample_mode: Literal["bilinear", "bicubic"]
    align_corners: bool


DEPTH_ANYTHING_PREPROCESS = DepthPreprocess(
    input_size=518,
    multiple=14,
    resize_method="lower_bound",
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    upsample_mode="bilinear",
    align_corners=True,
)

MIDAS_PREPROCESS = DepthPreprocess(
    input_size=384,
    multiple=32,
    resize_method="minimal",
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    upsample_mode="bicubic",
    align_corners=False,
)


def _constrain_to_multiple_of(x: float, multiple: int, min_val: int = 0, max_val: int | None = None) -> int:
    # np.round, not round(): the reference uses numpy's (both round half to even, but stay
    # with the reference's function so that float corner cases agree too).
    y = int(np.round(x / multiple) * multiple)
    if max_val is not None and y > max_val:
        y = int(np.floor(x / multiple) * multiple)
    if y < min_val:
        y = int(np.ceil(x / multiple) * multiple)
    return y


def network_size(h: int, w: int, prep: DepthPreprocess) -> tuple[int, int]:
    """The network input size (nh, nw) for an h x w photo: the reference ``Resize.get_size``
    with ``keep_aspect_ratio=True`` (same float arithmetic, same rounding).

    One deliberate difference: a side is never below ``prep.multiple``. The reference can
    round a side of a very elongated photo to 0 under "minimal" (e.g. 10 x 1000 for MiDaS),
    where cv2.resize would then fail.
    """
    if h < 1 or w < 1:
        raise Photo3DError(f"image is {h}x{w}; depth estimation needs at least 1x1 pixels")
    size, m = prep.input_size, prep.multiple
    scale_h = size / h
    scale_w = size / w
    if prep.resize_method == "lower_bound":
        scale_h = scale_w = max(scale_h, scale_w)
    elif prep.resize_method == "upper_bound":
        scale_h = scale_w = min(scale_h, scale_w)
    elif prep.resize_method == "minimal":
        if abs(1 - scale_w) < abs(1 - scale_h):
            scale_h = scale_w
        else:
            scale_w = scale_h
    else:
        raise ValueError(f"resize_method {prep.resize_method!r} is not lower_bound, upper_bound or minimal")
    if prep.resize_method == "lower_bound":
        nh = _constrain_to_multiple_of(scale_h * h, m, min_val=size)
        nw = _constrain_to_multiple_of(scale_w * w, m, min_val=size)
    elif prep.resize_method == "upper_bound":
        nh = _constrain_to_multiple_of(scale_h * h, m, max_val=size)
        nw = _constrain_to_multiple_of(scale_w * w, m, max_val=size)
    else:
        nh = _constrain_to_multiple_of(scale_h * h, m)
        nw = _constrain_to_multiple_of(scale_w * w, m)
    return max(nh, m), max(nw, m)


def _cubic_taps(n_in: int, n_out: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Source indices (n_out, 4) long and weights (n_out, 4) float32 of cubic resampling.

    Keys' cubic with a = -0.75 and half-pixel centres (src = (i + 0.5) n_in / n_out - 0.5),
    taps clamped to the border, no antialiasing when shrinking: what cv2.INTER_CUBIC and
    ``F.interpolate(mode="bicubic", align_corners=False)`` both compute.
    """
    a = -0.75
    src = (torch.arange(n_out, dtype=torch.float64, device=device) + 0.5) * (n_in / n_out) - 0.5
    i0 = torch.floor(src)
    t = src - i0
    d = torch.stack([t + 1, t, 1 - t, 2 - t], dim=1)  # distances to the 4 taps, all >= 0
    near = ((a + 2) * d - (a + 3)) * d * d + 1  # |d| <= 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a  # 1 < |d| < 2
    w = torch.where(d <= 1, near, far)
    idx = (i0.long()[:, None] + torch.arange(-1, 3, device=device)).clamp_(0, n_in - 1)
    return idx, w.to(torch.float32)


def _resize_cubic(img: torch.Tensor, nh: int, nw: int) -> torch.Tensor:
    """(H, W, C) uint8 or float -> (nh, nw, C) float32, separable cubic (see _cubic_taps).

    Rows first, gathering only the 4 source rows each output row needs, straight from the
    uint8 image: a 48 Mpx photo is never converted to float as a whole (the peak is four
    nh x W x C float planes), and shrinking to ~518 px costs O(nh W + nh nw), not O(H W).
    """
    H, W = img.shape[:2]
    iy, wy = _cubic_taps(H, nh, img.device)
    rows = torch.zeros(nh, W, img.shape[2], dtype=torch.float32, device=img.device)
    for k in range(4):
        rows += img.index_select(0, iy[:, k]).to(torch.float32) * wy[:, k, None, None]
    ix, wx = _cubic_taps(W, nw, img.device)
    out = torch.zeros(nh, nw, img.shape[2], dtype=torch.float32, device=img.device)
    for k in range(4):
        out += rows.index_select(1, ix[:, k]) * wx[None, :, k, None]
    return out


def preprocess(rgb: np.ndarray, prep: DepthPreprocess, device: str | torch.device = "cpu") -> torch.Tensor:
    """Photo -> network input.

    rgb: (H, W, 3) uint8 RGB. Returns (1, 3, nh, nw) float32 on ``device``, with
    (nh, nw) = :func:`network_size`: cubic resize (cv2.INTER_CUBIC semantics; the
    reference resizes RGB / 255, we resize 0..255 and scale after, the same linear map),
    then (x / 255 - mean) / std. Overshoot of the cubic kernel is not clipped, as in the
    reference.
    """
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3:
        raise Photo3DError(f"image must be (H, W, 3) RGB; got shape {a.shape}")
    if a.dtype != np.uint8:
        raise Photo3DError(f"image must be uint8 RGB; got dtype {a.dtype}")
    H, W = a.shape[:2]
    nh, nw = network_size(H, W, prep)
    # Upload the uint8 photo (a quarter of float32's bytes) and resize where the net runs.
    # Read-only arrays (a decoded photo shared by several clips) cannot back a tensor.
    img = torch.from_numpy(a if a.flags.writeable and a.flags.c_contiguous else a.copy()).to(device)
    x = _resize_cubic(img, nh, nw)
    mean = torch.tensor(prep.mean, dtype=torch.float32, device=x.device)
    std = torch.tensor(prep.std, dtype=torch.float32, device=x.device)
    x = (x * (1.0 / 255.0) - mean) / std
    return x.permute(2, 0, 1).unsqueeze(0).contiguous()


# Robust range: the same percentiles as photo3d_fast.scene.normalize_disparity.
_LO_PCT, _HI_PCT = 0.5, 99.5

# Edge-aware refinement (fast guided filter, guided.py): solve at the network's resolution
# in a 3x3 window, apply with the full-resolution photo as guide. The learned depth is
# already good; what upsampling loses is only the sharpness of its edges (a 518 px map
# stretched over a 4000 px photo smears every depth step over ~8 px, which shows as a halo
# when the parallax pulls foreground and background apart). A small window and an eps well
# above texture contrast (0.05^2 in sRGB/255 units) move depth steps onto the photo's strong
# edges without painting texture into flat depth, so the refinement stays mild.
_REFINE_RADIUS = 1
_REFINE_EPS = 2.5e-3
# Below this upsampling factor the reference upsampling loses no visible sharpness.
_REFINE_MIN_SCALE = 1.5


def _robust_range(d: torch.Tensor) -> tuple[float, float] | None:
    """(lo, hi) percentiles of a disparity map, or None when it is (nearly) constant."""
    flat = d.detach().to(torch.float32).flatten().cpu().numpy()
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return None
    lo, hi = np.percentile(flat, [_LO_PCT, _HI_PCT])
    if not hi - lo > 1e-6 * max(1.0, abs(float(hi))):
        return None
    return float(lo), float(hi)


def postprocess(
    pred: torch.Tensor,
    size: tuple[int, int],
    prep: DepthPreprocess,
    guide: np.ndarray | None = None,
) -> np.ndarray:
    """Network output -> disparity of the photo.

    pred: (1, 1, h, w) or (1, h, w) float, the network's relative disparity (larger =
        nearer), any device.
    size: (H, W) of the photo.
    guide: the photo, (H, W, 3) uint8, to refine depth edges with, or None for the
        reference upsampling only. With a guide, and when the photo is at least 1.5x the
        network's size, the fast guided filter's own (bilinear) upsampling of its
        coefficients replaces the reference interpolation (see _REFINE_*).
    Returns (H, W) float32 in [0, 1], 1 = nearest: the 0.5th and 99.5th percentiles
    (taken at the network's resolution, where they are cheap and the same up to the
    resampling) map to 0 and 1, clipped, as ``scene.normalize_disparity`` does; a constant
    prediction gives all 0.5.
    """
    if pred.ndim == 3:
        pred = pred[:, None]
    if pred.ndim != 4 or pred.shape[0] != 1 or pred.shape[1] != 1:
        raise ValueError(f"prediction must be (1, 1, h, w) or (1, h, w); got {tuple(pred.shape)}")
    H, W = (int(s) for s in size)
    pred = pred.detach().to(torch.float32)
    rng = _robust_range(pred)
    if rng is None:
        return np.full((H, W), 0.5, dtype=np.float32)
    lo, hi = rng
    h, w = pred.shape[-2:]
    refine = guide is not None and max(H / h, W / w) >= _REFINE_MIN_SCALE
    if refine:
        g = np.asarray(guide)
        if g.shape[:2] != (H, W) or g.ndim != 3:
            raise ValueError(f"guide is {g.shape} but the output size is {(H, W)}; pass the photo")
        photo = torch.from_numpy(np.ascontiguousarray(g))
        guide_low = F.interpolate(
            photo.permute(2, 0, 1)[None].to(torch.float32) * (1.0 / 255.0), size=(h, w), mode="area"
        )[0]
        d_low = ((pred[0, 0].cpu() - lo) / (hi - lo)).to(torch.float32)
        out = guided_upsample(guide_low, d_low, g, _REFINE_RADIUS, _REFINE_EPS)
        return out.clamp_(0.0, 1.0).numpy()
    up = F.interpolate(pred, size=(H, W), mode=prep.upsample_mode, align_corners=prep.align_corners)[0, 0]
    up = ((up - lo) * (1.0 / (hi - lo))).clamp_(0.0, 1.0)
    return up.cpu().numpy().astype(np.float32, copy=False)


def run_depth_model(
    rgb: np.ndarray,
    run: Callable[[torch.Tensor], torch.Tensor],
    prep: DepthPreprocess,
    refine: bool = True,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Photo -> (H, W) float32 disparity in [0, 1] (1 = nearest) with a depth network.

    rgb: (H, W, 3) uint8 RGB. run: maps (N, 3, h, w) float32 to (N, 1, h, w) (a torch
    module or an engine). prep: the model's :class:`DepthPreprocess`. refine: edge-aware
    refinement of the upsampled depth with the photo (see :func:`postprocess`).
    device: where the input tensor is made; default the module's parameters' device, else CPU.
    """
    a = np.asarray(rgb)
    if device is None:
        params = getattr(run, "parameters", None)
        first = next(iter(params()), None) if callable(params) else None
        device = first.device if first is not None else "cpu"
    x = preprocess(a, prep, device=device)
    with torch.inference_mode():
        pred = run(x)
    if not isinstance(pred, torch.Tensor):
        pred = torch.as_tensor(np.asarray(pred))
    expected = (1, 1, x.shape[2], x.shape[3])
    if tuple(pred.shape) != expected and tuple(pred.shape) != expected[1:]:
        raise ValueError(f"depth model returned {tuple(pred.shape)} for input {tuple(x.shape)}; expected {expected}")
    return postprocess(pred, a.shape[:2], prep, guide=a if refine else None)
