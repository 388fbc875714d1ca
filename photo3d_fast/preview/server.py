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
- ``POST /api/export {"image", "options"}`` -> job (429 when MAX_QUEUED_EXPORTS are
  pending); ``GET /api/jobs/<id>``; ``POST /api/jobs/<id>/cancel``;
  ``GET /api/jobs/<id>/clip``: the mp4.
- ``GET|POST /api/settings`` (``--folder``): per-photo options in the JSONL manifest,
  one row per photo: ``{"image": "rel/path.jpg", "path": "circle", "amount": 1.5, ...}``.

Every request's fields go through ``options.check_request`` (the image, the options by
their flat names, the endpoint's own fields; nothing else): only presets, depth methods
and inpainting methods are accepted, never file names. The state behind these endpoints
is ``previewer.Previewer``.

Who may ask: only this machine by default (the Host header must name a loopback address,
so a page elsewhere cannot reach us by DNS rebinding), only the page itself (a request
with another ``Origin``, or a browser's ``Sec-Fetch-Site`` other than same-origin, is
refused: a page of another site can neither read nor change anything, nor open the
WebSocket), and state changes (export, cancel, settings) only with the per-server token
embedded in the page, as JSON (``Content-Type: application/json``, else 415).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import io
import ipaddress
import json
import secrets
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..config import BACKENDS, INPAINT_CHOICES, ClipOptions
from ..depth import local_depth_methods
from ..errors import Photo3DError, notice, warn
from ..inpaint.learned import INPAINT_MODELS, learned_inpaint_ready
from ..ops.backends import status
from ..pipeline import SAMPLE_IMAGE
from ..scene.paths import PRESETS
from .jobs import QueueFull
from .options import (
    CACHE_BYTES,
    MAX_BODY,
    MAX_EXPORT_FPS,
    MAX_EXPORT_SECONDS,
    MAX_EXPORT_SIDE,
    MAX_QUEUED_EXPORTS,
    MAX_STREAM_SIDE,
    OPTION_NAMES,
    SCENE_OPTION_NAMES,
    PreviewRequest,
    check_body,
    check_request,
    frame_camera,
)
from .previewer import Previewer

try:  # the optional dependency, named in the error
    from aiohttp import WSMsgType, web
    from yarl import URL
except ImportError:  # pragma: no cover - exercised only without the extra
    web = None

STATIC_DIR = Path(__file__).parent / "static"
STATIC_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css",
                "viewer3d.js": "text/javascript"}
#: The header the page's state-changing calls carry the server's token in.
TOKEN_HEADER = "X-Photo3D-Token"
#: Where index.html has the token put in (a <meta> tag: the page's CSP forbids inline scripts).
TOKEN_SLOT = "{{token}}"
#: The fields of a frame request besides the image and the options.
CAMERA_FIELDS = ("c2w", "K", "width", "height")
#: The fields of a /api/layer request besides the image and the options.
LAYER_FIELDS = ("k", "kind", "format")
TOKEN_KEY = web.AppKey("token", str) if web is not None else None


class Refused(Photo3DError):
    """A request refused with an HTTP status other than 400."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _require_web():
    if web is None:
        raise Photo3DError(
            "photo3d preview needs aiohttp; install the extra: pip install 'photo3d_fast[preview]'"
        )
    return web


# -- who may ask ------------------------------------------------------------------------------

def is_loopback(host: str) -> bool:
    """Whether a host name (no port) is this machine's loopback: localhost, any address
    of 127.0.0.0/8, or ::1 (bracketed or not)."""
    name = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(request) -> str:
    """The Host header's host, without the port."""
    host = request.host or ""
    return host[: host.find("]") + 1] if host.startswith("[") else host.split(":")[0]


def _same_origin(request) -> bool:
    """Whether a request comes from the page itself: its Origin (browsers send it on
    WebSocket handshakes, POSTs and cross-origin fetches) is this server's, and without
    Origin, Sec-Fetch-Site (an <img> or a fetch elsewhere) is same-origin or none (typed).
    Following a link to the page itself is fine: the other site cannot read what it opens."""
    origin = request.headers.get("Origin")
    if origin is None:
        if request.path == "/" and request.method == "GET" and request.headers.get("Sec-Fetch-Mode") == "navigate":
            return True
        return request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none")
    try:
        theirs, ours = URL(origin), request.url
        return (theirs.scheme, theirs.host, theirs.port) == (request.scheme, ours.host, ours.port)
    except (ValueError, TypeError):  # "null" (sandboxed pages, files) or nonsense
        return False


def _token_ok(request, token: str) -> bool:
    given = request.headers.get(TOKEN_HEADER, "")
    return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode())


