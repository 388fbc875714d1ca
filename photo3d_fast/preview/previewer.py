"""The state of one preview server: its photos, their depth and preview LDIs (computed
once and kept in a cache bounded in bytes), the poses and frames the page asks for,
export jobs and settings.

A preview LDI is built as ``pipeline.render_into`` builds an export's (layers 2, the
clip's ``clean_depth``, ``--inpaint`` resolved with the clip's engine options, the
renderer's kernels), at preview resolution and for the motion of ``LDI_AMOUNT``; the
page draws it in WebGL2 and the server's ``Renderer`` renders its frames, so both show
what export renders.

Nothing here knows HTTP: ``server`` maps requests onto these methods, after
``options.check_request``. The methods check again what reaches a file: photos by id,
depth by method name only.
"""

from __future__ import annotations

import io
import math
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from ..clip import write_clip
from ..config import ClipOptions, DepthConfig, EngineConfig, RenderConfig, SceneConfig
from ..device import resolve_device
from ..errors import Photo3DError
from ..export import export_ldi, scene_files
from ..inpaint import resolve_inpaint
from ..io import Photo, load_image, resize_map
from ..ops import fill as fill_op
from ..ops import splat as splat_op
from ..pipeline import PreparedPhoto, engine_options, plan_clip, scene_depth
from ..render import Renderer
from ..scene.camera import scale_intrinsics, scene_intrinsics
from ..scene.ldi import LDI, build_ldi, ldi_params_for_motion
from ..scene.paths import BASE_RADIUS, default_focus, preset_path
from .cache import ByteLRU
from .jobs import Job, JobQueue, Progress
from .options import CACHE_BYTES, MAX_QUEUED_EXPORTS, SceneOptions, check_export_limits, clean_options, depth_method
from .photos import IMAGE_SUFFIXES, MANIFEST_NAME, SettingsManifest, list_photos, safe_relative

#: The LDI sent to the page is built for a motion of this ``amount`` (circle preset), the
#: top of the page's slider range that most clips use; larger amounts still render, with
#: the edge threshold of this one.
LDI_AMOUNT = 2.0
#: Layers of the preview LDI: the export's default (``RenderConfig.layers``).
LDI_LAYERS = RenderConfig.layers


#: The renderer's constants the page's WebGL2 splatting uses (``ops/splat.py``,
#: ``ops/fill.py``), sent with the scene so that they are defined once.
RENDER_CONSTANTS = {
    "footprint_margin": splat_op.FOOTPRINT_MARGIN,
    "max_half_extent": splat_op.MAX_HALF_EXTENT,
    "resolve_share": splat_op.RESOLVE_SHARE,
    "coverage_full": splat_op.COVERAGE_FULL,
    "z_near": splat_op.Z_NEAR,
    "far_power": fill_op.FAR_POWER,
}


@dataclass
class Scene:
    """The preview data of one (photo, scene options): prepared photo, preview LDI, renderer."""

    prepared: PreparedPhoto
    ldi: LDI  # at preview resolution
    renderer: Renderer  # of ldi
    near: float  # the depth paths scale with (1st percentile), as render_into computes it
    focus: float
    disparity_range: tuple[float, float]
    inpaint: str  # the method that coloured the back layer ("auto" resolved)
    clean_depth: bool


