"""Clean depth edges (issue 19): depth conditioning, the background-side fill of back
layers, and the silhouette blend of the splat's epilogue (reference and Triton twin).

| conditioning | photo3d_fast/depth/condition.py (condition_disparity) |
| back-layer fill | photo3d_fast/inpaint/__init__.py (fill_behind, background_sources), inpaint/exemplar.py |
| silhouettes | photo3d_fast/ops/splat.py antialias_silhouettes; kernels/splat.py antialias_silhouettes |

Scenes are small synthetic images whose right answer is known: a noisy slanted plane, a
step blurred into a ramp whose colour edge is known, a thin pole, a foreground square over
a background gradient.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from photo3d_fast.depth.condition import CLEAN_NOISE, condition_disparity, join_foreground, noise_level, window_max
from photo3d_fast.inpaint import background_sources, band_mean, fill_behind, surface_fill
from photo3d_fast.inpaint.exemplar import despeckle, exemplar_fill
from photo3d_fast.ops.fill import fill_from_background
from photo3d_fast.ops import splat as ref
from photo3d_fast.ops.grow import discontinuities
from photo3d_fast.scene.ldi import build_ldi, ldi_params_for_motion
from photo3d_fast.synthetic import make_scene, reference_camera

from helpers import backend_devices, implementation

EDGE = 0.05


def _grey(h: int, w: int, value: float = 0.5) -> torch.Tensor:
    return torch.full((h, w, 3), value)


def _steps(d: torch.Tensor) -> torch.Tensor:
    """Largest neighbour disparity step of each pixel pair, both axes, flattened."""
    return torch.cat([(d[:, 1:] - d[:, :-1]).abs().flatten(), (d[1:] - d[:-1]).abs().flatten()])


# -- conditioning -------------------------------------------------------------------------------

def test_noise_within_a_slanted_surface_is_smoothed_and_never_cut():
    """A slanted plane (disparity linear in x) with noise whose steps exceed the edge
    threshold: conditioned, no step exceeds it, and the slope is kept."""
    h, w = 48, 64
    g = torch.Generator().manual_seed(0)
    plane = 0.3 + 0.004 * torch.arange(w, dtype=torch.float32)[None].expand(h, w)
    noisy = plane + 0.025 * torch.randn(h, w, generator=g)
    assert float(_steps(noisy).max()) > EDGE  # the raw map would tear
    out = condition_disparity(_grey(h, w), noisy, EDGE)
    assert float(_steps(out).max()) < EDGE
    inner = (slice(8, -8), slice(8, -8))
    assert float((out - plane)[inner].abs().mean()) < 0.01


def test_a_ramp_collapses_into_one_step_on_the_colour_edge():
    """A depth step blurred over 5 columns and shifted 2 px off the colour edge becomes a
    sharp step at the colour edge, keeping both surfaces' disparities."""
    h, w = 24, 40
    rgb = _grey(h, w, 0.2)
    rgb[:, 20:] = 0.8  # colour edge between columns 19 and 20
    x = torch.arange(w, dtype=torch.float32)
    ramp = 0.2 + 0.6 * ((x - 19.5) / 5 + 0.5).clamp(0, 1)  # 0.2 .. 0.8 over columns 17..22
    disp = ramp[None].expand(h, w).clone()
    out = condition_disparity(rgb, disp, EDGE)
    row = out[h // 2]
    assert torch.allclose(row[:20], torch.full((20,), 0.2), atol=0.03)
    assert torch.allclose(row[20:], torch.full((20,), 0.8), atol=0.03)


def test_a_thin_pole_survives():
    """A 2 px pole in front of a wall, with its own colour, stays a pole."""
    h, w = 32, 32
    rgb = _grey(h, w, 0.3)
    rgb[:, 15:17] = 0.9
    disp = torch.full((h, w), 0.2)
    disp[:, 15:17] = 0.9
    out = condition_disparity(rgb, disp, EDGE)
    assert float(out[:, 15:17].min()) > 0.85
    assert float(out[:, :14].max()) < 0.25 and float(out[:, 18:].max()) < 0.25


@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (64, 97)])
@pytest.mark.parametrize("r", [1, 3, 6])
def test_window_max_is_the_max_pool(shape, r):
    """The OpenCV window maximum the conditioning uses on the CPU equals torch's max pool
    (borders ignored), for maxima and, negated, minima."""
    g = torch.Generator().manual_seed(r)
    x = torch.randn(shape, generator=g)
    pool = torch.nn.functional.max_pool2d
    assert torch.equal(window_max(x, r), pool(x[None, None], 2 * r + 1, 1, r)[0, 0])
    assert torch.equal(-window_max(-x, r), -pool(-x[None, None], 2 * r + 1, 1, r)[0, 0])


