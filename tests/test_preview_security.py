"""The preview server against hostile input (issue 16): options that name files, pages of
another origin, exports that would tie up the machine, unbounded caches, malformed bodies
and loopback addresses. Each test drives the server as a page (or a hostile page) would."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("aiohttp", reason="the preview needs the [preview] extra (aiohttp)")
import aiohttp  # noqa: E402
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from photo3d_fast.errors import Photo3DError  # noqa: E402
from photo3d_fast.preview.photos import MANIFEST_NAME  # noqa: E402
from photo3d_fast.preview.previewer import Previewer  # noqa: E402
from photo3d_fast.preview.server import make_app  # noqa: E402

EVIL = "http://evil.example"
TOKEN_HEADER = "X-Photo3D-Token"
# An export that runs for minutes on a CPU (1800 frames): long enough to be cancelled.
LONG = {"path": "swing", "duration": 60, "fps": 30, "size": "640x480", "depth": "cues", "inpaint": "classic"}


def _photo(path: Path, size=(96, 64), seed=0) -> Path:
    """A textured photo with a near box (clear depth edges for cues)."""
    rng = np.random.default_rng(seed)
    w, h = size
    img = rng.normal(120, 30, (h, w, 3))
    img[h // 3: 2 * h // 3, w // 3: w // 2] = [230, 40, 30]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    _photo(root / "a.png", seed=1)
    _photo(root / "sub" / "b.jpg", size=(80, 60), seed=2)
    return root


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> Path:
    """An image the server can read but must never use: outside --folder."""
    return _photo(tmp_path_factory.mktemp("outside") / "secret.png", seed=3)


@pytest.fixture
def previewer(folder, tmp_path):
    p = Previewer(folder=folder, max_side=96, kernels="torch", device="cpu", work_dir=tmp_path / "work")
    (tmp_path / "work").mkdir()
    yield p
    p.close()


def _serve(previewer: Previewer, check) -> None:
    """Run ``await check(client, token)`` against a fresh app; token: the one the page
    embeds (None when the page has none)."""

    async def main():
        app = make_app(previewer, close_on_cleanup=False)
        async with TestClient(TestServer(app)) as client:
            page = await (await client.get("/")).text()
            found = re.search(r'<meta name="photo3d-token" content="([^"]+)">', page)
            await check(client, found.group(1) if found else None)

    asyncio.run(main())


def _page(token: str | None) -> dict:
    """The headers the page's own state-changing calls carry."""
    return {TOKEN_HEADER: token} if token else {}


def _camera() -> dict:
    return {"c2w": np.eye(4).ravel().tolist(), "K": [100, 0, 48, 0, 100, 32, 0, 0, 1], "width": 96, "height": 64}


async def _wait_state(client, job_id: str, states: set[str], timeout: float) -> dict:
    t0 = time.monotonic()
    while True:
        job = await (await client.get(f"/api/jobs/{job_id}")).json()
        if job["state"] in states or time.monotonic() - t0 > timeout:
            return job
        await asyncio.sleep(0.05)


# -- 1. options are never file names, on every endpoint ------------------------------------------

