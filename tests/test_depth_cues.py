"""The embedded cue depth estimator and its guided filter.

Random inputs come from fixed generators (numpy default_rng / torch.Generator), so a failure
reproduces. Nothing here times anything; the speed claim lives in the module docstring.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from photo3d_fast.depth.cues import cue_maps, estimate_disparity_cues
from photo3d_fast.depth.guided import (
    box_filter,
    guided_coefficients,
    guided_filter,
    guided_upsample,
)
from photo3d_fast.errors import Photo3DError


def _rand_image(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _check_map(d: np.ndarray, h: int, w: int) -> None:
    assert d.shape == (h, w)
    assert d.dtype == np.float32
    assert np.isfinite(d).all()
    assert d.min() >= 0.0 and d.max() <= 1.0


# ----------------------------------------------------------------------------- estimator


@pytest.mark.parametrize(
    "h,w", [(1, 1), (1, 7), (7, 1), (3, 2), (2, 3), (17, 31), (101, 203), (600, 1001)]
)
def test_shape_dtype_range(h: int, w: int) -> None:
    d = estimate_disparity_cues(_rand_image(h, w, seed=h * 1000 + w))
    _check_map(d, h, w)
    if h * w > 1:
        # Normalised by percentiles: a real range, not a constant map.
        assert d.max() - d.min() > 0.5


def test_deterministic() -> None:
    # 700x900 goes through the reduced working resolution and the strip upsampler.
    for img in (_rand_image(45, 67, seed=1), _rand_image(700, 900, seed=2)):
        a = estimate_disparity_cues(img)
        b = estimate_disparity_cues(img.copy())
        assert np.array_equal(a, b)


@pytest.mark.parametrize("colour", [(0, 0, 0), (255, 255, 255), (10, 200, 30)])
def test_constant_image_gives_vertical_prior(colour: tuple[int, int, int]) -> None:
    img = np.empty((48, 64, 3), np.uint8)
    img[:] = colour
    d = estimate_disparity_cues(img)
    _check_map(d, 48, 64)
    rows = d.mean(axis=1)
    # No cue but position: lower in the frame is nearer, monotonically by rows...
    assert np.all(np.diff(rows) >= -1e-6)
    assert rows[-1] - rows[0] > 0.5
    # ...and the centre prior is symmetric, so the map is too.
    np.testing.assert_allclose(d, d[:, ::-1], atol=1e-4)


def test_noise_has_no_nan() -> None:
    for seed, (h, w) in enumerate([(64, 64), (5, 300), (513, 9)]):
        _check_map(estimate_disparity_cues(_rand_image(h, w, seed)), h, w)


def test_accepts_grey_and_rgba_rejects_other_shapes() -> None:
    rgb = _rand_image(20, 30, seed=3)
    grey = rgb[..., 0]
    _check_map(estimate_disparity_cues(grey), 20, 30)
    rgba = np.concatenate([rgb, np.full((20, 30, 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(estimate_disparity_cues(rgba), estimate_disparity_cues(rgb))
    with pytest.raises(Photo3DError, match=r"\(20, 30, 5\)"):
        estimate_disparity_cues(np.zeros((20, 30, 5), np.uint8))
    with pytest.raises(Photo3DError):
        estimate_disparity_cues(np.zeros((0, 30, 3), np.uint8))


def _synthetic_scene(h: int = 240, w: int = 320, seed: int = 0):
    """Hazy bluish sky over a blurred (out-of-focus) ground, a sharp textured square on it."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    hz = int(0.35 * h)
    t = np.linspace(0.0, 1.0, hz)[:, None, None]
    img[:hz] = np.array([170.0, 190.0, 225.0]) * (1.0 - 0.1 * t)
    g = torch.from_numpy(rng.random((h - hz, w)).astype(np.float32))[None, None]
    for _ in range(3):
        g = F.avg_pool2d(g, 9, stride=1, padding=4, count_include_pad=False)
    g = g[0, 0].numpy()
    g = (g - g.mean()) / (g.std() + 1e-6)
    img[hz:] = np.array([110.0, 100.0, 70.0]) + 20.0 * g[..., None]
    y0, y1, x0, x1 = int(0.5 * h), int(0.85 * h), int(0.35 * w), int(0.65 * w)
    checker = rng.random((y1 - y0, x1 - x0)) > 0.5
    img[y0:y1, x0:x1] = np.where(checker[..., None], [200.0, 60.0, 50.0], [40.0, 30.0, 20.0])
    sky = np.zeros((h, w), bool)
    sky[:hz] = True
    square = np.zeros((h, w), bool)
    square[y0:y1, x0:x1] = True
    return np.clip(img, 0, 255).astype(np.uint8), sky, square


