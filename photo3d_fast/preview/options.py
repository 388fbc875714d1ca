"""The clip options the preview's page may set, read and checked through ``config`` as
the CLI's and batch manifests' are, and narrowed: only presets, depth methods and
inpainting methods, never file names, so that no request can make the server read a file.

Options travel by their flat names (path, amount, duration, fps, fov, size "WxH",
overscan, depth, inpaint, clean_depth), the same a batch manifest row takes. Four of them
(``SCENE_OPTION_NAMES``) change the layered depth image itself; the rest only move the
camera or shape the output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import ClipOptions, EngineConfig, PathConfig, RenderConfig, convert_options
from ..depth import DEPTH_METHODS
from ..errors import Photo3DError
from ..scene.paths import ALIASES, PRESETS

#: The options the page may set.
OPTION_NAMES = ("path", "amount", "duration", "fps", "fov", "size", "overscan", "depth", "inpaint", "clean_depth")
#: The options that change a photo's LDI (what the page draws and the server renders).
SCENE_OPTION_NAMES = ("fov", "depth", "inpaint", "clean_depth")
#: Longest export the page may ask for (frames); the CLI has no such limit.
MAX_EXPORT_FRAMES = 3600


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
