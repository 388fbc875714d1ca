"""The benchmark suite (photo3d_fast.benchmark): quick run, JSON schema, --compare, the
quality benchmark's ground truth and the depth metrics. Nothing here checks a timing's
value, only that measurements are well formed."""

from __future__ import annotations

import contextlib
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from photo3d_fast.benchmark import report
from photo3d_fast.benchmark.quality import depth_errors, evaluate_view, run, summarize
from photo3d_fast.benchmark.timing import Timer, copy_bandwidth, measure
from photo3d_fast.cli import main as photo3d
from photo3d_fast.scene.ldi import build_ldi
from photo3d_fast.render import Renderer
from photo3d_fast.synthetic import Plane, Rect, Scene, Texture, make_scene, reference_camera

ROOT = Path(__file__).resolve().parents[1]
STAGES = {"decode", "depth", "ldi", "render", "encode", "end-to-end"}


def _positive_finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> tuple[Path, str]:
    """One `photo3d bench --quick` run shared by the tests below (the expensive part):
    (its JSON file, what it printed)."""
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert photo3d(["bench", "--quick", "--json", str(out)]) == 0
    return out, printed.getvalue()


@pytest.fixture(scope="module")
def quick_json(quick_run) -> Path:
    return quick_run[0]


def test_quick_suite_writes_well_formed_json(quick_run):
    quick_json, out = quick_run
    data = json.loads(quick_json.read_text())
    assert data["schema"] == report.SCHEMA and data["mode"] == "quick"
    for key in ("device", "driver", "torch", "numpy", "python", "commit", "date", "cpu_count"):
        assert key in data["env"], key
    assert data["env"]["commit"] and data["env"]["device"]
    assert _positive_finite(data["copy_gbps"])
    assert {r["stage"] for r in data["rows"]} >= STAGES
    for r in data["rows"]:
        assert set(report.ROW_KEYS) <= set(r), r
        for key in ("median_ms", "p90_ms", "reps", "throughput"):
            assert _positive_finite(r[key]), (key, r)
        assert r["p90_ms"] >= r["median_ms"]
        if r["stage"] == "render":  # memory-bound: achieved rate against the copy bandwidth
            assert _positive_finite(r["gbps"]) and r["of_copy"] == pytest.approx(r["gbps"] / data["copy_gbps"])
    assert {r["impl"] for r in data["rows"] if r["stage"] == "depth"} == {"cues"}
    [clip] = data["clips"]
    assert set(report.CLIP_KEYS) <= set(clip)
    assert clip["extrapolated"] and clip["measured_frames"] < clip["frames"] == 150
    for key in ("per_frame_ms", "clip_s", "clips_per_hour"):
        assert _positive_finite(clip[key]), key
    assert clip["clips_per_hour"] == pytest.approx(3600 / clip["clip_s"])
    q = data["quality"]
    assert q["by_layers"] and "records" not in q
    assert [d["method"] for d in q["depth"]] == ["cues"]
    assert 0 < q["depth"][0]["absrel"] and 0 <= q["depth"][0]["delta1"] <= 1
    # the printed table names the device and says that clips were extrapolated
    assert data["env"]["device"] in out and "extrapolated per frame" in out


def test_compare_prints_per_row_ratios(quick_json, tmp_path, capsys):
    a = json.loads(quick_json.read_text())
    b = json.loads(quick_json.read_text())
    for r in b["rows"]:
        r["median_ms"] /= 2  # b twice as fast everywhere
    for c in b["clips"]:
        c["clip_s"] *= 4
    b_path = tmp_path / "b.json"
    b_path.write_text(json.dumps(b))
    rows = report.compare(a, b)
    assert len(rows) == len(a["rows"]) + len(a["clips"])
    for r in rows:
        expect = 4.0 if r["stage"] == "clip" else 0.5
        assert r["time_ratio"] == pytest.approx(expect) and r["throughput_ratio"] == pytest.approx(1 / expect)
    capsys.readouterr()
    assert photo3d(["bench", "--compare", str(quick_json), str(b_path)]) == 0
    out = capsys.readouterr().out
    assert "0.500" in out and "4.000" in out and "b/a time" in out


def test_compare_refuses_other_json(quick_json, tmp_path, capsys):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"rows": []}))
    assert photo3d(["bench", "--compare", str(quick_json), str(other)]) == 2
    assert "not a photo3d bench JSON" in capsys.readouterr().err


def test_timers_and_copy_bandwidth():
    times = measure(lambda: torch.ones(1000).sum(), "cpu", reps=4, warmup=1)
    assert len(times) == 4 and all(t > 0 for t in times)
    t = Timer("cpu")
    t.start()
    assert t.stop() >= 0
    assert _positive_finite(copy_bandwidth("cpu", mib=8, reps=3))


# ---------------------------------------------------------------------- depth metrics


@pytest.fixture(scope="module")
def true_depth() -> np.ndarray:
    size = (96, 72)
    _, depth, _ = make_scene(3, "mixed").render(np.eye(4), reference_camera(size), size)
    assert np.isfinite(depth).all()
    return depth.astype(np.float64)  # so that the affine maps below add no float32 rounding


@pytest.mark.parametrize("scale, shift", [(1.0, 0.0), (3.7, -0.2), (0.05, 2.0)])
def test_depth_metrics_perfect_up_to_affine(true_depth, scale, shift):
    m = depth_errors(scale / true_depth + shift, true_depth)
    assert m["absrel"] == pytest.approx(0.0, abs=1e-9)
    assert m["delta1"] == 1.0 and m["pixels"] == true_depth.size