def test_fields_that_are_not_options_are_refused_everywhere(previewer, outside):
    """One validator for every endpoint: a field that is not the image, an option or the
    endpoint's own (k, kind, camera...) is refused, on HTTP and on the WebSocket, so no
    spelling of a depth-map option reaches the depth loader."""

    async def check(client, token):
        for name in ("depth_map", "source", "depth_kind", "frames", "weights"):
            for url, extra in (("/api/scene", {}), ("/api/layer", {"k": "0"}), ("/api/poses", {})):
                r = await client.get(url, params={"image": "a.png", name: str(outside), **extra})
                assert r.status == 400, (url, name, await r.text())
                assert f"unknown option(s) {name}" in (await r.json())["error"]
            async with client.ws_connect("/api/stream") as ws:
                await ws.send_json({"image": "a.png", name: str(outside), **_camera()})
                msg = await ws.receive()
                assert msg.type == aiohttp.WSMsgType.TEXT, "a frame came back"
                assert f"unknown option(s) {name}" in json.loads(msg.data)["error"]
            for url in ("/api/export", "/api/settings"):
                r = await client.post(url, json={"image": "a.png", "options": {}, name: str(outside)},
                                      headers=_page(token))
                assert r.status == 400 and f"unknown option(s) {name}" in (await r.json())["error"], url
        # a depth method only: the same message on every endpoint, whether the file exists or not
        errors = set()
        for path in (str(outside), str(outside.with_name("missing.png"))):
            for url in ("/api/scene", "/api/layer", "/api/poses"):
                r = await client.get(url, params={"image": "a.png", "depth": path})
                errors.add((r.status, (await r.json())["error"].replace(path, "P")))
            async with client.ws_connect("/api/stream") as ws:
                await ws.send_json({"image": "a.png", "depth": path, **_camera()})
                errors.add((400, (await ws.receive_json())["error"].replace(path, "P")))
            for url in ("/api/export", "/api/settings"):
                r = await client.post(url, json={"image": "a.png", "options": {"depth": path}}, headers=_page(token))
                errors.add((r.status, (await r.json())["error"].replace(path, "P")))
        assert len(errors) == 1 and next(iter(errors))[0] == 400, errors
        assert "not a depth method" in next(iter(errors))[1]

    _serve(previewer, check)


def test_previewer_never_reads_a_depth_file(previewer, outside):
    """The depth loader's one caller refuses file names whoever calls it."""
    with pytest.raises(Photo3DError, match="not a depth method"):
        previewer.scene("a.png", None, str(outside))
    with pytest.raises(Photo3DError, match="not a depth method"):
        previewer.prepared("a.png", None, str(outside))
    with pytest.raises(Photo3DError, match="not a depth method"):
        previewer.poses("a.png", {"depth": str(outside)})


# -- 2. another origin ---------------------------------------------------------------------------

def _every_route(app) -> list[tuple[str, str]]:
    """(method, concrete path) of every route the app has."""
    out = []
    for route in app.router.routes():
        info = route.resource.get_info()
        path = info.get("path") or info["formatter"]
        out.append((route.method, path.format(id="0123456789ab", name="app.js")))
    return out


def test_hostile_page_is_refused_on_every_endpoint(previewer, folder):
    """A page of another origin (or a sandboxed one, Origin: null; or an <img> that sends
    no Origin but Sec-Fetch-Site: cross-site) gets 403 from every endpoint and the
    WebSocket, even if it knew the token; nothing runs and the manifest stays as it was."""
    manifest = folder / MANIFEST_NAME
    manifest.unlink(missing_ok=True)

    async def check(client, token):
        routes = _every_route(client.server.app)
        assert {("POST", "/api/export"), ("POST", "/api/settings"), ("GET", "/api/stream")} <= set(routes)
        hostile = [{"Origin": EVIL}, {"Origin": "null"}, {"Origin": f"http://localhost:{client.port + 1}"},
                   {"Sec-Fetch-Site": "cross-site"}]
        for method, path in routes:
            for headers in hostile:
                body = json.dumps({"image": "a.png", "options": {"path": "dolly"}})
                r = await client.request(method, path, data=body if method == "POST" else None,
                                         headers={**headers, **_page(token), "Content-Type": "application/json"})
                assert r.status == 403, (method, path, headers, r.status)
                if method != "HEAD":
                    assert "origin" in (await r.json())["error"].lower()
        for headers in hostile:
            with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                await client.ws_connect("/api/stream", headers=headers)
            assert e.value.status == 403
        # the page itself (same origin, as browsers send it) is served
        own = f"http://{client.host}:{client.port}"
        r = await client.get("/api/info", headers={"Origin": own, "Sec-Fetch-Site": "same-origin"})
        assert r.status == 200
        async with client.ws_connect("/api/stream", headers={"Origin": own}) as ws:
            await ws.send_json({"image": "a.png", "depth": "cues", **_camera()})
            assert (await ws.receive()).type == aiohttp.WSMsgType.BINARY

    _serve(previewer, check)
    assert not manifest.exists()
    assert not previewer.jobs.list()


