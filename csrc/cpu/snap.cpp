// Edge snapping on the CPU: the twin of photo3d_fast/ops/snap.py's snap_to_color_edges (torch,
// whose module doc defines the op), same results bit for bit: the same float32 operations
// on the same values, the candidates taken in the same order.
//
// One parallel phase over blocks of rows (pool.h). Each row:
// 1. the 3x3 range of every pixel (clipped at the borders): per column the min and max of
//    rows y - 1 .. y + 1, then of columns x - 1 .. x + 1; a jump where max - min > edge
//    (float32, as torch compares a float32 tensor with a Python float);
// 2. the row is copied to the output, and each jump pixel takes the weighted median of its
//    (2 radius + 1)^2 window (coordinates clamped), candidates row-major: weights
//    (float)exp(-(double)d2 / sigma^2) with d2 = dr*dr + dg*dg + db*db in float32, left to
//    right, exp a vectorised float64 polynomial (exp_neg: rounded to float32 it equals the
//    reference's weights; 0 differences in 2e7 random distances); the candidates sorted by
//    value, ties in candidate order (each one's stable rank by counting, vectorised; with a
//    NaN in the window an insertion sort, NaN last as torch's sort); running sums of the
//    weights in float64 in that order; the pick is the number of running sums below half the
//    last one (clamped to K - 1), as the reference counts it.
//
// Each output pixel reads the input only and is written by one thread: results do not depend
// on the number of threads.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "common.h"
#include "photo3d_cpu.h"

