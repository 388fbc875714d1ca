"""Photo and depth-map loading: EXIF orientation and focal length, conversions, repairs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from photo3d_fast import Photo3DError, load_depth_map, load_image
from photo3d_fast.config import SceneConfig
from photo3d_fast.scene.camera import disparity_to_depth, normalize_disparity, scene_intrinsics


def _exif_photo(path, size=(60, 40), orientation=None, f35=None):
    rgb = np.zeros((size[1], size[0], 3), np.uint8)
    rgb[:, : size[0] // 2] = (255, 0, 0)  # red left half, so orientation is visible
    im = Image.fromarray(rgb)
    exif = im.getexif()
    if orientation:
        exif[0x0112] = orientation
    if f35:
        exif.get_ifd(0x8769)[0xA405] = f35
    im.save(path, exif=exif, quality=95)
    return path


def test_exif_orientation_is_applied(tmp_path):
    photo = load_image(_exif_photo(tmp_path / "r.jpg", orientation=6))  # stored rotated 90 deg
    assert photo.rgb.shape == (60, 40, 3)
    assert photo.rgb[2, 20, 0] > 200 and photo.rgb[-3, 20, 0] < 60  # red half is now on top


def test_exif_focal_length_sets_the_field_of_view(tmp_path):
    photo = load_image(_exif_photo(tmp_path / "f.jpg", f35=26))
    # 26 mm equivalent on a 3:2 frame: the long side spans 36 mm
    assert photo.exif_fov == pytest.approx(math.degrees(2 * math.atan(36 / 52)), abs=0.05)
    K, note = scene_intrinsics(60, 40, SceneConfig(), photo.exif_fov)
    assert "EXIF" in note and K[0, 0] == pytest.approx(30 / math.tan(math.radians(photo.exif_fov) / 2))
    K, note = scene_intrinsics(60, 40, SceneConfig(fov=40.0), photo.exif_fov)
    assert "--fov" in note  # the user's --fov wins
    assert load_image(_exif_photo(tmp_path / "n.jpg")).exif_fov is None


def test_sixteen_bit_grayscale_keeps_its_range(tmp_path):
    a = (np.linspace(0, 65535, 32 * 48).reshape(32, 48)).astype(np.uint16)
    Image.fromarray(a).save(tmp_path / "g16.png")
    rgb = load_image(tmp_path / "g16.png").rgb
    assert rgb.dtype == np.uint8 and rgb.shape == (32, 48, 3)
    assert rgb.min() == 0 and rgb.max() == 255 and (rgb[..., 0] == rgb[..., 2]).all()


def test_depth_map_png16_and_resize(tmp_path, capsys):
    d = (np.linspace(0, 65535, 20 * 30).reshape(20, 30)).astype(np.uint16)
    Image.fromarray(d).save(tmp_path / "d.png")
    out = load_depth_map(tmp_path / "d.png", (40, 60))
    assert out.shape == (40, 60) and out.dtype == np.float32
    assert "resized" in capsys.readouterr().err
    assert np.all(np.diff(out.mean(1)) > 0)  # the ramp survives


def test_depth_map_fills_invalid_from_neighbours(tmp_path, capsys):
    d = np.full((16, 16), 3.0, np.float32)
    d[4:6, 4:6] = np.nan
    d[10, 10] = -1.0
    np.save(tmp_path / "d.npy", d)
    out = load_depth_map(tmp_path / "d.npy", (16, 16), kind="depth")
    np.testing.assert_allclose(out, 3.0, rtol=1e-6)
    assert "5 invalid pixels" in capsys.readouterr().err


def test_depth_map_unsupported_and_bad_kind(tmp_path):
    (tmp_path / "d.exr").write_bytes(b"\x76\x2f\x31\x01")
    with pytest.raises(Photo3DError, match="16-bit PNG or a .npy"):
        load_depth_map(tmp_path / "d.exr", (4, 4))
    with pytest.raises(Photo3DError, match="disparity' or 'depth"):
        load_depth_map(tmp_path / "d.exr", (4, 4), kind="inverse")


def test_disparity_mapping_hits_near_and_far():
    disp = np.array([[0.0, 0.5, 1.0]], np.float32)
    z = disparity_to_depth(disp, near=1.0, far=10.0)
    np.testing.assert_allclose(z[0, [0, 2]], [10.0, 1.0], rtol=1e-6)
    assert 1.0 < z[0, 1] < 10.0 and 1 / z[0, 1] == pytest.approx(0.5 * (1 + 0.1), rel=1e-6)
    rng = np.random.default_rng(0)
    raw = rng.normal(5, 2, (50, 50)).astype(np.float32)
    n = normalize_disparity(raw * 3 + 7)  # affine-invariant
    np.testing.assert_allclose(n, normalize_disparity(raw), atol=1e-5)
    assert (normalize_disparity(np.full((4, 4), 2.0)) == 0.5).all()


def test_large_photo_is_rendered_from_a_downscaled_working_image(tmp_path):
    from photo3d_fast.pipeline import _working_image
    from photo3d_fast.scene.camera import intrinsics_from_fov

    rgb = np.zeros((400, 600, 3), np.uint8)
    K = intrinsics_from_fov(600, 400, 55)
    small, K2 = _working_image(rgb, K, (150, 100), max_zoom=1.0)
    assert small.shape == (100, 150, 3)
    np.testing.assert_allclose(K2[0, 0], K[0, 0] / 4)
    same, K3 = _working_image(rgb, K, (1200, 800), max_zoom=1.0)
    assert same is rgb and K3 is K
