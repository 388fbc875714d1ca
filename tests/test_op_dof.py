"""The op ``dof`` (thin-lens depth of field): ``depth_of_field`` and ``coc_radius``.

| reference | photo3d_fast/ops/dof.py |
| Triton    | kernels/dof.py (photo3d_fast.kernels.dof) |
| CUDA C++  | none |
| C++ CPU   | none: ``select("dof", "cpp", "cpu")`` runs the torch reference |
| selector  | photo3d_fast.ops.backends.select("dof", kernels, device) |

The reference against a thin lens ray-traced through ``photo3d_fast.synthetic``: the average of
LENS_SAMPLES pinhole views from points of the aperture disc, each with its principal point
shifted so that the focus plane stays put (exactly the blur the op's lens model states).
A textured wall behind, a sharp subject on the focus plane, a blurred foreground plate in
front, CoC 7.7 px for both. Measured: PSNR 44.2 dB against 400 lens samples (44.0 against
LENS_SAMPLES = 96), the pinhole view 22.9 dB. Focused on the wall instead (the plate blurred
over a sharp background): 40.2 dB, the pinhole view 28.6 dB.

Then the Triton kernel against the reference on random inputs (atol 1e-5: the same
float32 sums in the same order, reciprocals where the reference divides).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from photo3d_fast.ops import backends
from photo3d_fast.ops import dof as ref
from photo3d_fast.scene.camera import intrinsics_from_fov
from photo3d_fast.synthetic.primitives import Rect, Texture
from photo3d_fast.synthetic.raycast import Scene, camera_rays

from helpers import backend_devices, implementation

W, H = 96, 72
FOCUS = 2.0
APERTURE = 0.25  # pupil diameter, scene units
LENS_SAMPLES = 96
#: Measured 44.0 dB (see the module docstring), minus a margin for platform float noise.
MIN_PSNR = 42.0
SUBJECT = (0.35, 0.0, FOCUS, 0.25, 0.3)  # centre x, y, z, half sizes
FOREGROUND = (-0.55, 0.25, 1.2, 0.22, 0.35)
WALL = 6.0
#: Focused on the wall instead (``wall_lens``): measured 40.2 dB, the pinhole view 28.6 dB
#: (31.9 dB before the "hidden" term of ops.dof filled the blurred plate's own rim).
MIN_PSNR_WALL = 38.5

FAST = backend_devices(("triton", "cpu"), "cpp", ("torch", "cuda"), ("triton", "cuda"))


def _texture(base, k, phase=0.0) -> Texture:
    return Texture(base, (k, 0.3 * k, 0.0), (-0.4 * k, k, 0.1), (0.7 * k, 0.2, 0.5), (0.3, -0.2, 0.25), phase)


def _plate(spec, base, k) -> Rect:
    x, y, z, a, b = spec
    return Rect((x, y, z), (1, 0, 0), (0, -1, 0), (a, b), _texture(base, k))


SCENE = Scene([Rect((0, 0, WALL), (1, 0, 0), (0, -1, 0), (8, 8), _texture((0.2, 0.45, 0.8), 2.5)),
               _plate(SUBJECT, (0.95, 0.85, 0.3), 4.0), _plate(FOREGROUND, (0.9, 0.25, 0.2), 5.0)])
K = intrinsics_from_fov(W, H, 55.0)


def _view(c2w: np.ndarray, Kc: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, W, 3) float32 linear colour and (H, W) z-depth of one pinhole view."""
    o, d = camera_rays(c2w, Kc, (W, H))
    hits = SCENE.intersect(o, d)
    return SCENE.shade(hits).reshape(H, W, 3).float(), hits.t.reshape(H, W).float()


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10.0 * torch.log10(1.0 / ((a - b) ** 2).mean()))


def _thin_lens(focus: float, aperture: float):
    """(pinhole colour, z-depth, thin-lens reference, the op's output) for a lens of pupil
    diameter ``aperture`` (scene units) focused at z-depth ``focus``."""
    i = np.arange(LENS_SAMPLES) + 0.5  # a Fibonacci spiral: even over the disc
    r = 0.5 * aperture * np.sqrt(i / LENS_SAMPLES)
    theta = i * math.pi * (3.0 - math.sqrt(5.0))
    acc = torch.zeros(H, W, 3)
    for ax, ay in zip(r * np.cos(theta), r * np.sin(theta)):
        c2w = np.eye(4)
        c2w[0, 3], c2w[1, 3] = ax, ay
        Kc = K.copy()
        Kc[0, 2] += K[0, 0] * ax / focus  # keep the focus plane where the centre view has it
        Kc[1, 2] += K[1, 1] * ay / focus
        acc += _view(c2w, Kc)[0]
    img, z = _view(np.eye(4), K)
    out = ref.depth_of_field(img[None], z[None], focus, K[0, 0] * aperture, max_coc=16)[0]
    return img, z, acc / LENS_SAMPLES, out


