"""The op ``nv12`` (RGB -> NV12 for the hardware encoders): ``rgb_to_nv12``, and its inverse
``nv12_to_rgb`` for tests.

| reference | photo3d_fast/ops/nv12.py (rgb_to_nv12, nv12_to_rgb) |
| Triton    | kernels/nv12.py (photo3d_fast.kernels.nv12) |
| CUDA C++  | csrc/nv12.cu, through photo3d_fast/ops/cuda.py |
| selector  | photo3d_fast.ops.backends.select("nv12", kernels, device) |

First the reference against hand-computed BT.709 values and its round trip; then every
implementation against it, parametrised over (backend, device) (helpers.BACKEND_DEVICES).
"""

from __future__ import annotations

import os
import zlib

import pytest
import torch

import photo3d_fast.ops.nv12 as reference
from photo3d_fast.errors import Photo3DError
from photo3d_fast.ops import backends
from photo3d_fast.ops.backends import select
from photo3d_fast.ops.nv12 import nv12_to_rgb, rgb_to_nv12

from helpers import BACKEND_DEVICES, backend_devices, cases, implementation, spy_device_guard

# BT.709 limited range by hand: Y = 16 + 219 (.2126 R + .7152 G + .0722 B),
# Cb = 128 + 112 (B - Y') / (1 - .0722), Cr = 128 + 112 (R - Y') / (1 - .2126), R,G,B in [0, 1]
PURE = {
    (255, 255, 255): (235, 128, 128),
    (0, 0, 0): (16, 128, 128),
    (255, 0, 0): (63, 102, 240),   # 16 + 219*.2126 = 62.56; 128 - 112*.2126/.9278 = 102.3
    (0, 255, 0): (173, 42, 26),    # 16 + 219*.7152 = 172.6; 128 - 112*.7152/.9278 = 41.7; 128 - 112*.7152/.7874 = 26.3
    (0, 0, 255): (32, 240, 118),   # 16 + 219*.0722 = 31.8; 128 - 112*.0722/.7874 = 117.7
    (128, 128, 128): (126, 128, 128),  # 16 + 219 * 128/255 = 125.9
}


# -- the reference ---------------------------------------------------------------------------

@pytest.mark.parametrize("rgb, yuv", PURE.items())
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_pure_colours(rgb, yuv, dtype):
    img = torch.tensor(rgb, dtype=torch.float32).expand(4, 6, 3)
    img = img.to(torch.uint8) if dtype == torch.uint8 else img / 255
    nv12 = rgb_to_nv12(img)
    assert nv12.shape == (6, 6) and nv12.dtype == torch.uint8
    assert (nv12[:4] == yuv[0]).all()
    assert (nv12[4:, 0::2] == yuv[1]).all() and (nv12[4:, 1::2] == yuv[2]).all()


def test_chroma_is_left_sited():
    # one bright blue column at x=2: chroma site 1 (column 2) sees weight 2/4; the
    # neighbouring site 2 (column 4, window 3..5) sees none; site 0 (window -1..1) none.
    img = torch.zeros(2, 8, 3, dtype=torch.uint8)
    img[:, 2, 2] = 255
    u = rgb_to_nv12(img)[2, 0::2].tolist()
    assert u[0] == 128 and u[2] == 128 and u[1] == round(128 + 112 * 0.5 * 255 / 255)
    img = torch.zeros(2, 8, 3, dtype=torch.uint8)
    img[:, 3, 2] = 255  # odd column: shared by sites 1 and 2, a quarter each
    u = rgb_to_nv12(img)[2, 0::2].tolist()
    assert u[1] == u[2] == 128 + 28 and u[0] == u[3] == 128


def test_round_trip_error_bound():
    g = torch.Generator().manual_seed(1)
    # smooth content (chroma subsampling loses only what varies within 2 pixels)
    yy, xx = torch.meshgrid(torch.arange(48.0), torch.arange(64.0), indexing="ij")
    img = torch.stack([xx / 63 * 220 + 20, yy / 47 * 200 + 30, (xx + yy) / 110 * 180 + 40], -1)
    img = (img + torch.rand(img.shape[:2], generator=g)[..., None] * 2).round().to(torch.uint8)
    back = nv12_to_rgb(rgb_to_nv12(img))
    err = (back.int() - img.int()).abs()
    assert err.max() <= 6 and err.float().mean() <= 1.0, (err.max(), err.float().mean())
    # flat colours come back to within the 8-bit limited-range quantisation (<= 2 LSB)
    for rgb in [(200, 30, 90), (12, 240, 128), (255, 255, 0)]:
        flat = torch.tensor(rgb, dtype=torch.uint8).expand(4, 4, 3).contiguous()
        assert (nv12_to_rgb(rgb_to_nv12(flat)).int() - flat.int()).abs().max() <= 2


@pytest.mark.parametrize("shape", [(4, 5), (5, 4), (0, 2)])
def test_odd_or_empty_sizes_are_refused(shape):
    with pytest.raises(Photo3DError, match="even width and height"):
        rgb_to_nv12(torch.zeros(*shape, 3, dtype=torch.uint8))


