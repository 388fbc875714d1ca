"""Triton fill_from_background against the torch reference (TRITON_INTERPRET=1 on CPU, see conftest).

Tolerances: nearest-covered indices must be equal; filled values agree to atol 1e-5 (rtol 0,
values in [0, 1]): both compute the weights in float32, but the kernel raises to FAR_POWER
by repeated multiplication where torch calls pow (a few ulp). Covered pixels are exact.
Outputs are poisoned (NaN, -7) before the kernels run, so an unwritten element fails.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from photo3d_fast.ops import fill as pushpull

from conftest import INTERPRETED

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="Triton is not installed"),
    pytest.mark.skipif(not INTERPRETED, reason="compiled Triton needs CUDA tensors: see test_kernels_splat's *_on_gpu test"),
]

SHAPES = [(1, 1), (1, 9), (7, 1), (17, 33), (64, 48)]
DENSITIES = ["all", "none", "one", 0.5, 0.95]
SIDES = ((1, False), (1, True), (0, False), (0, True))  # left, right, top, bottom


@pytest.fixture(scope="module")
def fill():
    from photo3d_fast.kernels import fill

    return fill


def _inputs(shape, density, seed):
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
    return values, covered, depth


def _check(fill, values, covered, depth):
    ref = pushpull.fill_from_background(values, covered, depth)
    out = torch.full_like(values, float("nan"))
    fast = fill.fill_from_background(values, covered, depth, out=out)
    assert fast is out
    assert torch.isfinite(fast).all()
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(fast[:, covered], values[:, covered], rtol=0, atol=0)
    return ref


@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("shape", SHAPES)
def test_nearest_covered_matches_reference(fill, shape, density):
    _, covered, _ = _inputs(shape, density, seed=shape[0] * 1000 + shape[1] + 7)
    out = torch.full((4, *shape), -7, dtype=torch.int32)
    idx = fill.nearest_covered(covered, out=out)
    for k, (dim, forward) in enumerate(SIDES):
        torch.testing.assert_close(idx[k].long(), pushpull._nearest_covered(covered, dim, forward), rtol=0, atol=0)


@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("shape", SHAPES)
def test_fill_matches_reference(fill, shape, density):
    values, covered, depth = _inputs(shape, density, seed=shape[0] * 100 + shape[1])
    _check(fill, values, covered, depth)


def test_scan_carries_across_blocks(fill):
    """Rows and columns longer than one scan block, covered pixels only near the ends."""
    h, w = 40, 300
    values, _, depth = _inputs((h, w), 0.5, seed=3)
    covered = torch.zeros(h, w, dtype=torch.bool)
    covered[:, 2] = True
    covered[5, 290] = True
    covered[36, :] = True
    _check(fill, values, covered, depth)


def test_push_pull_fallback(fill):
    """Covered pixels only in one corner block: most holes see no covered pixel in their row
    or column, and both implementations hand those to push-pull."""
    values, _, depth = _inputs((17, 33), 0.5, seed=11)
    covered = torch.zeros(17, 33, dtype=torch.bool)
    covered[2:5, 3:7] = torch.rand(3, 4, generator=torch.Generator().manual_seed(1)) < 0.7
    covered[2, 3] = True
    has = torch.stack([pushpull._nearest_covered(covered, d, f) >= 0 for d, f in SIDES]).any(0)
    assert (~has).sum() > 100  # the fallback is exercised
    ref = _check(fill, values, covered, depth)
    # without out=, as the renderer will call it
    torch.testing.assert_close(fill.fill_from_background(values, covered, depth), ref, rtol=0, atol=1e-5)


def test_rejects_bad_inputs(fill):
    values, covered, depth = _inputs((5, 6), 0.5, seed=2)
    with pytest.raises(ValueError, match="covered must be"):
        fill.fill_from_background(values, covered.float(), depth)
    with pytest.raises(ValueError, match="depth must be"):
        fill.fill_from_background(values, covered, depth[:4])
    with pytest.raises(ValueError, match="values must be"):
        fill.fill_from_background(values.double(), covered, depth)


def _batch(shape, densities, seed):
    frames = [_inputs(shape, d, seed=seed + i) for i, d in enumerate(densities)]
    return tuple(torch.stack(parts) for parts in zip(*frames))


@pytest.mark.parametrize("shape", [(1, 1), (7, 1), (17, 33), (40, 300)])
def test_batched_nearest_covered_matches_per_frame(fill, shape):
    """Frames of a batch are independent: no scan carries from one frame into the next."""
    _, covered, _ = _batch(shape, DENSITIES, seed=5)
    out = torch.full((4, len(DENSITIES), *shape), -7, dtype=torch.int32)
    idx = fill.nearest_covered(covered, out=out)
    for f in range(len(DENSITIES)):
        for k, (dim, forward) in enumerate(SIDES):
            torch.testing.assert_close(idx[k, f].long(), pushpull._nearest_covered(covered[f], dim, forward),
                                       rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (17, 33), (40, 300)])
def test_fill_frames_matches_reference(fill, shape):
    """Every density in one batch (all covered, none, a single pixel, sparse, dense) plus an
    orphan-heavy frame, against the torch reference frame by frame; tolerances as above."""
    values, covered, depth = _batch(shape, DENSITIES, seed=shape[0] + shape[1])
    if shape[0] > 4 and shape[1] > 8:  # a frame whose holes mostly need the push-pull fallback
        covered[3] = False
        covered[3, 2:4, 3:7] = True
    ref = pushpull.fill_frames(values, covered, depth)
    out = torch.full_like(values, float("nan"))
    fast = fill.fill_frames(values, covered, depth, out=out)
    assert fast is out and torch.isfinite(fast).all()
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-5)
    keep = covered[:, None].expand_as(values)
    torch.testing.assert_close(fast[keep], values[keep], rtol=0, atol=0)
    torch.testing.assert_close(fast[1], values[1], rtol=0, atol=0)  # nothing covered: unchanged


def test_fill_frames_rejects_bad_inputs(fill):
    values, covered, depth = _batch((5, 6), [0.5, 0.5], seed=2)
    with pytest.raises(ValueError, match=r"values must be a \(F, C, H, W\)"):
        fill.fill_frames(values[0], covered, depth)
    with pytest.raises(ValueError, match="covered must be"):
        fill.fill_frames(values, covered[:1], depth)
    assert fill.fill_frames(values[:0], covered[:0], depth[:0]).shape == (0, 3, 5, 6)