@pytest.mark.parametrize("scale", [1, 3])  # 3: 720x960, through the working resolution
def test_synthetic_scene_order(scale: int) -> None:
    img, sky, square = _synthetic_scene(240 * scale, 320 * scale)
    d = estimate_disparity_cues(img)
    ground = ~sky
    background = ~square
    ground_only = ground & ~square
    assert d[square].mean() > d[background].mean() + 0.3
    assert d[square].mean() > d[ground_only].mean() + 0.2
    assert d[sky].mean() < d[ground].mean() - 0.2
    assert d[sky].mean() < d[ground_only].mean()


def test_each_cue_on_synthetic_scene() -> None:
    # Each cue on its own says what its docstring claims, so a cue broken by a later edit
    # fails here even if the others still carry the combined map.
    img, sky, square = _synthetic_scene()
    m = cue_maps(img)
    ground_only = ~sky & ~square
    assert m["haze"][sky].mean() > m["haze"][~sky].mean() + 0.3
    assert m["sky"][sky].mean() > m["sky"][~sky].mean() + 0.3
    assert m["ground"][sky].max() < 0.05  # the horizon was found at the sky's lower edge
    assert m["ground"][-1].min() > 0.95
    assert m["focus"][square].mean() > m["focus"][ground_only].mean() + 0.3
    assert m["figure"][square].mean() > m["figure"][~square].mean() + 0.3
    assert m["saturation"][square].mean() > m["saturation"][sky].mean()
    for k, v in m.items():
        assert np.isfinite(v).all(), k


# ----------------------------------------------------------------------------- guided filter


