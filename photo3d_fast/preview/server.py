"""The preview server (aiohttp): the LDI for the page, poses of paths, server-side frames,
export jobs and the folder manifest.

Endpoints (``image`` is always a photo's id: its path relative to the folder, or the
single photo's file name; nothing else can be named):

- ``GET /`` and ``/static/<file>``: the page (package data, a fixed list of files).
- ``GET /api/info``: mode, photos, presets, depth models, inpainting methods, kernels,
  limits.
- ``GET /api/scene?image&<scene options>``: JSON of the preview LDI: grid size, K of the
  grid, edge threshold (disparity), disparity range of the depth encoding, near/focus of
  paths, the inpainting method that ran, the renderer's constants. Scene options (the
  ones that change the LDI): fov, depth, inpaint, clean_depth.
- ``GET /api/layer?image&<scene options>&k&kind=color|depth|mask&format=png|packed|raw``:
  layer k of the LDI. color: 8-bit RGBA PNG, alpha = valid; depth: 16-bit disparity, 0 =
  not valid, else ``d = dmin + (v - 1) / 65534 * (dmax - dmin)`` (1/scene units), as a
  16-bit PNG, as an 8-bit RGB PNG with ``v = 256 R + G`` (``packed``: browsers decode
  PNGs to 8 bits per channel, exactly) or raw little-endian uint16; mask: 8-bit PNG.
- ``GET /api/poses?image&<options>``: the clip's camera-to-world poses, per-frame zoom
  (overscan included) and output K, computed as ``pipeline.render_into`` computes them.
- ``GET /api/stream`` (WebSocket): send ``{"c2w": [16], "K": [9], "width", "height",
  "image", <scene options>}``, receive one JPEG rendered by ``Renderer``; the page sends
  the next pose when a frame arrives, so frames flow at the rate the link allows.
- ``POST /api/export {"image", "options"}`` -> job; ``GET /api/jobs/<id>``;
  ``GET /api/jobs/<id>/clip``: the mp4.
- ``GET|POST /api/settings`` (``--folder``): per-photo options in the JSONL manifest,
  one row per photo: ``{"image": "rel/path.jpg", "path": "circle", "amount": 1.5, ...}``.

Options travel by their flat names (``options``); only presets, depth methods and
inpainting methods are accepted, never file names. The state behind these endpoints is ``previewer.Previewer``.
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from ..config import BACKENDS, INPAINT_CHOICES, ClipOptions
from ..depth import local_depth_methods
from ..errors import Photo3DError, notice, warn
from ..inpaint.learned import INPAINT_MODELS, learned_inpaint_ready
from ..ops.backends import status
from ..pipeline import SAMPLE_IMAGE
from ..scene.paths import PRESETS
from .options import MAX_EXPORT_FRAMES, OPTION_NAMES, SCENE_OPTION_NAMES, clean_options, scene_options
from .previewer import Previewer

try:  # the optional dependency, named in the error
    from aiohttp import WSMsgType, web
except ImportError:  # pragma: no cover - exercised only without the extra
    web = None

STATIC_DIR = Path(__file__).parent / "static"
STATIC_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
MAX_BODY = 64 * 1024


def _require_web():
    if web is None:
        raise Photo3DError(
            "photo3d preview needs aiohttp; install the extra: pip install 'photo3d_fast[preview]'"
        )
    return web


# -- the web application ---------------------------------------------------------------------

def _error(status: int, message: str):
    return web.json_response({"error": message}, status=status)


def _layer_index(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        raise Photo3DError(f"k {text!r} is not a layer number") from None


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
            # The same for inpainting: auto, classic and the learned models that are here.
            "inpaint_methods": [m for m in INPAINT_CHOICES
                                if m not in INPAINT_MODELS or learned_inpaint_ready(m)],
            "kernels": kernels,
            "device": str(previewer.device),
            "max_export_frames": MAX_EXPORT_FRAMES,
            "manifest": str(previewer.manifest) if previewer.manifest else None,
            "option_names": list(OPTION_NAMES),
            "scene_option_names": list(SCENE_OPTION_NAMES),
            "defaults": {name: ClipOptions().get(name) for name in OPTION_NAMES},
        })

    async def scene(request):
        q = request.query
        opts = scene_options(q)
        image = q.get("image", "")
        previewer.photo_path(image)
        return web.json_response(await run(previewer.scene_json, image, opts))

    async def layer(request):
        q = request.query
        opts = scene_options(q)
        image = q.get("image", "")
        previewer.photo_path(image)
        kind, fmt = q.get("kind", "color"), q.get("format", "png")
        k = _layer_index(q.get("k"))
        if fmt not in ("png", "packed", "raw"):
            raise Photo3DError(f"format {fmt!r} must be png, packed or raw")
        if fmt != "png" and kind != "depth":
            raise Photo3DError(f"format={fmt} is for kind=depth")
        array = await run(previewer.layer, image, opts, k, kind)
        if fmt == "raw":
            return web.Response(body=array.astype("<u2").tobytes(), content_type="application/octet-stream",
                                headers={"X-Width": str(array.shape[1]), "X-Height": str(array.shape[0])})
        if fmt == "packed":
            array = np.dstack([array >> 8, array & 255, np.zeros_like(array)]).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(array).save(buf, format="PNG", compress_level=1)
        return web.Response(body=buf.getvalue(), content_type="image/png")

    async def poses(request):
        q = request.query
        image = q.get("image", "")
        previewer.photo_path(image)
        options = clean_options({k: q[k] for k in OPTION_NAMES if k in q})
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
    notice(f"preview: open http://{host}:{port}/  ({len(previewer.photos)} photo(s); Ctrl-C stops)")
    if not loopback:
        warn("the preview has no login; anyone who can reach this address can use it")
    web.run_app(app, sock=sock, print=None, access_log=None)
