"""The preview server (aiohttp): the LDI for the page, poses of paths, server-side frames,
export jobs and the folder manifest.

Endpoints (``image`` is always a photo's id: its path relative to the folder, or the
single photo's file name; nothing else can be named):

- ``GET /`` and ``/static/<file>``: the page (package data, a fixed list of files).
- ``GET /api/info``: mode, photos, presets, depth models, kernels, limits.
- ``GET /api/scene?image&fov&depth``: JSON of the preview LDI: grid size, K of the grid,
  edge threshold (disparity), disparity range of the depth encoding, near/focus of paths.
- ``GET /api/layer?image&fov&depth&k&kind=color|depth|mask&format=png|raw``: layer k of
  the LDI. color: 8-bit RGBA PNG, alpha = valid; depth: 16-bit disparity, 0 = not valid,
  else ``d = dmin + (v - 1) / 65534 * (dmax - dmin)`` (1/scene units), as a 16-bit PNG
  or raw little-endian uint16 (browsers decode PNGs to 8 bits); mask: 8-bit PNG.
- ``GET /api/poses?image&<options>``: the clip's camera-to-world poses, per-frame zoom
  (overscan included) and output K, computed as ``pipeline.render_into`` computes them.
- ``GET /api/stream`` (WebSocket): send ``{"c2w": [16], "K": [9], "width", "height",
  "image", "fov", "depth"}``, receive one JPEG rendered by ``Renderer``; the page sends
  the next pose when a frame arrives, so frames flow at the rate the link allows.
- ``POST /api/export {"image", "options"}`` -> job; ``GET /api/jobs/<id>``;
  ``GET /api/jobs/<id>/clip``: the mp4.
- ``GET|POST /api/settings`` (``--folder``): per-photo options in the JSONL manifest,
  one row per photo: ``{"image": "rel/path.jpg", "path": "circle", "amount": 1.5, ...}``.

Options travel by their CLI names (path, amount, duration, fps, fov, size "WxH",
overscan, depth); only presets and depth methods are accepted, never file names.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from ..config import BACKENDS, SceneConfig
from ..depth import DEPTH_METHODS, local_depth_methods
from ..device import resolve_device
from ..encode.writers import VideoWriter
from ..errors import Photo3DError
from ..io import load_image, resize_map
from ..ops.backends import status
from ..pipeline import (
    SAMPLE_IMAGE,
    ClipOptions,
    DepthConfig,
    PreparedPhoto,
    output_size,
    plan_clip,
    render_into,
    scene_depth,
)
from ..render import Renderer
from ..scene.camera import scale_intrinsics, scene_intrinsics
from ..scene.ldi import build_ldi, ldi_params_for_motion
from ..scene.paths import ALIASES, BASE_RADIUS, PRESETS, default_focus, preset_path
from .jobs import JobQueue

try:  # the optional dependency, named in the error
    from aiohttp import WSMsgType, web
except ImportError:  # pragma: no cover - exercised only without the extra
    web = None

STATIC_DIR = Path(__file__).parent / "static"
STATIC_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"}
MANIFEST_NAME = "photo3d_manifest.jsonl"
#: The LDI sent to the page is built for a motion of this ``amount`` (circle preset), the
#: top of the page's slider range that most clips use; larger amounts still render, with
#: the edge threshold of this one.
LDI_AMOUNT = 2.0
#: Longest export the page may ask for (frames); the CLI has no such limit.
MAX_EXPORT_FRAMES = 3600
#: Largest server-side interactive frame (pixels per side).
MAX_STREAM_SIDE = 2048
MAX_BODY = 64 * 1024
OPTION_NAMES = ("path", "amount", "duration", "fps", "fov", "size", "overscan", "depth")


def _require_web():
    if web is None:
        raise Photo3DError(
            "photo3d preview needs aiohttp; install the extra: pip install 'photo3d_fast[preview]'"
        )
    return web


# -- options ------------------------------------------------------------------------------

def parse_size(text) -> tuple[int, int] | None:
    if text in (None, "", "photo"):
        return None
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise Photo3DError(f"size {text!r} is not WIDTHxHEIGHT, e.g. 1280x720") from None
    return w, h


def _number(options: dict, key: str, kind=float):
    value = options.get(key)
    if value in (None, ""):
        return None
    try:
        value = kind(value)
    except (TypeError, ValueError):
        raise Photo3DError(f"{key} {value!r} is not a number") from None
    if not math.isfinite(value):
        raise Photo3DError(f"{key} {value!r} must be finite")
    return value


def _bool(value) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).lower() not in ("0", "false", "no", "off")


def clean_options(options: dict) -> dict:
    """Validated render options by their CLI names, without unset ones.

    Refuses unknown names, keyframe files and depth-map files: the page may only choose
    among presets and depth methods, so no request can make the server read a file.
    """

    if not isinstance(options, dict):
        raise Photo3DError("options must be a JSON object")
    unknown = sorted(set(options) - set(OPTION_NAMES) - {"image"})
    if unknown:
        raise Photo3DError(f"unknown option(s) {', '.join(unknown)}; the page may set {', '.join(OPTION_NAMES)}")
    out: dict = {}
    path = str(options.get("path") or "swing")
    if path.lower() not in PRESETS and path.lower() not in ALIASES:
        raise Photo3DError(f"path {path!r} is not a preset; choose one of {', '.join(PRESETS)}")
    out["path"] = path.lower()
    for key in ("amount", "duration", "fps", "fov"):
        value = _number(options, key)
        if value is not None:
            out[key] = value
    size = parse_size(options.get("size"))
    if size is not None:
        out["size"] = f"{size[0]}x{size[1]}"
    if "overscan" in options and options["overscan"] is not None:
        out["overscan"] = _bool(options["overscan"])
    depth = str(options.get("depth") or "auto")
    if depth not in DEPTH_METHODS:
        raise Photo3DError(f"depth {depth!r} is not a depth method; choose one of {', '.join(DEPTH_METHODS)}")
    out["depth"] = depth
    opts = ClipOptions.from_kwargs(**clip_kwargs(out))  # every range check of the CLI
    if opts.path.n_frames > MAX_EXPORT_FRAMES:
        raise Photo3DError(
            f"{opts.path.duration:g} s at {opts.path.fps:g} fps is {opts.path.n_frames} frames; the preview "
            f"allows at most {MAX_EXPORT_FRAMES} (use photo3d render for longer clips)"
        )
    return out


def clip_kwargs(options: dict) -> dict:
    """CLI-named options -> keyword options of ``ClipOptions.from_kwargs``."""
    kw = dict(options)
    kw.pop("image", None)
    if "size" in kw:
        kw["size"] = parse_size(kw["size"])
    return kw


# -- photos and their scenes ----------------------------------------------------------------

def safe_relative(name: str) -> PurePosixPath:
    """A photo id as a relative POSIX path; refuses absolute paths, ``..`` and odd characters."""
    if not isinstance(name, str) or not name or len(name) > 1024:
        raise Photo3DError("image must be a non-empty relative path")
    if "\\" in name or "\x00" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise Photo3DError(f"image {name!r} must be a relative path inside the folder")
    rel = PurePosixPath(name)
    if any(part in ("..", ".", "") for part in rel.parts):
        raise Photo3DError(f"image {name!r} may not contain '..' or '.' components")
    return rel


def list_photos(root: Path) -> list[str]:
    """Relative POSIX paths of the photos under ``root`` whose real path stays inside it
    (symlinks out of the folder are skipped; symlinked directories are not followed)."""
    real_root = root.resolve()
    found = []
    for dirpath, dirnames, filenames in os.walk(real_root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if name.startswith(".") or p.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            real = p.resolve()
            if not real.is_relative_to(real_root) or not real.is_file():
                continue
            found.append(p.relative_to(real_root).as_posix())
    return found


@dataclass
class Scene:
    """The preview data of one (photo, fov, depth): prepared photo, preview LDI, renderer."""

    prepared: object  # pipeline.PreparedPhoto
    ldi: object  # ldi.LDI at preview resolution
    renderer: object  # render.Renderer of ldi
    near: float  # the depth paths scale with (1st percentile), as render_into computes it
    focus: float
    disparity_range: tuple[float, float]


class Previewer:
    """State of one preview server: photos, caches, export jobs, manifest.

    photo: one photo (single mode) or folder: a directory (folder mode).
    """

    def __init__(self, photo: Path | None = None, folder: Path | None = None, manifest: Path | None = None,
                 max_side: int = 1024, kernels: str = "auto", device: str = "auto", work_dir: Path | None = None) -> None:

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
        else:
            if not photo.is_file():
                raise Photo3DError(f"photo {str(photo)!r} does not exist or is not a file")
            self.mode = "single"
            self.root = photo.resolve().parent
            self.photos = [photo.resolve().name]
            self.manifest = None
        if not (64 <= max_side <= 8192):
            raise Photo3DError(f"--max-side {max_side} must be between 64 and 8192")
        self.max_side = max_side
        self.kernels = kernels
        self.device = resolve_device(device)
        self._tmp = tempfile.TemporaryDirectory(prefix="photo3d-preview-") if work_dir is None else None
        self.work_dir = Path(self._tmp.name) if work_dir is None else work_dir
        self._lock = threading.Lock()
        self._depth: dict = {}
        self._scenes: dict = {}
        self._loaded: dict = {}
        self.jobs = JobQueue(self.work_dir, self._render_job)

    # photos -----------------------------------------------------------------------
    def photo_path(self, image: str) -> Path:
        rel = safe_relative(image)
        if rel.as_posix() not in self.photos:
            raise Photo3DError(f"image {image!r} is not one of the photos this server shows")
        path = (self.root / rel).resolve()
        if not path.is_relative_to(self.root):  # a symlink swapped in after start
            raise Photo3DError(f"image {image!r} leads outside the folder")
        return path

    def _photo(self, image: str):

        path = self.photo_path(image)
        with self._lock:
            if image not in self._loaded:
                self._loaded[image] = load_image(path)
            return self._loaded[image]

    def prepared(self, image: str, fov: float | None, depth: str):
        """PreparedPhoto of ``image``: depth computed once per (photo, depth method)."""

        photo = self._photo(image)
        scene = SceneConfig(fov=fov)
        key = (image, depth)
        with self._lock:
            cached = self._depth.get(key)
        if cached is None:
            cached = scene_depth(photo.rgb, DepthConfig(source=depth), scene)
            with self._lock:
                self._depth[key] = cached
        z, depth_note = cached
        h, w = photo.rgb.shape[:2]
        K, fov_note = scene_intrinsics(w, h, scene, photo.exif_fov)
        return PreparedPhoto(Path(image).name, photo.rgb, K, z, f"depth: {depth_note}; fov: {fov_note}")

    def scene(self, image: str, fov: float | None = None, depth: str = "auto") -> Scene:
        """The preview LDI of a photo (built once per photo, fov and depth method)."""

        key = (image, fov, depth)
        with self._lock:
            if key in self._scenes:
                return self._scenes[key]
        prepared = self.prepared(image, fov, depth)
        h, w = prepared.rgb.shape[:2]
        s = min(1.0, self.max_side / max(w, h))
        size = (max(16, round(w * s)), max(16, round(h * s)))
        if size != (w, h):
            from PIL import Image

            rgb = np.asarray(Image.fromarray(prepared.rgb).resize(size, Image.Resampling.LANCZOS))
            K = scale_intrinsics(prepared.K, (w, h), size)
            z = resize_map(prepared.depth, (size[1], size[0]))
        else:
            rgb, K, z = prepared.rgb, prepared.K, prepared.depth
        near = float(np.percentile(prepared.depth, 1.0))
        focus = default_focus(prepared.depth)
        motion = preset_path("circle", 64, LDI_AMOUNT, near, focus).max_translation()
        band, edge = ldi_params_for_motion(K, z, motion, size)
        ldi = build_ldi(rgb, z, K, layers=2, band=band, edge_disparity=edge, device=self.device)
        disp = 1.0 / ldi.depth[ldi.valid]
        scene = Scene(prepared, ldi, Renderer(ldi, self.kernels), near, focus,
                      (float(disp.min()), float(disp.max())))
        with self._lock:
            self._scenes[key] = scene
        return scene

    def scene_json(self, image: str, fov: float | None, depth: str) -> dict:

        sc = self.scene(image, fov, depth)
        w, h = sc.ldi.size
        ph, pw = sc.prepared.rgb.shape[:2]
        return {
            "image": image,
            "width": w,
            "height": h,
            "layers": sc.ldi.layers,
            "K": np.asarray(sc.ldi.K, float).tolist(),
            "photo_width": pw,
            "photo_height": ph,
            "photo_K": np.asarray(sc.prepared.K, float).tolist(),
            "edge_disparity": sc.ldi.edge_disparity,
            "disparity_min": sc.disparity_range[0],
            "disparity_max": sc.disparity_range[1],
            "near": sc.near,
            "focus": sc.focus,
            "base_radius": BASE_RADIUS,
            "ldi_amount": LDI_AMOUNT,
            "notes": sc.prepared.notes,
            "depth_encoding": "uint16 v: 0 = not valid, else disparity = dmin + (v - 1) / 65534 * (dmax - dmin)",
        }

    def layer(self, image: str, fov: float | None, depth: str, k: int, kind: str) -> np.ndarray:
        """Layer k as an array: color (H, W, 4) uint8 RGBA (alpha = valid), depth (H, W)
        uint16 encoded disparity, mask (H, W) uint8 (255 = valid)."""
        sc = self.scene(image, fov, depth)
        if not (0 <= k < sc.ldi.layers):
            raise Photo3DError(f"layer {k} does not exist; the LDI has layers 0..{sc.ldi.layers - 1}")
        valid = sc.ldi.valid[k].cpu().numpy()
        if kind == "color":
            rgb = (sc.ldi.color[k].clamp(0, 1) * 255.0 + 0.5).to(dtype=__import__("torch").uint8).cpu().numpy()
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

        opts = ClipOptions.from_kwargs(**clip_kwargs(options))
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
    def frame_jpeg(self, request: dict, quality: int = 85) -> bytes:
        """One frame of the preview LDI for a camera the page chose, as JPEG bytes."""
        from PIL import Image

        image = str(request.get("image", ""))
        fov = _number(request, "fov")
        depth = str(request.get("depth") or "auto")
        try:
            c2w = np.asarray(request["c2w"], np.float64).reshape(4, 4)
            K = np.asarray(request["K"], np.float64).reshape(3, 3)
            size = (int(request["width"]), int(request["height"]))
        except (KeyError, TypeError, ValueError):
            raise Photo3DError("a frame request needs c2w (16 numbers), K (9 numbers), width and height") from None
        if not (np.isfinite(c2w).all() and np.isfinite(K).all()):
            raise Photo3DError("c2w and K must be finite")
        if not (16 <= size[0] <= MAX_STREAM_SIDE and 16 <= size[1] <= MAX_STREAM_SIDE):
            raise Photo3DError(f"frame size {size[0]}x{size[1]} must be 16..{MAX_STREAM_SIDE} per side")
        sc = self.scene(image, fov, depth)
        frame = sc.renderer.render(c2w, K, size).cpu().numpy()
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
        return buf.getvalue()

    # export ------------------------------------------------------------------------
    def _render_job(self, job, progress, set_total) -> None:

        opts = ClipOptions.from_kwargs(**clip_kwargs(job.options), kernels=self.kernels, device=str(self.device))
        set_total(opts.path.n_frames)
        prepared = self.prepared(job.image, opts.scene.fov, opts.depth.source)
        with VideoWriter(job.output, opts.path.fps, output_size(prepared, opts), opts.encode) as writer:
            render_into(prepared, opts, [writer, progress], quiet=True)
            writer.close()

    # manifest ----------------------------------------------------------------------
    def _manifest_image(self, image: str) -> str:
        """A photo id as the manifest names it: relative to the manifest's folder (what
        ``photo3d batch`` expects), which is the photo folder unless --manifest is elsewhere."""
        return Path(os.path.relpath(self.root / safe_relative(image), self.manifest.parent)).as_posix()

    def read_manifest(self) -> dict[str, dict]:
        """Rows of the manifest by photo id (later rows win); {} when it does not exist yet.
        Rows about other files are kept as they are (under their own ``image``)."""
        if self.manifest is None:
            raise Photo3DError("settings are saved only with --folder DIR")
        rows: dict[str, dict] = {}
        if not self.manifest.exists():
            return rows
        ids = {self._manifest_image(p): p for p in self.photos}
        for n, line in enumerate(self.manifest.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise Photo3DError(f"manifest {self.manifest} line {n} is not JSON; fix or delete it") from None
            if isinstance(row, dict) and isinstance(row.get("image"), str):
                rows[ids.get(row["image"], row["image"])] = row
        return rows

    def save_settings(self, image: str, options: dict) -> dict:
        """Store one photo's options (CLI names) in the manifest, atomically: one row per
        photo, ``image`` relative to the manifest's folder."""
        self.photo_path(image)
        row = {"image": self._manifest_image(image), **clean_options(options)}
        with self._lock:
            rows = self.read_manifest()
            rows[image] = row
            tmp = self.manifest.with_name(f".{self.manifest.name}.partial-{os.getpid()}")
            try:
                tmp.write_text("".join(json.dumps(r) + "\n" for r in rows.values()))
                os.replace(tmp, self.manifest)
            finally:
                tmp.unlink(missing_ok=True)
        return row

    def close(self) -> None:
        self.jobs.shutdown()
        if self._tmp is not None:
            self._tmp.cleanup()


