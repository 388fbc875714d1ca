"""The benchmark suite: speed per stage, cost per clip, quality; the same as ``photo3d bench``.

    python bench/run.py [--quick] [--json out.json] [--compare a.json b.json] [...]

A thin wrapper over photo3d_fast/benchmark/cli.py (``--help`` lists every option).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from photo3d_fast.benchmark.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
