"""``photo3d stereo``: one stereo image of a photo (both eyes at the photo's own viewpoint),
in any --stereo layout, or as a VR180 pair of half spheres.

It is a clip of one frame at the rest pose (every path starts at the photo's view), so the
scene, the eyes and the layouts are exactly a clip's; only the output is an image.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import ClipOptions, PathConfig
from .device import resolve_device
from .errors import notice
from .io import check_image_output, load_image, write_image
from .pipeline import SAMPLE_IMAGE, engine_options, prepare_photo, render_into, video_size


class _Frames:
    """A sink that keeps the frames written to it, as (H, W, 3) uint8 arrays."""

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []

    def write(self, frame: torch.Tensor | np.ndarray) -> None:
        self.frames.append(frame.cpu().numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame))


def still_options(options: ClipOptions) -> ClipOptions:
    """``options`` for one frame at the photo's own viewpoint: the path's motion is cleared
    (its first pose is the rest pose) and sbs is the layout when none is given."""
    render = options.render if options.render.stereo != "none" else replace(options.render, stereo="sbs")
    return replace(options, render=render, path=PathConfig(duration=1.0, fps=1.0, amount=0.0, focus=options.path.focus))


def render_stereo(image_path: str | Path | None, out_path: str | Path, *, quiet: bool = False,
                  options: ClipOptions | None = None, **flat: Any) -> Path:
    """Write a stereo image of one photo to ``out_path`` (.png, .jpg, .webp, .tif) and return it.

    Options as ``render_clip``'s (flat names or ``options=ClipOptions``); the stereo ones
    matter here: stereo (default sbs here), ipd, convergence, vr180, size (of each eye's
    view), and those of the scene. Motion options are ignored: both eyes sit at the photo's
    own viewpoint, ipd/2 to each side. image_path None: the bundled photo.
    """
    if options is not None and flat:
        raise TypeError("render_stereo takes options=ClipOptions(...) or keyword options, not both")
    if options is None:
        flat["stereo"] = flat.get("stereo") or "sbs"
    opts = still_options(options if options is not None else ClipOptions.from_flat(flat))
    t0 = time.perf_counter()
    out_path = Path(out_path)
    image_path = SAMPLE_IMAGE if image_path is None else Path(image_path)
    check_image_output(out_path, [image_path], "stereo image")
    photo = load_image(image_path)
    resolve_device(opts.render.device)
    size = video_size(photo, opts)  # a layout over the size limit fails now, not after depth
    prepared = prepare_photo(photo, image_path.name, opts.scene, opts.depth,
                             engine_options(opts.engine, opts.render), quiet)
    sink = _Frames()
    render_into(prepared, opts, [sink], quiet=quiet)
    frame = sink.frames[0]
    if (frame.shape[1], frame.shape[0]) != size:
        raise RuntimeError(f"rendered {frame.shape[1]}x{frame.shape[0]}, planned {size[0]}x{size[1]}")
    write_image(out_path, frame)
    notice(f"wrote {out_path} ({size[0]}x{size[1]}, stereo {opts.render.stereo}"
           + (", VR180" if opts.render.vr180 else "") + f") in {time.perf_counter() - t0:.1f} s", quiet)
    return out_path
