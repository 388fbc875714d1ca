"""The op ``grade`` (depth fog, light falloff, vignetting in one pass): ``grade``.

| reference | photo3d_fast/ops/grade.py |
| Triton    | kernels/grade.py (photo3d_fast.kernels.grade) |
| CUDA C++  | none |
| C++ CPU   | none: ``select("grade", "cpp", "cpu")`` runs the torch reference |
| selector  | photo3d_fast.ops.backends.select("grade", kernels, device) |

Fog against its closed form on a ray-cast scene (float64 in numpy, from the ray parameter,
which is the z-depth), falloff and vignetting against theirs; then the Triton kernel against
the reference on random inputs (atol 1e-5: exp2/log2 where torch calls pow).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from photo3d_fast.ops import backends
from photo3d_fast.ops import grade as ref
from photo3d_fast.scene.camera import intrinsics_from_fov
from photo3d_fast.synthetic.generate import make_scene, reference_camera

from helpers import backend_devices, implementation

FAST = backend_devices(("triton", "cpu"), ("torch", "cuda"), ("triton", "cuda"))


def _scene(size=(64, 48)):
    K = reference_camera(size)
    rgb, depth, _ = make_scene(3, "mixed").render(np.eye(4), K, size)
    return rgb.astype(np.float64) / 255.0, depth.astype(np.float64), K


def test_fog_is_its_closed_form_on_a_ray_cast_scene():
    rgb, z, K = _scene()
    density, start, fog = 0.35, 2.5, (0.7, 0.75, 0.8)
    out = ref.grade(torch.tensor(rgb, dtype=torch.float32)[None], torch.tensor(z, dtype=torch.float32)[None],
                    torch.tensor(K, dtype=torch.float32)[None], fog_density=density, fog_start=start, fog_color=fog)
    t = np.exp(-density * np.maximum(0.0, z - start))[..., None]
    want = rgb * t + np.asarray(fog) * (1.0 - t)
    np.testing.assert_allclose(out[0].numpy(), want, rtol=0, atol=1e-5)
    near = z < start
    assert near.any() and (~near).any()
    np.testing.assert_allclose(out[0].numpy()[near], rgb[near], rtol=0, atol=1e-6)  # before the fog starts


def test_falloff_is_relative_to_the_reference_depth():
    z = torch.tensor([[[1.0, 2.0, 4.0, 8.0]]])
    c = torch.ones(1, 1, 4, 3)
    out = ref.grade(c, z, torch.eye(3)[None], falloff=2.0, falloff_ref=2.0)[0, 0, :, 0]
    torch.testing.assert_close(out, torch.tensor([1.0, 1.0, 0.25, 1.0 / 16]))  # nearer is not brightened


def test_vignette_is_the_cos4_law():
    w, h, fov, s = 80, 60, 55.0, 0.6
    K = torch.tensor(intrinsics_from_fov(w, h, fov), dtype=torch.float32)[None]
    out = ref.grade(torch.ones(1, h, w, 3), None, K, vignette=s)[0, ..., 0]
    fx = float(K[0, 0, 0])
    for x, y in ((0, 0), (w // 2, h // 2), (w - 1, 10)):
        theta = math.atan(math.hypot(x + 0.5 - w / 2, y + 0.5 - h / 2) / fx)
        assert abs(float(out[y, x]) - (1 - s * (1 - math.cos(theta) ** 4))) < 1e-5
    assert float(out.min()) > 0.6 and float(out[h // 2, w // 2]) > 0.999


def test_off_is_identity():
    c = torch.rand(2, 5, 7, 3)
    torch.testing.assert_close(ref.grade(c, None, torch.eye(3).expand(2, 3, 3)), c)


def test_cpp_runs_the_reference():
    name, module = backends.select("grade", "cpp", "cpu")
    assert name == "torch" and module is ref


@pytest.mark.parametrize("backend, device", FAST)
@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 13, 17), (3, 40, 24)])
@pytest.mark.parametrize("effects", [dict(vignette=0.5), dict(fog_density=0.4, fog_start=1.5),
                                     dict(falloff=1.7, fog_density=0.2, vignette=1.0, fog_color=(0.1, 0.5, 0.9))])
def test_fast_matches_reference(backend, device, shape, effects):
    impl = implementation("grade", backend, device)
    g = torch.Generator().manual_seed(shape[1] * 7 + shape[2])
    n, h, w = shape
    c = torch.rand(*shape, 3, generator=g)
    z = 0.5 + 6.0 * torch.rand(*shape, generator=g)
    Ks = torch.tensor(intrinsics_from_fov(w, h, 60.0), dtype=torch.float32).expand(n, 3, 3).clone()
    Ks[:, 0, 0] *= torch.linspace(1.0, 1.5, n)
    ref_depth = torch.linspace(1.0, 3.0, n)
    want = ref.grade(c, z, Ks, falloff_ref=ref_depth, **effects)
    got = impl.grade(c.to(device), z.to(device), Ks.to(device), falloff_ref=ref_depth.to(device), **effects)
    torch.testing.assert_close(got.cpu(), want, rtol=0, atol=1e-5)