class Previewer:
    """State of one preview server: photos, caches, export jobs, manifest.

    photo: one photo (single mode) or folder: a directory (folder mode); cache_bytes:
    the budget of the photo/depth/LDI cache.
    """

    def __init__(self, photo: Path | None = None, folder: Path | None = None, manifest: Path | None = None,
                 max_side: int = 1024, kernels: str = "auto", device: str = "auto", work_dir: Path | None = None,
                 cache_bytes: int = CACHE_BYTES) -> None:

        if (photo is None) == (folder is None):
            raise Photo3DError("give either a photo or --folder DIR")
        if folder is not None:
            if not folder.is_dir():
                raise Photo3DError(f"--folder {str(folder)!r} is not a directory")
            self.mode = "folder"
            self.root = folder.resolve()
            self.photos = list_photos(self.root)
            if not self.photos:
                raise Photo3DError(f"--folder {str(folder)!r} holds no photos ({', '.join(sorted(IMAGE_SUFFIXES))})")
            self.manifest = (manifest or self.root / MANIFEST_NAME).absolute()
            if not self.manifest.parent.is_dir():
                raise Photo3DError(f"--manifest {str(manifest)!r}: its directory does not exist")
            self.settings = SettingsManifest(self.manifest, self.root, self.photos)
        else:
            if not photo.is_file():
                raise Photo3DError(f"photo {str(photo)!r} does not exist or is not a file")
            self.mode = "single"
            self.root = photo.resolve().parent
            self.photos = [photo.resolve().name]
            self.manifest = None
            self.settings = None
        if not (64 <= max_side <= 8192):
            raise Photo3DError(f"--max-side {max_side} must be between 64 and 8192")
        self.max_side = max_side
        self.kernels = kernels
        self.device = resolve_device(device)
        # ignore_cleanup_errors: an export that did not stop within the shutdown's wait (a
        # depth model mid-run) may still write into the directory as it is removed.
        self._tmp = (tempfile.TemporaryDirectory(prefix="photo3d-preview-", ignore_cleanup_errors=True)
                     if work_dir is None else None)
        self.work_dir = Path(self._tmp.name) if work_dir is None else work_dir
        self._lock = threading.Lock()
        # Photos, depth maps and scenes, keyed on the photo's id (never its spelling in a
        # request) and what else they depend on.
        self.cache = ByteLRU(cache_bytes)
        self.jobs = JobQueue(self.work_dir, self._render_job, max_pending=MAX_QUEUED_EXPORTS)

    # photos -----------------------------------------------------------------------
    def photo_id(self, image: str) -> str:
        """The id of one of this server's photos as ``image`` names it ("./sub/b.jpg" and
        "sub//b.jpg" are "sub/b.jpg"); Photo3DError for anything else."""
        rel = safe_relative(image).as_posix()
        if rel not in self.photos:
            raise Photo3DError(f"image {image!r} is not one of the photos this server shows")
        return rel

    def photo_path(self, image: str) -> Path:
        path = (self.root / self.photo_id(image)).resolve()
        if not path.is_relative_to(self.root):  # a symlink swapped in after start
            raise Photo3DError(f"image {image!r} leads outside the folder")
        return path

    def _cached(self, key: tuple, make: Callable[[], object]):
        found = self.cache.get(key)
        return found if found is not None else self.cache.put(key, make())

    def _photo(self, image: str) -> Photo:
        path = self.photo_path(image)
        return self._cached(("photo", self.photo_id(image)), lambda: load_image(path))

    def prepared(self, image: str, fov: float | None, depth: str) -> PreparedPhoto:
        """PreparedPhoto of ``image``: depth computed once per (photo, depth method)."""
        depth = depth_method(depth)  # the depth loader's one caller: never a file name
        image = self.photo_id(image)
        photo = self._photo(image)
        scene = SceneConfig(fov=fov)
        z, depth_note = self._cached(("depth", image, depth),
                                     lambda: scene_depth(photo.rgb, DepthConfig(source=depth), scene))
        h, w = photo.rgb.shape[:2]
        K, fov_note = scene_intrinsics(w, h, scene, photo.exif_fov)
        return PreparedPhoto(Path(image).name, photo.rgb, K, z, f"depth: {depth_note}; fov: {fov_note}")

    def scene_clip_options(self, opts: SceneOptions) -> ClipOptions:
        """The ClipOptions an export of these scene options runs with (this server's
        kernels and device, defaults elsewhere): what the preview LDI is built from."""
        return ClipOptions.from_flat({"fov": opts.fov, "depth": opts.depth, "inpaint": opts.inpaint,
                                      "clean_depth": opts.clean_depth, "kernels": self.kernels,
                                      "device": str(self.device)})

    def scene(self, image: str, fov: float | None = None, depth: str = "auto", inpaint: str = EngineConfig.inpaint,
              clean_depth: bool = RenderConfig.clean_depth) -> Scene:
        """The preview LDI of a photo, built once per (photo, fov, depth method, resolved
        inpainting method, clean_depth) as an export builds its LDI (module doc)."""

        opts = self.scene_clip_options(SceneOptions(fov, depth, inpaint, clean_depth))
        engine = engine_options(opts.engine, opts.render)
        method = resolve_inpaint(opts.engine.inpaint, engine, quiet=True)  # layers=2: render_into's rule
        image = self.photo_id(image)
        key = ("scene", image, opts.scene.fov, depth, method, opts.render.clean_depth)
        return self._cached(key, lambda: self._build_scene(image, opts, method))

    def _build_scene(self, image: str, opts: ClipOptions, method: str) -> Scene:
        engine = engine_options(opts.engine, opts.render)
        prepared = self.prepared(image, opts.scene.fov, opts.depth.source)
        h, w = prepared.rgb.shape[:2]
        s = min(1.0, self.max_side / max(w, h))
        size = (max(16, round(w * s)), max(16, round(h * s)))
        if size != (w, h):
            rgb = np.asarray(Image.fromarray(prepared.rgb).resize(size, Image.Resampling.LANCZOS))
            K = scale_intrinsics(prepared.K, (w, h), size)
            z = resize_map(prepared.depth, (size[1], size[0]))
        else:
            rgb, K, z = prepared.rgb, prepared.K, prepared.depth
        near = float(np.percentile(prepared.depth, 1.0))
        focus = default_focus(prepared.depth)
        motion = preset_path("circle", 64, LDI_AMOUNT, near, focus).max_translation()
        band, edge = ldi_params_for_motion(K, z, motion, size)
        ldi = build_ldi(rgb, z, K, layers=LDI_LAYERS, band=band, edge_disparity=edge, device=self.device,
                        kernels=opts.render.kernels, clean_depth=opts.render.clean_depth, inpaint=method,
                        engine=engine)
        disp = 1.0 / ldi.depth[ldi.valid]
        return Scene(prepared, ldi, Renderer(ldi, self.kernels), near, focus,
                     (float(disp.min()), float(disp.max())), method, opts.render.clean_depth)

    def scene_of(self, image: str, opts: SceneOptions) -> Scene:
        """``scene`` of checked scene options."""
        return self.scene(image, opts.fov, opts.depth, opts.inpaint, opts.clean_depth)

    def scene_json(self, image: str, opts: SceneOptions) -> dict:

        sc = self.scene_of(image, opts)
        w, h = sc.ldi.size
        ph, pw = sc.prepared.rgb.shape[:2]
        return {
            "image": self.photo_id(image),
            "width": w,
            "height": h,
            "layers": sc.ldi.layers,
            "K": np.asarray(sc.ldi.K, float).tolist(),
            "photo_width": pw,
            "photo_height": ph,
            "photo_K": np.asarray(sc.prepared.K, float).tolist(),
            "edge_disparity": sc.ldi.edge_disparity,
            # JSON has no infinity: null where the LDI has no steps
            "step_disparity": sc.ldi.step_disparity if math.isfinite(sc.ldi.step_disparity) else None,
            "disparity_min": sc.disparity_range[0],
            "disparity_max": sc.disparity_range[1],
            "near": sc.near,
            "focus": sc.focus,
            "base_radius": BASE_RADIUS,
            "ldi_amount": LDI_AMOUNT,
            "inpaint": sc.inpaint,
            "clean_depth": sc.clean_depth,
            "notes": f"{sc.prepared.notes}; inpaint: {sc.inpaint}; clean depth: {'on' if sc.clean_depth else 'off'}",
            "depth_encoding": "uint16 v: 0 = not valid, else disparity = dmin + (v - 1) / 65534 * (dmax - dmin)",
            "render": RENDER_CONSTANTS,
        }

    def layer(self, image: str, opts: SceneOptions, k: int, kind: str) -> np.ndarray:
        """Layer k as an array: color (H, W, 4) uint8 RGBA (alpha = valid), depth (H, W)
        uint16 encoded disparity, mask (H, W) uint8 (255 = valid)."""
        sc = self.scene_of(image, opts)
        if not (0 <= k < sc.ldi.layers):
            raise Photo3DError(f"layer {k} does not exist; the LDI has layers 0..{sc.ldi.layers - 1}")
        valid = sc.ldi.valid[k].cpu().numpy()
        if kind == "color":
            rgb = (sc.ldi.color[k].clamp(0, 1) * 255.0 + 0.5).to(dtype=torch.uint8).cpu().numpy()
            return np.dstack([rgb, valid.astype(np.uint8) * 255])
        if kind == "mask":
            return valid.astype(np.uint8) * 255
        if kind == "depth":
            z = sc.ldi.depth[k].cpu().numpy().astype(np.float64)
            lo, hi = sc.disparity_range
            d = np.where(valid, 1.0 / np.maximum(z, 1e-12), lo)
            v = np.rint((d - lo) / max(hi - lo, 1e-12) * 65534.0) + 1.0
            return np.where(valid, np.clip(v, 1, 65535), 0).astype(np.uint16)
        raise Photo3DError(f"kind {kind!r} must be color, depth or mask")

    # paths -----------------------------------------------------------------------
    def poses(self, image: str, options: dict) -> dict:
        """The clip's poses exactly as export renders them (``pipeline.plan_clip``)."""

        opts = ClipOptions.from_flat(clean_options(options))
        plan = plan_clip(self.prepared(image, opts.scene.fov, opts.depth.source), opts)
        path, out_size, K_out, overscan = plan.path, plan.size, plan.K_out, plan.overscan
        return {
            "n": len(path),
            "fps": opts.path.fps,
            "size": list(out_size),
            "K": K_out.tolist(),
            "overscan": overscan,
            "poses": [p.reshape(-1).tolist() for p in path.poses],
            "zoom": path.zoom.tolist(),
        }

    # server-side frames ------------------------------------------------------------
    def frame_jpeg(self, image: str, opts: SceneOptions, c2w: np.ndarray, K: np.ndarray, size: tuple[int, int],
                   quality: int = 85) -> bytes:
        """One frame of the preview LDI for a camera the page chose (``options.frame_camera``),
        as JPEG bytes."""
        sc = self.scene_of(image, opts)
        frame = sc.renderer.render(c2w, K, size).cpu().numpy()
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
        return buf.getvalue()

    # the 3D view ---------------------------------------------------------------------
    def scene_glb(self, image: str, opts: SceneOptions) -> tuple[bytes, str]:
        """The .glb ``photo3d export`` writes for this photo and these scene options (full
        resolution, the default --max-faces), and its file name; built once, cached."""
        clip = self.scene_clip_options(opts)
        image = self.photo_id(image)
        method = resolve_inpaint(clip.engine.inpaint, engine_options(clip.engine, clip.render), quiet=True)
        key = ("glb", image, opts.fov, opts.depth, method, opts.clean_depth)

        def make() -> tuple[bytes, str]:
            prepared = self.prepared(image, opts.fov, opts.depth)
            # the name goes into a Content-Disposition header: plain characters only
            name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(image).stem) + ".glb"
            files, _ = scene_files(export_ldi(prepared, clip), Path(name))
            return files[name], name

        return self._cached(key, make)

    # export ------------------------------------------------------------------------
    def submit_export(self, image: str, options: dict) -> Job:
        """Queue the export of a photo with checked options (``clean_options``), refused
        beyond the preview's limits; the size of a clip without --size is the photo's."""
        options = clean_options(options)
        with Image.open(self.photo_path(image)) as im:  # the header only
            check_export_limits(ClipOptions.from_flat(options), im.size)
        return self.jobs.submit(self.photo_id(image), options)

    def _render_job(self, job: Job, progress: Progress) -> None:
        """An export job: the clip of ``job.options`` at full resolution, as render makes it.
        A cancel stops it between stages and at the next frame (``Progress``)."""
        opts = ClipOptions.from_flat({**job.options, "kernels": self.kernels, "device": str(self.device)})
        progress.start(opts.path.n_frames)
        prepared = self.prepared(job.image, opts.scene.fov, opts.depth.source)
        progress.check()
        write_clip(prepared, opts, job.output, quiet=True, sinks=(progress,))

    # settings ----------------------------------------------------------------------
    def read_manifest(self) -> dict[str, dict]:
        """Rows of the settings manifest by photo id; {} when it does not exist yet."""
        if self.settings is None:
            raise Photo3DError("settings are saved only with --folder DIR")
        with self._lock:
            return self.settings.read()

    def save_settings(self, image: str, options: dict) -> dict:
        """Store one photo's options (checked, by flat name) in the manifest; the row."""
        image = self.photo_id(image)
        if self.settings is None:
            raise Photo3DError("settings are saved only with --folder DIR")
        options = clean_options(options)
        with self._lock:
            return self.settings.save(image, options)

    def close(self) -> None:
        """Cancel the exports (a running one stops at its next frame and removes its
        partial file), drop the caches, remove the temporary clips."""
        self.jobs.shutdown()
        self.cache.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