@pytest.fixture(scope="module")
def lens():
    """Focused on the subject: the wall and the foreground plate blurred (CoC 7.7 px)."""
    return _thin_lens(FOCUS, APERTURE)


@pytest.fixture(scope="module")
def wall_lens():
    """Focused on the wall: the foreground plate blurred (CoC 7.4 px) over a sharp wall."""
    return _thin_lens(WALL, 0.12)


def _plate_box(spec) -> tuple[int, int, int, int]:
    """(x0, x1, y0, y1) pixels the plate covers in the centre view."""
    x, y, z, a, b = spec
    fx, cx, cy = K[0, 0], K[0, 2], K[1, 2]
    return (round(cx + fx * (x - a) / z), round(cx + fx * (x + a) / z),
            round(cy + fx * (y - b) / z), round(cy + fx * (y + b) / z))


# -- the reference ---------------------------------------------------------------------------

def test_matches_the_ray_traced_thin_lens(lens):
    img, _, truth, out = lens
    assert _psnr(out, truth) > MIN_PSNR
    assert _psnr(img, truth) < 26.0  # the blur is real: the sharp view is far from the lens's


def test_in_focus_subject_stays_sharp(lens):
    img, _, truth, out = lens
    x0, x1, y0, y1 = _plate_box(SUBJECT)
    inner = (slice(y0 + 1, y1 - 1), slice(x0 + 1, x1 - 1))
    assert (out[inner] - img[inner]).abs().max() < 1e-3
    assert (truth[inner] - img[inner]).abs().max() < 1e-3


def test_sharp_subject_does_not_bleed_into_blurred_background(lens):
    """The 3 px of wall around the sharp (yellow) subject: the lens shows blurred wall there,
    no yellow; a depth-blind blur of the same CoC smears the subject out (the halo)."""
    img, z, truth, out = lens
    x0, x1, y0, y1 = _plate_box(SUBJECT)
    band = torch.zeros(H, W, dtype=torch.bool)
    band[y0 - 3 : y1 + 3, x0 - 3 : x1 + 3] = True
    band[y0:y1, x0:x1] = False
    yellow = lambda c: (c[..., 0] + c[..., 1] - 2 * c[..., 2])[band]  # noqa: E731
    assert (yellow(out) - yellow(truth)).abs().mean() < 0.02
    blind = ref.depth_of_field(img[None], torch.full_like(z, 6.0)[None], FOCUS, K[0, 0] * APERTURE, max_coc=16)[0]
    assert (yellow(blind) - yellow(truth)).abs().mean() > 0.1


def test_blurred_foreground_spreads_over_the_background(lens):
    """Right of the (red) foreground plate's sharp edge the lens sees it half transparent
    over the wall; the op too."""
    img, _, truth, out = lens
    x0, x1, y0, y1 = _plate_box(FOREGROUND)
    beside = (slice(y0 + 6, y1 - 6), slice(x1, x1 + 2))
    spread = truth[beside][..., 0] - img[beside][..., 0]
    assert spread.mean() > 0.05  # the lens moves red onto the wall there
    err = (out[beside] - truth[beside]).abs().mean()
    assert err < 0.03 and err < 0.5 * (img[beside] - truth[beside]).abs().mean()


def test_blurred_foreground_over_a_sharp_background(wall_lens):
    """Focused on the wall: the plate's blur is half transparent on both sides of its edge,
    the wall stays sharp where the plate's disc does not reach."""
    img, _, truth, out = wall_lens
    assert _psnr(out, truth) > MIN_PSNR_WALL and _psnr(img, truth) < 30.0
    x0, x1, y0, y1 = _plate_box(FOREGROUND)
    rows = slice(y0 + 6, y1 - 6)
    for cols in (slice(x1 - 3, x1), slice(x1, x1 + 3)):  # inside and outside its right edge
        assert (out[rows, cols] - truth[rows, cols]).abs().mean() < 0.03
    far = (slice(4, H - 4), slice(x1 + 12, _plate_box(SUBJECT)[0] - 6))  # wall only
    assert (out[far] - img[far]).abs().max() < 1e-3


def test_coc_radius_is_the_thin_lens_formula():
    z = torch.tensor([[[1.0, 2.0, 4.0, 1e6]]])
    r = ref.coc_radius(z, 2.0, 20.0, max_coc=100.0)
    expected = [0.5 * 20.0 * abs(0.5 - 1.0 / v) for v in (1.0, 2.0, 4.0, 1e6)]
    torch.testing.assert_close(r[0, 0], torch.tensor(expected).clamp_min(ref.MIN_RADIUS))
    assert float(ref.coc_radius(z, 2.0, 20.0, max_coc=6.0).max()) == 3.0  # bounded


