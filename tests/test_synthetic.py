"""The exact ray caster (photo3d_fast.synthetic): analytic depths, disocclusion geometry,
view-consistent textures, and one end-to-end regression guard of the renderer against it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from photo3d_fast.scene.paths import default_focus, look_at, preset_path
from photo3d_fast.render import render_views
from photo3d_fast.scene.camera import intrinsics_from_fov
from photo3d_fast.synthetic import (
    KINDS,
    Box,
    Cylinder,
    Plane,
    Rect,
    Scene,
    Sphere,
    Texture,
    depth_edges,
    disoccluded,
    make_scene,
    near_depth_edges,
    random_texture,
    reference_camera,
    visibility,
)

TEX = Texture((0.8, 0.5, 0.3), (1.3, 0.4, 0.7), (-0.5, 1.6, 0.2), (0.9, -0.8, 1.1), (0.2, 0.4, 0.9), 0.3)


def pose(position=(0.0, 0.0, 0.0), rotation=None) -> np.ndarray:
    T = np.eye(4)
    T[:3, 3] = position
    if rotation is not None:
        T[:3, :3] = rotation
    return T


def norm_coords(K: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) normalised image coordinates x_n = (x + 0.5 - cx) / fx, y_n likewise."""
    w, h = size
    xs, ys = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    return (xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


# ------------------------------------------------------------------ exact depth


@pytest.mark.parametrize("size", [(64, 48), (101, 81)])
@pytest.mark.parametrize("position", [(0.0, 0.0, 0.0), (0.4, -0.3, 1.2)])
def test_fronto_parallel_plane_depth_is_constant(size, position):
    d = 5.0
    scene = Scene([Plane((0.0, 0.0, -1.0), -d, TEX)])
    K = intrinsics_from_fov(*size, 60.0)
    rgb, depth, oid = scene.render(pose(position), K, size)
    assert rgb.shape == (size[1], size[0], 3) and rgb.dtype == np.uint8
    assert depth.shape == (size[1], size[0]) and depth.dtype == np.float32
    np.testing.assert_allclose(depth, d - position[2], rtol=1e-6)
    assert (oid == 0).all()


def test_slanted_plane_seen_from_translated_camera():
    # World plane z = a x + b y + c; a camera at o with identity rotation sees, along
    # X = o + z (x_n, y_n, 1): z = (a o_x + b o_y + c - o_z) / (1 - a x_n - b y_n).
    a, b, c = 0.3, -0.45, 6.0
    n = np.array([a, b, -1.0])
    scene = Scene([Plane(tuple(n / np.linalg.norm(n)), -c / np.linalg.norm(n), TEX)])
    size = (96, 72)
    K = intrinsics_from_fov(*size, 55.0)
    o = np.array([0.35, -0.2, 0.8])
    _, depth, _ = scene.render(pose(o), K, size)
    xn, yn = norm_coords(K, size)
    expected = (a * o[0] + b * o[1] + c - o[2]) / (1 - a * xn - b * yn)
    np.testing.assert_allclose(depth, expected, rtol=1e-5)


def test_rotated_camera_depth_is_z_along_its_own_axis():
    # Camera at the origin turned by theta about y, plane z = d: the ray R (x_n, y_n, 1)
    # has world z = cos(theta) - sin(theta) x_n, so its z-depth is d / (cos - sin x_n).
    d, theta = 4.0, math.radians(12.0)
    scene = Scene([Plane((0.0, 0.0, -1.0), -d, TEX)])
    size = (80, 60)
    K = intrinsics_from_fov(*size, 50.0)
    Ry = np.array([[math.cos(theta), 0, math.sin(theta)], [0, 1, 0], [-math.sin(theta), 0, math.cos(theta)]])
    _, depth, _ = scene.render(pose(rotation=Ry), K, size)
    xn, _ = norm_coords(K, size)
    np.testing.assert_allclose(depth, d / (math.cos(theta) - math.sin(theta) * xn), rtol=1e-6)


@pytest.mark.parametrize("offset", [(0.0, 0.0, 0.0), (0.3, 0.2, 0.5)])
def test_sphere_box_and_pole_centre_depths(offset):
    # Odd image size: the centre pixel's ray is the optical axis exactly.
    size = (101, 81)
    K = intrinsics_from_fov(*size, 50.0)
    cx, cy = 50, 40
    o = np.array(offset)
    wall = Plane((0.0, 0.0, -1.0), -(9.0 + o[2]), TEX)
    cases = [
        (Sphere(tuple(o + [0, 0, 4.0]), 1.0, TEX), 3.0),
        (Box(tuple(o + [0, 0, 5.0]), (1.0, 0.8, 0.5), 0.0, TEX), 4.5),
        (Box(tuple(o + [0, 0, 5.0]), (0.5, 0.8, 0.5), math.pi / 4, TEX), 5.0 - 0.5 * math.sqrt(2)),
        (Cylinder(o[0], o[2] + 3.0, o[1] - 1.0, o[1] + 1.0, 0.2, TEX), 2.8),
    ]
    for prim, expected in cases:
        _, depth, oid = Scene([wall, prim]).render(pose(o), K, size)
        assert oid[cy, cx] == 1, type(prim).__name__
        assert depth[cy, cx] == pytest.approx(expected, rel=1e-6), type(prim).__name__
        assert oid[0, 0] == 0 and depth[0, 0] == pytest.approx(9.0, rel=1e-6)


def test_sphere_silhouette_matches_ray_distance():
    size = (64, 48)
    K = intrinsics_from_fov(*size, 60.0)
    centre, r = np.array([0.3, -0.2, 3.0]), 0.9
    scene = Scene([Plane((0.0, 0.0, -1.0), -8.0, TEX), Sphere(tuple(centre), r, TEX)])
    _, depth, oid = scene.render(np.eye(4), K, size)
    xn, yn = norm_coords(K, size)
    d = np.stack([xn, yn, np.ones_like(xn)], -1)
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    dist = np.linalg.norm(np.cross(d, centre), axis=-1)  # distance of the ray to the centre
    inside = dist < r
    assert (oid == 1).sum() > 50
    np.testing.assert_array_equal(oid == 1, inside)


@pytest.mark.parametrize("kind", KINDS)
def test_generated_scenes_positive_finite_in_range(kind):
    size = (80, 60)
    K = reference_camera(size)
    for seed in range(4):
        scene = make_scene(seed, kind)
        rgb, depth, oid = scene.render(np.eye(4), K, size)
        assert np.isfinite(depth).all() and (depth > 0).all()
        assert 1.4 <= depth.min() and depth.max() <= 8.0, (seed, depth.min(), depth.max())
        assert (oid >= 0).all() and len(np.unique(oid)) >= 2  # the wall plus something
        assert rgb.std() > 5  # textured, never a flat test image
        near, focus = float(np.percentile(depth, 1)), default_focus(depth)
        for name in ("swing", "circle", "dolly", "zoom", "vertigo"):
            path = preset_path(name, 8, 1.0, near, focus)
            _, d2, _ = scene.render(path.poses[3], K, size)
            assert np.isfinite(d2).all() and (d2 > 0).all()


def test_make_scene_is_deterministic_and_seeded():
    size = (64, 48)
    K = reference_camera(size)
    a = make_scene(3, "mixed").render(np.eye(4), K, size)[0]
    b = make_scene(3, "mixed").render(np.eye(4), K, size)[0]
    c = make_scene(4, "mixed").render(np.eye(4), K, size)[0]
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()
    with pytest.raises(ValueError, match="unknown scene kind"):
        make_scene(0, "cubes")


# ------------------------------------------------------- identity and consistency


def test_identity_pose_reproduces_reference_exactly():
    size = (96, 72)
    K = reference_camera(size)
    scene = make_scene(1, "mixed")
    ref = scene.render(np.eye(4), K, size)
    # An identity written another way (look_at straight ahead, float32 round trip).
    eye = pose(rotation=look_at(np.zeros(3), np.array([0.0, 0.0, 5.0]))).astype(np.float32)
    again = scene.render(eye, K, size)
    for x, y in zip(ref, again):
        assert x.tobytes() == y.tobytes()
    assert not disoccluded(scene, np.eye(4), K, size).any()


@pytest.mark.parametrize("layers", [1, 2])
def test_renderer_at_identity_reproduces_reference_exactly(layers):
    size = (120, 90)
    K = reference_camera(size)
    scene = make_scene(2, "mixed")
    rgb, depth, _ = scene.render(np.eye(4), K, size)
    out = render_views(rgb, depth, K, np.eye(4)[None], layers=layers)[0]
    assert out.tobytes() == rgb.tobytes()


def test_texture_is_view_consistent():
    # Moving the camera right by k * z_wall / fx shifts the wall by exactly k pixels, so
    # view B's pixel x sees the very point view A sees at x + k: same colour.
    size = (120, 90)
    K = reference_camera(size)
    z_wall, k = 6.0, 7
    rng = np.random.default_rng(5)
    scene = Scene([
        Plane((0.0, 0.0, -1.0), -z_wall, random_texture(rng)),
        Sphere((0.2, 0.1, 3.0), 0.6, random_texture(rng)),
    ])
    t = k * z_wall / K[0, 0]
    a, _, oid_a = scene.render(np.eye(4), K, size)
    b, _, oid_b = scene.render(pose((t, 0.0, 0.0)), K, size)
    both = (oid_b[:, :-k] == 0) & (oid_a[:, k:] == 0)
    assert both.mean() > 0.5
    diff = np.abs(b[:, :-k].astype(int) - a[:, k:])[both]
    assert diff.max() <= 1 and diff.mean() < 0.01  # 1 LSB only from float rounding at .5
    assert a[oid_a == 0].std() > 10  # and the wall is textured, so this means something
    # Without the shift, colours at those pixels do differ: the check is not vacuous.
    assert np.abs(b[:, :-k].astype(int) - a[:, :-k])[both].mean() > 5


# -------------------------------------------------------------- disocclusion


@pytest.mark.parametrize("direction", [1, -1])
def test_disocclusion_strip_behind_plate(direction):
    # A square plate at z_p in front of a wall at z_w; moving the camera by t (right for
    # direction 1) opens a strip of width fx t (1/z_p - 1/z_w) at the plate's trailing edge:
    # its right edge when the camera moves right (near content shifts left faster).
    size = (200, 150)
    K = intrinsics_from_fov(*size, 60.0)
    z_p, z_w, t = 2.0, 6.0, 0.2
    scene = Scene([
        Plane((0.0, 0.0, -1.0), -z_w, TEX),
        Rect((0.0, 0.0, z_p), (1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.4, 0.4), TEX),
    ])
    c2w = pose((direction * t, 0.0, 0.0))
    _, depth, oid = scene.render(c2w, K, size)
    vis = visibility(scene, c2w, K, size)
    expected = K[0, 0] * t * (1 / z_p - 1 / z_w)
    assert expected > 8  # a strip wide enough to measure
    rows = np.nonzero((oid == 1).any(1))[0]
    rows = rows[5:-5]  # away from the plate's top and bottom edges
    assert len(rows) > 20
    for r in rows:
        plate = np.nonzero(oid[r] == 1)[0]
        strip = np.nonzero(vis.occluded[r])[0]
        assert abs(len(strip) - expected) <= 1.0, (r, len(strip), expected)
        assert (np.diff(strip) == 1).all()  # one contiguous strip
        if direction > 0:
            assert strip[0] == plate[-1] + 1  # right next to the plate's right edge
        else:
            assert strip[-1] == plate[0] - 1
        assert (oid[r, strip] == 0).all() and (depth[r, strip] == pytest.approx(z_w, rel=1e-6))
    # Outside the reference frame: only at the border the camera moved towards.
    cols = np.nonzero(vis.outside.any(0))[0]
    assert len(cols) > 0
    assert (cols >= size[0] - 10).all() if direction > 0 else (cols < 10).all()
    assert not (vis.outside & vis.occluded).any()
    np.testing.assert_array_equal(disoccluded(scene, c2w, K, size), vis.occluded | vis.outside)


def test_depth_edge_masks():
    size = (200, 150)
    K = intrinsics_from_fov(*size, 60.0)
    scene = Scene([
        Plane((0.0, 0.0, -1.0), -6.0, TEX),
        Rect((0.0, 0.0, 2.0), (1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.4, 0.4), TEX),
    ])
    _, depth, oid = scene.render(np.eye(4), K, size)
    edges = depth_edges(depth)
    plate = oid == 1
    # Edge pixels are exactly the pixels with a 4-neighbour on the other surface.
    other = np.zeros_like(plate)
    other[:, :-1] |= oid[:, :-1] != oid[:, 1:]
    other[:, 1:] |= oid[:, :-1] != oid[:, 1:]
    other[:-1] |= oid[:-1] != oid[1:]
    other[1:] |= oid[:-1] != oid[1:]
    np.testing.assert_array_equal(edges, other)
    near = near_depth_edges(depth, radius=3)
    ys, xs = np.nonzero(plate)
    top, left = ys.min(), xs.min()
    mid = (ys.min() + ys.max()) // 2
    assert near[mid, left - 4 : left + 4].all()  # 3 px each side (both edge pixels marked)
    assert not near[mid, left - 5] and not near[mid, left + 4]
    assert near[top - 4, xs.min() + 5] and not near[top - 5, xs.min() + 5]
    assert not near_depth_edges(np.full((20, 30), 3.0, np.float32)).any()


# --------------------------------------------------------- renderer end to end


def test_renderer_small_lateral_move_planes_psnr_floor():
    # Regression guard, not a quality target: on this scene and move the torch reference
    # measured 41.5 dB with layers=2 and 41.4 dB with layers=1 (both fill disocclusions from
    # the farther side; the back layer adds correct parallax and depth there, which
    # test_render.py checks). The floors sit about 4 dB below so that a real regression
    # trips them while small changes to resampling do not; raise them when the renderer
    # improves.
    size = (320, 240)
    K = reference_camera(size)
    scene = make_scene(0, "planes")
    rgb, depth, _ = scene.render(np.eye(4), K, size)
    t = 0.035 * float(np.percentile(depth, 1.0))  # the swing preset's radius at amount 1
    c2w = pose((t, 0.0, 0.0))
    truth, _, _ = scene.render(c2w, K, size)
    assert disoccluded(scene, c2w, K, size).mean() > 0.003  # the move does open holes
    got = {L: psnr(render_views(rgb, depth, K, c2w[None], layers=L)[0], truth) for L in (1, 2)}
    assert got[2] >= 37.0, got
    assert got[1] >= 37.0, got
    assert got[2] >= got[1] - 0.3, got  # the back layer must never cost quality


@pytest.mark.parametrize("kind", KINDS)
def test_normals_are_unit_and_face_the_camera(kind):
    # Every surface of a generated scene is seen from outside / its lit side, so the
    # outward normal opposes the ray: a check of each primitive's normal (box faces,
    # cylinder sides and caps, sphere) that shading depends on.
    from photo3d_fast.synthetic import camera_rays

    size = (80, 60)
    K = reference_camera(size)
    for seed in range(3):
        scene = make_scene(seed, kind)
        hits = scene.cast(np.eye(4), K, size)
        _, dirs = camera_rays(np.eye(4), K, size)
        n = hits.normal.numpy()
        np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, rtol=1e-9)
        assert ((n * dirs.numpy()).sum(1) < 0).all()
