"""One photo to the frames of its clips: the stages of docs/architecture.md wired together.

decode -> depth -> scene (K, z-depth) -> LDI -> per frame: render -> sinks. The files a
clip is written to are ``clip``'s (``write_clip``, ``render_clip``); ``write_depth`` saves
a photo's depth map.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .config import ClipOptions, DepthConfig, EngineConfig, RenderConfig, SceneConfig, stereo_output_size
from .depth import DEPTH_METHODS, DEPTH_MODELS, EngineOptions, estimate_disparity, is_depth_method
from .depth.guided import guided_upsample
from .device import resolve_device
from .errors import Photo3DError, notice
from .inpaint import resolve_inpaint
from .io import Photo, check_output, load_depth_map, load_image, remove_stale_partials, resize_map, write_atomic
from .render import Renderer
from .render.effects import effects_for
from .render.stereo import compose, default_ipd, equirect_180, vr180_side
from .scene.camera import disparity_to_depth, normalize_disparity, scale_intrinsics, scene_intrinsics, zoom_intrinsics
from .scene.ldi import LDI, build_ldi, ldi_params_for_motion
from .scene.paths import CameraPath, default_focus, make_path, overscan_zoom
from .upscale import upscale_engine, upscale_image, upscale_with_model

#: The photo bundled with the package (CC0, see data/README.md), for ``--sample``.
SAMPLE_IMAGE = Path(__file__).parent / "data" / "coffee.jpg"


@dataclass(frozen=True)
class PreparedPhoto:
    """A photo with its scene: what every clip of one photo shares, computed once.

    name: for messages; rgb: (H, W, 3) uint8; K: (3, 3) intrinsics of rgb; depth: (H, W)
    float32 z-depth (scene units); notes: where depth and field of view came from.
    """

    name: str
    rgb: np.ndarray
    K: np.ndarray
    depth: np.ndarray
    notes: str


def _did_you_mean(text: str, choices) -> str:
    import difflib

    close = difflib.get_close_matches(text, list(choices), n=1)
    return f"; did you mean {close[0]}?" if close else ""


def engine_options(engine: EngineConfig, render: RenderConfig | None = None) -> EngineOptions:
    """The learned-model options of a clip (the renderer's device runs them too; --offline
    forbids downloads)."""
    return EngineOptions(engine.runtime, engine.precision, render.device if render else "auto", engine.weights,
                         fetch=not engine.offline)


def scene_depth(rgb: np.ndarray, config: DepthConfig, scene: SceneConfig, engine: EngineOptions = EngineOptions(),
                quiet: bool = True) -> tuple[np.ndarray, str]:
    """z-depth (H, W) float32 of the photo ``rgb`` and a note of its source.

    A user's depth map of another size is resized to the photo's, with a note.
    """
    source = config.source
    if is_depth_method(source):
        disparity, note = estimate_disparity(rgb, source, engine, quiet)
        return disparity_to_depth(normalize_disparity(disparity), scene.near, scene.far), note
    if not Path(source).exists():
        raise Photo3DError(
            f"--depth {source!r} is neither a depth method (auto, cues, {', '.join(DEPTH_MODELS)}) "
            f"nor an existing depth-map file{_did_you_mean(source, DEPTH_METHODS)}"
        )
    values = load_depth_map(source, rgb.shape[:2], config.kind)
    if config.kind == "depth":
        return np.maximum(values, 1e-6).astype(np.float32), f"file {source} (z-depth)"
    return disparity_to_depth(normalize_disparity(values), scene.near, scene.far), f"file {source} (disparity)"


def prepare_photo(photo: Photo, name: str, scene: SceneConfig = SceneConfig(), depth: DepthConfig = DepthConfig(),
                  engine: EngineOptions = EngineOptions(), quiet: bool = True) -> PreparedPhoto:
    """Intrinsics and depth of a loaded photo: the per-photo stage of docs/architecture.md."""
    h, w = photo.rgb.shape[:2]
    K, fov_note = scene_intrinsics(w, h, scene, photo.exif_fov)
    z, depth_note = scene_depth(photo.rgb, depth, scene, engine, quiet)
    return PreparedPhoto(name, photo.rgb, K, z, f"depth: {depth_note}; fov: {fov_note}")


def _working_image(rgb: np.ndarray, K: np.ndarray, out_size: tuple[int, int], max_zoom: float) -> tuple[np.ndarray, np.ndarray]:
    """Downscale a photo that has more pixels than the output can show.

    The LDI needs about one texel per output pixel at the path's strongest zoom; a 24 MP
    photo rendered to 540p would otherwise cost 40x the work per frame for nothing.
    """
    h, w = rgb.shape[:2]
    scale = max(out_size[0] / w, out_size[1] / h) * max_zoom
    if scale >= 1.0:
        return rgb, K
    size = (max(16, round(w * scale)), max(16, round(h * scale)))
    small = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))
    return small, scale_intrinsics(K, (w, h), size)


def output_size(prepared: PreparedPhoto | Photo, opts: ClipOptions) -> tuple[int, int]:
    """(W, H) of a clip's rendered view (of each eye, in stereo): --size, else the photo's."""
    h, w = prepared.rgb.shape[:2]
    return opts.render.size or (w, h)


def video_size(prepared: PreparedPhoto | Photo, opts: ClipOptions) -> tuple[int, int]:
    """(W, H) of a clip's video frames: ``output_size``, doubled across by --stereo sbs and
    down by tb; Photo3DError when that is over ``config.MAX_OUTPUT_SIDE`` (with the photo's
    size, only known here). With --vr180, each eye is its half sphere (``vr180_eye_side``)."""
    if opts.render.vr180:
        side = vr180_eye_side(prepared, opts)
        return stereo_output_size((side, side), opts.render.stereo)
    return stereo_output_size(output_size(prepared, opts), opts.render.stereo)


def vr180_eye_side(prepared: PreparedPhoto | Photo, opts: ClipOptions) -> int:
    """S of each eye's S x S half sphere with --vr180: ``stereo.vr180_side`` of the rendered
    view's focal length (the photo's field of view at ``output_size``)."""
    h, w = prepared.rgb.shape[:2]
    K = prepared.K if isinstance(prepared, PreparedPhoto) else scene_intrinsics(w, h, opts.scene, prepared.exif_fov)[0]
    return vr180_side(scale_intrinsics(K, (w, h), output_size(prepared, opts))[0, 0])


@dataclass(frozen=True)
class ClipPlan:
    """What one clip renders, before the LDI: path: the camera path with the overscan
    zoom applied; rgb, K, depth: the working image (the photo, downscaled when it has
    more pixels than the output needs), its intrinsics and z-depth; K_out, size: the
    output camera and (W, H); overscan: the zoom applied (1 = none); near, focus: the
    depths (scene units) the path was made for (the nearest content's, 1st percentile, and
    the plane that stays still), which also scale stereo's defaults."""

    path: CameraPath
    rgb: np.ndarray
    K: np.ndarray
    depth: np.ndarray
    K_out: np.ndarray
    size: tuple[int, int]
    overscan: float
    near: float = 1.0
    focus: float = 1.0


