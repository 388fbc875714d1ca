"""Stereo output (--stereo, --ipd, --convergence): the eyes' cameras and disparities on a
ray-cast scene, the layouts, the Dubois anaglyph, and the CLI, API and batch end to end."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from photo3d_fast import render_clip
from photo3d_fast.batch.cli import run_batch
from photo3d_fast.cli import main
from photo3d_fast.config import MAX_OUTPUT_SIDE, ClipOptions
from photo3d_fast.errors import Photo3DError
from photo3d_fast.render import Renderer
from photo3d_fast.render.stereo import DUBOIS_LEFT, DUBOIS_RIGHT, compose, eye_cameras, stereo_size
from photo3d_fast.scene.ldi import build_ldi
from photo3d_fast.scene.paths import CameraPath
from photo3d_fast.synthetic import Plane, Rect, Scene, Texture, reference_camera

from helpers import gradient_photo

FAST = ["--duration", "0.2", "--fps", "10", "-q"]  # 2 frames


def _decode(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


# -- the eyes' cameras -----------------------------------------------------------------------


def test_eye_cameras_move_along_the_cameras_own_x_and_shift_cx():
    angle = math.radians(30)
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, :3] = torch.tensor([[math.cos(angle), 0, math.sin(angle)], [0, 1, 0],
                                [-math.sin(angle), 0, math.cos(angle)]], dtype=torch.float64)
    c2w[:3, 3] = torch.tensor([1.0, 2.0, 3.0])
    K = torch.tensor([[100.0, 0, 50], [0, 100.0, 40], [0, 0, 1]], dtype=torch.float64)
    poses, Ks = eye_cameras(c2w[None], K[None], ipd=0.2, convergence=4.0)
    assert poses.shape == (2, 4, 4) and Ks.shape == (2, 3, 3)
    x_axis = c2w[:3, 0]
    torch.testing.assert_close(poses[0, :3, 3], c2w[:3, 3] - 0.1 * x_axis)
    torch.testing.assert_close(poses[1, :3, 3], c2w[:3, 3] + 0.1 * x_axis)
    torch.testing.assert_close(poses[:, :3, :3], c2w[None, :3, :3].expand(2, 3, 3))
    shift = 100.0 * 0.1 / 4.0
    assert Ks[0, 0, 2].item() == pytest.approx(50 - shift) and Ks[1, 0, 2].item() == pytest.approx(50 + shift)
    torch.testing.assert_close(Ks[:, 1:], K[None, 1:].expand(2, 2, 3))


SIZE = (160, 120)
NEAR_Z, WALL_Z, IPD = 2.0, 4.0, 0.1


def _scene_views(convergence: float) -> tuple[np.ndarray, np.ndarray, float]:
    """The left and right eyes (H, W, 3) uint8 of a red plate at NEAR_Z in front of a
    blue textured wall at WALL_Z, rendered from the LDI of the ray-cast photo; and f (px)."""
    wall = Texture(base=(0.2, 0.5, 0.9), k1=(4.0, 1.0, 0.0), k2=(1.0, 3.0, 0.0), tint=(0.3, 0.3, 0.1), k3=(5.0, 2.0, 0.0))
    plate = Texture(base=(0.95, 0.15, 0.1), k1=(3.0, 0.0, 0.0), k2=(0.0, 3.0, 0.0), tint=(0.1, 0.1, 0.1), k3=(1.0, 1.0, 0.0))
    scene = Scene([Plane((0.0, 0.0, -1.0), -WALL_Z, wall),
                   Rect((0.0, 0.0, NEAR_Z), (1, 0, 0), (0, -1, 0), (0.35, 0.3), plate)])
    K = reference_camera(SIZE)
    rgb, depth, _ = scene.render(np.eye(4), K, SIZE)
    ldi = build_ldi(rgb, depth, K, layers=2, clean_depth=False, inpaint="classic", device="cpu")
    renderer = Renderer(ldi, "auto")
    path = CameraPath(np.eye(4)[None], np.ones(1))
    (left, right), = list(renderer.render_stereo_path(path, K, SIZE, IPD, convergence))
    return left.numpy(), right.numpy(), float(K[0, 0])


def _plate_centroid(view: np.ndarray) -> float:
    """x (pixels) of the centre of the red plate in the middle rows of ``view``."""
    rows = view[SIZE[1] // 2 - 15 : SIZE[1] // 2 + 15].astype(int)
    red = rows[..., 0] > rows[..., 2] + 60
    xs = np.nonzero(red)[1]
    assert len(xs) > 100
    return float(xs.mean() + 0.5)


def _shift(a: np.ndarray, b: np.ndarray, max_shift: int = 6) -> float:
    """The horizontal shift d (pixels, subpixel) with a[x] ~ b[x - d]: a's content sits d to
    the right of b's."""
    a, b = a.astype(float), b.astype(float)
    w = a.shape[1]
    cost = []
    for d in range(-max_shift, max_shift + 1):
        cost.append(np.abs(a[:, max_shift + d : w - max_shift + d] - b[:, max_shift : w - max_shift]).mean())
    i = int(np.argmin(cost))
    assert 0 < i < len(cost) - 1
    c0, c1, c2 = cost[i - 1 : i + 2]
    return i - max_shift + 0.5 * (c0 - c2) / (c0 - 2 * c1 + c2)


