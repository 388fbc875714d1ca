"""Per-frame depth effects of a clip (``config.EffectsConfig``): depth of field (op ``dof``),
light falloff, fog and vignetting (op ``grade``), applied by ``Renderer`` to each rendered
frame and its depth before quantising to uint8.

The lens: an f-number N and a 35 mm-equivalent focal length f (mm; default: the frame's
own, 36 mm across its longer side, so a zoom lengthens it) give the entrance pupil
D = f / N; scene units are read as metres, so D = f / N / 1000 scene units and the CoC
diameter in pixels is fx * D * |1/focus - 1/z| (``ops.dof``). Light adds up in linear
light, so every effect runs there: sRGB decoded, effects, encoded.

The frames' z-depth comes from the same splat as their colour: the LDI rendered a second
time with each texel's world point as its "colour" (``position_grid``), so depth edges,
silhouettes and filled holes sit exactly where the colour's do, with every backend; the
z-depth is that point in the frame's camera. It is rendered only when an effect needs it
(not for a vignette alone); with no effect on, nothing here runs.
"""

from __future__ import annotations

import dataclasses

import torch

from ..config import EffectsConfig, parse_fog, parse_focus_pull
from ..ops.backends import select
from ..ops.dof import DEFAULT_MAX_COC
from ..ops.splat import SurfaceGrid

#: Sensor width of the 35 mm format, mm.
FULL_FRAME_MM = 36.0
#: Largest CoC diameter of a clip's frame per pixel of its longer side (24 px at 960x540):
#: the gather costs O(max_coc^2) per pixel; a wider blur is clipped to it.
CLIP_MAX_COC_SHARE = DEFAULT_MAX_COC / 960.0


def equivalent_focal_mm(fx: float | torch.Tensor, size: tuple[int, int]) -> float | torch.Tensor:
    """35 mm-equivalent focal length (mm) of focal length fx (pixels) on a (W, H) image."""
    return FULL_FRAME_MM * fx / max(size)


def aperture_px(fx: float | torch.Tensor, size: tuple[int, int], f_number: float,
                focal_length_mm: float | None = None) -> float | torch.Tensor:
    """fx * pupil diameter (pixels * scene units, scene units read as metres) of a lens of
    ``f_number`` and 35 mm-equivalent ``focal_length_mm`` (None: fx's own); the CoC diameter
    in pixels is this times |1/focus - 1/z| (``ops.dof``)."""
    f_mm = equivalent_focal_mm(fx, size) if focal_length_mm is None else float(focal_length_mm)
    return fx * f_mm / float(f_number) / 1000.0