def parse_json(data: str | bytes, what: str = "request body") -> Any:
    """JSON, or Photo3DError: json raises ValueError for a number of more than 4300
    digits and RecursionError for deep nesting, besides JSONDecodeError."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise Photo3DError(f"{what} must be JSON (nested a few hundred levels at most)") from None


def listen(host: str, port: int) -> tuple[socket.socket, bool]:
    """A socket listening on host:port, and whether it is bound to a loopback address
    (any of 127.0.0.0/8, ::1): then the server answers only requests addressed to
    this machine; any other address is the explicit choice to open it to the network."""
    try:
        sock = socket.create_server((host, port))
    except OSError as e:
        raise Photo3DError(f"cannot listen on {host}:{port}: {e.strerror or e}; try another --port") from None
    return sock, ipaddress.ip_address(sock.getsockname()[0].split("%")[0]).is_loopback


# -- the web application ---------------------------------------------------------------------

def _error(status: int, message: str):
    return web.json_response({"error": message}, status=status)


def _layer_index(text: Any) -> int:
    try:
        return int(text or 0)
    except (TypeError, ValueError):
        raise Photo3DError(f"k {text!r} is not a layer number") from None


def _query(request) -> dict[str, str]:
    """The query string's fields; a field given twice is refused (which one would count?)."""
    q = request.query
    if len(q) != len(set(q)):
        raise Photo3DError(f"repeated query field(s) {', '.join(sorted({k for k in q if len(q.getall(k)) > 1}))}")
    return dict(q)


def _limits() -> dict[str, int]:
    return {"max_export_side": MAX_EXPORT_SIDE, "max_export_seconds": MAX_EXPORT_SECONDS,
            "max_export_fps": MAX_EXPORT_FPS, "max_queued_exports": MAX_QUEUED_EXPORTS,
            "cache_bytes": CACHE_BYTES, "max_body": MAX_BODY, "max_stream_side": MAX_STREAM_SIDE}