def test_flying_pixels_join_the_foreground():
    """Fringe pixels whose disparity lies between a foreground and the background, with a
    colour that gives the median no side (mixed, like hair against a wall), end up on the
    foreground; a surface sloping in steps below the threshold is left alone."""
    h, w = 24, 40
    rgb = _grey(h, w, 0.2)
    rgb[:, 20:] = 0.8
    rgb[:, 20] = 0.5  # mixed colour at the silhouette
    disp = torch.full((h, w), 0.2)
    disp[:, 21:] = 0.8
    disp[:, 20] = 0.5  # a column between the surfaces
    assert float(((disp - 0.2).abs() > EDGE).logical_and((disp - 0.8).abs() > EDGE).float().sum()) > 0
    out = condition_disparity(rgb, disp, EDGE)
    flying = ((out - 0.2).abs() > EDGE) & ((out - 0.8).abs() > EDGE)
    assert not bool(flying.any())
    assert float(out[:, 20].min()) > 0.8 - EDGE  # joined the foreground, not the wall
    assert float(out[:, :18].max()) < 0.2 + EDGE
    slope = (0.2 + 0.6 * EDGE * torch.arange(w, dtype=torch.float32))[None].expand(h, w).contiguous()
    assert torch.equal(join_foreground(slope, EDGE), slope)


@pytest.mark.parametrize("kind", ["planes", "thin"])
def test_clean_depth_keeps_its_edges(kind):
    """Exact ray-cast depth: conditioning keeps every real discontinuity where it is and
    adds none (the edge maps at the LDI threshold agree), and moves the typical pixel by a
    negligible amount."""
    size = (96, 72)
    image, depth, _ = make_scene(0, kind).render(np.eye(4), reference_camera(size), size)
    disp = torch.from_numpy(1.0 / depth).float()
    out = condition_disparity(torch.from_numpy(image), disp, EDGE)
    before = discontinuities(1.0 / disp, EDGE)[0]
    after = discontinuities(1.0 / out, EDGE)[0]
    iou = float((before & after).sum()) / max(1.0, float((before | after).sum()))
    assert iou > 0.8
    assert float((out - disp).abs().median()) < 0.002 * float(disp.max() - disp.min()) + 1e-6


# -- the back layer's fill -----------------------------------------------------------------------

def _band(square: torch.Tensor, width: int = 4) -> torch.Tensor:
    """The ``width`` px inner rim of a mask: where a back layer grows behind its edge."""
    inner = -torch.nn.functional.max_pool2d(-square[None, None].float(), 2 * width + 1, 1, width)[0, 0] > 0
    return square & ~inner


def _square_scene(h: int = 48, w: int = 64):
    """A red foreground square (disparity 1) over a background whose colour is a vertical
    gradient of blue (disparity 0.2). Returns color (H, W, 3), disp (H, W), the square's mask."""
    color = torch.zeros(h, w, 3)
    color[..., 2] = torch.linspace(0.1, 0.9, w)[None]
    color[..., 1] = 0.3
    disp = torch.full((h, w), 0.2)
    square = torch.zeros(h, w, dtype=torch.bool)
    square[12:36, 20:44] = True
    color[square] = torch.tensor([1.0, 0.0, 0.0])
    disp[square] = 1.0
    return color, disp, square