@pytest.mark.parametrize("bokeh", ref.BOKEH_SHAPES)
def test_flat_colour_and_zero_aperture_are_unchanged(bokeh):
    g = torch.Generator().manual_seed(1)
    z = 1.0 + 5.0 * torch.rand(2, 20, 30, generator=g)
    flat = torch.full((2, 20, 30, 3), 0.3)
    torch.testing.assert_close(ref.depth_of_field(flat, z, 2.0, 30.0, bokeh=bokeh), flat)
    c = torch.rand(2, 20, 30, 3, generator=g)
    torch.testing.assert_close(ref.depth_of_field(c, z, 2.0, 0.0, bokeh=bokeh), c)


def test_compacted_bands_equal_full_frame_bands(monkeypatch):
    """A mostly sharp frame with a few large discs: the bands past the first rings run only
    over the pixels they can reach; the result is the full-frame pass's."""
    g = torch.Generator().manual_seed(3)
    c = torch.rand(2, 40, 50, 3, generator=g)
    z = torch.full((2, 40, 50), 2.0)
    z[0, 5:9, 30:36] = 0.5  # a small blurred blob in front
    z[1, 20:30, 10:14] = 20.0  # a small blurred patch behind
    compacted = ref.depth_of_field(c, z, 2.0, 12.0, max_coc=16.0)
    monkeypatch.setattr(ref, "COMPACT_SHARE", -1.0)  # every band over the whole frame
    full = ref.depth_of_field(c, z, 2.0, 12.0, max_coc=16.0)
    torch.testing.assert_close(compacted, full, rtol=0, atol=2e-6)
    assert (compacted - c).abs().max() > 0.1  # there was something to blur


def test_hexagon_is_a_hexagon():
    inside = {(dy, dx) for dy, dx, _ in ref.offsets(6, "hexagon")}
    assert (0, 6) in inside and (6, 0) not in inside  # vertices left/right, flat top and bottom
    assert len(inside) < len(ref.offsets(6, "disc"))


def test_cpp_is_the_twin_or_the_reference():
    name, module = backends.select("dof", "cpp", "cpu")
    assert (name, module.__name__) in (("cpp", "photo3d_fast.ops.cpu"), ("torch", ref.__name__))
    assert (name == "cpp") == backends.status("cpp")[0]


@pytest.mark.skipif(not backends.status("cpp")[0], reason="the C++ CPU library is not built here")
def test_cpp_stops_where_no_disc_reaches():
    """The twin's per-tile bound must not change a pixel: a frame sharp but for one blurred
    corner (few pixels walk far) against the reference."""
    from photo3d_fast.ops import cpu

    g = torch.Generator().manual_seed(5)
    c = torch.rand(1, 40, 56, 3, generator=g)
    z = torch.full((1, 40, 56), 3.0)
    z[0, :9, :11] = 0.6  # near: blurred, with the focus at 3
    for bokeh in ref.BOKEH_SHAPES:
        want = ref.depth_of_field(c, z, 3.0, 15.0, max_coc=14.0, bokeh=bokeh)
        got = cpu.depth_of_field(c, z, 3.0, 15.0, max_coc=14.0, bokeh=bokeh)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
        assert (got[0, 25:, 30:] - c[0, 25:, 30:]).abs().max() < 1e-6  # far from the blur: the photo


# -- the fast implementations against the reference ----------------------------------------

@pytest.mark.parametrize("backend, device", FAST)
@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 13, 17), (1, 24, 20)])
@pytest.mark.parametrize("bokeh", ref.BOKEH_SHAPES)
def test_fast_matches_reference(backend, device, shape, bokeh):
    impl = implementation("dof", backend, device)
    g = torch.Generator().manual_seed(shape[1] * 31 + shape[2])
    c = torch.rand(*shape, 3, generator=g)
    z = 0.8 + 9.0 * torch.rand(*shape, generator=g)
    z[..., : shape[2] // 2] *= 0.3  # a near block: occlusion in both directions
    focus = torch.linspace(1.0, 4.0, shape[0])
    want = ref.depth_of_field(c, z, focus, 12.0, max_coc=7.0, bokeh=bokeh)
    got = impl.depth_of_field(c.to(device), z.to(device), focus.to(device), 12.0, max_coc=7.0, bokeh=bokeh)
    assert got.shape == want.shape and got.device.type == device
    torch.testing.assert_close(got.cpu(), want, rtol=0, atol=1e-5)