def test_bad_input_is_refused():
    with pytest.raises(Photo3DError, match=r"\(H, W, 3\)"):
        rgb_to_nv12(torch.zeros(4, 4, 4, dtype=torch.uint8))
    with pytest.raises(Photo3DError, match="uint8 or float"):
        rgb_to_nv12(torch.zeros(4, 4, 3, dtype=torch.int32))
    assert torch.equal(rgb_to_nv12(torch.zeros(2, 2, 3, dtype=torch.uint8)),
                       torch.tensor([[16, 16], [16, 16], [128, 128]], dtype=torch.uint8))


def test_selector_uses_torch_on_cpu():
    assert select("nv12", "auto", "cpu") == ("torch", reference)
    assert select("nv12", "torch", "cpu") == ("torch", reference)
    with pytest.raises(Photo3DError, match="kernels 'metal'"):
        select("nv12", "metal", "cpu")
    # Without the extension it is missing; with it (a GPU machine), CPU tensors are refused.
    with pytest.raises(Photo3DError, match="kernels cuda (is not available|runs on CUDA devices, not cpu)"):
        select("nv12", "cuda", "cpu")


# -- implementations against the reference ---------------------------------------------------

#: Largest difference from the reference, in LSB. Same float32 operations in the same order:
#: exact on the CPU interpreter and in CUDA C++ (which rounds every operation as torch does);
#: compiled Triton on a GPU may contract to FMA and move a value across a .5 rounding edge.
LSB = {("triton", "cpu"): 0, ("triton", "cuda"): 1, ("cuda", "cuda"): 0}
SHAPES = [(2, 2), (6, 10), (64, 96), (34, 62), (18, 258)]


@pytest.mark.parametrize("backend, device, shape, dtype, layout", cases({
    ("triton", "cpu"): [(s, d, layout) for s in SHAPES for d in (torch.uint8, torch.float32)
                        for layout in ("contiguous", "transposed")],
    ("triton", "cuda"): [((1080, 1920), torch.uint8, "contiguous")],
    ("cuda", "cuda"): [(s, torch.uint8, "contiguous") for s in ((2, 2), (36, 64), (1080, 1920))],
}))
def test_matches_reference(backend, device, shape, dtype, layout):
    if device == "cpu":
        assert os.environ["TRITON_INTERPRET"] == "1"  # the interpreter, never a compiled kernel on the CPU
    elif backend == "triton":
        # the compiled kernel on the GPU, not the interpreter (whose torch fallbacks would
        # make this compare the reference with itself): helpers skips it unless TRITON_INTERPRET=0
        assert os.environ["TRITON_INTERPRET"] == "0"
    fast_nv12 = implementation("nv12", backend, device).rgb_to_nv12
    g = torch.Generator().manual_seed(zlib.crc32(repr((shape, str(dtype), layout)).encode()))
    h, w = shape
    if dtype == torch.uint8:
        img = torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8)
    else:
        img = torch.rand(h, w, 3, generator=g) * 1.2 - 0.1  # out-of-range floats are clamped
    if layout == "transposed":
        img = img.transpose(0, 1).contiguous().transpose(0, 1)  # same values, strides (3, 3h, 1)
    img = img.to(device)
    out = torch.full((h * 3 // 2, w), 7, dtype=torch.uint8, device=device)  # poison: every byte must be written
    out[0, 0] = 201
    fast = fast_nv12(img, out=out)
    expected = rgb_to_nv12(img)
    torch.testing.assert_close(fast.int(), expected.int(), rtol=0, atol=LSB[backend, device])
    torch.testing.assert_close(fast_nv12(img).int(), expected.int(), rtol=0, atol=LSB[backend, device])


#: The (backend, device) pairs of implementations nv12 has (no C++ CPU twin: NVENC reads GPU memory).
NV12_DEVICES = [p for p in BACKEND_DEVICES if p.values[0] in backends.IMPLEMENTATIONS["nv12"]]


@pytest.mark.parametrize("backend, device", NV12_DEVICES)
def test_refuses_odd_sizes(backend, device):
    with pytest.raises(Photo3DError, match="even width and height.*6x4"):
        implementation("nv12", backend, device).rgb_to_nv12(torch.zeros(4, 7, 3, dtype=torch.uint8, device=device))


@pytest.mark.parametrize("backend, device", backend_devices("triton"))
def test_launches_under_the_input_device(backend, device, monkeypatch):
    """Triton launches on torch's current device: the launcher must enter its input's device
    (kernels.on_device) around the launch, or `--device cuda:1` launches on cuda:0."""
    fast = implementation("nv12", backend, device)
    spy = spy_device_guard(monkeypatch, fast, ["_nv12_kernel"])
    img = torch.randint(0, 256, (4, 6, 3), dtype=torch.uint8, device=device)
    torch.testing.assert_close(fast.rgb_to_nv12(img).int(), rgb_to_nv12(img).int(), rtol=0, atol=LSB[backend, device])
    assert spy.launches == 1 and spy.devices == [img.device]
