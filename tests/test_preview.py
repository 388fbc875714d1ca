"""The live preview: server API (aiohttp test client) and the page in headless Chromium."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("aiohttp", reason="the preview needs the [preview] extra (aiohttp)")
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from photo3d_fast.config import ClipOptions, PathConfig  # noqa: E402
from photo3d_fast.errors import Photo3DError  # noqa: E402
from photo3d_fast.inpaint import resolve_inpaint  # noqa: E402
from photo3d_fast.ops import fill as fill_op  # noqa: E402
from photo3d_fast.ops import splat as splat_op  # noqa: E402
from photo3d_fast.pipeline import engine_options  # noqa: E402
from photo3d_fast.preview.chromium import Chromium, find_chromium  # noqa: E402
from photo3d_fast.preview.options import OPTION_NAMES, SceneOptions, scene_options  # noqa: E402
from photo3d_fast.preview.photos import MANIFEST_NAME, safe_relative  # noqa: E402
from photo3d_fast.preview.previewer import LDI_AMOUNT, Previewer  # noqa: E402
from photo3d_fast.preview.server import TOKEN_HEADER, TOKEN_KEY, make_app  # noqa: E402
from photo3d_fast.render import Renderer  # noqa: E402
from photo3d_fast.scene.ldi import build_ldi, ldi_params_for_motion  # noqa: E402
from photo3d_fast.scene.paths import default_focus, make_path, preset_path  # noqa: E402


def _photo(path: Path, size=(96, 64), seed=0) -> Path:
    """A photo with a near box in front of a textured far wall (clear depth edges for cues)."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 255 // w), (yy * 255 // h), np.full_like(xx, 90)], -1).astype(np.float64)
    img += rng.normal(0, 12, img.shape)
    img[h // 3: 2 * h // 3 + 8, w // 3: w // 2 + 6] = [230, 40, 30]
    img[h * 3 // 4:, :] = [60, 140, 60] + rng.normal(0, 20, (h - h * 3 // 4, w, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    _photo(root / "a.png", seed=1)
    _photo(root / "sub" / "b.jpg", size=(80, 60), seed=2)
    (root / "notes.txt").write_text("not a photo")
    outside = _photo(tmp_path_factory.mktemp("outside") / "secret.png", seed=3)
    try:
        (root / "link.png").symlink_to(outside)  # leads out of the folder: never listed
    except OSError:
        pass
    return root


@pytest.fixture(scope="module")
def previewer(folder) -> Previewer:
    p = Previewer(folder=folder, max_side=96, kernels="torch", device="cpu")
    yield p
    p.close()


def _run(previewer: Previewer, check) -> None:
    """Run ``await check(client)`` against a fresh app on ``previewer``; the client sends
    the token the page carries, as the page's own calls do."""

    async def main():
        app = make_app(previewer, close_on_cleanup=False)
        async with TestClient(TestServer(app)) as client:
            client.session.headers[TOKEN_HEADER] = app[TOKEN_KEY]
            await check(client)

    asyncio.run(main())


def test_info_and_listing(previewer):
    async def check(client):
        r = await client.get("/api/info")
        assert r.status == 200
        info = await r.json()
        assert info["mode"] == "folder"
        assert info["photos"] == ["a.png", "sub/b.jpg"]  # no text file, no symlink out of the folder
        assert "swing" in info["presets"] and "cues" in info["depth_models"]
        assert info["inpaint_methods"][:2] == ["auto", "classic"]
        assert {"inpaint", "clean_depth"} <= set(info["option_names"]) and info["option_names"] == list(OPTION_NAMES)
        assert info["scene_option_names"] == ["fov", "depth", "inpaint", "clean_depth"]
        assert info["defaults"]["inpaint"] == ClipOptions().engine.inpaint
        assert info["defaults"]["clean_depth"] is ClipOptions().render.clean_depth
        assert "torch" in info["kernels"]
        page = await (await client.get("/")).text()
        assert 'id="inpaint"' in page and 'id="clean_depth"' in page
        r = await client.get("/")
        assert r.status == 200 and "webgl" not in r.headers.get("Content-Security-Policy", "x").lower()
        assert "app.js" in await r.text()
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        for name in ("app.js", "style.css"):
            assert (await client.get(f"/static/{name}")).status == 200
        r = await client.get("/static/..%2Fserver.py")
        assert r.status == 404

    _run(previewer, check)


def test_ldi_payload_shapes_and_dtypes(previewer):
    async def check(client):
        r = await client.get("/api/scene", params={"image": "a.png", "depth": "cues"})
        assert r.status == 200, await r.text()
        sc = await r.json()
        assert (sc["width"], sc["height"]) == (96, 64) and sc["layers"] == 2
        assert np.asarray(sc["K"]).shape == (3, 3) and sc["edge_disparity"] > 0
        assert 0 < sc["disparity_min"] < sc["disparity_max"] and sc["near"] > 0 and sc["focus"] > 0
        ldi = previewer.scene("a.png", None, "cues").ldi
        for k in range(sc["layers"]):
            q = {"image": "a.png", "depth": "cues", "k": str(k)}
            color = Image.open(io.BytesIO(await (await client.get("/api/layer", params={**q, "kind": "color"})).read()))
            assert color.mode == "RGBA" and color.size == (96, 64)
            alpha = np.asarray(color)[..., 3]
            np.testing.assert_array_equal(alpha > 0, ldi.valid[k].numpy())
            depth_png = Image.open(io.BytesIO(await (await client.get("/api/layer", params={**q, "kind": "depth"})).read()))
            d16 = np.asarray(depth_png)
            assert d16.dtype == np.uint16 and d16.shape == (64, 96)
            r = await client.get("/api/layer", params={**q, "kind": "depth", "format": "raw"})
            raw = np.frombuffer(await r.read(), "<u2").reshape(64, 96)
            np.testing.assert_array_equal(raw, d16)
            # decoding gives the LDI's disparity back within the 16-bit step
            valid = raw > 0
            lo, hi = sc["disparity_min"], sc["disparity_max"]
            disp = lo + (raw[valid].astype(np.float64) - 1) / 65534 * (hi - lo)
            np.testing.assert_allclose(disp, 1.0 / ldi.depth[k].numpy()[valid], atol=(hi - lo) / 65534 + 1e-6, rtol=1e-5)
            mask = np.asarray(Image.open(io.BytesIO(await (await client.get("/api/layer", params={**q, "kind": "mask"})).read())))
            assert mask.dtype == np.uint8 and ((mask == 255) == valid).all()
            assert k > 0 or valid.all()
        assert (await client.get("/api/layer", params={"image": "a.png", "k": "5"})).status == 400

    _run(previewer, check)


def _export_ldi(previewer: Previewer, image: str, depth: str, inpaint: str, clean_depth: bool):
    """The preview LDI of ``image`` built here, independently, as pipeline.render_into
    builds an export's (photo at the preview's size, motion of LDI_AMOUNT)."""
    prepared = previewer.prepared(image, None, depth)
    h, w = prepared.rgb.shape[:2]
    assert max(w, h) <= previewer.max_side  # no resize in these tests
    near, focus = float(np.percentile(prepared.depth, 1.0)), default_focus(prepared.depth)
    band, edge = ldi_params_for_motion(prepared.K, prepared.depth,
                                       preset_path("circle", 64, LDI_AMOUNT, near, focus).max_translation(), (w, h))
    opts = ClipOptions.from_flat({"inpaint": inpaint, "clean_depth": clean_depth, "kernels": "torch", "device": "cpu"})
    engine = engine_options(opts.engine, opts.render)
    return build_ldi(prepared.rgb, prepared.depth, prepared.K, layers=opts.render.layers, band=band,
                     edge_disparity=edge, device="cpu", kernels="torch", clean_depth=clean_depth,
                     inpaint=resolve_inpaint(inpaint, engine), engine=engine)


def test_scene_options_build_the_export_ldi(previewer):
    """inpaint and clean_depth reach the LDI the page draws and the server renders: the
    layer endpoints return the LDI build_ldi makes with the export's arguments."""

    async def check(client):
        ldis = {}
        for clean in (False, True):
            q = {"image": "a.png", "depth": "cues", "inpaint": "classic", "clean_depth": str(clean).lower()}
            r = await client.get("/api/scene", params=q)
            assert r.status == 200, await r.text()
            sc = await r.json()
            assert sc["inpaint"] == "classic" and sc["clean_depth"] is clean and sc["layers"] == 2
            assert "inpaint: classic" in sc["notes"]
            assert sc["render"] == {"footprint_margin": splat_op.FOOTPRINT_MARGIN, "max_half_extent": splat_op.MAX_HALF_EXTENT,
                                    "resolve_share": splat_op.RESOLVE_SHARE, "coverage_full": splat_op.COVERAGE_FULL,
                                    "z_near": splat_op.Z_NEAR, "far_power": fill_op.FAR_POWER}
            want = _export_ldi(previewer, "a.png", "cues", "classic", clean)
            ldis[clean] = want
            assert sc["edge_disparity"] == pytest.approx(want.edge_disparity, rel=1e-12)
            np.testing.assert_allclose(sc["K"], want.K)
            lo, hi = sc["disparity_min"], sc["disparity_max"]
            for k in range(2):
                color = np.asarray(Image.open(io.BytesIO(await (await client.get(
                    "/api/layer", params={**q, "k": str(k), "kind": "color"})).read())))
                packed = np.asarray(Image.open(io.BytesIO(await (await client.get(
                    "/api/layer", params={**q, "k": str(k), "kind": "depth", "format": "packed"})).read())))
                assert packed.dtype == np.uint8 and packed.shape == (64, 96, 3)
                v = packed[..., 0].astype(np.int64) * 256 + packed[..., 1]
                raw = np.frombuffer(await (await client.get("/api/layer", params={
                    **q, "k": str(k), "kind": "depth", "format": "raw"})).read(), "<u2").reshape(64, 96)
                np.testing.assert_array_equal(v, raw)
                valid = want.valid[k].numpy()
                np.testing.assert_array_equal(color[..., 3] > 0, valid)
                np.testing.assert_array_equal(v > 0, valid)
                rgb = (want.color[k].numpy() * 255.0 + 0.5).astype(np.uint8)
                np.testing.assert_array_equal(color[..., :3][valid], rgb[valid])
                disp = lo + (v[valid] - 1) / 65534 * (hi - lo)
                np.testing.assert_allclose(disp, 1.0 / want.depth[k].numpy()[valid], atol=(hi - lo) / 65534, rtol=1e-6)
            # the server's frames are rendered from this very LDI
            sc_obj = previewer.scene("a.png", None, "cues", "classic", clean)
            assert sc_obj.inpaint == "classic" and sc_obj.clean_depth is clean
            assert sc_obj.renderer.ldi is sc_obj.ldi
        # the option changes the LDI: conditioning moved the depth of the front layer
        assert not np.allclose(ldis[False].depth[0].numpy(), ldis[True].depth[0].numpy())

    _run(previewer, check)
    # "auto" is resolved as export resolves it, and shares the scene of what it resolves to
    engine = engine_options(ClipOptions().engine, ClipOptions.from_flat({"device": "cpu"}).render)
    method = resolve_inpaint("auto", engine)
    assert previewer.scene("a.png", None, "cues", "auto") is previewer.scene("a.png", None, "cues", method)
    assert scene_options({}) == SceneOptions() == SceneOptions(None, "auto", ClipOptions().engine.inpaint,
                                                               ClipOptions().render.clean_depth)


def test_poses_match_paths(previewer):
    async def check(client):
        params = {"image": "a.png", "path": "circle", "amount": "1.5", "duration": "2", "fps": "12",
                  "depth": "cues", "overscan": "false"}
        r = await client.get("/api/poses", params=params)
        assert r.status == 200, await r.text()
        got = await r.json()
        prepared = previewer.prepared("a.png", None, "cues")
        z = prepared.depth
        want = make_path(PathConfig(preset="circle", duration=2, fps=12, amount=1.5),
                         near=float(np.percentile(z, 1.0)), focus=default_focus(z))
        assert got["n"] == 24 and got["overscan"] == 1.0
        np.testing.assert_allclose(np.asarray(got["poses"]).reshape(-1, 4, 4), want.poses, atol=1e-12)
        np.testing.assert_allclose(got["zoom"], want.zoom)
        np.testing.assert_allclose(got["K"], prepared.K, rtol=1e-9)
        # with overscan the zoom is the constant render_into applies, at least 1
        r = await client.get("/api/poses", params={**params, "overscan": "true", "size": "64x64"})
        got = await r.json()
        assert got["size"] == [64, 64] and 1.0 <= got["overscan"] <= 1.25
        np.testing.assert_allclose(got["zoom"], want.zoom * got["overscan"])

    _run(previewer, check)


def test_bad_requests_are_refused_clearly(previewer):
    async def check(client):
        cases = [
            ("/api/poses", {"image": "a.png", "path": "/etc/passwd.json"}, "not a preset"),
            ("/api/poses", {"image": "a.png", "amount": "lots"}, "not a number"),
            ("/api/poses", {"image": "a.png", "fps": "1000"}, "--fps"),
            ("/api/poses", {"image": "a.png", "depth": "/etc/passwd"}, "not a depth method"),
            ("/api/poses", {"image": "a.png", "size": "big"}, "WIDTHxHEIGHT"),
            ("/api/poses", {"image": "a.png", "duration": "600", "fps": "60"}, "at most"),
            ("/api/scene", {"image": "../outside/secret.png"}, "'..'"),
            ("/api/scene", {"image": "/etc/passwd"}, "relative path"),
            ("/api/scene", {"image": "link.png"}, "not one of the photos"),
            ("/api/scene", {"image": "notes.txt"}, "not one of the photos"),
            ("/api/scene", {"image": "sub/../a.png"}, "'..'"),
            ("/api/layer", {"image": "a.png", "kind": "secret"}, "color, depth or mask"),
            ("/api/layer", {"image": "a.png", "kind": "color", "format": "packed"}, "kind=depth"),
            ("/api/scene", {"image": "a.png", "inpaint": "bogus"}, "--inpaint 'bogus'"),
            ("/api/layer", {"image": "a.png", "inpaint": "/etc/passwd"}, "--inpaint"),
            ("/api/scene", {"image": "a.png", "clean_depth": "maybe"}, "not true or false"),
            ("/api/poses", {"image": "a.png", "inpaint": "telea"}, "--inpaint 'telea'"),
            ("/api/poses", {"image": "a.png", "clean_depth": "2"}, "not true or false"),
        ]
        for url, params, words in cases:
            r = await client.get(url, params=params)
            body = await r.json()
            assert r.status == 400, (params, body)
            assert words in body["error"], (params, body)
            assert "\n" not in body["error"], body  # one line
        r = await client.post("/api/export", data=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status == 400 and "JSON" in (await r.json())["error"]
        r = await client.post("/api/export", json={"image": "a.png", "options": {"frames": "/tmp/x"}})
        assert r.status == 400 and "unknown option" in (await r.json())["error"]
        for bad, words in (({"inpaint": "bogus"}, "--inpaint 'bogus': choose one of auto, classic, lama, migan"),
                           ({"clean_depth": "sometimes"}, "clean_depth 'sometimes' is not true or false")):
            r = await client.post("/api/export", json={"image": "a.png", "options": bad})
            assert r.status == 400 and (await r.json())["error"] == words
            r = await client.post("/api/settings", json={"image": "a.png", "options": bad})
            assert r.status == 400 and (await r.json())["error"] == words
        async with client.ws_connect("/api/stream") as ws:
            await ws.send_json({"image": "a.png", "inpaint": "bogus", "c2w": [], "K": [], "width": 1, "height": 1})
            assert "--inpaint 'bogus'" in (await ws.receive_json())["error"]
        r = await client.post("/api/export", data=b"x" * 100_000, headers={"Content-Type": "application/json"})
        assert r.status in (400, 413)
        r = await client.get("/api/jobs/nope")
        assert r.status == 404 and "no export job" in (await r.json())["error"]
        r = await client.get("/api/info", headers={"Host": "evil.example:80"})
        assert r.status == 403

    _run(previewer, check)
    with pytest.raises(Photo3DError):
        safe_relative("C:/windows")


def test_export_job_lifecycle(previewer):
    av = pytest.importorskip("av", reason="PyAV reads the exported clip back")

    async def check(client):
        opts = {"path": "swing", "duration": 1, "fps": 8, "amount": 1, "size": "64x48", "depth": "cues",
                "inpaint": "classic", "clean_depth": False}
        r = await client.post("/api/export", json={"image": "sub/b.jpg", "options": opts})
        assert r.status == 202, await r.text()
        job = await r.json()
        assert job["state"] in ("queued", "running") and job["download"] is None
        assert job["options"]["inpaint"] == "classic" and job["options"]["clean_depth"] is False
        r = await client.get(f"/api/jobs/{job['id']}/clip")
        states = {job["state"]}
        for _ in range(600):
            job = await (await client.get(f"/api/jobs/{job['id']}")).json()
            states.add(job["state"])
            if job["state"] in ("done", "error"):
                break
            await asyncio.sleep(0.1)
        assert job["state"] == "done", job
        assert states <= {"queued", "running", "done"} and job["done"] == job["total"] == 8
        r = await client.get(job["download"])
        assert r.status == 200 and r.headers["Content-Type"] == "video/mp4"
        assert "b_swing.mp4" in r.headers["Content-Disposition"]
        data = await r.read()
        with av.open(io.BytesIO(data)) as f:
            frames = [fr for fr in f.decode(video=0)]
        assert len(frames) == 8 and (frames[0].width, frames[0].height) == (64, 48)

    _run(previewer, check)


def test_folder_manifest_saved_and_readable(previewer, folder):
    async def check(client):
        r = await client.post("/api/settings", json={"image": "sub/b.jpg", "options": {
            "path": "circle", "amount": 1.5, "duration": 4, "fps": 24, "size": "1280x720", "fov": 60,
            "overscan": False, "depth": "cues", "inpaint": "classic", "clean_depth": "false"}})
        assert r.status == 200, await r.text()
        row = await r.json()
        assert row["inpaint"] == "classic" and row["clean_depth"] is False
        r = await client.post("/api/settings", json={"image": "a.png", "options": {"path": "dolly"}})
        r = await client.post("/api/settings", json={"image": "sub/b.jpg", "options": {"path": "zoom", "amount": 2,
                                                                                      "inpaint": "lama", "clean_depth": False}})
        assert (await r.json())["path"] == "zoom"
        r = await client.post("/api/settings", json={"image": "../x.png", "options": {}})
        assert r.status == 400
        got = await (await client.get("/api/settings", params={"image": "sub/b.jpg"})).json()
        assert got["path"] == "zoom" and got["amount"] == 2

    _run(previewer, check)
    rows = [json.loads(line) for line in (folder / MANIFEST_NAME).read_text().splitlines()]
    assert [r["image"] for r in rows] == ["sub/b.jpg", "a.png"]  # one row per photo, updated in place
    # every row is valid render options by CLI name, as batch and render_clip take them
    from photo3d_fast.config import ClipOptions

    for row in rows:
        assert (folder / row["image"]).is_file()
        ClipOptions.from_flat({k: v for k, v in row.items() if k != "image"})
    try:
        from photo3d_fast.batch.manifest import plan_batch
    except ImportError:
        return
    plan = plan_batch(folder / MANIFEST_NAME, folder / "clips")
    assert len(plan.jobs) == 2 and not plan.results, plan.results
    by_photo = {Path(j.image).name: j.options for j in plan.jobs}
    assert by_photo["b.jpg"]["path"] == "zoom" and by_photo["b.jpg"]["amount"] == 2
    assert by_photo["b.jpg"]["inpaint"] == "lama" and by_photo["b.jpg"]["clean_depth"] is False
    assert by_photo["a.png"]["path"] == "dolly"


def test_manifest_elsewhere_is_relative_to_itself(folder, tmp_path):
    p = Previewer(folder=folder, manifest=tmp_path / "m.jsonl", max_side=64, device="cpu")
    try:
        row = p.save_settings("sub/b.jpg", {"path": "circle"})
        assert (tmp_path / row["image"]).resolve() == (folder / "sub" / "b.jpg").resolve()
        assert p.read_manifest()["sub/b.jpg"]["path"] == "circle"
    finally:
        p.close()


def test_server_stream_frames(previewer):
    """Server-side interactive mode: a pose in, a JPEG of the Renderer's frame out."""

    async def check(client):
        sc = await (await client.get("/api/scene", params={"image": "a.png", "depth": "cues"})).json()
        K = np.asarray(sc["K"])
        async with client.ws_connect("/api/stream") as ws:
            frames = []
            for tx in (0.0, 0.05):
                c2w = np.eye(4)
                c2w[0, 3] = tx
                await ws.send_json({"image": "a.png", "depth": "cues", "c2w": c2w.ravel().tolist(),
                                    "K": K.ravel().tolist(), "width": 96, "height": 64})
                msg = await ws.receive()
                frames.append(np.asarray(Image.open(io.BytesIO(msg.data)).convert("RGB"), np.float64))
            assert frames[0].shape == (64, 96, 3)
            assert np.abs(frames[0] - frames[1]).mean() > 1.0
            # the identity pose shows the photo itself (JPEG-close)
            photo = np.asarray(Image.open(previewer.photo_path("a.png")).convert("RGB"), np.float64)
            assert np.abs(frames[0] - photo).mean() < 12
            # the scene options choose the LDI the frame is rendered from
            c2w = np.eye(4)
            c2w[0, 3] = 0.05
            opts = SceneOptions(depth="cues", inpaint="classic", clean_depth=False)
            await ws.send_json({"image": "a.png", **opts.query(), "c2w": c2w.ravel().tolist(), "K": K.ravel().tolist(),
                                "width": 96, "height": 64})
            got = np.asarray(Image.open(io.BytesIO((await ws.receive()).data)).convert("RGB"), np.float64)
            want = previewer.scene_of("a.png", opts).renderer.render(c2w, K, (96, 64)).numpy()
            buf = io.BytesIO()
            Image.fromarray(want).save(buf, format="JPEG", quality=85)
            assert np.abs(got - np.asarray(Image.open(buf), np.float64)).mean() < 0.5
            await ws.send_json({"image": "../x", "c2w": [], "K": [], "width": 1, "height": 1})
            assert "'..'" in (await ws.receive_json())["error"]

    _run(previewer, check)


def test_single_photo_mode_and_cli(tmp_path):
    photo = _photo(tmp_path / "one.png")
    p = Previewer(photo=photo, max_side=64, device="cpu")
    try:
        assert p.photos == ["one.png"] and p.manifest is None
        with pytest.raises(Photo3DError, match="--folder"):
            p.read_manifest()
    finally:
        p.close()
    from photo3d_fast.cli import main

    assert main(["preview", str(tmp_path / "missing.png"), "--port", "0"]) == 2
    assert main(["preview", "--folder", str(tmp_path / "nope")]) == 2


# -- the page in a real browser ---------------------------------------------------------------

_CANVAS_STATS = """(() => {
  const c = document.getElementById('gl'); const w = 64, h = Math.round(64 * c.height / c.width);
  const t = document.createElement('canvas'); t.width = w; t.height = h;
  const g = t.getContext('2d'); g.drawImage(c, 0, 0, w, h);
  return Array.from(g.getImageData(0, 0, w, h).data);
})()"""


def _artifact(path: Path) -> None:
    out = os.environ.get("PHOTO3D_ARTIFACTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(out) / path.name)


async def _compare_with_server(page: Chromium, p: Previewer, opts: SceneOptions, port: int,
                               renderer: Renderer | None = None) -> tuple[float, float]:
    """The page's WebGL2 frame against the server's frames of the same camera and scene:
    the Renderer's (exact up to float rounding; ``renderer``: another LDI's, then without
    the stream) and server mode's (the JPEG the stream sends). Returns (mean |page -
    renderer|, mean |page - the photo's view|)."""
    import aiohttp

    pose, K, size = await page.evaluate("[window.preview.pose, window.preview.K, window.preview.canvasSize]")
    url_png = await page.evaluate("document.getElementById('gl').toDataURL('image/png')")
    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(url_png.split(",", 1)[1]))).convert("RGB"), np.float64)
    streams = renderer is None
    renderer = renderer or p.scene_of("coffee.jpg", opts).renderer
    rendered = renderer.render(np.asarray(pose).reshape(4, 4), np.asarray(K), tuple(size)).cpu().numpy().astype(np.float64)
    assert shown.shape == rendered.shape
    photo_view = renderer.render(np.eye(4), np.asarray(K), tuple(size)).cpu().numpy()
    diff = np.abs(shown - rendered)
    same, moved = diff.mean(), np.abs(shown - photo_view).mean()
    off = (diff.max(-1) > 8).mean()
    if not streams:
        print(f"{opts}, another LDI: page vs renderer {same:.3f} (pixels off by > 8: {off:.3%})")
        assert same < 0.1 and off < 0.002, (same, off, moved)
        return same, moved
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"http://127.0.0.1:{port}/api/stream") as ws:
            await ws.send_json({"image": "coffee.jpg", **opts.query(), "c2w": pose, "K": np.asarray(K).ravel().tolist(),
                                "width": size[0], "height": size[1]})
            msg = await ws.receive()
    streamed = np.asarray(Image.open(io.BytesIO(msg.data)).convert("RGB"), np.float64)
    jpeg = np.abs(shown - streamed).mean()
    print(f"{opts}: page vs renderer {same:.3f} (pixels off by > 8: {off:.3%}), "
          f"page vs server-mode frame {jpeg:.2f}, page vs photo view {moved:.2f}")
    # The same splatting, resolve, silhouette blending and hole fill: only float rounding
    # differs (measured: 0.000 and no pixel; without the silhouette blending 0.26 and
    # 0.6%; the cut mesh the page drew before: 2.4).
    assert same < 0.1 and off < 0.002, (same, off, moved)
    assert jpeg < 4.0, jpeg  # server mode shows the same frame, through JPEG q85
    return same, moved


@pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed (apt-get install chromium)")
def test_page_in_headless_chromium(tmp_path):
    from photo3d_fast.pipeline import SAMPLE_IMAGE

    p = Previewer(photo=SAMPLE_IMAGE, max_side=320, kernels="torch", device="cpu")

    async def main():
        app = make_app(p, close_on_cleanup=False)
        async with TestServer(app, host="127.0.0.1") as server:
            url = f"http://127.0.0.1:{server.port}/?measure=1"
            async with Chromium(url, size=(1100, 700)) as page:
                await page.wait_for("window.preview && window.preview.ready && window.preview.frames > 5", timeout=120)
                assert await page.evaluate("window.preview.mode") == "webgl2", page.console
                assert await page.evaluate("window.preview.error") is None
                await page.evaluate("document.getElementById('play').click()")  # pause on a frame
                await asyncio.sleep(0.5)
                before = np.asarray(await page.evaluate(_CANVAS_STATS), np.float64).reshape(-1, 4)[:, :3]
                assert before.std() > 20, "the canvas is blank"
                rect = await page.evaluate(
                    "(() => { const r = document.getElementById('gl').getBoundingClientRect();"
                    " return [r.left, r.top, r.width, r.height]; })()")
                cx, cy = rect[0] + rect[2] / 2, rect[1] + rect[3] / 2
                frames = await page.evaluate("window.preview.frames")
                await page.drag((cx, cy), (cx + rect[2] * 0.45, cy + rect[3] * 0.3))
                await page.wait_for(f"window.preview.frames > {frames + 3}")
                after = np.asarray(await page.evaluate(_CANVAS_STATS), np.float64).reshape(-1, 4)[:, :3]
                assert np.abs(after - before).mean() > 2.0, "dragging did not move the camera"
                # what the page shows is what the server renderer draws for the same camera
                _, moved = await _compare_with_server(page, p, SceneOptions(), server.port)
                assert moved > 4.0, "the camera did not move away from the photo's view"
                # an exact depth map's LDI has steps (LDI.step_disparity): the cue depth's drawn
                # as if it were one, so that its many small steps show the page's footprints
                ldi = p.scene_of("coffee.jpg", SceneOptions()).ldi
                assert await page.evaluate("window.preview.scene.step_disparity") is None  # cue depth
                stepped = dataclasses.replace(ldi, step_disparity=0.2 * ldi.edge_disparity)
                assert int(splat_op.prepare(stepped).step_x.abs().sum()) > 1000
                await page.evaluate(f"window.preview.setStep({stepped.step_disparity!r})")
                frames = await page.evaluate("window.preview.frames")
                await page.wait_for(f"window.preview.frames > {frames + 2}")
                await _compare_with_server(page, p, SceneOptions(), server.port, Renderer(stepped, "torch"))
                pose, K, size = await page.evaluate("[preview.pose, preview.K, preview.canvasSize]")
                frames = [Renderer(x, "torch").render(np.asarray(pose).reshape(4, 4), np.asarray(K), tuple(size))
                          for x in (stepped, ldi)]
                # the steps changed more of the frame than the comparison lets differ (0.2%)
                changed = (np.abs(frames[0].numpy().astype(int) - frames[1].numpy()).max(-1) > 8).mean()
                assert changed > 0.005, changed
                # the scene options reach the page's LDI: the one of clean_depth off, classic fill
                await page.evaluate("""(() => { const set = (id, v) => { const el = document.getElementById(id);
                    el.value = v; el.dispatchEvent(new Event('change')); };
                    set('inpaint', 'classic'); set('clean_depth', 'false'); })()""")
                await page.wait_for("window.preview.ready && window.preview.scene.clean_depth === false"
                                    " && window.preview.scene.inpaint === 'classic'", timeout=180)
                frames = await page.evaluate("window.preview.frames")
                await page.wait_for(f"window.preview.frames > {frames + 2}")
                await _compare_with_server(page, p, SceneOptions(inpaint="classic", clean_depth=False), server.port)
                assert "--inpaint classic --no-clean-depth" in await page.evaluate(
                    "document.getElementById('command').textContent")
                # export from the page (it sends the server's token) and cancel it with its button
                await page.evaluate("document.getElementById('export').click()")
                await page.wait_for("!document.getElementById('cancel').hidden", timeout=60)
                await page.evaluate("document.getElementById('cancel').click()")
                await page.wait_for("document.getElementById('status').textContent.endsWith('cancelled')"
                                    " && document.getElementById('cancel').hidden", timeout=120)
                assert [j.state for j in p.jobs.list()] == ["cancelled"]
                stats = await page.evaluate("window.preview.stats()")
                assert stats["frame_ms"] is not None and stats["frame_ms"] > 0 and stats["draw_ms"] is not None
                shot = await page.screenshot(tmp_path / "preview_webgl2.png")
                _artifact(shot)
            # the server-frames fallback, forced by the URL
            async with Chromium(f"http://127.0.0.1:{server.port}/?mode=server", size=(900, 600)) as page:
                await page.wait_for("window.preview && window.preview.ready && window.preview.frames > 2", timeout=120)
                assert await page.evaluate("window.preview.mode") == "server"
                shot = await page.screenshot(tmp_path / "preview_server.png")
                _artifact(shot)

    try:
        asyncio.run(main())
    finally:
        p.close()


