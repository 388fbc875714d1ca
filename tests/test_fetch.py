"""Learned defaults fetched on first use, without ever touching the real network.

A fake Hugging Face hub (http.server on localhost, reached through HF_ENDPOINT) serves a
tiny Depth Anything V2 under the real name; an unreachable hub is a closed localhost port.
Checked: auto downloads the default once (one line, the cache used next time), falls back
to cues within about a second when the hub does not answer, never keeps a half-downloaded
file, and a named model offline fails at once with one line; a batch fetches once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import photo3d_fast.engines as engines
from photo3d_fast.batch.cli import run_batch
from photo3d_fast.cli import main
from photo3d_fast.engines import registry
from photo3d_fast.engines import weights as weights_mod
from photo3d_fast.engines.weights import download_path, reachable, resolve_auto, weight_files
from photo3d_fast.errors import Photo3DError

SMALL = "depth-anything-v2-small"
FAST = ["--duration", "0.2", "--fps", "10", "--runtime", "torch"]


def _new_process(monkeypatch) -> None:
    """Forget what this process learnt about the network and the models, as a new run would."""
    monkeypatch.setattr(weights_mod, "_REACH", {})
    monkeypatch.setattr(weights_mod, "_FAILED", {})
    monkeypatch.setattr(weights_mod, "_SAID", set())
    monkeypatch.setattr(engines, "_ENGINES", {})
    monkeypatch.setattr(engines, "_MODULES", {})


@pytest.fixture(autouse=True)
def online(tmp_path, monkeypatch):
    """An empty cache, downloads allowed (conftest forbids them), no proxy in the way."""
    monkeypatch.setenv("PHOTO3D_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("PHOTO3D_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("no_proxy", "*")
    _new_process(monkeypatch)
    return tmp_path / "cache"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tiny_small(monkeypatch) -> bytes:
    """Depth Anything V2 Small's registry entry with a tiny network, run at 56 px instead
    of 518 (what is tested is how weights arrive, not the network); returns its checkpoint
    as the hub would serve it."""
    from photo3d_fast.depth import backends
    from photo3d_fast.models.depth_anything import depth_anything_v2_tiny

    monkeypatch.setattr(backends, "DEPTH_ANYTHING_PREPROCESS",
                        dataclasses.replace(backends.DEPTH_ANYTHING_PREPROCESS, input_size=56))

    torch.manual_seed(1)
    state = depth_anything_v2_tiny().state_dict()
    last = [k for k in state if k.endswith("bias")][-1]
    state[last] += 1.0  # a varying, positive disparity, as in test_engines_pipeline
    buf = io.BytesIO()
    torch.save(state, buf)
    monkeypatch.setitem(registry.MODELS, SMALL, dataclasses.replace(registry.MODELS[SMALL], build=depth_anything_v2_tiny))
    return buf.getvalue()


class FakeHub:
    """A local hub: /<repo>/resolve/main/<file> redirects to /cdn/<file> with the headers
    huggingface.co sends (X-Linked-Size, X-Linked-Etag = sha256). mode "ok"; "cut": the
    connection closes after half the bytes; "bad-sha": the stated sha256 is wrong."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files, self.mode, self.gets = files, "ok", []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                name = self.path.rsplit("/", 1)[-1]
                data = hub.files.get(name)
                if data is None:
                    self.send_error(404)
                    return
                if "/resolve/" in self.path:
                    hub.gets.append(self.path)
                    sha = hashlib.sha256(data + (b"x" if hub.mode == "bad-sha" else b"")).hexdigest()
                    self.send_response(302)
                    self.send_header("Location", f"/cdn/{name}")
                    self.send_header("X-Linked-Size", str(len(data)))
                    self.send_header("X-Linked-Etag", f'"{sha}"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if hub.mode == "cut" else data)
                self.close_connection = True

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def hub(tiny_small, monkeypatch):
    fake = FakeHub({registry.MODELS[SMALL].source.filename: tiny_small})
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def _photo(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    img = np.full((32, 48, 3), (90, 140, 200), np.uint8)
    img[16:] = (60, 110, 40)
    img[8:24, 16:32] = rng.integers(0, 255, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


def _lines(err: str, what: str) -> list[str]:
    return [line for line in err.splitlines() if what in line]


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_unreachable_hub_falls_back_to_cues_within_2_s_with_one_line(tmp_path, monkeypatch, capsys, online):
    """The README's first command without a network: cues, one line, no wait."""
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    t0 = time.perf_counter()
    assert resolve_auto("depth") is None
    assert time.perf_counter() - t0 < 2.0
    out = tmp_path / "sample.mp4"
    assert main(["render", "--sample", "-o", str(out), "--size", "48x32", *FAST]) == 0
    err = capsys.readouterr().err
    said = _lines(err, "depth auto:")
    assert len(said) == 1 and "using cues" in said[0] and "photo3d engines fetch depth-anything-v2-small" in said[0]
    assert "depth: cues" in err and out.is_file()
    assert _files(online) == []


def test_a_hub_that_never_answers_counts_as_unreachable_after_1_s(monkeypatch):
    """A dead DNS server or a black-holed route: the check gives up on its own clock."""
    def hang(*args, **kwargs):
        time.sleep(3)
        raise OSError("too late")

    monkeypatch.setattr(weights_mod.socket, "create_connection", hang)
    t0 = time.perf_counter()
    why = reachable("https://hub.invalid/x")
    assert time.perf_counter() - t0 < 1.5 and "did not answer within 1 s" in why
    t0 = time.perf_counter()
    assert reachable("https://hub.invalid/y") == why and time.perf_counter() - t0 < 0.01  # once per process


def test_auto_downloads_the_default_once_then_uses_the_cache(hub, tmp_path, monkeypatch, capsys, online):
    photo = _photo(tmp_path / "p.png")
    # --inpaint classic: the fake hub would serve the inpainting default too
    assert main(["render", str(photo), "-o", str(tmp_path / "a.mp4"), *FAST, "--inpaint", "classic"]) == 0
    err = capsys.readouterr().err
    fetched = _lines(err, "downloading")
    dest = download_path(registry.MODELS[SMALL])
    assert len(fetched) == 1 and SMALL in fetched[0] and str(dest) in fetched[0] and "Apache-2.0" in fetched[0]
    assert "depth: depth-anything-v2-small" in err and "auto" in err
    assert len(hub.gets) == 1 and dest.read_bytes() == hub.files[dest.name]
    assert not [p for p in _files(online) if ".partial-" in p.name]

    _new_process(monkeypatch)  # a second run: no download, no network check needed
    monkeypatch.setattr(weights_mod, "reachable", lambda url: pytest.fail("checked the network with the weights here"))
    assert main(["render", str(photo), "-o", str(tmp_path / "b.mp4"), *FAST, "--inpaint", "classic"]) == 0
    err = capsys.readouterr().err
    assert not _lines(err, "downloading") and "depth: depth-anything-v2-small" in err and len(hub.gets) == 1


@pytest.mark.parametrize("mode, why", [("cut", "stopped after"), ("bad-sha", "sha256")])
def test_an_interrupted_or_wrong_download_leaves_no_usable_file(hub, mode, why, monkeypatch, capsys, online):
    hub.mode = mode
    assert resolve_auto("depth") is None
    said = _lines(capsys.readouterr().err, "depth auto:")
    assert len(said) == 1 and why in said[0] and "using cues" in said[0]
    assert _files(online) == []  # neither the file nor its partial
    # A named model says the same as an error, without downloading again in this process.
    with pytest.raises(Photo3DError, match=why):
        weight_files(registry.MODELS[SMALL], quiet=True)
    assert len(hub.gets) == 1
    _new_process(monkeypatch)
    hub.mode = "ok"  # the next run fetches it whole
    assert resolve_auto("depth", quiet=True) == SMALL and len(hub.gets) == 2


def test_ctrl_c_during_a_download_keeps_nothing(hub, monkeypatch, online):
    class Interrupting:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            pass

        def update(self, n: int) -> None:
            raise KeyboardInterrupt

    monkeypatch.setattr(weights_mod, "tqdm", Interrupting)
    with pytest.raises(KeyboardInterrupt):
        resolve_auto("depth", quiet=True)
    assert _files(online) == []


@pytest.mark.parametrize("how", ["--offline", "PHOTO3D_OFFLINE", "HF_HUB_OFFLINE", "unreachable"])
def test_a_named_model_without_weights_fails_fast_with_one_line(how, tmp_path, monkeypatch, capsys, online):
    hub_port = _closed_port()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{hub_port}")
    if how in ("PHOTO3D_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.setenv(how, "1")
    out = tmp_path / "c.mp4"
    t0 = time.perf_counter()
    code = main(["render", str(_photo(tmp_path / "p.png")), "-o", str(out), "--depth", SMALL, *FAST,
                 *(["--offline"] if how == "--offline" else [])])
    assert code == 2 and time.perf_counter() - t0 < 2.0
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1
    assert SMALL in err[0] and f"photo3d engines fetch {SMALL}" in err[0] and "--weights" in err[0]
    assert (f"127.0.0.1:{hub_port}" if how == "unreachable" else how) in err[0]
    assert not out.exists() and _files(online) == []


def test_offline_auto_is_quiet_and_uses_cues(hub, capsys):
    assert resolve_auto("depth", fetch=False) is None
    assert capsys.readouterr().err == "" and hub.gets == []


def test_a_batch_fetches_once_before_its_workers_start(hub, tmp_path, monkeypatch):
    from photo3d_fast.batch import cli as batch_cli

    manifest = tmp_path / "clips.csv"
    for i in range(3):
        _photo(tmp_path / f"p{i}.png", seed=i)
    manifest.write_text("image,depth,offline\np0.png,,\np1.png,auto,\np2.png,depth-anything-v2-small,\n"
                        "p0.png,midas-dpt-large,true\n")
    seen = []
    real_run = batch_cli.LocalRunner.run

    def spy(self, groups, on_result):
        # The weights are in the cache before any worker starts; auto is resolved in the jobs.
        seen.extend((job.options.get("depth"), download_path(registry.MODELS[SMALL]).is_file())
                    for group in groups for job in group)
        return real_run(self, groups, on_result)

    monkeypatch.setattr(batch_cli.LocalRunner, "run", spy)
    report = run_batch(manifest, tmp_path / "out", quiet=True, duration=0.2, fps=10.0, runtime="torch")
    assert len(hub.gets) == 1
    assert sorted(seen) == [(SMALL, True)] * 3
    status = [c["status"] for c in report["clips"]]
    assert status == ["ok", "ok", "ok", "failed"]
    error = report["clips"][3]["error"]
    assert "midas-dpt-large" in error and "--offline" in error and "photo3d engines fetch midas-dpt-large" in error
    assert "offline" not in report["clips"][3]["options"]  # how weights are found is not part of a clip's name
