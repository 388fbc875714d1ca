// Far-first hole fill on the CPU: the twin of photo3d_fast/ops/fill.py's
// fill_from_background (torch) and kernels/fill.py (Triton), same formulas.
//
// Per frame, touching holes only (eight covered bytes are skipped at a time):
// 1. rows, in parallel: the runs of holes of each row; every hole of a run has the same
//    nearest covered pixel to the left (before the run) and to the right (after it);
// 2. blocks of 64 columns, in parallel: the nearest covered pixel above each hole is the
//    pixel above if covered, else the one above that hole (a recurrence down the rows), and
//    the same upwards for below;
// 3. rows, in parallel: each hole blends its (up to) four candidates with weights
//    (z / z_farthest) ^ far_power / distance, summed in the reference's order (left, right,
//    up, down). A hole with no candidate is an orphan: reported, with its mask, for the
//    caller's push-pull (the reference's fallback, which stays in torch).
// Covered pixels are only read, holes only written, so the fill runs in place.
//
// pow: torch calls a vectorised pow (within 1 ulp) where this calls std::pow (within 1 ulp),
// so filled values may differ by a few ulp (the tests allow 1e-5).
#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "common.h"
#include "photo3d_cpu.h"

namespace p3d {
namespace {

constexpr int kColumnBlock = 64;

// x ** e as torch's pow(tensor, scalar) special-cases it
inline float power(float x, float e) {
  if (e == 2.0f) return x * x;
  if (e == 3.0f) return x * x * x;
  if (e == 0.5f) return std::sqrt(x);
  return std::pow(x, e);
}

}  // namespace

int64_t fill_frame(Workspace& ws, const float* vals, float* out, int64_t ps, int64_t cs, int channels,
                   const uint8_t* covered, const float* depth, int H, int W, float far_power, bool clamp,
                   uint8_t* orphan, int nt) {
  const int64_t N = int64_t(H) * W;
  ensure(ws.row_holes, size_t(H));
  ensure(ws.row_orphans, size_t(H));
  for (auto& v : ws.nearest) ensure(v, size_t(N));
  int32_t* rows = ws.row_holes.data();
  int32_t* L = ws.nearest[0].data();
  int32_t* R = ws.nearest[1].data();
  int32_t* T = ws.nearest[2].data();
  int32_t* B = ws.nearest[3].data();
  // 1. runs of holes along rows: left and right
  std::atomic<int64_t> hole_count{0};
  parallel_for(nt, H, 16, [&](int64_t y0, int64_t y1, int) {
    int64_t here = 0;
    for (int y = int(y0); y < int(y1); ++y) {
      const int64_t row = int64_t(y) * W;
      const uint8_t* c = covered + row;
      int32_t n = 0;
      int x = 0;
      while (x < W) {
        if (x + 8 <= W) {
          uint64_t word;
          std::memcpy(&word, c + x, 8);
          if (word == kAllCovered) {
            x += 8;
            continue;
          }
        }
        if (c[x]) {
          ++x;
          continue;
        }
        const int a = x;
        while (x < W && !c[x]) ++x;
        const int32_t left = a - 1, right = x < W ? x : -1;
        for (int q = a; q < x; ++q) {
          L[row + q] = left;
          R[row + q] = right;
        }
        n += x - a;
      }
      rows[y] = n;
      here += n;
    }
    hole_count += here;
  });
  const int64_t holes = hole_count.load();
  if (holes == 0 || holes == N) return 0;
  // 2. up and down, by recurrences over the rows that have holes
  const int n_blocks = (W + kColumnBlock - 1) / kColumnBlock;
  parallel_for(nt, n_blocks, 1, [&](int64_t blk0, int64_t blk1, int) {
    for (int blk = int(blk0); blk < int(blk1); ++blk) {
      const int x0 = blk * kColumnBlock, x1 = std::min(x0 + kColumnBlock, W);
      for (int y = 0; y < H; ++y) {
        if (rows[y] == 0) continue;
        const int64_t row = int64_t(y) * W;
        for_each_hole(covered + row, x0, x1, [&](int x) {
          const int64_t p = row + x;
          T[p] = y == 0 ? -1 : covered[p - W] ? y - 1 : T[p - W];
        });
      }
      for (int y = H - 1; y >= 0; --y) {
        if (rows[y] == 0) continue;
        const int64_t row = int64_t(y) * W;
        for_each_hole(covered + row, x0, x1, [&](int x) {
          const int64_t p = row + x;
          B[p] = y == H - 1 ? -1 : covered[p + W] ? y + 1 : B[p + W];
        });
      }
    }
  });
  // 3. blend
  int64_t* row_orphans = ws.row_orphans.data();
  std::atomic<int64_t> orphan_count{0};
  parallel_for(nt, H, 8, [&](int64_t y0, int64_t y1, int) {
    int64_t here = 0;
    for (int y = int(y0); y < int(y1); ++y) {
      row_orphans[y] = 0;
      if (rows[y] == 0) continue;
      const int64_t row = int64_t(y) * W;
      for_each_hole(covered + row, 0, W, [&](int x) {
        const int64_t p = row + x;
        const int32_t j[4] = {L[p], R[p], T[p], B[p]};
        const int64_t at[4] = {row + j[0], row + j[1], int64_t(j[2]) * W + x, int64_t(j[3]) * W + x};
        const int32_t from[4] = {x, x, y, y};
        float z[4], w[4];
        for (int k = 0; k < 4; ++k) z[k] = j[k] >= 0 ? depth[at[k]] : 0.0f;
        const float z_max = std::max(std::max(std::max(std::max(z[0], z[1]), z[2]), z[3]), 1e-12f);
        for (int k = 0; k < 4; ++k) {
          const float dist = static_cast<float>(std::max(std::abs((j[k] >= 0 ? j[k] : 0) - from[k]), 1));
          w[k] = power(z[k] / z_max, far_power) / dist;
        }
        const float total = ((w[0] + w[1]) + w[2]) + w[3];
        const float den = std::max(total, 1e-30f);
        for (int ch = 0; ch < channels; ++ch) {
          // the reference adds value * 0 for a missing candidate: +0, the same as skipping it
          float s = 0.0f;
          for (int k = 0; k < 4; ++k)
            if (j[k] >= 0) s += vals[at[k] * ps + ch * cs] * w[k];
          const float v = s / den;
          out[p * ps + ch * cs] = clamp ? std::min(std::max(v, 0.0f), 1.0f) : v;
        }
        if (!(total > 0)) {
          L[p] = INT32_MIN;  // marks the orphan for the mask below
          ++row_orphans[y];
          ++here;
        }
      });
    }
    orphan_count += here;
  });
  const int64_t orphans = orphan_count.load();
  if (orphans > 0) {
    std::memset(orphan, 0, size_t(N));
    for (int y = 0; y < H; ++y) {
      if (row_orphans[y] == 0) continue;
      const int64_t row = int64_t(y) * W;
      for_each_hole(covered + row, 0, W, [&](int x) { orphan[row + x] = L[row + x] == INT32_MIN; });
    }
  }
  return orphans;
}

}  // namespace p3d

