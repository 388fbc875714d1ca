"""Learned depth models (Depth Anything V2, MiDaS v3 DPT-Large) and their pre/post-processing.

Full-size models are only built on the meta device (key names, shapes, parameter counts);
everything that runs uses tiny random-init instances of the same classes.

Reference numbers below were taken from the reference code itself (Depth-Anything-V2
``depth_anything_v2/dpt.py``, MiDaS ``midas/dpt_depth.py`` with timm 0.6.13): building
those models and ours, the key sets and shapes are identical and, with the same random
weights loaded into both, outputs agree to ~1e-7 (see the models' docstrings).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from photo3d_fast.depth.learned import (
    DEPTH_ANYTHING_PREPROCESS,
    MIDAS_PREPROCESS,
    network_size,
    postprocess,
    preprocess,
    run_depth_model,
)
from photo3d_fast.errors import Photo3DError
from photo3d_fast.models.depth_anything import (
    depth_anything_v2,
    depth_anything_v2_tiny,
    load_depth_anything_v2_weights,
)
from photo3d_fast.models.midas import (
    load_midas_weights,
    midas_dpt_large,
    midas_dpt_large_tiny,
)
from photo3d_fast.models.vit import (
    VisionTransformer,
    dinov2_config,
    timm_vit_large_384_config,
)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on one thread


def _live_output(conv: torch.nn.Conv2d) -> None:
    # With random weights the last ReLU often clips everything to 0; a positive bias keeps
    # the output varying so that comparisons below compare something.
    with torch.no_grad():
        conv.bias.fill_(0.05)


def _tiny_dav2(seed: int = 0):
    torch.manual_seed(seed)
    m = depth_anything_v2_tiny().eval()
    _live_output(m.depth_head.scratch.output_conv2[2])
    return m


def _tiny_midas(seed: int = 0, **kw):
    torch.manual_seed(seed)
    m = midas_dpt_large_tiny(**kw).eval()
    _live_output(m.scratch.output_conv[4])
    return m


# -- forward shapes ---------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 70, 126), (2, 140, 98), (1, 98, 98), (1, 14, 28), (1, 98, 42)])
def test_tiny_depth_anything_forward_shape(shape):
    n, h, w = shape
    m = _tiny_dav2()
    x = torch.randn(n, 3, h, w)
    with torch.no_grad():
        y = m(x)
    assert y.shape == (n, 1, h, w)
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all() and (y >= 0).all()
    assert y.max() > y.min()


@pytest.mark.parametrize("shape", [(1, 64, 160), (2, 96, 96), (1, 160, 32), (1, 32, 32)])
def test_tiny_midas_forward_shape(shape):
    n, h, w = shape
    m = _tiny_midas()
    with torch.no_grad():
        y = m(torch.randn(n, 3, h, w))
    assert y.shape == (n, 1, h, w)
    assert torch.isfinite(y).all() and (y >= 0).all()
    assert y.max() > y.min()


def test_depth_anything_rejects_sizes_off_the_patch_grid():
    with pytest.raises(ValueError, match="multiples of 14"):
        _tiny_dav2()(torch.randn(1, 3, 70, 71))


# -- full-size key sets, shapes, parameter counts (meta device) --------------------------

DAV2_EXPECTED = {
    # variant: (number of state-dict entries, parameter count, embed dim, blocks, head features)
    "vits": (239, 24_785_089, 384, 12, 64),
    "vitb": (239, 97_470_785, 768, 12, 128),
    "vitl": (407, 335_315_649, 1024, 24, 256),
}


@pytest.mark.parametrize("variant", sorted(DAV2_EXPECTED))
def test_depth_anything_full_size_state_dict(variant):
    n_keys, n_params, D, depth, feat = DAV2_EXPECTED[variant]
    oc = {"vits": [48, 96, 192, 384], "vitb": [96, 192, 384, 768], "vitl": [256, 512, 1024, 1024]}[variant]
    with torch.device("meta"):
        m = depth_anything_v2(variant)
    sd = m.state_dict()
    assert len(sd) == n_keys
    assert sum(p.numel() for p in m.parameters()) == n_params
    last = depth - 1
    expected = {
        "pretrained.cls_token": (1, 1, D),
        "pretrained.pos_embed": (1, 1370, D),
        "pretrained.mask_token": (1, D),
        "pretrained.patch_embed.proj.weight": (D, 3, 14, 14),
        f"pretrained.blocks.{last}.ls1.gamma": (D,),
        f"pretrained.blocks.{last}.ls2.gamma": (D,),
        f"pretrained.blocks.{last}.attn.qkv.weight": (3 * D, D),
        f"pretrained.blocks.{last}.attn.qkv.bias": (3 * D,),
        f"pretrained.blocks.{last}.mlp.fc1.weight": (4 * D, D),
        f"pretrained.blocks.{last}.mlp.fc2.weight": (D, 4 * D),
        "pretrained.norm.weight": (D,),
        "depth_head.projects.0.weight": (oc[0], D, 1, 1),
        "depth_head.projects.3.bias": (oc[3],),
        "depth_head.resize_layers.0.weight": (oc[0], oc[0], 4, 4),
        "depth_head.resize_layers.1.weight": (oc[1], oc[1], 2, 2),
        "depth_head.resize_layers.3.weight": (oc[3], oc[3], 3, 3),
        "depth_head.scratch.layer1_rn.weight": (feat, oc[0], 3, 3),
        "depth_head.scratch.layer4_rn.weight": (feat, oc[3], 3, 3),
        "depth_head.scratch.refinenet4.resConfUnit1.conv1.weight": (feat, feat, 3, 3),
        "depth_head.scratch.refinenet1.resConfUnit2.conv2.bias": (feat,),
        "depth_head.scratch.refinenet3.out_conv.weight": (feat, feat, 1, 1),
        "depth_head.scratch.output_conv1.weight": (feat // 2, feat, 3, 3),
        "depth_head.scratch.output_conv2.0.weight": (32, feat // 2, 3, 3),
        "depth_head.scratch.output_conv2.2.weight": (1, 32, 1, 1),
        "depth_head.scratch.output_conv2.2.bias": (1,),
    }
    for k, shape in expected.items():
        assert k in sd, k
        assert tuple(sd[k].shape) == shape, (k, tuple(sd[k].shape), shape)
    # Not in the released checkpoints: no register tokens, no cls-token readout, no bias
    # on the layer*_rn convs, nothing at the Identity slot of resize_layers.
    for k in sd:
        assert "register_tokens" not in k and "readout_projects" not in k, k
        assert not k.startswith("pretrained.head"), k
    assert "depth_head.scratch.layer1_rn.bias" not in sd
    assert not any(k.startswith("depth_head.resize_layers.2.") for k in sd)
    assert not any(k.startswith(f"pretrained.blocks.{depth}.") for k in sd)


def test_midas_full_size_state_dict():
    with torch.device("meta"):
        m = midas_dpt_large()
    sd = m.state_dict()
    # 344M with the 1000-class head, as the reference prints when it loads dpt_large_384.
    assert sum(p.numel() for p in m.parameters()) == 344_055_465
    assert len(sd) == 368
    expected = {
        "pretrained.model.cls_token": (1, 1, 1024),
        "pretrained.model.pos_embed": (1, 577, 1024),
        "pretrained.model.patch_embed.proj.weight": (1024, 3, 16, 16),
        "pretrained.model.blocks.23.attn.qkv.weight": (3072, 1024),
        "pretrained.model.blocks.23.mlp.fc2.weight": (1024, 4096),
        "pretrained.model.norm.weight": (1024,),
        "pretrained.model.head.weight": (1000, 1024),
        "pretrained.model.head.bias": (1000,),
        "pretrained.act_postprocess1.0.project.0.weight": (1024, 2048),
        "pretrained.act_postprocess4.0.project.0.bias": (1024,),
        "pretrained.act_postprocess1.3.weight": (256, 1024, 1, 1),
        "pretrained.act_postprocess1.4.weight": (256, 256, 4, 4),
        "pretrained.act_postprocess2.4.weight": (512, 512, 2, 2),
        "pretrained.act_postprocess3.3.weight": (1024, 1024, 1, 1),
        "pretrained.act_postprocess4.4.weight": (1024, 1024, 3, 3),
        "scratch.layer1_rn.weight": (256, 256, 3, 3),
        "scratch.layer4_rn.weight": (256, 1024, 3, 3),
        "scratch.refinenet2.resConfUnit1.conv2.weight": (256, 256, 3, 3),
        "scratch.refinenet4.out_conv.bias": (256,),
        "scratch.output_conv.0.weight": (128, 256, 3, 3),
        "scratch.output_conv.2.weight": (32, 128, 3, 3),
        "scratch.output_conv.4.weight": (1, 32, 1, 1),
        "scratch.output_conv.4.bias": (1,),
    }
    for k, shape in expected.items():
        assert k in sd, k
        assert tuple(sd[k].shape) == shape, (k, tuple(sd[k].shape), shape)
    for k in sd:
        assert "ls1" not in k and "mask_token" not in k, k
    assert not any(k.startswith("pretrained.act_postprocess3.4.") for k in sd)
    assert "scratch.layer1_rn.bias" not in sd


# -- position embeddings ----------------------------------------------------------------


def _dinov2_reference_pos(pos: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
    # DINOv2's interpolate_pos_encoding as Depth Anything V2 ships it, restated with F.interpolate.
    n = pos.shape[1] - 1
    g0 = int(math.sqrt(n))
    if gh * gw == n and gh == gw:
        return pos
    grid = pos[:, 1:].reshape(1, g0, g0, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, scale_factor=((gh + 0.1) / g0, (gw + 0.1) / g0), mode="bicubic", antialias=False)
    return torch.cat((pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)), dim=1)


@pytest.mark.parametrize("grid", [(37, 37), (37, 49), (49, 37), (10, 7), (1, 1), (74, 74), (36, 37)])
def test_dinov2_pos_embed_matches_reference_interpolation(grid):
    cfg = dinov2_config("vits")
    cfg.update(embed_dim=8, depth=1, num_heads=2)
    torch.manual_seed(1)
    vit = VisionTransformer(**cfg)
    with torch.no_grad():
        vit.pos_embed.normal_()
        got = vit.interpolate_pos_encoding(*grid)
        want = _dinov2_reference_pos(vit.pos_embed, *grid)
    assert got.shape == (1, 1 + grid[0] * grid[1], 8)
    if grid == (37, 37):
        assert torch.equal(got, want)  # the training grid is not resampled at all
    else:
        # Same samples and kernel; only the float32 summation order differs.
        torch.testing.assert_close(got, want, rtol=0, atol=2e-5)


@pytest.mark.parametrize("grid", [(24, 24), (12, 20), (31, 7)])
def test_midas_pos_embed_is_bilinear_resize(grid):
    cfg = timm_vit_large_384_config()
    cfg.update(embed_dim=8, depth=1, num_heads=2, num_classes=0)
    vit = VisionTransformer(**cfg)
    with torch.no_grad():
        vit.pos_embed.normal_()
        got = vit.interpolate_pos_encoding(*grid)
        g = vit.pos_embed[:, 1:].reshape(1, 24, 24, 8).permute(0, 3, 1, 2)
        g = F.interpolate(g, size=grid, mode="bilinear", align_corners=False)
        want = torch.cat((vit.pos_embed[:, :1], g.permute(0, 2, 3, 1).reshape(1, -1, 8)), dim=1)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_get_intermediate_layers_contract():
    m = _tiny_dav2()
    x = torch.randn(2, 3, 42, 56)
    with torch.no_grad():
        feats = m.pretrained.get_intermediate_layers(x, [1, 3], return_class_token=True)
        raw = m.pretrained.block_outputs(x, [1, 3])
        last2 = m.pretrained.get_intermediate_layers(x, 2)
    assert len(feats) == 2
    for (patch, cls), r in zip(feats, raw):
        assert patch.shape == (2, 12, 32) and cls.shape == (2, 32)
        normed = m.pretrained.norm(r)
        torch.testing.assert_close(patch, normed[:, 1:])
        torch.testing.assert_close(cls, normed[:, 0])
    torch.testing.assert_close(last2[1], feats[1][0])


# -- network size ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "hw, dav2, midas",
    [
        ((480, 640), (518, 686), (384, 512)),
        ((1080, 1920), (518, 924), (384, 672)),
        ((1920, 1080), (924, 518), (672, 384)),
        ((3000, 4000), (518, 686), (384, 512)),
        ((518, 518), (518, 518), (384, 384)),
        ((1, 1), (518, 518), (384, 384)),
        ((100, 200), (518, 1036), (192, 384)),  # minimal: the scale nearer 1 wins (1.92)
        ((518, 567), (518, 560), (384, 416)),  # 567/14 = 40.5 rounds half to even
        ((10, 1000), (518, 51800), (32, 384)),  # MiDaS: reference rounds to 0; we keep 32
    ],
)
def test_network_size_matches_reference_resize(hw, dav2, midas):
    assert network_size(*hw, DEPTH_ANYTHING_PREPROCESS) == dav2
    assert network_size(*hw, MIDAS_PREPROCESS) == midas


def test_network_size_rejects_empty():
    with pytest.raises(Photo3DError):
        network_size(0, 5, MIDAS_PREPROCESS)


# -- preprocess ------------------------------------------------------------------------


def _numpy_cubic_resize(img: np.ndarray, nh: int, nw: int) -> np.ndarray:
    """Independent cv2.INTER_CUBIC restatement: 4x4 Keys (a=-0.75) taps per output pixel,
    half-pixel centres, replicated border, float64."""

    def kernel(x):
        a = -0.75
        x = np.abs(x)
        return np.where(
            x <= 1,
            (a + 2) * x**3 - (a + 3) * x**2 + 1,
            np.where(x < 2, a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a, 0.0),
        )

    H, W = img.shape[:2]
    sy = (np.arange(nh) + 0.5) * H / nh - 0.5
    sx = (np.arange(nw) + 0.5) * W / nw - 0.5
    out = np.zeros((nh, nw, img.shape[2]))
    f = img.astype(np.float64)
    for dy in range(-1, 3):
        yi = np.floor(sy).astype(int) + dy
        wy = kernel(sy - yi)
        yi = np.clip(yi, 0, H - 1)
        for dx in range(-1, 3):
            xi = np.floor(sx).astype(int) + dx
            wx = kernel(sx - xi)
            xi = np.clip(xi, 0, W - 1)
            out += wy[:, None, None] * wx[None, :, None] * f[yi][:, xi]
    return out


@pytest.mark.parametrize("prep", [DEPTH_ANYTHING_PREPROCESS, MIDAS_PREPROCESS], ids=["dav2", "midas"])
@pytest.mark.parametrize("hw", [(123, 77), (40, 300), (7, 5)])
def test_preprocess_matches_cubic_reference(prep, hw):
    rng = np.random.default_rng(hw[0] * 1000 + hw[1])
    img = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
    x = preprocess(img, prep)
    nh, nw = network_size(*hw, prep)
    assert x.shape == (1, 3, nh, nw) and x.dtype == torch.float32
    mean = np.array(prep.mean)
    std = np.array(prep.std)
    want = (_numpy_cubic_resize(img, nh, nw) / 255.0 - mean) / std
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), want, rtol=0, atol=2e-5)
    # and torch's own bicubic (a = -0.75, half-pixel, no antialias) agrees
    t = F.interpolate(torch.from_numpy(img).permute(2, 0, 1)[None].double() / 255, size=(nh, nw), mode="bicubic")
    t = (t - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(x.double(), t, rtol=0, atol=2e-5)
    try:
        import cv2
    except ImportError:
        return
    c = cv2.resize(img / 255.0, (nw, nh), interpolation=cv2.INTER_CUBIC)
    # cv2 rounds sample positions to float32 ((dx + 0.5) * scale - 0.5 as float): at x ~ 500
    # that moves a sample by ~3e-5 px, i.e. up to ~1e-4 after / std on a sharp edge.
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), (c - mean) / std, rtol=0, atol=2e-4)


def test_preprocess_rejects_bad_images():
    with pytest.raises(Photo3DError):
        preprocess(np.zeros((4, 4), np.uint8), MIDAS_PREPROCESS)
    with pytest.raises(Photo3DError):
        preprocess(np.zeros((4, 4, 3), np.float32), MIDAS_PREPROCESS)


# -- postprocess -----------------------------------------------------------------------


@pytest.mark.parametrize("prep", [DEPTH_ANYTHING_PREPROCESS, MIDAS_PREPROCESS], ids=["dav2", "midas"])
def test_postprocess_size_range_and_reference_upsampling(prep):
    h, w, H, W = 28, 42, 61, 97
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    pred = (3.0 + 5.0 * xx + torch.sin(7 * yy))[None, None]
    out = postprocess(pred, (H, W), prep)
    assert out.shape == (H, W) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    assert out.min() == 0 and out.max() == 1  # the 0.5 / 99.5 percentiles are clipped
    # the same as the reference upsampling followed by an affine map
    up = F.interpolate(pred, size=(H, W), mode=prep.upsample_mode, align_corners=prep.align_corners)[0, 0].numpy()
    inner = (out > 0.01) & (out < 0.99)
    slope, icpt = np.polyfit(up[inner], out[inner], 1)
    np.testing.assert_allclose(out[inner], slope * up[inner] + icpt, atol=1e-5)
    assert slope > 0  # larger disparity stays nearer
    # (1, h, w) is accepted and gives the same
    np.testing.assert_array_equal(postprocess(pred[0], (H, W), prep), out)


def test_postprocess_constant_prediction_is_flat():
    out = postprocess(torch.full((1, 1, 14, 14), 3.0), (20, 30), DEPTH_ANYTHING_PREPROCESS)
    assert out.shape == (20, 30)
    assert np.all(out == 0.5)


def test_postprocess_refinement_moves_depth_edges_onto_photo_edges():
    # A step in depth at x = 0.5 of a 16x16 prediction, a photo with its edge at the same
    # place, upsampled 8x. The refined map must be sharper at the edge than bilinear.
    h, w, k = 16, 16, 8
    pred = torch.zeros(1, 1, h, w)
    pred[..., w // 2 :] = 1.0
    H, W = h * k, w * k
    photo = np.zeros((H, W, 3), np.uint8)
    photo[:, W // 2 :] = (200, 180, 160)
    photo[:, : W // 2] = (20, 30, 40)
    plain = postprocess(pred, (H, W), DEPTH_ANYTHING_PREPROCESS)
    refined = postprocess(pred, (H, W), DEPTH_ANYTHING_PREPROCESS, guide=photo)
    assert refined.shape == (H, W) and refined.dtype == np.float32
    assert refined.min() >= 0 and refined.max() <= 1
    band = slice(W // 2 - k, W // 2 + k)

    def mid_values(d):  # pixels neither near 0 nor near 1 = the width of the edge
        return int(((d[:, band] > 0.1) & (d[:, band] < 0.9)).sum())

    assert mid_values(refined) < mid_values(plain)
    # away from the edge both agree
    np.testing.assert_allclose(refined[:, : W // 4], plain[:, : W // 4], atol=0.05)
    np.testing.assert_allclose(refined[:, -W // 4 :], plain[:, -W // 4 :], atol=0.05)


def test_run_depth_model_with_a_module():
    m = _tiny_midas()
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)
    out = run_depth_model(img, m, MIDAS_PREPROCESS, refine=False)
    assert out.shape == (45, 70) and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1
    x = preprocess(img, MIDAS_PREPROCESS)
    with torch.no_grad():
        want = postprocess(m(x), (45, 70), MIDAS_PREPROCESS)
    np.testing.assert_array_equal(out, want)
    # refine=True runs too (photo smaller than 1.5x the network size: same result)
    np.testing.assert_array_equal(run_depth_model(img, m, MIDAS_PREPROCESS), out)

    def wrong(x):
        return x[:, :1, ::2]

    with pytest.raises(ValueError, match="expected"):
        run_depth_model(img, wrong, MIDAS_PREPROCESS)


# -- weights ---------------------------------------------------------------------------


def test_depth_anything_weights_round_trip(tmp_path):
    a = _tiny_dav2(seed=5)
    b = _tiny_dav2(seed=6)
    x = torch.randn(1, 3, 42, 70)
    path = tmp_path / "w.pth"
    # a DataParallel-style wrapper is accepted
    torch.save({"state_dict": {"module." + k: v for k, v in a.state_dict().items()}}, path)
    with torch.no_grad():
        assert not torch.equal(a(x), b(x))
        load_depth_anything_v2_weights(b, path)
        torch.testing.assert_close(b(x), a(x), rtol=0, atol=0)


def test_midas_weights_round_trip_and_headless(tmp_path):
    a = _tiny_midas(seed=5)
    path = tmp_path / "dpt.pt"
    torch.save(a.state_dict(), path)
    x = torch.randn(1, 3, 64, 96)
    b = load_midas_weights(_tiny_midas(seed=7), path)
    headless = load_midas_weights(_tiny_midas(seed=8, num_classes=0), path)  # drops head.*
    assert not hasattr(headless.pretrained.model, "head")
    with torch.no_grad():
        torch.testing.assert_close(b(x), a(x), rtol=0, atol=0)
        torch.testing.assert_close(headless(x), a(x), rtol=0, atol=0)


def test_wrong_weights_file_is_a_user_error(tmp_path):
    midas_file = tmp_path / "dpt_large_384.pt"
    torch.save(_tiny_midas().state_dict(), midas_file)
    with pytest.raises(Photo3DError, match=r"not a Depth Anything V2.*missing keys: .*pretrained\."):
        load_depth_anything_v2_weights(_tiny_dav2(), midas_file)
    dav2_file = tmp_path / "depth_anything_v2_vits.pth"
    torch.save(_tiny_dav2().state_dict(), dav2_file)
    with pytest.raises(Photo3DError, match=r"not the MiDaS.*unexpected keys: depth_head\."):
        load_midas_weights(_tiny_midas(), dav2_file)
    # same keys, other sizes
    torch.save(depth_anything_v2_tiny(embed_dim=64).state_dict(), dav2_file)
    with pytest.raises(Photo3DError, match="wrong shape"):
        load_depth_anything_v2_weights(_tiny_dav2(), dav2_file)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(Photo3DError, match="could not be read"):
        load_depth_anything_v2_weights(_tiny_dav2(), junk)
    with pytest.raises(Photo3DError, match="does not exist"):
        load_midas_weights(_tiny_midas(), tmp_path / "nope.pt")


# -- ONNX ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, sizes, multiple",
    [("dav2", [(70, 112), (98, 98), (42, 154)], 14), ("midas", [(64, 128), (96, 96), (32, 160)], 32)],
)
def test_onnx_export_dynamic_size_matches_torch(name, sizes, multiple):
    """Exported once with dynamic H, W; ORT must match torch at every size, including the
    DINOv2 training grid (98 = 7 x 14 for the tiny model, where pos-embeds are not resampled).
    Tolerance: max |ORT - torch| <= 1e-4 x the output's range."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from torch.export import Dim

    m = _tiny_dav2(seed=2) if name == "dav2" else _tiny_midas(seed=2)
    h0, w0 = sizes[0]
    gh, gw = Dim("gh", min=1, max=64), Dim("gw", min=1, max=64)
    prog = torch.onnx.export(
        m,
        (torch.randn(1, 3, h0, w0),),
        dynamo=True,
        opset_version=18,
        dynamic_shapes=({2: multiple * gh, 3: multiple * gw},),
        verbose=False,
    )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(prog.model_proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    for h, w in sizes:
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            want = m(x).numpy()
        got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        assert got.shape == want.shape == (1, 1, h, w)
        span = float(want.max() - want.min())
        assert span > 0
        assert np.abs(got - want).max() <= 1e-4 * span, (h, w)
