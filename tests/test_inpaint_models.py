"""Learned inpainting: LaMa (big-lama) and MI-GAN as engines, and ``inpaint.learned``.

Full-size networks are only built on the meta device (keys, shapes, parameter counts);
everything that runs is a tiny instance of the same classes with seeded random weights.

Reference numbers below were taken from the reference code itself, run outside the package:
advimman/lama ``saicinpainting/training/modules/ffc.py`` ``FFCResNetGenerator`` built from
``configs/training/big-lama.yaml`` (with its tiny variant ngf 8, 2 downsamplings, 2 blocks),
and Picsart-AI-Research/MI-GAN ``lib/model_zoo/migan_inference.py`` ``Generator`` (tiny:
resolution 32, ch_base 256, ch_max 32). Our seeded state dicts (:func:`seeded_state_dict`)
were loaded into the reference networks with ``strict=True``, which is the proof that the
names and shapes match, and the reference outputs on the inputs below are recorded here. At
full size the same runs gave: big-lama (seed 11, gain 0.6, a 64 x 48 input) outputs within
1.8e-7 of the reference's (their spread: 0.42 .. 0.61), MI-GAN 256 and 512 bit-identical.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import io
import json
import zipfile

import numpy as np
import pytest
import torch

from photo3d_fast.depth.backends import EngineOptions
from photo3d_fast.engines import engine_from_module
from photo3d_fast.engines import registry as registry_mod
from photo3d_fast.errors import Photo3DError
from photo3d_fast.inpaint.learned import (
    INPAINT_MODELS,
    engine_input_shape,
    inpaint_learned,
    lama_side,
    lama_work_size,
    learned_inpaint_ready,
    migan_window,
    run_lama,
    run_migan,
)
from photo3d_fast.models.lama import (
    irfft2_ortho,
    lama,
    load_lama_weights,
    read_state_dict,
    rfft2_ortho,
)
from photo3d_fast.models.migan import MiganGenerator, load_migan_weights, migan

HAS_ORT = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnxscript") is not None
needs_ort = pytest.mark.skipif(not HAS_ORT, reason="onnxruntime/onnxscript not installed (pip install photo3d_fast[onnx])")

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """An empty cache and fresh in-process engine memo tables for every test."""
    from photo3d_fast import engines

    monkeypatch.setenv("PHOTO3D_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(engines, "_ENGINES", {})
    monkeypatch.setattr(engines, "_MODULES", {})
    return tmp_path / "cache"


# -- shared random weights and inputs (the same code ran against the references) ----------


def seeded_state_dict(module: torch.nn.Module, seed: int, gain: float = 2.0**0.5) -> dict[str, torch.Tensor]:
    """Every float tensor of ``module``'s state dict drawn from numpy's seeded generator (not
    torch's initialisers, which may change between versions): conv weights N(0, gain^2 /
    fan_in), biases and BN means N(0, 0.01), BN scales U(0.8, 1.2), BN variances
    U(0.5, 1.5), MI-GAN's noise N(0, 1) and noise strengths N(0, 0.25). MI-GAN's
    zero-insertion pattern and integer buffers keep their values."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, v in sorted(module.state_dict().items()):
        if not v.is_floating_point() or k.endswith("filter_const"):
            out[k] = v.clone()
            continue
        shape = tuple(v.shape)
        if k.endswith("running_var"):
            a = rng.uniform(0.5, 1.5, shape)
        elif k.endswith(("running_mean", "bias")):
            a = rng.normal(0.0, 0.1, shape)
        elif len(shape) == 1:
            a = rng.uniform(0.8, 1.2, shape)
        elif len(shape) == 4:
            a = rng.normal(0.0, gain / np.sqrt(np.prod(shape[1:])), shape)
        else:
            a = rng.normal(0.0, 0.5 if len(shape) == 0 else 1.0, shape)
        out[k] = torch.from_numpy(np.asarray(a, dtype=np.float32))
    return out


