"""The op ``grow`` (the LDI's back layers): ``discontinuities`` finds depth edges, and
``grow_back_layer`` grows a layer behind their near side: each pixel holds the nearest
seed behind it (jump flooding, ``nearest_seed_behind``) and keeps it where the layer
reaches it along the line from that seed (``reach``), with colors from the far side;
``scene.ldi.build_ldi`` stacks such layers.

| reference | photo3d_fast/ops/grow.py (discontinuities, seed_surfaces, nearest_seed_behind, reach, grow_back_layer) |
| Triton    | kernels/grow.py (photo3d_fast.kernels.grow: seeds, grow_back_layer) |
| CUDA C++  | none: ``--kernels cuda`` grows with the next backend (select's rule) |
| C++ CPU   | csrc/cpu/grow.cpp, through photo3d_fast/ops/cpu.py (seeds, grow_layer, grow_back_layer) |
| selector  | photo3d_fast.ops.backends.select("grow", kernels, device) |

First the reference: hand-checked cases of the semantics (band limit, background and a
surface continuing in front of the seed never grown into, a pole shielding what lies
beyond it, allowed, nested surfaces, no blended depths), jump flooding against a brute
force nearest seed; then the Triton kernels and the C++ CPU twin against it, parametrised
over (backend, device) (helpers.BACKEND_DEVICES; C++ also on larger frames, the cue depth of
the bundled photo, and every intermediate step: seeds, surfaces, jump flooding, reach).

Tolerances: seeds and band masks must be identical (comparisons of the same float32
disparities and integer distances and steps, candidates taken in the same order); band
depths and colors agree to 1e-5 relative (the same means, one division each). The C++
geometry is exact: seeds, surfaces, the held seeds, masks and depths equal the reference's
bit for bit; its colors come from the C++ fill (tests/test_op_fill.py: 1e-5).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from helpers import (
    DEPTH_KINDS,
    backend_devices,
    cases,
    depth_map,
    implementation,
    scene,
    spy_device_guard,
)

from photo3d_fast.ops import grow as ref
from photo3d_fast.scene.camera import disparity_to_depth, intrinsics_from_fov
from photo3d_fast.scene.ldi import DEFAULT_EDGE_SHARE, build_ldi


def nearest_behind_brute(depth: torch.Tensor, edge: float) -> torch.Tensor:
    """(H, W) float64 squared distance to the nearest seed behind each pixel (inf: none), by
    comparing every pixel with every seed: the definition ``nearest_seed_behind`` approximates."""
    disp = 1.0 / depth.float()
    _, seeds = ref.discontinuities(depth, edge)
    h, w = depth.shape
    sy, sx = torch.nonzero(seeds, as_tuple=True)
    if len(sy) == 0:
        return torch.full((h, w), math.inf, dtype=torch.float64)
    ys = torch.arange(h)[:, None, None]
    xs = torch.arange(w)[None, :, None]
    d2 = ((sy - ys) ** 2 + (sx - xs) ** 2).double()
    behind = disp[sy, sx] < (disp - edge)[..., None]
    return torch.where(behind, d2, math.inf).amin(-1)


def layer(depth, band, edge=0.05, allowed=None):
    """(depth, mask) of the reference's back layer of a gray photo."""
    h, w = depth.shape
    _, d, m = ref.grow_back_layer(torch.full((h, w, 3), 0.5), depth, band, edge, allowed)
    return d, m


# -- the reference ---------------------------------------------------------------------------

def test_discontinuities_threshold():
    # disparities 1.0, 0.95, 0.5: only the second step exceeds 0.1
    depth = torch.tensor([[1.0, 1.0 / 0.95, 2.0]])
    fg, bg = ref.discontinuities(depth, edge_disparity=0.1)
    assert fg.tolist() == [[False, True, False]]
    assert bg.tolist() == [[False, False, True]]


def test_slanted_floor_is_one_surface():
    """A plane is linear in disparity: however steep its depth ratio per row (near the
    horizon), it has no edge, while a small real step does."""
    h, w = 60, 8
    fy, cy = 50.0, 0.0
    v = np.arange(h)[:, None] + 0.5
    depth = torch.tensor(np.broadcast_to(fy / (v - cy), (h, w)).astype(np.float32))
    fg, _ = ref.discontinuities(depth, edge_disparity=0.05)
    assert not fg.any()
    depth[30:] *= 1.5
    fg, _ = ref.discontinuities(depth, edge_disparity=0.05)
    assert fg[29].all() and fg.sum() == w  # row 29 is the near side of the step


