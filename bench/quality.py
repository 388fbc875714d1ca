"""Render quality against exact ray-cast ground truth (PSNR/SSIM of novel views, overall,
in disoccluded pixels and near depth edges, per preset path) and depth accuracy per depth
backend (AbsRel, delta<1.25).

    python bench/quality.py [--quick] [--json out.json] [--frames-dir DIR]

A thin wrapper: the benchmark lives in photo3d_fast/benchmark/quality.py (its docstring
explains every column); ``photo3d bench`` runs it as part of the suite.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from photo3d_fast.benchmark.quality import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
