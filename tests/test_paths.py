"""Camera paths: conventions, loops, focus invariants and keyframe files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from photo3d_fast import Photo3DError
from photo3d_fast.config import PathConfig
from photo3d_fast.scene.paths import MAX_OVERSCAN, PRESETS, euler_xyz, keyframe_path, look_at, make_path, overscan_zoom, preset_path
from photo3d_fast.scene.camera import intrinsics_from_fov, zoom_intrinsics


@pytest.mark.parametrize("name", PRESETS)
def test_presets_start_at_identity_and_are_rigid(name):
    p = preset_path(name, 24, amount=1.0, near=1.0, focus=3.0)
    assert p.poses.shape == (24, 4, 4) and p.zoom.shape == (24,)
    np.testing.assert_allclose(p.poses[0], np.eye(4), atol=1e-12)
    R = p.poses[:, :3, :3]
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-9)
    np.testing.assert_allclose(p.poses[:, 3], np.broadcast_to([0, 0, 0, 1], (24, 4)))


@pytest.mark.parametrize("name", ["swing", "circle", "dolly", "vertigo"])
def test_looping_presets_close_the_loop(name):
    """The frame after the last one would be frame 0 again: equal steps across the seam."""
    n = 30
    p = preset_path(name, n, 1.0, 1.0, 3.0)
    steps = np.linalg.norm(np.diff(np.concatenate([p.poses[:, :3, 3], p.poses[:1, :3, 3]]), axis=0), axis=1)
    assert steps.max() < 3 * np.median(steps) + 1e-12


@pytest.mark.parametrize("name", ["swing", "circle"])
def test_look_at_presets_keep_the_focus_point_centered(name):
    focus = 2.5
    K = intrinsics_from_fov(64, 48, 55)
    p = preset_path(name, 16, 2.0, 1.0, focus)
    for pose in p.poses:
        w2c = np.linalg.inv(pose)
        cam = w2c[:3, :3] @ np.array([0, 0, focus]) + w2c[:3, 3]
        uv = (K @ cam)[:2] / cam[2]
        np.testing.assert_allclose(uv, K[:2, 2], atol=1e-6)


def test_vertigo_keeps_focus_plane_size():
    """Dolly-zoom: a point on the focus plane projects to the same pixel in every frame."""
    focus, size = 3.0, (64, 48)
    K = intrinsics_from_fov(*size, 55)
    p = preset_path("vertigo", 20, 2.0, 1.0, focus)
    assert p.zoom.min() < 0.95  # it does zoom
    X = np.array([0.4, -0.3, focus])
    ref = (K @ X)[:2] / focus
    for pose, zoom in zip(p.poses, p.zoom):
        Kz = zoom_intrinsics(K, zoom, size)
        cam = np.linalg.inv(pose)[:3] @ np.append(X, 1)
        np.testing.assert_allclose((Kz @ cam)[:2] / cam[2], ref, atol=1e-6)


def test_amount_scales_motion_and_zero_is_still():
    a = preset_path("swing", 12, 1.0, 1.0, 3.0).max_translation()
    b = preset_path("swing", 12, 2.0, 1.0, 3.0).max_translation()
    assert b == pytest.approx(2 * a)
    still = preset_path("circle", 12, 0.0, 1.0, 3.0)
    np.testing.assert_allclose(still.poses, np.broadcast_to(np.eye(4), still.poses.shape), atol=1e-12)


def test_dolly_never_reaches_the_nearest_content():
    p = preset_path("dolly", 40, 20.0, 1.0, 3.0)
    assert p.poses[:, 2, 3].max() < 1.0


def test_look_at_convention():
    R = look_at(np.zeros(3), np.array([0.0, 0.0, 5.0]))
    np.testing.assert_allclose(R, np.eye(3), atol=1e-12)
    R = look_at(np.zeros(3), np.array([5.0, 0.0, 5.0]))  # looking right: camera x turns toward -z
    assert R[0, 2] > 0.7 and R[2, 0] < -0.7 and R[1, 1] == pytest.approx(1.0)


def test_keyframes_pass_through_keys(tmp_path):
    f = tmp_path / "k.json"
    f.write_text(json.dumps({"keyframes": [
        {"t": 0.0, "position": [0, 0, 0]},
        {"t": 0.5, "position": [0.2, 0, 0], "rotation": [0, 10, 0], "zoom": 1.5},
        {"t": 1.0, "position": [0.2, 0.1, 0.3]},
    ]}))
    p = keyframe_path(f, 11, amount=2.0)
    np.testing.assert_allclose(p.poses[0], np.eye(4), atol=1e-12)
    np.testing.assert_allclose(p.poses[5, :3, 3], [0.4, 0, 0], atol=1e-9)  # positions scale with amount
    np.testing.assert_allclose(p.poses[5, :3, :3], euler_xyz([0, 10, 0]), atol=1e-9)
    np.testing.assert_allclose(p.poses[10, :3, 3], [0.4, 0.2, 0.6], atol=1e-9)
    assert p.zoom[5] == pytest.approx(1.5) and p.zoom[0] == pytest.approx(1.0)


@pytest.mark.parametrize("body,match", [
    ("not json", "not valid JSON"),
    ("{}", "non-empty list"),
    ('{"keyframes": [{"t": 0, "position": [1, 2]}]}', "must be an object with numbers"),
    ('{"keyframes": [{"t": 0, "zoom": 0}]}', "zoom"),
    ('{"keyframes": [{"t": 0, "look_at": [0,0,1]}, {"t": 1, "rotation": [0,0,0]}]}', "mix"),
])
def test_bad_keyframe_files(tmp_path, body, match):
    f = tmp_path / "k.json"
    f.write_text(body)
    with pytest.raises(Photo3DError, match=match):
        keyframe_path(f, 5, 1.0)


def test_make_path_dispatch_and_frame_count(tmp_path):
    cfg = PathConfig(preset="ken-burns", duration=2.0, fps=12.0)
    assert len(make_path(cfg, near=1.0, focus=2.0)) == 24
    with pytest.raises(Photo3DError, match="does not exist"):
        make_path(PathConfig(preset=str(tmp_path / "missing.json")), 1.0, 2.0)
    with pytest.raises(Photo3DError, match="unknown path preset"):
        make_path(PathConfig(preset="spin"), 1.0, 2.0)


@pytest.mark.parametrize("kwargs", [{"duration": 0}, {"fps": -1}, {"amount": -1}, {"duration": 1e6}])
def test_path_config_validation(kwargs):
    with pytest.raises(Photo3DError):
        PathConfig(**kwargs)


@pytest.mark.parametrize("name", PRESETS)
def test_overscan_keeps_the_photo_border_out_of_every_frame(name):
    """After the overscan zoom, the photo's outer edge projects outside the output frame
    in every frame (so no border hole can appear), and no more zoom than needed is used."""
    rng = np.random.default_rng(len(name))
    size = (80, 60)
    K = intrinsics_from_fov(*size, 55)
    depth = rng.uniform(1.0, 8.0, (60, 80))
    path = preset_path(name, 20, 1.5, 1.0, 3.0)
    s = overscan_zoom(path, K, depth, K, size)
    assert 1.0 <= s <= MAX_OVERSCAN
    Kinv = np.linalg.inv(K)
    worst = -np.inf
    for pose, zoom in zip(path.poses, path.zoom):
        Kf = zoom_intrinsics(K, zoom * s, size)
        w2c = np.linalg.inv(pose)
        for uv, d, axis, limit in (
            (np.stack([np.zeros(60), np.arange(60) + 0.5], 1), depth[:, 0], 0, 0.0),
            (np.stack([np.full(60, 80.0), np.arange(60) + 0.5], 1), depth[:, -1], 0, 80.0),
            (np.stack([np.arange(80) + 0.5, np.zeros(80)], 1), depth[0], 1, 0.0),
            (np.stack([np.arange(80) + 0.5, np.full(80, 60.0)], 1), depth[-1], 1, 60.0),
        ):
            X = np.concatenate([uv, np.ones((len(uv), 1))], 1) @ Kinv.T * d[:, None]
            p = (X @ w2c[:3, :3].T + w2c[:3, 3]) @ Kf.T
            c = p[:, axis] / p[:, 2]
            inward = c.max() - limit if limit == 0.0 else limit - c.min()
            worst = max(worst, inward)
    if s < MAX_OVERSCAN:
        assert worst <= 1e-6  # the edge never enters the frame
    if s > 1.0:
        assert worst > -0.5  # and the zoom is tight: some edge sits right at the border
