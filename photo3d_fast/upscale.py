"""Tiled super-resolution, independent of the runtime that runs the network.

The image is cut into fixed-size square tiles, so that a compiled fixed-shape engine
(TensorRT, ONNX Runtime, ...) runs every tile, edge tiles and images smaller than one
tile included. Neighbouring tiles overlap by ``2 * overlap`` pixels and each keeps only
its centre (its "core"): a core pixel whose receptive field fits in ``overlap`` pixels is
computed exactly as a whole-image pass would compute it, so there are no seams.

Outside the image, tiles read the image mirrored at its border (reflection without
repeating the edge pixel, as Real-ESRGAN-ncnn-vulkan pads its tiles). The result is
therefore what one whole-image pass over the image reflect-padded by ``overlap`` gives,
cropped back, up to the receptive-field truncation at tile borders.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from .depth.backends import EngineOptions
from .device import resolve_device
from .engines import load_engine
from .engines.registry import get_spec
from .errors import Photo3DError

Runner = Callable[[torch.Tensor], torch.Tensor]


def tile_starts(length: int, core: int) -> list[int]:
    """Starts of the cores along one axis of ``length`` pixels, cores ``core`` pixels wide.

    Cores are laid edge to edge from 0; the last one is moved back to end at ``length``
    (overlapping its neighbour) rather than running past the image, which would spend a
    tile's work on padding. A ``length`` <= ``core`` gives one core at 0.
    """
    starts = list(range(0, max(length - core, 0), core))
    starts.append(max(length - core, 0))
    return starts


def reflect_index(index: torch.Tensor, n: int) -> torch.Tensor:
    """Map integer positions (any, also far outside) into [0, n) by mirroring at the borders.

    Mirror without repeating the edge (-1 -> 1, n -> n - 2), folded repeatedly so that a
    pad wider than the image (an image smaller than a tile) still has a defined value.
    """
    if n == 1:
        return torch.zeros_like(index)
    period = 2 * (n - 1)
    index = index.remainder(period)
    return torch.where(index >= n, period - index, index)


def _check_options(scale: int, tile: int, overlap: int, batch: int) -> int:
    if scale < 1 or tile < 1 or batch < 1 or overlap < 0:
        raise Photo3DError(f"bad upscale options: scale={scale}, tile={tile}, overlap={overlap}, batch={batch} "
                           "(scale, tile and batch must be >= 1, overlap >= 0)")
    core = tile - 2 * overlap
    if core < 1:
        raise Photo3DError(f"upscale tile {tile} leaves no core after an overlap of {overlap} on each side; "
                           f"use a tile larger than {2 * overlap} or a smaller overlap")
    return core


def _tiled(x: torch.Tensor, run: Runner, scale: int, tile: int, overlap: int, batch: int, device: str | torch.device,
           progress: bool) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Run ``x`` (C, H, W) float32 CPU tile by tile, yielding every core as ``(y, x, block)``.

    ``block`` is (C_out, s*h, s*w) float32 on the CPU for the core whose top-left output
    pixel is (y, x) = (s*row, s*col); together the blocks cover the whole output.
    """
    from tqdm import tqdm

    core = _check_options(scale, tile, overlap, batch)
    _, h, w = x.shape
    offsets = torch.arange(tile) - overlap
    tiles = [(ty, tx) for ty in tile_starts(h, core) for tx in tile_starts(w, core)]
    expected: tuple[int, ...] | None = None
    with tqdm(total=len(tiles), unit="tile", desc="upscale", disable=not progress) as bar:
        for first in range(0, len(tiles), batch):
            chunk = tiles[first:first + batch]
            # Fixed-shape engines need every call to have the same batch: repeat the last tile.
            padded = chunk + [chunk[-1]] * (batch - len(chunk))
            inp = torch.stack([x[:, reflect_index(ty + offsets, h)][:, :, reflect_index(tx + offsets, w)]
                               for ty, tx in padded])
            with torch.inference_mode():
                out = run(inp.to(device))
            if expected is None:
                expected = (batch, out.shape[1] if out.ndim == 4 else -1, scale * tile, scale * tile)
            if out.ndim != 4 or tuple(out.shape) != expected:
                raise Photo3DError(f"the upscale network returned shape {tuple(out.shape)} for input {tuple(inp.shape)}; "
                                   f"expected ({batch}, C, {scale * tile}, {scale * tile}) for scale {scale} "
                                   "(does the model's scale match?)")
            out = out.float().cpu()
            o = scale * overlap
            for (ty, tx), block in zip(chunk, out):
                ch, cw = min(core, h - ty), min(core, w - tx)
                yield scale * ty, scale * tx, block[:, o:o + scale * ch, o:o + scale * cw]
            bar.update(len(chunk))


