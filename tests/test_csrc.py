"""The CUDA C++ renderer: it compiles with nvcc for every architecture setup.py builds,
and, where a GPU and the built extension exist, matches the torch reference."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

CSRC = Path(__file__).resolve().parents[1] / "csrc"


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_kernels_compile_for_ampere_ada_hopper(tmp_path):
    # The same architectures as setup.py's ARCHS; the torch bindings need CUDA torch's
    # headers and are compiled by setup.py itself.
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in ("80", "89", "90")]
    for source in sorted(CSRC.glob("*.cu")):
        obj = tmp_path / f"{source.stem}.o"
        r = subprocess.run(
            ["nvcc", "-std=c++17", "-O3", "--use_fast_math", *gencode, "-I", str(CSRC), "-c", str(source), "-o", str(obj)],
            capture_output=True, text=True,
        )
        assert r.returncode == 0, f"{source.name}: {r.stderr}"
        assert obj.stat().st_size > 0
        assert "warning" not in r.stderr.lower(), r.stderr


def _built() -> bool:
    try:
        from photo3d_fast import _C  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not torch.cuda.is_available() or not _built(),
                    reason="needs a CUDA GPU and photo3d_fast._C (PHOTO3D_BUILD_CUDA=1 pip install --no-build-isolation -e .)")
@pytest.mark.parametrize("size", [(1, 1), (33, 17), (640, 360)])
def test_cuda_matches_reference(size):
    from photo3d_fast.ldi import build_ldi
    from photo3d_fast.render import cuda as impl
    from photo3d_fast.render import reference as ref
    from photo3d_fast.scene import intrinsics_from_fov

    w, h = size
    rng = np.random.default_rng(w)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    depth = rng.uniform(4, 6, (h, w)).astype(np.float32)
    depth[h // 4 : 3 * h // 4, w // 4 : w // 2] = 1.5
    K = intrinsics_from_fov(w, h, 55)
    grid = ref.prepare(build_ldi(image, depth, K, device="cuda"))
    Kt = torch.tensor(K, dtype=torch.float32, device="cuda")
    for tx in (0.0, 0.06):
        c2w = torch.eye(4, device="cuda")
        c2w[0, 3] = tx
        fast, cov_f = impl.render_frame(grid, c2w, Kt, size)
        slow, cov_s = ref.render_frame(grid, c2w, Kt, size)
        same = cov_f & cov_s
        assert (cov_f != cov_s).float().mean() <= 0.005
        torch.testing.assert_close(fast[same], slow[same], rtol=0, atol=2e-3)


@pytest.mark.skipif(not torch.cuda.is_available() or not _built(), reason="needs a CUDA GPU and photo3d_fast._C")
@pytest.mark.parametrize("size", [(2, 2), (64, 36), (1920, 1080)])
def test_cuda_nv12_matches_reference(size):
    from photo3d_fast import _C
    from photo3d_fast.nv12 import rgb_to_nv12_reference

    w, h = size
    rgb = torch.randint(0, 256, (h, w, 3), dtype=torch.uint8, device="cuda", generator=None)
    # exact: both round the same separately-rounded float32 operations
    torch.testing.assert_close(_C.rgb_to_nv12(rgb), rgb_to_nv12_reference(rgb), rtol=0, atol=0)