def test_jump_steps_grow_with_log_band():
    """Passes: powers of two whose sums reach band, then one more of 1; ~log2 of the band."""
    assert ref.jump_steps(0) == [] and ref.jump_steps(1) == [1, 1]
    assert ref.jump_steps(42) == [32, 16, 8, 4, 2, 1, 1]
    for band in (1, 2, 3, 7, 8, 9, 63, 64, 65, 300, 1000):
        steps = ref.jump_steps(band)
        assert sum(steps[:-1]) >= band > sum(steps[1:-1])
        assert len(steps) == math.ceil(math.log2(band + 1)) + 1
    assert len(ref.jump_steps(300)) == 10


def test_band_is_a_euclidean_disc_around_one_seed():
    """One far pixel in a near plane: the layer is every pixel within band (Euclidean,
    between pixel centers) of that seed, itself excluded, at the seed's depth."""
    h, w, band = 31, 37, 9
    depth = torch.full((h, w), 1.0)
    depth[15, 17] = 5.0
    d, m = layer(depth, band)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    d2 = (yy - 15) ** 2 + (xx - 17) ** 2
    assert torch.equal(m, (d2 <= band * band) & (d2 > 0))
    torch.testing.assert_close(d[m], torch.full_like(d[m], 5.0), rtol=1e-6, atol=0)
    assert (d[~m] == 0).all()


def test_back_layer_on_step_depth():
    """A near block on the right half in front of a far wall: the back layer exists
    exactly in a band of the block's pixels next to the edge, with the wall's depth and
    colors (drawn from the far side), and nowhere else."""
    h, w, band = 40, 64, 6
    depth = torch.full((h, w), 5.0)
    depth[:, 32:] = 1.0
    color = torch.empty(h, w, 3)
    color[:, :32] = torch.rand(h, 32, 3, generator=torch.Generator().manual_seed(1)) * 0.4  # dark wall
    color[:, 32:] = 0.98  # bright block
    c, d, m = ref.grow_back_layer(color, depth, band, 0.05)
    expected = torch.zeros(h, w, dtype=torch.bool)
    expected[:, 32 : 32 + band] = True
    assert torch.equal(m, expected)
    assert c[m].max() <= 0.4, "foreground color leaked into the back layer"
    torch.testing.assert_close(d[m], torch.full_like(d[m], 5.0), rtol=1e-6, atol=0)
    assert (d[~m] == 0).all() and (c[~m] == 0).all()


def test_never_grows_into_what_is_not_in_front():
    """A wall (6) with a block (2) and, further right, a slab (1.9) of nearly the block's
    depth: the band never enters the wall, nor the slab from the block's side (the block is
    not behind it by the edge threshold), though both lie within band."""
    h, w, band = 20, 60, 12
    depth = torch.full((h, w), 6.0)
    depth[:, 20:30] = 2.0
    depth[:, 30:40] = 1.0 / (0.5 + 0.01)  # 0.01 nearer in disparity than the block: no edge
    d, m = layer(depth, band)
    assert not m[:, :20].any() and not m[:, 40:].any()
    assert m[:, 20:40].all()  # the block and slab are in front of the wall on both sides
    torch.testing.assert_close(d[m], torch.full_like(d[m], 6.0), rtol=1e-6, atol=0)


def test_never_grows_along_a_surface_in_front_of_its_seed():
    """A floor sloping toward the camera (disparity up 0.004 a row, under the edge threshold
    0.01) with a box standing on it: the floor in front of the box's foot is nearer than
    the floor behind the box's top by far more than the threshold, and within band, yet it
    is the same floor: the layer is the box's pixels only."""
    h, w, band = 40, 50, 20
    disp = (0.1 + 0.004 * torch.arange(h, dtype=torch.float32))[:, None].expand(h, w).clone()
    disp[10:26, 20:30] = 0.5
    d, m = layer(1.0 / disp, band, edge=0.01)
    box = torch.zeros(h, w, dtype=torch.bool)
    box[10:26, 20:30] = True
    assert m.any() and not (m & ~box).any()
    assert m[10:26, 20:23].all() and m[10:13, 20:30].all()  # from the left side, from the top