def srgb_to_linear(c: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] -> linear light (IEC 61966-2-1)."""
    return torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055).clamp_min(0.0) ** 2.4)


def linear_to_srgb(c: torch.Tensor) -> torch.Tensor:
    """Linear light -> sRGB in [0, 1], clamped."""
    c = c.clamp(0.0, 1.0)
    return torch.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1.0 / 2.4) - 0.055)


def position_grid(grid: SurfaceGrid) -> tuple[SurfaceGrid, torch.Tensor, torch.Tensor]:
    """(grid whose texel colours are their world points mapped into [0, 1] per axis, lo,
    scale): a render of it decodes as world point = lo + colour * scale (scene units)."""
    points = grid.points.reshape(-1, 3)[grid.texels].float()
    lo = points.min(0).values if len(points) else torch.zeros(3, device=points.device)
    hi = points.max(0).values if len(points) else torch.ones(3, device=points.device)
    scale = (hi - lo).clamp_min(1e-6)
    return dataclasses.replace(grid, colors=((points - lo) / scale).contiguous()), lo, scale


def frame_depth(positions: torch.Tensor, lo: torch.Tensor, scale: torch.Tensor, c2ws: torch.Tensor) -> torch.Tensor:
    """(F, H, W) z-depth (scene units) in each frame's camera of rendered normalised world
    points ``positions`` (F, H, W, 3) (``position_grid``); c2ws: (F, 4, 4)."""
    world = lo + positions * scale
    R, t = c2ws[:, :3, :3].float(), c2ws[:, :3, 3].float()
    # z of R^T (X - t): the dot product with R's third column
    return ((world - t[:, None, None, :]) * R[:, None, None, :, 2]).sum(-1)


class FrameEffects:
    """The effects of one clip: ``__call__`` grades frames rendered as float colour.

    config: the clip's EffectsConfig; focus: the path's focus z-depth (scene units), the
    depth of field's default focus and the falloff's reference; n_frames: the clip's
    frames (for --focus-pull); size: (W, H) of a frame; kernels, device: where the ops run.
    """

    def __init__(self, config: EffectsConfig, focus: float, n_frames: int, size: tuple[int, int],
                 kernels: str = "auto", device: torch.device | str = "cpu") -> None:
        self.config = config
        self.focus = float(focus)
        self.n_frames = int(n_frames)
        self.size = size
        self.fog = parse_fog(config.fog) if config.fog is not None else None
        if self.fog is not None and self.fog[0] == 0.0:
            self.fog = None  # --fog 0: no fog, and no depth render for it
        self.pull = parse_focus_pull(config.focus_pull) if config.focus_pull is not None else None
        density, rgb = self.fog if self.fog is not None else (0.0, (255, 255, 255))
        # the fog's colour in linear light, once per clip
        self._fog = (density, tuple(float(v) for v in srgb_to_linear(torch.tensor(rgb, dtype=torch.float32) / 255.0)))
        self.needs_depth = config.dof is not None or self.fog is not None or config.falloff > 0
        self.max_coc = max(8.0, CLIP_MAX_COC_SHARE * max(size))
        self._dof = select("dof", kernels, device)[1] if config.dof is not None else None
        graded = self.fog is not None or config.falloff > 0 or config.vignette > 0
        self._grade = select("grade", kernels, device)[1] if graded else None

    def describe(self) -> str:
        """The effects on, for the clip's notice line: "dof f/2.8 at z=1.8 (24 px max), fog 0.2"."""
        cfg, parts = self.config, []
        if cfg.dof is not None:
            where = f"z={self.pull[0]:g}->{self.pull[1]:g}" if self.pull else f"z={self.focus:.3g}"
            lens = f", {cfg.focal_length:g} mm" if cfg.focal_length else ""
            parts.append(f"dof f/{cfg.dof:g} at {where}{lens}, {cfg.bokeh} (CoC <= {self.max_coc:.0f} px)")
        if self.fog is not None:
            parts.append(f"fog {self.fog[0]:g}/unit from z={cfg.fog_start:g}")
        if cfg.falloff > 0:
            parts.append(f"falloff (z_focus/z)^{cfg.falloff:g}")
        if cfg.vignette > 0:
            parts.append(f"vignette {cfg.vignette:g}")
        return ", ".join(parts)

    def focus_at(self, frames: torch.Tensor) -> torch.Tensor:
        """(F,) focus z-depth of frames ``frames`` (indices): --focus-pull's A to B,
        linear in disparity (1/z, as the CoC is), else the path's focus."""
        if self.pull is None:
            return torch.full(frames.shape, self.focus, dtype=torch.float32, device=frames.device)
        a, b = self.pull
        t = frames.float() / max(1, self.n_frames - 1)
        return 1.0 / ((1.0 - t) / a + t / b)

    def __call__(self, color: torch.Tensor, depth: torch.Tensor | None, Ks: torch.Tensor,
                 frames: torch.Tensor) -> torch.Tensor:
        """color: (F, H, W, 3) float32 sRGB in [0, 1]; depth: (F, H, W) z-depth (scene units;
        None unless ``needs_depth``); Ks: (F, 3, 3) intrinsics (pixels); frames: (F,) the
        frames' indices in the clip. Returns (F, H, W, 3) float32 sRGB in [0, 1]."""
        cfg = self.config
        out = srgb_to_linear(color)
        if self._dof is not None:
            focus = self.focus_at(frames)
            aperture = aperture_px(Ks[:, 0, 0].float(), self.size, cfg.dof, cfg.focal_length)
            out = self._dof.depth_of_field(out, depth, focus, aperture, max_coc=self.max_coc, bokeh=cfg.bokeh)
        if self._grade is not None:
            density, fog_color = self._fog
            ref = self.focus_at(frames) if self.pull is not None else self.focus
            out = self._grade.grade(out, depth, Ks, fog_density=density, fog_start=cfg.fog_start,
                                    fog_color=fog_color, falloff=cfg.falloff, falloff_ref=ref,
                                    vignette=cfg.vignette)
        return linear_to_srgb(out)


def effects_for(config: EffectsConfig, focus: float, n_frames: int, size: tuple[int, int], kernels: str,
                device: torch.device | str) -> FrameEffects | None:
    """The clip's FrameEffects, or None when every effect is off (the renderer's default
    path then runs as before)."""
    if not config.active:
        return None
    return FrameEffects(config, focus, n_frames, size, kernels, device)
