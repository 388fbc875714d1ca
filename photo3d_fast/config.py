"""Options as frozen dataclasses, shared by the CLI, the Python API, batch manifests and the
preview; the choices each option takes; the parsers of option values given as text.

The CLI, the manifests and the preview are thin layers that build these; every default and
every check of an option lives here and only here.
"""

from __future__ import annotations

import functools
import json
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import Photo3DError

#: Implementations of the hot-path ops (``photo3d_fast.ops.backends``), in the order
#: ``--kernels auto`` tries them: cuda and triton on a GPU, cpp (C++ threads) on the CPU; the
#: torch reference runs everywhere.
BACKENDS = ("cuda", "triton", "cpp", "torch")
KERNEL_CHOICES = ("auto", *BACKENDS)
#: ``--encoder`` and ``--codec`` (what each encoder makes: ``encode.formats.KINDS``).
ENCODER_CHOICES = ("auto", "nvenc", "ffmpeg-nvenc", "x264", "x265", "svtav1", "vpx")
CODEC_CHOICES = ("auto", "h264", "hevc", "av1", "vp9")
#: How learned models run (``photo3d_fast.engines``) and at which precision.
RUNTIMES = ("auto", "tensorrt", "onnxruntime", "torch", "torch-compile")
PRECISIONS = ("auto", "fp32", "fp16")
#: ``--depth-kind``: how a depth-map file is read.
DEPTH_KINDS = ("disparity", "depth")
#: The options of a photo's depth and camera (flat names, ``OPTIONS``): what every command on
#: one photo takes besides its own (refocus, matte, composite; export adds the LDI's).
PHOTO_OPTIONS = ("depth", "depth_kind", "weights", "fov", "near", "far", "device", "runtime", "precision", "offline")
#: ``--stereo`` layouts (``render.stereo``): none (mono), side by side (sbs: each eye at full
#: size, width doubled; half-sbs: each eye squeezed to half width), top/bottom (tb, half-tb),
#: anaglyph (Dubois red-cyan).
STEREO_CHOICES = ("none", "sbs", "half-sbs", "tb", "half-tb", "anaglyph")
#: Largest side of an output frame, stereo layouts included (pixels): --size's bound and the
#: practical limit of x264/x265 (NVENC's H.264 stops at 4096; use --encoder x264 beyond).
MAX_OUTPUT_SIDE = 16384
#: ``--path`` presets (``scene.paths``) and their other names; or a .json keyframe file.
PATH_PRESETS = ("swing", "circle", "dolly", "zoom", "vertigo")
PATH_ALIASES = {"ken-burns": "zoom", "kenburns": "zoom", "dolly-zoom": "vertigo", "dollyzoom": "vertigo"}