def test_state_changing_calls_need_json_and_the_page_token(previewer, folder):
    """Content-Type application/json or 415; the page's per-server token or 403."""
    manifest = folder / MANIFEST_NAME
    manifest.unlink(missing_ok=True)

    async def check(client, token):
        assert token and len(token) >= 32, "the page embeds no token"
        body = json.dumps({"image": "a.png", "options": {"path": "dolly"}})
        for url in ("/api/export", "/api/settings"):
            r = await client.post(url, data=body, headers={"Content-Type": "text/plain", **_page(token)})
            assert r.status == 415, (url, r.status)
            r = await client.post(url, data={"image": "a.png", "options": "x"}, headers=_page(token))  # a form
            assert r.status == 415, (url, r.status)
            for bad in ({}, {TOKEN_HEADER: "x" * len(token)}, {TOKEN_HEADER: token[:-1]}, {TOKEN_HEADER: "é"}):
                r = await client.post(url, data=body, headers={"Content-Type": "application/json", **bad})
                assert r.status == 403 and "token" in (await r.json())["error"], (url, bad)
        r = await client.post("/api/jobs/0123456789ab/cancel")
        assert r.status == 403
        assert not manifest.exists() and not previewer.jobs.list()
        r = await client.post("/api/settings", data=body,
                              headers={"Content-Type": "application/json; charset=utf-8", **_page(token)})
        assert r.status == 200, await r.text()
        assert manifest.exists()
        # the page sends it (the browser test runs the page against a server that checks)
        js = await (await client.get("/static/app.js")).text()
        assert TOKEN_HEADER in js

    _serve(previewer, check)
    manifest.unlink(missing_ok=True)


# -- 3. exports: limits, queue, cancel, Ctrl-C ---------------------------------------------------

def test_export_limits_are_enforced_with_clear_messages(previewer, tmp_path):
    async def check(client, token):
        cases = [({"size": "16384x16384", "duration": 120, "fps": 30}, "at most 4096 pixels per side"),
                 ({"size": "4100x64"}, "at most 4096 pixels per side"),
                 ({"duration": 120}, "at most 60 s"),
                 ({"fps": 120}, "at most 60 fps"),
                 ({"fps": 10 ** 4000}, "fps"),  # parses as JSON; too large for a float
                 ({"duration": 61, "fps": 60}, "at most 60 s")]
        for options, words in cases:
            r = await client.post("/api/export", json={"image": "a.png", "options": options}, headers=_page(token))
            body = await r.json()
            assert r.status == 400 and words in body["error"], (options, body)
        assert not previewer.jobs.list()
        from photo3d_fast.preview.options import MAX_EXPORT_FPS, MAX_EXPORT_SECONDS, MAX_EXPORT_SIDE

        assert (MAX_EXPORT_SIDE, MAX_EXPORT_SECONDS, MAX_EXPORT_FPS) == (4096, 60, 60)  # as the README states
        info = await (await client.get("/api/info")).json()
        assert info["limits"]["max_export_side"] == MAX_EXPORT_SIDE
        assert info["limits"]["max_export_seconds"] == MAX_EXPORT_SECONDS
        assert info["limits"]["max_export_fps"] == MAX_EXPORT_FPS

    _serve(previewer, check)
    # a photo larger than the limit exports only at a chosen size
    big = Previewer(photo=_photo(tmp_path / "wide.png", size=(4100, 24)), max_side=128, device="cpu")
    try:
        async def check_big(client, token):
            r = await client.post("/api/export", json={"image": "wide.png", "options": {}}, headers=_page(token))
            assert r.status == 400 and "4100x24" in (await r.json())["error"]

        _serve(big, check_big)
    finally:
        big.close()


