"""What the op tests share: random scenes and LDIs, standard cameras, the (backend, device)
pairs an op runs on, and the tolerance of a splatting renderer.

Import it as the tests import conftest (pytest puts tests/ on the path)::

    from helpers import BACKEND_DEVICES, assert_close_with_boundary_band, scene_grid, views

Nothing here imports a kernel module: conftest must set TRITON_INTERPRET first, and the
fast implementations are loaded through ``photo3d_fast.ops.backends.select`` by the tests.
"""

from __future__ import annotations

import dataclasses

import importlib.util
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from photo3d_fast.config import BACKENDS
from photo3d_fast.ops import backends
from photo3d_fast.ops import splat as splat_ref
from photo3d_fast.scene.camera import intrinsics_from_fov, zoom_intrinsics
from photo3d_fast.scene.ldi import LDI, build_ldi
from photo3d_fast.scene.paths import CameraPath

from conftest import INTERPRETED

#: Field of view (degrees, across the longer side) of every test scene unless it says otherwise.
FOV = 55.0

# -- scenes ----------------------------------------------------------------------------------

#: Kinds of ``scene``'s depth map.
SCENE_KINDS = ("background", "foreground", "extreme", "rough", "box", "corner", "mixed")


def scene(size: tuple[int, int], kind: str = "mixed", seed: int = 0,
          wall: tuple[float, float] = (4.0, 6.0)) -> tuple[np.ndarray, np.ndarray]:
    """A random photo and its z-depth: (image (H, W, 3) uint8, depth (H, W) float32).

    size: (W, H). The image is uniform noise drawn first from ``default_rng(seed)``; then
    the depth, by kind:

    - "background": one far plane at 7, no edge at all;
    - "foreground": everything near (0.6 to 0.8), slanted across x;
    - "extreme": each pixel log-uniform in [1e-2, 1e4];
    - "rough": each pixel uniform in ``wall`` (a rough wall, no block);
    - "box": a rough wall with a block at 1.5 over rows H/4..3H/4, columns W/4..W/2;
    - "corner": a rough wall with a block at 0.9 from row H/3 and column 2W/3 to the corner;
    - "mixed": both blocks in front of the rough wall.
    """
    w, h = size
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if kind == "background":
        depth = np.full((h, w), 7.0, np.float32)
    elif kind == "foreground":
        depth = (0.6 + 0.2 * np.linspace(0, 1, w)[None, :] * np.ones((h, 1))).astype(np.float32)
    elif kind == "extreme":
        depth = np.exp(rng.uniform(np.log(1e-2), np.log(1e4), (h, w))).astype(np.float32)
    elif kind in ("rough", "box", "corner", "mixed"):
        depth = rng.uniform(*wall, (h, w)).astype(np.float32)
        if kind in ("box", "mixed"):
            depth[h // 4 : 3 * h // 4, w // 4 : w // 2] = 1.5
        if kind in ("corner", "mixed"):
            depth[h // 3 :, 2 * w // 3 :] = 0.9
    else:
        raise ValueError(f"unknown scene kind {kind!r}; one of {SCENE_KINDS}")
    return image, depth


def scene_ldi(size: tuple[int, int], kind: str = "mixed", seed: int = 0, fov: float = FOV,
              step_share: float | None = None, **ldi_options) -> tuple[LDI, np.ndarray]:
    """(LDI of ``scene(size, kind, seed)``, its K (3, 3) float64): "an LDI of a random depth
    scene of size WxH". ldi_options go to build_ldi (layers, band, device, kernels, ...);
    step_share: give the LDI steps (``LDI.step_disparity``) at this share of its edge
    threshold, as an exact map's has; the rough walls then hold steps of either sign."""
    w, h = size
    image, depth = scene(size, kind, seed)
    K = intrinsics_from_fov(w, h, fov)
    ldi = build_ldi(image, depth, K, **ldi_options)
    if step_share is not None:
        ldi = dataclasses.replace(ldi, step_disparity=step_share * ldi.edge_disparity)
    return ldi, K


def scene_grid(size: tuple[int, int], kind: str = "mixed", seed: int = 0,
               **ldi_options) -> tuple[splat_ref.SurfaceGrid, np.ndarray]:
    """(surface grid of ``scene_ldi``, K): what the splat implementations render."""
    ldi, K = scene_ldi(size, kind, seed, **ldi_options)
    return splat_ref.prepare(ldi), K


#: Kinds of ``depth_map``.
DEPTH_KINDS = ("flat", "extreme", "nested")


def depth_map(size: tuple[int, int], kind: str = "nested", seed: int = 0) -> torch.Tensor:
    """A random z-depth alone (no photo), (H, W) float32, drawn from ``default_rng(seed)``:

    - "flat": 3 everywhere;
    - "extreme": each pixel log-uniform in [1e-2, 1e4];
    - "nested": a rough wall (4 to 6), a box at 1.5 over rows H/4..3H/4, columns W/4..W/2
      (inclusive), and a pole at 0.7 in front of the box: back layers nest.
    """
    w, h = size
    rng = np.random.default_rng(seed)
    if kind == "flat":
        return torch.full((h, w), 3.0)
    if kind == "extreme":
        return torch.tensor(np.exp(rng.uniform(np.log(1e-2), np.log(1e4), (h, w))), dtype=torch.float32)
    if kind != "nested":
        raise ValueError(f"unknown depth kind {kind!r}; one of {DEPTH_KINDS}")
    d = torch.tensor(rng.uniform(4.0, 6.0, (h, w)), dtype=torch.float32)
    d[h // 4 : 3 * h // 4, w // 4 : w // 2 + 1] = 1.5
    d[h // 3 : h // 2 + 1, w // 3 : w // 3 + 2] = 0.7
    return d


# -- cameras ---------------------------------------------------------------------------------

def pose(tx: float = 0.0, ty: float = 0.0, tz: float = 0.0, yaw: float = 0.0) -> np.ndarray:
    """(4, 4) float64 camera-to-world: a translation and a yaw (degrees, about +y)."""
    a = np.radians(yaw)
    p = np.eye(4)
    p[:3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
    p[:3, 3] = [tx, ty, tz]
    return p


def pose_t(tx: float = 0.0, ty: float = 0.0, tz: float = 0.0, yaw: float = 0.0,
           device: torch.device | str = "cpu") -> torch.Tensor:
    """``pose`` as a (4, 4) float32 tensor on ``device``."""
    return torch.tensor(pose(tx, ty, tz, yaw), dtype=torch.float32, device=device)


#: The views (pose_t arguments) every splat implementation is compared with the reference
#: at: the photo's own camera, a lateral and vertical slide, a dolly in, a slide and yaw.
VIEWS = ({}, {"tx": 0.08, "ty": -0.03}, {"tz": 0.3}, {"tx": 0.05, "yaw": 5.0})
#: Five cameras of one batch, each with its own pose and zoom (VIEWS and a slide back).
BATCH_VIEWS = (*VIEWS, {"tx": -0.06, "ty": 0.02, "tz": -0.1})
BATCH_ZOOMS = (1.0, 1.0, 1.2, 1.1, 0.9)
#: Four cameras sliding and dollying, for batches of the CUDA twin.
SLIDE_VIEWS = ({}, {"tx": 0.05}, {"tx": -0.04, "tz": 0.2}, {"tx": 0.02, "tz": -0.1})
SLIDE_ZOOMS = (1.0, 1.1, 1.0, 0.9)


def views(device: torch.device | str = "cpu", which: Iterable[dict] = VIEWS) -> list[torch.Tensor]:
    """The poses of ``which`` (default VIEWS) as (4, 4) float32 tensors on ``device``."""
    return [pose_t(**v, device=device) for v in which]


def batch_cameras(size: tuple[int, int], K: np.ndarray, device: torch.device | str = "cpu",
                  which: Iterable[dict] = BATCH_VIEWS,
                  zooms: Iterable[float] = BATCH_ZOOMS) -> tuple[torch.Tensor, torch.Tensor]:
    """(c2ws (F, 4, 4), Ks (F, 3, 3)) float32 on ``device``: the poses ``which`` with K zoomed
    by ``zooms`` (default: the five cameras BATCH_VIEWS / BATCH_ZOOMS)."""
    c2ws = torch.stack(views(device, which))
    Ks = torch.tensor(np.stack([zoom_intrinsics(K, z, size) for z in zooms]), dtype=torch.float32, device=device)
    return c2ws, Ks


def camera_path(n: int = 5) -> CameraPath:
    """A path of n frames sliding right while turning (1 degree per frame) and zooming in to 1.15."""
    return CameraPath(np.stack([pose(0.02 * i, yaw=i) for i in range(n)]), np.linspace(1.0, 1.15, n))


# -- backends x devices ----------------------------------------------------------------------

TRITON_INSTALLED = importlib.util.find_spec("triton") is not None
ON_GPU = torch.cuda.is_available()


def implementation(op: str, backend: str, device: str):
    """The module ``select(op, backend, device)`` returns: the selector's entry for the pair,
    which must be the module ``IMPLEMENTATIONS`` names (the op's one name everywhere)."""
    name, module = backends.select(op, backend, device)
    assert name == backend and module.__name__ == backends.IMPLEMENTATIONS[op][backend]
    return module


#: What each backend is, in skip reasons.
_WHAT = {"torch": "the torch reference on CUDA tensors", "triton": "compiled Triton (TRITON_INTERPRET=0)",
         "cuda": "the CUDA C++ extension photo3d_fast._C", "cpp": "the C++ CPU kernels (photo3d_fast.ops.cpu)"}


def _why_not(backend: str, device: str) -> str | None:
    """Why (backend, device) cannot run in this test session, or None if it can. A GPU case
    that skips says "needs a CUDA GPU" or "photo3d_fast._C": bench/gpu_session.sh counts such
    a skip on a GPU machine as a failure."""
    if device == "cuda" and not ON_GPU:
        return f"{_WHAT[backend]} needs a CUDA GPU"
    if backend == "torch":
        return None
    if backend == "triton":
        if not TRITON_INSTALLED:
            return "Triton is not installed (pip install photo3d_fast[triton])"
        if device == "cpu" and not INTERPRETED:
            return "compiled Triton needs CUDA tensors: the triton-cuda cases run instead (TRITON_INTERPRET=0)"
        if device == "cuda" and INTERPRETED:
            return "needs a CUDA GPU and TRITON_INTERPRET=0 (compiled kernels)"
        usable, why = backends.status("triton")
        return None if usable else why
    if backend == "cpp":
        usable, why = backends.status("cpp")
        return None if usable else f"needs a C++ compiler: {why}"
    usable, why = backends.status(backend)
    return None if usable else f"needs a CUDA GPU and photo3d_fast._C: {why}"


def _pair(backend: str, device: str):
    why = _why_not(backend, device)
    return pytest.param(backend, device, id=f"{backend}-{device}",
                        marks=pytest.mark.skipif(why is not None, reason=why or ""))


#: (backend, device) of every implementation that can run somewhere, as pytest params with
#: a skip mark saying why where it cannot run here: the torch reference on the CPU always;
#: Triton on the CPU when installed and interpreted (TRITON_INTERPRET=1, conftest's
#: default); the C++ CPU kernels where a C++ compiler built them (at install or on first
#: use); the reference, compiled Triton (TRITON_INTERPRET=0) and the CUDA C++ extension
#: (photo3d_fast._C built) on a GPU.
BACKEND_DEVICES = [_pair("torch", "cpu"), _pair("triton", "cpu"), _pair("cpp", "cpu"),
                   _pair("torch", "cuda"), _pair("triton", "cuda"), _pair("cuda", "cuda")]
assert {p.values[0] for p in BACKEND_DEVICES} == set(BACKENDS)


def backend_devices(*pairs: str | tuple[str, str]) -> list:
    """The params of BACKEND_DEVICES selected by backend name ("triton") or by pair
    (("triton", "cpu")), in BACKEND_DEVICES order."""
    return [p for p in BACKEND_DEVICES if p.values[0] in pairs or tuple(p.values) in pairs]


def _case_id(value) -> str:
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}x{value[1]}"
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    return str(value)


def cases(table: dict[tuple[str, str], Iterable], ids: Callable[..., str] | None = None) -> list:
    """pytest params (backend, device, *case) for parametrize("backend, device, ...").

    table: (backend, device) -> its cases, each a tuple of values (a size alone is
    ``((33, 17),)``) or one non-tuple value. Pairs may be given different cases: the
    interpreter is slow, so the CPU gets small sizes where the GPU also runs 1080p. Each
    param carries its pair's skip mark; ids: case values -> id (default: the values joined
    by "-", sizes as WxH).
    """
    out = []
    for p in BACKEND_DEVICES:
        for case in table.get(tuple(p.values), ()):
            values = case if isinstance(case, tuple) else (case,)
            name = ids(*values) if ids else "-".join(_case_id(v) for v in values)
            out.append(pytest.param(*p.values, *values, id=f"{p.id}-{name}", marks=p.marks))
    return out


# -- tolerance -------------------------------------------------------------------------------

def assert_close_with_boundary_band(fast: torch.Tensor, ref: torch.Tensor, *, flipped: torch.Tensor,
                                    max_flip_share: float, min_flips: int = 0,
                                    where: torch.Tensor | None = None,
                                    rtol: float = 0.0, atol: float = 0.0, what: str = "pixels flipped") -> None:
    """``fast`` equals ``ref`` (to rtol, atol) except in a boundary band of bounded size.

    A splatting renderer and its twin agree texel by texel, but a footprint boundary that
    falls within float rounding of a pixel center may cover that pixel in one and not in the
    other, and so flip the pixel's z-buffer winner or its coverage (gsplat's tests allow the
    same band at Gaussians' edges). So:

    flipped: bool mask over the pixels (the leading dims of fast and ref), True where the
        two disagree on coverage or winner; at most max(min_flips, max_flip_share * pixels)
        may be True;
    where: the pixels whose values must agree (default: every pixel not flipped); a caller
        that knows more (same winner and both covered) passes its own mask.
    """
    allowed = max(min_flips, max_flip_share * flipped.numel())
    n = int(flipped.sum())
    assert n <= allowed, (f"{n} of {flipped.numel()} {what}: more than the boundary band allows "
                          f"({max_flip_share:.2%} of them, at least {min_flips})")
    keep = ~flipped if where is None else where
    torch.testing.assert_close(fast[keep], ref[keep], rtol=rtol, atol=atol)


# -- device guards ---------------------------------------------------------------------------

class GuardSpy:
    """What ``spy_device_guard`` saw: the device of every ``on_device`` entered, and the
    number of kernel launches, each of which ran inside one (asserted at the launch)."""

    def __init__(self) -> None:
        self.devices: list[torch.device] = []
        self.depth = 0
        self.launches = 0


def spy_device_guard(monkeypatch: pytest.MonkeyPatch, module, kernel_names: Iterable[str]) -> GuardSpy:
    """Replace ``photo3d_fast.kernels.on_device`` (every Triton launcher's device guard) by a
    recorder, and wrap the kernels ``kernel_names`` of the kernel module ``module`` so that a
    launch outside the guard fails. Kernels still run (under the interpreter on the CPU)."""
    import contextlib

    import photo3d_fast.kernels as kernels_pkg

    spy = GuardSpy()

    @contextlib.contextmanager
    def recorder(tensor: torch.Tensor):
        spy.devices.append(tensor.device)
        spy.depth += 1
        try:
            yield
        finally:
            spy.depth -= 1

    class Spied:
        def __init__(self, name: str, kernel) -> None:
            self.name, self.kernel = name, kernel

        def __getitem__(self, grid):
            launch = self.kernel[grid]

            def run(*args, **kwargs):
                assert spy.depth > 0, f"{self.name} launched outside photo3d_fast.kernels.on_device"
                spy.launches += 1
                return launch(*args, **kwargs)

            return run

    monkeypatch.setattr(kernels_pkg, "on_device", recorder)
    for name in kernel_names:
        monkeypatch.setattr(module, name, Spied(name, getattr(module, name)))
    return spy


def gradient_photo(path: Path, size: tuple[int, int] = (48, 32), seed: int = 0) -> Path:
    """A small photo file at ``path`` (folders made): colour gradients, noise, one flat
    "subject" block; (W, H) ``size``. For tests that need a real file, not its content."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), rng.integers(0, 255, (h, w))], -1).astype(np.uint8)
    rgb[h // 4: 3 * h // 4, w // 3: 2 * w // 3] = rng.integers(0, 255, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path