def test_a_seed_of_one_edge_lies_in_the_band_of_another():
    """Pole (1) in front of a box (2) in front of a wall (6): the box pixels beside the pole
    are seeds of the pole's edge, yet within band of the box's own edge they show the wall;
    the pole shows the box (the nearest surface behind it), not a blend of box and wall,
    and shields the box beyond it from the wall's edge."""
    h, w, band = 16, 40, 8
    depth = torch.full((h, w), 6.0)
    depth[:, 10:30] = 2.0
    depth[:, 14:16] = 1.0
    d, m = layer(depth, band)
    _, seeds = ref.discontinuities(depth, 0.05)
    assert seeds[:, 13].all() and seeds[:, 16].all()
    assert m[:, 13].all() and (d[:, 13] == 6.0).all()  # box seed 3 px from the wall
    assert (d[:, 14:16] == 2.0).all()  # the pole: the box right behind it
    # right of the pole, the wall's edge at column 9 is within band of columns 16-17, but
    # the layer does not pass through the pole (which shows the box, not behind the box)
    assert not m[:, 16:22].any()
    values = set(d[m].unique().tolist())
    assert values == {2.0, 6.0}, f"depths that exist nowhere: {values - {2.0, 6.0}}"


def test_allowed_is_where_the_layer_may_grow():
    """The layer stays inside allowed, and does not grow through what is not allowed: a near
    block right of a far wall, with column 34 not allowed, has a layer in columns 32-33 only
    (the lines from the seeds in column 31 to the pixels beyond pass through 34)."""
    h, w, band = 12, 48, 8
    depth = torch.full((h, w), 5.0)
    depth[:, 32:] = 1.0
    everywhere = torch.ones(h, w, dtype=torch.bool)
    d_all, m_all = layer(depth, band)
    assert torch.equal(layer(depth, band, allowed=everywhere)[1], m_all)
    allowed = everywhere.clone()
    allowed[:, 34] = False
    d, m = layer(depth, band, allowed=allowed)
    expected = torch.zeros(h, w, dtype=torch.bool)
    expected[:, 32:34] = True
    assert torch.equal(m, expected) and m_all[:, 32:40].all()
    nested = depth_map((40, 30), "nested", seed=3)
    allowed = torch.rand(30, 40, generator=torch.Generator().manual_seed(3)) < 0.6
    _, m = layer(nested, 7, allowed=allowed)
    assert m.any() and not (m & ~allowed).any()


def test_surfaces_average_one_surface_only():
    """A seed's depth is the mean over the seeds of its surface in its 5x5 window: noise
    along an edge is smoothed, two surfaces are not mixed."""
    disp = torch.tensor([[0.20, 0.22, 0.21, 0.50, 0.51, 0.30]])
    seeds = torch.tensor([[True, True, True, True, True, False]])
    s = ref.seed_surfaces(disp, seeds, 0.05)
    torch.testing.assert_close(s[0, :5], torch.tensor([0.21, 0.21, 0.21, 0.505, 0.505]))
    assert s[0, 5] == math.inf


@pytest.mark.parametrize("kind, seed", [("box", 0), ("corner", 1), ("mixed", 2), ("nested", 3), ("nested", 4)])
def test_jump_flooding_finds_the_nearest_seed_behind(kind, seed):
    """On piecewise-smooth depth, JFA's seed is the exact nearest seed behind each pixel
    (brute force over all seeds), and the layer lies within band of it."""
    w, h, band = 64, 48, 12
    if kind == "nested":
        depth = depth_map((w, h), "nested", seed)
    else:
        depth = torch.tensor(scene((w, h), kind, seed)[1])
    depth = torch.where(depth >= 4.0, torch.full_like(depth, 5.0), depth)  # a smooth wall
    depth[5:20, 5:12] = 2.5  # and one more block
    _, seeds = ref.discontinuities(depth, 0.05)
    _, _, _, d2 = ref.nearest_seed_behind(1.0 / depth, seeds, band, 0.05)
    exact = nearest_behind_brute(depth, 0.05)
    near = exact <= band * band
    assert near.sum() > 200
    assert torch.equal(d2 <= band * band, near)
    assert (d2.double()[near] == exact[near]).float().mean() >= 0.995
    m = layer(depth, band)[1]
    assert m.sum() > 200 and not (m & ~near).any()


