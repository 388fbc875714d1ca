"""Torch reference of the op ``dof``: thin-lens depth of field on a frame and its z-depth.

Lens model (the one model of every front end; units stated once here):

    coc_px(z) = aperture_px * |1 / focus - 1 / z|

is the diameter, in output pixels, of the circle of confusion of a point at z-depth ``z``
(scene units) when the plane at z-depth ``focus`` is sharp. ``aperture_px`` is fx (pixels)
times the lens's entrance-pupil diameter D (scene units): exactly the blur of averaging
pinhole views from every point of a disc of diameter D around the camera centre, each
with its principal point shifted so that the focus plane stays put (what
``tests/test_op_dof.py`` ray-traces). ``effects.refocus.aperture_px`` maps an f-number and a
35 mm-equivalent focal length to it (D = focal length / N, scene units read as metres).

Scatter as gather, bounded by ``max_coc`` (diameter, pixels): every pixel p gathers the
neighbours q within the largest radius of its frame. q's disc (its CoC, disc or hexagon,
a soft half-pixel rim) covers p with weight coverage / area, so a blurred point spreads
its energy over its disc, and a sharp one stays in its pixel. Two layers:

- front: q nearer than p (by more than ``DEPTH_TOLERANCE`` relative). These are composited
  over p with alpha = their summed weight (clamped to 1): a blurred foreground spreads over
  a sharp background, semi-transparent at its rim, as the lens sees it.
- own: q as far as p or farther. q spreads at most p's own radius (min(r_q, r_p)), so a
  blurred background never spreads over a sharp subject in front of it, and a sharp
  subject (r_q ~ 0) never reaches its blurred surroundings: no halo either way.
- hidden: where the own layer's summed weight falls short of 1 (p on the silhouette of a
  blurred surface, whose disc reaches past its edge), the shortfall shows what lies behind:
  the mean of the farther q within p's own disc. So a blurred foreground turns half
  transparent on both sides of its edge, also over a sharp background, as the lens shows it.

out = alpha * front_mean + (1 - alpha) * own_mean, own_mean = (own + shortfall * hidden_mean)
/ (own weight + shortfall). Pixels outside the frame are the
border's (clamped), so the image border neither darkens nor brightens.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: Bokeh shapes: the aperture's outline.
BOKEH_SHAPES = ("disc", "hexagon")
#: Largest CoC diameter (pixels) a frame may use unless the caller bounds it otherwise: the
#: gather costs O(max_coc^2) per pixel.
DEFAULT_MAX_COC = 24.0
#: q is "in front of" p when z_q < z_p * (1 - DEPTH_TOLERANCE): a slanted surface's own
#: neighbours are not an occluder.
DEPTH_TOLERANCE = 0.02
#: Smallest radius (pixels): a sharp pixel covers itself, nothing more.
MIN_RADIUS = 0.5
#: A band of offsets (one more pixel of distance) runs over the whole frame when more than
#: this share of its pixels has a neighbour it can reach, else over those pixels only.
COMPACT_SHARE = 0.35
_COS30 = math.cos(math.pi / 6)


def check_bokeh(bokeh: str) -> None:
    """ValueError unless ``bokeh`` is one of BOKEH_SHAPES (front ends check it first)."""
    if bokeh not in BOKEH_SHAPES:
        raise ValueError(f"bokeh {bokeh!r}: choose one of {', '.join(BOKEH_SHAPES)}")


def shape_distance(dx: float, dy: float, bokeh: str) -> float:
    """Distance of offset (dx, dy) pixels in the shape's own norm: a point lies inside the
    shape of radius r (disc: radius; hexagon: circumradius, flat top) when this is <= r."""
    if bokeh == "disc":
        return math.hypot(dx, dy)
    # hexagon: the largest projection on its three edge normals (90, 30, -30 degrees) over
    # the inradius/circumradius ratio
    s = 0.5
    return max(abs(dy), abs(_COS30 * dx + s * dy), abs(_COS30 * dx - s * dy)) / _COS30


def shape_area(r: torch.Tensor, bokeh: str) -> torch.Tensor:
    """Area (pixels^2) of the shape of radius ``r``, at least 1 (a sharp pixel's weight is 1)."""
    a = math.pi if bokeh == "disc" else 1.5 * math.sqrt(3.0)
    return (a * r * r).clamp_min(1.0)


def offsets(radius: int, bokeh: str) -> list[tuple[int, int, float]]:
    """(dy, dx, distance) of every integer offset within ``radius`` + 0.5 in the shape's norm,
    nearest first (the order every implementation sums them in)."""
    out = []
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            d = shape_distance(dx, dy, bokeh)
            if d < radius + 0.5:
                out.append((dy, dx, d))
    return sorted(out, key=lambda o: (o[2], o[0], o[1]))


def _per_frame(value: torch.Tensor | float, n: int, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float32, device=device).reshape(-1)
    return t.expand(n) if t.numel() == 1 else t


def coc_radius(depth: torch.Tensor, focus: torch.Tensor | float, aperture_px: torch.Tensor | float,
               max_coc: float = DEFAULT_MAX_COC) -> torch.Tensor:
    """(F, H, W) float32 CoC radius in pixels, in [MIN_RADIUS, max_coc / 2].

    depth: (F, H, W) z-depth, scene units (> 0); focus: z-depth of the sharp plane, scene
    units, a float or (F,); aperture_px: fx * pupil diameter (pixels * scene units), a float
    or (F,) (see the module docstring)."""
    n = depth.shape[0]
    focus_t = _per_frame(focus, n, depth.device)[:, None, None]
    aperture = _per_frame(aperture_px, n, depth.device)[:, None, None]
    coc = aperture * (1.0 / focus_t - 1.0 / depth.clamp_min(1e-6)).abs()
    return (0.5 * coc).clamp(MIN_RADIUS, max(MIN_RADIUS, 0.5 * max_coc))


def depth_of_field(color: torch.Tensor, depth: torch.Tensor, focus: torch.Tensor | float,
                   aperture_px: torch.Tensor | float, max_coc: float = DEFAULT_MAX_COC,
                   bokeh: str = "disc") -> torch.Tensor:
    """Blur F frames as a thin lens focused at ``focus`` would.

    color: (F, H, W, 3) float32 sRGB / 255 (blurred as stored, as a camera's JPEG pipeline
    is not undone); depth: (F, H, W) float32 z-depth (scene units, > 0); focus, aperture_px:
    floats or (F,) per frame (``coc_radius``); max_coc: largest CoC diameter, pixels;
    bokeh: "disc" | "hexagon". Returns (F, H, W, 3) float32 on color's device.
    """
    check_bokeh(bokeh)
    n, h, w, _ = color.shape
    radius = coc_radius(depth, focus, aperture_px, max_coc)
    reach = int(math.ceil(float(radius.max()) - 1e-6)) if n else 0
    if reach < 1:
        return color.clone()
    pad = reach
    c = color.float().contiguous()
    z_front = depth.float() * (1.0 - DEPTH_TOLERANCE)
    z_behind = depth.float() * (1.0 + DEPTH_TOLERANCE)
    inv_area = 1.0 / shape_area(radius, bokeh)
    # border-replicated copies for the full-frame path (channels first: unit-stride planes);
    # flat ones for the compacted path
    cp = F.pad(c.permute(0, 3, 1, 2), (pad,) * 4, mode="replicate")
    zp = F.pad(depth.float()[:, None], (pad,) * 4, mode="replicate")[:, 0]
    rp = F.pad(radius[:, None], (pad,) * 4, mode="replicate")[:, 0]
    ip = F.pad(inv_area[:, None], (pad,) * 4, mode="replicate")[:, 0]
    c_flat, z_flat = c.reshape(-1, 3), depth.float().reshape(-1)
    r_flat, i_flat = radius.reshape(-1), inv_area.reshape(-1)
    s_front, s_own, s_hid = (torch.zeros_like(cp[:, :, :h, :w]) for _ in range(3))  # (F, 3, H, W)
    w_front, w_own, w_hid = (torch.zeros_like(radius) for _ in range(3))
    s_front_px = s_own_px = s_hid_px = None  # (F*H*W, 3) sums of the compacted bands

    def weights(rq, zq, iq, rp_, ip_, zf_, zb_, d):
        """(front, own, hidden) weights of neighbours q at distance d: coverage / area of q's
        disc; of the disc of radius min(r_q, r_p) (coverage and area are monotonic in the
        radius, so that is the min of the coverages and the max of the inverse areas); of
        p's own disc, for q behind p."""
        front = zq < zf_
        cov_q = (rq - (d - 0.5)).clamp_(0.0, 1.0)
        wf = torch.where(front, cov_q * iq, 0.0)
        cov_p = (rp_ - (d - 0.5)).clamp_(0.0, 1.0)
        wo = torch.where(front, 0.0, torch.minimum(cov_q, cov_p) * torch.maximum(iq, ip_))
        wh = torch.where(zq > zb_, cov_p * ip_, 0.0)
        return wf, wo, wh

    table = offsets(reach, bokeh)
    near_max = radius  # the largest radius within the band's square window (Chebyshev radius k)
    k = 0
    while table:
        band = [o for o in table if o[2] <= k]
        table = table[len(band):]
        if k > 0:
            near_max = F.max_pool2d(F.pad(near_max[:, None], (1, 1, 1, 1), mode="replicate"), 3, stride=1)[:, 0]
        k += 1
        if not band:
            continue
        # Only pixels with a neighbour whose radius reaches this band's distances get any weight
        # from it: past the first rings of a mostly sharp frame, few do.
        active = near_max > band[0][2] - 0.5
        count = int(active.sum())
        if count == 0:
            continue
        if count > COMPACT_SHARE * active.numel():
            for dy, dx, d in band:
                ys, xs = slice(pad + dy, pad + dy + h), slice(pad + dx, pad + dx + w)
                wf, wo, wh = weights(rp[:, ys, xs], zp[:, ys, xs], ip[:, ys, xs], radius, inv_area, z_front,
                                     z_behind, d)
                cq = cp[:, :, ys, xs]
                s_front.addcmul_(wf[:, None], cq)
                s_own.addcmul_(wo[:, None], cq)
                s_hid.addcmul_(wh[:, None], cq)
                w_front += wf
                w_own += wo
                w_hid += wh
            continue
        idx = active.reshape(-1).nonzero().squeeze(1)
        y, x = (idx // w) % h, idx % w
        base = idx - y * w - x
        rp_c, ip_c = r_flat[idx], i_flat[idx]
        zf_c, zb_c = z_front.reshape(-1)[idx], z_behind.reshape(-1)[idx]
        sf, so, sh = (torch.zeros(len(idx), 3, device=c.device) for _ in range(3))
        wf_sum, wo_sum, wh_sum = (torch.zeros(len(idx), device=c.device) for _ in range(3))
        for dy, dx, d in band:
            q = base + (y + dy).clamp(0, h - 1) * w + (x + dx).clamp(0, w - 1)
            wf, wo, wh = weights(r_flat[q], z_flat[q], i_flat[q], rp_c, ip_c, zf_c, zb_c, d)
            cq = c_flat[q]
            sf.addcmul_(wf[:, None], cq)
            so.addcmul_(wo[:, None], cq)
            sh.addcmul_(wh[:, None], cq)
            wf_sum += wf
            wo_sum += wo
            wh_sum += wh
        if s_front_px is None:
            s_front_px, s_own_px, s_hid_px = (torch.zeros_like(c_flat) for _ in range(3))
        s_front_px.index_add_(0, idx, sf)
        s_own_px.index_add_(0, idx, so)
        s_hid_px.index_add_(0, idx, sh)
        w_front.view(-1).index_add_(0, idx, wf_sum)
        w_own.view(-1).index_add_(0, idx, wo_sum)
        w_hid.view(-1).index_add_(0, idx, wh_sum)
    s_front, s_own, s_hid = s_front.permute(0, 2, 3, 1), s_own.permute(0, 2, 3, 1), s_hid.permute(0, 2, 3, 1)
    if s_front_px is not None:
        s_front, s_own = s_front + s_front_px.view_as(c), s_own + s_own_px.view_as(c)
        s_hid = s_hid + s_hid_px.view_as(c)
    alpha = w_front.clamp(max=1.0)[..., None]
    front_mean = s_front / w_front.clamp_min(1e-12)[..., None]
    # what p's own layer does not cover (its silhouette) shows what lies behind it
    deficit = torch.where(w_hid > 0.0, (1.0 - w_own).clamp(0.0, 1.0), 0.0)[..., None]
    hidden = s_hid / w_hid.clamp_min(1e-12)[..., None]
    own_mean = (s_own + deficit * hidden) / (w_own[..., None] + deficit)  # p itself always contributes
    return (alpha * front_mean + (1.0 - alpha) * own_mean).contiguous()
