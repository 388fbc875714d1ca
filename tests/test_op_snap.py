"""The op ``snap`` (one pass of the colour-weighted median of disparities at jumps, step 1 of
the depth conditioning): ``snap_to_color_edges(rgb, disp, edge, radius)``.

| reference | photo3d_fast/ops/snap.py (jumps, snap_to_color_edges) |
| Triton    | none |
| CUDA C++  | none: on a GPU the torch reference runs (select's rule) |
| C++ CPU   | csrc/cpu/snap.cpp, through photo3d_fast/ops/cpu.py (snap_to_color_edges) |
| selector  | photo3d_fast.ops.backends.select("snap", kernels, device) |

First the reference: hand-checked cases of the definition (the smallest value whose weights
reach half the total, ties of equal values in any order, a step snapped onto the colour
edge, values only from the window, pixels off the jumps untouched); then every
implementation against it, parametrised over (backend, device) (helpers.backend_devices):
random inputs with many ties, odd sizes, 1 pixel, no jumps (``disp`` itself comes back),
every pixel a jump, radius 0 to 4, NaN disparities, and the conditioned depth of the
bundled photo.

Tolerance: the C++ CPU twin equals the reference bit for bit (the same float32 weights,
exp taken in float64 and rounded once; the same stable order; the same float64 running
sums). The torch reference on CUDA sums in another order (a parallel scan) and uses CUDA's
exp: a pick may differ where a running sum lies within rounding of half the total, so there
at most 0.1% of the jump pixels may differ, each still holding a value of its own window.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import backend_devices, implementation

from photo3d_fast.ops import snap as ref

PAIRS = backend_devices("torch", "cpp")


def _inputs(shape, seed, device="cpu", levels=4):
    """rgb (3, H, W) in [0, 1], half of it in 3 levels (equal colours); disp (H, W) in [0, 1],
    its upper half in ``levels`` levels (ties of equal values)."""
    h, w = shape
    g = torch.Generator().manual_seed(seed)
    rgb = torch.rand(3, h, w, generator=g)
    rgb[:, h // 2:] = (rgb[:, h // 2:] * 2).round() / 2
    disp = torch.rand(h, w, generator=g)
    disp[: (h + 1) // 2] = (disp[: (h + 1) // 2] * levels).round() / levels
    return rgb.to(device), disp.to(device)


def _check(snap, rgb, disp, edge, radius, exact=True):
    expected = ref.snap_to_color_edges(rgb.cpu(), disp.cpu(), edge, radius)
    got = snap.snap_to_color_edges(rgb, disp, edge, radius)
    assert got.shape == disp.shape and got.dtype == torch.float32 and got.device == disp.device
    got = got.cpu()
    if exact:
        torch.testing.assert_close(got, expected, rtol=0, atol=0, equal_nan=True)
    else:
        jumps = int(ref.jumps(disp.cpu(), edge).sum())
        differ = (got != expected) & ~(got.isnan() & expected.isnan())
        assert int(differ.sum()) <= max(1, jumps // 1000)
        for y, x in differ.nonzero().tolist():
            window = disp.cpu()[max(0, y - radius): y + radius + 1, max(0, x - radius): x + radius + 1]
            assert bool((window == got[y, x]).any())
    return expected


def _exact(backend, device):
    return not (backend == "torch" and device == "cuda")


# -- the reference ---------------------------------------------------------------------------

def _median_brute(values, weights):
    """The definition: the smallest value v whose candidates <= v weigh at least half the total."""
    total = sum(weights)
    for v in sorted(set(values)):
        if sum(w for x, w in zip(values, weights) if x <= v) >= 0.5 * total:
            return v
    raise AssertionError


def test_reference_is_the_weighted_median_definition():
    """Every jump pixel of a random map with many ties holds the brute-force weighted median
    of its window (weights from the colour distance, as the module doc defines them)."""
    rgb, disp = _inputs((9, 11), seed=5, levels=3)
    disp[:, :5] = 0.5  # a flat strip: no jumps in its first 4 columns
    edge, radius = 0.1, 2
    out = ref.snap_to_color_edges(rgb, disp, edge, radius)
    jumps = ref.jumps(disp, edge)
    assert jumps.any() and not jumps.all()
    h, w = disp.shape
    for y, x in jumps.nonzero().tolist():
        values, weights = [], []
        for yy in range(y - radius, y + radius + 1):
            for xx in range(x - radius, x + radius + 1):
                p = (min(max(yy, 0), h - 1), min(max(xx, 0), w - 1))
                d2 = float(((rgb[:, p[0], p[1]] - rgb[:, y, x]) ** 2).sum())
                values.append(float(disp[p]))
                weights.append(np.exp(-d2 / ref.COLOR_SIGMA**2))
        assert float(out[y, x]) == _median_brute(values, weights)
    assert torch.equal(out[~jumps], disp[~jumps])


def test_reference_ties_do_not_depend_on_order():
    """Ties of equal values: the result is the same whichever way the window is laid out
    (transposed and mirrored maps give the transposed and mirrored result)."""
    rgb, disp = _inputs((21, 21), seed=2, levels=2)
    out = ref.snap_to_color_edges(rgb, disp, 0.2, 3)
    torch.testing.assert_close(ref.snap_to_color_edges(rgb.transpose(1, 2), disp.T, 0.2, 3), out.T, rtol=0, atol=0)
    torch.testing.assert_close(ref.snap_to_color_edges(rgb.flip(2), disp.flip(1), 0.2, 3), out.flip(1),
                               rtol=0, atol=0)


def test_reference_snaps_a_step_onto_the_colour_edge():
    """A step one column off the colour edge moves onto it."""
    h, w = 12, 20
    rgb = torch.zeros(3, h, w)
    rgb[:, :, 10:] = 1.0
    disp = torch.full((h, w), 0.2)
    disp[:, 9:] = 0.8  # one column too early
    out = ref.snap_to_color_edges(rgb, disp, 0.1, 3)
    assert torch.equal(out[:, :10], torch.full((h, 10), 0.2))
    assert torch.equal(out[:, 10:], torch.full((h, 10), 0.8))


# -- every implementation against the reference -----------------------------------------------

@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (7, 1), (5, 3), (17, 33), (40, 61), (64, 63)])
@pytest.mark.parametrize("radius", [0, 1, 3])
@pytest.mark.parametrize("backend, device", PAIRS)
def test_matches_reference(backend, device, shape, radius):
    snap = implementation("snap", backend, device)
    rgb, disp = _inputs(shape, seed=shape[0] * 100 + shape[1] + radius, device=device)
    _check(snap, rgb, disp, 0.05, radius, _exact(backend, device))


@pytest.mark.parametrize("backend, device", PAIRS)
def test_one_pixel(backend, device):
    snap = implementation("snap", backend, device)
    rgb, disp = torch.rand(3, 1, 1, device=device), torch.full((1, 1), 0.25, device=device)
    assert snap.snap_to_color_edges(rgb, disp, 0.05, 3) is disp  # no jump
    out = snap.snap_to_color_edges(rgb, disp, -1.0, 3)  # a jump: its window is itself
    assert out is not disp and out.tolist() == [[0.25]]


@pytest.mark.parametrize("backend, device", PAIRS)
def test_no_jumps_returns_disp(backend, device):
    snap = implementation("snap", backend, device)
    rgb, disp = _inputs((30, 41), seed=3, device=device)
    assert snap.snap_to_color_edges(rgb, disp, 1.5, 3) is disp
    assert snap.snap_to_color_edges(rgb, disp, float("inf"), 3) is disp
    flat = torch.full((30, 41), 0.5, device=device)
    assert snap.snap_to_color_edges(rgb, flat, 0.0, 3) is flat


@pytest.mark.parametrize("edge", [-1.0, 0.0])
@pytest.mark.parametrize("backend, device", PAIRS)
def test_all_jumps(backend, device, edge):
    """edge < 0: every pixel is a jump (a 3x3 range is never negative); edge 0: every pixel
    whose window is not constant."""
    snap = implementation("snap", backend, device)
    rgb, disp = _inputs((33, 47), seed=int(edge) + 9, device=device, levels=8)
    if edge < 0:
        assert bool(ref.jumps(disp.cpu(), edge).all())
    _check(snap, rgb, disp, edge, 3, _exact(backend, device))


@pytest.mark.parametrize("backend, device", PAIRS)
def test_larger_radius_and_border_windows(backend, device):
    snap = implementation("snap", backend, device)
    rgb, disp = _inputs((23, 9), seed=4, device=device)
    for radius in (2, 4, 12):
        _check(snap, rgb, disp, 0.02, radius, _exact(backend, device))


@pytest.mark.parametrize("backend, device", PAIRS)
def test_nan_disparities(backend, device):
    """A window holding NaN is no jump (NaN > edge is false); NaN candidates of a jump's
    window sort last, as torch's sort puts them."""
    snap = implementation("snap", backend, device)
    rgb, disp = _inputs((25, 31), seed=6, device=device)
    disp = disp.clone()
    disp[3, 4] = float("nan")
    disp[20, 5:9] = float("nan")
    # NaN inside a jump's 7x7 window but not in its 3x3 window
    _check(snap, rgb, disp, 0.05, 3, _exact(backend, device))