def test_export_queue_is_bounded_and_jobs_cancel(previewer, tmp_path):
    """The queue holds MAX_QUEUED_EXPORTS exports (queued or running): one more gets 429. A
    queued job cancels at once, a running one within a frame; neither leaves a file."""
    from photo3d_fast.preview.options import MAX_QUEUED_EXPORTS

    work = tmp_path / "work"

    async def check(client, token):
        jobs = []
        for _ in range(MAX_QUEUED_EXPORTS):
            r = await client.post("/api/export", json={"image": "a.png", "options": LONG}, headers=_page(token))
            assert r.status == 202, await r.text()
            jobs.append(await r.json())
        r = await client.post("/api/export", json={"image": "a.png", "options": LONG}, headers=_page(token))
        assert r.status == 429 and f"{MAX_QUEUED_EXPORTS} exports" in (await r.json())["error"]
        running = await _wait_state(client, jobs[0]["id"], {"running"}, 60)
        assert running["state"] == "running"
        for _ in range(600):  # frames are being written: the partial file exists
            if (await (await client.get(f"/api/jobs/{jobs[0]['id']}")).json())["done"] > 2:
                break
            await asyncio.sleep(0.05)
        assert any(work.iterdir()), "the running export writes nothing"
        # a queued job: cancelled at once, never runs
        r = await client.post(f"/api/jobs/{jobs[-1]['id']}/cancel", headers=_page(token))
        assert r.status == 200 and (await r.json())["state"] == "cancelled"
        # the running one stops within a frame
        t0 = time.monotonic()
        r = await client.post(f"/api/jobs/{jobs[0]['id']}/cancel", headers=_page(token))
        assert r.status == 200
        job = await _wait_state(client, jobs[0]["id"], {"cancelled", "done", "error"}, 10)
        assert job["state"] == "cancelled" and job["done"] < job["total"], job
        assert time.monotonic() - t0 < 5
        # the queue has room again
        r = await client.post("/api/export", json={"image": "a.png", "options": LONG}, headers=_page(token))
        assert r.status == 202
        jobs.append(await r.json())
        for j in jobs[1:]:
            await client.post(f"/api/jobs/{j['id']}/cancel", headers=_page(token))
        for j in jobs:
            assert (await _wait_state(client, j["id"], {"cancelled"}, 10))["state"] == "cancelled"
        r = await client.post(f"/api/jobs/{jobs[0]['id']}/cancel", headers=_page(token))
        assert r.status == 409
        assert (await client.get(f"/api/jobs/{jobs[0]['id']}/clip")).status == 409
        r = await client.post("/api/jobs/nope/cancel", headers=_page(token))
        assert r.status == 404

    _serve(previewer, check)
    assert list(work.iterdir()) == []  # no clip, no partial file
    page = (Path(__file__).parents[1] / "photo3d_fast" / "preview" / "static" / "index.html").read_text()
    assert 'id="cancel"' in page


def test_ctrl_c_stops_a_running_export_promptly(tmp_path):
    """``photo3d preview`` with an export running: Ctrl-C ends the process within seconds
    and leaves no clip or partial file behind (the export ran for minutes before)."""
    photo = _photo(tmp_path / "p.png", size=(160, 120))
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    code = "import sys; from photo3d_fast.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, "preview", str(photo), "--port", "0", "--device", "cpu",
                             "--kernels", "torch", "--max-side", "64"],
                            env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = ""
        t0 = time.monotonic()
        while "open http" not in line and time.monotonic() - t0 < 120:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "the server exited"
        url = re.search(r"http://[^/]+/", line).group(0)

        async def export() -> None:
            async with aiohttp.ClientSession() as s:
                found = re.search(r'name="photo3d-token" content="([^"]+)"', await (await s.get(url)).text())
                r = await s.post(url + "api/export", json={"image": "p.png", "options": LONG},
                                 headers=_page(found and found.group(1)))
                job = await r.json()
                assert r.status == 202, job
                for _ in range(1200):
                    job = await (await s.get(url + f"api/jobs/{job['id']}")).json()
                    if job["state"] == "running" and job["done"] > 2:
                        return
                    await asyncio.sleep(0.05)
                raise AssertionError(f"the export did not start: {job}")

        asyncio.run(export())
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
        assert time.monotonic() - t0 < 10
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stderr.close()
    left = [p for p in (tmp_path / "tmp").rglob("*")]
    assert left == [], left