def test_scene_glb_is_the_export_of_the_photo(previewer, folder, tmp_path):
    from photo3d_fast import export_scene

    async def check(client):
        r = await client.get("/api/scene.glb", params={"image": "a.png", "depth": "cues", "inpaint": "classic"})
        assert r.status == 200, await r.text()
        assert r.content_type == "model/gltf-binary"
        assert 'filename="a.glb"' in r.headers["Content-Disposition"]
        body = await r.read()
        assert body[:4] == b"glTF"
        # the file photo3d export writes for the same photo and scene options, byte for byte
        out = export_scene(folder / "a.png", tmp_path / "a.glb", quiet=True, depth="cues", inpaint="classic",
                           kernels="torch", device="cpu")
        assert out.read_bytes() == body
        # a bad option or a file name instead of a depth method is refused, as everywhere
        r = await client.get("/api/scene.glb", params={"image": "a.png", "depth": str(folder / "a.png")})
        assert r.status == 400
        r = await client.get("/api/scene.glb", params={"image": "../outside.png"})
        assert r.status in (400, 404)

    _run(previewer, check)


@pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed (apt-get install chromium)")
def test_3d_view_in_headless_chromium(tmp_path):
    from photo3d_fast.pipeline import SAMPLE_IMAGE

    p = Previewer(photo=SAMPLE_IMAGE, max_side=160, kernels="cpp", device="cpu")

    async def canvas_pixels(page, name):
        rect = await page.evaluate("(() => { const r = document.getElementById('gl3d').getBoundingClientRect();"
                                   " return [r.left, r.top, r.width, r.height]; })()")
        shot = np.asarray(Image.open(await page.screenshot(tmp_path / name)).convert("RGB"), np.float64)
        x, y, w, h = (int(round(v)) for v in rect)
        return shot[y:y + h, x:x + w], rect

    async def main():
        app = make_app(p, close_on_cleanup=False)
        async with TestServer(app, host="127.0.0.1") as server:
            async with Chromium(f"http://127.0.0.1:{server.port}/", size=(900, 600)) as page:
                await page.wait_for("window.preview && window.preview.ready", timeout=120)
                await page.evaluate("(() => { const el = document.getElementById('inpaint'); el.value = 'classic';"
                                    " el.dispatchEvent(new Event('change')); })()")
                await page.evaluate("document.getElementById('view3d').click()")
                await page.wait_for("window.preview.scene3d !== null && window.preview.scene3d !== undefined",
                                    timeout=180)
                assert await page.evaluate("window.preview.scene3d") == "ready", page.console
                await asyncio.sleep(1.0)
                before, rect = await canvas_pixels(page, "scene3d.png")
                # the photo's own view of its scene: the photo's colours (a textured scene, not
                # white untextured triangles, not a blank canvas)
                photo = np.asarray(Image.open(SAMPLE_IMAGE).convert("RGB"), np.float64)
                drawn = before[np.abs(before - 17).max(-1) > 2]  # not the viewer's background (#111)
                assert len(drawn) > 0.3 * before.shape[0] * before.shape[1], "the 3D view is blank"
                assert (drawn.min(-1) > 245).mean() < 0.05, "the scene is drawn without its texture"
                assert np.abs(drawn.mean(0) - photo.reshape(-1, 3).mean(0)).max() < 20, \
                    (drawn.mean(0), photo.reshape(-1, 3).mean(0))
                _artifact(tmp_path / "scene3d.png")
                cx, cy = rect[0] + rect[2] / 2, rect[1] + rect[3] / 2
                await page.drag((cx, cy), (cx + rect[2] * 0.3, cy + rect[3] * 0.1))
                await asyncio.sleep(1.0)
                after, _ = await canvas_pixels(page, "scene3d_orbit.png")
                assert np.abs(after - before).mean() > 3.0, "dragging did not orbit the scene"
                href = await page.evaluate("document.getElementById('scene3d-download').getAttribute('href')")
                assert href.startswith("/api/scene.glb?")
                await page.evaluate("document.getElementById('scene3d-close').click()")
                assert await page.evaluate("document.getElementById('scene3d').hidden")

    try:
        asyncio.run(main())
    finally:
        p.close()