# -- the web application ---------------------------------------------------------------------

def _error(status: int, message: str):
    return web.json_response({"error": message}, status=status)


def _query_options(q) -> dict:
    return {k: q[k] for k in OPTION_NAMES if k in q}


def make_app(previewer: Previewer, loopback_only: bool = True, close_on_cleanup: bool = True):
    """The aiohttp application serving ``previewer``. loopback_only: refuse requests whose
    Host header is not localhost (a web page elsewhere cannot reach us by DNS rebinding);
    close_on_cleanup: close the previewer (jobs, temporary clips) when the app stops."""
    _require_web()

    loop_hosts = {"localhost", "127.0.0.1", "[::1]", "::1"}

    @web.middleware
    async def guard(request, handler):
        host = request.host or ""
        host = host[: host.find("]") + 1] if host.startswith("[") else host.split(":")[0]
        if loopback_only and host not in loop_hosts:
            return _error(403, f"host {request.host!r} refused: the preview answers only on localhost")
        try:
            response = await handler(request)
        except Photo3DError as e:
            response = _error(400, str(e))
        except web.HTTPException as e:
            if e.status >= 400 and not request.path.startswith("/static"):
                response = _error(e.status, e.reason)
            else:
                raise
        if isinstance(response, web.StreamResponse) and not response.prepared:
            response.headers.setdefault(
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; object-src 'none'; base-uri 'none'",
            )
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    async def run(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    def fov_depth(q):
        depth = q.get("depth") or "auto"
        if depth not in DEPTH_METHODS:
            raise Photo3DError(f"depth {depth!r} is not a depth method; choose one of {', '.join(DEPTH_METHODS)}")
        return _number(dict(q), "fov"), depth

    async def index(request):
        return web.FileResponse(STATIC_DIR / "index.html", headers={"Content-Type": "text/html"})

    async def static(request):
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            return _error(404, f"no static file {name!r}")
        return web.Response(body=(STATIC_DIR / name).read_bytes(), content_type=STATIC_FILES[name])

    async def info(request):
        kernels = [k for k in reversed(BACKENDS) if status(k)[0]]
        return web.json_response({
            "mode": previewer.mode,
            "photos": previewer.photos,
            "presets": list(PRESETS),
            # Models whose weights are here: choosing one must not start a download.
            "depth_models": ["auto", *local_depth_methods()],
            "kernels": kernels,
            "device": str(previewer.device),
            "max_export_frames": MAX_EXPORT_FRAMES,
            "manifest": str(previewer.manifest) if previewer.manifest else None,
            "option_names": list(OPTION_NAMES),
        })

    async def scene(request):
        q = request.query
        fov, depth = fov_depth(q)
        image = q.get("image", "")
        previewer.photo_path(image)
        return web.json_response(await run(previewer.scene_json, image, fov, depth))

    async def layer(request):
        from PIL import Image

        q = request.query
        fov, depth = fov_depth(q)
        image = q.get("image", "")
        previewer.photo_path(image)
        kind, fmt = q.get("kind", "color"), q.get("format", "png")
        k = _number(dict(q), "k", int) or 0
        if fmt not in ("png", "raw"):
            raise Photo3DError(f"format {fmt!r} must be png or raw")
        array = await run(previewer.layer, image, fov, depth, k, kind)
        if fmt == "raw":
            if kind != "depth":
                raise Photo3DError("format=raw is for kind=depth (little-endian uint16)")
            return web.Response(body=array.astype("<u2").tobytes(), content_type="application/octet-stream",
                                headers={"X-Width": str(array.shape[1]), "X-Height": str(array.shape[0])})
        buf = io.BytesIO()
        Image.fromarray(array).save(buf, format="PNG", compress_level=1)
        return web.Response(body=buf.getvalue(), content_type="image/png")

    async def poses(request):
        q = request.query
        image = q.get("image", "")
        previewer.photo_path(image)
        options = clean_options(_query_options(q))
        return web.json_response(await run(previewer.poses, image, options))

    async def read_json(request) -> dict:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise Photo3DError(f"request body over {MAX_BODY} bytes")
        try:
            body = json.loads(await request.content.read(MAX_BODY + 1) or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise Photo3DError("request body must be JSON") from None
        if not isinstance(body, dict):
            raise Photo3DError('request body must be a JSON object like {"image": ..., "options": {...}}')
        return body

    async def export(request):
        body = await read_json(request)
        image = str(body.get("image", ""))
        previewer.photo_path(image)
        options = clean_options(body.get("options") or {})
        job = previewer.jobs.submit(image, options)
        return web.json_response(job.to_json(), status=202)

    async def job(request):
        j = previewer.jobs.get(request.match_info["id"])
        if j is None:
            return _error(404, f"no export job {request.match_info['id']!r}")
        return web.json_response(j.to_json())

    async def clip(request):
        j = previewer.jobs.get(request.match_info["id"])
        if j is None:
            return _error(404, f"no export job {request.match_info['id']!r}")
        if j.state != "done":
            return _error(409, f"export job {j.id} is {j.state}, not done")
        name = f"{Path(j.image).stem}_{j.options.get('path', 'clip')}.mp4"
        return web.FileResponse(j.output, headers={
            "Content-Type": "video/mp4", "Content-Disposition": f'attachment; filename="{name}"'})

    async def settings_get(request):
        rows = await run(previewer.read_manifest)
        image = request.query.get("image")
        if image is not None:
            previewer.photo_path(image)
            return web.json_response(rows.get(image) or {})
        return web.json_response({"manifest": str(previewer.manifest), "rows": list(rows.values())})

    async def settings_post(request):
        body = await read_json(request)
        image = str(body.get("image", ""))
        row = await run(previewer.save_settings, image, body.get("options") or {})
        return web.json_response(row)

    async def stream(request):
        ws = web.WebSocketResponse(max_msg_size=MAX_BODY)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            try:
                req = json.loads(msg.data)
                if not isinstance(req, dict):
                    raise Photo3DError("a frame request must be a JSON object")
                previewer.photo_path(str(req.get("image", "")))
                jpeg = await run(previewer.frame_jpeg, req)
                await ws.send_bytes(jpeg)
            except (Photo3DError, json.JSONDecodeError) as e:
                await ws.send_json({"error": str(e)})
        return ws

    app = web.Application(middlewares=[guard], client_max_size=MAX_BODY)
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/info", info)
    app.router.add_get("/api/scene", scene)
    app.router.add_get("/api/layer", layer)
    app.router.add_get("/api/poses", poses)
    app.router.add_post("/api/export", export)
    app.router.add_get("/api/jobs/{id}", job)
    app.router.add_get("/api/jobs/{id}/clip", clip)
    app.router.add_get("/api/settings", settings_get)
    app.router.add_post("/api/settings", settings_post)
    app.router.add_get("/api/stream", stream)

    async def on_cleanup(app):
        previewer.close()

    if close_on_cleanup:
        app.on_cleanup.append(on_cleanup)
    return app


def serve(args) -> None:
    """The ``photo3d preview`` command: build the server, print the URL, run until Ctrl-C."""
    _require_web()
    import socket


    if args.folder is not None and (args.image is not None or args.sample):
        raise Photo3DError("give a photo, --sample or --folder DIR, not several")
    if args.folder is None:
        if args.sample and args.image is not None:
            raise Photo3DError("give either an image or --sample, not both")
        if not args.sample and args.image is None:
            raise Photo3DError("no photo given; usage: photo3d preview photo.jpg (or --sample, or --folder DIR)")
    photo = SAMPLE_IMAGE if args.sample else args.image
    previewer = Previewer(photo=None if args.folder else photo, folder=args.folder, manifest=args.manifest,
                          max_side=args.max_side, kernels=args.kernels, device=args.device)
    loopback = args.host in ("127.0.0.1", "localhost", "::1")
    app = make_app(previewer, loopback_only=loopback)
    try:
        sock = socket.create_server((args.host, args.port))
    except OSError as e:
        raise Photo3DError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}; try another --port") from None
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"photo3d preview: open http://{host}:{port}/  ({len(previewer.photos)} photo(s); Ctrl-C stops)",
          file=sys.stderr, flush=True)
    if not loopback:
        print("photo3d: note: the preview has no login; anyone who can reach this address can use it",
              file=sys.stderr)
    web.run_app(app, sock=sock, print=None, access_log=None)
