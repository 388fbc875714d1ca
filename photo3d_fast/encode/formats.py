"""Which encoder, codec and container a clip gets: the rules, the probes, the `auto` choice.

The output extension picks the container; the container allows some codecs; each encoder
kind makes one or more codecs:

| kind | makes | with |
| --- | --- | --- |
| nvenc | h264, hevc | PyNvVideoCodec from CUDA memory (``photo3d_fast.encode.nvenc``) |
| ffmpeg-nvenc | h264, hevc, av1 | h264_nvenc / hevc_nvenc / av1_nvenc in the ffmpeg binary |
| x264, x265, svtav1, vpx | h264, hevc, av1, vp9 | libx264, libx265, libsvtav1, libvpx-vp9 |
| gif, webp | previews | ffmpeg's gif (palettegen/paletteuse) and libwebp_anim |

``auto`` tries, in order, nvenc (a session opens and encodes a frame), ffmpeg-nvenc (the
binary encodes one tiny frame), then the CPU encoder of the codec, and says why.
"""

from __future__ import annotations

import functools
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..config import CODEC_CHOICES, EncodeConfig
from ..errors import Photo3DError
from . import pynvvideocodec

#: extension -> (ffmpeg muxer, codecs it holds); the first codec is the default.
CONTAINERS = {
    ".mp4": ("mp4", ("h264", "hevc", "av1")),
    ".mov": ("mov", ("h264", "hevc", "av1")),
    ".mkv": ("matroska", ("h264", "hevc", "av1", "vp9")),
    ".webm": ("webm", ("av1", "vp9")),
    ".gif": ("gif", ("gif",)),
    ".webp": ("webp", ("webp",)),
}
#: encoder kind -> {codec: ffmpeg encoder name (PyNvVideoCodec for nvenc)}
KINDS = {
    "nvenc": {"h264": "PyNvVideoCodec", "hevc": "PyNvVideoCodec"},
    "ffmpeg-nvenc": {"h264": "h264_nvenc", "hevc": "hevc_nvenc", "av1": "av1_nvenc"},
    "x264": {"h264": "libx264"},
    "x265": {"hevc": "libx265"},
    "svtav1": {"av1": "libsvtav1"},
    "vpx": {"vp9": "libvpx-vp9"},
    "gif": {"gif": "gif"},
    "webp": {"webp": "libwebp_anim"},
}
#: the CPU encoder of each codec, the last resort of `auto`
#: Largest frame side NVENC encodes, per codec (NVIDIA's Video Codec SDK: H.264 4096x4096,
#: HEVC and AV1 8192x8192, on every GPU generation with NVENC that supports the codec).
NVENC_MAX_SIDE = {"h264": 4096, "hevc": 8192, "av1": 8192}
CPU_KIND = {"h264": "x264", "hevc": "x265", "av1": "svtav1", "vp9": "vpx", "gif": "gif", "webp": "webp"}
#: default quality (crf; constant-quality cq for NVENC) per ffmpeg encoder: visually
#: lossless-ish for x264, the same look for the others (their scales differ)
DEFAULT_CRF = {"libx264": 18, "libx265": 20, "libsvtav1": 30, "libvpx-vp9": 31,
               "h264_nvenc": 21, "hevc_nvenc": 23, "av1_nvenc": 30, "PyNvVideoCodec": 21}
MAX_CRF = {"libsvtav1": 63, "libvpx-vp9": 63, "av1_nvenc": 63}
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
_SVT_PRESET = dict(zip(X264_PRESETS, (12, 11, 10, 10, 9, 8, 6, 5, 4)))
_VPX_CPU_USED = dict(zip(X264_PRESETS, (8, 7, 6, 5, 4, 3, 2, 1, 0)))
_NVENC_PRESET = dict(zip(X264_PRESETS, ("p1", "p2", "p3", "p3", "p4", "p5", "p6", "p7", "p7")))


@dataclass(frozen=True)
class OutputPlan:
    """What one output will be. kind: encoder kind; codec: h264/hevc/av1/vp9/gif/webp;
    encoder: ffmpeg encoder name (or PyNvVideoCodec); muxer: ffmpeg muxer; why: how
    `auto` chose (empty when the user chose)."""

    kind: str
    codec: str
    encoder: str
    muxer: str
    suffix: str
    why: str = ""

    def describe(self) -> str:
        what = f"{self.kind} ({self.encoder}, {self.codec} in {self.suffix})"
        return f"{what}; {self.why}" if self.why else what


def nvenc_too_large(codec: str, size: tuple[int, int] | None) -> str | None:
    """Why NVENC cannot encode frames of (W, H) ``size`` in ``codec`` (NVENC_MAX_SIDE), or None."""
    limit = NVENC_MAX_SIDE.get(codec)
    if size is None or limit is None or max(size) <= limit:
        return None
    return (f"{size[0]}x{size[1]} frames are over NVENC's {codec} limit of {limit} pixels a side"
            + ("; hevc takes 8192" if codec == "h264" else ""))


