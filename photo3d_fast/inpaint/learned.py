"""Learned inpainting (LaMa, MI-GAN) through the engine layer: what each network wants as
input, the crop / resize / pad around it, and the paste-back of hole pixels only.

What the references do, and we reproduce:

- LaMa (``bin/predict.py`` with ``configs/prediction/default.yaml``, ``saicinpainting/
  evaluation/data.py``): RGB / 255, mask > 0 = hole, both padded at the bottom and right to a
  multiple of 8 with numpy's ``symmetric`` mode, network input ``cat(img * (1 - mask),
  mask)``, output cropped back; the whole image at its own resolution.
- MI-GAN (``scripts/demo.py``, and IOPaint's crop strategy for the 512 model): RGB scaled to
  [-1, 1], input ``cat(known - 0.5, img * known)`` at the model's fixed R x R, output
  ``y * 0.5 + 0.5`` clamped, resized back bicubically, only hole pixels pasted.

Deliberate differences, each for a reason given where it is done: LaMa runs on the image
scaled down to at most ``LAMA_MAX_SIDE`` pixels on its long side (the cost grows with the
area and big-lama was trained on 256 px crops) and padded to the next size of a coarse grid
(:func:`lama_side`) rather than of 8, so that similar sizes share an engine; MI-GAN runs on
one square crop around the hole's bounding box (``MIGAN_CONTEXT`` times its long side, at
least R pixels); shrinking is area averaging and hole pixels are zeroed first, so no known
pixel of the network input mixes in hole colours; float -> uint8 rounds (the references
truncate).

``inpaint_learned`` is the whole path for a registry model; ``run_lama`` / ``run_migan`` take
any callable with the engine's call (a torch module, an engine) for tests and benchmarks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..depth.backends import EngineOptions
from ..engines import load_engine
from ..engines.registry import ModelSpec, get_spec, models_for
from ..engines.weights import available_locally
from ..errors import Photo3DError

__all__ = [
    "INPAINT_MODELS",
    "LAMA_MAX_SIDE",
    "LAMA_MULTIPLE",
    "MIGAN_CONTEXT",
    "engine_input_shape",
    "inpaint_learned",
    "lama_side",
    "lama_work_size",
    "learned_inpaint_ready",
    "migan_window",
    "run_lama",
    "run_migan",
]

#: The learned inpainting models, best first (the registry's rank order).
INPAINT_MODELS: tuple[str, ...] = tuple(s.name for s in models_for("inpaint"))

#: LaMa's input sides must be multiples of 2 ** 3 (three stride-2 downsamplings).
LAMA_MULTIPLE = 8
#: Longest side LaMa runs at. Its cost grows with the area (and the Fourier units' matmuls
#: with side^3); big-lama, trained on 256 px crops, holds up to about 2k (the paper's
#: high-resolution results; IOPaint's resize limit is the same). Larger photos are scaled
#: down for the network and its fill scaled back up.
LAMA_MAX_SIDE = 2048
#: MI-GAN's crop side, in multiples of the hole's bounding-box long side: half of it again of
#: context on each side (more dilutes the hole at the fixed input size, less starves it).
MIGAN_CONTEXT = 2.0

Run = Callable[[torch.Tensor], torch.Tensor]


def _check(rgb: np.ndarray, hole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rgb, hole = np.asarray(rgb), np.asarray(hole)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise Photo3DError(f"inpainting needs an (H, W, 3) uint8 RGB image; got {rgb.shape} {rgb.dtype}")
    if hole.shape != rgb.shape[:2]:
        raise Photo3DError(f"hole mask is {hole.shape} but the image is {rgb.shape[:2]}")
    return rgb, hole.astype(bool, copy=False)


def _to_tensors(rgb: np.ndarray, hole: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, W, 3) uint8, (H, W) bool -> (1, 3, H, W) float32 in [0, 1] with hole pixels 0,
    (1, 1, H, W) float32 1 = hole."""
    img = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].to(torch.float32) * (1.0 / 255.0)
    m = torch.from_numpy(np.ascontiguousarray(hole))[None, None].to(torch.float32)
    return img * (1.0 - m), m