def _box_reference(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over the clamped window, by avg_pool2d excluding the padding from the count."""
    y = x.reshape(-1, 1, *x.shape[-2:])
    y = F.avg_pool2d(y, 2 * r + 1, stride=1, padding=r, count_include_pad=False)
    return y.reshape(x.shape)


@pytest.mark.parametrize("h,w,r", [(1, 1, 3), (3, 2, 4), (9, 14, 2), (40, 33, 5), (64, 7, 10)])
def test_box_filter_matches_avg_pool(h: int, w: int, r: int) -> None:
    gen = torch.Generator().manual_seed(h * 100 + w)
    x = torch.rand(2, h, w, generator=gen, dtype=torch.float64)
    # Windows up to twice the image: both clamp to the pixels that exist.
    torch.testing.assert_close(box_filter(x, r), _box_reference(x, r), rtol=0, atol=1e-12)


@pytest.mark.parametrize("channels", [1, 3])
def test_constant_guide_is_twice_box_mean(channels: int) -> None:
    # q = mean(a) * I + mean(b); a constant guide has zero variance, so a = 0, b = box(p) and
    # q = box(box(p)). Away from the border (2r) both boxes see full windows, so the reference
    # is two valid-mode avg_pool2d passes with no padding at all.
    gen = torch.Generator().manual_seed(7)
    h, w, r = 37, 52, 4
    src = torch.rand(h, w, generator=gen)
    guide = torch.full((channels, h, w), 0.37)
    q = guided_filter(guide if channels == 3 else guide[0], src, r, eps=1e-3)
    ref = F.avg_pool2d(F.avg_pool2d(src[None, None], 2 * r + 1, stride=1), 2 * r + 1, stride=1)
    ref = ref[0, 0]
    inner = q[2 * r : h - 2 * r, 2 * r : w - 2 * r]
    assert inner.shape == ref.shape
    torch.testing.assert_close(inner, ref, rtol=0, atol=1e-5)  # float32 output
    assert q.dtype == src.dtype and q.shape == src.shape


@pytest.mark.parametrize("channels,subsample", [(1, 1), (3, 1), (3, 2)])
def test_step_edge_is_preserved_better_than_box(channels: int, subsample: int) -> None:
    gen = torch.Generator().manual_seed(11)
    h, w, c, r = 40, 64, 31, 5
    step = (torch.arange(w) >= c).float().expand(h, w)
    guide = 0.2 + 0.6 * step + 0.01 * torch.randn(h, w, generator=gen)
    if channels == 3:
        # Equal brightness on both sides: only the colour tells the two regions apart.
        guide = torch.stack([guide, 1.0 - guide, torch.full((h, w), 0.5)])
    src = step + 0.05 * torch.randn(h, w, generator=gen)
    q = guided_filter(guide, src, r, eps=1e-2, subsample=subsample)
    box = box_filter(src, r)
    jump_gf = (q[:, c] - q[:, c - 1]).mean()
    jump_box = (box[:, c] - box[:, c - 1]).mean()
    assert jump_gf > 0.7
    assert jump_box < 0.2
    band = slice(c - r, c + r)
    err_gf = (q[:, band] - step[:, band]).abs().mean()
    err_box = (box[:, band] - step[:, band]).abs().mean()
    assert err_gf < 0.4 * err_box


@pytest.mark.parametrize("h,w", [(1, 1), (1, 5), (2, 3), (6, 1)])
def test_guided_filter_smaller_than_window(h: int, w: int) -> None:
    gen = torch.Generator().manual_seed(h + 10 * w)
    guide = torch.rand(3, h, w, generator=gen)
    src = torch.rand(h, w, generator=gen)
    q = guided_filter(guide, src, radius=25, eps=1e-3)
    assert q.shape == (h, w) and torch.isfinite(q).all()
    if h * w == 1:
        # One pixel: the only window is that pixel, whose best affine fit is itself.
        torch.testing.assert_close(q, src, rtol=0, atol=1e-6)


def test_multichannel_src_equals_per_channel() -> None:
    gen = torch.Generator().manual_seed(5)
    guide = torch.rand(3, 23, 29, generator=gen)
    src = torch.rand(2, 23, 29, generator=gen)
    q = guided_filter(guide, src, 3, 1e-3)
    for k in range(2):
        torch.testing.assert_close(q[k], guided_filter(guide, src[k], 3, 1e-3), rtol=0, atol=1e-6)


def test_colour_solve_matches_linalg() -> None:
    # The closed-form 3x3 solve against torch.linalg.solve on the same per-pixel systems.
    gen = torch.Generator().manual_seed(9)
    g = torch.rand(3, 21, 26, generator=gen, dtype=torch.float64)
    p = torch.rand(21, 26, generator=gen, dtype=torch.float64)
    r, eps = 3, 1e-3
    A, B = guided_coefficients(g, p[None], r, eps)
    mean_I = box_filter(g, r)
    sigma = box_filter(g[:, None] * g[None], r) - mean_I[:, None] * mean_I[None]
    sigma = sigma.permute(2, 3, 0, 1) + eps * torch.eye(3, dtype=torch.float64)
    cov = box_filter(g * p, r) - mean_I * box_filter(p, r)
    a = torch.linalg.solve(sigma, cov.permute(1, 2, 0)[..., None])[..., 0].permute(2, 0, 1)
    b = box_filter(p, r) - (a * mean_I).sum(0)
    torch.testing.assert_close(A[0], box_filter(a, r), rtol=0, atol=1e-9)
    torch.testing.assert_close(B[0], box_filter(b, r), rtol=0, atol=1e-9)


@pytest.mark.parametrize("H,W", [(37, 50), (111, 75)])
def test_guided_upsample_matches_reference(H: int, W: int) -> None:
    gen = torch.Generator().manual_seed(H)
    photo_t = torch.randint(0, 256, (H, W, 3), generator=gen, dtype=torch.uint8)
    photo = photo_t.numpy()
    full = photo_t.permute(2, 0, 1).float() / 255.0
    low = F.interpolate(full[None], size=(H // 3, W // 3), mode="area")[0]
    src = torch.rand(H // 3, W // 3, generator=gen)
    # Reference: coefficients upsampled by F.interpolate (bilinear, align_corners=False).
    A, B = guided_coefficients(low, src[None], 2, 1e-3)
    coef = torch.cat([A[0], B]).float()[None]
    up = F.interpolate(coef, size=(H, W), mode="bilinear", align_corners=False)[0]
    ref = (up[:3] * full).sum(0) + up[3]
    q = guided_upsample(low, src, photo, 2, 1e-3, rows_per_strip=7)  # several strips
    torch.testing.assert_close(q, ref, rtol=0, atol=1e-5)
    # Same resolution: the fast path is the plain filter.
    q_same = guided_upsample(full, full[1], photo, 2, 1e-3)
    torch.testing.assert_close(q_same, guided_filter(full, full[1], 2, 1e-3), rtol=0, atol=1e-5)


def _night_scene(lamps: bool = True) -> np.ndarray:
    """A dark 320x480 street: a dim wall, a darker ground, and three lamps (5 px white
    cores with a star of glare) on the wall."""
    rng = np.random.default_rng(1)
    h, w = 320, 480
    img = np.zeros((h, w, 3), np.float32)
    img[:200] = (0.02, 0.03, 0.08)
    img[200:] = (0.04, 0.03, 0.02)
    img += rng.normal(0, 0.005, img.shape)
    yy, xx = np.mgrid[0:h, 0:w]
    if lamps:
        for cx in (100, 240, 380):
            r = np.hypot(yy - 120, xx - cx)
            angle = np.arctan2(yy - 120, xx - cx)
            glare = np.exp(-r / 6.0) + 0.5 * np.exp(-r / 14.0) * np.cos(4 * angle) ** 16
            img += glare[..., None] * np.array([1.0, 0.75, 0.4])
            img[r < 2.5] = 1.0
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def _lamp_relief(d: np.ndarray) -> tuple[list[float], list[float]]:
    """Per lamp of ``_night_scene``: the largest disparity step between neighbours within
    30 px (what tears when the camera moves), and the lamp's disparity (r < 5 px) over its
    wall's just outside the glare (18..24 px)."""
    yy, xx = np.mgrid[0:d.shape[0], 0:d.shape[1]]
    steps, relief = [], []
    for cx in (100, 240, 380):
        p = d[90:151, cx - 30:cx + 31]
        steps.append(float(max(np.abs(np.diff(p, axis=0)).max(), np.abs(np.diff(p, axis=1)).max())))
        r = np.hypot(yy - 120, xx - cx)
        relief.append(float(d[r < 5].mean() - d[(r > 18) & (r < 24)].mean()))
    return steps, relief


def test_lamps_of_a_night_scene_sit_at_the_depth_of_their_wall() -> None:
    assert cue_maps(_night_scene())["lights"].max() > 0.9  # found
    steps, relief = _lamp_relief(estimate_disparity_cues(_night_scene()))
    assert max(steps) < 0.08, steps  # measured 0.043 (without the cue: 0.18)
    assert max(abs(r) for r in relief) < 0.08, relief  # measured 0.04 (without: 0.27-0.36)


def test_without_the_lights_cue_the_lamps_pop_out(monkeypatch) -> None:
    import photo3d_fast.depth.cues as cues

    monkeypatch.setattr(cues, "_lights", lambda lum, s: torch.zeros_like(lum))
    steps, relief = _lamp_relief(estimate_disparity_cues(_night_scene()))
    assert min(relief) > 0.2 and max(steps) > 0.12, (steps, relief)  # what the previous test guards against


def test_a_lit_scene_has_no_lights() -> None:
    img = _night_scene()
    lit = np.clip(img.astype(np.int32) + 120, 0, 255).astype(np.uint8)  # the same street by day
    assert cue_maps(lit)["lights"].max() == 0.0
    assert cue_maps(_night_scene(lamps=False))["lights"].max() == 0.0
