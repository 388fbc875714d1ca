// LDI back-layer growth on the CPU: the twin of photo3d_fast/ops/grow.py's grow_back_layer
// (torch, whose module doc defines the op) and kernels/grow.py (Triton), same results: the
// same float32 operations on the same values, candidates taken in the same order. The
// colours of the band are the caller's (ops/cpu.py: the C++ fill, fill.cpp).
//
// Per call, each phase parallel over blocks of rows (pool.h) unless it says otherwise:
//
// 1. Disparities 1 / z and limits 1 / z - edge (float32, as torch computes them), then the
//    seeds: pixels with a 4-neighbour nearer by more than edge (ops.grow.discontinuities:
//    the same differences of the same pairs compared), and the seeds' disparities (inf
//    elsewhere).
// 2. Seed surfaces (ops.grow.seed_surfaces): at each seed, the mean disparity of the seeds
//    of its 5x5 window within edge of its own, summed row-major; inf off the seeds. With
//    it, the first offers (each seed itself) and each row's span of columns that offer one.
// 3. Jump flooding (ops.grow.nearest_seed_behind), one phase per step k of the caller's
//    ops.grow.jump_steps(band): each pixel row compares what it holds with what the rows
//    y - k, y, y + k offer at x - k, x, x + k, in ops.grow.DIRECTIONS order, a vectorised
//    loop per direction over the columns whose candidate can be taken (an offer outside the
//    image, or outside the span of columns of a row that offers a seed, is the reference's
//    (0, 0, inf), which is never taken); then writes its offers for the next step (a seed
//    offers itself, any other pixel what it holds) into the other offer buffer: a step reads
//    the previous step's holdings only, as the reference's. A pixel holds the seed's row,
//    column and disparity; its squared distance is recomputed from them. Rows, columns and
//    squared distances are float32 where every squared distance of the image is below 2^24
//    (exact integers: the same comparisons as the reference's int32, cheaper to vectorise),
//    else int32.
// 4. Reach (ops.grow.reach): each held pixel's neighbour toward its seed (``up``) and
//    whether that step holds (ok0). The reference ANDs ok0 along these lines by pointer
//    jumping: after its pass t, ok covers the first 2^(t+1) pixels of each line, it stops
//    when no pointer moves (then every line has been covered up to its end, or, where lines
//    run into a cycle, at least up to its first pixel with ok0 = 0: such a pixel lies before
//    the cycle or on its first lap, and the cycle's length divides 2^t) or after
//    reach_rounds passes (2^passes >= H*W, more than a line's distinct pixels). So its
//    result is: ok0 is 1 at every pixel the line from p reaches. That is computed here by
//    walking the lines (serially: O(H*W), each pixel settled once): a walk stops at a
//    settled pixel, or where it meets itself (a cycle of pixels whose ok0 is 1), and settles
//    the pixels it went through.
// 5. The layer: mask = ok, depth 1 / the held seed's surface disparity where ok, else 0.
//
// Results do not depend on the number of threads (each pixel is written by one thread, from
// values of the previous phase only).
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>

#include "common.h"
#include "photo3d_cpu.h"

