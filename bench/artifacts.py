"""Artifact scores of real photos (isolated outlier pixels, sharpness, flicker) with 1 and
2 layers. A thin wrapper: the benchmark and the definitions of its columns live in
photo3d_fast/benchmark/artifacts.py.

    python bench/artifacts.py [--photos coffee chelsea ...] [--json out.json] [--sheet DIR]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from photo3d_fast.benchmark.artifacts import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