def upscale_tensor(x: torch.Tensor, run: Runner, scale: int, tile: int = 256, overlap: int = 16, batch: int = 1,
                   device: str | torch.device = "cpu", progress: bool = False) -> torch.Tensor:
    """Super-resolve a float image tile by tile.

    x: (C, H, W) or (N, C, H, W) float, nominally [0, 1], any device.
    run: (batch, C, tile, tile) float32 on ``device`` -> (batch, C_out, scale*tile, scale*tile);
        always called with exactly that shape.
    Returns float32 on the CPU, (C_out, scale*H, scale*W) (or with N in front), unclamped.
    """
    if x.ndim not in (3, 4):
        raise ValueError(f"x must be (C, H, W) or (N, C, H, W), got shape {tuple(x.shape)}")
    images = x.detach().float().cpu()
    images = images[None] if x.ndim == 3 else images
    results = []
    for image in images:
        out: torch.Tensor | None = None
        for y, x0, block in _tiled(image, run, scale, tile, overlap, batch, device, progress):
            if out is None:  # the channel count is known only once the network has run
                out = torch.empty(block.shape[0], scale * image.shape[1], scale * image.shape[2])
            out[:, y:y + block.shape[1], x0:x0 + block.shape[2]] = block
        results.append(out)
    stacked = torch.stack(results)
    return stacked[0] if x.ndim == 3 else stacked


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] float -> uint8, rounding half up and clamping (as Real-ESRGAN-ncnn-vulkan)."""
    return (x * 255.0 + 0.5).floor_().clamp_(0, 255).to(torch.uint8)


def upscale_image(rgb: np.ndarray, run: Runner, scale: int, tile: int = 256, overlap: int = 16, batch: int = 1,
                  device: str | torch.device = "cpu", progress: bool = False) -> np.ndarray:
    """Super-resolve an RGB image tile by tile: (H, W, 3) uint8 -> (scale*H, scale*W, 3) uint8.

    ``run`` gets (batch, 3, tile, tile) float32 RGB in [0, 1] on ``device`` and returns
    (batch, 3, scale*tile, scale*tile); see :func:`upscale_tensor`. Each core is rounded to
    uint8 as soon as it is computed, so memory stays at one uint8 output image.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    h, w, _ = rgb.shape
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)
    out = np.empty((scale * h, scale * w, 3), dtype=np.uint8)

    for y, x0, block in _tiled(x, run, scale, tile, overlap, batch, device, progress):
        if block.shape[0] != 3:
            raise Photo3DError(f"the upscale network returned {block.shape[0]} channels, expected 3 (RGB)")
        out[y:y + block.shape[1], x0:x0 + block.shape[2]] = to_uint8(block).permute(1, 2, 0).numpy()
    return out


def upscale_engine(model: str, options=None, *, tile: int = 256, quiet: bool = False):
    """(engine, spec, batch) of the upscale model ``model`` (registry name or alias:
    "x4plus", "animevideov3") for ``batch`` tiles of tile x tile pixels; ``options``
    (``depth.EngineOptions``) picks runtime, precision and device. Resolve it once and
    reuse it for many images: the lookup stats the weight files."""

    options = options or EngineOptions()
    spec = get_spec(model, task="upscale")
    # A GPU takes several tiles per launch at about the cost of one; a CPU gains nothing.
    batch = 4 if resolve_device(options.device).type == "cuda" else 1
    engine = load_engine(spec.name, (batch, 3, tile, tile), runtime=options.runtime, precision=options.precision,
                         device=options.device, fetch=False, quiet=quiet)
    return engine, spec, batch


def upscale_with_model(rgb: np.ndarray, model: str, options=None, *, tile: int = 256, overlap: int = 16,
                       quiet: bool = False) -> tuple[np.ndarray, str]:
    """Super-resolve ``rgb`` ((H, W, 3) uint8) with the upscale model ``model`` through the
    engine layer (see ``upscale_engine``). Returns ((sH, sW, 3) uint8, a note naming model,
    runtime and precision)."""
    engine, spec, batch = upscale_engine(model, options, tile=tile, quiet=quiet)
    out = upscale_image(rgb, engine, spec.scale, tile=tile, overlap=overlap, batch=batch, device=engine.device,
                        progress=not quiet)
    return out, f"{spec.name} on {engine.runtime} {engine.precision}"
