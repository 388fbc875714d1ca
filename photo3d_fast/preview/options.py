"""The clip options the preview's page may set, read and checked through ``config`` as
the CLI's and batch manifests' are, and narrowed: only presets, depth methods and
inpainting methods, never file names, so that no request can make the server read a file.
``check_request`` is the one validator every endpoint (HTTP and the WebSocket) runs.

Options travel by their flat names (path, amount, duration, fps, fov, size "WxH",
overscan, depth, inpaint, clean_depth, the depth effects dof, focal_length, bokeh,
focus_pull, fog, fog_start, falloff, vignette, and stereo, ipd, convergence, vr180, which
exports apply), the same a batch manifest row takes. Four of them
(``SCENE_OPTION_NAMES``) change the layered depth image itself; the rest only move the
camera or shape the output. The server's limits are defined here, once (README, "Bad input").
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import ClipOptions, EngineConfig, PathConfig, RenderConfig, convert_options, stereo_output_size
from ..depth import DEPTH_METHODS
from ..errors import Photo3DError
from ..scene.paths import ALIASES, PRESETS
from .photos import safe_relative

#: The options the page may set.
OPTION_NAMES = ("path", "amount", "duration", "fps", "fov", "size", "overscan", "depth", "inpaint", "clean_depth",
                "dof", "focal_length", "bokeh", "focus_pull", "fog", "fog_start", "falloff", "vignette",
                "stereo", "ipd", "convergence", "vr180")
#: The options that change a photo's LDI (what the page draws and the server renders).
SCENE_OPTION_NAMES = ("fov", "depth", "inpaint", "clean_depth")

# Limits of what a page may ask for (the CLI has none of them): an export is a clip of at
# most MAX_EXPORT_SIDE pixels per side (its --size, else the photo's), MAX_EXPORT_SECONDS
# long at MAX_EXPORT_FPS, so that one click cannot occupy the machine for hours.
MAX_EXPORT_SIDE = 4096
MAX_EXPORT_SECONDS = 60
MAX_EXPORT_FPS = 60
#: Exports queued or running at once; one more is refused (HTTP 429) until one ends.
MAX_QUEUED_EXPORTS = 4
#: Bytes of photos, depth maps and preview LDIs a server keeps (least recently used dropped).
CACHE_BYTES = 512 * 2 ** 20
#: Largest request body and WebSocket message (bytes).
MAX_BODY = 64 * 1024
#: Largest server-side interactive frame (pixels per side).
MAX_STREAM_SIDE = 2048
#: Largest magnitude of a number in a request: far beyond every option's range, and small
#: enough to convert to a float (JSON's integers are unbounded).
_MAX_NUMBER = 1e9


@dataclass(frozen=True)
class SceneOptions:
    """The options a photo's preview LDI is built for, checked; defaults are config's.

    fov: degrees or None (EXIF, else the default); depth: a depth method; inpaint: as
    ``--inpaint`` takes it ("auto" is resolved where the LDI is built, as export does);
    clean_depth: as ``--no-clean-depth`` clears it."""

    fov: float | None = None
    depth: str = "auto"
    inpaint: str = EngineConfig.inpaint
    clean_depth: bool = RenderConfig.clean_depth

    def __post_init__(self) -> None:
        depth_method(self.depth)  # whoever builds one: a depth method, never a file

    def query(self) -> dict[str, str]:
        """The options as query parameters, by flat name (fov left out when unset)."""
        q = {"depth": self.depth, "inpaint": self.inpaint, "clean_depth": str(self.clean_depth).lower()}
        if self.fov is not None:
            q["fov"] = f"{self.fov:g}"
        return q


def depth_method(value: Any) -> str:
    """A depth method (auto, cues, a model) by name; never a depth-map file."""
    depth = str(value or "auto")
    if depth not in DEPTH_METHODS:
        raise Photo3DError(f"depth {depth!r} is not a depth method; choose one of {', '.join(DEPTH_METHODS)}")
    return depth


def scene_options(query: Mapping[str, Any]) -> SceneOptions:
    """The LDI options of a request (query string or JSON object), checked by ``config``
    as the CLI checks them; unset ones take their defaults."""
    typed = convert_options({name: query.get(name) for name in SCENE_OPTION_NAMES})
    depth = depth_method(typed.pop("depth", None))
    opts = ClipOptions.from_flat(typed)  # fov's range, inpaint's choices
    return SceneOptions(opts.scene.fov, depth, opts.engine.inpaint, opts.render.clean_depth)


def _unknown(names: Collection[str]) -> Photo3DError:
    return Photo3DError(f"unknown option(s) {', '.join(sorted(names))}; the page may set {', '.join(OPTION_NAMES)}")


def _scalar(name: str, value: Any) -> Any:
    """A request's value as text, a number or true/false; a number beyond every option's
    range is refused here, before float() could overflow on it."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, (int, float)):
        if abs(value) > _MAX_NUMBER:
            raise Photo3DError(f"{name} is out of range (at most {_MAX_NUMBER:g} in size)")
        return value
    raise Photo3DError(f"{name} must be text, a number or true/false, not {type(value).__name__}")