def lama_input(seed: int, h: int, w: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    img = rng.uniform(0, 1, (1, 3, h, w)).astype(np.float32)
    mask = np.zeros((1, 1, h, w), np.float32)
    mask[..., h // 4 : h // 2 + 3, w // 3 : w - 5] = 1
    return torch.from_numpy(np.concatenate([img * (1 - mask), mask], 1))


def migan_input(seed: int, r: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    img = rng.uniform(-1, 1, (1, 3, r, r)).astype(np.float32)
    known = np.ones((1, 1, r, r), np.float32)
    known[..., r // 4 : r // 2 + 3, r // 3 : r - 5] = 0
    return torch.from_numpy(np.concatenate([known - 0.5, img * known], 1))


PROBES = [(0, 0, 0), (1, 5, 7), (2, 11, 3), (0, 13, 20), (1, 31, 31), (2, 20, 17)]


def summary(y: torch.Tensor) -> tuple[float, float, list[float]]:
    y = y.double()
    return float(y.sum()), float((y * y).sum()), [float(y[0, c, i, j]) for c, i, j in PROBES]


def _tiny_lama(seed: int = 7) -> torch.nn.Module:
    m = lama("tiny").eval()
    m.load_state_dict(seeded_state_dict(m, seed))
    return m


def _tiny_migan(seed: int = 9) -> torch.nn.Module:
    m = migan("tiny").eval()
    m.load_state_dict(seeded_state_dict(m, seed, gain=1.0))
    return m


# -- the FFT as matrix products -----------------------------------------------------------


@pytest.mark.parametrize("hw", [(8, 8), (7, 9), (16, 12), (5, 6), (1, 4), (6, 1)])
def test_dft_matmuls_equal_torch_fft(hw):
    h, w = hw
    gen = torch.Generator().manual_seed(h * 100 + w)
    x = torch.randn(2, 3, h, w, generator=gen, dtype=torch.float64)
    want = torch.fft.rfftn(x, dim=(-2, -1), norm="ortho")
    # the reference's layout: (N, C, 2, H, Wf) viewed as (N, 2C, H, Wf)
    want = torch.stack((want.real, want.imag), dim=2).reshape(2, 6, h, w // 2 + 1)
    torch.testing.assert_close(rfft2_ortho(x), want, rtol=0, atol=1e-12)
    spec = torch.randn(2, 6, h, w // 2 + 1, generator=gen, dtype=torch.float64)  # not Hermitian-consistent
    s = spec.view(2, 3, 2, h, w // 2 + 1)
    back = torch.fft.irfftn(torch.complex(s[:, :, 0], s[:, :, 1]), s=(h, w), dim=(-2, -1), norm="ortho")
    torch.testing.assert_close(irfft2_ortho(spec, h, w), back, rtol=0, atol=1e-12)
    torch.testing.assert_close(irfft2_ortho(rfft2_ortho(x), h, w), x, rtol=0, atol=1e-12)


# -- forward shapes -----------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 32, 40), (2, 16, 16), (1, 8, 28)])
def test_tiny_lama_forward_shape(shape):
    n, h, w = shape
    with torch.no_grad():
        y = _tiny_lama()(torch.rand(n, 4, h, w))
    assert y.shape == (n, 3, h, w) and y.dtype == torch.float32
    assert (y >= 0).all() and (y <= 1).all() and y.std() > 0.01


def test_lama_rejects_sizes_off_its_multiple():
    with pytest.raises(ValueError, match="multiples of 4"):
        _tiny_lama()(torch.rand(1, 4, 32, 30))


def test_tiny_migan_forward_shape_and_fixed_size():
    m = _tiny_migan()
    with torch.no_grad():
        y = m(torch.rand(2, 4, 32, 32))
    assert y.shape == (2, 3, 32, 32) and torch.isfinite(y).all() and y.std() > 0.01
    with pytest.raises(ValueError, match=r"takes \(N, 4, 32, 32\)"):
        m(torch.rand(1, 4, 64, 64))


# -- full-size key sets, shapes, parameter counts (meta device) ----------------------------

# (state-dict entries, parameters, sha256 of the sorted "key (shape)" lines), all three
# computed from the reference networks (see the module docstring); big-lama has 51M
# parameters as its paper says, MI-GAN 512 6.0M.
FULL_SIZE = {
    "big-lama": (989, 50_975_875, "b9660a63a537ae9b5f5eda6a0fb41324397efaf40b006f27d1714f021a78f613"),
    "migan-512": (177, 5_973_366, "f53bfbcc8c6e0be6c70a03d407cba3afe6655cbd5c6ecf91c7348db6dcd194f1"),
    "migan-256": (154, 5_943_617, "e2394f2d3a4c2cd86d0cccdbf750254c6dbf28b8414dc73d46da89f96cf372bc"),
}


@pytest.mark.parametrize("name", sorted(FULL_SIZE))
def test_full_size_state_dict_equals_the_reference(name):
    n_keys, n_params, digest = FULL_SIZE[name]
    with torch.device("meta"):
        m = lama("big-lama") if name == "big-lama" else migan(name)
    sd = m.state_dict()
    assert len(sd) == n_keys
    assert sum(p.numel() for p in m.parameters()) == n_params
    listing = "\n".join(f"{k} {tuple(v.shape)}" for k, v in sorted(sd.items()))
    assert hashlib.sha256(listing.encode()).hexdigest() == digest
    spot = {  # a few entries by name, so that a failure says where
        "big-lama": {
            "model.1.ffc.convl2l.weight": (64, 4, 7, 7),
            "model.4.ffc.convl2g.weight": (384, 256, 3, 3),
            "model.4.bn_g.running_var": (384,),
            "model.22.conv2.ffc.convg2g.fu.conv_layer.weight": (384, 384, 1, 1),
            "model.5.conv1.ffc.convg2g.conv1.0.weight": (192, 384, 1, 1),
            "model.30.weight": (128, 64, 3, 3),
            "model.34.weight": (3, 64, 7, 7),
        },
        "migan-512": {
            "encoder.b512.fromrgb.weight": (64, 4, 1, 1),
            "encoder.b512.conv2.downsample.filter.weight": (64, 1, 4, 4),
            "synthesis.b512.conv1.noise_const": (512, 512),
            "synthesis.b512.upsample.filter_const": (1, 1, 512, 512),
            "synthesis.b4.torgb.weight": (3, 512, 1, 1),
        },
        "migan-256": {"encoder.b256.fromrgb.weight": (128, 4, 1, 1), "synthesis.b256.conv2.noise_strength": ()},
    }[name]
    for k, shape in spot.items():
        assert tuple(sd[k].shape) == shape, k


# -- equivalence with the reference code -----------------------------------------------------

# summary() of the reference networks' outputs (see the module docstring):
# tiny LaMa, seeded_state_dict(seed 7), lama_input(3, 32, 40): sigmoid output in [0, 1].
LAMA_TINY_REF = (1629.855191168317, 1042.8939012158723,
                 [0.9761977791786194, 0.7653523087501526, 0.1128038540482521, 0.31003135442733765,
                  0.7479072213172913, 0.5363368988037109])
# tiny MI-GAN, seeded_state_dict(seed 9, gain 1), migan_input(4, 32).
MIGAN_TINY_REF = (-1093.9033475271426, 6382.244920006693,
                  [0.37211182713508606, 1.8991206884384155, 0.44908368587493896, 0.7235056161880493,
                   0.12765632569789886, 0.9479943513870239])


def test_tiny_lama_matches_reference_output():
    with torch.no_grad():
        s, ss, probes = summary(_tiny_lama(7)(lama_input(3, 32, 40)))
    # our DFT-by-matmul differs from pocketfft by ~1e-6 per value (the reference run: 1.1e-6)
    assert s == pytest.approx(LAMA_TINY_REF[0], rel=1e-5)
    assert ss == pytest.approx(LAMA_TINY_REF[1], rel=1e-5)
    np.testing.assert_allclose(probes, LAMA_TINY_REF[2], rtol=0, atol=2e-5)


def test_tiny_migan_matches_reference_output():
    with torch.no_grad():
        s, ss, probes = summary(_tiny_migan(9)(migan_input(4, 32)))
    assert s == pytest.approx(MIGAN_TINY_REF[0], rel=1e-5)
    assert ss == pytest.approx(MIGAN_TINY_REF[1], rel=1e-5)
    np.testing.assert_allclose(probes, MIGAN_TINY_REF[2], rtol=0, atol=1e-4)


# -- ONNX export + ONNX Runtime ----------------------------------------------------------------


@needs_ort
@pytest.mark.parametrize("name", ["lama", "migan"])
def test_onnx_runtime_matches_torch(name):
    import onnx

    # Smaller than the tiny nets (one FFC block; MI-GAN at 16 x 16): an export costs CPU
    # seconds per hundred graph nodes, and these still hold every kind of node.
    if name == "lama":
        net, x = lama("tiny", n_blocks=1).eval(), lama_input(1, 32, 40)
        net.load_state_dict(seeded_state_dict(net, 1))
    else:
        net, x = MiganGenerator(16, ch_base=128, ch_max=16).eval(), migan_input(2, 16)
        net.load_state_dict(seeded_state_dict(net, 2, gain=1.0))
    with torch.no_grad():
        want = net(x)
    eng = engine_from_module(net, name=f"tiny-{name}", weights="seeded", shape=tuple(x.shape), runtime="onnxruntime",
                             quiet=True)
    got = eng(x)
    span = float(want.max() - want.min())
    assert got.shape == want.shape and span > 0
    assert float((got - want).abs().max()) <= 1e-4 * span
    ops = {n.op_type for n in onnx.load(str(eng.artifact), load_external_data=False).graph.node}
    assert "DFT" not in ops  # the FFT is matmuls: TensorRT parses every op of this graph
    if name == "lama":
        assert "MatMul" in ops


# -- reading the published checkpoint formats --------------------------------------------------


class _Poison:
    """Stands for OmegaConf / Lightning objects in a checkpoint: unpickling it for real would
    print (its __reduce__) and raise (its __setstate__)."""

    def __reduce__(self):
        return (print, ("pickled code ran",))


class _PoisonState:
    def __setstate__(self, state):
        raise AssertionError("pickled code ran")


def test_lightning_checkpoint_in_a_zip_loads_without_running_pickled_code(tmp_path, capsys):
    src = _tiny_lama(3)
    ckpt = {
        "state_dict": {**{f"generator.{k}": v for k, v in src.state_dict().items()},
                       "discriminator.model0.0.weight": torch.zeros(2, 2)},
        "hyper_parameters": {"config": _Poison(), "other": _PoisonState()},
        "callbacks": {_PoisonState: {"best_model_score": torch.tensor(1.0)}},
        "pytorch-lightning_version": "1.2.9",
    }
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    path = tmp_path / "big-lama.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("big-lama/config.yaml", "generator:\n  kind: ffc_resnet\n")
        z.writestr("big-lama/models/last.ckpt", b"not this one")
        z.writestr("big-lama/models/best.ckpt", buf.getvalue())
    dst = _tiny_lama(4)
    x = lama_input(0, 16, 24)
    with torch.no_grad():
        assert not torch.equal(dst(x), src(x))
        load_lama_weights(dst, path)
        torch.testing.assert_close(dst(x), src(x), rtol=0, atol=0)
    assert "pickled code ran" not in capsys.readouterr().out


def _write_safetensors(path, tensors: dict[str, torch.Tensor]) -> None:
    header, blobs, offset = {}, [], 0
    for k, v in tensors.items():
        b = v.contiguous().numpy().tobytes()
        header[k] = {"dtype": {torch.float32: "F32", torch.int64: "I64"}[v.dtype], "shape": list(v.shape),
                     "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    head = json.dumps(header).encode()
    path.write_bytes(len(head).to_bytes(8, "little") + head + b"".join(blobs))


def test_migan_torchscript_state_dict_and_safetensors_load(tmp_path):
    import warnings

    src = _tiny_migan(5)
    x = migan_input(1, 32)
    with torch.no_grad():
        want = src(x)
    traced = tmp_path / "migan_traced.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated, and is what MI-GAN's export uses
        torch.jit.trace(src, x).save(str(traced))
    plain = tmp_path / "migan_512_places2.pt"
    torch.save({f"model.{k}": v for k, v in src.state_dict().items()}, plain)  # a wrapper's prefix
    safe = tmp_path / "migan.safetensors"
    _write_safetensors(safe, src.state_dict())
    for f in (traced, plain, safe):
        dst = load_migan_weights(_tiny_migan(6), f)
        with torch.no_grad():
            torch.testing.assert_close(dst(x), want, rtol=0, atol=0)


def test_wrong_or_broken_weights_are_user_errors(tmp_path):
    other = tmp_path / "migan.pt"
    torch.save(_tiny_migan().state_dict(), other)
    with pytest.raises(Photo3DError, match=r"is not the big-lama generator .*missing keys: model\.1\.bn_l"):
        load_lama_weights(_tiny_lama(), other)
    torch.save(lama("tiny", ngf=16).state_dict(), other)
    with pytest.raises(Photo3DError, match="wrong shape"):
        load_lama_weights(_tiny_lama(), other)
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(Photo3DError, match="could not be read"):
        read_state_dict(junk)
    with pytest.raises(Photo3DError, match="does not exist"):
        load_migan_weights(_tiny_migan(), tmp_path / "nope.pt")
    empty_zip = tmp_path / "big-lama.zip"
    with zipfile.ZipFile(empty_zip, "w") as z:
        z.writestr("big-lama/config.yaml", "")
    with pytest.raises(Photo3DError, match="zip without a checkpoint"):
        read_state_dict(empty_zip)


# -- inpaint_learned ---------------------------------------------------------------------------


def test_registry_entries():
    assert INPAINT_MODELS == ("lama", "migan")
    lama_spec, migan_spec = registry_mod.MODELS["lama"], registry_mod.MODELS["migan"]
    assert lama_spec.task == migan_spec.task == "inpaint"
    assert lama_spec.licence == "Apache-2.0" and migan_spec.licence == "MIT"
    assert registry_mod.get_spec("big-lama", task="inpaint") is lama_spec
    assert registry_mod.get_spec("migan-512").name == "migan"
    assert engine_input_shape("migan", 3000, 4000) == (1, 4, 512, 512)
    assert engine_input_shape("lama", 1080, 1920) == (1, 4, 1152, 1920)  # own size, padded to the grid
    assert engine_input_shape("lama", 3000, 4000) == (1, 4, 1536, 2048)  # scaled to 2048 on the long side
    assert engine_input_shape("lama", 500, 333) == (1, 4, 512, 352)
    assert engine_input_shape("lama", 60, 20) == (1, 4, 64, 24)  # small: multiples of 8
    assert lama_work_size(4001, 3001) == (2048, 1536, 2048, 1536)
    assert lama_work_size(3, 5000) == (1, 2048, 8, 2048)


def test_lama_side_grid():
    sides = [lama_side(n) for n in range(1, 4097)]
    assert all(s >= n and s % 8 == 0 for n, s in zip(range(1, 4097), sides))
    assert sides == sorted(sides)
    assert max(s / n for n, s in zip(range(65, 4097), sides[64:])) <= 1.125
    assert len({s for s in sides if 1024 < s <= 2048}) == 8  # eight engine sizes per octave
    assert sides[63] == 64 and sides[1079] == 1152 and sides[1919] == 1920


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3)) * np.array([1.0, 0.6, 0.3])
    return np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)


def _hole(h: int, w: int, box: tuple[int, int, int, int]) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[box[0] : box[1], box[2] : box[3]] = True
    m[box[0], box[3] : box[3] + 4] = True  # and a thin tail: not only rectangles
    return m


def _check_fill(out: np.ndarray, rgb: np.ndarray, hole: np.ndarray) -> None:
    assert out.shape == rgb.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[~hole], rgb[~hole])  # known pixels, bit for bit
    assert (out[hole] != rgb[hole]).any(axis=-1).mean() > 0.9  # the magenta sentinel is gone


@pytest.mark.parametrize("size, box, max_side", [((40, 56), (10, 22, 15, 35), 2048), ((50, 70), (5, 30, 40, 60), 32)])
def test_run_lama_keeps_known_pixels_and_fills_the_hole(size, box, max_side):
    h, w = size
    rgb, hole = _photo(h, w), _hole(h, w, box)
    rgb[hole] = (255, 0, 255)
    net = _tiny_lama()
    out = run_lama(rgb, hole, net, max_side=max_side)
    _check_fill(out, rgb, hole)
    other = rgb.copy()
    other[hole] = (0, 255, 0)  # hole content must not matter
    np.testing.assert_array_equal(run_lama(other, hole, net, max_side=max_side), out)
    if max_side >= max(h, w):  # the reference preprocessing: symmetric padding, no resampling
        img = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
        m = torch.from_numpy(hole)[None, None].float()
        x = torch.cat([img * (1 - m), m], 1).numpy()
        _, _, hp, wp = lama_work_size(h, w, max_side)
        x = np.pad(x, ((0, 0), (0, 0), (0, hp - h), (0, wp - w)), mode="symmetric")
        with torch.no_grad():
            y = net(torch.from_numpy(x))[0, :, :h, :w].permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(out[hole], np.round(y[hole] * 255).astype(np.uint8))


@pytest.mark.parametrize("size, box", [((80, 100), (30, 40, 50, 60)), ((90, 90), (5, 80, 10, 60)), ((20, 28), (4, 10, 3, 9))])
def test_run_migan_crops_around_the_hole(size, box):
    h, w = size
    rgb, hole = _photo(h, w, 1), _hole(h, w, box)
    rgb[hole] = (255, 0, 255)
    y0, y1, x0, x1 = migan_window(hole, 32)
    ys, xs = np.nonzero(hole)
    assert y0 <= ys.min() and ys.max() < y1 and x0 <= xs.min() and xs.max() < x1
    side = max(32, 2 * (np.ptp(ys) + 1), 2 * (np.ptp(xs) + 1))
    assert (y1 - y0, x1 - x0) == (min(side, h), min(side, w))
    out = run_migan(rgb, hole, _tiny_migan(), size=32)
    _check_fill(out, rgb, hole)
    other = rgb.copy()
    other[hole] = (0, 255, 0)
    np.testing.assert_array_equal(run_migan(other, hole, _tiny_migan(), size=32), out)


def _tiny_registry(monkeypatch, tmp_path) -> dict[str, str]:
    """The registry's lama and migan built tiny, with seeded weight files to pass as --weights."""
    files = {}
    for name, net, build in (("lama", _tiny_lama(), lambda: lama("tiny")), ("migan", _tiny_migan(), lambda: migan("tiny"))):
        spec = registry_mod.MODELS[name]
        extra = {"input_size": 32} if name == "migan" else {}
        monkeypatch.setitem(registry_mod.MODELS, name, dataclasses.replace(spec, build=build, **extra))
        files[name] = str(tmp_path / f"{name}.pt")
        torch.save(net.state_dict(), files[name])
    return files


@pytest.mark.parametrize("model", ["lama", "migan"])
def test_inpaint_learned_through_the_engine_layer(model, monkeypatch, tmp_path):
    files = _tiny_registry(monkeypatch, tmp_path)
    rgb, hole = _photo(48, 64, 2), _hole(48, 64, (12, 30, 20, 41))
    rgb[hole] = (255, 0, 255)
    out = inpaint_learned(rgb, hole, model, EngineOptions(runtime="torch", device="cpu", weights=files[model]))
    _check_fill(out, rgb, hole)
    direct = (run_lama(rgb, hole, _tiny_lama()) if model == "lama"
              else run_migan(rgb, hole, _tiny_migan(), size=32))
    np.testing.assert_array_equal(out, direct)
    none = np.zeros_like(hole)
    np.testing.assert_array_equal(inpaint_learned(rgb, none, model, EngineOptions(runtime="torch")), rgb)


@pytest.mark.parametrize("model", ["lama", "migan"])
def test_missing_weights_name_the_model_and_the_way_out(model, private_cache):
    rgb, hole = _photo(16, 16), _hole(16, 16, (4, 8, 4, 8))
    assert not learned_inpaint_ready(model)
    with pytest.raises(Photo3DError) as e:
        inpaint_learned(rgb, hole, model, EngineOptions(fetch=False))
    msg = str(e.value)
    assert model in msg and "photo3d engines fetch" in msg and "--weights" in msg


def test_ready_when_the_weights_are_in_the_cache(private_cache):
    from photo3d_fast.engines.weights import download_path

    spec = registry_mod.MODELS["migan"]
    path = download_path(spec)
    path.parent.mkdir(parents=True)
    torch.save({}, path)
    assert learned_inpaint_ready("migan") and not learned_inpaint_ready("lama")
    with pytest.raises(Photo3DError, match="unknown inpaint model 'depth-anything-v2-small'"):
        learned_inpaint_ready("depth-anything-v2-small")