def test_depth_metrics_worse_for_shuffled_and_flipped(true_depth):
    rng = np.random.default_rng(0)
    perfect = 1.0 / true_depth
    shuffled = rng.permutation(perfect.ravel()).reshape(perfect.shape)
    bad = depth_errors(shuffled, true_depth)
    assert bad["absrel"] > 0.05 and bad["delta1"] < 0.95
    # a slightly noisy prediction sits between perfect and shuffled
    noisy = depth_errors(perfect * (1 + 0.05 * rng.standard_normal(perfect.shape)), true_depth)
    assert 0 < noisy["absrel"] < bad["absrel"] and noisy["delta1"] > bad["delta1"]


def test_depth_metrics_ignore_missed_rays():
    z = np.full((8, 8), 4.0)
    z[:, :4] = 2.0
    z[0, 0] = np.inf  # a ray that hit nothing: not a pixel of the metric
    m = depth_errors(1.0 / z, z)
    assert m["pixels"] == 63 and m["absrel"] == pytest.approx(0.0, abs=1e-12)


# ------------------------------------------------- the quality benchmark's ground truth


def _plate_scene() -> Scene:
    tex = Texture(base=(0.8, 0.3, 0.2), k1=(3.0, 1.0, 0.0), k2=(0.0, 2.0, 1.0), tint=(0.1, 0.2, 0.3), k3=(1.0, 1.0, 1.0))
    wall = Texture(base=(0.2, 0.6, 0.8), k1=(2.0, 0.0, 1.0), k2=(1.0, 3.0, 0.0), tint=(0.3, 0.1, 0.2), k3=(2.0, 0.0, 1.0))
    return Scene([Plane((0.0, 0.0, -1.0), -6.0, wall), Rect((0.0, 0.0, 2.0), (1, 0, 0), (0, -1, 0), (0.3, 0.3), tex)])


def test_harness_identity_view_is_exact_and_fully_visible():
    """Through the benchmark's own evaluation path, the identity camera reproduces the
    ray-cast photo exactly and no pixel is counted as disoccluded or outside."""
    size = (80, 60)
    K = reference_camera(size)
    scene = make_scene(1, "mixed")
    image, depth, _ = scene.render(np.eye(4), K, size)
    renderers = {L: Renderer(build_ldi(image, depth, K, layers=L, band=4)) for L in (1, 2)}
    truth, masks, outs, metrics = evaluate_view(scene, renderers, np.eye(4), K, K, size)
    np.testing.assert_array_equal(truth, image)
    for L in (1, 2):
        np.testing.assert_array_equal(outs[L], image)
        assert metrics[L]["sse_all"] == 0 and metrics[L]["ssim"] == pytest.approx(1.0)
        assert metrics[L]["n_disocc"] == 0 and metrics[L]["n_border"] == 0


def test_harness_counts_disocclusion_where_geometry_says():
    """A plate at z = 2 before a wall at z = 6, camera moved right by 0.2: the plate slides
    left against the wall, revealing a wall strip (1/2 - 1/6) * 0.2 * fx wide at its right
    edge; the harness's disocc mask is that strip and nothing at the plate's left edge."""
    size = (96, 72)
    K = reference_camera(size)
    scene = _plate_scene()
    image, depth, _ = scene.render(np.eye(4), K, size)
    pose = np.eye(4)
    pose[0, 3] = 0.2
    renderers = {2: Renderer(build_ldi(image, depth, K, layers=2, band=8))}
    _, masks, _, metrics = evaluate_view(scene, renderers, pose, K, K, size)
    disocc = masks["disocc"]
    width = (1 / 2 - 1 / 6) * 0.2 * K[0, 0]
    cols = np.flatnonzero(disocc.any(0))
    assert abs(len(cols) - width) <= 1.5
    plate_right = K[0, 0] * (0.3 - 0.2) / 2 + K[0, 2]  # the plate's right edge in the new view
    assert plate_right - 1 <= cols.min() and cols.max() <= plate_right + width + 1
    assert metrics[2]["n_disocc"] == disocc.sum() > 0


def test_quality_run_records_and_summary():
    records = run((64, 48), ["planes"], [0], ["swing"], 2, 1.0, [1, 2], "auto", None)
    assert len(records) == 4 and {r["layers"] for r in records} == {1, 2}
    [row] = summarize(records, ("preset", "kind", "layers"))[:1]
    assert math.isfinite(row["psnr_all"]) and 0 < row["ssim"] <= 1 and row["frames"] == 2


# -------------------------------------------------------------- the bench/ wrappers


def test_bench_scripts_keep_their_command_lines(tmp_path):
    out = tmp_path / "q.json"
    q = subprocess.run([sys.executable, str(ROOT / "bench" / "quality.py"), "--quick", "--size", "64x48",
                        "--kinds", "planes", "--presets", "swing", "--frames", "1", "--json", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert q.returncode == 0, q.stderr
    data = json.loads(out.read_text())
    for key in ("env", "size", "summary", "by_preset", "by_layers", "records", "depth"):
        assert key in data, key
    assert "psnr:all" in q.stdout and "AbsRel" in q.stdout
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "render.py"), "--sizes", "96x54", "--reps", "2",
                        "--json", str(tmp_path / "r.json")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    [row] = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert row["size"] == "96x54" and _positive_finite(row["median_ms"]) and _positive_finite(row["gbps"])