def test_jump_flooding_on_noisy_depth_is_close():
    """Where depth noise itself makes edges (a rough wall, each pixel log-uniform), JFA may
    miss the nearest seed: which pixels hold one within band still agrees with brute force
    almost everywhere, and never holds one that does not exist."""
    for kind, seed in (("mixed", 0), ("rough", 1), ("extreme", 2)):
        depth = torch.tensor(scene((64, 48), kind, seed)[1])
        band = 12
        near = nearest_behind_brute(depth, 0.05) <= band * band
        _, seeds = ref.discontinuities(depth, 0.05)
        _, _, _, d2 = ref.nearest_seed_behind(1.0 / depth, seeds, band, 0.05)
        held = d2 <= band * band
        assert (held != near).float().mean() < 0.03, kind
        assert not (held & ~near).any(), "JFA found a seed behind that does not exist within band"


def stacked_layers(impl, color, depth, band, layers, edge=0.05):
    """(depth (L-1, H, W), mask (L-1, H, W)) of the back layers as scene.ldi.build_ldi stacks
    them: each grown from the surface seen so far, only inside the previous one."""
    depths, masks, allowed = [], [], None
    surf_c, surf_z = color, depth
    for _ in range(1, layers):
        c, d, m = impl.grow_back_layer(surf_c, surf_z, band, edge, allowed)
        depths.append(d)
        masks.append(m)
        surf_c = torch.where(m[..., None], c, surf_c)
        surf_z = torch.where(m, d, surf_z)
        allowed = m
    return torch.stack(depths), torch.stack(masks)


def test_third_layer_is_nested():
    """Pole (z=1) in front of a box (z=2) in front of a wall (z=6): layer 1 lies behind the
    pole with the box's depth, layer 2 only inside layer 1, with the wall's depth where the
    box's edge is within band."""
    h, w = 32, 80
    depth = torch.full((h, w), 6.0)
    depth[:, 30:60] = 2.0
    depth[:, 36:40] = 1.0
    d, v = stacked_layers(ref, torch.full((h, w, 3), 0.5), depth, 8, 3)
    assert v[1].any()
    assert not (v[1] & ~v[0]).any()
    assert (d[0][v[0]] > 1.9).all()
    assert (d[0][:, 36:40] == 2.0).all()
    assert v[1][:, 36:38].all() and (d[1][:, 36:38] == 6.0).all()
    assert set(d[1][v[1]].unique().tolist()) == {6.0}


def test_band_beyond_the_image():
    """A band larger than the image (clamped to H + W) covers every pixel in front of a seed."""
    depth = torch.full((9, 14), 1.0)
    depth[0, 0] = 4.0
    _, m = layer(depth, 10**6)
    assert m.sum() == 9 * 14 - 1


# -- implementations against the reference ---------------------------------------------------

#: Sizes (W, H) of the comparisons: the interpreter is slow, C++ also takes larger frames.
SIZES = [(1, 1), (1, 9), (7, 1), (17, 33), (40, 24)]
CPP_SIZES = SIZES + [(160, 90), (333, 257)]


@pytest.mark.parametrize("backend, device, size, kind", cases({
    ("triton", "cpu"): [(s, k) for s in SIZES for k in DEPTH_KINDS],
    ("cpp", "cpu"): [(s, k) for s in CPP_SIZES for k in DEPTH_KINDS],
}))
def test_grow_back_layer_matches_reference(backend, device, size, kind):
    fast = implementation("grow", backend, device)
    w, h = size
    depth = depth_map((w, h), kind, seed=w + 31 * h)
    color = torch.rand(h, w, 3, generator=torch.Generator().manual_seed(h * w))
    edge = 0.05
    assert torch.equal(fast.seeds(depth, edge), ref.discontinuities(depth, edge)[1])
    allowed = None
    surf_c, surf_z = color, depth
    for _ in range(2):  # a back layer, then a nested one inside it
        a = fast.grow_back_layer(surf_c, surf_z, 6, edge, allowed)
        b = ref.grow_back_layer(surf_c, surf_z, 6, edge, allowed)
        assert torch.equal(a[2], b[2])
        torch.testing.assert_close(a[1], b[1], rtol=1e-5, atol=0)
        torch.testing.assert_close(a[0], b[0], rtol=1e-5, atol=1e-6)
        surf_c = torch.where(b[2][..., None], b[0], surf_c)
        surf_z = torch.where(b[2], b[1], surf_z)
        allowed = b[2]