def plan_output(path: str | Path, config: EncodeConfig, allow_nvenc: bool = True,
                size: tuple[int, int] | None = None) -> OutputPlan:
    """Resolve encoder and codec for writing ``path`` with ``config``, probing for `auto`.

    size: (W, H) of the frames, when known: NVENC's size limits (``NVENC_MAX_SIDE``) then
    refuse an explicit NVENC encoder and make `auto` skip NVENC.
    Raises Photo3DError for an unknown extension, a codec the container cannot hold, an
    encoder that cannot make the codec, an encoder missing from the ffmpeg binary, or frames
    too large for the chosen hardware encoder.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in CONTAINERS:
        raise Photo3DError(f"cannot write {Path(path).name}: supported extensions are "
                           f"{', '.join(CONTAINERS)}")
    muxer, codecs = CONTAINERS[suffix]
    kind, codec = config.encoder, config.codec
    if codec not in CODEC_CHOICES:  # an ffmpeg encoder name, for experts: passed through
        if kind not in ("auto", "x264", "x265", "svtav1", "vpx", "ffmpeg-nvenc"):
            raise Photo3DError(f"codec {codec!r} is an ffmpeg encoder name; it cannot be used "
                               f"with --encoder {kind}")
        family = next((c for k in KINDS.values() for c, e in k.items() if e == codec), None)
        own = next((k for k, m in KINDS.items() if codec in m.values()), "ffmpeg")
        return OutputPlan(own, family or codec, codec, muxer, suffix)
    if suffix in (".gif", ".webp"):
        if kind != "auto" or codec != "auto":
            raise Photo3DError(f"{suffix} previews are made by ffmpeg's {KINDS[codecs[0]][codecs[0]]} "
                               f"encoder; --encoder {kind} --codec {codec} does not apply "
                               f"(leave both at auto, or write .mp4/.mkv/.webm)")
        return OutputPlan(codecs[0], codecs[0], KINDS[codecs[0]][codecs[0]], muxer, suffix)
    if codec == "auto":
        if kind != "auto":
            codec = next((c for c in codecs if c in KINDS[kind]), None)
            if codec is None:
                raise Photo3DError(f"--encoder {kind} makes {'/'.join(KINDS[kind])}, which a "
                                   f"{suffix} file cannot hold; {suffix} holds {', '.join(codecs)}")
        elif suffix == ".webm" and "libsvtav1" not in ffmpeg_encoders():
            codec = "vp9"
        else:
            codec = codecs[0]
    if codec not in codecs:
        raise Photo3DError(f"{codec} cannot go in a {suffix} file; {suffix} holds {', '.join(codecs)}"
                           + ("; use .mkv or .mp4 for h264/hevc" if suffix == ".webm" else ""))
    if kind != "auto":
        if codec not in KINDS[kind]:
            raise Photo3DError(f"--encoder {kind} cannot make {codec}; it makes {', '.join(KINDS[kind])}")
        if kind == "nvenc" and not allow_nvenc:
            raise Photo3DError("the nvenc encoder (PyNvVideoCodec) is opened by "
                               "photo3d_fast.encode.open_video, not by VideoWriter")
        encoder = KINDS[kind][codec]
        too_large = nvenc_too_large(codec, size) if kind in ("nvenc", "ffmpeg-nvenc") else None
        if too_large:
            raise Photo3DError(f"--encoder {kind}: {too_large}; use --encoder {CPU_KIND[codec]} or a smaller --size")
        if kind != "nvenc" and encoder not in ffmpeg_encoders():
            raise Photo3DError(f"the ffmpeg binary ({ffmpeg_exe()}) has no {encoder} encoder; "
                               f"choose another --encoder")
        return OutputPlan(kind, codec, encoder, muxer, suffix)
    return _auto(codec, muxer, suffix, allow_nvenc, size)


def _auto(codec: str, muxer: str, suffix: str, allow_nvenc: bool, size: tuple[int, int] | None = None) -> OutputPlan:
    skipped = []
    too_large = nvenc_too_large(codec, size)
    if too_large:
        skipped.append(f"nvenc: {too_large}")
    elif "nvenc" in KINDS and codec in KINDS["nvenc"] and allow_nvenc:
        ok, why = probe_nvenc(codec)
        if ok:
            return OutputPlan("nvenc", codec, KINDS["nvenc"][codec], muxer, suffix, "an NVENC session opened")
        skipped.append(f"nvenc: {why}")
    if codec in KINDS["ffmpeg-nvenc"] and not too_large:
        name = KINDS["ffmpeg-nvenc"][codec]
        ok, why = probe_ffmpeg_encoder(name)
        if ok:
            return OutputPlan("ffmpeg-nvenc", codec, name, muxer, suffix, f"{name} encoded a test frame"
                        + (f"; {'; '.join(skipped)}" if skipped else ""))
        skipped.append(f"ffmpeg-nvenc: {why}")
    kind = CPU_KIND[codec]
    encoder = KINDS[kind][codec]
    if encoder not in ffmpeg_encoders():
        raise Photo3DError(f"no encoder for {codec} works here: the ffmpeg binary has no {encoder}"
                           + (f"; {'; '.join(skipped)}" if skipped else ""))
    return OutputPlan(kind, codec, encoder, muxer, suffix,
                "no hardware encoder: " + "; ".join(skipped) if skipped else "")


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.lru_cache(maxsize=None)
def ffmpeg_encoders() -> frozenset[str]:
    """Names of the video encoders compiled into the ffmpeg binary (``ffmpeg -encoders``)."""
    try:
        out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True,
                             text=True, timeout=30).stdout
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        raise Photo3DError(f"could not run ffmpeg: {e}") from e
    return frozenset(m[1] for m in re.finditer(r"^ V\S* +(\S+)", out, re.M))


@functools.lru_cache(maxsize=None)
def probe_ffmpeg_encoder(name: str) -> tuple[bool, str]:
    """(works, why not): can the ffmpeg binary open ``name`` and encode one 256x256 frame?"""
    if name not in ffmpeg_encoders():
        return False, f"the ffmpeg binary has no {name}"
    cmd = [ffmpeg_exe(), "-hide_banner", "-v", "error", "-f", "lavfi", "-i",
           "color=c=gray:s=256x256:r=30", "-frames:v", "1", "-c:v", name, "-f", "null", "-"]
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return False, f"{name} did not encode a test frame within 30 s"
    if run.returncode == 0:
        return True, ""
    lines = [re.sub(r"^(\[[^]]*\] *)+", "", ln).strip() for ln in run.stderr.splitlines()]
    return False, f"{name} did not open: {next((ln for ln in lines if ln), f'exit code {run.returncode}')}"


@functools.lru_cache(maxsize=None)
def probe_nvenc(codec: str) -> tuple[bool, str]:
    """(works, why not): does a PyNvVideoCodec session open on this machine and encode a frame?
    Never raises: whatever goes wrong moves ``auto`` on to ffmpeg's NVENC, then the CPU."""
    try:
        return pynvvideocodec.probe(codec)
    except Exception as e:  # noqa: BLE001
        return False, f"the PyNvVideoCodec probe failed: {type(e).__name__}: {e}"