def is_number(value: Any, low: float, high: float, *, whole: bool = False, above: bool = False) -> bool:
    """Whether ``value`` is a finite int or float (not a bool) in [low, high] ((low, high]
    if ``above``), and a whole number if ``whole``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if not math.isfinite(value) or (whole and not float(value).is_integer()):
        return False
    return (low < value if above else low <= value) and value <= high


def check_number(name: str, value: Any, low: float, high: float, *, whole: bool = False,
                 above: bool = False, unit: str = "") -> None:
    """Photo3DError unless ``value`` is a finite number (a whole one if ``whole``) in
    [low, high] ((low, high] if ``above``): the one check of every number of every option
    and keyframe, so that NaN, infinities and overflowing extremes (1e300) never reach the
    renderer, where they become tracebacks or all-black clips."""
    if is_number(value, low, high, whole=whole, above=above):
        return
    kind = "a whole number" if whole else "a number"
    bounds = f"above {low:g} and at most {high:g}" if above else f"between {low:g} and {high:g}"
    raise Photo3DError(f"{name} {value!r} must be {kind} {bounds}{unit}")


def parse_size(text: str | tuple | list) -> tuple[int, int]:
    """"WIDTHxHEIGHT" (or a (W, H) pair, as a JSON manifest gives it) -> (W, H) pixels: the
    one parser of sizes, for every command and manifest. The error does not name the
    option, so that each caller (an argparse type, ``convert_option``) names it its way."""
    if isinstance(text, (list, tuple)) and len(text) == 2:
        values = text
    else:
        values = str(text).strip().lower().split("x")
    try:
        w, h = (int(v) for v in values)
    except (TypeError, ValueError):
        raise Photo3DError(f"{text!r} is not WIDTHxHEIGHT, e.g. 1280x720") from None
    return w, h


def parse_bitrate(text: str) -> int:
    """'8M' -> 8000000, '2500k' -> 2500000, '900000' -> 900000 bits per second."""
    m = re.fullmatch(r"([1-9][0-9]*(?:\.[0-9]+)?)([kKmM]?)", str(text))
    if not m:
        raise Photo3DError(f"--bitrate {text!r}: give bits per second such as 8M or 2500k")
    return int(float(m[1]) * {"": 1, "k": 1e3, "m": 1e6}[m[2].lower()])

#: Field of view across the image's longer side, in degrees, when neither ``--fov`` nor
#: EXIF says otherwise. 55 degrees is a 35 mm-equivalent focal length of about 35 mm,
#: the typical phone main camera.
DEFAULT_FOV_DEG = 55.0

#: The disparity of a learned or cue-based model is affine-invariant: only its order and
#: ratios mean something. It is mapped so that its robust maximum lands at ``near`` and
#: its robust minimum at ``far`` (scene units). Camera motion is expressed in the same
#: units, so ``near = 1`` makes ``amount`` read as "fraction of the nearest distance".
DEFAULT_NEAR = 1.0
DEFAULT_FAR = 10.0
#: The range of every depth (--near, --far, --focus, scene units): wide enough for metres,
#: millimetres or kilometres, narrow enough that disparities (1/z) and the camera maths stay
#: well inside float32.
MIN_DEPTH = 1e-4
MAX_DEPTH = 1e6

#: Most frames one kernel launch may render: CUDA caps a launch grid's second axis, which
#: the batched kernels give to the frame, at 65535.
MAX_FRAMES_PER_LAUNCH = 65535


def check_frames_per_launch(n: int | None) -> None:
    """Photo3DError unless ``n`` is None (automatic) or 1..MAX_FRAMES_PER_LAUNCH."""
    if n is not None:
        check_number("--frames-per-launch", n, 1, MAX_FRAMES_PER_LAUNCH, whole=True)


@dataclass(frozen=True)
class SceneConfig:
    """How the photo's pixels become 3D points.

    fov: field of view across the longer image side, degrees; None means "EXIF focal
        length if the photo has one, else DEFAULT_FOV_DEG".
    near, far: z-depth (scene units) that the nearest and farthest disparity map to.
    """

    fov: float | None = None
    near: float = DEFAULT_NEAR
    far: float = DEFAULT_FAR

    def __post_init__(self) -> None:
        if self.fov is not None:
            check_number("--fov", self.fov, 1.0, 170.0, unit=" degrees")
        check_number("--near", self.near, MIN_DEPTH, MAX_DEPTH, unit=" (scene units)")
        check_number("--far", self.far, MIN_DEPTH, MAX_DEPTH, unit=" (scene units)")
        if not (0 < self.near < self.far):
            raise Photo3DError(
                f"near={self.near} and far={self.far} must satisfy 0 < near < far (scene units)"
            )


#: Most frames of one clip.
MAX_FRAMES = 100_000


@dataclass(frozen=True)
class Keyframes:
    """A keyframe file, checked (format in ``scene.paths``). t: (K,) increasing in [0, 1];
    positions: (K, 3) scene units, before ``amount``; orientation: "rotation" (x, y, z
    Euler degrees) or "look_at" (world points), one (K, 3) for all; zoom: (K,); loop."""

    t: tuple[float, ...]
    positions: tuple[tuple[float, float, float], ...]
    orientation: str
    orientations: tuple[tuple[float, float, float], ...]
    zoom: tuple[float, ...]
    loop: bool


#: Bounds of a keyframe's numbers: positions and look_at points (scene units; positions are
#: then multiplied by --amount) and rotations (degrees: ten turns).
MAX_KEYFRAME_DISTANCE = MAX_DEPTH
MAX_KEYFRAME_DEGREES = 3600.0


def read_keyframes(path: str | Path) -> Keyframes:
    """Read and check a keyframe file: Photo3DError naming the file, the keyframe and the
    field for anything that is not there, not a number, not finite or out of range."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise Photo3DError(f"keyframe file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise Photo3DError(f"cannot read keyframe file {str(path)!r}: {e}") from None
    if not text.strip():
        raise Photo3DError(f"keyframe file {str(path)!r} is empty; it needs a list under \"keyframes\"")
    try:
        spec = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise Photo3DError(f"keyframe file {str(path)!r} is not valid JSON: {e}") from None
    frames = spec.get("keyframes") if isinstance(spec, dict) else None
    if not isinstance(frames, list) or not frames:
        raise Photo3DError(f"keyframe file {str(path)!r} needs a non-empty list under \"keyframes\"")
    if len(frames) > MAX_FRAMES:
        raise Photo3DError(f"keyframe file {str(path)!r} has {len(frames)} keyframes; at most {MAX_FRAMES}")

    def triple(where: str, key: str, value: Any, bound: float) -> tuple[float, float, float]:
        if not (isinstance(value, list) and len(value) == 3 and all(is_number(v, -bound, bound) for v in value)):
            raise Photo3DError(f"{where} must be an object with numbers: {key} {value!r} is not a list of 3 "
                               f"numbers between {-bound:g} and {bound:g}")
        return tuple(float(v) for v in value)  # type: ignore[return-value]

    ts: list[float] = []
    positions, orientations, zooms = [], [], []
    kinds = set()
    for k, f in enumerate(frames):
        where = f"keyframe {k} of {str(path)!r}"
        if not isinstance(f, dict):
            raise Photo3DError(f"{where} must be an object with numbers: t, position [x,y,z], "
                               "look_at [x,y,z] or rotation [deg,deg,deg], zoom")
        t = f.get("t", k / max(1, len(frames) - 1))
        number = isinstance(t, (int, float)) and not isinstance(t, bool)
        if not (number and 0.0 <= t <= 1.0) or (ts and t <= ts[-1]):
            raise Photo3DError(f"{where}: t={t!r} must be in [0, 1] and increase from keyframe to keyframe")
        positions.append(triple(where, "position", f.get("position", [0, 0, 0]), MAX_KEYFRAME_DISTANCE))
        if "look_at" in f:
            kinds.add("look_at")
            orientations.append(triple(where, "look_at", f["look_at"], MAX_KEYFRAME_DISTANCE))
        else:
            kinds.add("rotation")
            orientations.append(triple(where, "rotation", f.get("rotation", [0, 0, 0]), MAX_KEYFRAME_DEGREES))
        zoom = f.get("zoom", 1.0)
        check_number(f"{where}: zoom", zoom, 0.05, 20.0)
        ts.append(float(t))
        zooms.append(float(zoom))
    if len(kinds) > 1:
        raise Photo3DError(f"keyframes of {str(path)!r} mix look_at and rotation; use one kind for all")
    return Keyframes(tuple(ts), tuple(positions), kinds.pop(), tuple(orientations), tuple(zooms),
                     bool(spec.get("loop", False)))


