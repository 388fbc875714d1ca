"""The op ``fill`` (hole filling): ``fill_from_background``, ``fill_frames`` and the
push-pull fallback they share.

| reference | photo3d_fast/ops/fill.py (push_pull, fill_from_background, fill_frames) |
| Triton    | kernels/fill.py (photo3d_fast.kernels.fill; also nearest_covered) |
| CUDA C++  | none: the CUDA splat fills its holes with the fastest fill on its device |
| C++ CPU   | csrc/cpu/fill.cpp, through photo3d_fast/ops/cpu.py (also nearest_covered) |
| selector  | photo3d_fast.ops.backends.select("fill", kernels, device) |

First the reference: push-pull keeps known pixels and fills holes smoothly; the far-first
variant fills disocclusions from the background side. Then the Triton kernels and the C++ CPU fill against it,
parametrised over (backend, device) (helpers.BACKEND_DEVICES; compiled Triton on CUDA
tensors is checked through the splat's render_frames, which fills with it).

Tolerances: nearest-covered indices must be equal; filled values agree to atol 1e-5 (rtol 0,
values in [0, 1]): both compute the weights in float32, but the kernel raises to FAR_POWER
by repeated multiplication where torch calls pow (a few ulp); the C++ fill calls std::pow
(within 1 ulp, as torch's). Covered pixels are exact.
Outputs are poisoned (NaN, -7) before the kernels run, so an unwritten element fails.
"""

from __future__ import annotations

import pytest
import torch

from photo3d_fast.ops import fill as ref
from photo3d_fast.ops.fill import fill_from_background, push_pull

from helpers import backend_devices, implementation, spy_device_guard

SHAPES = [(1, 1), (1, 9), (7, 1), (17, 33), (64, 48)]
DENSITIES = ["all", "none", "one", 0.5, 0.95]
SIDES = ((1, False), (1, True), (0, False), (0, True))  # left, right, top, bottom

#: The fast implementations compared with the reference.
FAST = backend_devices(("triton", "cpu"), "cpp")


# -- the reference ---------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (17, 33), (64, 48)])
def test_push_pull_keeps_known_and_fills_all(shape):
    g = torch.Generator().manual_seed(shape[0] * 100 + shape[1])
    values = torch.rand(3, *shape, generator=g)
    known = torch.rand(shape, generator=g) > 0.6
    known.view(-1)[0] = True
    out = push_pull(values, known.float())
    torch.testing.assert_close(out[:, known], values[:, known], rtol=0, atol=1e-6)
    assert torch.isfinite(out).all()
    lo, hi = values[:, known].min(), values[:, known].max()
    assert out.min() >= lo - 1e-6 and out.max() <= hi + 1e-6  # a convex blend of known values


def test_push_pull_constant_field_stays_constant():
    values = torch.full((2, 31, 40), 0.25)
    known = torch.zeros(31, 40, dtype=torch.bool)
    known[::7, ::5] = True
    torch.testing.assert_close(push_pull(values, known.float()), values)


def test_fill_from_background_fills_from_background():
    """Far blue wall on the left, near red block on the right, an 8-px hole between them:
    every hole pixel gets the wall's color, none the block's."""
    h, w = 24, 64
    values = torch.zeros(3, h, w)
    values[2, :, :28] = 1.0  # blue wall
    values[0, :, 36:] = 1.0  # red block
    depth = torch.full((h, w), 1.0)
    depth[:, :28] = 5.0
    covered = torch.ones(h, w, dtype=torch.bool)
    covered[:, 28:36] = False
    out = fill_from_background(values, covered, depth)
    torch.testing.assert_close(out[:, covered], values[:, covered])
    hole = out[:, :, 28:36]
    assert (hole[2] > 0.99).all() and (hole[0] < 0.01).all()
    # the averaging fill, by contrast, mixes the block's red into the hole
    assert push_pull(values, covered.float())[0, :, 28:36].max() > 0.3


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (50, 37)])
def test_fill_from_background_keeps_covered_pixels(shape):
    g = torch.Generator().manual_seed(7)
    values = torch.rand(3, *shape, generator=g)
    depth = torch.rand(shape, generator=g) + 0.5
    covered = torch.rand(shape, generator=g) > 0.3
    covered.view(-1)[-1] = True
    out = fill_from_background(values, covered, depth)
    torch.testing.assert_close(out[:, covered], values[:, covered], rtol=0, atol=0)
    assert torch.isfinite(out).all()