namespace p3d {
namespace {

//: Rows per work item.
constexpr int kRows = 4;
//: Below this exponent exp(x) rounds to float32 0 (exp(-104) < 2^-150, half the least denormal).
constexpr double kUnderflow = -104.0;

// torch's ascending sort order of floats: NaN after every number.
inline bool before(float a, float b) { return a < b || (!std::isnan(a) && std::isnan(b)); }

// exp(x) in float64 for x in [kUnderflow, 0] (a few ulp of float64: rounded to float32 it
// is the correctly rounded float32 exp but where the exact value lies within a few 2^-52 of
// a float32 rounding boundary, some 1 in 10^8 weights); a loop of it vectorises. Range
// reduction x = k ln2 + r, |r| <= ln2 / 2, Taylor to degree 13 (truncation < 1e-17).
inline double exp_neg(double x) {
  // k = x / ln2 rounded to nearest (the shifter leaves k in the low mantissa bits of t)
  const double shifter = 6755399441055744.0;  // 1.5 * 2^52
  const double t = x * 1.4426950408889634 + shifter;
  const double k = t - shifter;
  const double r = (x - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10;
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  // 2^k, k in [-152, 0]: the exponent field k + 1023 from t's low bits (no float -> int
  // conversion, which AVX2 lacks for 64-bit lanes)
  uint64_t bits;
  std::memcpy(&bits, &t, 8);
  bits = (bits + 1023) << 52;
  double scale;
  std::memcpy(&scale, &bits, 8);
  return p * scale;
}

struct Scratch {
  std::vector<uint8_t> nan;
  std::vector<float> lo, hi, value, weight, d2, sorted_value, sorted_weight;
  std::vector<double> cum;
  std::vector<int32_t> rank, index;
};

// Weights of the gathered squared distances d2[0 .. n) into w (module doc, step 2).
P3D_HOT void weights(const float* __restrict d2, float* __restrict w, int n, double sigma2) {
  for (int i = 0; i < n; ++i) {
    const double e = std::max(-static_cast<double>(d2[i]) / sigma2, kUnderflow - 1.0);
    const float v = static_cast<float>(exp_neg(e));
    w[i] = e < kUnderflow ? 0.0f : v;
  }
}

// Stable ascending rank of each of v[0 .. n) (no NaN): the values below it, and the equal
// ones of earlier candidates. v holds n_pad >= n entries, those past n +inf (never below a
// value, never an earlier candidate); index[j] = j.
P3D_HOT void ranks(const float* __restrict v, const int32_t* __restrict index, int32_t* __restrict rank, int n,
                   int n_pad) {
  for (int i = 0; i < n; ++i) {
    const float x = v[i];
    int32_t r = 0;
    for (int j = 0; j < n_pad; ++j) r += (v[j] < x) | ((v[j] == x) & (index[j] < i));
    rank[i] = r;
  }
}

// The weighted median of the window of (y, x) (module doc, step 2).
float median(const float* rgb, const float* disp, int H, int W, int y, int x, int radius, double sigma2,
             Scratch& s) {
  const int64_t N = int64_t(H) * W;
  const int64_t c = int64_t(y) * W + x;
  const float cr = rgb[c], cg = rgb[N + c], cb = rgb[2 * N + c];
  const float* R = rgb;
  const float* G = rgb + N;
  const float* B = rgb + 2 * N;
  float* value = s.value.data();
  float* d2 = s.d2.data();
  int n = 0;
  bool nan = false;
  const bool inside = y >= radius && y + radius < H && x >= radius && x + radius < W;
  for (int dy = -radius; dy <= radius; ++dy) {
    const int64_t row = int64_t(std::min(std::max(y + dy, 0), H - 1)) * W;
    if (inside) {
      const int64_t p0 = row + x - radius;
      for (int i = 0; i <= 2 * radius; ++i) {
        const float r = R[p0 + i] - cr, g = G[p0 + i] - cg, b = B[p0 + i] - cb;
        const float rr = r * r, gg = g * g, bb = b * b;
        d2[n + i] = (rr + gg) + bb;
        value[n + i] = disp[p0 + i];
      }
      n += 2 * radius + 1;
      continue;
    }
    for (int dx = -radius; dx <= radius; ++dx, ++n) {
      const int64_t p = row + std::min(std::max(x + dx, 0), W - 1);
      const float r = R[p] - cr, g = G[p] - cg, b = B[p] - cb;
      const float rr = r * r, gg = g * g, bb = b * b;
      d2[n] = (rr + gg) + bb;
      value[n] = disp[p];
    }
  }
  for (int i = 0; i < n; ++i) nan |= std::isnan(value[i]);
  float* weight = s.weight.data();
  weights(d2, weight, n, sigma2);
  float* sv = s.sorted_value.data();
  float* sw = s.sorted_weight.data();
  if (!nan) {
    int32_t* rank = s.rank.data();
    ranks(value, s.index.data(), rank, n, int(s.index.size()));
    for (int i = 0; i < n; ++i) {
      sv[rank[i]] = value[i];
      sw[rank[i]] = weight[i];
    }
  } else {
    // insertion sort: stable, NaN last (torch's order)
    for (int m = 0; m < n; ++m) {
      const float v = value[m], w = weight[m];
      int i = m;
      while (i > 0 && before(v, sv[i - 1])) {
        sv[i] = sv[i - 1];
        sw[i] = sw[i - 1];
        --i;
      }
      sv[i] = v;
      sw[i] = w;
    }
  }
  double* cum = s.cum.data();
  double acc = 0.0;
  for (int i = 0; i < n; ++i) {
    acc += static_cast<double>(sw[i]);
    cum[i] = acc;
  }
  const double half = 0.5 * acc;
  int pick = 0;
  for (int i = 0; i < n; ++i) pick += cum[i] < half;
  return sv[std::min(pick, n - 1)];
}

}  // namespace
}  // namespace p3d

P3D_API int p3d_snap(const float* rgb, const float* disp, int32_t height, int32_t width, double edge, int32_t radius,
                     double sigma, int32_t n_threads, float* out, int64_t* n_jumps) {
  using namespace p3d;
  if (height < 0 || width < 0 || radius < 0 || radius > 1000 || n_jumps == nullptr) return -1;
  *n_jumps = 0;
  const int H = height, W = width;
  if (int64_t(H) * W == 0) return 0;
  if (rgb == nullptr || disp == nullptr || out == nullptr) return -1;
  const float edge_f = static_cast<float>(edge);
  const double sigma2 = sigma * sigma;
  const int K = (2 * radius + 1) * (2 * radius + 1);
  const int nt = std::max(1, int(n_threads));
  std::vector<Scratch> scratch;
  try {
    scratch.resize(nt);
    for (Scratch& s : scratch) {
      s.lo.resize(W);
      s.hi.resize(W);
      s.nan.resize(W);
      for (auto* v : {&s.weight, &s.d2, &s.sorted_value, &s.sorted_weight}) v->resize(K);
      const int K_pad = (K + 7) / 8 * 8;  // whole SIMD vectors for ranks()
      s.value.assign(K_pad, std::numeric_limits<float>::infinity());
      s.index.resize(K_pad);
      for (int j = 0; j < K_pad; ++j) s.index[j] = j;
      s.cum.resize(K);
      s.rank.resize(K);
    }
  } catch (const std::bad_alloc&) {
    return -2;
  }
  std::atomic<int64_t> total{0};
  parallel_for(nt, H, kRows, [&](int64_t y0, int64_t y1, int participant) {
    Scratch& s = scratch[participant];
    float* lo = s.lo.data();
    float* hi = s.hi.data();
    uint8_t* nan = s.nan.data();
    int64_t count = 0;
    for (int y = int(y0); y < int(y1); ++y) {
      const float* r0 = disp + int64_t(std::max(y - 1, 0)) * W;
      const float* r1 = disp + int64_t(y) * W;
      const float* r2 = disp + int64_t(std::min(y + 1, H - 1)) * W;
      // the 3x3 range: per column over rows y - 1 .. y + 1, then over columns; a window
      // holding a NaN is no jump (torch's max_pool2d propagates NaN, and NaN > edge is false)
      for (int x = 0; x < W; ++x) {
        const float a = r0[x], b = r1[x], c = r2[x];
        const float ab_lo = b < a ? b : a, ab_hi = b > a ? b : a;
        lo[x] = c < ab_lo ? c : ab_lo;
        hi[x] = c > ab_hi ? c : ab_hi;
        nan[x] = (a != a) | (b != b) | (c != c);
      }
      float* o = out + int64_t(y) * W;
      std::memcpy(o, r1, sizeof(float) * W);
      for (int x = 0; x < W; ++x) {
        const int xa = std::max(x - 1, 0), xb = std::min(x + 1, W - 1);
        const float mn = std::min(std::min(lo[xa], lo[x]), lo[xb]);
        const float mx = std::max(std::max(hi[xa], hi[x]), hi[xb]);
        if (nan[xa] | nan[x] | nan[xb]) continue;
        if (mx - mn > edge_f) {
          o[x] = median(rgb, disp, H, W, y, x, radius, sigma2, s);
          ++count;
        }
      }
    }
    total.fetch_add(count);
  });
  *n_jumps = total.load();
  return 0;
}
