"""A clip as files: the video (and the PNG frames of ``--frames``) opened, written and
closed together, or aborted together so that a failed clip leaves nothing behind.

``write_clip`` is the one place that does this; ``render_clip`` (the Python API and
``photo3d render``), the batch workers and the preview's export all call it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ClipOptions
from .device import resolve_device
from .encode.sink import FrameSink
from .encode.writers import PngFrameWriter, open_video
from .engines.registry import get_spec
from .engines.weights import weight_files
from .errors import notice
from .io import load_image
from .pipeline import SAMPLE_IMAGE, PreparedPhoto, engine_options, output_size, prepare_photo, render_into


class ClipWriter:
    """The outputs of one clip: ``open_video`` for ``out_path`` and, when ``opts.frames_dir``
    is set, a PngFrameWriter. Both are opened here, so a bad output path fails before any
    work. ``close()`` finishes them (the video first: a failing encoder then also removes
    the PNG frames); leaving the ``with`` block by an exception aborts every one not yet
    closed, which removes its partial files."""

    def __init__(self, out_path: str | Path, opts: ClipOptions, size: tuple[int, int], quiet: bool = False) -> None:
        self.sinks: list[FrameSink] = []
        try:
            self.sinks.append(open_video(out_path, opts.path.fps, size, opts.encode, quiet=quiet,
                                         device=resolve_device(opts.render.device)))
            if opts.frames_dir:
                self.sinks.append(PngFrameWriter(opts.frames_dir, size))
        except BaseException:
            self.abort()
            raise

    def close(self) -> Path:
        """Finish every output; the path of the video."""
        try:
            video = self.sinks[0].close()
            for sink in self.sinks[1:]:
                sink.close()
        except BaseException:
            self.abort()
            raise
        return video

    def abort(self) -> None:
        """Remove what the outputs not yet closed have written. Idempotent."""
        for sink in self.sinks:
            sink.abort()

    def __enter__(self) -> "ClipWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close() if exc_type is None else self.abort()


@dataclass(frozen=True)
class ClipResult:
    """A finished clip: the video's path and the number of frames rendered."""

    path: Path
    frames: int


def write_clip(prepared: PreparedPhoto, opts: ClipOptions, out: str | Path | ClipWriter, *, quiet: bool = False,
               sinks: tuple[Any, ...] = ()) -> ClipResult:
    """Render the clip of ``opts`` from ``prepared`` into its files and finish them.

    out: the video's path, or a ClipWriter opened earlier (``render_clip`` opens it before
    the depth stage). sinks: more frame sinks that only watch the frames (the preview's
    progress counter). On any exception, KeyboardInterrupt included, the outputs are
    aborted and the exception propagates.
    """
    writer = out if isinstance(out, ClipWriter) else ClipWriter(out, opts, output_size(prepared, opts), quiet)
    with writer:
        frames = render_into(prepared, opts, [*writer.sinks, *sinks], quiet)
        return ClipResult(writer.close(), frames)


def render_clip(image_path: str | Path | None, out_path: str | Path, *, quiet: bool = False,
                options: ClipOptions | None = None, **flat: Any) -> Path:
    """Render a parallax clip of one photo.

    image_path: the photo (None: the bundled sample photo); out_path: the clip to write
    (written under a temporary name and renamed when complete). Options are either
    ``options`` (a ClipOptions) or keywords by their flat names (``config.OPTIONS``, as
    the CLI's flags): path (preset or keyframe JSON), duration, fps, amount, focus, size
    (W, H), fov, near, far, layers, kernels, device, depth ("auto", "cues", a depth model
    or a depth-map file), depth_kind, frames (a directory for PNG frames), encoder, codec,
    crf, bitrate, encoder_preset, pix_fmt, runtime, precision, weights (of the depth
    model), upscale ("none", "x4plus", "animevideov3"), upscale_mode ("texture",
    "frames"). Returns the path of the finished clip.
    """
    if options is not None and flat:
        raise TypeError("render_clip takes options=ClipOptions(...) or keyword options, not both")
    opts = options if options is not None else ClipOptions.from_flat(flat)
    t0 = time.perf_counter()
    image_path = SAMPLE_IMAGE if image_path is None else Path(image_path)
    photo = load_image(image_path)
    resolve_device(opts.render.device)  # a missing GPU fails now, not after depth
    if opts.engine.upscale != "none":  # a missing upscale extra fails now, not after depth
        weight_files(get_spec(opts.engine.upscale, task="upscale"), fetch=False)
    # The outputs are opened first: a bad output path fails now, not after the depth stage.
    with ClipWriter(out_path, opts, output_size(photo, opts), quiet) as writer:
        prepared = prepare_photo(photo, image_path.name, opts.scene, opts.depth,
                                 engine_options(opts.engine, opts.render), quiet)
        result = write_clip(prepared, opts, writer, quiet=quiet)
    notice(f"wrote {result.path} in {time.perf_counter() - t0:.1f} s", quiet)
    return result.path