@pytest.mark.parametrize("backend, device", PAIRS)
def test_bundled_photo_conditioning(backend, device):
    """The cue depth of the bundled photo (as build_ldi conditions it): every pass of the
    conditioning's snap, and the whole conditioning, equal the reference's."""
    from PIL import Image

    from photo3d_fast.depth import condition
    from photo3d_fast.depth.cues import estimate_disparity_cues
    from photo3d_fast.io import load_image
    from photo3d_fast.pipeline import SAMPLE_IMAGE

    rgb = np.asarray(Image.fromarray(load_image(SAMPLE_IMAGE).rgb).resize((240, 160), Image.Resampling.LANCZOS))
    disp = torch.as_tensor(estimate_disparity_cues(rgb), dtype=torch.float32)
    edge = 0.05 * float(disp.max() - disp.min())
    img = (torch.from_numpy(rgb.copy()).float() / 255).permute(2, 0, 1).contiguous()
    snap = implementation("snap", backend, device)
    d = disp
    for _ in range(3):
        d = _check(snap, img.to(device), d.to(device), edge, condition.SNAP_RADIUS, _exact(backend, device))
    assert int(ref.jumps(disp, edge).sum()) > 100
    expected = condition.condition_disparity(torch.from_numpy(rgb.copy()), disp, edge, kernels="torch")
    got = condition.condition_disparity(torch.from_numpy(rgb.copy()).to(device), disp.to(device), edge,
                                        kernels=backend).cpu()
    if _exact(backend, device):
        assert torch.equal(got, expected)
    else:
        assert float((got != expected).float().mean()) < 0.01


