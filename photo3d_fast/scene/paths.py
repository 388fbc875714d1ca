"""Camera paths: presets and keyframe files, as camera-to-world matrices.

Conventions (docs/architecture.md): OpenCV camera (x right, y down, z forward); the world frame
is the photo's camera; each pose is a camera-to-world 4x4 matrix. Every preset starts at
the identity, so frame 0 shows the photo itself. Distances are scene units; the motion
radius is ``amount`` times a base fraction of ``near`` (the depth of the nearest content),
so the same ``amount`` gives the same parallax whatever scale the depth map has.

A path also carries a per-frame ``zoom``: the focal-length multiplier of the rendered
camera (1 = the photo's). Only dolly-zoom and keyframe files change it.

Presets (s runs over the clip; looping presets end one step before they return to start,
so a clip plays as a seamless loop):

- ``swing``: side to side on a sine, looking at the focus point. Loops.
- ``circle``: an ellipse through the start point (wide in x, half as tall), looking at the
  focus point. Loops.
- ``dolly``: forward into the scene and back. Loops.
- ``zoom`` (alias ``ken-burns``): a one-way push in with a slight pan and eased ends.
- ``vertigo`` (alias ``dolly-zoom``): forward and back while the focal length shrinks so
  the focus plane keeps its size and the background seems to stretch. Loops.

Keyframe file (JSON)::

    {"loop": false,
     "keyframes": [
        {"t": 0.0, "position": [0, 0, 0]},
        {"t": 0.5, "position": [0.05, -0.02, 0.1], "look_at": [0, 0, 3], "zoom": 1.1},
        {"t": 1.0, "position": [0, 0, 0.2], "rotation": [0, 2, 0]}]}

``t`` is the fraction of the clip (0..1, increasing); ``position`` is in scene units and
is multiplied by ``amount``; orientation is ``look_at`` (a world point) or ``rotation``
(x, y, z Euler angles in degrees, applied in that order), default straight ahead;
``zoom`` defaults to 1. Positions and angles are interpolated with Catmull-Rom splines,
zoom linearly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import PATH_ALIASES, PATH_PRESETS, PathConfig, read_keyframes
from ..errors import Photo3DError
from .camera import zoom_intrinsics

#: Lateral motion radius at amount=1, as a fraction of the near depth. At 55 degrees of
#: field of view this shifts near against far content by about 3% of the image width.
BASE_RADIUS = 0.035
#: Forward travel at amount=1, as a fraction of the near depth.
BASE_DOLLY = 0.2

PRESETS = PATH_PRESETS  # the choices live with the options, in config
ALIASES = PATH_ALIASES


@dataclass(frozen=True)
class CameraPath:
    """poses: (N, 4, 4) float64 camera-to-world; zoom: (N,) float64 focal multipliers."""

    poses: np.ndarray
    zoom: np.ndarray

    def __len__(self) -> int:
        return len(self.poses)

    def max_translation(self) -> float:
        """Largest camera displacement from the photo's camera along the path (scene units)."""
        return float(np.linalg.norm(self.poses[:, :3, 3], axis=1).max())