@dataclass(frozen=True)
class PathConfig:
    """The camera motion of a clip.

    preset: a preset name (see ``photo3d_fast.paths.PRESETS``) or the path of a JSON file
        of keyframes.
    duration: seconds; fps: frames per second. The clip has round(duration * fps) frames.
    amount: parallax strength; 1.0 moves the camera by a few percent of the nearest
        distance, which shifts near against far content by about 3% of the image width.
    focus: z-depth (scene units) of the plane that stays still while the camera moves;
        None picks the depth at the median disparity (``paths.default_focus``).
    """

    preset: str = "swing"
    duration: float = 5.0
    fps: float = 30.0
    amount: float = 1.0
    focus: float | None = None

    @property
    def n_frames(self) -> int:
        return max(1, int(round(self.duration * self.fps)))

    def __post_init__(self) -> None:
        check_number("--duration", self.duration, 0, MAX_FRAMES, above=True, unit=" seconds")
        check_number("--fps", self.fps, 0, 240, above=True)
        if self.duration * self.fps > MAX_FRAMES:
            raise Photo3DError(
                f"{self.duration} s at {self.fps} fps is over {MAX_FRAMES} frames; shorten the clip"
            )
        check_number("--amount", self.amount, 0, 20)
        if self.focus is not None:
            check_number("--focus", self.focus, MIN_DEPTH, MAX_DEPTH, unit=" (a depth, scene units)")
        if not isinstance(self.preset, str):
            raise Photo3DError(f"--path {self.preset!r} must be a preset name or a .json keyframe file")
        if self.preset.lower().endswith(".json"):
            read_keyframes(self.preset)  # a bad file fails now, not after the depth stage
        elif PATH_ALIASES.get(self.preset.lower(), self.preset.lower()) not in PATH_PRESETS:
            raise Photo3DError(
                f"unknown path preset {self.preset!r}; choose one of {', '.join(PATH_PRESETS)} "
                f"(aliases: {', '.join(PATH_ALIASES)}) or give a .json keyframe file"
            )


