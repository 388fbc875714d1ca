// The epilogue of a frame on the CPU: the twin of photo3d_fast/ops/splat.py's finish_frames
// (normalise, anti-alias silhouettes, fill holes, clamp), same formulas in the same order,
// except that values are clamped to [0, 1] where they are written (normalisation, blends,
// fills) rather than in a last pass over the frame: a normalised color leaves [0, 1] only by
// a rounding, so blends and fills read values within an ulp of the reference's.
//
// ops/cpu.py checks once per process that this matches the reference's finish_frames on a
// synthetic frame (silhouettes, holes and orphans) and renders with the reference's epilogue
// if it does not, so a change there is never silently rendered the old way.
//
// Silhouettes (antialias_silhouettes): a covered pixel with a covered 4-neighbour whose
// disparity is lower by more than the LDI's edge disparity blends its color with the mean of
// those neighbours': alpha = clamp(weight / coverage_full, 0, 1). Blends are computed from
// the normalised colors, then applied, so that a neighbour's own blend never feeds another.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "common.h"
#include "photo3d_cpu.h"

namespace p3d {
namespace {

// Flags (1) the covered pixels of row y that have a covered neighbour behind them by more
// than edge. Rows outside the image are the row itself (disp - disp = 0, never more than
// edge >= 0), the first and last columns are done apart, so the loop vectorises.
P3D_HOT void flag_row(const float* __restrict disp, const float* __restrict weight, int y, int H, int W, float edge,
                      uint8_t* __restrict flag) {
  const int64_t row = int64_t(y) * W;
  const float* d = disp + row;
  const float* wt = weight + row;
  const float* d_up = y > 0 ? d - W : d;
  const float* w_up = y > 0 ? wt - W : wt;
  const float* d_dn = y < H - 1 ? d + W : d;
  const float* w_dn = y < H - 1 ? wt + W : wt;
  uint8_t* f = flag + row;
  auto at = [&](int x, int xl, int xr) {
    const float dp = d[x];
    const int behind = (int(w_dn[x] > 0) & int(dp - d_dn[x] > edge)) | (int(w_up[x] > 0) & int(dp - d_up[x] > edge)) |
                       (int(wt[xr] > 0) & int(dp - d[xr] > edge)) | (int(wt[xl] > 0) & int(dp - d[xl] > edge));
    return uint8_t(int(wt[x] > 0) & behind);
  };
  f[0] = at(0, 0, W > 1 ? 1 : 0);
  for (int x = 1; x < W - 1; ++x) f[x] = at(x, x - 1, x + 1);
  if (W > 1) f[W - 1] = at(W - 1, W - 2, W - 1);
}

}  // namespace

P3D_HOT void normalise_row(const float* __restrict sums, const uint64_t* __restrict keys, int W,
                           float* __restrict color, uint8_t* __restrict covered, float* __restrict weight,
                           float* __restrict disp, float* __restrict z) {
  P3D_IVDEP
  for (int x = 0; x < W; ++x) {
    const float w = sums[4 * x + 3];
    const float d = w > 1e-12f ? w : 1e-12f;
    const float zx = bits_float(uint32_t(keys[x] >> 32));  // empty pixels: NaN, never read
    // clamped here rather than at the end (the reference's last step): a mean of colors in
    // [0, 1] leaves [0, 1] only by a rounding, so this moves nothing but that ulp, and saves
    // a pass over the frame; blends and fills clamp what they write
    color[3 * x + 0] = std::min(std::max(sums[4 * x + 0] / d, 0.0f), 1.0f);
    color[3 * x + 1] = std::min(std::max(sums[4 * x + 1] / d, 0.0f), 1.0f);
    color[3 * x + 2] = std::min(std::max(sums[4 * x + 2] / d, 0.0f), 1.0f);
    weight[x] = w;
    z[x] = zx;
    disp[x] = w > 0 ? 1.0f / zx : 0.0f;
    covered[x] = w > 0;
  }
}

int64_t finish_frame(Workspace& ws, float* color, const uint8_t* covered, int H, int W, float edge,
                     float coverage_full, float far_power, uint8_t* orphan, int nt) {
  const int64_t N = int64_t(H) * W;
  ensure(ws.blend, size_t(N) * 3);
  ensure(ws.silhouette, size_t(N));
  const float* disp = ws.disp.data();
  const float* weight = ws.weight.data();
  uint8_t* flag = ws.silhouette.data();
  float* blend = ws.blend.data();
  std::atomic<int64_t> silhouettes{0};
  parallel_for(nt, H, 16, [&](int64_t y0, int64_t y1, int) {
    int64_t here = 0;
    for (int y = int(y0); y < int(y1); ++y) {
      flag_row(disp, weight, y, H, W, edge, flag);
      const int64_t row = int64_t(y) * W;
      for_each_set(flag + row, 0, W, [&](int x) {
        const int64_t p = row + x;
        // neighbours in the reference's order: below, above, right, left
        const bool inside[4] = {y + 1 < H, y > 0, x + 1 < W, x > 0};
        const int64_t q[4] = {p + W, p - W, p + 1, p - 1};
        float total[3] = {0.0f, 0.0f, 0.0f}, count = 0.0f;
        for (int k = 0; k < 4; ++k) {
          if (!inside[k] || !(weight[q[k]] > 0) || !(disp[p] - disp[q[k]] > edge)) continue;
          for (int ch = 0; ch < 3; ++ch) total[ch] += color[q[k] * 3 + ch];
          count += 1.0f;
        }
        if (count == 0.0f) {  // only with a negative edge: the prefilter is wider than the test
          flag[p] = 0;
          return;
        }
        const float alpha = std::min(std::max(weight[p] / coverage_full, 0.0f), 1.0f);
        const float n = std::max(count, 1.0f);
        for (int ch = 0; ch < 3; ++ch)
          blend[p * 3 + ch] =
              std::min(std::max(color[p * 3 + ch] * alpha + total[ch] / n * (1.0f - alpha), 0.0f), 1.0f);
        ++here;
      });
    }
    silhouettes += here;
  });
  if (silhouettes.load() > 0) {
    parallel_for(nt, H, 16, [&](int64_t y0, int64_t y1, int) {
      for (int64_t row = y0 * W; row < y1 * W; row += W)
        for_each_set(flag + row, 0, W,
                     [&](int x) { std::memcpy(color + (row + x) * 3, blend + (row + x) * 3, 3 * sizeof(float)); });
    });
  }
  return fill_frame(ws, color, color, 3, 1, 3, covered, ws.zpix.data(), H, W, far_power, true, orphan, nt);
}

}  // namespace p3d

