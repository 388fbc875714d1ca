"""Procedural textures and the analytic primitives of the synthetic scenes, with their ray
intersections (float64 torch, world frame; see the package docstring for conventions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

#: Hits nearer than this ray parameter are ignored (self-intersection guard, scene units
#: for camera rays whose direction has z = 1).
T_MIN = 1e-9

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