@pytest.mark.parametrize("band", [1, 23, 10**6])
@pytest.mark.parametrize("backend, device, size", cases({
    ("triton", "cpu"): [((29, 21),)],
    ("cpp", "cpu"): [((29, 21),), ((300, 200),)],
}))
def test_random_scenes_and_allowed_match_reference(backend, device, size, band):
    """Random photos' depths (rough walls, blocks) with a random allowed mask, every band
    size from one pixel to beyond the image."""
    fast = implementation("grow", backend, device)
    w, h = size
    _, depth = scene((w, h), "mixed", seed=band % 97)
    depth = torch.tensor(depth)
    color = torch.rand(h, w, 3, generator=torch.Generator().manual_seed(band))
    allowed = torch.rand(h, w, generator=torch.Generator().manual_seed(band + 1)) < 0.7
    for mask in (None, allowed):
        a = fast.grow_back_layer(color, depth, band, 0.05, mask)
        b = ref.grow_back_layer(color, depth, band, 0.05, mask)
        assert torch.equal(a[2], b[2]) and b[2].any()
        torch.testing.assert_close(a[1], b[1], rtol=1e-5, atol=0)
        torch.testing.assert_close(a[0], b[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend, device", backend_devices(("triton", "cpu"), "cpp"))
def test_sloping_floor_matches_reference(backend, device):
    """A floor sloping toward the camera with boxes on it, where lines to the seeds end on
    the floor (the reach passes do the work)."""
    fast = implementation("grow", backend, device)
    h, w = 36, 44
    disp = (0.1 + 0.004 * torch.arange(h, dtype=torch.float32))[:, None].expand(h, w).clone()
    disp[8:24, 6:18] = 0.5
    disp[14:30, 26:40] = 0.3
    color = torch.rand(h, w, 3, generator=torch.Generator().manual_seed(2))
    a = fast.grow_back_layer(color, 1.0 / disp, 15, 0.01)
    b = ref.grow_back_layer(color, 1.0 / disp, 15, 0.01)
    assert torch.equal(a[2], b[2]) and b[2].any()
    torch.testing.assert_close(a[1], b[1], rtol=1e-5, atol=0)


@pytest.mark.parametrize("backend, device", backend_devices("triton", "cpp"))
def test_build_ldi_equals_reference(backend, device):
    """The whole LDI, three layers, built with the implementation and with the reference."""
    implementation("grow", backend, device)
    h, w = 30, 44
    depth = depth_map((w, h), "nested", seed=5).numpy()
    image = np.random.default_rng(6).integers(0, 256, (h, w, 3), dtype=np.uint8)
    K = intrinsics_from_fov(w, h, 55)
    a = build_ldi(image, depth, K, layers=3, band=5, edge_disparity=0.05, device=device, kernels=backend)
    b = build_ldi(image, depth, K, layers=3, band=5, edge_disparity=0.05, device=device, kernels="torch")
    assert torch.equal(a.valid, b.valid) and b.valid[1].any() and b.valid[2].any()
    torch.testing.assert_close(a.depth, b.depth, rtol=1e-5, atol=0)
    torch.testing.assert_close(a.color, b.color, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend, device", backend_devices("triton"))
def test_launches_under_the_input_device(backend, device, monkeypatch):
    """Triton launches on torch's current device: grow_back_layer must enter the depth map's
    device (kernels.on_device) around every launch, or `--device cuda:1` launches on cuda:0.
    The growth is one launch per jump step: a band of 300 takes 10, not 300."""
    fast = implementation("grow", backend, device)
    names = ["_seeds_kernel", "_surface_kernel", "_jump_kernel", "_reach_start_kernel", "_reach_kernel",
             "_layer_kernel"]
    spy = spy_device_guard(monkeypatch, fast, names)
    w, h = 12, 9
    depth = depth_map((w, h), "nested", seed=5).to(device)
    color = torch.rand(h, w, 3, generator=torch.Generator().manual_seed(5)).to(device)
    a = fast.grow_back_layer(color, depth, 3, 0.05)
    b = ref.grow_back_layer(color, depth, 3, 0.05)
    assert torch.equal(a[2], b[2]) and a[2].any()
    assert spy.launches >= 4 + len(ref.jump_steps(3)) + 1 and set(spy.devices) == {depth.device}
    jumps = []
    spied_jump = fast._jump_kernel
    monkeypatch.setattr(fast, "_jump_kernel", type("Count", (), {
        "__getitem__": lambda self, grid: (jumps.append(grid), spied_jump[grid])[1]})())
    big = torch.full((300, 2), 1.0, device=device)
    big[0, 0] = 5.0
    _, _, m = fast.grow_back_layer(torch.zeros(300, 2, 3, device=device), big, 300, 0.05)
    assert len(jumps) == len(ref.jump_steps(300)) == 10 and m.sum() == 599


# -- the C++ CPU twin, step by step ----------------------------------------------------------

CPP = backend_devices("cpp")


@functools.cache
def photo_depth(width: int = 480) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(color (H, W, 3) float32, z-depth (H, W) float32, edge disparity) of the bundled photo
    at ``width``: the cue estimator's depth (``--depth cues``) between 1 and 10, the edge
    threshold build_ldi takes by default (DEFAULT_EDGE_SHARE of the disparity range)."""
    from PIL import Image

    from photo3d_fast.depth.cues import estimate_disparity_cues
    from photo3d_fast.pipeline import SAMPLE_IMAGE

    img = Image.open(SAMPLE_IMAGE).convert("RGB")
    img = img.resize((width, round(img.height * width / img.width)), Image.Resampling.LANCZOS)
    rgb = np.asarray(img)
    depth = torch.from_numpy(disparity_to_depth(estimate_disparity_cues(rgb), 1.0, 10.0))
    span = float(1.0 / depth.min() - 1.0 / depth.max())
    return torch.from_numpy(rgb.astype(np.float32) / 255.0), depth, DEFAULT_EDGE_SHARE * span


def reach_cycles(depth: torch.Tensor, band: int, edge: float) -> int:
    """Pixels of the reference's reach whose line runs into a cycle (lines toward each pixel's
    own seed can, where jump flooding gave neighbours seeds on either side of each other)."""
    h, w = depth.shape
    disp = 1.0 / depth
    _, seeds = ref.discontinuities(depth, edge)
    by, bx, bd, bd2 = ref.nearest_seed_behind(disp, seeds, band, edge)
    held = (bd2 <= band * band).flatten()
    ys = torch.arange(h, dtype=torch.int32)[:, None].expand(h, w)
    xs = torch.arange(w, dtype=torch.int32)[None, :].expand(h, w)
    ty, tx = ref.toward(ys, xs, by, bx)
    root = ((ty == by) & (tx == bx)).flatten()
    up = torch.where(root | ~held, torch.arange(h * w), (ty.clamp(0, h - 1) * w + tx.clamp(0, w - 1)).flatten().long())
    end = up
    for _ in range(ref.reach_rounds(h, w) + 1):
        end = end[end]
    return int((up[end] != end).sum())


def step_cases() -> list:
    """(name, depth, band, edge, allowed) of the step-by-step comparisons."""
    g = torch.Generator().manual_seed(11)
    floor = (0.1 + 0.004 * torch.arange(60, dtype=torch.float32))[:, None].expand(60, 90).clone()
    floor[10:40, 20:45] = 0.5
    floor[25:55, 50:80] = 0.3
    _, photo, photo_edge = photo_depth()
    thin = depth_map((4300, 3), "extreme", seed=9)  # squared distances beyond 2^24: the int32 path
    return [
        ("nested", depth_map((211, 143), "nested", seed=1), 17, 0.05, None),
        ("nested-allowed", depth_map((211, 143), "nested", seed=2), 17, 0.05, torch.rand(143, 211, generator=g) < 0.8),
        ("mixed", torch.tensor(scene((160, 120), "mixed", 4)[1]), 30, 0.05, None),
        ("extreme", torch.tensor(scene((97, 61), "extreme", 5)[1]), 9, 0.05, None),
        ("rough-cycles", torch.tensor(scene((64, 48), "rough", 9)[1]), 12, 0.05, None),
        ("floor", 1.0 / floor, 25, 0.01, None),
        ("photo", photo, 14, photo_edge, None),
        ("photo-wide-band", photo, 10**6, photo_edge, None),
        ("thin-int32", thin, 40, 0.05, None),
        ("no-edge", torch.full((20, 30), 3.0), 8, float("inf"), None),
    ]


@pytest.mark.parametrize("backend, device", CPP)
def test_cpp_steps_equal_the_reference(backend, device):
    """Every step of the C++ growth equals the reference's exactly: seeds, seed surfaces, the
    seed each pixel holds after jump flooding (row, column, disparity, squared distance),
    then reach's mask and the layer's depth; on nested and noisy depths, a sloping floor,
    the bundled photo's cue depth, lines that run into cycles, an image whose squared
    distances leave float32's exact integers (int32 rows and columns), no edge at all."""
    cpu = implementation("grow", backend, device)
    assert cpu.grow_back_layer.__module__ == "photo3d_fast.ops.cpu"
    cycles = 0
    for name, depth, band, edge, allowed in step_cases():
        h, w = depth.shape
        got = cpu.grow_layer(depth, band, edge, allowed, details=True)
        disp = 1.0 / depth
        _, seeds = ref.discontinuities(depth, edge)
        assert torch.equal(got.seeds, seeds), name
        assert torch.equal(cpu.seeds(depth, edge), seeds), name
        assert torch.equal(got.surface, ref.seed_surfaces(disp, seeds, edge)), name
        expected = ref.nearest_seed_behind(disp, seeds, min(band, h + w), edge)
        for part, a, b in zip(("row", "column", "disparity", "d2"), got.nearest, expected):
            assert torch.equal(a, b), f"{name}: held seed {part}"
        _, d, m = ref.grow_back_layer(torch.zeros(h, w, 3), depth, band, edge, allowed)
        assert torch.equal(got.mask, m), name
        assert torch.equal(got.depth, d), name
        assert name == "no-edge" or m.any(), name
        if name == "rough-cycles":
            cycles = reach_cycles(depth, band, edge)
    assert cycles > 0, "the cycle case no longer has cycles: pick another seed"


@pytest.mark.parametrize("backend, device", CPP)
def test_cpp_on_the_bundled_photo(backend, device):
    """The cue depth of the bundled photo, two nested back layers as build_ldi grows them:
    masks and depths equal, colors to 1e-5; and build_ldi itself, conditioned depth included."""
    cpu = implementation("grow", backend, device)
    color, depth, edge = photo_depth()
    d, m = stacked_layers(cpu, color, depth, 14, 3, edge)
    d_ref, m_ref = stacked_layers(ref, color, depth, 14, 3, edge)
    assert torch.equal(m, m_ref) and m_ref[0].sum() > 1000 and m_ref[1].any()
    assert torch.equal(d, d_ref)
    c = cpu.grow_back_layer(color, depth, 14, edge)[0]
    c_ref = ref.grow_back_layer(color, depth, 14, edge)[0]
    torch.testing.assert_close(c, c_ref, rtol=0, atol=1e-5)
    h, w = depth.shape
    K = intrinsics_from_fov(w, h, 55)
    rgb = (color * 255).round().to(torch.uint8).numpy()
    a = build_ldi(rgb, depth.numpy(), K, layers=3, band=14, device="cpu", kernels="cpp")
    b = build_ldi(rgb, depth.numpy(), K, layers=3, band=14, device="cpu", kernels="torch")
    assert torch.equal(a.valid, b.valid) and b.valid[2].any()
    assert torch.equal(a.depth, b.depth)
    torch.testing.assert_close(a.color, b.color, rtol=0, atol=1e-5)


@pytest.mark.parametrize("backend, device", CPP)
def test_cpp_results_do_not_depend_on_threads(backend, device):
    """Each pixel is written by one thread from the previous phase's values: 1, 2 and 3
    threads give the same bits."""
    cpu = implementation("grow", backend, device)
    depth = depth_map((257, 190), "nested", seed=8)
    threads = torch.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            outs.append(cpu.grow_layer(depth, 20, 0.05, details=True))
    finally:
        torch.set_num_threads(threads)
    for out in outs[1:]:
        assert torch.equal(out.mask, outs[0].mask) and torch.equal(out.depth, outs[0].depth)
        assert all(torch.equal(a, b) for a, b in zip(out.nearest, outs[0].nearest))


@pytest.mark.parametrize("backend, device", CPP)
def test_cpp_rejects_what_it_cannot_grow(backend, device):
    cpu = implementation("grow", backend, device)
    depth = depth_map((12, 9), "nested", seed=1)
    with pytest.raises(ValueError, match="depth must be an"):
        cpu.grow_back_layer(torch.zeros(9, 12, 3), depth[None], 3, 0.05)
    with pytest.raises(ValueError, match="color must be an"):
        cpu.grow_back_layer(torch.zeros(9, 12), depth, 3, 0.05)
    with pytest.raises(ValueError, match="allowed must be an"):
        cpu.grow_back_layer(torch.zeros(9, 12, 3), depth, 3, 0.05, torch.ones(9, 11, dtype=torch.bool))