def test_background_sources_leave_out_the_foreground_and_its_mixed_rim():
    color, disp, square = _square_scene()
    band = _band(square)
    sources, rim = (torch.from_numpy(x) for x in background_sources(disp.numpy(), band.numpy(), 0.1, reach=12))
    assert not bool((sources & square).any())
    ring = torch.zeros_like(square)
    ring[11:37, 19:45] = True
    assert not bool((sources & ring & ~square).any())  # the 1 px ring outside the square
    assert bool(sources[0, 0]) and bool(sources[-1, -1])
    assert not bool((rim & square).any()) and bool(rim.any()) and not bool((rim & ~ring).any())


def test_fill_behind_continues_the_background_never_the_foreground():
    color, disp, square = _square_scene()
    band = _band(square)
    out, rim = fill_behind(color, disp, band, 0.1)
    assert torch.equal(out[~band], color[~band])
    assert not bool(rim.any())  # the classic fill leaves the photo's pixels as they are
    filled = out[band]
    assert float(filled[:, 0].max()) < 0.1, "foreground red leaked into the back layer"
    # the blue gradient continues: compare with the background's own value in each column
    ys, xs = band.nonzero(as_tuple=True)
    want = torch.linspace(0.1, 0.9, color.shape[1])[xs]
    assert float((filled[:, 2] - want).abs().mean()) < 0.08


def _texture(h: int, w: int) -> torch.Tensor:
    """(H, W, 3) a soft checker of period 9 x 7 px, slanted: a background that repeats."""
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    a = torch.sin(2 * np.pi * (x + 0.5 * y) / 9.0) * torch.sin(2 * np.pi * y / 7.0)
    return torch.stack([0.5 + 0.4 * a, 0.4 + 0.1 * a, 0.3 - 0.2 * a], -1)


def test_exemplar_fill_continues_a_repeating_background():
    """Behind a foreground square on a repeating texture the classic fill copies the
    texture along its own period: close to the true background, where the far-side fill
    (its fallback) only streaks the band's border across it."""
    h, w = 72, 96
    truth = _texture(h, w)
    disp = torch.full((h, w), 0.2)
    square = torch.zeros(h, w, dtype=torch.bool)
    square[20:52, 30:62] = True
    color = truth.clone()
    color[square] = torch.tensor([1.0, 0.0, 0.0])
    disp[square] = 1.0
    band = _band(square, 8)
    out, _ = fill_behind(color, disp, band, 0.1)
    far_side = fill_from_background(color.permute(2, 0, 1), ~band, 1.0 / disp).permute(1, 2, 0)
    err = float((out[band] - truth[band]).abs().mean())
    err_far = float((far_side[band] - truth[band]).abs().mean())
    assert err < 0.02 and err < 0.25 * err_far, (err, err_far)


def test_exemplar_fill_copies_only_the_pixels_own_surface():
    """Two known surfaces, grey levels at disparity 0.2 and pure green at 0.6: the pixels
    whose target disparity is 0.2 take grey (or their fallback), never the green."""
    h, w = 40, 60
    image = np.zeros((h, w, 3), np.float32)
    image[..., 0] = image[..., 1] = image[..., 2] = np.linspace(0.2, 0.8, w)[None]
    disp = np.full((h, w), 0.2, np.float32)
    image[:, 40:] = (0.0, 1.0, 0.0)
    disp[:, 40:] = 0.6
    fill = np.zeros((h, w), bool)
    fill[10:30, 20:40] = True
    image[fill] = (0.5, 0.5, 0.5)  # the fallback
    disp[fill] = 0.2
    out = exemplar_fill(image, fill, ~fill, disp, 0.1)
    got = out[fill]
    assert np.abs(got[:, 0] - got[:, 1]).max() < 1e-6  # grey, never green
    assert not np.array_equal(got, image[fill])  # and copied, not left as the fallback


