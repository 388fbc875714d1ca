"""A clip as files: the video (and the PNG frames of ``--frames``) opened, written and
closed together, or aborted together so that a failed clip leaves nothing behind.

``write_clip`` is the one place that does this; ``render_clip`` (the Python API and
``photo3d render``), the batch workers and the preview's export all call it.
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .config import ClipOptions
from .depth import is_depth_method
from .device import resolve_device
from .encode.sink import FrameSink
from .encode.spherical import inject_vr180
from .encode.writers import PngFrameWriter, open_video
from .engines.registry import get_spec
from .engines.weights import weight_files
from .errors import Photo3DError, notice
from .io import check_output, load_image, remove_stale_partials
from .pipeline import SAMPLE_IMAGE, PreparedPhoto, engine_options, prepare_photo, render_into, video_size


class ClipWriter:
    """The outputs of one clip: ``open_video`` for ``out_path`` and, when ``opts.frames_dir``
    is set, a PngFrameWriter. Both are opened here, so a bad output path fails before any
    work. ``close()`` finishes them (the video first: a failing encoder then also removes
    the PNG frames); leaving the ``with`` block by an exception aborts every one not yet
    closed, which removes its partial files.

    inputs: the photo (and any other file the clip reads): an output that is one of them,
    or a directory, is refused. Temporary files of these outputs left by a killed process
    are removed, and the frames of an earlier run in ``opts.frames_dir`` (frame_NNNNN.png,
    which would otherwise mix with this run's), with a note.
    """

    def __init__(self, out_path: str | Path, opts: ClipOptions, size: tuple[int, int], quiet: bool = False,
                 inputs: Iterable[str | Path | None] = ()) -> None:
        out_path = Path(out_path)
        inputs = [*inputs, *option_files(opts)]
        check_output(out_path, inputs)
        if opts.render.vr180 and out_path.suffix.lower() not in (".mp4", ".mov"):
            raise Photo3DError(f"--vr180 clips are .mp4 or .mov (where headsets read the spherical-video metadata), "
                               f"not {out_path.suffix or 'a file without extension'}")
        remove_stale_partials(out_path.parent, lambda name: name == out_path.name)
        self.sinks: list[FrameSink] = []
        try:
            self.sinks.append(open_video(out_path, opts.path.fps, size, opts.encode, quiet=quiet,
                                         device=resolve_device(opts.render.device)))
            if opts.render.vr180:
                self.sinks[0].finalize = functools.partial(inject_vr180, layout=opts.render.stereo)
            if opts.frames_dir:
                _clear_frames(Path(opts.frames_dir), inputs, quiet)
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


def option_files(opts: ClipOptions) -> list[Path]:
    """The files a clip reads besides its photo: a depth map, a keyframe file."""
    files = [Path(opts.path.preset)] if opts.path.preset.lower().endswith(".json") else []
    if not is_depth_method(opts.depth.source):
        files.append(Path(opts.depth.source))
    return files


#: The PNG frames of a clip, as PngFrameWriter names them.
_FRAME = re.compile(r"frame_[0-9]{5,}\.png")


def _clear_frames(directory: Path, inputs: list, quiet: bool) -> None:
    """Remove the frames an earlier run left in ``directory`` (a longer clip's would stay
    beside this one's), and its temporary frames if that run was killed; other files stay.
    Photo3DError, before anything is removed, if one of them is an input."""
    if not directory.is_dir():
        return
    remove_stale_partials(directory, _FRAME.fullmatch)
    old = [p for p in directory.iterdir() if _FRAME.fullmatch(p.name) and p.is_file()]
    for p in old:
        check_output(p, inputs, "frame")
    for p in old:
        p.unlink(missing_ok=True)
    if old:
        notice(f"removed {len(old)} frames of an earlier run from {directory}", quiet)


@dataclass(frozen=True)
class ClipResult:
    """A finished clip: the video's path and the number of frames rendered."""

    path: Path
    frames: int


def write_clip(prepared: PreparedPhoto, opts: ClipOptions, out: str | Path | ClipWriter, *, quiet: bool = False,
               sinks: tuple[Any, ...] = (), inputs: Iterable[str | Path | None] = ()) -> ClipResult:
    """Render the clip of ``opts`` from ``prepared`` into its files and finish them.

    out: the video's path, or a ClipWriter opened earlier (``render_clip`` opens it before
    the depth stage). sinks: more frame sinks that only watch the frames (the preview's
    progress counter). inputs: the photo's file, which no output may be. On any exception,
    KeyboardInterrupt included, the outputs are aborted and the exception propagates.
    """
    writer = out if isinstance(out, ClipWriter) else ClipWriter(out, opts, video_size(prepared, opts), quiet, inputs)
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
    "frames"), stereo ("none", "sbs", "half-sbs", "tb", "half-tb", "anaglyph"), ipd and
    convergence (scene units). Returns the path of the finished clip.
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
    with ClipWriter(out_path, opts, video_size(photo, opts), quiet, [image_path]) as writer:
        prepared = prepare_photo(photo, image_path.name, opts.scene, opts.depth,
                                 engine_options(opts.engine, opts.render), quiet)
        result = write_clip(prepared, opts, writer, quiet=quiet)
    notice(f"wrote {result.path} in {time.perf_counter() - t0:.1f} s", quiet)
    return result.path
