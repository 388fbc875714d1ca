"""NVENC through PyNvVideoCodec, fed from CUDA memory: RGB -> NV12 on the GPU, H.264/HEVC
bitstream out, muxed into .mp4/.mov/.mkv by the ffmpeg binary with ``-c copy``.

Needs: ``pip install photo3d_fast[nvenc]`` (PyNvVideoCodec), an NVIDIA GPU *with an NVENC
engine* and its driver. Data-centre compute GPUs (A100, H100, H200) have no NVENC; on
those `--encoder auto` falls back to the CPU encoders and says so.

The API used is PyNvVideoCodec's documented one (CreateEncoder(width, height, "NV12",
usecpuinputbuffer=False, **options), Encode, EndEncode). The tests run the plumbing (NV12
conversion, bitstream queue, muxing, failure cleanup) with a stand-in module backed by
libx264; the README's table says how far the real library has been run.

Per frame, nothing but the compressed bitstream crosses to the host: the caller's thread
converts the frame to NV12 (the op ``nv12``, its fastest implementation on the GPU) and
calls Encode; the bitstream goes through the writer thread's queue into ffmpeg's stdin.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from ..config import EncodeConfig, parse_bitrate
from ..errors import Photo3DError, warn
from ..ops.backends import select
from .formats import OutputPlan, ffmpeg_exe, ffmpeg_rate, nvenc_preset, plan_output, quality
from .pynvvideocodec import encoder_device, import_pynvvideocodec
from .sink import FfmpegSink

#: NV12 surfaces cycled per frame. Encode copies a surface on PyNvVideoCodec's own stream
#: and NVENC holds several frames (B-frames, lookahead) before returning their bitstream,
#: so a surface may still be read after Encode returns; the next conversions run on torch's
#: stream and must not overwrite it. A ring deeper than the encoder's delay keeps them apart.
NV12_RING = 8


def encoder_options(plan: OutputPlan, config: EncodeConfig, fps: float, device: Any) -> dict[str, str]:
    """CreateEncoder keyword options (PyNvVideoCodec takes them as strings)."""
    opts = {"codec": plan.codec, "preset": nvenc_preset(config.encoder_preset).upper(),
            "tuning_info": "high_quality", "fps": str(max(1, round(fps))), "colorspace": "bt709"}
    if device.type == "cuda":
        opts["gpu_id"] = str(device.index or 0)  # PyNvVideoCodec 2.x's name; unknown keys are ignored
    if plan.codec == "hevc":
        # ffmpeg's raw HEVC demuxer cannot time B-frames of an elementary stream (frames are
        # dropped or left without timestamps in the -c copy mux); HEVC goes IPPP.
        opts["bf"] = "0"
    if config.bitrate:
        bits = parse_bitrate(config.bitrate)
        opts.update(rc="vbr", bitrate=str(bits), maxbitrate=str(bits * 3 // 2))
    else:
        opts.update(rc="constqp", constqp=str(quality(plan, config)))
    return opts


class NvencWriter(FfmpegSink):
    """Encodes RGB frames with NVENC (PyNvVideoCodec) from CUDA memory; same interface as
    VideoWriter (write/close/abort, context manager, atomic output).

    Frames may be CUDA tensors (no copy to the host) or host arrays (uploaded). Odd sizes
    are cropped to even (NV12 has 2x2 chroma blocks). Quality: constant QP (``crf``, default
    21) or a bitrate (VBR); preset p1..p7 (x264 names are mapped). The container's timing
    comes from the mux (exact rational fps); NVENC's rate control gets the rounded fps.
    """

    _label = "ffmpeg mux (-c copy)"

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int],
                 config: EncodeConfig = EncodeConfig(encoder="nvenc"), queue_size: int = 8,
                 plan: OutputPlan | None = None, gpu_id: int | None = None,
                 device: torch.device | str | None = None) -> None:
        plan = plan or plan_output(path, config, size=size)
        if plan.kind != "nvenc":
            raise Photo3DError(f"NvencWriter got a plan for {plan.kind}; use open_video")
        if config.pix_fmt not in ("yuv420p", "nv12"):
            raise Photo3DError(f"--encoder nvenc encodes 4:2:0 (NV12) only; pixel format "
                               f"{config.pix_fmt} needs a CPU encoder (--encoder x264/x265)")
        nvc = import_pynvvideocodec()
        # The session opens on the GPU the frames are on (``device``), not the current one.
        if gpu_id is None and device is not None and torch.device(device).type == "cuda":
            gpu_id = torch.device(device).index
        self._device = encoder_device(gpu_id)
        self.config = config
        w, h = int(size[0]), int(size[1])
        self._crop = (w - w % 2, h - h % 2)
        if self._crop != (w, h):
            warn(f"NV12 needs an even width and height; {w}x{h} frames are cropped to "
                 f"{self._crop[0]}x{self._crop[1]} in {os.path.basename(path)}")
        self._nv12: list[torch.Tensor] = []  # the ring, filled as frames come (NV12_RING)
        self._convert = select("nv12", "auto", self._device)[1].rgb_to_nv12
        try:
            self._enc = nvc.CreateEncoder(self._crop[0], self._crop[1], "NV12", False,
                                          **encoder_options(plan, config, fps, self._device))
        except Exception as e:  # noqa: BLE001
            raise Photo3DError(f"NVENC (PyNvVideoCodec, {plan.codec}) did not open: "
                               f"{type(e).__name__}: {e}; --encoder auto picks a working encoder") from e
        super().__init__(path, fps, size, queue_size, plan)

    def _command(self) -> list[str]:
        codec = self.plan.codec
        # The elementary stream carries no timestamps, and its VUI timing holds NVENC's
        # integer fps: input -r makes the mux generate them from the exact rate (30000/1001
        # stays rational). The metadata filter writes the colour description into the
        # stream's VUI so players undo BT.709 limited range with left chroma siting.
        vui = (f"{codec}_metadata=colour_primaries=1:transfer_characteristics=1:"
               "matrix_coefficients=1:video_full_range_flag=0:chroma_sample_loc_type=0")
        rate = ffmpeg_rate(self.fps)
        return [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
                "-fflags", "+genpts", "-f", codec, "-framerate", rate, "-r", rate, "-i", "-",
                "-an", "-c:v", "copy", "-bsf:v", vui, *self._container_args()]

    def _stage(self, frame: Any) -> bytes:
        if not isinstance(frame, torch.Tensor):
            frame = torch.from_numpy(frame)
        w, h = self._crop
        rgb = frame[:h, :w].to(self._device, non_blocking=True)
        try:
            slot = self.n_frames % NV12_RING
            if slot == len(self._nv12):
                self._nv12.append(torch.empty((h * 3 // 2, w), dtype=torch.uint8, device=rgb.device))
            nv12 = self._convert(rgb, out=self._nv12[slot])
            if rgb.is_cuda:
                # Encode reads the surface on PyNvVideoCodec's own stream: make the
                # conversion, queued on torch's current stream, finish first.
                torch.cuda.current_stream(rgb.device).synchronize()
            return bytes(bytearray(self._enc.Encode(nv12)))
        except Photo3DError:
            raise
        except Exception as e:  # noqa: BLE001
            raise Photo3DError(f"NVENC (PyNvVideoCodec, {self.plan.codec}) failed on frame "
                               f"{self.n_frames} of {self.path.name}: {type(e).__name__}: {e}; "
                               f"nothing was saved") from e

    def _flush(self) -> None:
        try:
            tail = bytes(bytearray(self._enc.EndEncode()))
        except Exception as e:  # noqa: BLE001
            raise Photo3DError(f"NVENC (PyNvVideoCodec, {self.plan.codec}) failed to flush "
                               f"{self.path.name}: {type(e).__name__}: {e}; nothing was saved") from e
        if tail:
            self._queue.put(tail)

    def _stop_backend(self) -> None:
        self._enc = None  # the session closes when PyNvVideoCodec's object is freed
        super()._stop_backend()


__all__ = ["NvencWriter"]
