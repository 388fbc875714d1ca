"""photo3d_fast: one photo in, a 3D parallax clip out.

Public API (everything else may change):

- ``render_clip(image_path, out_path, **options) -> Path``: the whole pipeline; options by
  their flat names (``config.OPTIONS``, the CLI's flags) or ``options=ClipOptions(...)``.
- ``render_stereo(image_path, out_path, **options) -> Path``: one stereo image (or VR180
  pair) of the photo at its own viewpoint; the same options.
- ``export_scene(image_path, out_path, **options) -> Path``: the photo's 3D scene as .glb,
  .gltf, .obj or .ply (the scene's options as ``render_clip``'s, plus max_faces, mesh).
- ``matte(image_path, out_path, **options) -> Path``: the subject cut out as an RGBA PNG;
  ``composite(image_path, out_path, background, **options) -> Path``: it over a new
  background (``photo3d_fast.effects.matte``, with ``matte_array`` for arrays).
- ``refocus(image_path, out_path, **options) -> Path``: the photo with thin-lens depth of
  field (``photo3d_fast.effects.refocus``, with ``refocus_array`` for arrays).
- ``render_views(image, depth, K, poses, size=None, layers=2, kernels="auto")``: render
  novel views of a photo with known depth and cameras.
- building blocks: ``load_image``, ``estimate_disparity``, ``build_ldi``, ``Renderer``,
  ``make_path``/``preset_path``/``CameraPath``, ``VideoWriter``, the config dataclasses,
  and ``Photo3DError`` (bad input or options).
"""

__version__ = "0.1.0"

from .clip import render_clip
from .config import ClipOptions, DepthConfig, EncodeConfig, EngineConfig, PathConfig, RenderConfig, SceneConfig
from .depth import estimate_disparity
from .encode.writers import PngFrameWriter, VideoWriter
from .effects.matte import composite, matte
from .effects.refocus import refocus
from .errors import Photo3DError
from .export import export_scene
from .io import load_depth_map, load_image
from .render import Renderer, render_views
from .scene.camera import disparity_to_depth, intrinsics_from_fov
from .scene.ldi import LDI, build_ldi
from .scene.paths import CameraPath, make_path, preset_path
from .stereo_still import render_stereo

__all__ = [
    "CameraPath",
    "ClipOptions",
    "DepthConfig",
    "EncodeConfig",
    "EngineConfig",
    "LDI",
    "PathConfig",
    "Photo3DError",
    "PngFrameWriter",
    "RenderConfig",
    "Renderer",
    "SceneConfig",
    "VideoWriter",
    "build_ldi",
    "composite",
    "disparity_to_depth",
    "estimate_disparity",
    "export_scene",
    "intrinsics_from_fov",
    "load_depth_map",
    "load_image",
    "make_path",
    "matte",
    "preset_path",
    "refocus",
    "render_clip",
    "render_stereo",
    "render_views",
]