def stereo_output_size(size: tuple[int, int], stereo: str) -> tuple[int, int]:
    """(W, H) of a video frame whose eyes are (W, H) = ``size`` in layout ``stereo``: sbs
    doubles the width, tb the height, the others keep the size. Photo3DError, in one line,
    when a doubled side exceeds MAX_OUTPUT_SIDE."""
    w, h = size
    out = (2 * w, h) if stereo == "sbs" else (w, 2 * h) if stereo == "tb" else (w, h)
    if max(out) > MAX_OUTPUT_SIDE:
        side = "width" if stereo == "sbs" else "height"
        raise Photo3DError(f"--stereo {stereo} of {w}x{h} eyes makes a {out[0]}x{out[1]} video, whose {side} is over "
                           f"{MAX_OUTPUT_SIDE} pixels; give a smaller --size or half-{stereo}")
    return out


@dataclass(frozen=True)
class RenderConfig:
    """How frames are rendered.

    size: (W, H) of the output in pixels; None keeps the photo's size.
    layers: LDI layers (1 = no back layer; 2 is the default; more peel nested occlusions).
    kernels: "auto" | "torch" | "triton" | "cuda"; auto picks the fastest available.
    device: "auto" | "cpu" | "cuda" | "cuda:N".
    frames_per_launch: frames one kernel launch renders; None picks by output size
        (``render.auto_frames_per_launch``: up to 8 with the fast kernels, 1 with torch).
    overscan: zoom in just enough (at most 25%) that the camera motion never reveals the
        photo's border, where nothing but a filled guess could be shown.
    clean_depth: condition the depth map before the LDI is built (``depth.condition``:
        smooth within surfaces, snap edges onto the photo's), so that depth noise does not
        tear surfaces; off renders the depth exactly as given.
    stereo: "none" or a layout of both eyes in one frame (STEREO_CHOICES, ``render.stereo``).
    ipd: the eye baseline, scene units; None: 1/30 of the nearest content's depth (the
        path's near, ``render.stereo.default_ipd``).
    convergence: the z-depth (scene units) that sits on the screen (zero disparity); None:
        the path's focus depth (--focus, else the median-disparity depth).
    vr180: each eye as an equirectangular half sphere (``render.stereo.equirect_180``),
        with sbs or tb, parallel eyes (no convergence), and the spherical-video metadata
        of .mp4/.mov (``encode.spherical``).
    """

    size: tuple[int, int] | None = None
    layers: int = 2
    kernels: str = "auto"
    device: str = "auto"
    overscan: bool = True
    frames_per_launch: int | None = None
    clean_depth: bool = True
    stereo: str = "none"
    ipd: float | None = None
    convergence: float | None = None
    vr180: bool = False

    def __post_init__(self) -> None:
        check_number("--layers", self.layers, 1, 8, whole=True)
        if self.kernels not in KERNEL_CHOICES:
            raise Photo3DError(f"--kernels {self.kernels!r} is unknown; choose one of {', '.join(KERNEL_CHOICES)}")
        if not re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", str(self.device)):
            raise Photo3DError(f"--device {self.device!r} is not a device; use auto, cpu, cuda or cuda:N")
        check_frames_per_launch(self.frames_per_launch)
        if self.size is not None:
            w, h = self.size
            if not (is_number(w, 16, 16384, whole=True) and is_number(h, 16, 16384, whole=True)):
                raise Photo3DError(
                    f"--size {w}x{h} is out of range; width and height must be whole numbers, 16..16384 pixels"
                )
        if self.stereo not in STEREO_CHOICES:
            raise Photo3DError(f"--stereo {self.stereo!r}: choose one of {', '.join(STEREO_CHOICES)}")
        if self.ipd is not None:
            check_number("--ipd", self.ipd, 0, MAX_DEPTH, above=True, unit=" (eye baseline, scene units)")
        if self.convergence is not None:
            check_number("--convergence", self.convergence, MIN_DEPTH, MAX_DEPTH, unit=" (a depth, scene units)")
        if self.stereo == "none" and (self.ipd is not None or self.convergence is not None):
            # silently ignored, they would still change a batch clip's name and mislead
            raise Photo3DError("--ipd and --convergence apply only with --stereo; add --stereo sbs (or another layout)")
        if self.vr180 and self.stereo not in ("sbs", "tb"):
            raise Photo3DError(f"--vr180 puts each eye on a half sphere side by side or top/bottom; add --stereo sbs "
                               f"or --stereo tb (not {self.stereo})")
        if self.vr180 and self.convergence is not None:
            raise Photo3DError("--convergence does not apply with --vr180: its eyes are parallel and the headset "
                               "shows the sphere at infinity; set the depth effect with --ipd")
        if self.size is not None and not self.vr180:
            stereo_output_size(self.size, self.stereo)


