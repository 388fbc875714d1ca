"""Exact ground truth: a ray caster of procedural scenes, independent of the renderer.

The quality benchmark (``bench/quality.py``) and the renderer's end-to-end tests need
views whose true colour and depth are known exactly, from any camera. This module casts
one ray per pixel (through the pixel centre, no anti-aliasing, so depth edges are exact)
into a scene of analytic primitives and returns colour, z-depth and object id. Torch,
float64, the whole image at once.

Conventions (ARCHITECTURE.md): OpenCV camera, x right, y down, z forward; pixel (i, j)
has its centre at (i + 0.5, j + 0.5); the world frame is the reference (photo) camera;
poses are camera-to-world 4x4 matrices; depth is z-depth along the camera's optical axis
in scene units.

Surface colour is a function of the 3D hit point only: a procedural texture (a soft
oblique checker plus a sinusoid, per-object colours) times Lambertian shading by a fixed
directional light with fixed (not viewer-facing) normals. Nothing depends on the camera,
so the true colour of a surface point in a novel view equals its colour in the reference
view, which is what an image-based renderer can at best reproduce.

Rays are written o + t * d with d = R K^-1 [x + 0.5, y + 0.5, 1]: the camera-frame
direction has z = 1, so the hit parameter t *is* the z-depth of the hit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .scene.camera import intrinsics_from_fov

#: Hits nearer than this ray parameter are ignored (self-intersection guard, scene units
#: for camera rays whose direction has z = 1).
T_MIN = 1e-9
#: Relative margin of the occlusion test: an occluder must be hit before
#: (1 - OCCLUSION_EPS) of the way from the reference camera to the point. float64 hits of
#: the point's own surface land within ~1e-13 of 1; real occluders in these scenes are
#: orders of magnitude further away.
OCCLUSION_EPS = 1e-6
#: Colour of rays that hit nothing (sRGB / 255); make_scene's back wall makes this rare.
BACKGROUND = (0.0, 0.0, 0.0)
#: Direction towards the fixed light (world frame, normalised below): up (-y), left and
#: towards the reference camera (-z), so the walls and the floor both get some light.
LIGHT_DIR = (-0.35, -0.75, -0.55)
#: Shade = AMBIENT + (1 - AMBIENT) * max(0, n . light).
AMBIENT = 0.45

_DT = torch.float64


def _t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, np.float64), dtype=_DT)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v)


# --------------------------------------------------------------------------- texture


@dataclass(frozen=True)
class Texture:
    """Procedural colour as a function of the world point p (scene units).

    colour(p) = base * (0.55 + 0.45 * checker(p)) + 0.12 * tint * sin(2 pi k3 . p + phase)

    checker(p) = 0.5 + 0.5 * tanh(3 sin(2 pi k1 . p) sin(2 pi k2 . p)): a soft checker along
    two oblique wave vectors k1, k2 (cycles per scene unit), so every surface orientation
    sees a pattern and edges inside a surface are a few pixels wide, not aliased steps.
    base, tint: (3,) sRGB in [0, 1].
    """

    base: tuple[float, float, float]
    k1: tuple[float, float, float]
    k2: tuple[float, float, float]
    k3: tuple[float, float, float]
    tint: tuple[float, float, float]
    phase: float = 0.0

    def __call__(self, p: torch.Tensor) -> torch.Tensor:
        """p: (N, 3) float64 world points -> (N, 3) float64 colour in [0, 1] (unshaded)."""
        two_pi = 2.0 * math.pi
        a = torch.sin(two_pi * (p @ _t(self.k1)))
        b = torch.sin(two_pi * (p @ _t(self.k2)))
        checker = 0.5 + 0.5 * torch.tanh(3.0 * a * b)
        wave = torch.sin(two_pi * (p @ _t(self.k3)) + self.phase)
        c = _t(self.base) * (0.55 + 0.45 * checker[:, None]) + 0.12 * _t(self.tint) * wave[:, None]
        return c.clamp(0.0, 1.0)


def random_texture(rng: np.random.Generator, period: tuple[float, float] = (0.25, 0.7)) -> Texture:
    """A texture with a random saturated colour and random oblique wave vectors."""
    hue = rng.uniform(0.0, 1.0)
    base = _hsv_to_rgb(hue, rng.uniform(0.35, 0.8), rng.uniform(0.65, 1.0))
    tint = _hsv_to_rgb((hue + 0.5) % 1.0, 0.8, 1.0)

    def wave() -> tuple[float, float, float]:
        return tuple(_unit(rng.normal(size=3)) / rng.uniform(*period))

    return Texture(base, wave(), wave(), wave(), tint, float(rng.uniform(0, 2 * math.pi)))


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6.0) % 6
    f = h * 6.0 - math.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


# ------------------------------------------------------------------------ primitives
#
# Each primitive's ``intersect(o, d)`` takes ray origins o (3,) or (N, 3) and directions
# d (N, 3), float64 world frame, and returns t (N,) float64 (inf where the ray misses or
# the hit is behind T_MIN) and the outward unit normal n (N, 3) at the hit (anything
# where t is inf). Normals are fixed by the surface, never flipped towards the viewer.


@dataclass(frozen=True)
class Plane:
    """The infinite plane {p : normal . p = offset}; normal (3,) unit, the lit side."""

    normal: tuple[float, float, float]
    offset: float
    texture: Texture

    def intersect(self, o: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = _t(self.normal)
        denom = d @ n
        t = (self.offset - o @ n) / torch.where(denom == 0, 1e-300, denom)
        t = torch.where((denom != 0) & (t > T_MIN), t, math.inf)
        return t, n.expand(len(d), 3)


@dataclass(frozen=True)
class Rect:
    """A rectangle: centre (3,), unit orthogonal axes u, v (3,) with half sizes (a, b).

    Its normal is u x v; with u = +x and v = +y that is +z, so a plate facing the
    reference camera uses u = +x, v = -y (normal -z).
    """

    center: tuple[float, float, float]
    u: tuple[float, float, float]
    v: tuple[float, float, float]
    half: tuple[float, float]
    texture: Texture

    def intersect(self, o: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c, u, v = _t(self.center), _t(self.u), _t(self.v)
        n = torch.linalg.cross(u, v)
        denom = d @ n
        t = ((c - o) @ n) / torch.where(denom == 0, 1e-300, denom)
        q = o + t[:, None] * d - c
        inside = ((q @ u).abs() <= self.half[0]) & ((q @ v).abs() <= self.half[1])
        t = torch.where((denom != 0) & (t > T_MIN) & inside, t, math.inf)
        return t, n.expand(len(d), 3)


@dataclass(frozen=True)
class Sphere:
    """Centre (3,) and radius, scene units."""

    center: tuple[float, float, float]
    radius: float
    texture: Texture

    def intersect(self, o: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = _t(self.center)
        oc = o - c
        a = (d * d).sum(-1)
        half_b = (oc * d).sum(-1)
        cc = (oc * oc).sum(-1) - self.radius**2
        disc = half_b * half_b - a * cc
        root = torch.sqrt(disc.clamp_min(0.0))
        # The numerically stable pair of roots: q / a and cc / q with q = -(half_b + sign * root).
        q = -(half_b + torch.where(half_b >= 0, root, -root))
        q = torch.where(q == 0, 1e-300, q)
        r1, r2 = q / a, cc / q
        near, far = torch.minimum(r1, r2), torch.maximum(r1, r2)
        t = torch.where(near > T_MIN, near, far)
        t = torch.where((disc >= 0) & (t > T_MIN), t, math.inf)
        p = o + torch.where(torch.isfinite(t), t, 0.0)[:, None] * d
        return t, (p - c) / self.radius


@dataclass(frozen=True)
class Box:
    """An oriented box: centre (3,), half sizes (3,) along its axes, and a rotation of
    ``yaw`` radians about the world y axis (vertical boxes, as furniture stands)."""

    center: tuple[float, float, float]
    half: tuple[float, float, float]
    yaw: float
    texture: Texture

    def _rotation(self) -> torch.Tensor:
        cy, sy = math.cos(self.yaw), math.sin(self.yaw)
        return _t([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])  # columns: box axes

    def intersect(self, o: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        R = self._rotation()
        h = _t(self.half)
        ol = (o - _t(self.center)) @ R  # R^T (o - c), row vectors
        dl = d @ R
        dl = torch.where(dl == 0, 1e-300, dl)
        t1, t2 = (-h - ol) / dl, (h - ol) / dl
        lo, hi = torch.minimum(t1, t2), torch.maximum(t1, t2)
        t_in, axis = lo.max(-1)
        t_out = hi.min(-1).values
        t = torch.where(t_in > T_MIN, t_in, t_out)
        t = torch.where((t_in <= t_out) & (t > T_MIN), t, math.inf)
        # The entry face's normal faces against the ray (outward); an exit from inside uses
        # the exit face, whose outward normal points along the ray.
        exit_axis = hi.argmin(-1)
        use_exit = t_in <= T_MIN
        ax = torch.where(use_exit, exit_axis, axis)
        sign_in = -torch.sign(dl.gather(1, axis[:, None]))[:, 0]
        sign_out = torch.sign(dl.gather(1, exit_axis[:, None]))[:, 0]
        sign = torch.where(use_exit, sign_out, sign_in)
        nl = F.one_hot(ax, 3).to(_DT) * sign[:, None]
        return t, nl @ R.T


@dataclass(frozen=True)
class Cylinder:
    """A capped vertical cylinder (axis along world y): axis at (x, z), from y0 to y1
    (y0 < y1; y grows downwards, so y0 is the top), radius r. Thin ones are poles."""

    x: float
    z: float
    y0: float
    y1: float
    radius: float
    texture: Texture

    def intersect(self, o: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        o = o.expand(len(d), 3)
        ox, oz = o[:, 0] - self.x, o[:, 2] - self.z
        dx, dz = d[:, 0], d[:, 2]
        a = dx * dx + dz * dz
        half_b = ox * dx + oz * dz
        cc = ox * ox + oz * oz - self.radius**2
        disc = half_b * half_b - a * cc
        root = torch.sqrt(disc.clamp_min(0.0))
        q = -(half_b + torch.where(half_b >= 0, root, -root))
        q = torch.where(q == 0, 1e-300, q)
        a_safe = torch.where(a == 0, 1e-300, a)
        r1, r2 = q / a_safe, cc / q
        ok = (disc >= 0) & (a > 0)
        cands, normals = [], []
        for r in (torch.minimum(r1, r2), torch.maximum(r1, r2)):
            y = o[:, 1] + r * d[:, 1]
            good = ok & (r > T_MIN) & (y >= self.y0) & (y <= self.y1)
            cands.append(torch.where(good, r, math.inf))
            nx = (ox + r * dx) / self.radius
            nz = (oz + r * dz) / self.radius
            normals.append(torch.stack([nx, torch.zeros_like(nx), nz], -1))
        dy = torch.where(d[:, 1] == 0, 1e-300, d[:, 1])
        for y_cap, ny in ((self.y0, -1.0), (self.y1, 1.0)):
            r = (y_cap - o[:, 1]) / dy
            px, pz = ox + r * dx, oz + r * dz
            good = (d[:, 1] != 0) & (r > T_MIN) & (px * px + pz * pz <= self.radius**2)
            cands.append(torch.where(good, r, math.inf))
            normals.append(_t([0.0, ny, 0.0]).expand(len(d), 3))
        t_all = torch.stack(cands, -1)
        t, which = t_all.min(-1)
        n = torch.stack(normals, 1)[torch.arange(len(d)), which]
        return t, n


Primitive = Plane | Rect | Sphere | Box | Cylinder


# ---------------------------------------------------------------------------- scene


@dataclass
class Hits:
    """Per-ray result of a cast, for N rays (N = H*W for an image, row-major).

    t: (N,) float64 ray parameter (z-depth for camera rays), inf where nothing was hit;
    point: (N, 3) float64 world hit points (undefined where t is inf);
    normal: (N, 3) float64 outward unit normals; object_id: (N,) int64, -1 where missed.
    """

    t: torch.Tensor
    point: torch.Tensor
    normal: torch.Tensor
    object_id: torch.Tensor


@dataclass
class Scene:
    """A list of primitives; primitive i has object id i. ``kind``/``seed`` say where it
    came from (make_scene), for reports."""

    primitives: list[Primitive]
    kind: str = "custom"
    seed: int | None = None
    light: tuple[float, float, float] = field(default_factory=lambda: tuple(_unit(LIGHT_DIR)))

    # -- casting -------------------------------------------------------------------

    def intersect(self, o: torch.Tensor, d: torch.Tensor) -> Hits:
        """Nearest hit of each ray: o (3,) or (N, 3), d (N, 3), float64 world frame."""
        o = torch.as_tensor(o, dtype=_DT)
        d = torch.as_tensor(d, dtype=_DT)
        n_rays = len(d)
        best_t = torch.full((n_rays,), math.inf, dtype=_DT)
        best_n = torch.zeros(n_rays, 3, dtype=_DT)
        best_id = torch.full((n_rays,), -1, dtype=torch.int64)
        for i, prim in enumerate(self.primitives):
            t, n = prim.intersect(o, d)
            closer = t < best_t
            best_t = torch.where(closer, t, best_t)
            best_n = torch.where(closer[:, None], n, best_n)
            best_id = torch.where(closer, i, best_id)
        hit = torch.isfinite(best_t)
        point = o + torch.where(hit, best_t, 0.0)[:, None] * d
        return Hits(best_t, point, best_n, best_id)

    def shade(self, hits: Hits) -> torch.Tensor:
        """(N, 3) float64 colour in [0, 1] of each hit: texture(point) times Lambert."""
        colour = torch.tensor(BACKGROUND, dtype=_DT).repeat(len(hits.t), 1)
        light = _t(self.light)
        for i, prim in enumerate(self.primitives):
            sel = hits.object_id == i
            if not bool(sel.any()):
                continue
            lam = (hits.normal[sel] @ light).clamp_min(0.0)
            colour[sel] = prim.texture(hits.point[sel]) * (AMBIENT + (1.0 - AMBIENT) * lam[:, None])
        return colour

    def cast(self, c2w: np.ndarray, K: np.ndarray, size: tuple[int, int]) -> Hits:
        """Hits of the (W, H) = size image of camera (c2w (4, 4) camera-to-world, K (3, 3)):
        one ray through each pixel centre, N = H*W, row-major."""
        origin, dirs = camera_rays(c2w, K, size)
        return self.intersect(origin, dirs)

    def render(self, c2w: np.ndarray, K: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The exact view of camera c2w (4, 4) camera-to-world, K (3, 3), size (W, H).

        Returns rgb (H, W, 3) uint8 sRGB; depth (H, W) float32 z-depth along this camera's
        optical axis, scene units (inf where a ray hits nothing); object_id (H, W) int32,
        index into ``primitives``, -1 where nothing was hit. One ray per pixel centre, no
        anti-aliasing.
        """
        return self.images(self.cast(c2w, K, size), size)

    def images(self, hits: Hits, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``render``'s (rgb, depth, object_id) images of the hits of a cast of a (W, H) view."""
        w, h = size
        rgb = (self.shade(hits) * 255.0).round().clamp(0, 255).to(torch.uint8)
        return (
            rgb.reshape(h, w, 3).numpy(),
            hits.t.to(torch.float32).reshape(h, w).numpy(),
            hits.object_id.to(torch.int32).reshape(h, w).numpy(),
        )


def camera_rays(c2w: np.ndarray, K: np.ndarray, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Origin (3,) and directions (H*W, 3), float64 world frame, of a pinhole camera.

    Direction of pixel (x, y) = R K^-1 [x + 0.5, y + 0.5, 1]: its camera-frame z is 1, so
    the ray parameter of a hit is its z-depth.
    """
    w, h = size
    c2w = np.asarray(c2w, np.float64)
    K = np.asarray(K, np.float64)
    if c2w.shape != (4, 4) or K.shape != (3, 3):
        raise ValueError(f"c2w must be (4, 4) and K (3, 3), got {c2w.shape} and {K.shape}")
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=_DT) + 0.5, torch.arange(w, dtype=_DT) + 0.5, indexing="ij"
    )
    pix = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(-1, 3)
    cam = pix @ _t(np.linalg.inv(K)).T
    cam = cam / cam[:, 2:3]  # exact z = 1 even for a K with skew or rounding in the inverse
    return _t(c2w[:3, 3]), cam @ _t(c2w[:3, :3]).T


# ---------------------------------------------------------------- visibility masks


@dataclass
class Visibility:
    """Where a novel view's true surface points stand with respect to the reference camera.

    All (H, W) bool over the novel view's pixels: ``occluded`` - the point is hidden from
    the reference camera by other geometry (or by the back of its own object);
    ``outside`` - it projects outside the reference image or behind the reference camera;
    ``missed`` - the novel ray hit nothing (neither of the others is set there).
    ``disoccluded`` = occluded | outside.
    """

    occluded: np.ndarray
    outside: np.ndarray
    missed: np.ndarray

    @property
    def disoccluded(self) -> np.ndarray:
        return self.occluded | self.outside


def visibility(
    scene: Scene,
    c2w: np.ndarray,
    K: np.ndarray,
    size: tuple[int, int],
    ref_K: np.ndarray | None = None,
    ref_size: tuple[int, int] | None = None,
    hits: Hits | None = None,
) -> Visibility:
    """Visibility from the reference camera (identity pose, ``ref_K``/``ref_size``, default
    K/size) of each pixel's true surface point in the view (c2w, K, size).

    A shadow ray goes from the reference camera centre (the world origin) to the point P:
    o = 0, d = P, so P sits at t = 1; the point is occluded when anything is hit at
    t < 1 - OCCLUSION_EPS. ``hits``: this view's cast, if already computed.
    """
    w, h = size
    ref_K = np.asarray(K if ref_K is None else ref_K, np.float64)
    rw, rh = size if ref_size is None else ref_size
    hits = scene.cast(c2w, K, size) if hits is None else hits
    missed = ~torch.isfinite(hits.t)
    p = torch.where(missed[:, None], 1.0, hits.point)
    z = p[:, 2]
    zs = torch.where(z > 0, z, 1.0)
    u = ref_K[0, 0] * p[:, 0] / zs + ref_K[0, 1] * p[:, 1] / zs + ref_K[0, 2]
    v = ref_K[1, 1] * p[:, 1] / zs + ref_K[1, 2]
    outside = (z <= 0) | (u < 0) | (u >= rw) | (v < 0) | (v >= rh)
    shadow = scene.intersect(torch.zeros(3, dtype=_DT), p)
    occluded = shadow.t < 1.0 - OCCLUSION_EPS
    outside &= ~missed
    occluded &= ~missed & ~outside
    shape = (h, w)
    return Visibility(occluded.reshape(shape).numpy(), outside.reshape(shape).numpy(), missed.reshape(shape).numpy())


def disoccluded(
    scene: Scene,
    c2w: np.ndarray,
    K: np.ndarray,
    size: tuple[int, int],
    ref_K: np.ndarray | None = None,
    ref_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """(H, W) bool: pixels of the view (c2w (4, 4), K (3, 3), size (W, H)) whose true
    surface point the reference camera (identity pose, ref_K/ref_size, default K/size)
    does not see - hidden behind geometry or outside its image. See ``visibility`` for the
    two causes separately, and ``near_depth_edges`` for the edge mask."""
    return visibility(scene, c2w, K, size, ref_K, ref_size).disoccluded


def depth_edges(depth: np.ndarray, tau: float = 0.03) -> np.ndarray:
    """(H, W) bool: pixels with a 4-neighbour whose z-depth differs by more than the ratio
    1 + tau (both sides of the edge are marked). depth: (H, W) z-depth; inf (missed rays)
    counts as a far surface."""
    z = torch.as_tensor(np.asarray(depth, np.float64))
    edge = torch.zeros_like(z, dtype=torch.bool)
    for dim in (0, 1):
        a = z.narrow(dim, 0, z.shape[dim] - 1)
        b = z.narrow(dim, 1, z.shape[dim] - 1)
        jump = (a > b * (1 + tau)) | (b > a * (1 + tau))
        edge.narrow(dim, 0, z.shape[dim] - 1).logical_or_(jump)
        edge.narrow(dim, 1, z.shape[dim] - 1).logical_or_(jump)
    return edge.numpy()


def near_depth_edges(depth: np.ndarray, radius: int = 3, tau: float = 0.03) -> np.ndarray:
    """(H, W) bool: pixels within ``radius`` pixels (Chebyshev distance) of a depth
    discontinuity of the (H, W) z-depth map (see ``depth_edges``)."""
    edge = torch.from_numpy(depth_edges(depth, tau)).to(torch.float32)[None, None]
    grown = F.max_pool2d(edge, 2 * radius + 1, stride=1, padding=radius)
    return grown[0, 0].numpy() > 0


# ---------------------------------------------------------------- scene generation

KINDS = ("planes", "spheres", "floor", "thin", "mixed")
#: Field of view and aspect make_scene places objects for (ARCHITECTURE's default camera).
SCENE_FOV_DEG = 55.0
SCENE_ASPECT = 4.0 / 3.0


def reference_camera(size: tuple[int, int], fov_deg: float = SCENE_FOV_DEG) -> np.ndarray:
    """K (3, 3) of the reference camera make_scene frames its scenes for, at (W, H) = size."""
    return intrinsics_from_fov(size[0], size[1], fov_deg)


def make_scene(seed: int, kind: str = "mixed") -> Scene:
    """A random but valid scene for the reference camera (identity pose, 55 deg across the
    longer side of a 4:3 image).

    Every scene has a fronto-parallel back wall at z in [6.5, 8] (so every forward ray hits
    something); objects lie at depths in about [1.5, 6] and within the reference view.
    kind: "planes" (rectangular plates at several depths, some turned), "spheres",
    "floor" (a slanted floor with boxes standing on it), "thin" (a floor with thin
    vertical poles: structures a few pixels wide), "mixed" (some of everything).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown scene kind {kind!r}; choose one of {', '.join(KINDS)}")
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    tan_x = math.tan(math.radians(SCENE_FOV_DEG) / 2)
    tan_y = tan_x / SCENE_ASPECT
    prims: list[Primitive] = []
    z_wall = float(rng.uniform(6.5, 8.0))
    prims.append(Plane((0.0, 0.0, -1.0), -z_wall, random_texture(rng, (0.3, 0.9))))

    def spot(z: float, margin: float = 0.75) -> tuple[float, float]:
        """A random (x, y) at depth z inside ``margin`` of the reference view."""
        return float(rng.uniform(-margin, margin) * tan_x * z), float(rng.uniform(-margin, margin) * tan_y * z)

    floor = None
    if kind in ("floor", "thin", "mixed"):
        # Camera 0.9-1.4 above the floor, floor tilted a few degrees (rising or falling
        # away, and rolling), normal pointing up (-y).
        height = float(rng.uniform(0.9, 1.4))
        pitch, roll = np.radians(rng.uniform(-6, 6)), np.radians(rng.uniform(-5, 5))
        normal = _unit([math.sin(roll), -math.cos(roll) * math.cos(pitch), math.sin(pitch)])
        floor = (normal, float(normal @ np.array([0.0, height, 0.0])))
        prims.append(Plane(tuple(normal), floor[1], random_texture(rng, (0.3, 0.8))))

    def floor_y(x: float, z: float) -> float:
        n, c = floor
        return float((c - n[0] * x - n[2] * z) / n[1])

    def n_of(lo: int, hi: int) -> int:
        return int(rng.integers(lo, hi + 1))

    if kind in ("planes", "mixed"):
        for _ in range(n_of(3, 5) if kind == "planes" else 2):
            z = float(rng.uniform(1.8, 5.5))
            x, y = spot(z)
            half = (float(rng.uniform(0.12, 0.3) * z * tan_x), float(rng.uniform(0.12, 0.3) * z * tan_y))
            # Half the plates are turned about y, never so far that an end comes nearer
            # than 1.5 or reaches the wall.
            room = min(z - 1.5, z_wall - 0.2 - z)
            max_yaw = math.asin(min(1.0, room / half[0]))
            yaw = float(rng.uniform(-1, 1) * min(0.6, max_yaw)) if rng.random() < 0.5 else 0.0
            u = (math.cos(yaw), 0.0, math.sin(yaw))
            prims.append(Rect((x, y, z), u, (0.0, -1.0, 0.0), half, random_texture(rng)))
    if kind in ("spheres", "mixed"):
        for _ in range(n_of(3, 5) if kind == "spheres" else 2):
            r = float(rng.uniform(0.25, 0.8))
            z = float(rng.uniform(1.5 + r, min(5.5, z_wall - 0.3 - r)))
            x, y = spot(z, 0.7)
            prims.append(Sphere((x, y, z), r, random_texture(rng)))
    if kind in ("floor", "mixed"):
        for _ in range(n_of(2, 4) if kind == "floor" else 1):
            hx, hy, hz = rng.uniform(0.2, 0.5), rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.5)
            z = float(rng.uniform(2.2, min(5.5, z_wall - 1.0)))
            x, _ = spot(z, 0.6)
            y = floor_y(x, z) - hy  # standing on the floor (y grows downwards)
            prims.append(Box((x, y, z), (hx, hy, hz), float(rng.uniform(-0.7, 0.7)), random_texture(rng)))
    if kind in ("thin", "mixed"):
        for _ in range(n_of(3, 6) if kind == "thin" else 2):
            z = float(rng.uniform(1.8, 5.5))
            x, _ = spot(z, 0.8)
            # 0.01-0.04 units: 1.5-6 px wide at 320 px and z = 2.5, so the thinnest
            # structures are one or two pixels wide in the smaller benchmark images.
            r = float(rng.uniform(0.01, 0.04) * z / 2.5)
            top = float(rng.uniform(-0.5, 0.2) * z * tan_y) if rng.random() < 0.5 else -10.0 * z
            prims.append(Cylinder(x, z, top, floor_y(x, z) + 0.05, r, random_texture(rng)))
    return Scene(prims, kind=kind, seed=seed)
