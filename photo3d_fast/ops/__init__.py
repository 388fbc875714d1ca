"""The hot-path ops, one module per op holding its torch reference: ``splat`` (project, splat,
resolve), ``fill`` (hole filling), ``grow`` (LDI back-layer growth), ``nv12`` (RGB -> NV12).
Their Triton twins are ``kernels/<op>.py``, their CUDA C++ twins ``csrc/<op>.cu`` through
``cuda``; ``backends.select`` picks one.
"""