@dataclass(frozen=True)
class EncodeConfig:
    """How frames become a video file (rules and choices in ``photo3d_fast.formats``).

    encoder: "auto" (probe: NVENC via PyNvVideoCodec, then ffmpeg's *_nvenc, then the CPU
        encoder; says on stderr what it chose and why) | "nvenc" | "ffmpeg-nvenc" | "x264"
        | "x265" | "svtav1" | "vpx".
    codec: "auto" (from the encoder and the output extension: h264 for .mp4/.mov/.mkv, av1
        for .webm) | "h264" | "hevc" | "av1" | "vp9", or an ffmpeg encoder name such as
        "libx264" (expert use, passed through).
    crf: quality, lower is better: x264/x265/SVT-AV1/VP9 crf, NVENC constant-quality cq;
        None means the encoder's default (x264 18, x265 20, SVT-AV1 30, VP9 31, NVENC 21).
    bitrate: target bitrate such as "8M" or "2500k" instead of constant quality.
    encoder_preset: speed, x264 names (ultrafast..veryslow), mapped for SVT-AV1, VP9 and
        NVENC (which also takes p1..p7). pix_fmt: output pixel format (yuv420p; NVENC: only
        yuv420p, fed as NV12).
    """

    encoder: str = "auto"
    codec: str = "auto"
    crf: int | None = None
    bitrate: str | None = None
    encoder_preset: str = "medium"
    pix_fmt: str = "yuv420p"

    def __post_init__(self) -> None:
        if self.encoder not in ENCODER_CHOICES:
            raise Photo3DError(f"--encoder {self.encoder!r}: choose one of {', '.join(ENCODER_CHOICES)}")
        if self.crf is not None:
            check_number("--crf", self.crf, 0, 63, whole=True, unit=" (51 for x264/x265/NVENC h264, hevc)")
        if self.bitrate is not None:
            parse_bitrate(self.bitrate)
            if self.crf is not None:
                raise Photo3DError("give --crf/--quality or --bitrate, not both")


#: ``--upscale`` choices: none, or an upscale model of ``photo3d_fast.engines.registry``;
#: ``--upscale-mode``: where the model runs (see EngineConfig).
UPSCALE_CHOICES = ("none", "x4plus", "animevideov3", "realesrgan-x4plus", "realesr-animevideov3")
UPSCALE_MODES = ("texture", "frames")
#: ``--inpaint`` choices: how the LDI's back layers are coloured (``photo3d_fast.inpaint``).
INPAINT_CHOICES = ("auto", "classic", "lama", "migan")


