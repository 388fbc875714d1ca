"""Triton kernels, installed as ``photo3d_fast.kernels``: one module per op, named as the op
(``splat``, ``fill``, ``grow``, ``nv12``), each with its launcher; the torch reference of the
same name is ``photo3d_fast.ops.<op>``, and ``photo3d_fast.ops.backends`` selects between
them. Triton is optional (``pip install photo3d_fast[triton]``; it ships with CUDA torch).
"""
