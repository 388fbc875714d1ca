"""The op ``grow`` (the LDI's back layers): ``discontinuities`` finds depth edges, and
``grow_back_layer`` grows a layer behind their near side from the far side's colors and
depths; ``scene.ldi.build_ldi`` stacks such layers.

| reference | photo3d_fast/ops/grow.py (discontinuities, grow_back_layer) |
| Triton    | kernels/grow.py (photo3d_fast.kernels.grow: seeds, grow_back_layer) |
| CUDA C++  | none: ``--kernels cuda`` grows with the next backend (select's rule) |
| selector  | photo3d_fast.ops.backends.select("grow", kernels, device) |

First the reference and the LDI it builds; then the Triton kernels against it, parametrised
over (backend, device) (helpers.BACKEND_DEVICES).

Tolerances: seeds and band masks must be identical (they are comparisons of the same
float32 disparities); band depths and colors agree to 1e-5 relative (means of the same
neighbours, summed in another order).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from photo3d_fast.ops import grow as ref
from photo3d_fast.scene.camera import intrinsics_from_fov
from photo3d_fast.scene.ldi import build_ldi

from helpers import DEPTH_KINDS, backend_devices, depth_map, implementation, spy_device_guard


# -- the reference ---------------------------------------------------------------------------

def test_discontinuities_threshold():
    # disparities 1.0, 0.95, 0.5: only the second step exceeds 0.1
    depth = torch.tensor([[1.0, 1.0 / 0.95, 2.0]])
    fg, bg = ref.discontinuities(depth, edge_disparity=0.1)
    assert fg.tolist() == [[False, True, False]]
    assert bg.tolist() == [[False, False, True]]


def test_slanted_floor_is_one_surface():
    """A plane is linear in disparity: however steep its depth ratio per row (near the
    horizon), it has no edge, while a small real step does."""
    h, w = 60, 8
    fy, cy = 50.0, 0.0
    v = np.arange(h)[:, None] + 0.5
    depth = torch.tensor(np.broadcast_to(fy / (v - cy), (h, w)).astype(np.float32))
    fg, _ = ref.discontinuities(depth, edge_disparity=0.05)
    assert not fg.any()
    depth[30:] *= 1.5
    fg, _ = ref.discontinuities(depth, edge_disparity=0.05)
    assert fg[29].all() and fg.sum() == w  # row 29 is the near side of the step


def test_ldi_back_layer_on_step_depth():
    """A near block on the right half in front of a far wall: the back layer exists
    exactly in a band of the block's pixels next to the edge, with the wall's colors and
    depth, and nowhere else."""
    h, w, band = 40, 64, 6
    depth = np.full((h, w), 5.0, np.float32)
    depth[:, 32:] = 1.0
    rng = np.random.default_rng(1)
    image = np.empty((h, w, 3), np.uint8)
    image[:, :32] = rng.integers(0, 100, (h, 32, 3))  # dark wall texture
    image[:, 32:] = 250  # bright block
    K = intrinsics_from_fov(w, h, 50)
    ldi = build_ldi(image, depth, K, layers=2, band=band)
    mask = ldi.valid[1].numpy()
    expected = np.zeros((h, w), bool)
    expected[:, 32 : 32 + band] = True
    np.testing.assert_array_equal(mask, expected)
    back = ldi.color[1].numpy()[mask]
    assert back.max() <= 100 / 255 + 1e-6, "foreground color leaked into the back layer"
    np.testing.assert_allclose(ldi.depth[1].numpy()[mask], 5.0, rtol=1e-6)
    assert ldi.valid[0].all() and not ldi.valid[1][:, :32].any()


def test_ldi_third_layer_is_nested():
    """Pole (z=1) in front of a box (z=2) in front of a wall (z=6): layer 2 lies behind
    the pole with the box's depth near the box, layer 3 only inside layer 2."""
    h, w = 32, 80
    depth = np.full((h, w), 6.0, np.float32)
    depth[:, 30:60] = 2.0
    depth[:, 36:40] = 1.0
    image = np.full((h, w, 3), 128, np.uint8)
    K = intrinsics_from_fov(w, h, 50)
    ldi = build_ldi(image, depth, K, layers=3, band=8)
    v = ldi.valid.numpy()
    assert v[2].any()
    assert not (v[2] & ~v[1]).any()
    assert (ldi.depth[1].numpy()[v[1]] > 1.9).all()