@dataclass(frozen=True)
class EngineConfig:
    """How learned models (depth networks, super-resolution) run.

    runtime: "auto" | "tensorrt" | "onnxruntime" | "torch" | "torch-compile" (see
        ``photo3d_fast.engines``); precision: "auto" | "fp32" | "fp16".
    weights: a weights file of the ``--depth`` model instead of the cache/download.
    upscale: "none" or a super-resolution model (x4plus = Real-ESRGAN x4plus); applied once
        to the photo the LDI is built from when the output needs more pixels than the photo
        has (upscale_mode "texture"), or to every rendered frame (upscale_mode "frames").
    inpaint: how the LDI's back layers are coloured: "classic" (no weights), a learned
        model ("lama", "migan"), or "auto" (the best learned model whose weights are here or
        can be fetched once, else classic).
    offline: never download weights (as PHOTO3D_OFFLINE=1 or HF_HUB_OFFLINE=1): auto uses
        the models whose weights are here, else the method without weights; a named model
        whose weights are missing is an error. Not part of a batch clip's name: it changes
        how weights are found, not what a clip is.
    """

    runtime: str = "auto"
    precision: str = "auto"
    weights: str | None = None
    upscale: str = "none"
    upscale_mode: str = "texture"
    inpaint: str = "auto"
    offline: bool = False

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise Photo3DError(f"--runtime {self.runtime!r}: choose one of {', '.join(RUNTIMES)}")
        if self.precision not in PRECISIONS:
            raise Photo3DError(f"--precision {self.precision!r}: choose auto, fp32 or fp16")
        if self.upscale not in UPSCALE_CHOICES:
            raise Photo3DError(f"--upscale {self.upscale!r}: choose one of {', '.join(UPSCALE_CHOICES)}")
        if self.inpaint not in INPAINT_CHOICES:
            raise Photo3DError(f"--inpaint {self.inpaint!r}: choose one of {', '.join(INPAINT_CHOICES)}")
        if self.upscale_mode not in UPSCALE_MODES:
            raise Photo3DError(f"--upscale-mode {self.upscale_mode!r}: choose {' or '.join(UPSCALE_MODES)}")


@dataclass(frozen=True)
class DepthConfig:
    """Where the photo's depth comes from.

    source: "auto" (the best learned model whose weights are here, else cues), "cues", a
        model name (``photo3d_fast.depth.DEPTH_MODELS``), or the path of a depth map.
    kind: how to read a depth-map file: "disparity" (larger = nearer, any scale) or
        "depth" (z-depth, larger = farther).
    """

    source: str = "auto"
    kind: str = "disparity"

    def __post_init__(self) -> None:
        if self.kind not in DEPTH_KINDS:
            raise Photo3DError(f"--depth-kind {self.kind!r}: choose one of {', '.join(DEPTH_KINDS)}")


#: Most triangles of an export: a billion is ~24 GB of glb, beyond any viewer.
MAX_FACES = 1_000_000_000


@dataclass(frozen=True)
class ExportConfig:
    """What ``photo3d export`` adds to a clip's scene options (``export.py``).

    max_faces: most triangles of the mesh; flat regions merge into larger cells until it
        fits, depth edges stay at full resolution (``scene.mesh``). The default keeps a
        photo of up to about 0.25 MP whole and a 12 MP glb near 10 MB of geometry.
    mesh: write a .ply as the vertex-coloured mesh instead of the point cloud of texels.
    """

    max_faces: int = 500_000
    mesh: bool = False

    def __post_init__(self) -> None:
        check_number("--max-faces", self.max_faces, 1, MAX_FACES, whole=True)


#: ``--bokeh``: the aperture's outline (``ops.dof``).
BOKEH_CHOICES = ("disc", "hexagon")
#: ``--fog DENSITY,COLOR`` colour names (else #RRGGBB), sRGB 0..255.
FOG_COLORS = {"white": (255, 255, 255), "gray": (128, 128, 128), "grey": (128, 128, 128), "black": (0, 0, 0),
              "haze": (200, 210, 222), "blue": (150, 175, 210), "warm": (235, 215, 190)}


def parse_fog(text: str) -> tuple[float, tuple[int, int, int]]:
    """--fog "DENSITY[,COLOR]" -> (density in 1 / scene units, sRGB colour 0..255); COLOR
    is #RRGGBB or a name of FOG_COLORS, default haze."""
    density, _, color = str(text).strip().partition(",")
    try:
        d = float(density)
    except ValueError:
        raise Photo3DError(f"--fog {text!r}: give DENSITY[,COLOR], e.g. 0.2 or 0.2,#c8d2de") from None
    check_number("--fog density", d, 0, 1e4, unit=" (1 / scene units)")
    color = color.strip().lower() or "haze"
    if color in FOG_COLORS:
        return d, FOG_COLORS[color]
    if re.fullmatch(r"#[0-9a-f]{6}", color):
        return d, tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
    raise Photo3DError(f"--fog colour {color!r}: give #RRGGBB or one of {', '.join(FOG_COLORS)}")


