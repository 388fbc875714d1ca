"""Triton LDI construction against the torch reference (TRITON_INTERPRET=1 on CPU, see conftest).

Tolerances: seeds and band masks must be identical (they are comparisons of the same
float32 disparities); band depths and colors agree to 1e-5 relative (means of the same
neighbours, summed in another order).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from photo3d_fast.ops import grow as ref_grow
from photo3d_fast.scene import ldi as ref
from photo3d_fast.scene.camera import intrinsics_from_fov

from conftest import INTERPRETED

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="Triton is not installed")
interpreted = pytest.mark.skipif(not INTERPRETED, reason="compiled Triton needs CUDA tensors: see the *_on_gpu test")


def _depth(h, w, kind, seed):
    rng = np.random.default_rng(seed)
    if kind == "flat":
        return torch.full((h, w), 3.0)
    if kind == "extreme":
        return torch.tensor(np.exp(rng.uniform(np.log(1e-2), np.log(1e4), (h, w))), dtype=torch.float32)
    d = torch.tensor(rng.uniform(4.0, 6.0, (h, w)), dtype=torch.float32)
    d[h // 4 : 3 * h // 4, w // 4 : w // 2 + 1] = 1.5
    d[h // 3 : h // 2 + 1, w // 3 : w // 3 + 2] = 0.7  # a pole in front of the box: nesting
    return d


@interpreted
@pytest.mark.parametrize("size", [(1, 1), (1, 9), (7, 1), (17, 33), (40, 24)])
@pytest.mark.parametrize("kind", ["mixed", "flat", "extreme"])
def test_grow_back_layer_matches_reference(size, kind):
    from photo3d_fast.kernels import grow as fast

    w, h = size
    depth = _depth(h, w, kind, seed=w + 31 * h)
    color = torch.rand(h, w, 3, generator=torch.Generator().manual_seed(h * w))
    edge = 0.05
    assert torch.equal(fast.seeds(depth, edge), ref_grow.discontinuities(depth, edge)[1])
    allowed = None
    surf_c, surf_z = color, depth
    for _ in range(2):  # a back layer, then a nested one inside it
        a = fast.grow_back_layer(surf_c, surf_z, 6, edge, allowed)
        b = ref_grow.grow_back_layer(surf_c, surf_z, 6, edge, allowed)
        assert torch.equal(a[2], b[2])
        torch.testing.assert_close(a[1], b[1], rtol=1e-5, atol=0)
        torch.testing.assert_close(a[0], b[0], rtol=1e-5, atol=1e-6)
        surf_c = torch.where(b[2][..., None], b[0], surf_c)
        surf_z = torch.where(b[2], b[1], surf_z)
        allowed = b[2]


@pytest.mark.parametrize("device", [
    pytest.param("cpu", marks=interpreted),
    pytest.param("cuda", marks=pytest.mark.skipif(INTERPRETED or not torch.cuda.is_available(),
                                                  reason="needs a CUDA GPU and TRITON_INTERPRET=0")),
])
def test_build_ldi_with_triton_equals_torch(device):
    h, w = 30, 44
    depth = _depth(h, w, "mixed", seed=5).numpy()
    image = np.random.default_rng(6).integers(0, 256, (h, w, 3), dtype=np.uint8)
    K = intrinsics_from_fov(w, h, 55)
    a = ref.build_ldi(image, depth, K, layers=3, band=5, edge_disparity=0.05, device=device, kernels="triton")
    b = ref.build_ldi(image, depth, K, layers=3, band=5, edge_disparity=0.05, device=device, kernels="torch")
    assert torch.equal(a.valid, b.valid) and b.valid[1].any() and b.valid[2].any()
    torch.testing.assert_close(a.depth, b.depth, rtol=1e-5, atol=0)
    torch.testing.assert_close(a.color, b.color, rtol=1e-5, atol=1e-6)