def plan_clip(prepared: PreparedPhoto, opts: ClipOptions) -> ClipPlan:
    """The per-clip geometry of ``opts``: the one place export and the preview share."""
    h, w = prepared.rgb.shape[:2]
    out_size = output_size(prepared, opts)
    z_full = prepared.depth
    near = float(np.percentile(z_full, 1.0))
    focus = opts.path.focus or default_focus(z_full)
    path = make_path(opts.path, near=near, focus=focus)
    rgb, K = _working_image(prepared.rgb, prepared.K, out_size, max(1.0, float(path.zoom.max())))
    z = z_full if rgb.shape[:2] == (h, w) else resize_map(z_full, rgb.shape[:2])
    K_out = scale_intrinsics(K, (rgb.shape[1], rgb.shape[0]), out_size)
    ipd, convergence = stereo_params(opts, near, focus)
    eyes = (ipd, convergence) if opts.render.stereo != "none" else None
    overscan = overscan_zoom(path, K, z, K_out, out_size, eyes) if opts.render.overscan else 1.0
    return ClipPlan(CameraPath(path.poses, path.zoom * overscan), rgb, K, z, K_out, out_size, overscan, near, focus)


def stereo_params(opts: ClipOptions, near: float, focus: float) -> tuple[float, float]:
    """(ipd, convergence) of a clip, scene units: --ipd, else ``stereo.default_ipd(near)``;
    --convergence, else the path's focus depth; infinity (parallel eyes) with --vr180.
    near, focus: ``ClipPlan``'s."""
    if opts.render.vr180:
        return opts.render.ipd or default_ipd(near), math.inf
    return opts.render.ipd or default_ipd(near), opts.render.convergence or focus