P3D_API int p3d_finish(void* ws, const float* acc, const int64_t* zbuf, int32_t n_frames, int32_t height,
                       int32_t width, const P3dParams* params, int32_t n_threads, float* color, uint8_t* covered,
                       uint8_t* orphan, int64_t* n_orphans) {
  if (!ws || !params || n_frames < 0 || height < 0 || width < 0) return -1;
  const int nt = std::max(1, int(n_threads));
  const int64_t N = int64_t(height) * width;
  p3d::Workspace& w = *static_cast<p3d::Workspace*>(ws);
  try {
    p3d::ensure(w.weight, size_t(N));
    p3d::ensure(w.disp, size_t(N));
    p3d::ensure(w.zpix, size_t(N));
    for (int f = 0; f < n_frames; ++f) {
      const float* a = acc + f * N * 4;
      const uint64_t* z = reinterpret_cast<const uint64_t*>(zbuf) + f * N;
      float* c = color + f * N * 3;
      uint8_t* cov = covered + f * N;
      p3d::parallel_for(nt, height, 16, [&](int64_t y0, int64_t y1, int) {
        for (int64_t y = y0; y < y1; ++y) {
          const int64_t o = y * width;
          p3d::normalise_row(a + o * 4, z + o, width, c + o * 3, cov + o, w.weight.data() + o, w.disp.data() + o,
                             w.zpix.data() + o);
        }
      });
      n_orphans[f] = p3d::finish_frame(w, c, cov, height, width, static_cast<float>(params->edge),
                                       static_cast<float>(params->coverage_full), static_cast<float>(params->far_power),
                                       orphan + f * N, nt);
    }
  } catch (const std::bad_alloc&) {
    return -2;
  }
  return 0;
}

P3D_API int p3d_quantise(const float* color, uint8_t* out, int64_t n, int32_t n_threads) {
  if (n < 0) return -1;
  // (color * 255 + 0.5) truncated, as the Renderer quantises: color in [0, 1] gives [0.5, 255.5]
  p3d::parallel_for(std::max(1, int(n_threads)), n, int64_t(1) << 16, [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) out[i] = static_cast<uint8_t>(color[i] * 255.0f + 0.5f);
  });
  return 0;
}