P3D_API int p3d_fill(void* ws, const float* values, float* out, const uint8_t* covered, const float* depth,
                     int32_t n_frames, int32_t channels, int32_t height, int32_t width, double far_power,
                     int32_t n_threads, uint8_t* orphan, int64_t* n_orphans) {
  if (!ws || n_frames < 0 || channels < 0 || height < 0 || width < 0) return -1;
  const int nt = std::max(1, int(n_threads));
  const int64_t N = int64_t(height) * width;
  p3d::Workspace& w = *static_cast<p3d::Workspace*>(ws);
  try {
    for (int f = 0; f < n_frames; ++f) {
      const float* v = values + f * channels * N;
      float* o = out + f * channels * N;
      if (o != v) std::memcpy(o, v, sizeof(float) * channels * N);
      n_orphans[f] = N == 0 ? 0 : p3d::fill_frame(w, v, o, 1, N, channels, covered + f * N, depth + f * N, height,
                                                   width, static_cast<float>(far_power), false, orphan + f * N, nt);
    }
  } catch (const std::bad_alloc&) {
    return -2;
  }
  return 0;
}

P3D_API int p3d_nearest(const uint8_t* covered, int32_t n_frames, int32_t height, int32_t width, int32_t* out,
                        int32_t n_threads) {
  if (n_frames < 0 || height < 0 || width < 0) return -1;
  const int nt = std::max(1, int(n_threads));
  const int64_t N = int64_t(height) * width, plane = n_frames * N;
  const int W = width, H = height;
  for (int f = 0; f < n_frames; ++f) {
    const uint8_t* c = covered + f * N;
    int32_t* L = out + f * N;
    int32_t* R = out + plane + f * N;
    int32_t* T = out + 2 * plane + f * N;
    int32_t* B = out + 3 * plane + f * N;
    p3d::parallel_for(nt, H, 16, [&](int64_t y0, int64_t y1, int) {
      for (int y = int(y0); y < int(y1); ++y) {
        const int64_t row = int64_t(y) * W;
        int32_t last = -1;
        for (int x = 0; x < W; ++x) L[row + x] = last = c[row + x] ? x : last;
        last = -1;
        for (int x = W - 1; x >= 0; --x) R[row + x] = last = c[row + x] ? x : last;
      }
    });
    p3d::parallel_for(nt, W, 64, [&](int64_t x0, int64_t x1, int) {
      for (int x = int(x0); x < int(x1); ++x) {
        int32_t last = -1;
        for (int y = 0; y < H; ++y) T[int64_t(y) * W + x] = last = c[int64_t(y) * W + x] ? y : last;
        last = -1;
        for (int y = H - 1; y >= 0; --y) B[int64_t(y) * W + x] = last = c[int64_t(y) * W + x] ? y : last;
      }
    });
  }
  return 0;
}