def test_surface_fill_takes_the_floor_beside_a_pole_not_the_wall_above_it():
    """A pole standing on a floor in front of a wall: below the horizon the band's surface
    is the floor, which lies beside the pole in each row; the far-side fill (the farther
    side wins) paints the wall down the pole's whole length instead."""
    h, w = 60, 40
    horizon = 30
    disp = torch.full((h, w), 0.2)  # the wall
    rows = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
    disp = torch.where(rows >= horizon, 0.2 + 0.01 * (rows - horizon), disp)  # the floor, nearer below
    color = torch.zeros(h, w, 3)
    color[:horizon] = torch.tensor([0.8, 0.2, 0.8])
    color[horizon:] = torch.tensor([0.9, 0.8, 0.2])
    band = torch.zeros(h, w, dtype=torch.bool)
    band[5:, 18:23] = True  # behind the pole, down to the image's bottom edge
    same, served = surface_fill(color, disp, band, disp, 0.05)
    floor = band & (rows >= horizon + 6)  # farther from the wall than the tolerance
    assert bool(served[floor].all())
    assert torch.allclose(same[floor], torch.tensor([0.9, 0.8, 0.2]))
    far = fill_from_background(color.permute(2, 0, 1), ~band, 1.0 / disp).permute(1, 2, 0)
    assert float((far[floor] - torch.tensor([0.9, 0.8, 0.2])).abs().max()) > 0.3  # what it replaces


def test_band_mean_softens_streaks_inside_the_band_only():
    """The far-side fill's streaks (one colour per row) lose most of their row-to-row
    contrast; pixels outside the band neither change nor leak in."""
    h, w = 20, 20
    rows = np.arange(h)[:, None, None] * np.ones((1, w, 3))
    image = np.where(rows % 2 == 0, 0.8, 0.2).astype(np.float32)
    band = np.zeros((h, w), bool)
    band[5:15, 5:15] = True
    image[~band] = 1.0  # bright outside: the band's means must not see it
    got = band_mean(image, band, 1)
    assert np.array_equal(got[~band], image[~band])
    inner = got[6:14, 6:14, 0]
    assert float(np.abs(np.diff(inner, axis=0)).max()) < 0.25  # 0.6 before
    assert float(got[band].max()) <= 0.8 + 1e-6
    assert np.array_equal(band_mean(image, band, 0), image)


def test_exemplar_fill_keeps_its_fallback_where_no_copy_matches():
    """On a background that never repeats (white noise) no copy's neighbourhood matches the
    pixel's within MAX_MISMATCH: the band keeps its fallback rather than pieces of noise."""
    h, w = 48, 64
    rng = np.random.default_rng(0)
    image = np.repeat(rng.random((h, w, 1), dtype=np.float32), 3, -1)
    disp = np.full((h, w), 0.2, np.float32)
    fill = np.zeros((h, w), bool)
    fill[14:34, 20:44] = True
    image[fill] = 0.5  # the fallback: smooth, so no specks for the last step to remove
    out = exemplar_fill(image, fill, ~fill, disp, 0.1)
    assert np.array_equal(out[fill], image[fill])


def test_despeckle_removes_lone_pixels_the_fill_wrote_only():
    """A dark dot in a smooth grey area takes its neighbours' grey where the fill wrote it;
    a dot the fill did not write, and a checkerboard (no smooth neighbourhood), stay."""
    img = np.full((20, 30, 3), 0.6, np.float32)
    img[5, 5] = img[5, 25] = 0.1
    img[12:18, 12:18] = np.where((np.indices((6, 6)).sum(0) % 2)[..., None] == 1, 0.9, 0.2)
    written = np.zeros((20, 30), bool)
    written[:, :20] = True
    before = img.copy()
    despeckle(img, written)
    assert np.allclose(img[5, 5], 0.6)
    assert np.allclose(img[5, 25], 0.1)
    assert np.array_equal(img[12:18, 12:18], before[12:18, 12:18])
    changed = np.argwhere((img != before).any(-1))
    assert changed.tolist() == [[5, 5]]