def parse_focus_pull(text: str) -> tuple[float, float]:
    """--focus-pull "A:B" -> (A, B): the focus z-depth (scene units) at the first and last frame."""
    a, sep, b = str(text).strip().partition(":")
    try:
        pull = (float(a), float(b)) if sep else None
    except ValueError:
        pull = None
    if pull is None:
        raise Photo3DError(f"--focus-pull {text!r}: give FROM:TO, two depths in scene units, e.g. 1.5:6")
    for v in pull:
        check_number("--focus-pull", v, MIN_DEPTH, MAX_DEPTH, unit=" (a depth, scene units)")
    return pull


@dataclass(frozen=True)
class EffectsConfig:
    """Per-frame depth effects of a clip (``render.effects``); all off by default, and off
    they cost nothing.

    dof: f-number of a thin lens (depth of field; None: off), focused at --focus-pull's
        depths (animated from A to B over the clip) or else the path's focus depth (--focus);
        scene units read as metres. focal_length: 35 mm-equivalent focal length, mm (None:
        from the field of view). bokeh: the aperture's outline, BOKEH_CHOICES.
    fog: "DENSITY[,COLOR]" (``parse_fog``): exponential fog, density 1 / scene units, from
        z-depth fog_start (scene units). falloff: light falloff exponent with depth (2 =
        inverse square of a light at the camera), relative to the focus depth. vignette:
        cos^4 vignetting strength in [0, 1]. Formulas: ``ops.grade``, ``ops.dof``.
    """

    dof: float | None = None
    focal_length: float | None = None
    bokeh: str = "disc"
    focus_pull: str | None = None
    fog: str | None = None
    fog_start: float = 0.0
    falloff: float = 0.0
    vignette: float = 0.0

    def __post_init__(self) -> None:
        if self.dof is not None:
            check_number("--dof", self.dof, 0, 1000, above=True, unit=" (an f-number, e.g. 2.8)")
        if self.focal_length is not None:
            check_number("--focal-length", self.focal_length, 1, 5000, unit=" mm (35 mm equivalent)")
        if self.bokeh not in BOKEH_CHOICES:
            raise Photo3DError(f"--bokeh {self.bokeh!r}: choose one of {', '.join(BOKEH_CHOICES)}")
        if self.focus_pull is not None:
            parse_focus_pull(self.focus_pull)
            if self.dof is None:
                raise Photo3DError("--focus-pull animates the depth of field's focus; add --dof F_NUMBER")
        if self.fog is not None:
            parse_fog(self.fog)
        check_number("--fog-start", self.fog_start, 0, MAX_DEPTH, unit=" (a depth, scene units)")
        check_number("--falloff", self.falloff, 0, 8, unit=" (an exponent; 2 = inverse square)")
        check_number("--vignette", self.vignette, 0, 1)

    @property
    def active(self) -> bool:
        """Whether any effect is on."""
        return self.dof is not None or self.fog is not None or self.falloff > 0 or self.vignette > 0


@dataclass(frozen=True)
class ClipOptions:
    """Every option of one clip, grouped as the stages use them. frames_dir: also write
    every frame as PNG there."""

    scene: SceneConfig = SceneConfig()
    path: PathConfig = PathConfig()
    render: RenderConfig = RenderConfig()
    encode: EncodeConfig = EncodeConfig()
    depth: DepthConfig = DepthConfig()
    engine: EngineConfig = EngineConfig()
    effects: EffectsConfig = EffectsConfig()
    frames_dir: Path | None = None

    @classmethod
    def from_flat(cls, options: Mapping[str, Any]) -> ClipOptions:
        """Build and check every option from flat names (``OPTIONS``): what the CLI's flags,
        batch manifests, the preview and ``render_clip(**options)`` all give, so that an
        option is read and validated in one place. Values may be text (a CSV cell, a query
        string); None and empty text mean "the default". Photo3DError names a bad option."""
        values: dict[str | None, dict[str, Any]] = {group: {} for group in (*_GROUPS, None)}
        for name, value in convert_options(options).items():
            group, field = OPTIONS[name]
            values[group][field] = value
        return cls(**{group: config(**values[group]) for group, config in _GROUPS.items()},
                   frames_dir=values[None].get("frames_dir"))

    @classmethod
    def from_flat_only(cls, options: Mapping[str, Any], names: Sequence[str], what: str) -> ClipOptions:
        """``from_flat`` for a command that takes only some options (``names``: export,
        refocus, matte): any other name is refused, in one line naming ``what``."""
        other = sorted(set(options) - set(names))
        if other:
            raise Photo3DError(f"{what} takes the options {', '.join(names)}, not {', '.join(other)}")
        return cls.from_flat(options)

    def get(self, name: str) -> Any:
        """The value of the option of flat name ``name``."""
        group, field = OPTIONS[name]
        return getattr(getattr(self, group) if group else self, field)

    def changed(self) -> dict[str, Any]:
        """The options that differ from the defaults, by flat name: what a clip's name and
        report in ``photo3d batch`` record."""
        default = ClipOptions()
        return {name: self.get(name) for name in OPTIONS if self.get(name) != default.get(name)}


