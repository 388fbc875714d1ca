"""Clip depth effects (``render.effects``, ``config.EffectsConfig``): the frames' depth from the
splat, the renderer's effect path, the options in every front end, ``photo3d render`` with
--dof/--fog end to end and its bad inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from photo3d_fast.cli import main
from photo3d_fast.config import ClipOptions, EffectsConfig
from photo3d_fast.errors import Photo3DError
from photo3d_fast.ops import grade as grade_ref
from photo3d_fast.preview.options import clean_options
from photo3d_fast.render import Renderer
from photo3d_fast.render.effects import (FrameEffects, aperture_px, effects_for, frame_depth, linear_to_srgb,
                                         position_grid, srgb_to_linear)

from helpers import gradient_photo, pose_t, scene_ldi

SIZE = (48, 36)
FAST = ["--duration", "0.3", "--fps", "10", "-q", "--no-overscan", "--offline", "--depth", "cues"]


def _ldi():
    return scene_ldi(SIZE, "mixed")[0]


def test_frame_depth_is_the_scene_depth_seen_from_the_frame():
    """Rendered from the photo's own camera the depth is the LDI's front surface; from a camera
    moved 0.3 forward, the nearest and farthest depths are 0.3 nearer."""
    ldi = _ldi()
    renderer = Renderer(ldi, "torch")
    grid, lo, scale = position_grid(renderer._grid)
    K = torch.as_tensor(ldi.K, dtype=torch.float32)[None]
    front = ldi.surfaces()[0][0]
    c2w = pose_t()[None]
    color, covered = renderer._impl.render_frames(grid, c2w, K, SIZE)
    z = frame_depth(color, lo, scale, c2w)[0]
    rel = ((z - front).abs() / front)[covered[0]]
    assert float(rel.median()) < 1e-4 and float((rel < 0.02).float().mean()) > 0.95
    c2w = pose_t(tz=0.3)[None]  # forward: every surface 0.3 nearer, the near one magnified
    moved = frame_depth(renderer._impl.render_frames(grid, c2w, K, SIZE)[0], lo, scale, c2w)[0]
    assert abs(float(moved.min()) - (float(front.min()) - 0.3)) < 0.02
    assert abs(float(moved.max()) - (float(front.max()) - 0.3)) < 0.02


def test_off_costs_nothing_and_changes_nothing():
    assert not EffectsConfig().active
    assert effects_for(EffectsConfig(), 2.0, 10, SIZE, "torch", "cpu") is None
    vignette = FrameEffects(EffectsConfig(vignette=0.5), 2.0, 10, SIZE, "torch", "cpu")
    assert not vignette.needs_depth  # no second render for a vignette alone
    ldi = _ldi()
    K = torch.as_tensor(ldi.K, dtype=torch.float32)
    plain = Renderer(ldi, "torch").render(pose_t(tx=0.05), K, SIZE)
    graded = Renderer(ldi, "torch", effects=vignette).render(pose_t(tx=0.05), K, SIZE)
    centre = (slice(14, 22), slice(20, 28))
    assert (plain[centre].int() - graded[centre].int()).abs().max() <= 1  # cos^4 ~ 1 at the centre
    assert graded[0, 0].sum() < plain[0, 0].sum()


def test_renderer_applies_fog_with_the_frames_depth():
    ldi = _ldi()
    K = torch.as_tensor(ldi.K, dtype=torch.float32)
    fx = FrameEffects(EffectsConfig(fog="0.5,#ffffff"), 2.0, 1, SIZE, "torch", "cpu")
    out = Renderer(ldi, "torch", effects=fx).render(pose_t(), K, SIZE).float() / 255.0
    plain = Renderer(ldi, "torch").render(pose_t(), K, SIZE).float() / 255.0
    z = ldi.surfaces()[0][0]
    want = linear_to_srgb(grade_ref.grade(srgb_to_linear(plain)[None], z[None], K[None], fog_density=0.5,
                                          fog_color=(1.0, 1.0, 1.0)))[0]
    inner = (slice(2, -2), slice(2, -2))
    assert float((out[inner] - want[inner]).abs().mean()) < 0.01
    assert float(out.mean()) > float(plain.mean()) + 0.05


def test_focus_pull_and_aperture():
    fx = FrameEffects(EffectsConfig(dof=2.0, focus_pull="1:4"), 3.0, 5, SIZE, "torch", "cpu")
    focus = fx.focus_at(torch.arange(5))
    torch.testing.assert_close(focus[[0, -1]], torch.tensor([1.0, 4.0]))
    torch.testing.assert_close(1.0 / focus, torch.linspace(1.0, 0.25, 5))  # even in disparity
    # 50 mm full frame at f/2: a 25 mm pupil; at fx = 1000 px that is 25 px * metres
    assert abs(aperture_px(1000.0, (720, 480), 2.0, 50.0) - 25.0) < 1e-9
    assert abs(aperture_px(720.0 * 50.0 / 36.0, (720, 480), 2.0) - 1000.0 * 25.0 / 1000.0) < 1e-9


def test_options_everywhere():
    opts = ClipOptions.from_flat({"dof": "2.8", "focus_pull": "1.5:6", "fog": "0.2,haze", "fog-start": "3",
                                  "falloff": "2", "vignette": "0.4", "bokeh": "hexagon", "focal_length": "50"})
    assert opts.effects == EffectsConfig(2.8, 50.0, "hexagon", "1.5:6", "0.2,haze", 3.0, 2.0, 0.4)
    assert set(opts.changed()) == {"dof", "focus_pull", "fog", "fog_start", "falloff", "vignette", "bokeh",
                                   "focal_length"}
    assert clean_options({"dof": 4, "fog": "0.1", "vignette": 0.5})["dof"] == 4.0  # the preview takes them


@pytest.mark.parametrize("flat, match", [
    ({"dof": "0"}, "--dof"), ({"dof": "-2"}, "--dof"), ({"focus_pull": "1:3"}, "add --dof"),
    ({"dof": "2", "focus_pull": "3"}, "FROM:TO"), ({"dof": "2", "focus_pull": "0:3"}, "--focus-pull"),
    ({"fog": "thick"}, "DENSITY"), ({"fog": "0.2,#12"}, "colour"), ({"fog": "-1"}, "--fog density"),
    ({"vignette": "1.5"}, "--vignette"), ({"falloff": "-1"}, "--falloff"), ({"bokeh": "star"}, "--bokeh"),
    ({"dof": "2", "focal_length": "0"}, "--focal-length"),
])
def test_bad_options(flat, match):
    with pytest.raises(Photo3DError, match=match):
        ClipOptions.from_flat(flat)


def test_render_with_effects_end_to_end(tmp_path, capsys):
    photo = gradient_photo(tmp_path / "p.png", (64, 48))
    plain_dir, fx_dir = tmp_path / "plain", tmp_path / "fx"
    assert main(["render", str(photo), "-o", str(tmp_path / "a.mp4"), "--frames", str(plain_dir), *FAST]) == 0
    code = main(["render", str(photo), "-o", str(tmp_path / "b.mp4"), "--frames", str(fx_dir), *FAST,
                 "--dof", "1.4", "--focus-pull", "1.2:8", "--fog", "0.3,#ffffff", "--fog-start", "2",
                 "--vignette", "0.5", "--falloff", "1"])
    assert code == 0, capsys.readouterr().err
    plain = [np.asarray(Image.open(p)).astype(int) for p in sorted(plain_dir.glob("*.png"))]
    graded = [np.asarray(Image.open(p)).astype(int) for p in sorted(fx_dir.glob("*.png"))]
    assert len(graded) == len(plain) == 3 and (tmp_path / "b.mp4").stat().st_size > 0
    assert all(np.abs(a - b).mean() > 2 for a, b in zip(plain, graded))


@pytest.mark.parametrize("args, match", [(["--dof", "0"], "--dof"), (["--fog", "x"], "--fog"),
                                         (["--focus-pull", "1:2"], "add --dof")])
def test_render_bad_effects_exit_2(tmp_path, capsys, args, match):
    photo = gradient_photo(tmp_path / "p.png")
    before = set(tmp_path.rglob("*"))
    code = main(["render", str(photo), "-o", str(tmp_path / "c.mp4"), *FAST, *args])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and match in lines[0], err
    assert set(tmp_path.rglob("*")) == before


def test_unused_path_keeps_default_fast_path(monkeypatch):
    """With effects off the C++ CPU renderer's quantised path runs (nothing else)."""
    ldi = _ldi()
    renderer = Renderer(ldi, "auto")
    if getattr(renderer._impl, "render_frames_u8", None) is None:
        pytest.skip("no native quantising renderer here")
    calls = []
    monkeypatch.setattr(renderer._impl, "render_frames", lambda *a: calls.append(a))
    renderer.render(pose_t(), torch.as_tensor(ldi.K, dtype=torch.float32), SIZE)
    assert calls == []



def test_batch_manifest_columns(tmp_path):
    from photo3d_fast.batch.manifest import plan_batch

    gradient_photo(tmp_path / "a.png")
    (tmp_path / "m.csv").write_text("image,dof,fog,vignette\na.png,2.8,\"0.2,haze\",0.3\na.png,0,,\n")
    plan = plan_batch(tmp_path / "m.csv", tmp_path / "out")
    assert len(plan.jobs) == 1 and ClipOptions.from_flat(plan.jobs[0].options).effects == \
        EffectsConfig(dof=2.8, fog="0.2,haze", vignette=0.3)
    assert len(plan.results) == 1 and "--dof" in str(next(iter(plan.results.values())))
