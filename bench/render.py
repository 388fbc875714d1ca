"""Per-frame renderer benchmark: ms per frame, fps, and distance from the memory floor.

    python bench/render.py [--sizes 720p,1080p] [--kernels torch] [--reps 20] [--json out.json]

One row per implementation and size: on a CPU, ``--kernels torch,cpp --sizes 540p,1080p``
times the torch reference next to the C++ CPU kernels (csrc/cpu) in one run.

A thin wrapper: the measurement is photo3d_fast/benchmark/stages.py (bench_render, whose
docstring and module docstring define the synthetic scene and the memory floor), also run
by ``photo3d bench`` as its "render" rows.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from photo3d_fast.benchmark.cli import render_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(render_main())