namespace p3d {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
//: Seeds within this many pixels (Chebyshev) share their surface (ops.grow.SURFACE_RADIUS).
constexpr int kSurfaceRadius = 2;
//: Rows per work item of the per-row phases.
constexpr int kRows = 4;
//: States of a pixel in reach's walk (ok is 0 or 1 where it is final).
constexpr uint8_t kPending = 2, kWalking = 3;

// What a pixel holds with no seed: the reference's squared distance 2^31 - 1, above all others.
template <typename C>
constexpr C kNone = std::numeric_limits<C>::has_infinity ? std::numeric_limits<C>::infinity()
                                                          : std::numeric_limits<C>::max();

// One direction of a jump pass over columns [xa, xb) of pixel row y: the candidates are the
// offers (cy, cx, cd) at column x + off of another row. Takes each one that lies behind the
// pixel (cd < lim) and is nearer than what it holds, or as near and on a nearer surface.
template <typename C>
P3D_HOT void take_nearer(int xa, int xb, int off, C y, const C* __restrict oy, const C* __restrict ox,
                         const float* __restrict od, const float* __restrict lim, C* __restrict hy, C* __restrict hx,
                         float* __restrict hd, C* __restrict hd2) {
  for (int x = xa; x < xb; ++x) {
    const C cy = oy[x + off], cx = ox[x + off];
    const float cd = od[x + off];
    const C ey = cy - y, ex = cx - static_cast<C>(x);
    const C d2 = ey * ey + ex * ex;
    const C h2 = hd2[x];
    const float h = hd[x];
    const bool better = (cd < lim[x]) & ((d2 < h2) | ((d2 == h2) & (cd > h)));
    hy[x] = better ? cy : hy[x];
    hx[x] = better ? cx : hx[x];
    hd[x] = better ? cd : h;
    hd2[x] = better ? d2 : h2;
  }
}

#if defined(__GNUC__) || defined(__clang__)
// The float32 pass, eight pixels at a time in GCC/clang vector extensions (GCC does not
// if-convert the scalar loop's four selects on floats): the same operations, lane by lane.
typedef float float8 __attribute__((vector_size(32)));
typedef int32_t int8v __attribute__((vector_size(32)));

template <>
P3D_HOT void take_nearer<float>(int xa, int xb, int off, float y, const float* __restrict oy,
                                const float* __restrict ox, const float* __restrict od, const float* __restrict lim,
                                float* __restrict hy, float* __restrict hx, float* __restrict hd,
                                float* __restrict hd2) {
  int x = xa;
  const float8 vy = {y, y, y, y, y, y, y, y};
  const float8 lane = {0.0f, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f, 7.0f};
  for (; x + 8 <= xb; x += 8) {
    float8 cy, cx, cd, l, h2, h, py, px;
    std::memcpy(&cy, oy + x + off, 32);
    std::memcpy(&cx, ox + x + off, 32);
    std::memcpy(&cd, od + x + off, 32);
    std::memcpy(&l, lim + x, 32);
    std::memcpy(&h2, hd2 + x, 32);
    std::memcpy(&h, hd + x, 32);
    const float fx = static_cast<float>(x);
    const float8 ey = cy - vy, ex = cx - (lane + fx);
    const float8 d2 = ey * ey + ex * ex;
    const int8v better = (cd < l) & ((d2 < h2) | ((d2 == h2) & (cd > h)));
    std::memcpy(&py, hy + x, 32);
    std::memcpy(&px, hx + x, 32);
    py = better ? cy : py;
    px = better ? cx : px;
    h = better ? cd : h;
    h2 = better ? d2 : h2;
    std::memcpy(hy + x, &py, 32);
    std::memcpy(hx + x, &px, 32);
    std::memcpy(hd + x, &h, 32);
    std::memcpy(hd2 + x, &h2, 32);
  }
  for (; x < xb; ++x) {
    const float cy = oy[x + off], cx = ox[x + off];
    const float cd = od[x + off];
    const float ey = cy - y, ex = cx - static_cast<float>(x);
    const float d2 = ey * ey + ex * ex;
    if ((cd < lim[x]) & ((d2 < hd2[x]) | ((d2 == hd2[x]) & (cd > hd[x])))) {
      hy[x] = cy;
      hx[x] = cx;
      hd[x] = cd;
      hd2[x] = d2;
    }
  }
}
#endif

// The squared distances of what a row holds (kNone: nothing), as the reference keeps them.
template <typename C>
P3D_HOT void held_d2(int W, C y, const C* __restrict hy, const C* __restrict hx, const float* __restrict hd,
                     C* __restrict hd2) {
  for (int x = 0; x < W; ++x) {
    const C ey = hy[x] - y, ex = hx[x] - static_cast<C>(x);
    hd2[x] = hd[x] < kInf ? ey * ey + ex * ex : kNone<C>;
  }
}

// A row's offers: a seed (seed_disp < inf) offers itself, any other pixel what it holds.
template <typename C>
P3D_HOT void offer_row(int W, C y, const float* __restrict seed_disp, const C* __restrict hy, const C* __restrict hx,
                       const float* __restrict hd, C* __restrict oy, C* __restrict ox, float* __restrict od) {
  for (int x = 0; x < W; ++x) {
    const bool seed = seed_disp[x] < kInf;
    oy[x] = seed ? y : hy[x];
    ox[x] = seed ? static_cast<C>(x) : hx[x];
    od[x] = seed ? seed_disp[x] : hd[x];
  }
}

// First and last column of a row that offers a seed (od < inf); lo > hi when none.
inline void offer_span(const float* od, int W, int32_t& lo, int32_t& hi) {
  int a = 0, b = W - 1;
  while (a < W && !(od[a] < kInf)) ++a;
  while (b > a && !(od[b] < kInf)) --b;
  lo = a;
  hi = a < W ? b : -1;
}

// The per-pixel planes of one call (H*W each, in the workspace).
struct Planes {
  int H, W;
  int64_t N;
  float edge;
  int nt;
  float *disp, *limit, *seed_disp, *surface, *hd, *od[2];
  uint8_t* seed;
  int32_t *lo[2], *hi[2];  // (H,) spans of the columns that offer a seed, per offer buffer
};

// Rows and columns: what a pixel holds and offers, and per-thread squared distances of a row.
template <typename C>
struct Coords {
  C *hy, *hx, *oy[2], *ox[2], *d2row;
};

// 1. disparities, limits, seeds and their disparities.
void seeds_phase(const Planes& g, const float* depth) {
  const int H = g.H, W = g.W;
  const float e = g.edge;
  parallel_for(g.nt, H, kRows, [&](int64_t y0, int64_t y1, int) {
    float* __restrict disp = g.disp;
    float* __restrict limit = g.limit;
    for (int64_t p = y0 * W; p < y1 * W; ++p) {
      const float d = 1.0f / depth[p];
      disp[p] = d;
      limit[p] = d - e;
    }
  });
  parallel_for(g.nt, H, kRows, [&](int64_t y0, int64_t y1, int) {
    for (int y = int(y0); y < int(y1); ++y) {
      const int64_t row = int64_t(y) * W;
      const float* d = g.disp + row;
      uint8_t* s = g.seed + row;
      float* sd = g.seed_disp ? g.seed_disp + row : nullptr;
      for (int x = 0; x < W; ++x) {
        // the pairs (a, b) = (x - 1, x), (x, x + 1), (y - 1, y), (y, y + 1), differenced as
        // the reference does, d_a - d_b: x is a seed where a is nearer by more than edge
        // (d_a - d_b > edge) or b is (d_a - d_b < -edge)
        bool bg = false;
        if (x > 0) bg |= d[x - 1] - d[x] > e;
        if (x < W - 1) bg |= d[x] - d[x + 1] < -e;
        if (y > 0) bg |= d[x - W] - d[x] > e;
        if (y < H - 1) bg |= d[x] - d[x + W] < -e;
        s[x] = bg;
        if (sd) sd[x] = bg ? d[x] : kInf;
      }
    }
  });
}

// 2. surfaces at the seeds, the holdings (nothing yet), the first offers.
template <typename C>
void surface_phase(const Planes& g, const Coords<C>& c) {
  const int H = g.H, W = g.W;
  const float e = g.edge;
  const int R = kSurfaceRadius;
  parallel_for(g.nt, H, kRows, [&](int64_t y0, int64_t y1, int) {
    for (int y = int(y0); y < int(y1); ++y) {
      const int64_t row = int64_t(y) * W;
      for (int x = 0; x < W; ++x) {
        const int64_t p = row + x;
        if (!g.seed[p]) {
          g.surface[p] = kInf;
          continue;
        }
        const float own = g.disp[p];
        float total = 0.0f, count = 0.0f;
        for (int dy = -R; dy <= R; ++dy) {
          const int ny = y + dy;
          for (int dx = -R; dx <= R; ++dx) {
            const int nx = x + dx;
            const bool inside = ny >= 0 && ny < H && nx >= 0 && nx < W;
            const float other = inside ? g.seed_disp[int64_t(ny) * W + nx] : kInf;
            const bool take = std::fabs(other - own) <= e;
            total += take ? other : 0.0f;
            count += take ? 1.0f : 0.0f;
          }
        }
        g.surface[p] = total / count;  // count >= 1: the seed itself
      }
      C* hy = c.hy + row;
      C* hx = c.hx + row;
      float* hd = g.hd + row;
      for (int x = 0; x < W; ++x) {
        hy[x] = 0;
        hx[x] = 0;
        hd[x] = kInf;
      }
      offer_row<C>(W, C(y), g.seed_disp + row, hy, hx, hd, c.oy[0] + row, c.ox[0] + row, g.od[0] + row);
      offer_span(g.od[0] + row, W, g.lo[0][y], g.hi[0][y]);
    }
  });
}

// 3. one jump pass of step k: offers read from buffer `cur`, written to the other.
template <typename C>
void jump_phase(const Planes& g, const Coords<C>& c, int k, int cur) {
  const int H = g.H, W = g.W;
  const int nxt = 1 - cur;
  parallel_for(g.nt, H, kRows, [&](int64_t y0, int64_t y1, int participant) {
    C* d2 = c.d2row + int64_t(participant) * W;
    for (int y = int(y0); y < int(y1); ++y) {
      const int64_t row = int64_t(y) * W;
      C* hy = c.hy + row;
      C* hx = c.hx + row;
      float* hd = g.hd + row;
      bool any = false;
      for (int dy = -1; dy <= 1 && !any; ++dy) {
        const int ny = y + dy * k;
        any = ny >= 0 && ny < H && g.lo[cur][ny] <= g.hi[cur][ny];
      }
      if (any) {
        held_d2<C>(W, C(y), hy, hx, hd, d2);
        for (int dy = -1; dy <= 1; ++dy) {
          const int ny = y + dy * k;
          if (ny < 0 || ny >= H) continue;
          const int lo = g.lo[cur][ny], hi = g.hi[cur][ny];
          if (lo > hi) continue;
          const int64_t nrow = int64_t(ny) * W;
          for (int dx = -1; dx <= 1; ++dx) {
            if (dy == 0 && dx == 0) continue;
            const int off = dx * k;
            const int xa = std::max(0, lo - off), xb = std::min(W, hi - off + 1);
            if (xa < xb)
              take_nearer<C>(xa, xb, off, C(y), c.oy[cur] + nrow, c.ox[cur] + nrow, g.od[cur] + nrow, g.limit + row,
                             hy, hx, hd, d2);
          }
        }
      }
      offer_row<C>(W, C(y), g.seed_disp + row, hy, hx, hd, c.oy[nxt] + row, c.ox[nxt] + row, g.od[nxt] + row);
      offer_span(g.od[nxt] + row, W, g.lo[nxt][y], g.hi[nxt][y]);
    }
  });
}

// Whether pixel p = (y, x) holds a seed within band where allowed (the reference's `held`).
template <typename C>
inline bool holds(const Planes& g, const Coords<C>& c, int64_t p, int y, int x, int64_t band2,
                  const uint8_t* allowed) {
  if (!(g.hd[p] < kInf)) return false;  // nothing held: squared distance 2^31 - 1
  const int64_t ey = int64_t(c.hy[p]) - y, ex = int64_t(c.hx[p]) - x;
  return ey * ey + ex * ex <= band2 && (allowed == nullptr || allowed[p] != 0);
}

inline int32_t sign(int32_t v) { return (v > 0) - (v < 0); }

// 4-5. reach and the layer.
template <typename C>
void reach_phase(const Planes& g, const Coords<C>& c, Workspace& ws, int64_t band2, const uint8_t* allowed,
                 uint8_t* mask, float* layer_depth) {
  const int H = g.H, W = g.W;
  const int64_t N = g.N;
  ensure(ws.grow_up, size_t(N));
  ensure(ws.grow_list, size_t(N));
  const int n_items = (H + kRows - 1) / kRows;
  ensure(ws.grow_counts, size_t(n_items));
  int32_t* up = ws.grow_up.data();
  int32_t* list = ws.grow_list.data();
  int64_t* counts = ws.grow_counts.data();
  uint8_t* ok = mask;  // ok becomes the result
  // ok0 and up of each pixel: ok = 0 or 1 where that is final (not held, next to its seed,
  // or ok0 = 0), else kPending, listed per work item; the depth of every pixel that may be in
  // the layer
  parallel_for(g.nt, H, kRows, [&](int64_t y0, int64_t y1, int) {
    int64_t n = 0;
    int32_t* mine = list + y0 * W;
    for (int y = int(y0); y < int(y1); ++y) {
      for (int x = 0; x < W; ++x) {
        const int64_t p = int64_t(y) * W + x;
        ok[p] = 0;
        layer_depth[p] = 0.0f;
        if (!holds(g, c, p, y, x, band2, allowed)) continue;
        const int32_t sy = int32_t(c.hy[p]), sx = int32_t(c.hx[p]);
        const int32_t vy = sy - y, vx = sx - x;
        const int32_t ay = std::abs(vy), ax = std::abs(vx);
        const int32_t ty = y + (12 * ay > 5 * ax ? sign(vy) : 0);
        const int32_t tx = x + (12 * ax > 5 * ay ? sign(vx) : 0);
        const bool root = ty == sy && tx == sx;  // next to its seed
        if (!root) {
          const int32_t qy = std::min(std::max(ty, 0), H - 1), qx = std::min(std::max(tx, 0), W - 1);
          const int64_t q = int64_t(qy) * W + qx;
          if (!(holds(g, c, q, qy, qx, band2, allowed) && g.hd[q] < g.limit[p])) continue;
          up[p] = int32_t(q);
          mine[n++] = int32_t(p);
        }
        ok[p] = root ? 1 : kPending;
        layer_depth[p] = 1.0f / g.surface[int64_t(sy) * W + sx];
      }
    }
    counts[y0 / kRows] = n;
  });
  // the lines, walked from the pending pixels in order
  ensure(ws.grow_stack, size_t(N));
  int32_t* stack = ws.grow_stack.data();
  for (int i = 0; i < n_items; ++i) {
    const int32_t* mine = list + int64_t(i) * kRows * W;
    for (int64_t j = 0; j < counts[i]; ++j) {
      int32_t p = mine[j];
      if (ok[p] != kPending) continue;
      int64_t n = 0;
      while (ok[p] == kPending) {
        ok[p] = kWalking;
        stack[n++] = p;
        p = up[p];
      }
      const uint8_t value = ok[p] == 0 ? 0 : 1;  // kWalking: a cycle of pending pixels, all ok0 = 1
      for (int64_t s = 0; s < n; ++s) {
        ok[stack[s]] = value;
        if (!value) layer_depth[stack[s]] = 0.0f;
      }
    }
  }
}

template <typename C>
void grow_with(Workspace& ws, const Planes& g, Buffer<C>& coords, const int32_t* steps, int n_steps, int64_t band2,
               const uint8_t* allowed, uint8_t* mask, float* layer_depth, int32_t* nearest_out) {
  const int H = g.H, W = g.W;
  const int64_t N = g.N;
  ensure(coords, size_t(N) * 6 + size_t(g.nt) * W);
  Coords<C> c;
  C* base = coords.data();
  c.hy = base;
  c.hx = base + N;
  c.oy[0] = base + 2 * N;
  c.ox[0] = base + 3 * N;
  c.oy[1] = base + 4 * N;
  c.ox[1] = base + 5 * N;
  c.d2row = base + 6 * N;
  surface_phase(g, c);
  int cur = 0;
  for (int s = 0; s < n_steps; ++s) {
    jump_phase(g, c, steps[s], cur);
    cur = 1 - cur;
  }
  if (nearest_out) {
    int32_t* ny = nearest_out;
    int32_t* nx = nearest_out + N;
    float* nd = reinterpret_cast<float*>(nearest_out + 2 * N);
    int32_t* n2 = nearest_out + 3 * N;
    parallel_for(g.nt, H, kRows, [&](int64_t y0, int64_t y1, int) {
      for (int y = int(y0); y < int(y1); ++y) {
        const int64_t row = int64_t(y) * W;
        for (int x = 0; x < W; ++x) {
          const int64_t p = row + x;
          const int32_t sy = int32_t(c.hy[p]), sx = int32_t(c.hx[p]);
          ny[p] = sy;
          nx[p] = sx;
          nd[p] = g.hd[p];
          n2[p] = g.hd[p] < kInf ? (sy - y) * (sy - y) + (sx - x) * (sx - x) : INT32_MAX;
        }
      }
    });
  }
  reach_phase(g, c, ws, band2, allowed, mask, layer_depth);
}

}  // namespace
}  // namespace p3d