def look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Camera-to-world rotation (3, 3) of a camera at ``position`` looking at ``target``.

    World "up" is -y (OpenCV y points down), so the camera keeps its horizon level.
    """
    forward = np.asarray(target, np.float64) - np.asarray(position, np.float64)
    norm = np.linalg.norm(forward)
    if norm < 1e-12:
        return np.eye(3)
    z = forward / norm
    x = np.cross(z, np.array([0.0, -1.0, 0.0]))
    if np.linalg.norm(x) < 1e-9:  # looking straight up or down: any horizontal x will do
        x = np.array([1.0, 0.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


def euler_xyz(degrees: np.ndarray) -> np.ndarray:
    """Rotation (3, 3) from x, y, z Euler angles in degrees, applied x first."""
    ax, ay, az = np.radians(np.asarray(degrees, np.float64))
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _poses(positions: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    n = len(positions)
    poses = np.tile(np.eye(4), (n, 1, 1))
    poses[:, :3, :3] = rotations
    poses[:, :3, 3] = positions
    return poses


def _smoothstep(s: np.ndarray) -> np.ndarray:
    return s * s * (3.0 - 2.0 * s)


def preset_path(name: str, n_frames: int, amount: float, near: float, focus: float) -> CameraPath:
    """A preset path of ``n_frames`` poses. ``near``/``focus``: scene depths (see module doc)."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in PRESETS:
        raise Photo3DError(
            f"unknown path preset {name!r}; choose one of {', '.join(PRESETS)} "
            f"(aliases: {', '.join(ALIASES)}) or give a .json keyframe file"
        )
    if n_frames < 1:
        raise Photo3DError(f"a path needs at least one frame, got {n_frames}")
    r = BASE_RADIUS * amount * near
    # Never dolly through the nearest content (nor past the focus plane for dolly-zoom).
    d = min(BASE_DOLLY * amount * near, 0.8 * near, 0.5 * focus)
    loop = np.arange(n_frames) / n_frames * 2.0 * math.pi
    once = _smoothstep(np.linspace(0.0, 1.0, n_frames))
    zeros = np.zeros(n_frames)
    zoom = np.ones(n_frames)
    target = np.array([0.0, 0.0, focus])
    if key == "swing":
        pos = np.stack([r * np.sin(loop), zeros, zeros], axis=1)
    elif key == "circle":
        pos = np.stack([r * np.sin(loop), 0.5 * r * (1.0 - np.cos(loop)), zeros], axis=1)
    elif key == "dolly":
        pos = np.stack([zeros, zeros, d * 0.5 * (1.0 - np.cos(loop))], axis=1)
    elif key == "zoom":
        pos = np.stack([0.25 * d * once, zeros, d * once], axis=1)
    else:  # vertigo: keep the focus plane's magnification fx * zoom / (focus - z) constant
        z = d * 0.5 * (1.0 - np.cos(loop))
        pos = np.stack([zeros, zeros, z], axis=1)
        zoom = (focus - z) / focus
    if key in ("swing", "circle"):
        rots = np.stack([look_at(p, target) for p in pos])
    else:
        rots = np.tile(np.eye(3), (n_frames, 1, 1))
    return CameraPath(_poses(pos, rots), zoom)


