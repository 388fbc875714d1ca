"""Test-wide setup.

Triton kernels are compared with their torch references through Triton's interpreter on
every machine by default, so CI and a GPU box run the same checks on CPU tensors. The
variable must be set before any kernel module is imported, since @triton.jit reads it when
the kernel is defined. On a GPU, `TRITON_INTERPRET=0 python -m pytest tests/test_op_*.py`
runs the compiled kernels instead: the triton-cpu cases then skip and the triton-cuda (and,
with photo3d_fast._C built, cuda-cuda) cases compare the fast implementations with the
references on CUDA tensors. tests/helpers.py holds what the op tests share (scenes, cameras,
the (backend, device) pairs, the boundary-band tolerance). PHOTO3D_OFFLINE=1 keeps every
test off the network.
"""

import os

import pytest

os.environ.setdefault("TRITON_INTERPRET", "1")
# No test touches the network: `auto` never downloads and a missing model fails at once.
# Set here, at import, so that the CLI's subprocesses and batch workers inherit it;
# tests/test_fetch.py lifts it to simulate a hub (unreachable, or a local server).
os.environ["PHOTO3D_OFFLINE"] = "1"

INTERPRETED = os.environ["TRITON_INTERPRET"] == "1"


@pytest.fixture
def one_thread():
    """torch on one thread for the test: CI has two shared cores, and the tiny models these
    tests run gain nothing from more threads (results do not depend on it)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