P3D_API int p3d_grow(void* ws, const float* depth, int32_t height, int32_t width, const int32_t* steps,
                     int32_t n_steps, int32_t rounds, int64_t band2, double edge, const uint8_t* allowed,
                     int32_t n_threads, uint8_t* mask, float* layer_depth, uint8_t* seeds, float* surface,
                     int32_t* nearest) {
  if (!ws || !depth || !mask || !layer_depth || height <= 0 || width <= 0 || n_steps < 0) return -1;
  if (n_steps > 0 && !steps) return -1;
  // flat indices and squared distances in int32, as the reference keeps them
  const int64_t H = height, W = width;
  if (H * W >= INT32_MAX || H * H + W * W >= INT32_MAX) return -1;
  // the walk gives the reference's result when its passes may follow every line to its end
  // (step 4): 2^rounds >= H*W, as ops.grow.reach_rounds makes them
  if (rounds < 1 || (rounds < 31 && (int64_t(1) << rounds) < H * W)) return -1;
  for (int s = 0; s < n_steps; ++s)
    if (steps[s] <= 0) return -1;
  p3d::Workspace& w = *static_cast<p3d::Workspace*>(ws);
  try {
    const int64_t N = H * W;
    p3d::Planes g;
    g.H = height;
    g.W = width;
    g.N = N;
    g.edge = static_cast<float>(edge);
    g.nt = std::max(1, int(n_threads));
    p3d::ensure(w.grow_f, size_t(N) * 7);
    p3d::ensure(w.grow_spans, size_t(H) * 4);
    p3d::ensure(w.grow_seed, size_t(N));
    float* f = w.grow_f.data();
    g.disp = f;
    g.limit = f + N;
    g.seed_disp = f + 2 * N;
    g.surface = surface ? surface : f + 3 * N;
    g.hd = f + 4 * N;
    g.od[0] = f + 5 * N;
    g.od[1] = f + 6 * N;
    g.seed = seeds ? seeds : w.grow_seed.data();
    int32_t* spans = w.grow_spans.data();
    for (int b = 0; b < 2; ++b) {
      g.lo[b] = spans + 2 * b * H;
      g.hi[b] = spans + (2 * b + 1) * H;
    }
    p3d::seeds_phase(g, depth);
    // float32 rows, columns and squared distances are exact below 2^24
    if ((H - 1) * (H - 1) + (W - 1) * (W - 1) < (int64_t(1) << 24))
      p3d::grow_with<float>(w, g, w.grow_cf, steps, n_steps, band2, allowed, mask, layer_depth, nearest);
    else
      p3d::grow_with<int32_t>(w, g, w.grow_ci, steps, n_steps, band2, allowed, mask, layer_depth, nearest);
  } catch (const std::bad_alloc&) {
    return -2;
  }
  return 0;
}

P3D_API int p3d_seeds(const float* depth, int32_t height, int32_t width, double edge, int32_t n_threads,
                      uint8_t* seeds) {
  if (!depth || !seeds || height < 0 || width < 0) return -1;
  if (int64_t(height) * width == 0) return 0;
  p3d::Planes g;
  g.H = height;
  g.W = width;
  g.N = int64_t(height) * width;
  g.edge = static_cast<float>(edge);
  g.nt = std::max(1, int(n_threads));
  g.seed_disp = nullptr;
  try {
    std::unique_ptr<float[]> f(new float[size_t(g.N) * 2]);
    g.disp = f.get();
    g.limit = f.get() + g.N;
    g.seed = seeds;
    p3d::seeds_phase(g, depth);
  } catch (const std::bad_alloc&) {
    return -2;
  }
  return 0;
}