def test_disparity_sign_and_magnitude_near_object_vs_convergence_plane():
    left, right, f = _scene_views(convergence=WALL_Z)
    # The near plate has crossed disparity (in front of the screen): further right in the
    # left eye, by f * ipd * (1/z - 1/convergence) pixels.
    expected = f * IPD * (1 / NEAR_Z - 1 / WALL_Z)
    assert expected > 3
    disparity = _plate_centroid(left) - _plate_centroid(right)
    assert disparity == pytest.approx(expected, abs=0.75)
    # The wall at the convergence depth has none (rows above the plate).
    top = slice(4, 20)
    assert abs(_shift(left[top], right[top])) < 1.0


def test_convergence_on_the_near_object_puts_it_on_the_screen():
    left, right, f = _scene_views(convergence=NEAR_Z)
    assert abs(_plate_centroid(left) - _plate_centroid(right)) < 1.0
    # The wall behind it now has uncrossed disparity: further left in the left eye.
    top = slice(4, 20)
    assert _shift(left[top], right[top]) == pytest.approx(f * IPD * (1 / WALL_Z - 1 / NEAR_Z), abs=1.0)


# -- layouts ---------------------------------------------------------------------------------


def _eyes(h: int, w: int, batch: tuple[int, ...] = ()) -> tuple[torch.Tensor, torch.Tensor]:
    left = torch.zeros(*batch, h, w, 3, dtype=torch.uint8)
    right = torch.zeros(*batch, h, w, 3, dtype=torch.uint8)
    left[..., 0] = 200  # red left eye
    right[..., 2] = 100  # blue right eye
    return left, right


