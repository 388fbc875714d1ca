"""Test-wide setup.

Triton kernels are compared with their torch references through Triton's interpreter on
every machine by default, so CI and a GPU box run the same checks on CPU tensors. The
variable must be set before any kernel module is imported, since @triton.jit reads it when
the kernel is defined. On a GPU, `TRITON_INTERPRET=0 python -m pytest tests/test_kernels_*.py`
runs the compiled kernels instead: the interpreter tests then skip and the *_on_gpu tests
compare the compiled kernels with the references on CUDA tensors.
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

INTERPRETED = os.environ["TRITON_INTERPRET"] == "1"
