"""The clip options the preview's page may set, read and checked through ``config`` as
the CLI's and batch manifests' are, and narrowed: only presets and depth methods, never
file names, so that no request can make the server read a file.

Options travel by their flat names (path, amount, duration, fps, fov, size "WxH",
overscan, depth), the same a batch manifest row takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import ClipOptions, PathConfig, convert_option, convert_options
from ..depth import DEPTH_METHODS
from ..errors import Photo3DError
from ..scene.paths import ALIASES, PRESETS

#: The options the page may set.
OPTION_NAMES = ("path", "amount", "duration", "fps", "fov", "size", "overscan", "depth")
#: Longest export the page may ask for (frames); the CLI has no such limit.
MAX_EXPORT_FRAMES = 3600


def depth_method(value: Any) -> str:
    """A depth method (auto, cues, a model) by name; never a depth-map file."""
    depth = str(value or "auto")
    if depth not in DEPTH_METHODS:
        raise Photo3DError(f"depth {depth!r} is not a depth method; choose one of {', '.join(DEPTH_METHODS)}")
    return depth


def scene_options(query: Mapping[str, Any]) -> tuple[float | None, str]:
    """(fov, depth method) of a request: what a photo's preview LDI is built for."""
    return convert_option("fov", query.get("fov")), depth_method(query.get("depth"))


def clean_options(options: Any) -> dict:
    """Checked options by flat name, unset ones left out, path and depth always given:
    what an export job runs and a manifest row stores (size as "WxH")."""
    if not isinstance(options, dict):
        raise Photo3DError("options must be a JSON object")
    unknown = sorted(set(options) - set(OPTION_NAMES) - {"image"})
    if unknown:
        raise Photo3DError(f"unknown option(s) {', '.join(unknown)}; the page may set {', '.join(OPTION_NAMES)}")
    typed = convert_options({k: v for k, v in options.items() if k != "image"})
    path = str(typed.get("path", PathConfig.preset)).lower()
    if path not in PRESETS and path not in ALIASES:
        raise Photo3DError(f"path {path!r} is not a preset; choose one of {', '.join(PRESETS)}")
    typed.update(path=path, depth=depth_method(typed.get("depth")))
    opts = ClipOptions.from_flat(typed)  # every range check of the CLI
    if opts.path.n_frames > MAX_EXPORT_FRAMES:
        raise Photo3DError(
            f"{opts.path.duration:g} s at {opts.path.fps:g} fps is {opts.path.n_frames} frames; the preview "
            f"allows at most {MAX_EXPORT_FRAMES} (use photo3d render for longer clips)"
        )
    if "size" in typed:
        typed["size"] = "{}x{}".format(*typed["size"])
    return {name: typed[name] for name in OPTION_NAMES if name in typed}