@pytest.mark.parametrize("w", [40, 41])
def test_layouts_shape_and_where_each_eye_lands(w):
    h = 30
    left, right = _eyes(h, w, (2,))
    sbs = compose(left, right, "sbs")
    assert sbs.shape == (2, h, 2 * w, 3) and stereo_size((w, h), "sbs") == (2 * w, h)
    assert (sbs[:, :, :w] == left).all() and (sbs[:, :, w:] == right).all()
    tb = compose(left, right, "tb")
    assert tb.shape == (2, 2 * h, w, 3) and stereo_size((w, h), "tb") == (w, 2 * h)
    assert (tb[:, :h] == left).all() and (tb[:, h:] == right).all()
    half = compose(left, right, "half-sbs")
    assert half.shape == (2, h, w, 3) and stereo_size((w, h), "half-sbs") == (w, h)
    first = (w + 1) // 2
    assert (half[:, :, :first, 0] == 200).all() and (half[:, :, :first, 2] == 0).all()
    assert (half[:, :, first:, 0] == 0).all() and (half[:, :, first:, 2] == 100).all()
    half_tb = compose(left[0], right[0], "half-tb")
    assert half_tb.shape == (h, w, 3)
    assert (half_tb[: h // 2, :, 0] == 200).all() and (half_tb[h // 2 :, :, 2] == 100).all()
    assert compose(left, right, "anaglyph").shape == left.shape


def test_half_sbs_squeezes_each_eye_by_averaging_column_pairs():
    left = torch.arange(8, dtype=torch.uint8).mul(20).repeat(4, 1)[..., None].expand(4, 8, 3).contiguous()
    out = compose(left, left, "half-sbs")
    assert out[0, :4, 0].tolist() == [10, 50, 90, 130]  # (0+20)/2, (40+60)/2, ...
    assert out[0, 4:, 0].tolist() == [10, 50, 90, 130]


def test_anaglyph_of_grey_is_grey_and_of_the_eyes_is_red_cyan():
    assert np.allclose(np.add(DUBOIS_LEFT, DUBOIS_RIGHT).sum(1), 1.0, atol=0.002)
    greys = torch.arange(0, 256, dtype=torch.uint8)[:, None, None].expand(256, 1, 3).contiguous()
    out = compose(greys, greys, "anaglyph").int()
    assert (out - greys.int()).abs().max().item() <= 1
    # A white left eye and a black right eye light mostly red; the reverse mostly cyan.
    white, black = torch.full((1, 1, 3), 255, dtype=torch.uint8), torch.zeros((1, 1, 3), dtype=torch.uint8)
    red = compose(white, black, "anaglyph")[0, 0].tolist()
    cyan = compose(black, white, "anaglyph")[0, 0].tolist()
    assert red[0] > 240 and red[1] == 0 and red[2] == 0
    assert cyan[0] == 0 and cyan[1] > 240 and cyan[2] == 255


# -- options, CLI, API, batch ------------------------------------------------------------------


@pytest.mark.parametrize("bad, match", [
    ({"ipd": 0}, "--ipd"), ({"ipd": "nan"}, "ipd"), ({"ipd": -0.1}, "--ipd"),
    ({"convergence": 0}, "--convergence"), ({"convergence": "inf"}, "convergence"),
    ({"stereo": "sideways"}, "--stereo"),
    ({"ipd": 0.05}, "only with --stereo"), ({"convergence": 2.0}, "only with --stereo"),
    ({"stereo": "sbs", "size": f"{MAX_OUTPUT_SIDE // 2 + 8}x64"}, "over"),
    ({"stereo": "tb", "size": f"64x{MAX_OUTPUT_SIDE // 2 + 8}"}, "over"),
])
def test_options_are_checked(bad, match):
    with pytest.raises(Photo3DError, match=match):
        ClipOptions.from_flat(bad)


def test_cli_writes_an_sbs_clip_of_doubled_width(tmp_path, capsys):
    photo = gradient_photo(tmp_path / "p.png", (48, 32))
    out = tmp_path / "clip.mp4"
    code = main(["render", str(photo), "-o", str(out), "--stereo", "sbs", "--ipd", "0.05", *FAST])
    assert code == 0, capsys.readouterr().err
    video = _decode(out)
    assert video.shape == (2, 32, 96, 3)
    # Both halves are views of the photo (not black, not one eye twice exactly).
    assert video[:, :, :48].mean() > 20 and video[:, :, 48:].mean() > 20
    assert not np.array_equal(video[:, :, :48], video[:, :, 48:])


@pytest.mark.parametrize("args, match", [
    (["--stereo", "sbs", "--ipd", "0"], "--ipd"),
    (["--stereo", "sbs", "--ipd", "nan"], "ipd"),
    (["--stereo", "sbs", "--convergence", "-1"], "--convergence"),
    (["--stereo", "sbs", "--size", f"{MAX_OUTPUT_SIDE // 2 + 8}x64"], "over"),
    (["--stereo", "sbs"], "over"),  # the photo's own width, doubled
])
def test_cli_refuses_bad_stereo_options_with_nothing_written(tmp_path, capsys, args, match):
    photo = gradient_photo(tmp_path / "p.png", (MAX_OUTPUT_SIDE // 2 + 8, 16) if args == ["--stereo", "sbs"] else (48, 32))
    before = set(tmp_path.rglob("*"))
    code = main(["render", str(photo), "-o", str(tmp_path / "c.mp4"), *args, *FAST])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "error" in lines[0] and match in lines[0], err
    assert set(tmp_path.rglob("*")) == before


def test_api_half_tb_and_anaglyph_keep_the_size(tmp_path):
    photo = gradient_photo(tmp_path / "p.png", (48, 32))
    for layout in ("half-tb", "anaglyph"):
        out = render_clip(photo, tmp_path / f"{layout}.mp4", quiet=True, stereo=layout, duration=0.1, fps=10)
        assert _decode(out).shape == (1, 32, 48, 3)


def test_batch_manifest_row_with_stereo(tmp_path):
    root = tmp_path / "m"
    gradient_photo(root / "a.png", (48, 32), seed=1)
    manifest = root / "clips.csv"
    manifest.write_text("image,duration,fps,stereo,ipd,convergence\n"
                        "a.png,0.1,10,tb,0.04,3\n"
                        "a.png,0.1,10,,,\n")
    report = run_batch(manifest, tmp_path / "out", quiet=True)
    assert report["exit_status"] == 0, report
    shapes = sorted(_decode(tmp_path / "out" / c["clip"]).shape for c in report["clips"])
    assert shapes == [(1, 32, 48, 3), (1, 64, 48, 3)]


def test_overscan_keeps_the_photos_border_out_of_both_eyes():
    from photo3d_fast.scene.paths import overscan_zoom

    size = (64, 48)
    K = reference_camera(size)
    depth = np.full((48, 64), 5.0, np.float32)
    still = CameraPath(np.eye(4)[None], np.ones(1))
    assert overscan_zoom(still, K, depth, K, size) == 1.0
    ipd, convergence = 0.2, 2.0
    # Each eye's view of the photo at depth 5 moves inward by f (ipd/2) (1/convergence - 1/5)
    # pixels; the zoom about the centre must carry it back to the frame's edge.
    inward = K[0, 0] * ipd / 2 * (1 / convergence - 1 / 5)
    want = (size[0] / 2) / (size[0] / 2 - inward)
    assert overscan_zoom(still, K, depth, K, size, (ipd, convergence)) == pytest.approx(want, rel=1e-6)