def upscale_texture(prepared: PreparedPhoto, plan: ClipPlan, opts: ClipOptions, quiet: bool = False) -> ClipPlan:
    """``plan`` with its working image super-resolved (``--upscale``, texture mode): when the
    output at the path's strongest zoom needs more pixels than the photo has, the photo is
    upscaled by the model (4x), resized to what the output needs, and its depth follows with
    an edge-aware (guided) upsampling so depth edges land on the sharper image's edges."""

    h, w = prepared.rgb.shape[:2]
    need = max(plan.size[0] / w, plan.size[1] / h) * max(1.0, float(plan.path.zoom.max()))
    if need <= 1.0:
        notice(f"--upscale {opts.engine.upscale}: the photo already has the pixels the output needs; skipped", quiet)
        return plan
    sr, note = upscale_with_model(prepared.rgb, opts.engine.upscale, engine_options(opts.engine, opts.render), quiet=quiet)
    factor = min(need, sr.shape[1] / w)
    size = (max(16, round(w * factor)), max(16, round(h * factor)))
    rgb = sr if (sr.shape[1], sr.shape[0]) == size else np.asarray(Image.fromarray(sr).resize(size, Image.Resampling.LANCZOS))
    disparity = 1.0 / prepared.depth
    guide = torch.from_numpy(prepared.rgb).permute(2, 0, 1).float() / 255.0
    up = guided_upsample(guide, torch.from_numpy(disparity.astype(np.float32)), rgb, radius=1, eps=1e-4).numpy()
    up = np.clip(up, disparity.min(), disparity.max())
    notice(f"upscaled the photo {w}x{h} -> {size[0]}x{size[1]} with {note}", quiet)
    K = scale_intrinsics(prepared.K, (w, h), size)
    return ClipPlan(plan.path, rgb, K, (1.0 / up).astype(np.float32), plan.K_out, plan.size, plan.overscan, plan.near,
                    plan.focus)