def clean_options(options: Any) -> dict:
    """Checked options by flat name, unset ones left out, path and depth always given:
    what an export job runs and a manifest row stores (size as "WxH"), within the
    preview's export limits."""
    if not isinstance(options, dict):
        raise Photo3DError("options must be a JSON object")
    unknown = set(options) - set(OPTION_NAMES) - {"image"}
    if unknown:
        raise _unknown(unknown)
    typed = convert_options({k: _scalar(k, v) for k, v in options.items() if k != "image"})
    path = str(typed.get("path", PathConfig.preset)).lower()
    if path not in PRESETS and path not in ALIASES:
        raise Photo3DError(f"path {path!r} is not a preset; choose one of {', '.join(PRESETS)}")
    typed.update(path=path, depth=depth_method(typed.get("depth")))
    opts = ClipOptions.from_flat(typed)  # every range check of the CLI
    check_export_limits(opts)
    if "size" in typed:
        typed["size"] = "{}x{}".format(*typed["size"])
    return {name: typed[name] for name in OPTION_NAMES if name in typed}


def check_export_limits(opts: ClipOptions, photo_size: tuple[int, int] | None = None) -> None:
    """Refuse a clip beyond the preview's limits. photo_size: (W, H) of the photo, the
    clip's size when it has no --size (known when an export is submitted)."""
    later = "use photo3d render for"
    if opts.render.size is not None and max(opts.render.size) > MAX_EXPORT_SIDE:
        w, h = opts.render.size
        raise Photo3DError(f"size {w}x{h}: the preview exports at most {MAX_EXPORT_SIDE} pixels per side "
                           f"({later} larger clips)")
    if opts.render.size is None and photo_size is not None and max(photo_size) > MAX_EXPORT_SIDE:
        w, h = photo_size
        raise Photo3DError(f"the photo is {w}x{h} and the preview exports at most {MAX_EXPORT_SIDE} pixels "
                           f"per side: choose a size ({later} larger clips)")
    size = opts.render.size or photo_size
    if size is not None and opts.render.stereo in ("sbs", "tb") and not opts.render.vr180:
        w, h = stereo_output_size(size, opts.render.stereo)
        if max(w, h) > MAX_EXPORT_SIDE:
            raise Photo3DError(f"--stereo {opts.render.stereo} makes {w}x{h} frames and the preview exports at most "
                               f"{MAX_EXPORT_SIDE} pixels per side: choose a smaller size or half-{opts.render.stereo} "
                               f"({later} larger clips)")
    if opts.path.duration > MAX_EXPORT_SECONDS:
        raise Photo3DError(f"duration {opts.path.duration:g} s: the preview exports at most {MAX_EXPORT_SECONDS} s "
                           f"({later} longer clips)")
    if opts.path.fps > MAX_EXPORT_FPS:
        raise Photo3DError(f"fps {opts.path.fps:g}: the preview exports at most {MAX_EXPORT_FPS} fps "
                           f"({later} higher rates)")


@dataclass(frozen=True)
class PreviewRequest:
    """A request's fields, checked by ``check_request``. image: a photo id, its syntax
    checked (the Previewer says whether it is one of its photos); options: the option
    fields as ``clean_options`` returns them; scene: the LDI options among them; own: the
    endpoint's own fields as given (the endpoint checks their values: ``frame_camera``)."""

    image: str
    options: dict
    scene: SceneOptions
    own: dict = field(default_factory=dict)


def check_request(fields: Mapping[str, Any], own: Collection[str] = ()) -> PreviewRequest:
    """The one validator of every endpoint, HTTP and WebSocket: ``fields`` (a query
    string, a frame request, a flattened JSON body) may hold the image, the options and
    the endpoint's ``own`` fields, nothing else; every option is checked, so no field
    can name a file."""
    unknown = set(fields) - {"image", *OPTION_NAMES, *own}
    if unknown:
        raise _unknown(unknown)
    image = fields.get("image")
    if not isinstance(image, str):
        raise Photo3DError("image must be the id of one of the photos (text)")
    safe_relative(image)
    options = clean_options({k: fields[k] for k in OPTION_NAMES if k in fields})
    return PreviewRequest(image, options, scene_options(options), {k: fields[k] for k in own if k in fields})


def check_body(body: Any) -> PreviewRequest:
    """An export's or a settings row's JSON body, ``{"image": ..., "options": {...}}``."""
    if not isinstance(body, dict):
        raise Photo3DError('request body must be a JSON object like {"image": ..., "options": {...}}')
    if set(body) - {"image", "options"}:
        raise _unknown(set(body) - {"image", "options"})
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise Photo3DError("options must be a JSON object")
    if "image" in options and options["image"] != body.get("image"):
        raise Photo3DError("options.image differs from image")
    return check_request({**options, "image": body.get("image")})


def frame_camera(own: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(c2w 4x4, K 3x3, (W, H)) of a frame request, finite, at most MAX_STREAM_SIDE per side."""
    try:
        c2w = np.asarray(own["c2w"], np.float64).reshape(4, 4)
        K = np.asarray(own["K"], np.float64).reshape(3, 3)
        size = (_side(own["width"]), _side(own["height"]))
    except (KeyError, TypeError, ValueError, OverflowError):
        raise Photo3DError("a frame request needs c2w (16 numbers), K (9 numbers), width and height") from None
    if not (np.isfinite(c2w).all() and np.isfinite(K).all()):
        raise Photo3DError("c2w and K must be finite")
    if not (16 <= size[0] <= MAX_STREAM_SIDE and 16 <= size[1] <= MAX_STREAM_SIDE):
        raise Photo3DError(f"frame size {size[0]}x{size[1]} must be 16..{MAX_STREAM_SIDE} per side")
    return c2w, K, size


def _side(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(value)
    return int(_scalar("width", value))
