"""The CUDA C++ renderer: it compiles with nvcc for every architecture setup.py builds,
and, where a GPU and the built extension exist, matches the torch reference."""

from __future__ import annotations

import re
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
            ["nvcc", "-std=c++17", "-O3", "--use_fast_math", *gencode, "-I", str(CSRC), "--resource-usage",
             "-c", str(source), "-o", str(obj)],
            capture_output=True, text=True,
        )
        assert r.returncode == 0, f"{source.name}: {r.stderr}"
        assert obj.stat().st_size > 0
        assert "warning" not in r.stderr.lower(), r.stderr
        # ptxas's report, one line per kernel and architecture: nothing spills to local memory
        spills = re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", r.stderr)
        assert len(spills) >= len(gencode), r.stderr
        assert all(s == ("0", "0") for s in spills), r.stderr


def _cuda_include() -> Path | None:
    """The CUDA toolkit's include directory next to the nvcc on PATH (it may be a wrapper
    script, so the toolkit is also looked for under /usr/local/cuda*)."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    candidates = [Path(nvcc).resolve().parents[1] / "include", *sorted(Path("/usr/local").glob("cuda*/include"))]
    return next((c for c in candidates if (c / "cuda_runtime_api.h").is_file()), None)


@pytest.mark.skipif(shutil.which("g++") is None or _cuda_include() is None,
                    reason="needs g++ and a CUDA toolkit's headers (nvcc)")
def test_bindings_compile_against_torch_headers(tmp_path):
    """bindings.cpp against this torch's C++ API: a syntax-and-types check of the same
    translation unit setup.py builds. A CPU torch ships c10/cuda's headers but not the one
    its CMake generates, whose whole content is the macro below."""
    import sysconfig

    from torch.utils.cpp_extension import include_paths

    shim = tmp_path / "c10" / "cuda" / "impl"
    shim.mkdir(parents=True)
    (shim / "cuda_cmake_macros.h").write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
    includes = [tmp_path, *include_paths(), _cuda_include(), sysconfig.get_paths()["include"], CSRC]
    r = subprocess.run(
        ["g++", "-std=c++20", "-fsyntax-only", "-Wall", *[f"-I{i}" for i in includes],
         "-DTORCH_EXTENSION_NAME=_C", "-DTORCH_API_INCLUDE_EXTENSION_H", str(CSRC / "bindings.cpp")],
        capture_output=True, text=True,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    ours = [line for line in r.stderr.splitlines() if "bindings.cpp" in line and "warning" in line]
    assert not ours, "\n".join(ours)


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
    from photo3d_fast.scene.ldi import build_ldi
    from photo3d_fast.ops import cuda as impl
    from photo3d_fast.ops import splat as ref
    from photo3d_fast.scene.camera import intrinsics_from_fov

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
@pytest.mark.parametrize("size", [(33, 17), (1280, 720)])
def test_cuda_batched_frames_match_single_frames(size):
    """One launch for four cameras equals four launches: z-buffers bit for bit, colors up to
    the order of float atomic adds."""
    from photo3d_fast.scene.ldi import build_ldi
    from photo3d_fast.ops import cuda as impl
    from photo3d_fast.ops import splat as ref
    from photo3d_fast.scene.camera import intrinsics_from_fov, zoom_intrinsics

    w, h = size
    rng = np.random.default_rng(h)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    depth = rng.uniform(4, 6, (h, w)).astype(np.float32)
    depth[h // 3 :, 2 * w // 3 :] = 0.9
    K = intrinsics_from_fov(w, h, 55)
    grid = ref.prepare(build_ldi(image, depth, K, device="cuda"))
    c2ws = torch.eye(4, device="cuda").repeat(4, 1, 1)
    c2ws[:, 0, 3] = torch.tensor([0.0, 0.05, -0.04, 0.02])
    c2ws[:, 2, 3] = torch.tensor([0.0, 0.0, 0.2, -0.1])
    Ks = torch.tensor(np.stack([zoom_intrinsics(K, z, size) for z in (1.0, 1.1, 1.0, 0.9)]),
                      dtype=torch.float32, device="cuda")
    acc, buf = impl.accumulate_frames(grid, c2ws, Ks, size)
    for f in range(4):
        acc1, buf1 = impl.accumulate_frames(grid, c2ws[f : f + 1], Ks[f : f + 1], size)
        assert torch.equal(buf[f], buf1[0])
        torch.testing.assert_close(acc[f], acc1[0], rtol=1e-5, atol=1e-5)
    color, covered = impl.render_frames(grid, c2ws, Ks, size)
    for f in range(4):
        slow, cov_s = ref.render_frame(grid, c2ws[f], Ks[f], size)
        same = covered[f] & cov_s
        assert (covered[f] != cov_s).float().mean() <= 0.005
        torch.testing.assert_close(color[f][same], slow[same], rtol=0, atol=2e-3)


@pytest.mark.skipif(not torch.cuda.is_available() or not _built(), reason="needs a CUDA GPU and photo3d_fast._C")
@pytest.mark.parametrize("size", [(2, 2), (64, 36), (1920, 1080)])
def test_cuda_nv12_matches_reference(size):
    from photo3d_fast import _C
    from photo3d_fast.ops.nv12 import rgb_to_nv12_reference

    w, h = size
    rgb = torch.randint(0, 256, (h, w, 3), dtype=torch.uint8, device="cuda", generator=None)
    # exact: both round the same separately-rounded float32 operations
    torch.testing.assert_close(_C.rgb_to_nv12(rgb), rgb_to_nv12_reference(rgb), rtol=0, atol=0)