def ffmpeg_rate(fps: float) -> str:
    """fps as ffmpeg wants it: 29.97 means NTSC 30000/1001 (a plain 29.97 would become
    2997/100 and drift)."""
    ntsc = round(fps * 1.001)
    if abs(fps * 1.001 - ntsc) < 1e-4 and fps != ntsc:
        return f"{ntsc * 1000}/1001"
    return repr(float(fps))


def quality_args(plan: OutputPlan, config: EncodeConfig) -> list[str]:
    """ffmpeg output options for rate control (crf / cq or bitrate) and speed preset."""
    enc = plan.encoder
    if plan.kind in ("gif", "webp"):
        # previews: a palette (gif) or lossy WebP at quality 90; crf does not apply
        return ["-quality", "90", "-lossless", "0", "-compression_level", "4"] if plan.kind == "webp" else []
    crf = quality(plan, config)
    preset = config.encoder_preset
    args: list[str] = []
    if enc in ("libx264", "libx265"):
        args += ["-preset", preset]
        args += ["-b:v", config.bitrate] if config.bitrate else ["-crf", str(crf)]
    elif enc == "libsvtav1":
        args += ["-preset", str(_SVT_PRESET.get(preset, preset))]
        args += ["-b:v", config.bitrate] if config.bitrate else ["-crf", str(crf)]
    elif enc == "libvpx-vp9":
        args += ["-deadline", "good", "-cpu-used", str(_VPX_CPU_USED.get(preset, preset)), "-row-mt", "1"]
        args += ["-b:v", config.bitrate] if config.bitrate else ["-crf", str(crf), "-b:v", "0"]
    elif enc.endswith("_nvenc"):
        args += ["-preset", nvenc_preset(preset), "-tune", "hq"]
        args += (["-rc", "vbr", "-b:v", config.bitrate] if config.bitrate
                 else ["-rc", "vbr", "-cq", str(crf), "-b:v", "0"])
    else:  # an ffmpeg encoder named by the user: crf is the common knob
        args += ["-b:v", config.bitrate] if config.bitrate else ["-crf", str(crf)]
    return args


def quality(plan: OutputPlan, config: EncodeConfig) -> int:
    """The crf / constant-quality value: the user's, else the encoder's default."""
    crf = DEFAULT_CRF.get(plan.encoder, 18) if config.crf is None else config.crf
    top = MAX_CRF.get(plan.encoder, 51)
    if not (0 <= crf <= top):
        raise Photo3DError(f"--crf {crf} is out of range for {plan.encoder}: 0..{top}")
    return crf


def nvenc_preset(preset: str) -> str:
    """x264 speed names -> NVENC p1 (fastest) .. p7 (best); p1..p7 pass through."""
    if re.fullmatch(r"p[1-7]", preset.lower()):
        return preset.lower()
    if preset not in _NVENC_PRESET:
        raise Photo3DError(f"--encoder-preset {preset!r}: give {', '.join(X264_PRESETS)} or p1..p7")
    return _NVENC_PRESET[preset]
