"""Video and PNG-sequence writers, and ``open_video``, the entry point that picks one.

- ``open_video(path, fps, size, config)``: resolves ``config.encoder`` (``auto`` probes and
  says what it chose) and returns a ``VideoWriter`` (ffmpeg: x264, x265, SVT-AV1, VP9,
  *_nvenc, gif, webp) or an ``NvencWriter`` (PyNvVideoCodec).
- ``VideoWriter``: raw RGB frames piped into the ffmpeg binary from imageio-ffmpeg.
- ``PngFrameWriter``: frame_00000.png, ...

All of them are ``sink.FrameSink``s: bounded queue, writer thread, atomic output.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import torch

from ..config import EncodeConfig
from ..errors import Photo3DError, notice, warn
from .formats import OutputPlan, ffmpeg_exe, ffmpeg_rate, plan_output, quality_args
from .nvenc import NvencWriter
from .sink import FfmpegSink, FrameSink


def open_video(path: str | os.PathLike, fps: float, size: tuple[int, int],
               config: EncodeConfig = EncodeConfig(), queue_size: int = 8, quiet: bool = False,
               device: torch.device | str | None = None):
    """A video sink for ``path``: NvencWriter or VideoWriter, as ``config.encoder`` says.

    With encoder "auto", probes NVENC (PyNvVideoCodec), then ffmpeg's *_nvenc, then takes
    the CPU encoder of the codec, and prints on stderr what it chose and why (unless quiet).
    device: where the frames will be (the renderer's device); NVENC opens its session on
    that GPU.
    """
    plan = plan_output(path, config, size=size)
    if config.encoder == "auto" and plan.kind not in ("gif", "webp"):
        notice(f"encoder: {plan.describe()}", quiet)
    if plan.kind == "nvenc":
        return NvencWriter(path, fps, size, config, queue_size=queue_size, plan=plan, device=device)
    return VideoWriter(path, fps, size, config, queue_size=queue_size, plan=plan)




class VideoWriter(FfmpegSink):
    """Streams RGB frames into ffmpeg (the binary from imageio-ffmpeg) through a writer thread.

    path: output .mp4/.mov/.mkv/.webm/.gif/.webp; fps: frames per second; size: (W, H) in
    pixels of the frames that will be written; config: EncodeConfig (encoder auto: the
    hardware *_nvenc encoder of ffmpeg when it works, else libx264 for .mp4; see
    ``photo3d_fast.encode.formats``; the PyNvVideoCodec encoder is opened by ``open_video``).
    Frames go to ffmpeg's stdin as raw rgb24, converted to the output format with the
    BT.709 matrix (limited range) and tagged so, which is what players assume for video;
    .gif gets a palette computed over the clip, .webp lossy WebP at quality 90.
    Context manager: on normal exit the file is finalised and renamed to `path`; on an
    exception (KeyboardInterrupt included) ffmpeg is killed and reaped and the temporary
    file removed.
    """

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int],
                 config: EncodeConfig = EncodeConfig(), queue_size: int = 8,
                 plan: OutputPlan | None = None) -> None:
        self.config = config
        plan = plan or plan_output(path, config, allow_nvenc=False, size=size)
        self._label = f"ffmpeg ({plan.encoder})"
        super().__init__(path, fps, size, queue_size, plan)

    def _command(self) -> list[str]:
        cfg, plan, (w, h) = self.config, self.plan, self.size
        filters, out_fmt = [], []
        if plan.kind == "gif":
            # one palette for the whole clip, from the pixels that change (stats_mode=diff)
            filters.append("split[a][b];[a]palettegen=stats_mode=diff[p];[b][p]paletteuse=dither=sierra2_4a")
        elif plan.kind == "webp":
            out_fmt = ["-pix_fmt", "bgra"]  # libwebp converts to its own YUV itself
        else:
            if "420" in cfg.pix_fmt or cfg.pix_fmt in ("nv12", "nv21"):  # 2x2 chroma needs even sizes
                ew, eh = w - w % 2, h - h % 2
                if (ew, eh) != (w, h):
                    filters.append(f"crop={ew}:{eh}:0:0")
                    warn(f"{cfg.pix_fmt} needs an even width and height; {w}x{h} frames are "
                         f"cropped to {ew}x{eh} in {self.path.name}")
            # swscale's default matrix is BT.601 while players assume BT.709 for untagged HD
            # video, a visible hue shift; convert with BT.709 and say so in the stream.
            if cfg.pix_fmt.startswith(("yuv", "nv")):
                filters += ["scale=out_color_matrix=bt709:out_range=tv", "setparams=range=tv:"
                            "color_primaries=bt709:color_trc=bt709:colorspace=bt709"]
            out_fmt = ["-pix_fmt", cfg.pix_fmt]
        cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", ffmpeg_rate(self.fps),
               "-i", "-", "-an", "-c:v", plan.encoder, *quality_args(plan, cfg)]
        if plan.encoder == "libx265":
            cmd += ["-x265-params", "log-level=error"]
        cmd += (["-vf", ",".join(filters)] if filters else []) + out_fmt
        return cmd + self._container_args()


class PngFrameWriter(FrameSink):
    """Writes frame_00000.png, frame_00001.png, ... (RGB, 8 bit) into `directory`.

    The directory is created if missing. Each file is written under a temporary name and
    renamed, in a writer thread. size: (W, H) of the frames, or None to take it from the
    first frame. Same write/close/abort/context-manager interface as VideoWriter; abort
    removes the frames this writer wrote (and the directory if it created it), so a
    failed clip never looks like a short complete one.
    """

    def __init__(self, directory: str | os.PathLike, size: tuple[int, int] | None = None,
                 queue_size: int = 8) -> None:
        super().__init__(size, queue_size)
        self.directory = self._target = Path(directory).absolute()
        # the directories we create, deepest first, so abort can remove exactly those
        self._created = [d for d in (self.directory, *self.directory.parents) if not d.exists()]
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            probe = self.directory / f".write-test-{os.getpid()}"
            os.close(os.open(probe, os.O_CREAT | os.O_WRONLY, 0o644))
            probe.unlink()
        except OSError as e:
            raise Photo3DError(f"cannot write PNG frames to {self.directory} ({e.strerror}); "
                               f"check its permissions or choose another directory") from e
        self._written: list[Path] = []
        self._thread.start()

    def _consume(self, frame: np.ndarray) -> None:
        from PIL import Image

        final = self.directory / f"frame_{len(self._written):05d}.png"
        tmp = final.with_name(f".{final.name}.partial-{os.getpid()}")
        try:
            # compress_level 1: ~4x faster than the default 6 at 960x540, files ~40% larger
            Image.fromarray(frame).save(tmp, format="PNG", compress_level=1)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        self._written.append(final)

    def _finish(self) -> Path:
        return self.directory

    def _cleanup(self) -> None:
        for p in self._written:
            p.unlink(missing_ok=True)
        for p in self.directory.glob(f".frame_*.png.partial-{os.getpid()}"):
            p.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty: someone else put files there
            for d in self._created:
                d.rmdir()
