"""Hole filling: push-pull keeps known pixels, fills holes smoothly; the far-first variant
fills disocclusions from the background side."""

from __future__ import annotations

import pytest
import torch

from photo3d_fast.ops.fill import push_pull, fill_from_background


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