@pytest.mark.parametrize("backend, device", backend_devices(("cpp", "cpu")))
def test_cpp_rejects_bad_inputs(backend, device):
    snap = implementation("snap", backend, device)
    rgb, disp = _inputs((5, 6), seed=2)
    with pytest.raises(ValueError, match="rgb must be"):
        snap.snap_to_color_edges(rgb[:, :4], disp, 0.05, 3)
    with pytest.raises(ValueError, match="disp must be"):
        snap.snap_to_color_edges(rgb, disp[None], 0.05, 3)
    with pytest.raises(ValueError, match="radius must be"):
        snap.snap_to_color_edges(rgb, disp, 0.05, -1)


@pytest.mark.parametrize("backend, device", backend_devices(("cpp", "cpu")))
def test_cpp_threads_do_not_change_results(backend, device):
    snap = implementation("snap", backend, device)
    rgb, disp = _inputs((97, 130), seed=12)
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = snap.snap_to_color_edges(rgb, disp, 0.05, 3)
        torch.set_num_threads(3)
        three = snap.snap_to_color_edges(rgb, disp, 0.05, 3)
    finally:
        torch.set_num_threads(n)
    assert torch.equal(one, three)


@pytest.mark.parametrize("backend, device", backend_devices(("cpp", "cpu")))
def test_cpp_takes_other_floats_as_float32(backend, device):
    """float64 inputs are taken as float32 (the op's dtype): the result is the reference's on
    the float32 inputs, float32."""
    snap = implementation("snap", backend, device)
    rgb, disp = _inputs((19, 23), seed=8)
    got = snap.snap_to_color_edges(rgb.double(), disp.double(), 0.05, 3)
    assert got.dtype == torch.float32
    assert torch.equal(got, ref.snap_to_color_edges(rgb, disp, 0.05, 3))