# -- implementations against the reference ---------------------------------------------------

def _inputs(shape, density, seed, device="cpu"):
    """(values (3, H, W) in [0, 1], covered (H, W) bool, depth (H, W)) on ``device``."""
    g = torch.Generator().manual_seed(seed)
    h, w = shape
    values = torch.rand(3, h, w, generator=g)
    # depths over seven decades, with the extremes themselves present
    depth = 10.0 ** (torch.rand(h, w, generator=g) * 7.0 - 3.0)
    depth.view(-1)[torch.randint(h * w, (max(1, h * w // 10),), generator=g)] = 1e-3
    depth.view(-1)[torch.randint(h * w, (max(1, h * w // 10),), generator=g)] = 1e4
    if density == "all":
        covered = torch.ones(h, w, dtype=torch.bool)
    elif density == "none":
        covered = torch.zeros(h, w, dtype=torch.bool)
    elif density == "one":
        covered = torch.zeros(h, w, dtype=torch.bool)
        covered.view(-1)[torch.randint(h * w, (1,), generator=g)] = True
    else:
        covered = torch.rand(h, w, generator=g) < density
    return values.to(device), covered.to(device), depth.to(device)


def _check(fill, values, covered, depth):
    expected = ref.fill_from_background(values, covered, depth)
    out = torch.full_like(values, float("nan"))
    fast = fill.fill_from_background(values, covered, depth, out=out)
    assert fast is out
    assert torch.isfinite(fast).all()
    torch.testing.assert_close(fast, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(fast[:, covered], values[:, covered], rtol=0, atol=0)
    return expected


@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("backend, device", FAST)
def testnearest_covered_matches_reference(backend, device, shape, density):
    fill = implementation("fill", backend, device)
    _, covered, _ = _inputs(shape, density, seed=shape[0] * 1000 + shape[1] + 7, device=device)
    out = torch.full((4, *shape), -7, dtype=torch.int32, device=device)
    idx = fill.nearest_covered(covered, out=out)
    for k, (dim, forward) in enumerate(SIDES):
        torch.testing.assert_close(idx[k].long(), ref.nearest_covered(covered, dim, forward), rtol=0, atol=0)


@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("backend, device", FAST)
def test_fill_matches_reference(backend, device, shape, density):
    values, covered, depth = _inputs(shape, density, seed=shape[0] * 100 + shape[1], device=device)
    _check(implementation("fill", backend, device), values, covered, depth)


@pytest.mark.parametrize("backend, device", FAST)
def test_scan_carries_across_blocks(backend, device):
    """Rows and columns longer than one scan block, covered pixels only near the ends."""
    h, w = 40, 300
    values, _, depth = _inputs((h, w), 0.5, seed=3, device=device)
    covered = torch.zeros(h, w, dtype=torch.bool, device=device)
    covered[:, 2] = True
    covered[5, 290] = True
    covered[36, :] = True
    _check(implementation("fill", backend, device), values, covered, depth)


@pytest.mark.parametrize("backend, device", FAST)
def test_push_pull_fallback(backend, device):
    """Covered pixels only in one corner block: most holes see no covered pixel in their row
    or column, and both implementations hand those to push-pull."""
    fill = implementation("fill", backend, device)
    values, _, depth = _inputs((17, 33), 0.5, seed=11, device=device)
    covered = torch.zeros(17, 33, dtype=torch.bool)
    covered[2:5, 3:7] = torch.rand(3, 4, generator=torch.Generator().manual_seed(1)) < 0.7
    covered[2, 3] = True
    covered = covered.to(device)
    has = torch.stack([ref.nearest_covered(covered, d, f) >= 0 for d, f in SIDES]).any(0)
    assert (~has).sum() > 100  # the fallback is exercised
    expected = _check(fill, values, covered, depth)
    # without out=, as the renderer will call it
    torch.testing.assert_close(fill.fill_from_background(values, covered, depth), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("backend, device", FAST)
def test_rejects_bad_inputs(backend, device):
    fill = implementation("fill", backend, device)
    values, covered, depth = _inputs((5, 6), 0.5, seed=2, device=device)
    with pytest.raises(ValueError, match="covered must be"):
        fill.fill_from_background(values, covered.float(), depth)
    with pytest.raises(ValueError, match="depth must be"):
        fill.fill_from_background(values, covered, depth[:4])
    with pytest.raises(ValueError, match="values must be"):
        fill.fill_from_background(values.double(), covered, depth)


def _batch(shape, densities, seed, device="cpu"):
    frames = [_inputs(shape, d, seed=seed + i, device=device) for i, d in enumerate(densities)]
    return tuple(torch.stack(parts) for parts in zip(*frames))


@pytest.mark.parametrize("shape", [(1, 1), (7, 1), (17, 33), (40, 300)])
@pytest.mark.parametrize("backend, device", FAST)
def test_batchednearest_covered_matches_per_frame(backend, device, shape):
    """Frames of a batch are independent: no scan carries from one frame into the next."""
    fill = implementation("fill", backend, device)
    _, covered, _ = _batch(shape, DENSITIES, seed=5, device=device)
    out = torch.full((4, len(DENSITIES), *shape), -7, dtype=torch.int32, device=device)
    idx = fill.nearest_covered(covered, out=out)
    for f in range(len(DENSITIES)):
        for k, (dim, forward) in enumerate(SIDES):
            torch.testing.assert_close(idx[k, f].long(), ref.nearest_covered(covered[f], dim, forward),
                                       rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (17, 33), (40, 300)])
@pytest.mark.parametrize("backend, device", FAST)
def test_fill_frames_matches_reference(backend, device, shape):
    """Every density in one batch (all covered, none, a single pixel, sparse, dense) plus an
    orphan-heavy frame, against the torch reference frame by frame; tolerances as above."""
    fill = implementation("fill", backend, device)
    values, covered, depth = _batch(shape, DENSITIES, seed=shape[0] + shape[1], device=device)
    if shape[0] > 4 and shape[1] > 8:  # a frame whose holes mostly need the push-pull fallback
        covered[3] = False
        covered[3, 2:4, 3:7] = True
    expected = ref.fill_frames(values, covered, depth)
    out = torch.full_like(values, float("nan"))
    fast = fill.fill_frames(values, covered, depth, out=out)
    assert fast is out and torch.isfinite(fast).all()
    torch.testing.assert_close(fast, expected, rtol=0, atol=1e-5)
    keep = covered[:, None].expand_as(values)
    torch.testing.assert_close(fast[keep], values[keep], rtol=0, atol=0)
    torch.testing.assert_close(fast[1], values[1], rtol=0, atol=0)  # nothing covered: unchanged


@pytest.mark.parametrize("backend, device", FAST)
def test_fill_frames_rejects_bad_inputs(backend, device):
    fill = implementation("fill", backend, device)
    values, covered, depth = _batch((5, 6), [0.5, 0.5], seed=2, device=device)
    with pytest.raises(ValueError, match=r"values must be a \(F, C, H, W\)"):
        fill.fill_frames(values[0], covered, depth)
    with pytest.raises(ValueError, match="covered must be"):
        fill.fill_frames(values, covered[:1], depth)
    assert fill.fill_frames(values[:0], covered[:0], depth[:0]).shape == (0, 3, 5, 6)


@pytest.mark.parametrize("entry", ["fill_from_background", "fill_frames"])
@pytest.mark.parametrize("backend, device", backend_devices("triton"))
def test_launches_under_the_input_device(backend, device, entry, monkeypatch):
    """Triton launches on torch's current device: both launchers must enter their inputs'
    device (kernels.on_device) around all three passes, or `--device cuda:1` launches on cuda:0."""
    fill = implementation("fill", backend, device)
    spy = spy_device_guard(monkeypatch, fill, ["_nearest_kernel", "_blend_kernel"])
    values, covered, depth = _batch((5, 6), [0.5], seed=3, device=device)
    if entry == "fill_from_background":
        values, covered, depth = values[0], covered[0], depth[0]
    fast = getattr(fill, entry)(values, covered, depth)
    torch.testing.assert_close(fast, getattr(ref, entry)(values, covered, depth), rtol=0, atol=1e-5)
    assert spy.launches == 3 and spy.devices and set(spy.devices) == {values.device}
