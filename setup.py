"""Optional native builds, each skipped (with a line saying why) where it cannot be made:

- photo3d_fast._C from csrc/*.cu when CUDA torch and nvcc are present. PHOTO3D_BUILD_CUDA=1
  forces the build (and fails loudly if it cannot), =0 skips it; unset, it builds only when
  it can. Torch must be importable while building, so a CUDA build needs
  `pip install --no-build-isolation -e .` in an environment that has CUDA torch.
- the C++ CPU kernels (csrc/cpu/, plain C++17 and std::thread, no torch or Python headers)
  as the shared library photo3d_fast/_cpu<EXT_SUFFIX>, loaded by photo3d_fast/ops/cpu.py
  through ctypes, whenever a C++ compiler is present (with build isolation too: it needs no
  torch). Without a compiler ops/cpu.py builds it on first use if one appears later.
  PHOTO3D_BUILD_CPU=0 skips it.

Without either the package is complete: the torch reference renders everything.
"""

import glob
import hashlib
import os
import shutil
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

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


# The C++ CPU kernels: flags and source digest as photo3d_fast/ops/cpu.py's CXX_FLAGS and
# source_hash (tests/test_cpu_backend.py checks they agree), so that ops/cpu.py can tell
# whether this build is of the sources it sits next to.
CPU_LIBRARY = "photo3d_fast._cpu"
CPU_FLAGS = ("-O3", "-std=c++17", "-fPIC", "-pthread", "-ffp-contract=off", "-fno-trapping-math",
             "-fvisibility=hidden")


def cpu_source_hash(directory) -> str | None:
    files = sorted(p for p in Path(directory).glob("*") if p.suffix in (".h", ".cpp"))
    if not files:
        return None
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def with_cpu_library(base: type) -> type:
    """``base`` (setuptools' or torch's build_ext) that also builds the C++ CPU library: as
    is, else without function multi-versioning, else not at all (a line saying why, never a
    failed install)."""

    class BuildExt(base):
        def build_extensions(self):
            super().build_extensions()
            # a library that could not be built is no output: nothing to copy or record
            self.extensions = [e for e in self.extensions if not getattr(e, "p3d_skipped", False)]

        def get_export_symbols(self, ext):
            # a plain shared library for ctypes, not a Python module: no PyInit_ to export
            return [] if ext.name == CPU_LIBRARY else super().get_export_symbols(ext)

        def build_extension(self, ext):
            if ext.name != CPU_LIBRARY:
                return super().build_extension(ext)
            if self.compiler.compiler_type == "msvc":
                print("photo3d_fast: not building the C++ CPU kernels (MSVC is not supported; "
                      "the torch reference renders on the CPU)")
                ext.p3d_skipped = True
                return None
            digest = cpu_source_hash("csrc/cpu")
            why = ""
            # as is; without function multi-versioning (a compiler or libc without ifunc)
            for extra in ([], ["-DP3D_NO_CLONES"]):
                ext.extra_compile_args = [*CPU_FLAGS, f'-DP3D_SOURCE_HASH="{digest}"', *extra]
                ext.extra_link_args = ["-pthread"]
                try:
                    return super().build_extension(ext)
                except Exception as e:  # noqa: BLE001 - a compiler or linker failure: try again, then skip
                    why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            print(f"photo3d_fast: not building the C++ CPU kernels ({why}); photo3d_fast builds them on "
                  "first use if a C++ compiler is there then, else the torch reference renders on the CPU")
            ext.p3d_skipped = True
            return None

    return BuildExt


def cpu_build() -> list:
    if os.environ.get("PHOTO3D_BUILD_CPU") == "0" or not glob.glob("csrc/cpu/*.cpp"):
        return []
    return [Extension(CPU_LIBRARY, sorted(glob.glob("csrc/cpu/*.cpp")), depends=sorted(glob.glob("csrc/cpu/*.h")),
                      language="c++")]


def build() -> dict:
    cuda = cuda_build()
    extensions = cuda.get("ext_modules", []) + cpu_build()
    if not extensions:
        return {}
    base = cuda.get("cmdclass", {}).get("build_ext", build_ext)
    return {"ext_modules": extensions, "cmdclass": {"build_ext": with_cpu_library(base)}}


setup(**build())