def _resize(img: torch.Tensor, m: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Image and hole mask to (h, w). Shrinking averages areas, enlarging is bilinear; a
    pixel whose footprint touches the hole becomes hole, so known pixels of the result are
    made of known pixels only (hole pixels are 0 in ``img``)."""
    if tuple(img.shape[-2:]) == (h, w):
        return img, m
    if h <= img.shape[-2] and w <= img.shape[-1]:
        img, m = F.interpolate(img, size=(h, w), mode="area"), F.interpolate(m, size=(h, w), mode="area")
    else:
        img = F.interpolate(img, size=(h, w), mode="bilinear", align_corners=False)
        m = F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)
    m = (m > 0).to(img.dtype)
    return img * (1.0 - m), m


def _pad_symmetric(t: torch.Tensor, bottom: int, right: int) -> torch.Tensor:
    """numpy's ``symmetric`` padding (edge pixel repeated, then mirrored) at the bottom and
    right of an (N, C, H, W) tensor; any size, as LaMa's ``pad_img_to_modulo``."""
    if bottom == 0 and right == 0:
        return t
    a = np.pad(t.numpy(), ((0, 0), (0, 0), (0, bottom), (0, right)), mode="symmetric")
    return torch.from_numpy(a)


def _paste(rgb: np.ndarray, hole: np.ndarray, fill: torch.Tensor, y0: int = 0, x0: int = 0) -> np.ndarray:
    """``rgb`` with the hole pixels inside the window at (y0, x0) of ``fill``'s size taken
    from ``fill`` ((1, 3, h, w) float in [0, 1]); every other pixel is ``rgb``'s, bit for bit."""
    out = rgb.copy()
    h, w = fill.shape[-2:]
    f = (fill[0].clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    win = hole[y0 : y0 + h, x0 : x0 + w]
    out[y0 : y0 + h, x0 : x0 + w][win] = f[win]
    return out


def _run(run: Run, x: torch.Tensor, device: torch.device | str | None) -> torch.Tensor:
    dev = device if device is not None else getattr(run, "device", "cpu")
    with torch.inference_mode():
        y = run(x.to(dev))
    return torch.as_tensor(y).detach().to("cpu", torch.float32)


def lama_side(n: int) -> int:
    """The padded side LaMa runs ``n`` pixels at: the next multiple of 8 up to 64, above that
    the next of eight sizes per octave (m * 2**e, m in 9..16: at most 12.5 % more).

    The reference pads to the next multiple of 8. Every distinct input shape is an ONNX
    export and a TensorRT build (minutes for big-lama), and the crops handed in differ by a
    few pixels from clip to clip; on this grid they share engines: at most 8 sides per octave.
    """
    if n <= 64:
        return -(-n // LAMA_MULTIPLE) * LAMA_MULTIPLE
    e = (n - 1).bit_length() - 4  # 2**(e + 3) < n <= 2**(e + 4), e >= 3: multiples of 8
    return -(-n // (1 << e)) << e


def lama_work_size(height: int, width: int, max_side: int = LAMA_MAX_SIDE) -> tuple[int, int, int, int]:
    """(h, w, hp, wp): the size LaMa sees a height x width image at (scaled to at most
    ``max_side`` on the long side) and that size padded up by :func:`lama_side`."""
    s = min(1.0, max_side / max(height, width))
    h, w = max(1, round(height * s)), max(1, round(width * s))
    return h, w, lama_side(h), lama_side(w)


def run_lama(rgb: np.ndarray, hole: np.ndarray, run: Run, max_side: int = LAMA_MAX_SIDE,
             device: torch.device | str | None = None) -> np.ndarray:
    """Fill ``hole`` of ``rgb`` with a LaMa network.

    rgb: (H, W, 3) uint8; hole: (H, W) bool, True = fill. run: (1, 4, hp, wp) float32 ->
    (1, 3, hp, wp) in [0, 1] (a :class:`~photo3d_fast.models.lama.LamaGenerator` or its
    engine), with (hp, wp) from :func:`lama_work_size`. device: where the input goes
    (default ``run.device``, else the CPU). Returns (H, W, 3) uint8: ``rgb`` outside the
    hole exactly, the network's fill (scaled back bicubically if it ran smaller) inside.
    """
    rgb, hole = _check(rgb, hole)
    if not hole.any():
        return rgb.copy()
    H, W = hole.shape
    h, w, hp, wp = lama_work_size(H, W, max_side)
    img, m = _resize(*_to_tensors(rgb, hole), h, w)
    img, m = _pad_symmetric(img, hp - h, wp - w), _pad_symmetric(m, hp - h, wp - w)
    y = _run(run, torch.cat([img, m], dim=1), device)[..., :h, :w]
    if (h, w) != (H, W):
        y = F.interpolate(y, size=(H, W), mode="bicubic", align_corners=False)
    return _paste(rgb, hole, y)


def migan_window(hole: np.ndarray, size: int) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1): the crop MI-GAN fills ``hole`` from, a square of side
    max(``size``, MIGAN_CONTEXT x the hole's bounding-box long side) centred on that box,
    moved inside the image and cut to it where the image is smaller. Contains the box."""
    ys, xs = np.nonzero(hole)
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    side = max(size, math.ceil(MIGAN_CONTEXT * max(y1 - y0, x1 - x0)))

    def span(lo: int, hi: int, n: int) -> tuple[int, int]:
        s = min(side, n)
        a = min(max(round((lo + hi - s) / 2), 0), n - s)
        return a, a + s

    (a, b), (c, d) = span(y0, y1, hole.shape[0]), span(x0, x1, hole.shape[1])
    return a, b, c, d


def run_migan(rgb: np.ndarray, hole: np.ndarray, run: Run, size: int = 512,
              device: torch.device | str | None = None) -> np.ndarray:
    """Fill ``hole`` of ``rgb`` with an MI-GAN network of input side ``size``.

    rgb: (H, W, 3) uint8; hole: (H, W) bool, True = fill. run: (1, 4, size, size) float32
    -> (1, 3, size, size) RGB about [-1, 1] (a :class:`~photo3d_fast.models.migan.MiganGenerator`
    or its engine). The crop :func:`migan_window` is padded to a square (``symmetric``) when
    the image is narrower than it, resized to size x size, filled, resized back bicubically.
    Returns (H, W, 3) uint8: ``rgb`` outside the hole exactly, the fill inside.
    """
    rgb, hole = _check(rgb, hole)
    if not hole.any():
        return rgb.copy()
    y0, y1, x0, x1 = migan_window(hole, size)
    img, m = _to_tensors(rgb[y0:y1, x0:x1], hole[y0:y1, x0:x1])
    ch, cw = y1 - y0, x1 - x0
    s = max(ch, cw)
    img, m = _pad_symmetric(img, s - ch, s - cw), _pad_symmetric(m, s - ch, s - cw)
    img, m = _resize(img, m, size, size)
    known = 1.0 - m
    x = torch.cat([known - 0.5, (img * 2.0 - 1.0) * known], dim=1)
    y = _run(run, x, device) * 0.5 + 0.5
    if s != size:
        y = F.interpolate(y, size=(s, s), mode="bicubic", align_corners=False)
    return _paste(rgb, hole, y[..., :ch, :cw], y0, x0)


def _spec(model: str) -> ModelSpec:
    return get_spec(model, task="inpaint")


def engine_input_shape(model: str, height: int, width: int) -> tuple[int, int, int, int]:
    """(1, 4, h, w): the engine input ``model`` needs for a height x width image (LaMa: its
    work size padded by :func:`lama_side`; MI-GAN: its fixed square)."""
    spec = _spec(model)
    if spec.input_size:
        return (1, spec.in_channels, spec.input_size, spec.input_size)
    _, _, hp, wp = lama_work_size(height, width)
    return (1, spec.in_channels, hp, wp)


def learned_inpaint_ready(model: str) -> bool:
    """Whether ``model``'s weights are here (the cache, or its package), without a download."""
    return available_locally(_spec(model))


def inpaint_learned(rgb: np.ndarray, hole: np.ndarray, model: str, engine: EngineOptions,
                    quiet: bool = True) -> np.ndarray:
    """Fill ``hole`` of ``rgb`` with the learned model ``model`` (one of ``INPAINT_MODELS``
    or an alias) through the engine layer.

    rgb: (H, W, 3) uint8 RGB; hole: (H, W) bool, True = fill. engine: runtime, precision,
    device and fetching as the depth models take them; ``engine.weights``, when set, is a
    weights file of *this* model (not of the depth model). Returns (H, W, 3) uint8, equal to
    ``rgb`` outside the hole. Missing weights are a Photo3DError naming the model,
    ``photo3d engines fetch`` and ``--weights``.
    """
    spec = _spec(model)
    rgb, hole = _check(rgb, hole)
    if not hole.any():
        return rgb.copy()
    shape = engine_input_shape(spec.name, *hole.shape)
    eng = load_engine(spec.name, shape, runtime=engine.runtime, precision=engine.precision, device=engine.device,
                      weights=Path(engine.weights) if engine.weights else None, fetch=engine.fetch, quiet=quiet)
    if spec.input_size:
        return run_migan(rgb, hole, eng, spec.input_size, device=eng.device)
    return run_lama(rgb, hole, eng, device=eng.device)
