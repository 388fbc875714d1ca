"""csrc/ itself: the CUDA C++ kernels compile with nvcc for every architecture setup.py
builds, without warnings or register spills, and the torch bindings compile against this
torch's headers. Their numbers are checked against the torch references, where a GPU and
the built extension exist, by each op's tests: tests/test_op_splat.py and
tests/test_op_nv12.py (the cuda-cuda cases)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

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