# -- implementations against the reference ---------------------------------------------------

@pytest.mark.parametrize("size", [(1, 1), (1, 9), (7, 1), (17, 33), (40, 24)])
@pytest.mark.parametrize("kind", DEPTH_KINDS)
@pytest.mark.parametrize("backend, device", backend_devices(("triton", "cpu")))
def test_grow_back_layer_matches_reference(backend, device, size, kind):
    fast = implementation("grow", backend, device)
    w, h = size
    depth = depth_map((w, h), kind, seed=w + 31 * h)
    color = torch.rand(h, w, 3, generator=torch.Generator().manual_seed(h * w))
    edge = 0.05
    assert torch.equal(fast.seeds(depth, edge), ref.discontinuities(depth, edge)[1])
    allowed = None
    surf_c, surf_z = color, depth
    for _ in range(2):  # a back layer, then a nested one inside it
        a = fast.grow_back_layer(surf_c, surf_z, 6, edge, allowed)
        b = ref.grow_back_layer(surf_c, surf_z, 6, edge, allowed)
        assert torch.equal(a[2], b[2])
        torch.testing.assert_close(a[1], b[1], rtol=1e-5, atol=0)
        torch.testing.assert_close(a[0], b[0], rtol=1e-5, atol=1e-6)
        surf_c = torch.where(b[2][..., None], b[0], surf_c)
        surf_z = torch.where(b[2], b[1], surf_z)
        allowed = b[2]


@pytest.mark.parametrize("backend, device", backend_devices("triton"))
def test_build_ldi_equals_reference(backend, device):
    """The whole LDI, three layers, built with the implementation and with the reference."""
    implementation("grow", backend, device)
    h, w = 30, 44
    depth = depth_map((w, h), "nested", seed=5).numpy()
    image = np.random.default_rng(6).integers(0, 256, (h, w, 3), dtype=np.uint8)
    K = intrinsics_from_fov(w, h, 55)
    a = build_ldi(image, depth, K, layers=3, band=5, edge_disparity=0.05, device=device, kernels=backend)
    b = build_ldi(image, depth, K, layers=3, band=5, edge_disparity=0.05, device=device, kernels="torch")
    assert torch.equal(a.valid, b.valid) and b.valid[1].any() and b.valid[2].any()
    torch.testing.assert_close(a.depth, b.depth, rtol=1e-5, atol=0)
    torch.testing.assert_close(a.color, b.color, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend, device", backend_devices("triton"))
def test_launches_under_the_input_device(backend, device, monkeypatch):
    """Triton launches on torch's current device: grow_back_layer must enter the depth map's
    device (kernels.on_device) around the seeds and every ring, or `--device cuda:1` launches
    on cuda:0."""
    fast = implementation("grow", backend, device)
    spy = spy_device_guard(monkeypatch, fast, ["_seeds_kernel", "_grow_kernel"])
    w, h = 12, 9
    depth = depth_map((w, h), "nested", seed=5).to(device)
    color = torch.rand(h, w, 3, generator=torch.Generator().manual_seed(5)).to(device)
    a = fast.grow_back_layer(color, depth, 3, 0.05)
    b = ref.grow_back_layer(color, depth, 3, 0.05)
    assert torch.equal(a[2], b[2]) and a[2].any()
    assert spy.launches >= 2 and spy.devices and set(spy.devices) == {depth.device}