_GROUPS = {"scene": SceneConfig, "path": PathConfig, "render": RenderConfig, "encode": EncodeConfig,
           "depth": DepthConfig, "engine": EngineConfig, "effects": EffectsConfig}
#: The options whose user-facing name is not their field's name. ``frames`` (a folder for
#: the PNG frames) is a field of ClipOptions itself (group None).
_RENAMED = {"path": ("path", "preset"), "depth": ("depth", "source"), "depth_kind": ("depth", "kind"),
            "frames": (None, "frames_dir")}
#: Other spellings accepted for an option (batch manifests have taken ``preset``).
_SPELLINGS = {"preset": "path"}


def _option_table() -> dict[str, tuple[str | None, str]]:
    renamed = {target: name for name, target in _RENAMED.items()}
    targets = [(group, f.name) for group, config in _GROUPS.items() for f in fields(config)]
    return {renamed.get(target, target[1]): target for target in [*targets, _RENAMED["frames"]]}


@functools.cache
def _hints(config: type) -> dict[str, Any]:
    return typing.get_type_hints(config)


def _value_kind(group: str | None, field: str) -> type:
    """The type an option's value is converted to: its field's type without ``| None``
    (``tuple`` for a size)."""
    hint = _hints(_GROUPS[group] if group else ClipOptions)[field]
    if isinstance(hint, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return tuple if typing.get_origin(hint) is tuple else hint


#: Every option of a clip by the flat name users write: the ``photo3d render`` flag without
#: its dashes, with ``_`` for ``-`` (``depth_kind``); also a manifest column, a preview
#: option and a ``render_clip`` keyword. name -> (group of ClipOptions or None, field).
OPTIONS: dict[str, tuple[str | None, str]] = _option_table()
_KINDS: dict[str, type] = {name: _value_kind(*target) for name, target in OPTIONS.items()}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def option_name(name: str) -> str:
    """The flat name of an option as a user may write it (``depth-kind``, ``preset``);
    Photo3DError if there is no such option."""
    key = str(name).strip().replace("-", "_")
    key = _SPELLINGS.get(key, key)
    if key not in OPTIONS:
        raise Photo3DError(f"unknown option {name!r}; use the name of a `photo3d render` option "
                           f"such as duration, size or depth_kind")
    return key


def convert_option(name: str, value: Any) -> Any:
    """``value`` of option ``name`` (a flat name) as its field's type: text such as "1.5",
    "WxH", "false" is converted; None or empty text is None (the default)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    kind = _KINDS[name]
    if kind is tuple:
        try:
            return parse_size(value)
        except Photo3DError as e:
            raise Photo3DError(f"{name} {e}") from None
    if kind is bool:
        text = str(value).strip().lower()
        if isinstance(value, bool):
            return value
        if text in _TRUE + _FALSE:
            return text in _TRUE
        raise Photo3DError(f"{name} {value!r} is not true or false")
    if kind in (int, float):
        try:
            if isinstance(value, bool):
                raise TypeError(value)
            number = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise Photo3DError(f"{name} {value!r} is not a number") from None
        if not math.isfinite(number):
            raise Photo3DError(f"{name} {value!r} must be a finite number")
        if kind is int and number != int(number):
            raise Photo3DError(f"{name} {value!r} is not a whole number")
        return int(number) if kind is int else number
    if kind is Path:
        return Path(value)
    return str(value).strip()


def convert_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Options as users write them -> {flat name: typed value}, unset ones (None, empty
    text) left out. The checks of ranges and choices are the dataclasses' own."""
    out: dict[str, Any] = {}
    for name, value in options.items():
        key = option_name(name)
        value = convert_option(key, value)
        if value is not None:
            out[key] = value
    return out
