"""Optional native build: photo3d_fast._C from csrc/ when CUDA torch and nvcc are present.

PHOTO3D_BUILD_CUDA=1 forces the build (and fails loudly if it cannot), =0 skips it;
unset, it builds only when it can. Torch must be importable while building, so a CUDA
build needs `pip install --no-build-isolation -e .` in an environment that has CUDA torch.
Without the extension the package is complete: the torch reference renders everything.
"""

import glob
import os
import shutil
import sys

from setuptools import setup

# Machine code for sm_80 (A100; also runs on sm_86/87 GPUs), sm_89 (L4/L40/RTX 40) and
# sm_90 (H100/H200), plus PTX of the last (newest), which the driver JIT-compiles on newer
# GPUs (Blackwell sm_100/120). Older GPUs (T4 sm_75, V100 sm_70) are not covered: the
# selector checks a device's capability against this list and falls back to Triton/torch.
# photo3d_fast/ops/backends.py CUDA_ARCHS is the same list (tests/test_backends.py).
ARCHS = ("80", "89", "90")


def _skip(reason: str):
    if os.environ.get("PHOTO3D_BUILD_CUDA") == "1":
        sys.exit(f"PHOTO3D_BUILD_CUDA=1 but the CUDA extension cannot be built: {reason}")
    print(f"photo3d_fast: not building the CUDA extension ({reason}); the pure-Python package is installed")
    return {}


def cuda_build() -> dict:
    if os.environ.get("PHOTO3D_BUILD_CUDA") == "0":
        return {}
    sources = sorted(glob.glob("csrc/*.cu") + glob.glob("csrc/*.cpp"))
    if not sources:
        return _skip("csrc/ has no sources in this version")
    try:
        import torch
        from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CUDAExtension
    except ImportError:
        return _skip("torch is not importable in the build environment (use --no-build-isolation)")
    if torch.version.cuda is None:
        return _skip(f"torch {torch.__version__} is a CPU build")
    if CUDA_HOME is None or shutil.which("nvcc") is None:
        return _skip("nvcc was not found")
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in ARCHS]
    gencode.append(f"-gencode=arch=compute_{ARCHS[-1]},code=compute_{ARCHS[-1]}")  # PTX
    ext = CUDAExtension(
        "photo3d_fast._C",
        sources,
        include_dirs=[os.path.abspath("csrc")],
        extra_compile_args={"cxx": ["-O3"], "nvcc": ["-O3", "--use_fast_math", *gencode]},
    )
    return {"ext_modules": [ext], "cmdclass": {"build_ext": BuildExtension}}


setup(**cuda_build())
