"""Test-wide setup.

Triton kernels run on the CPU through Triton's interpreter when no GPU is present; the
variable must be set before any kernel module is imported, since @triton.jit reads it
when the kernel is defined.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