def test_noise_level_tells_an_exact_map_from_an_estimated_one():
    """A slanted plane and a ray-cast scene's depth read as exact (not smoothed, their small
    steps kept); the same with a little noise, or a real photo's cue depth, do not."""
    h, w = 48, 64
    plane = 0.3 + 0.004 * torch.arange(w, dtype=torch.float32)[None].expand(h, w)
    assert noise_level(plane, EDGE) < CLEAN_NOISE
    size = (320, 240)  # the thin poles at the edge threshold of the quality benchmark's circle
    K = reference_camera(size)
    _, depth, _ = make_scene(0, "thin").render(np.eye(4), K, size)
    _, edge = ldi_params_for_motion(K, depth, 0.05 * float(np.percentile(depth, 1.0)), size)
    assert noise_level(torch.from_numpy(1.0 / depth).float(), edge) < CLEAN_NOISE
    noisy = plane + 0.05 * EDGE * torch.randn(h, w, generator=torch.Generator().manual_seed(0))
    assert noise_level(noisy, EDGE) > 3 * CLEAN_NOISE
    from photo3d_fast.depth import estimate_disparity
    from photo3d_fast.io import load_image
    from photo3d_fast.pipeline import SAMPLE_IMAGE

    cue, _ = estimate_disparity(load_image(SAMPLE_IMAGE).rgb, "cues")
    cue = torch.as_tensor(cue).float()
    assert noise_level(cue, 0.03 * float(cue.max() - cue.min())) > 2 * CLEAN_NOISE


def test_fill_behind_rejects_an_unknown_method():
    color, disp, square = _square_scene()
    with pytest.raises(ValueError, match="resolve 'auto'"):
        fill_behind(color, disp, square, 0.1, method="auto")


def test_back_layer_of_an_ldi_holds_no_foreground_colour():
    """End to end through build_ldi: the square scene's back layer is blue, not red."""
    color, disp, _ = _square_scene()
    K = np.array([[60.0, 0, 32], [0, 60.0, 24], [0, 0, 1]])
    ldi = build_ldi((color * 255).round().to(torch.uint8).numpy(), (1.0 / disp).numpy(), K, layers=2, band=6,
                    edge_disparity=0.1, kernels="torch")
    back = ldi.color[1][ldi.valid[1]]
    assert back.shape[0] > 0
    assert float(back[:, 0].max()) < 0.1


# -- silhouettes ---------------------------------------------------------------------------------

def test_silhouette_blend_reference():
    """A foreground pixel (disparity 1) half covered (weight COVERAGE_FULL / 2) next to a
    background pixel (0.1) becomes their 50/50 mix; a fully covered one and a background
    one do not change."""
    color = torch.zeros(1, 3, 1, 4)
    color[0, 0, 0, :2] = 1.0  # red foreground at x 0, 1
    color[0, 2, 0, 2:] = 1.0  # blue background at x 2, 3
    weight = torch.tensor([[[1.0, 0.5 * ref.COVERAGE_FULL, 1.0, 1.0]]])
    disp = torch.tensor([[[1.0, 1.0, 0.1, 0.1]]])
    out = ref.antialias_silhouettes(color, weight, disp, 0.2)
    torch.testing.assert_close(out[0, :, 0, 1], torch.tensor([0.5, 0.0, 0.5]))
    torch.testing.assert_close(out[0, :, 0, [0, 2, 3]], color[0, :, 0, [0, 2, 3]])


def _aa_inputs(n: int, h: int, w: int, seed: int, device: str):
    g = torch.Generator().manual_seed(seed)
    color = torch.rand(n, 3, h, w, generator=g)
    weight = torch.rand(n, h, w, generator=g) * 1.5
    weight[torch.rand(n, h, w, generator=g) < 0.1] = 0.0
    disp = torch.where(torch.rand(n, h, w, generator=g) < 0.5, 0.2, 0.9) + 0.01 * torch.rand(n, h, w, generator=g)
    disp = torch.where(weight > 0, disp, 0.0)
    return color.to(device), weight.to(device), disp.to(device)


@pytest.mark.parametrize("backend, device", backend_devices("triton"))
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 7, 5), (2, 33, 47)])
def test_silhouette_blend_kernel_matches_reference(backend, device, shape):
    module = implementation("splat", backend, device)
    color, weight, disp = _aa_inputs(*shape, seed=sum(shape), device=device)
    want = ref.antialias_silhouettes(color, weight, disp, 0.3)
    got = module.antialias_silhouettes(color, weight, disp, 0.3)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
