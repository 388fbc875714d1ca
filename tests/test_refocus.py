"""``photo3d refocus`` and ``effects.refocus`` (``refocus``, ``refocus_array``): the lens on a
still, the focus choices, the command end to end and its bad inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import photo3d_fast.effects.refocus as rf
from photo3d_fast.cli import main
from photo3d_fast.errors import Photo3DError
from photo3d_fast.scene.camera import intrinsics_from_fov

from helpers import gradient_photo

W, H = 64, 48


def _two_planes():
    """A noisy near plate (z = 1) on the left half, a noisy far wall (z = 8) on the right."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (H, W, 3)).astype(np.uint8)
    z = np.full((H, W), 8.0, np.float32)
    z[:, : W // 2] = 1.0
    return rgb, z, intrinsics_from_fov(W, H, 55.0)


def test_refocus_array_keeps_the_focus_plane_and_blurs_the_rest():
    rgb, z, K = _two_planes()
    out = rf.refocus_array(rgb, z, K, focus_depth=1.0, f_number=1.4, focal_length_mm=50.0, kernels="torch")
    assert out.shape == rgb.shape and out.dtype == np.uint8
    near, far = (slice(None), slice(0, W // 2 - 1)), (slice(4, -4), slice(W // 2 + 8, -8))
    assert np.abs(out[near].astype(int) - rgb[near]).max() <= 1  # sharp, and no halo from the wall
    assert out[far].std() < 0.5 * rgb[far].std()  # the wall is blurred
    back = rf.refocus_array(rgb, z, K, focus_depth=8.0, f_number=1.4, focal_length_mm=50.0, kernels="torch")
    assert np.abs(back[far].astype(int) - rgb[far]).max() <= 1
    assert back[near][4:-4, 4:-8].std() < 0.5 * rgb[near][4:-4, 4:-8].std()


def test_smaller_f_number_blurs_more():
    rgb, z, K = _two_planes()
    far = (slice(4, -4), slice(W // 2 + 8, -8))
    stds = [rf.refocus_array(rgb, z, K, 1.0, n, 200.0, kernels="torch")[far].std() for n in (8.0, 2.8, 1.4)]
    assert stds[0] > stds[1] > stds[2]


def test_large_image_is_blurred_at_the_working_size_and_keeps_its_focus_plane():
    rng = np.random.default_rng(1)
    w, h = 1300, 40
    rgb = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    z = np.full((h, w), 8.0, np.float32)
    z[:, : w // 2] = 1.0
    K = intrinsics_from_fov(w, h, 55.0)
    out = rf.refocus_array(rgb, z, K, focus_depth=1.0, f_number=2.0, kernels="torch")
    assert w > rf.WORK_SIDE and out.shape == rgb.shape
    near, far = (slice(None), slice(0, w // 2 - 2)), (slice(8, -8), slice(w // 2 + 30, -30))
    assert np.abs(out[near].astype(int) - rgb[near]).max() <= 1  # the photo's own pixels
    assert out[far].std() < 0.3 * rgb[far].std()


def test_focus_choices():
    z = np.full((H, W), 5.0, np.float32)
    z[H // 2 - 4 : H // 2 + 4, W // 2 - 4 : W // 2 + 4] = 2.0
    z[0:10, 0:10] = 9.0
    assert rf.focus_depth_of(rf.parse_focus("auto"), z) == 2.0
    assert rf.focus_depth_of(rf.parse_focus("3,4"), z) == 9.0
    assert rf.focus_depth_of(rf.parse_focus("4.5"), z) == 4.5
    with pytest.raises(Photo3DError, match="outside the 64x48 image"):
        rf.focus_depth_of(rf.parse_focus("64,3"), z)
    with pytest.raises(Photo3DError, match="auto, X,Y"):
        rf.parse_focus("middle")


def test_bad_arrays():
    rgb, z, K = _two_planes()
    with pytest.raises(Photo3DError, match="uint8"):
        rf.refocus_array(rgb.astype(np.float32), z, K, 1.0, 2.0)
    with pytest.raises(Photo3DError, match="depth must be"):
        rf.refocus_array(rgb, z[:-1], K, 1.0, 2.0)
    with pytest.raises(Photo3DError, match="--f-number"):
        rf.refocus_array(rgb, z, K, 1.0, 0.0)


def test_refocus_command_end_to_end(tmp_path, capsys):
    photo = gradient_photo(tmp_path / "p.png", (W, H))
    out = tmp_path / "r.png"
    code = main(["refocus", str(photo), "-o", str(out), "--focus", "10,20", "--f-number", "1.4", "--depth", "cues",
                 "--offline", "--bokeh", "hexagon", "--focal-length", "300", "-q"])
    assert code == 0, capsys.readouterr().err
    got = np.asarray(Image.open(out))
    assert got.shape == (H, W, 3)
    assert np.abs(got.astype(int) - np.asarray(Image.open(photo))).mean() > 0.5  # something was blurred
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert rf.refocus(photo, tmp_path / "r.jpg", f_number=2.0, depth="cues", offline=True, quiet=True).exists()


@pytest.mark.parametrize("args, match", [
    (["--focus", "64,3"], "outside the 64x48 image"), (["--focus", "5,-1"], "outside"),
    (["--f-number", "0"], "--f-number"), (["--f-number", "-1"], "--f-number"),
    (["--focus", "near"], "--focus"), (["--focal-length", "0"], "--focal-length"),
])
def test_refocus_bad_inputs_exit_2(tmp_path, capsys, args, match):
    photo = gradient_photo(tmp_path / "p.png", (W, H))
    before = set(tmp_path.rglob("*"))
    code = main(["refocus", str(photo), "-o", str(tmp_path / "r.png"), "--depth", "cues", "--offline", *args])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("photo3d: error:") and match in lines[0], err
    assert set(tmp_path.rglob("*")) == before


def test_refocus_bad_output(tmp_path, capsys):
    photo = gradient_photo(tmp_path / "p.png", (W, H))
    assert main(["refocus", str(photo), "-o", str(tmp_path / "r.gif"), "--depth", "cues"]) == 2
    assert main(["refocus", str(photo), "-o", str(tmp_path / "missing" / "r.png"), "--depth", "cues"]) == 2
    assert main(["refocus", str(photo), "-o", str(photo), "--depth", "cues"]) == 2
    capsys.readouterr()