def _catmull_rom(ts: np.ndarray, values: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Centripetal-free (uniform) Catmull-Rom through (ts, values) evaluated at s.

    ts: (K,) increasing; values: (K, D); s: (N,) -> (N, D). Ends are clamped, so the
    curve starts and ends exactly at the first and last keyframes.
    """
    if len(ts) == 1:
        return np.repeat(values[:1], len(s), axis=0)
    i = np.clip(np.searchsorted(ts, s, side="right") - 1, 0, len(ts) - 2)
    t0, t1 = ts[i], ts[i + 1]
    u = np.clip((s - t0) / np.maximum(t1 - t0, 1e-12), 0.0, 1.0)[:, None]
    p0 = values[np.maximum(i - 1, 0)]
    p1, p2 = values[i], values[i + 1]
    p3 = values[np.minimum(i + 2, len(ts) - 1)]
    u2, u3 = u * u, u * u * u
    return 0.5 * (
        2 * p1 + (-p0 + p2) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u2 + (-p0 + 3 * p1 - 3 * p2 + p3) * u3
    )


def keyframe_path(path: str | Path, n_frames: int, amount: float) -> CameraPath:
    """A path interpolated from a JSON keyframe file (format in the module docstring)."""
    keys = read_keyframes(path)  # checked: every number finite and in range
    ts = np.asarray(keys.t)
    s = np.arange(n_frames) / n_frames if keys.loop else np.linspace(0.0, 1.0, n_frames)
    s = np.clip(s, ts[0], ts[-1])
    pos = _catmull_rom(ts, np.asarray(keys.positions, np.float64) * amount, s)
    ori = _catmull_rom(ts, np.asarray(keys.orientations, np.float64), s)
    if keys.orientation == "look_at":
        rots = np.stack([look_at(p, o) for p, o in zip(pos, ori)])
    else:
        rots = np.stack([euler_xyz(o) for o in ori])
    zoom = np.interp(s, ts, np.asarray(keys.zoom))
    return CameraPath(_poses(pos, rots), zoom)


#: Largest overscan zoom: past it, the border holes are filled rather than cropping more.
MAX_OVERSCAN = 1.25


def overscan_zoom(path: CameraPath, K_photo: np.ndarray, depth: np.ndarray, K_out: np.ndarray, size: tuple[int, int],
                  stereo: tuple[float, float] | None = None) -> float:
    """The smallest constant zoom that keeps the photo's border out of every frame.

    A lateral move reveals, at the image border, content the photo never saw. The
    photo's outer edge (its border pixels' outer sides, at their depth) is projected
    into every frame; the zoom about the output's center that pushes every inward-moved
    edge out of frame is returned, at most MAX_OVERSCAN (beyond that, holes get filled).
    K_photo, depth: (3, 3) and (H, W) of the photo grid; K_out, size: the output camera.
    stereo: (ipd, convergence) in scene units: both eyes of every frame must keep the border
    out (``render.stereo.eye_cameras``: the pose moved by -/+ ipd/2 along its x axis, cx
    shifted by -/+ f (ipd/2) / convergence; the zoom about the output's center scales that
    shift as it does the rest of the frame, so the zoom found here is exact for the eyes).
    """
    h, w = depth.shape
    z = np.asarray(depth, np.float64)
    ys, xs = np.arange(h) + 0.5, np.arange(w) + 0.5
    edges = {  # (pixel coords on the photo's outer edge, depths there)
        "left": (np.stack([np.zeros(h), ys], 1), z[:, 0]),
        "right": (np.stack([np.full(h, float(w)), ys], 1), z[:, -1]),
        "top": (np.stack([xs, np.zeros(w)], 1), z[0, :]),
        "bottom": (np.stack([xs, np.full(w, float(h))], 1), z[-1, :]),
    }
    Kinv = np.linalg.inv(K_photo)
    W, H = size
    need = 1.0
    for pose, zoom in zip(path.poses, path.zoom):

        Kf = zoom_intrinsics(K_out, float(zoom), size)
        cx, cy = Kf[0, 2], Kf[1, 2]
        for pose_e, K_e in _eyes(pose, Kf, stereo):
            w2c = np.linalg.inv(pose_e)
            for side, (uv, d) in edges.items():
                X = (np.concatenate([uv, np.ones((len(uv), 1))], 1) @ Kinv.T) * d[:, None]
                cam = X @ w2c[:3, :3].T + w2c[:3, 3]
                ok = cam[:, 2] > 1e-6
                if not ok.any():
                    continue
                proj = cam[ok] @ K_e.T
                u, v = proj[:, 0] / proj[:, 2], proj[:, 1] / proj[:, 2]
                # s must carry the edge past the frame: center + (edge - center) * s beyond it
                if side == "left":
                    e, c, limit = u.max(), cx, 0.0
                elif side == "right":
                    e, c, limit = u.min(), cx, float(W)
                elif side == "top":
                    e, c, limit = v.max(), cy, 0.0
                else:
                    e, c, limit = v.min(), cy, float(H)
                inward = e > limit if limit == 0.0 else e < limit
                if inward:
                    need = max(need, (limit - c) / (e - c) if (e - c) * (limit - c) > 0 else MAX_OVERSCAN)
    return float(min(need, MAX_OVERSCAN))


def _eyes(pose: np.ndarray, K: np.ndarray, stereo: tuple[float, float] | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(c2w (4, 4), K (3, 3))] of the camera ``pose``, K, or of its two eyes (``stereo`` =
    (ipd, convergence), scene units), as ``render.stereo.eye_cameras`` makes them."""
    if stereo is None:
        return [(pose, K)]
    half, convergence = 0.5 * stereo[0], stereo[1]
    eyes = []
    for sign in (-1.0, 1.0):
        p, k = pose.copy(), K.copy()
        p[:3, 3] = pose[:3, 3] + sign * half * pose[:3, 0]
        k[0, 2] = K[0, 2] + sign * K[0, 0] * half / convergence
        eyes.append((p, k))
    return eyes


def default_focus(depth: np.ndarray) -> float:
    """The focus depth used when none is given: the depth at the median disparity.

    Half of the scene (by disparity) then moves one way and half the other, which keeps
    the holes at the image border smallest for look-at presets.
    """
    z = np.asarray(depth, np.float64)
    z = z[np.isfinite(z) & (z > 0)]
    if z.size == 0:
        return 1.0
    return float(1.0 / np.median(1.0 / z))


def make_path(config: PathConfig, near: float, focus: float) -> CameraPath:
    """The path of ``config``: a preset name, or a ``.json`` keyframe file."""
    n = config.n_frames
    if config.preset.lower().endswith(".json"):
        return keyframe_path(config.preset, n, config.amount)
    return preset_path(config.preset, n, config.amount, near, config.focus or focus)