class _FrameUpscaler:
    """``--upscale-mode frames``: frames rendered at about 1/scale of the output size are
    super-resolved and resized to the output size, one by one, before the sinks."""

    def __init__(self, opts: ClipOptions, out_size: tuple[int, int], quiet: bool) -> None:

        # The engine is resolved once here, not per frame.
        self.engine, self.spec, self.batch = upscale_engine(opts.engine.upscale, engine_options(opts.engine, opts.render),
                                                            quiet=quiet)
        s = self.spec.scale
        self.small = (max(16, -(-out_size[0] // s)), max(16, -(-out_size[1] // s)))
        self.out_size = out_size

    def __call__(self, frame: torch.Tensor) -> np.ndarray:

        sr = upscale_image(frame.cpu().numpy(), self.engine, self.spec.scale, batch=self.batch, device=self.engine.device)
        if (sr.shape[1], sr.shape[0]) != self.out_size:
            sr = np.asarray(Image.fromarray(sr).resize(self.out_size, Image.Resampling.LANCZOS))
        return sr


def clip_ldi(plan: ClipPlan, opts: ClipOptions, reach: float, quiet: bool = False) -> tuple[LDI, str]:
    """The LDI of a clip's working image, for a camera that moves at most ``reach`` (scene
    units) from the photo's (band and edge threshold: ``ldi_params_for_motion``), on the
    clip's device, and the inpainting method it was coloured with (``--inpaint`` resolved;
    1 layer needs none: "classic")."""
    work = (plan.rgb.shape[1], plan.rgb.shape[0])
    band, edge = ldi_params_for_motion(plan.K, plan.depth, reach, work)
    engine = engine_options(opts.engine, opts.render)
    inpaint = resolve_inpaint(opts.engine.inpaint, engine, quiet) if opts.render.layers > 1 else "classic"
    ldi = build_ldi(plan.rgb, plan.depth, plan.K, layers=opts.render.layers, band=band, edge_disparity=edge,
                    device=resolve_device(opts.render.device), kernels=opts.render.kernels,
                    clean_depth=opts.render.clean_depth, inpaint=inpaint, engine=engine)
    return ldi, inpaint


def render_into(prepared: PreparedPhoto, opts: ClipOptions, sinks: list, quiet: bool = False) -> int:
    """Render the clip of ``opts`` and write every frame to each sink (VideoWriter,
    PngFrameWriter...). Per clip: path, working resolution, LDI, frames. Returns the
    number of frames."""
    t0 = time.perf_counter()
    h, w = prepared.rgb.shape[:2]
    device = resolve_device(opts.render.device)
    vr_side = vr180_eye_side(prepared, opts) if opts.render.vr180 else 0
    upscale_frames = None
    if opts.engine.upscale != "none" and opts.engine.upscale_mode == "frames":
        upscale_frames = _FrameUpscaler(opts, output_size(prepared, opts), quiet)
        opts = replace(opts, render=replace(opts.render, size=upscale_frames.small))
    plan = plan_clip(prepared, opts)
    if opts.engine.upscale != "none" and upscale_frames is None:
        plan = upscale_texture(prepared, plan, opts, quiet)
    path, out_size = plan.path, plan.size
    stereo = opts.render.stereo
    ipd, convergence = stereo_params(opts, plan.near, plan.focus)
    # Each eye sits ipd/2 beside the path's camera: the LDI's back layers must cover that too.
    reach = path.max_translation() + (0.5 * ipd if stereo != "none" else 0.0)
    ldi, inpaint = clip_ldi(plan, opts, reach, quiet)
    effects = effects_for(opts.effects, plan.focus, len(path), out_size, opts.render.kernels, device)
    renderer = Renderer(ldi, opts.render.kernels, opts.render.frames_per_launch, effects)
    batch = renderer.batch_size(out_size)
    K_out = plan.K_out
    notice(f"{prepared.name} {w}x{h} -> {out_size[0]}x{out_size[1]}"
        + (f" (each frame upscaled to {upscale_frames.out_size[0]}x{upscale_frames.out_size[1]} "
           f"with {upscale_frames.spec.name})" if upscale_frames else "")
        + (f", stereo {stereo} (ipd {ipd:.4g}, convergence {convergence:.4g} scene units)" if stereo != "none" else "")
        + (f", VR180 {vr_side}x{vr_side} per eye" if vr_side else "")
        + f", {len(path)} frames at "
        f"{opts.path.fps:g} fps; {prepared.notes}; inpaint: {inpaint}; overscan {plan.overscan:.3f}; kernels: {renderer.kernels} on {device}"
        + (f" ({batch} frames per launch)" if batch > 1 and stereo == "none" else "")
        + (f" (both eyes of {max(1, batch // 2)} frames per launch)" if stereo != "none" else "")
        + (f"; effects: {effects.describe()}" if effects is not None else "")
        + "; "
        f"LDI in {time.perf_counter() - t0:.1f} s", quiet)
    from tqdm import tqdm

    if stereo == "none":
        views = renderer.render_path(path, K_out, out_size)
    else:
        views = renderer.render_stereo_path(path, K_out, out_size, ipd, convergence)
    frames = tqdm(views, total=len(path), desc="render",
                  unit="frame", disable=quiet, file=sys.stderr, leave=False)
    for i, frame in enumerate(frames):
        if stereo != "none":
            left, right = frame
            if upscale_frames is not None:
                left, right = (torch.from_numpy(upscale_frames(eye)) for eye in (left, right))
            if vr_side:
                eye_size = (left.shape[1], left.shape[0])
                K_eye = scale_intrinsics(zoom_intrinsics(K_out, float(path.zoom[i]), out_size), out_size, eye_size)
                left, right = equirect_180(torch.stack([left, right]), torch.as_tensor(K_eye)[None].repeat(2, 1, 1),
                                           vr_side)
            frame = compose(left, right, stereo)
        elif upscale_frames is not None:
            frame = upscale_frames(frame)
        for sink in sinks:
            sink.write(frame)
    return len(path)


def write_depth(image_path: str | Path | None, out_path: str | Path, *, depth: str = "auto", quiet: bool = False,
                runtime: str = "auto", precision: str = "auto", device: str = "auto", weights: str | None = None,
                offline: bool = False) -> Path:
    """Estimate a photo's disparity and save it: 16-bit PNG (white = near) or .npy float32
    in [0, 1]. ``photo3d render --depth FILE`` reads either back. Written atomically.
    depth: "auto", "cues" or a depth model; runtime/precision/device/weights: how the model
    runs; offline: never download weights."""
    import os

    image_path = SAMPLE_IMAGE if image_path is None else Path(image_path)
    out_path = Path(out_path)
    suffix = out_path.suffix.lower()
    if suffix not in (".png", ".npy"):
        raise Photo3DError(f"depth output {str(out_path)!r} must end in .png (16-bit) or .npy")
    check_output(out_path, [image_path], "depth output")
    if not out_path.parent.resolve().is_dir() or not os.access(out_path.parent.resolve(), os.W_OK):
        raise Photo3DError(f"cannot write {str(out_path)!r}: directory {str(out_path.parent)!r} is missing or not writable")
    remove_stale_partials(out_path.parent, lambda name: name == out_path.name)
    photo = load_image(image_path)
    options = EngineOptions(runtime, precision, device, weights, fetch=not offline)
    disparity, note = estimate_disparity(photo.rgb, depth, options, quiet)
    disparity = normalize_disparity(disparity)
    if suffix == ".png":
        write_atomic(out_path, Image.fromarray((disparity * 65535.0 + 0.5).astype(np.uint16)).save, suffix)
    else:
        write_atomic(out_path, lambda tmp: np.save(tmp, disparity.astype(np.float32)), suffix)
    notice(f"wrote {out_path} ({note})", quiet)
    return out_path
