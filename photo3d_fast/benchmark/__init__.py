"""Benchmarks of photo3d_fast: speed per stage, quality against exact truth, cost per clip.

``photo3d bench`` (and ``python bench/run.py``) runs the suite; ``bench/render.py`` and
``bench/quality.py`` are thin wrappers over the same code. Modules:

- ``timing``: timers (CUDA events on GPU, perf_counter on CPU), repeated measurement,
  device copy bandwidth, the environment record (device, driver, versions, commit);
- ``stages``: one measurement per pipeline stage on generated inputs (decode, depth per
  backend, LDI build, render per implementation, encode, end to end per clip);
- ``quality``: novel-view PSNR/SSIM against ray-cast truth and depth accuracy per backend;
- ``report``: the table, the JSON file, and the comparison of two JSON files;
- ``cli``: ``photo3d bench`` and the command lines of the bench/ scripts.

Nothing here runs at import time of ``photo3d_fast``; benchmarks import it on demand.
"""