def test_stereo_export_from_the_preview(previewer):
    from photo3d_fast.preview.options import MAX_EXPORT_SIDE, check_export_limits

    # sbs doubles the width: the preview's side limit counts the video's frame
    with pytest.raises(Photo3DError, match="half-sbs"):
        check_export_limits(ClipOptions.from_flat({"stereo": "sbs", "size": f"{MAX_EXPORT_SIDE // 2 + 16}x64"}))
    check_export_limits(ClipOptions.from_flat({"stereo": "half-sbs", "size": f"{MAX_EXPORT_SIDE // 2 + 16}x64"}))

    async def check(client):
        opts = {"path": "swing", "duration": 0.25, "fps": 8, "size": "64x48", "depth": "cues", "inpaint": "classic",
                "stereo": "sbs", "ipd": 0.05}
        r = await client.post("/api/export", json={"image": "a.png", "options": opts})
        assert r.status == 202, await r.text()
        job = await r.json()
        for _ in range(600):
            job = await (await client.get(f"/api/jobs/{job['id']}")).json()
            if job["state"] in ("done", "error"):
                break
            await asyncio.sleep(0.1)
        assert job["state"] == "done", job
        import av

        with av.open(io.BytesIO(await (await client.get(job["download"])).read())) as f:
            frame = next(f.decode(video=0))
        assert (frame.width, frame.height) == (128, 48)  # both eyes, side by side
        # the stereo options alone are refused, as by the CLI
        r = await client.post("/api/export", json={"image": "a.png", "options": {"ipd": 0.05}})
        assert r.status == 400 and "only with --stereo" in (await r.json())["error"]

    _run(previewer, check)
