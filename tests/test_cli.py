"""The photo3d command end to end, and every bad input it must refuse (or repair) clearly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photo3d_fast import render_clip
from photo3d_fast.cli import main

FAST = ["--duration", "0.3", "--fps", "10", "-q"]  # 3 frames


def _photo(path: Path, size=(48, 32), mode="RGB") -> Path:
    rng = np.random.default_rng(0)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx * 255 // max(1, w - 1), yy * 255 // max(1, h - 1), rng.integers(0, 255, (h, w))], -1).astype(np.uint8)
    rgb[h // 4 : 3 * h // 4, w // 3 : 2 * w // 3] = (250, 240, 30)  # a bright "subject"
    im = Image.fromarray(rgb)
    if mode == "I;16":
        im = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)  # 16-bit grayscale
    elif mode != "RGB":
        im = im.convert(mode)
    im.save(path)
    return path


def _decode(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _run(args, capsys) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def _user_error(args, capsys, tmp_path: Path, match: str) -> str:
    before = set(tmp_path.rglob("*"))
    code, err = _run(args, capsys)
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("photo3d: error:"), err
    assert match in lines[0], lines[0]
    assert "Traceback" not in err
    assert set(tmp_path.rglob("*")) == before, "a failed run left files behind"
    return lines[0]


def test_render_end_to_end(tmp_path, capsys):
    photo = _photo(tmp_path / "p.png", (64, 48))
    out = tmp_path / "clip.mp4"
    frames = tmp_path / "frames"
    code, err = _run(["render", photo, "-o", out, "--frames", frames, "--no-overscan", *FAST], capsys)
    assert code == 0, err
    video = _decode(out)
    assert video.shape == (3, 48, 64, 3)
    pngs = sorted(frames.glob("*.png"))
    assert len(pngs) == 3
    # frame 0 of every preset is the photo's own view (without the overscan zoom)
    first = np.asarray(Image.open(pngs[0]).convert("RGB")).astype(int)
    assert np.abs(first - np.asarray(Image.open(photo).convert("RGB")).astype(int)).max() <= 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("preset", ["swing", "circle", "dolly", "zoom", "ken-burns", "vertigo", "dolly-zoom"])
def test_every_preset_renders(tmp_path, capsys, preset):
    photo = _photo(tmp_path / "p.png")
    out = tmp_path / "c.mp4"
    code, err = _run(["render", photo, "-o", out, "--path", preset, "--size", "40x30", *FAST], capsys)
    assert code == 0, err
    assert _decode(out).shape == (3, 30, 40, 3)


def test_keyframe_file(tmp_path, capsys):
    photo = _photo(tmp_path / "p.png")
    keys = tmp_path / "path.json"
    keys.write_text(json.dumps({"keyframes": [
        {"t": 0, "position": [0, 0, 0]},
        {"t": 1, "position": [0.05, 0, 0.1], "zoom": 1.2, "rotation": [0, 1, 0]},
    ]}))
    code, err = _run(["render", photo, "-o", tmp_path / "k.mp4", "--path", keys, *FAST], capsys)
    assert code == 0, err
    assert len(_decode(tmp_path / "k.mp4")) == 3


def test_deterministic(tmp_path, capsys):
    photo = _photo(tmp_path / "p.png")
    for name in ("a", "b"):
        code, err = _run(["render", photo, "-o", tmp_path / f"{name}.mp4", "--frames", tmp_path / name, *FAST], capsys)
        assert code == 0, err
    for fa, fb in zip(sorted((tmp_path / "a").iterdir()), sorted((tmp_path / "b").iterdir())):
        assert fa.read_bytes() == fb.read_bytes()


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "I;16", "CMYK"])
def test_converted_image_modes(tmp_path, capsys, mode):
    suffix = ".jpg" if mode == "CMYK" else ".png"
    photo = _photo(tmp_path / f"p{suffix}", mode=mode)
    code, err = _run(["render", photo, "-o", tmp_path / "c.mp4", *FAST], capsys)
    assert code == 0, err


def test_depth_command_round_trip(tmp_path, capsys):
    photo = _photo(tmp_path / "p.png")
    depth_png = tmp_path / "d.png"
    code, err = _run(["depth", photo, "-o", depth_png, "-q"], capsys)
    assert code == 0, err
    d = np.asarray(Image.open(depth_png))
    assert d.shape == (32, 48) and d.dtype == np.uint16 and d.max() > d.min()
    code, err = _run(["depth", photo, "-o", tmp_path / "d.npy", "-q"], capsys)
    a = np.load(tmp_path / "d.npy")
    assert code == 0 and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    np.testing.assert_allclose(a, d / 65535.0, atol=1.0 / 65535.0)
    code, err = _run(["render", photo, "-o", tmp_path / "c.mp4", "--depth", depth_png, *FAST], capsys)
    assert code == 0, err


def test_depth_map_repairs_are_announced(tmp_path, capsys):
    photo = _photo(tmp_path / "p.png")
    depth = np.linspace(1, 5, 24 * 16, dtype=np.float32).reshape(16, 24)
    depth[3, 4] = np.nan
    depth[5, 6] = np.inf
    np.save(tmp_path / "d.npy", depth)
    code, err = _run(["render", photo, "-o", tmp_path / "c.mp4", "--depth", tmp_path / "d.npy",
                      "--depth-kind", "depth", "--duration", "0.2", "--fps", "10"], capsys)
    assert code == 0, err
    assert "2 invalid pixels" in err and "resized" in err


def test_render_clip_api(tmp_path):
    photo = _photo(tmp_path / "p.png")
    out = render_clip(photo, tmp_path / "api.mp4", quiet=True, duration=0.2, fps=10, path="dolly", amount=2.0, size=(32, 32))
    assert out == tmp_path / "api.mp4"
    assert _decode(out).shape == (2, 32, 32, 3)


def test_console_script_help_and_user_error(tmp_path):
    help_text = subprocess.run([sys.executable, "-m", "photo3d_fast.cli", "render", "--help"],
                               capture_output=True, text=True, check=True).stdout
    for word in ("--path", "--amount", "--depth", "--frames", "vertigo", "ken-burns"):
        assert word in help_text
    top = subprocess.run([sys.executable, "-m", "photo3d_fast.cli", "--help"], capture_output=True, text=True).stdout
    assert "learned model" in " ".join(top.split()) and "photo3d doctor" in top
    r = subprocess.run([sys.executable, "-m", "photo3d_fast.cli", "render", str(tmp_path / "nope.jpg")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr


# ---- bad input: one line on stderr, exit 2, nothing left behind ---------------------------


def test_missing_file(tmp_path, capsys):
    _user_error(["render", tmp_path / "nope.jpg", "-o", tmp_path / "c.mp4"], capsys, tmp_path, "does not exist")


def test_directory_as_image(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    _user_error(["render", tmp_path / "d", "-o", tmp_path / "c.mp4"], capsys, tmp_path, "is a directory")


def test_not_an_image(tmp_path, capsys):
    (tmp_path / "notes.jpg").write_text("hello, I am text")
    _user_error(["render", tmp_path / "notes.jpg", "-o", tmp_path / "c.mp4"], capsys, tmp_path, "not an image")


def test_truncated_jpeg(tmp_path, capsys):
    photo = _photo(tmp_path / "full.jpg", (200, 150))
    data = photo.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    _user_error(["render", tmp_path / "cut.jpg", "-o", tmp_path / "c.mp4"], capsys, tmp_path, "truncated or corrupt")


def test_tiny_image(tmp_path, capsys):
    Image.new("RGB", (1, 1), (9, 9, 9)).save(tmp_path / "tiny.png")
    _user_error(["render", tmp_path / "tiny.png", "-o", tmp_path / "c.mp4"], capsys, tmp_path, "at least 16x16")


def test_huge_image(tmp_path, capsys):
    Image.new("1", (20000, 16)).save(tmp_path / "wide.png")  # 1-bit: a few KB on disk
    _user_error(["render", tmp_path / "wide.png", "-o", tmp_path / "c.mp4"], capsys, tmp_path, "16384 pixels a side")


def test_unknown_preset(tmp_path, capsys):
    photo = _photo(tmp_path / "p.png")
    line = _user_error(["render", photo, "-o", tmp_path / "c.mp4", "--path", "wobble", *FAST], capsys, tmp_path, "unknown path preset")
    assert "swing" in line and "vertigo" in line


def test_bad_keyframes(tmp_path, capsys):
    photo = _photo(tmp_path / "p.png")
    (tmp_path / "k.json").write_text('{"keyframes": [{"t": 0.5}, {"t": 0.2}]}')
    _user_error(["render", photo, "-o", tmp_path / "c.mp4", "--path", tmp_path / "k.json", *FAST], capsys, tmp_path, "increase")


@pytest.mark.parametrize("size,match", [("8x8", "out of range"), ("99999x10", "out of range")])
def test_bad_size_range(tmp_path, capsys, size, match):
    photo = _photo(tmp_path / "p.png")
    _user_error(["render", photo, "-o", tmp_path / "c.mp4", "--size", size, *FAST], capsys, tmp_path, match)


def test_bad_size_format(tmp_path, capsys):
    photo = _photo(tmp_path / "p.png")
    with pytest.raises(SystemExit) as e:
        main(["render", str(photo), "--size", "wide"])
    assert e.value.code == 2
    assert "WIDTHxHEIGHT" in capsys.readouterr().err


def test_output_directory_missing(tmp_path, capsys):
    photo = _photo(tmp_path / "p.png")
    _user_error(["render", photo, "-o", tmp_path / "no" / "such" / "c.mp4", *FAST], capsys, tmp_path, "directory")


def test_output_extension(tmp_path, capsys):
    photo = _photo(tmp_path / "p.png")
    _user_error(["render", photo, "-o", tmp_path / "c.avi", *FAST], capsys, tmp_path, ".mp4")


def test_depth_map_all_invalid(tmp_path, capsys):
    photo = _photo(tmp_path / "p.png")
    np.save(tmp_path / "d.npy", np.full((32, 48), np.nan, np.float32))
    _user_error(["render", photo, "-o", tmp_path / "c.mp4", "--depth", tmp_path / "d.npy", *FAST],
                capsys, tmp_path, "no valid value")


def test_depth_map_zero_depth_refused_when_all_zero(tmp_path, capsys):
    photo = _photo(tmp_path / "p.png")
    np.save(tmp_path / "d.npy", np.zeros((32, 48), np.float32))
    _user_error(["render", photo, "-o", tmp_path / "c.mp4", "--depth", tmp_path / "d.npy", "--depth-kind", "depth", *FAST],
                capsys, tmp_path, "no valid value")


def test_depth_map_wrong_shape(tmp_path, capsys):
    photo = _photo(tmp_path / "p.png")
    np.save(tmp_path / "d.npy", np.ones((4, 32, 48), np.float32))
    _user_error(["render", photo, "-o", tmp_path / "c.mp4", "--depth", tmp_path / "d.npy", *FAST], capsys, tmp_path, "2D")


def test_unknown_depth_method(tmp_path, capsys):
    photo = _photo(tmp_path / "p.png")
    _user_error(["render", photo, "-o", tmp_path / "c.mp4", "--depth", "magic", *FAST], capsys, tmp_path, "neither a depth method")


def test_cuda_asked_without_gpu(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    photo = _photo(tmp_path / "p.png")
    _user_error(["render", photo, "-o", tmp_path / "c.mp4", "--device", "cuda", *FAST], capsys, tmp_path, "no CUDA GPU")


def test_no_image_given(tmp_path, capsys):
    _user_error(["render", "-o", tmp_path / "c.mp4"], capsys, tmp_path, "no image given")


def test_frames_per_launch(tmp_path, capsys):
    photo = _photo(tmp_path / "p.png")
    _user_error(["render", photo, "-o", tmp_path / "c.mp4", "--frames-per-launch", "0", *FAST], capsys, tmp_path,
                "between 1 and 65535")
    out = tmp_path / "c.mp4"
    code, err = _run(["render", photo, "-o", out, "--frames-per-launch", "2", "--kernels", "torch", *FAST], capsys)
    assert code == 0, err
    assert _decode(out).shape[0] == 3