def make_app(previewer: Previewer, loopback_only: bool = True, close_on_cleanup: bool = True):
    """The aiohttp application serving ``previewer``. loopback_only: refuse requests whose
    Host header is not a loopback name (a web page elsewhere cannot reach us by DNS
    rebinding); close_on_cleanup: close the previewer (jobs, temporary clips) when the app
    stops. The page's token is ``app[TOKEN_KEY]``, new for every app."""
    _require_web()
    token = secrets.token_urlsafe(32)

    @web.middleware
    async def guard(request, handler):
        if loopback_only and not is_loopback(_host_name(request)):
            return _error(403, f"host {request.host!r} refused: the preview answers only on localhost")
        if not _same_origin(request):
            return _error(403, f"origin {request.headers.get('Origin', request.headers.get('Sec-Fetch-Site'))!r} "
                               "refused: the preview answers only its own page")
        if request.method not in ("GET", "HEAD") and not _token_ok(request, token):
            return _error(403, f"missing or wrong {TOKEN_HEADER}: the preview's page sends its token")
        try:
            response = await handler(request)
        except QueueFull as e:
            response = _error(429, str(e))
        except Photo3DError as e:
            response = _error(getattr(e, "status", 400), str(e))
        except web.HTTPException as e:
            if e.status >= 400 and not request.path.startswith("/static"):
                response = _error(e.status, e.reason)
            else:
                raise
        if isinstance(response, web.StreamResponse) and not response.prepared:
            # connect-src blob:: the 3D view's glTF loader fetches the textures it unpacks
            # from the .glb through blob: URLs the page itself made.
            response.headers.setdefault(
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' blob: data:; connect-src 'self' blob:; object-src 'none'; "
                "base-uri 'none'",
            )
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    async def run(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    def checked(request: PreviewRequest) -> PreviewRequest:
        """A request checked by the options' validator, its image one of the photos, by id."""
        return dataclasses.replace(request, image=previewer.photo_id(request.image))

    async def read_json(request) -> Any:
        if request.content_type != "application/json":
            raise Refused(415, f"Content-Type {request.content_type!r} refused: send application/json")
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise Refused(413, f"request body over {MAX_BODY} bytes")
        data = await request.content.read(MAX_BODY + 1)
        if len(data) > MAX_BODY:
            raise Refused(413, f"request body over {MAX_BODY} bytes")
        return parse_json(data or b"null")

    async def index(request):
        page = (STATIC_DIR / "index.html").read_text().replace(TOKEN_SLOT, token)
        return web.Response(text=page, content_type="text/html")

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
            "limits": _limits(),
            "manifest": str(previewer.manifest) if previewer.manifest else None,
            "option_names": list(OPTION_NAMES),
            "scene_option_names": list(SCENE_OPTION_NAMES),
            "defaults": {name: ClipOptions().get(name) for name in OPTION_NAMES},
        })

    async def scene(request):
        req = checked(check_request(_query(request)))
        return web.json_response(await run(previewer.scene_json, req.image, req.scene))

    async def layer(request):
        req = checked(check_request(_query(request), own=LAYER_FIELDS))
        kind, fmt = req.own.get("kind", "color"), req.own.get("format", "png")
        k = _layer_index(req.own.get("k"))
        if fmt not in ("png", "packed", "raw"):
            raise Photo3DError(f"format {fmt!r} must be png, packed or raw")
        if fmt != "png" and kind != "depth":
            raise Photo3DError(f"format={fmt} is for kind=depth")
        array = await run(previewer.layer, req.image, req.scene, k, kind)
        if fmt == "raw":
            return web.Response(body=array.astype("<u2").tobytes(), content_type="application/octet-stream",
                                headers={"X-Width": str(array.shape[1]), "X-Height": str(array.shape[0])})
        if fmt == "packed":
            array = np.dstack([array >> 8, array & 255, np.zeros_like(array)]).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(array).save(buf, format="PNG", compress_level=1)
        return web.Response(body=buf.getvalue(), content_type="image/png")

    async def scene_glb(request):
        req = checked(check_request(_query(request)))
        body, name = await run(previewer.scene_glb, req.image, req.scene)
        return web.Response(body=body, content_type="model/gltf-binary",
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})

    async def poses(request):
        req = checked(check_request(_query(request)))
        return web.json_response(await run(previewer.poses, req.image, req.options))

    async def export(request):
        req = checked(check_body(await read_json(request)))
        job = await run(previewer.submit_export, req.image, req.options)
        return web.json_response(job.to_json(), status=202)

    def find_job(request):
        j = previewer.jobs.get(request.match_info["id"])
        if j is None:
            raise Refused(404, f"no export job {request.match_info['id']!r}")
        return j

    async def job(request):
        return web.json_response(find_job(request).to_json())

    async def cancel(request):
        j = find_job(request)
        try:
            previewer.jobs.cancel(j)
        except Photo3DError as e:
            raise Refused(409, str(e)) from None
        return web.json_response(j.to_json())

    async def clip(request):
        j = find_job(request)
        if j.state != "done":
            return _error(409, f"export job {j.id} is {j.state}, not done")
        name = f"{Path(j.image).stem}_{j.options.get('path', 'clip')}.mp4"
        return web.FileResponse(j.output, headers={
            "Content-Type": "video/mp4", "Content-Disposition": f'attachment; filename="{name}"'})

    async def settings_get(request):
        q = _query(request)
        rows = await run(previewer.read_manifest)
        if "image" in q:
            req = checked(check_request(q))
            return web.json_response(rows.get(req.image) or {})
        if q:
            raise Photo3DError(f"unknown query field(s) {', '.join(sorted(q))}; give image or nothing")
        return web.json_response({"manifest": str(previewer.manifest), "rows": list(rows.values())})

    async def settings_post(request):
        req = checked(check_body(await read_json(request)))
        row = await run(previewer.save_settings, req.image, req.options)
        return web.json_response(row)

    async def frame(data: Any) -> bytes:
        fields = parse_json(data, "a frame request")
        if not isinstance(fields, Mapping):
            raise Photo3DError("a frame request must be a JSON object")
        req = checked(check_request(fields, own=CAMERA_FIELDS))
        return await run(previewer.frame_jpeg, req.image, req.scene, *frame_camera(req.own))

    async def stream(request):
        ws = web.WebSocketResponse(max_msg_size=MAX_BODY)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            try:
                await ws.send_bytes(await frame(msg.data))
            except Photo3DError as e:
                await ws.send_json({"error": str(e)})
        return ws

    app = web.Application(middlewares=[guard], client_max_size=MAX_BODY)
    app[TOKEN_KEY] = token
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/info", info)
    app.router.add_get("/api/scene", scene)
    app.router.add_get("/api/layer", layer)
    app.router.add_get("/api/poses", poses)
    app.router.add_get("/api/scene.glb", scene_glb)
    app.router.add_post("/api/export", export)
    app.router.add_get("/api/jobs/{id}", job)
    app.router.add_post("/api/jobs/{id}/cancel", cancel)
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
    """The ``photo3d preview`` command: build the server, print the URL, run until Ctrl-C
    (which cancels a running export: it stops at its next frame)."""
    _require_web()
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
    try:
        sock, loopback = listen(args.host, args.port)
    except Photo3DError:
        previewer.close()
        raise
    app = make_app(previewer, loopback_only=loopback)
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    notice(f"preview: open http://{host}:{port}/  ({len(previewer.photos)} photo(s); Ctrl-C stops)")
    if not loopback:
        warn("the preview has no login; anyone who can reach this address can use it")
    web.run_app(app, sock=sock, print=None, access_log=None)
