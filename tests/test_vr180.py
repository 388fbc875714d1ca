"""VR180 (equirectangular half spheres per eye, spherical-video metadata) and stereo stills
(``photo3d stereo``)."""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from photo3d_fast.cli import main
from photo3d_fast.config import ClipOptions
from photo3d_fast.encode.spherical import inject_vr180, vr180_boxes
from photo3d_fast.encode.formats import ffmpeg_exe
from photo3d_fast.encode.writers import VideoWriter
from photo3d_fast.errors import Photo3DError
from photo3d_fast.render.stereo import VR180_MAX_SIDE, equirect_180, vr180_side
from photo3d_fast.scene.camera import intrinsics_from_fov

from helpers import gradient_photo

FAST = ["--duration", "0.2", "--fps", "10", "-q", "--depth", "cues"]  # 2 frames


def _probe(path: Path) -> str:
    """ffmpeg's description of ``path``'s streams (its side data included)."""
    run = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    return run.stderr


def _decode_raw(path: Path) -> bytes:
    run = subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True)
    return run.stdout


# -- the half sphere -------------------------------------------------------------------------


def test_equirect_maps_each_direction_to_the_pixel_the_pinhole_sees():
    w, h, side = 64, 48, 181
    K = intrinsics_from_fov(w, h, 60.0)
    # Each pixel holds its own column index (red) and row index (green): the sphere then
    # says which view pixel each of its directions was read from.
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    view = np.stack([u * 3, v * 4, np.full_like(u, 200)], axis=-1).astype(np.uint8)
    sphere = equirect_180(torch.from_numpy(view)[None], torch.from_numpy(K)[None], side)[0].numpy()
    assert sphere.shape == (side, side, 3)
    t = ((np.arange(side) + 0.5) / side - 0.5) * math.pi
    checked = 0
    for j in range(0, side, 7):
        for i in range(0, side, 7):
            lon, lat = t[i], t[j]
            x, y, z = math.cos(lat) * math.sin(lon), math.sin(lat), math.cos(lat) * math.cos(lon)
            px, py = K[0, 0] * x / z + K[0, 2], K[1, 1] * y / z + K[1, 2]
            if 1.0 <= px <= w - 1.0 and 1.0 <= py <= h - 1.0:  # inside, away from the border's blend
                assert abs(sphere[j, i, 0] / 3.0 - (px - 0.5)) < 0.5, (i, j)
                assert abs(sphere[j, i, 1] / 4.0 - (py - 0.5)) < 0.5, (i, j)
                checked += 1
            elif not (-1.0 <= px <= w + 1.0 and -1.0 <= py <= h + 1.0):
                assert sphere[j, i].max() == 0, (i, j)  # what the photo did not see is black
    assert checked > 30
    # The view spans its field of view of longitude: 60 of 180 degrees of the width.
    lit = np.flatnonzero(sphere[side // 2, :, 2] > 100)
    assert abs(len(lit) / side - 60.0 / 180.0) < 0.02


def test_half_sphere_side_keeps_the_views_resolution_and_is_capped():
    assert vr180_side(300.0) == 942  # pi * 300, even
    assert vr180_side(1e5) == VR180_MAX_SIDE
    assert vr180_side(1.0) == 64


# -- metadata --------------------------------------------------------------------------------


@pytest.mark.parametrize("layout, stereo", [("sbs", "side by side"), ("tb", "top and bottom")])
def test_injected_metadata_is_read_back_and_the_video_is_unchanged(tmp_path, layout, stereo):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (6, 64, 128, 3), dtype=np.uint8)
    plain, vr = tmp_path / "plain.mp4", tmp_path / "vr.mp4"
    for path in (plain, vr):
        with VideoWriter(path, 10, (128, 64)) as writer:
            if path == vr:
                writer.finalize = lambda tmp: inject_vr180(tmp, layout)
            for f in frames:
                writer.write(f)
    info = _probe(vr)
    assert "Spherical Mapping" in info and "equirectangular" in info, info
    assert f"Stereo 3D: {stereo}" in info, info
    # Bounds: half the sphere's longitude cropped away (a quarter each side), no latitude.
    bounds = re.search(r"equirectangular \[(\d+), (\d+), (\d+), (\d+)\]", info)
    left, top, right, bottom = map(int, bounds.groups())
    assert top == bottom == 0 and abs(left - right) <= 2 and left > 0
    assert "Spherical" not in _probe(plain)
    # The media are where the moved chunk offsets say (faststart: moov before mdat).
    assert _decode_raw(vr) == _decode_raw(plain)
    assert vr.stat().st_size == plain.stat().st_size + len(vr180_boxes(layout))
    assert not list(tmp_path.glob(".*partial*"))


def test_a_file_without_moov_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "x.mp4"
    path.write_bytes(b"\x00\x00\x00\x10ftypisom\x00\x00\x00\x00")
    with pytest.raises(Photo3DError, match="moov"):
        inject_vr180(path, "sbs")
    assert path.read_bytes() == b"\x00\x00\x00\x10ftypisom\x00\x00\x00\x00"


# -- clips and stills ------------------------------------------------------------------------


def test_vr180_clip_has_square_eyes_side_by_side_and_its_metadata(tmp_path, capsys):
    photo = gradient_photo(tmp_path / "p.png", (48, 32))
    out = tmp_path / "vr.mp4"
    code = main(["render", str(photo), "-o", str(out), "--stereo", "sbs", "--vr180", *FAST])
    assert code == 0, capsys.readouterr().err
    side = vr180_side(intrinsics_from_fov(48, 32, 55.0)[0, 0])
    info = _probe(out)
    assert f"{2 * side}x{side}" in info and "Spherical Mapping" in info and "side by side" in info, info
    raw = np.frombuffer(_decode_raw(out), np.uint8).reshape(-1, side, 2 * side, 3)
    assert raw.shape[0] == 2
    # Each eye: the photo in the middle of its half sphere, black at the poles and the sides.
    for eye in (raw[0, :, :side], raw[0, :, side:]):
        assert eye[side // 2, side // 2].max() > 30
        assert eye[2, side // 2].max() < 12 and eye[side // 2, 2].max() < 12


@pytest.mark.parametrize("args, match", [
    (["--vr180"], "--stereo sbs"),
    (["--vr180", "--stereo", "anaglyph"], "--stereo sbs"),
    (["--vr180", "--stereo", "sbs", "--convergence", "2"], "--convergence"),
])
def test_vr180_options_are_checked(tmp_path, capsys, args, match):
    photo = gradient_photo(tmp_path / "p.png", (48, 32))
    before = set(tmp_path.rglob("*"))
    code = main(["render", str(photo), "-o", str(tmp_path / "c.mp4"), *args, *FAST])
    err = capsys.readouterr().err
    assert code == 2 and match in err, err
    assert set(tmp_path.rglob("*")) == before


def test_vr180_refuses_containers_without_its_metadata(tmp_path, capsys):
    photo = gradient_photo(tmp_path / "p.png", (48, 32))
    code = main(["render", str(photo), "-o", str(tmp_path / "c.mkv"), "--stereo", "sbs", "--vr180", *FAST])
    err = capsys.readouterr().err
    assert code == 2 and ".mp4 or .mov" in err, err
    assert not list(tmp_path.glob("*.mkv")) and not list(tmp_path.glob(".*partial*"))


def test_batch_and_api_take_vr180():
    opts = ClipOptions.from_flat({"stereo": "tb", "vr180": "true"})
    assert opts.render.vr180 and opts.changed()["vr180"] is True
    with pytest.raises(Photo3DError, match="--stereo sbs"):
        ClipOptions.from_flat({"vr180": True})


def test_stereo_still_is_the_first_frame_of_the_stereo_clip(tmp_path, capsys):
    photo = gradient_photo(tmp_path / "p.png", (48, 32))
    still = tmp_path / "s.png"
    assert main(["stereo", str(photo), "-o", str(still), "--ipd", "0.05", "-q", "--depth", "cues"]) == 0, \
        capsys.readouterr().err
    image = np.asarray(Image.open(still))
    assert image.shape == (32, 96, 3)  # sbs is the still's default layout
    assert not np.array_equal(image[:, :48], image[:, 48:])
    frames = tmp_path / "frames"
    assert main(["render", str(photo), "-o", str(tmp_path / "c.mp4"), "--stereo", "sbs", "--ipd", "0.05",
                 "--frames", str(frames), *FAST]) == 0
    first = np.asarray(Image.open(sorted(frames.glob("*.png"))[0]))
    assert np.array_equal(first, image)


def test_stereo_still_layouts_and_vr180(tmp_path, capsys):
    photo = gradient_photo(tmp_path / "p.png", (48, 32))
    assert main(["stereo", str(photo), "-o", str(tmp_path / "a.jpg"), "--stereo", "anaglyph", "-q",
                 "--depth", "cues"]) == 0, capsys.readouterr().err
    assert Image.open(tmp_path / "a.jpg").size == (48, 32)
    assert main(["stereo", str(photo), "-o", str(tmp_path / "v.png"), "--stereo", "tb", "--vr180", "-q",
                 "--depth", "cues"]) == 0, capsys.readouterr().err
    side = vr180_side(intrinsics_from_fov(48, 32, 55.0)[0, 0])
    assert Image.open(tmp_path / "v.png").size == (side, 2 * side)


@pytest.mark.parametrize("args, match", [
    (["-o", "{tmp}/s.mp4"], ".png"),
    (["-o", "{tmp}/s.png", "--duration", "2"], "unrecognized"),
    (["-o", "{tmp}/s.png", "--ipd", "-1"], "--ipd"),
    (["-o", "{tmp}/nowhere/s.png"], "does not exist"),
])
def test_stereo_still_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, match):
    photo = gradient_photo(tmp_path / "p.png", (48, 32))
    before = set(tmp_path.rglob("*"))
    try:
        code = main(["stereo", str(photo), "--depth", "cues", *[a.format(tmp=tmp_path) for a in args]])
    except SystemExit as e:  # argparse's usage errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and match in err, err
    assert set(tmp_path.rglob("*")) == before


def test_stereo_still_refuses_to_overwrite_its_photo(tmp_path, capsys):
    photo = gradient_photo(tmp_path / "p.png", (48, 32))
    before = photo.read_bytes()
    code = main(["stereo", str(photo), "-o", str(photo), "-q", "--depth", "cues"])
    assert code == 2 and "destroy the input" in capsys.readouterr().err
    assert photo.read_bytes() == before