# -- 4. the scene cache --------------------------------------------------------------------------

def test_scene_cache_key_is_the_photo_id(previewer):
    a = previewer.scene("sub/b.jpg", None, "cues")
    assert previewer.scene("./sub/b.jpg", None, "cues") is a
    assert previewer.scene("sub//b.jpg", None, "cues") is a
    assert previewer.prepared("./sub/b.jpg", None, "cues").depth is a.prepared.depth


def test_scene_cache_is_bounded_lru(folder, tmp_path):
    """Scenes of 30 fov values stay within the cache's bytes: the least recently used
    are dropped (and freed), the ones in use are kept."""
    from photo3d_fast.preview.options import CACHE_BYTES

    assert CACHE_BYTES == 512 * 2 ** 20
    p = Previewer(folder=folder, max_side=96, kernels="torch", device="cpu", cache_bytes=2 ** 40)
    try:
        p.scene("a.png", 40.0, "cues")
        one = p.cache.nbytes  # photo, depth and one scene
        assert one > 96 * 64 * 4 * 2
    finally:
        p.close()
    budget = 4 * one
    p = Previewer(folder=folder, max_side=96, kernels="torch", device="cpu", cache_bytes=budget)
    try:
        refs = []
        for fov in range(30, 60):
            sc = p.scene("a.png", float(fov), "cues")
            refs.append(weakref.ref(sc))
            del sc
            assert p.cache.nbytes <= budget
            p.scene("a.png", 30.0, "cues")  # in use all along: kept
        gc.collect()
        alive = [r for r in refs if r() is not None]
        assert 2 <= len(alive) <= 6, len(alive)
        assert refs[0]() is not None and refs[-1]() is not None
        assert p.scene("a.png", 30.0, "cues") is refs[0]()
    finally:
        p.close()


# -- 5. malformed bodies, loopback addresses -----------------------------------------------------

def test_malformed_bodies_are_400(previewer):
    digits = '{"image": "a.png", "options": {"fps": ' + "1" * 5000 + "}}"
    deep = "[" * 30000 + "]" * 30000
    deep_obj = '{"image": "a.png", "options": ' + '{"a":' * 10000 + "1" + "}" * 10001

    async def check(client, token):
        for body in (digits, deep, deep_obj):
            assert len(body) < 64 * 1024
            for url in ("/api/export", "/api/settings"):
                r = await client.post(url, data=body, headers={"Content-Type": "application/json", **_page(token)})
                assert r.status == 400, (url, body[:40], r.status)
                assert "JSON" in (await r.json())["error"]
            async with client.ws_connect("/api/stream") as ws:
                await ws.send_str(body)
                assert "JSON" in (await ws.receive_json())["error"]
                await ws.send_json({"image": "a.png", "depth": "cues", **_camera()})  # still serving
                assert (await ws.receive()).type == aiohttp.WSMsgType.BINARY

    _serve(previewer, check)


def test_every_loopback_address_is_local(previewer):
    async def check(client, token):
        for host in ("127.0.0.2:8765", "127.0.0.1", "localhost:1", "[::1]:8765", "127.255.0.9"):
            r = await client.get("/api/info", headers={"Host": host})
            assert r.status == 200, host
        for host in ("evil.example", "10.0.0.1:8765", "127.0.0.1.evil.example", "[::2]", "0.0.0.0"):
            r = await client.get("/api/info", headers={"Host": host})
            assert r.status == 403, host

    _serve(previewer, check)
    from photo3d_fast.preview.server import listen

    for host, local in (("127.0.0.2", True), ("127.0.0.1", True), ("localhost", True), ("0.0.0.0", False)):
        sock, loopback = listen(host, 0)
        sock.close()
        assert loopback is local, host
