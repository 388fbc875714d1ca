// Splat + resolve of LDI texels on the CPU: the twin of photo3d_fast/ops/splat.py (torch),
// kernels/splat.py (Triton) and csrc/splat.cu (CUDA), same formulas, for one or more frames.
//
// Per frame, four phases, each parallel over the library's threads (pool.h), no atomics:
//
// 1. Splats, parallel over blocks of 8 grid rows: project the block's rows (and the rows
//    above and below) once, then, a whole row at a time in vectorised loops, each texel's
//    footprint exactly as ops.splat.footprints derives it, its pixel box, z-buffer key and
//    the tent weights of the box's first two columns and rows (arrays per texel, SoA); count
//    which output bands (kBandRows rows each) each box touches.
// 2. Offsets (serial, items x bands integers) and 3. scatter, parallel over the same blocks:
//    every band gets the list of the texels touching it, in ascending texel order.
// 4. Bands, parallel over bands of output rows, each in a thread's tile small enough for L2
//    (with guard rows and a guard column): the z-buffer pass (minimum key over each texel's
//    pixels), the resolve thresholds (1 / z_winner - tolerance per pixel), the resolve pass
//    (tent-weighted (r, g, b, 1) sums of the pairs within the tolerance); then the raw keys
//    and sums (accumulate mode) or the normalised row, coverage, weight, disparity and depth
//    (finish mode). Boxes of one or two pixels (~99% of texels) take a branch-free path whose
//    masked pairs add exactly 0 or leave the minimum unchanged.
//
// Finish mode then runs the epilogue (finish.cpp: silhouettes, fill.cpp: holes, clamp).
//
// Determinism: a band sees its texels in ascending order, as the reference's index_add_
// does, so every pixel's sums are added in the reference's order whatever the number of
// threads; with -ffp-contract=off (no fused multiply-add, as torch's elementwise ops) and
// the reference's operation order (its matmul is (d0*R0j + d1*R1j) + d2*R2j) the z-buffer
// and the sums are the reference's bit for bit where the compiler and CPU agree with torch's.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "common.h"
#include "photo3d_cpu.h"

namespace p3d {
namespace {

//: Output rows per band (1 << kBandShift): a band's tile (8 + 4 + 16 bytes per pixel) stays
//: within L2 up to 4K.
constexpr int kBandShift = 3;
constexpr int kBandRows = 1 << kBandShift;
//: Grid rows per footprint work item.
constexpr int kItemRows = 8;

struct Camera {
  float R[9], t[3], fx, fy, cx, cy;
  float own_scale;  // 0.5 * fx / LDI fx: half the magnification of an isolated texel
};

struct Consts {
  float z_near, half_margin, max_extent;
};

// Exact ceil / floor of a float in [-1, 2^23): the conversion truncates toward zero.
inline int ceil_small(float a) {
  const int t = static_cast<int>(a);
  return t + (static_cast<float>(t) < a ? 1 : 0);
}

inline int floor_small(float a) {
  const int t = static_cast<int>(a);
  return t - (static_cast<float>(t) > a ? 1 : 0);
}

// max(ceil(a), 0) and min(floor(b), n - 1), as the reference's clamped box; lo > hi when
// the box covers no pixel center (also when a or b is NaN). Values are clamped to [-1, n]
// first, which changes neither result, so that the int conversions are exact.
inline void span(float a, float b, int n, int& lo, int& hi) {
  const float fn = static_cast<float>(n);
  const float ac = a == a ? std::min(std::max(a, -1.0f), fn) : fn;
  const float bc = b == b ? std::min(std::max(b, -1.0f), fn) : -1.0f;
  lo = std::max(ceil_small(ac), 0);
  hi = std::min(floor_small(bc), n - 1);
}

// One side of a footprint (reference: footprints). code: the link byte on this side (0 none,
// 1 a link, 2 a step whose first texel is the nearer, 3 one whose second is); first: this
// texel is the link's first (the side after it). A step's nearer texel takes the
// silhouette side, its farther one reaches across the gap to the nearer one's box.
inline float side(float near_, float far_, float shear, uint8_t code, bool first, bool has_far, float own,
                  const Consts& k) {
  const bool nearer = code == (first ? 2 : 3), farther = code == (first ? 3 : 2);
  const float reach = farther ? 2.0f * k.half_margin * near_ - 0.5f : k.half_margin * std::max(near_, shear);
  const float linked = std::min(std::max(reach, 0.5f), k.max_extent);
  const float silhouette = std::min(has_far ? 0.5f * far_ : own, k.max_extent);
  return code != 0 && !nearer ? linked : silhouette;
}

// The tent weight of the pixel at integer coordinate p (center p + 0.5) for a footprint
// centered at c reaching `before` and `after` pixels to each side (reference: splat_pairs).
inline float tent(int p, float c, float before, float after) {
  const float d = static_cast<float>(p) + 0.5f - c;
  return 1.0f - std::fabs(d) / ((d < 0 ? before : after) + 0.5f);
}

// Project grid points [xa, xb) of one row (x, y, z planes) into pixel coordinates and depth.
P3D_HOT void project_row(const float* __restrict px, const float* __restrict py, const float* __restrict pz, int xa,
                         int xb, const Camera& cam, float z_near, float* __restrict U, float* __restrict V,
                         float* __restrict Z) {
  const Camera c = cam;
  for (int x = xa; x < xb; ++x) {
    const float dx = px[x] - c.t[0], dy = py[x] - c.t[1], dz = pz[x] - c.t[2];
    // R^T (X - t), summed as torch's (X - t) @ R
    const float cx = (dx * c.R[0] + dy * c.R[3]) + dz * c.R[6];
    const float cy = (dx * c.R[1] + dy * c.R[4]) + dz * c.R[7];
    const float cz = (dx * c.R[2] + dy * c.R[5]) + dz * c.R[8];
    const float inv_z = 1.0f / (cz < z_near ? z_near : cz);  // clamp_min; NaN stays NaN
    U[x] = c.fx * cx * inv_z + c.cx;
    V[x] = c.fy * cy * inv_z + c.cy;
    Z[x] = cz;
  }
}

// Results of one grid row, one entry per column (SoA, so that the loop vectorises).
struct RowOut {
  uint64_t* key;
  uint32_t* bands;  // first output band << 8 | number of bands (0: covers nothing)
  float *wx0, *wx1, *wy0, *wy1;
  uint32_t* pos;
  uint16_t* box;
  float *u, *v, *left, *right, *up, *down;
};

// Footprints of columns [xa, xb) of one grid row, as ops.splat.footprints, and their splats:
// key, pixel box, tent weights of its first two columns and rows. U0/V0: the row above,
// U1/V1/Z1: the row, S1: its points' z, U2/V2: the row below (rows padded by one element on
// both sides); lx: W + 1 link bytes, lx[x] linking x - 1 and x (0 at both ends); lt/lb: link
// bytes to the row above / below (0 at the grid's first / last row). id0: flat id of x = 0.
P3D_HOT void footprint_row(int xa, int xb, const float* __restrict U0, const float* __restrict V0,
                           const float* __restrict U1, const float* __restrict V1, const float* __restrict Z1,
                           const float* __restrict S1, const float* __restrict U2, const float* __restrict V2,
                           const uint8_t* __restrict lx, const uint8_t* __restrict lt, const uint8_t* __restrict lb,
                           const Camera& cam, const Consts& k, int out_w, int out_h, uint32_t id0, const RowOut& out) {
  uint64_t* __restrict okey = out.key;
  float* __restrict owx0 = out.wx0;
  float* __restrict owx1 = out.wx1;
  float* __restrict owy0 = out.wy0;
  float* __restrict owy1 = out.wy1;
  uint32_t* __restrict opos = out.pos;
  uint16_t* __restrict obox = out.box;
  uint32_t* __restrict obands = out.bands;
  float* __restrict ou = out.u;
  float* __restrict ov = out.v;
  float* __restrict oleft = out.left;
  float* __restrict oright = out.right;
  float* __restrict oup = out.up;
  float* __restrict odown = out.down;
  const float own_scale = cam.own_scale;
  const Consts kk = k;
  P3D_IVDEP
  for (int x = xa; x < xb; ++x) {
    const bool has_l = lx[x] != 0, has_r = lx[x + 1] != 0, has_t = lt[x] != 0, has_b = lb[x] != 0;
    const float u = U1[x], v = V1[x], z = Z1[x];
    // every neighbour is loaded (the rows are padded), then masked: no branch, so it vectorises
    const float ul = U1[x - 1], vl = V1[x - 1], ur = U1[x + 1], vr = V1[x + 1];
    const float ut = U0[x], vt = V0[x], ub = U2[x], vb = V2[x];
    const float du_l = has_l ? std::fabs(u - ul) : 0.0f;
    const float du_r = has_r ? std::fabs(ur - u) : 0.0f;
    const float dv_t = has_t ? std::fabs(v - vt) : 0.0f;
    const float dv_b = has_b ? std::fabs(vb - v) : 0.0f;
    const float shear_u = std::max(has_t ? std::fabs(u - ut) : 0.0f, has_b ? std::fabs(ub - u) : 0.0f);
    const float shear_v = std::max(has_l ? std::fabs(v - vl) : 0.0f, has_r ? std::fabs(vr - v) : 0.0f);
    const float own = own_scale * S1[x] / (z < kk.z_near ? kk.z_near : z);
    oleft[x] = side(du_l, du_r, shear_u, lx[x], false, has_r, own, kk);
    oright[x] = side(du_r, du_l, shear_u, lx[x + 1], true, has_l, own, kk);
    oup[x] = side(dv_t, dv_b, shear_v, lt[x], false, has_b, own, kk);
    odown[x] = side(dv_b, dv_t, shear_v, lb[x], true, has_t, own, kk);
    ou[x] = u;
    ov[x] = v;
  }
  // then the pixel boxes and tent weights: a second loop, so that neither runs out of registers
  P3D_IVDEP
  for (int x = xa; x < xb; ++x) {
    const float u = ou[x], v = ov[x], z = Z1[x];
    const float left = oleft[x], right = oright[x], up = oup[x], down = odown[x];
    int x0, x1, y0, y1;
    span(u - left - 0.5f, u + right - 0.5f, out_w, x0, x1);
    span(v - up - 0.5f, v + down - 0.5f, out_h, y0, y1);
    const bool ok = z > kk.z_near && x1 >= x0 && y1 >= y0;
    okey[x] = ok ? (uint64_t(float_bits(z)) << 32) | uint64_t(id0 + uint32_t(x)) : kEmpty;
    opos[x] = uint32_t(x0) | (uint32_t(y0) << 16);
    obox[x] = ok ? uint16_t(uint32_t(x1 - x0 + 1) | (uint32_t(y1 - y0 + 1) << 8)) : uint16_t(0);
    obands[x] = ok ? (uint32_t(y0 >> kBandShift) << 8) | uint32_t((y1 >> kBandShift) - (y0 >> kBandShift) + 1) : 0u;
    owx0[x] = tent(x0, u, left, right);
    owx1[x] = tent(x0 + 1, u, left, right);
    owy0[x] = tent(y0, v, up, down);
    owy1[x] = tent(y0 + 1, v, up, down);
  }
}

// Count the bands texel i (column x of a row's results) touches; keep the footprint of a
// big box (over 2x2 pixels) for the band pass.
inline void count_bands(const RowOut& o, int x, int64_t i, Workspace& ws, int64_t* counts) {
  const uint32_t bands = o.bands[x];
  if (bands == 0) return;
  const uint16_t box = o.box[x];
  if ((box & 0xFF) > 2 || (box >> 8) > 2) {
    float* e = ws.extent.data() + i * 6;
    e[0] = o.u[x];
    e[1] = o.v[x];
    e[2] = o.left[x];
    e[3] = o.right[x];
    e[4] = o.up[x];
    e[5] = o.down[x];
  }
  const uint32_t b0 = bands >> 8, b1 = b0 + (bands & 0xFF);
  ++counts[b0];
  for (uint32_t b = b0 + 1; b < b1; ++b) ++counts[b];
}

// Copy column x of a row's results to texel i and count it.
inline void emit(const RowOut& o, int x, int64_t i, Workspace& ws, int64_t* counts) {
  ws.key[i] = o.key[x];
  ws.bands[i] = o.bands[x];
  ws.pos[i] = o.pos[x];
  ws.box[i] = o.box[x];
  ws.wx0[i] = o.wx0[x];
  ws.wx1[i] = o.wx1[x];
  ws.wy0[i] = o.wy0[x];
  ws.wy1[i] = o.wy1[x];
  count_bands(o, x, i, ws, counts);
}

//: Floats of one thread's phase-1 scratch for grid width W: projected rows (3 planes of
//: kItemRows + 2 padded rows), one row's results (2 for the key, 12 more per column) and
//: its link bytes.
inline size_t footprint_scratch(int W) { return size_t(3) * (kItemRows + 2) * (W + 2) + size_t(16) * (W + 2) + 64; }

// Phase 1 for one block of grid rows [ya, yb) of one layer: splats and band counts.
void footprints(const P3dGrid& g, const Camera& cam, const Consts& k, int layer, int ya, int yb, int out_w,
                int out_h, Workspace& ws, float* scratch, int64_t* counts) {
  const int H = g.height, W = g.width;
  const int64_t plane_size = int64_t(g.layers) * H * W;
  const float* PX = g.points;
  const float* PY = g.points + plane_size;
  const float* PZ = g.points + 2 * plane_size;
  const int64_t base_row = int64_t(layer) * H;
  auto first = [&](int y) { return g.row_start[base_row + y]; };
  auto count = [&](int y) { return y >= ya && y < yb ? first(y + 1) - first(y) : 0; };
  // columns [lo, hi) of texels in row y (empty when none)
  auto columns = [&](int y, int& lo, int& hi) {
    lo = 0;
    hi = 0;
    if (count(y) == 0) return;
    lo = int(g.texels[first(y)] - (base_row + y) * W);
    hi = int(g.texels[first(y + 1) - 1] - (base_row + y) * W) + 1;
  };
  const int64_t stride = W + 2, plane = (kItemRows + 2) * stride;
  float* U = scratch + 1;  // element -1 of each padded row exists
  float* V = U + plane;
  float* Z = V + plane;
  float* f = scratch + 3 * plane;
  const int64_t w2 = W + 2;
  RowOut o;
  o.key = reinterpret_cast<uint64_t*>((reinterpret_cast<uintptr_t>(f) + 7) & ~uintptr_t(7));
  float* g0 = reinterpret_cast<float*>(o.key + w2);
  o.wx0 = g0;
  o.wx1 = g0 + w2;
  o.wy0 = g0 + 2 * w2;
  o.wy1 = g0 + 3 * w2;
  o.u = g0 + 4 * w2;
  o.v = g0 + 5 * w2;
  o.left = g0 + 6 * w2;
  o.right = g0 + 7 * w2;
  o.up = g0 + 8 * w2;
  o.down = g0 + 9 * w2;
  o.pos = reinterpret_cast<uint32_t*>(g0 + 10 * w2);
  o.bands = reinterpret_cast<uint32_t*>(g0 + 11 * w2);
  o.box = reinterpret_cast<uint16_t*>(g0 + 12 * w2);
  uint8_t* lx = reinterpret_cast<uint8_t*>(g0 + 13 * w2);  // W + 1 bytes, then W zero bytes
  uint8_t* zeros = lx + W + 8;
  std::memset(zeros, 0, W);
  lx[0] = 0;
  lx[W] = 0;
  // project what the texels' footprints read: their columns +-1 in their rows and the rows
  // above and below
  for (int y = std::max(ya - 1, 0); y <= std::min(yb, H - 1); ++y) {
    int lo = W, hi = 0;
    for (int r = y - 1; r <= y + 1; ++r) {
      int a, b;
      columns(r, a, b);
      if (a < b) {
        lo = std::min(lo, std::max(a - 1, 0));
        hi = std::max(hi, std::min(b + 1, W));
      }
    }
    if (lo >= hi) continue;
    const int64_t at = (base_row + y) * W;
    const int64_t slot = int64_t(y - ya + 1) * stride;
    project_row(PX + at, PY + at, PZ + at, lo, hi, cam, k.z_near, U + slot, V + slot, Z + slot);
  }
  for (int y = ya; y < yb; ++y) {
    int lo, hi;
    columns(y, lo, hi);
    if (lo >= hi) continue;
    const int64_t t0 = first(y), n = count(y);
    const int64_t slot = int64_t(y - ya + 1) * stride;
    if (W > 1) std::memcpy(lx + 1, g.link_x + (base_row + y) * (W - 1), W - 1);
    const uint8_t* lt = y > 0 ? g.link_y + (int64_t(layer) * (H - 1) + y - 1) * W : zeros;
    const uint8_t* lb = y < H - 1 ? g.link_y + (int64_t(layer) * (H - 1) + y) * W : zeros;
    const int64_t row_base = (base_row + y) * W;
    if (n == W) {  // a full row: texel t0 + x is column x, its splats go straight to place
      RowOut d = o;
      d.key = ws.key.data() + t0;
      d.bands = ws.bands.data() + t0;
      d.pos = ws.pos.data() + t0;
      d.box = ws.box.data() + t0;
      d.wx0 = ws.wx0.data() + t0;
      d.wx1 = ws.wx1.data() + t0;
      d.wy0 = ws.wy0.data() + t0;
      d.wy1 = ws.wy1.data() + t0;
      footprint_row(0, W, U + slot - stride, V + slot - stride, U + slot, V + slot, Z + slot, PZ + row_base,
                    U + slot + stride, V + slot + stride, lx, lt, lb, cam, k, out_w, out_h, uint32_t(row_base), d);
      for (int x = 0; x < W; ++x) count_bands(d, x, t0 + x, ws, counts);
    } else {
      footprint_row(lo, hi, U + slot - stride, V + slot - stride, U + slot, V + slot, Z + slot, PZ + row_base,
                    U + slot + stride, V + slot + stride, lx, lt, lb, cam, k, out_w, out_h, uint32_t(row_base), o);
      for (int64_t i = t0; i < t0 + n; ++i) emit(o, int(g.texels[i] - row_base), i, ws, counts);
    }
  }
}

// A band's tile: rows -1 .. kBandRows (a guard row on each side) of W + 1 pixels (a guard
// column), so that the 2x2 fast path writes masked (no-op) updates out of the band freely.
struct Tile {
  uint64_t* zb;  // keys
  float* thr;    // 1 / z_winner - tolerance; NaN where empty and in the guards
  float* acc;    // 4 sums per pixel
  int64_t stride;
  int64_t at(int local_row, int x) const { return (local_row + 1) * stride + x; }
};

inline size_t tile_bytes(int out_w) { return size_t(kBandRows + 2) * (out_w + 1) * (8 + 4 + 16) + 64; }

inline Tile tile_at(uint8_t* mem, int out_w) {
  const int64_t stride = out_w + 1, n = (kBandRows + 2) * stride;
  Tile t;
  t.acc = reinterpret_cast<float*>(mem);
  t.zb = reinterpret_cast<uint64_t*>(mem + n * 16);
  t.thr = reinterpret_cast<float*>(mem + n * 24);
  t.stride = stride;
  return t;
}

// Phase 4 for one band of output rows [by0, by0 + rows): z-buffer, thresholds, resolve.
P3D_HOT void band(const P3dGrid& g, float tolerance, int out_w, int by0, int rows, const uint32_t* list, int64_t n,
                  const Workspace& ws, const Tile& t) {
  const int64_t n_tile = (kBandRows + 2) * t.stride;
  std::fill(t.zb, t.zb + n_tile, kEmpty);
  std::memset(t.acc, 0, sizeof(float) * 4 * n_tile);
  const float nan = std::nanf("");
  std::fill(t.thr, t.thr + n_tile, nan);
  if (n == 0) return;
  const uint64_t* __restrict keys = ws.key.data();
  const uint32_t* __restrict pos = ws.pos.data();
  const uint16_t* __restrict box = ws.box.data();
  const float* __restrict wx0s = ws.wx0.data();
  const float* __restrict wx1s = ws.wx1.data();
  const float* __restrict wy0s = ws.wy0.data();
  const float* __restrict wy1s = ws.wy1.data();
  const float* __restrict colors = g.colors;
  uint64_t* __restrict zb = t.zb;
  float* __restrict thr = t.thr;
  float* __restrict acc = t.acc;
  const int64_t stride = t.stride;
  // z-buffer: the minimum key over each texel's pixels
  for (int64_t j = 0; j < n; ++j) {
    const uint32_t i = list[j];
    const uint64_t key = keys[i];
    const int x0 = int(pos[i] & 0xFFFF), ly = int(pos[i] >> 16) - by0;  // ly >= -1: may start above
    const int nx = box[i] & 0xFF, ny = box[i] >> 8;
    uint64_t* z0 = zb + (ly + 1) * stride + x0;
    if (nx * ny <= 2) {  // one pixel, or two side by side or one above the other (~99%)
      const int64_t second = nx == 2 ? 1 : stride;
      const bool r0 = ly >= 0, on2 = nx * ny == 2 && (nx == 2 ? r0 : ly + 1 < rows);
      z0[0] = std::min(z0[0], r0 ? key : kEmpty);
      z0[second] = std::min(z0[second], on2 ? key : kEmpty);
      continue;
    }
    if (nx == 2 && ny == 2) {
      const bool r0 = ly >= 0, r1 = ly + 1 < rows;
      uint64_t* z1 = z0 + stride;
      z0[0] = std::min(z0[0], r0 ? key : kEmpty);
      z0[1] = std::min(z0[1], r0 ? key : kEmpty);
      z1[0] = std::min(z1[0], r1 ? key : kEmpty);
      z1[1] = std::min(z1[1], r1 ? key : kEmpty);
      continue;
    }
    for (int y = std::max(ly, 0); y < std::min(ly + ny, rows); ++y) {
      uint64_t* row = zb + (y + 1) * stride + x0;
      for (int x = 0; x < nx; ++x) row[x] = std::min(row[x], key);
    }
  }
  for (int y = 0; y < rows; ++y) {
    const uint64_t* zr = zb + (y + 1) * stride;
    float* tr = thr + (y + 1) * stride;
    for (int x = 0; x < out_w; ++x)
      tr[x] = zr[x] == kEmpty ? nan : 1.0f / bits_float(uint32_t(zr[x] >> 32)) - tolerance;
  }
  // resolve: tent-weighted (r, g, b, 1) of the pairs within the tolerance of the winner.
  // Masked pairs add exactly 0 (weights are positive), so the fast path is branch-free.
  for (int64_t j = 0; j < n; ++j) {
    const uint32_t i = list[j];
    const float inv_z = 1.0f / bits_float(uint32_t(keys[i] >> 32));
    const float4 c = {colors[int64_t(i) * 3 + 0], colors[int64_t(i) * 3 + 1], colors[int64_t(i) * 3 + 2], 1.0f};
    const int x0 = int(pos[i] & 0xFFFF), ly = int(pos[i] >> 16) - by0;
    const int nx = box[i] & 0xFF, ny = box[i] >> 8;
    const int64_t p = (ly + 1) * stride + x0;
    // the guard rows' and column's NaN thresholds reject pairs outside the band
    if (nx * ny <= 2) {
      const int64_t second = nx == 2 ? 1 : stride;
      const float w2 = nx == 2 ? wx1s[i] * wy0s[i] : wx0s[i] * wy1s[i];
      add_scaled(acc + p * 4, c, inv_z >= thr[p] ? wx0s[i] * wy0s[i] : 0.0f);
      add_scaled(acc + (p + second) * 4, c, nx * ny == 2 && inv_z >= thr[p + second] ? w2 : 0.0f);
      continue;
    }
    if (nx == 2 && ny == 2) {
      const float wx0 = wx0s[i], wx1 = wx1s[i], wy0 = wy0s[i], wy1 = wy1s[i];
      add_scaled(acc + p * 4, c, inv_z >= thr[p] ? wx0 * wy0 : 0.0f);
      add_scaled(acc + (p + 1) * 4, c, inv_z >= thr[p + 1] ? wx1 * wy0 : 0.0f);
      add_scaled(acc + (p + stride) * 4, c, inv_z >= thr[p + stride] ? wx0 * wy1 : 0.0f);
      add_scaled(acc + (p + stride + 1) * 4, c, inv_z >= thr[p + stride + 1] ? wx1 * wy1 : 0.0f);
      continue;
    }
    const float* e = ws.extent.data() + int64_t(i) * 6;  // u, v, left, right, up, down
    for (int y = std::max(ly, 0); y < std::min(ly + ny, rows); ++y) {
      const float wy = tent(by0 + y, e[1], e[4], e[5]);
      for (int x = x0; x < x0 + nx; ++x) {
        const int64_t p = (y + 1) * stride + x;
        if (!(inv_z >= thr[p])) continue;
        add_scaled(acc + p * 4, c, tent(x, e[0], e[2], e[3]) * wy);
      }
    }
  }
}

}  // namespace

// One frame: phases 1-4, then (finish mode) the epilogue.
static int render(Workspace& ws, const P3dGrid& g, const P3dParams& prm, const float* cam_block, int out_w,
                  int out_h, int nt, int64_t* zbuf, float* acc_out, float* color, uint8_t* covered, uint8_t* orphan,
                  int64_t* n_orphans) {
  const int L = g.layers, H = g.height, W = g.width;
  const int64_t T = g.n_texels, n_pix = int64_t(out_w) * out_h;
  Camera cam;
  std::memcpy(cam.R, cam_block, 9 * sizeof(float));
  std::memcpy(cam.t, cam_block + 9, 3 * sizeof(float));
  cam.fx = cam_block[12];
  cam.fy = cam_block[13];
  cam.cx = cam_block[14];
  cam.cy = cam_block[15];
  // as the reference: (0.5 * focal / grid.focal) in double, then float32 with the tensor
  cam.own_scale = static_cast<float>(0.5 * static_cast<double>(cam.fx) / g.focal);
  Consts k;
  k.z_near = static_cast<float>(prm.z_near);
  k.half_margin = static_cast<float>(0.5 * prm.margin);
  k.max_extent = static_cast<float>(prm.max_extent);
  const float tolerance = static_cast<float>(prm.tolerance);

  const int n_bands = (out_h + kBandRows - 1) / kBandRows;
  const int items_per_layer = (H + kItemRows - 1) / kItemRows;
  const int n_items = L * items_per_layer;
  ensure(ws.key, size_t(T));
  ensure(ws.pos, size_t(T));
  ensure(ws.box, size_t(T));
  ensure(ws.bands, size_t(T));
  for (auto* v : {&ws.wx0, &ws.wx1, &ws.wy0, &ws.wy1}) ensure(*v, size_t(T));
  ensure(ws.extent, size_t(T) * 6);
  ensure(ws.counts, size_t(n_items) * n_bands);
  ensure(ws.band_start, size_t(n_bands) + 1);
  std::fill(ws.counts.begin(), ws.counts.begin() + int64_t(n_items) * n_bands, 0);
  ws.threads(nt);
  for (int t = 0; t < nt; ++t) {
    ensure(ws.scratch[t], footprint_scratch(W));
    ensure(ws.tile[t], tile_bytes(out_w));
  }

  // 1. footprints, splats and band counts
  parallel_for(nt, n_items, 1, [&](int64_t begin, int64_t end, int tid) {
    for (int64_t item = begin; item < end; ++item) {
      const int layer = int(item / items_per_layer);
      const int ya = int(item % items_per_layer) * kItemRows, yb = std::min(ya + kItemRows, H);
      footprints(g, cam, k, layer, ya, yb, out_w, out_h, ws, ws.scratch[tid].data(),
                 ws.counts.data() + item * n_bands);
    }
  });
  // 2. list offsets, band-major, items in texel order within a band
  int64_t pos = 0;
  for (int b = 0; b < n_bands; ++b) {
    ws.band_start[b] = pos;
    for (int item = 0; item < n_items; ++item) {
      int64_t& c = ws.counts[int64_t(item) * n_bands + b];
      const int64_t n = c;
      c = pos;
      pos += n;
    }
  }
  ws.band_start[n_bands] = pos;
  ensure(ws.lists, size_t(pos));
  // 3. scatter texel indices into their bands' lists
  parallel_for(nt, n_items, 4, [&](int64_t begin, int64_t end, int) {
    for (int64_t item = begin; item < end; ++item) {
      const int layer = int(item / items_per_layer);
      const int ya = int(item % items_per_layer) * kItemRows, yb = std::min(ya + kItemRows, H);
      const int64_t base_row = int64_t(layer) * H;
      int64_t* cursor = ws.counts.data() + item * n_bands;
      const uint32_t* bands = ws.bands.data();
      uint32_t* lists = ws.lists.data();
      for (int64_t i = g.row_start[base_row + ya]; i < g.row_start[base_row + yb]; ++i) {
        const uint32_t b0 = bands[i] >> 8, b1 = b0 + (bands[i] & 0xFF);
        for (uint32_t b = b0; b < b1; ++b) lists[cursor[b]++] = uint32_t(i);
      }
    }
  });
  // 4. bands, then their output: the raw sums and keys, or the normalised frame
  const bool finish = color != nullptr;
  if (finish) {
    ensure(ws.weight, size_t(n_pix));
    ensure(ws.disp, size_t(n_pix));
    ensure(ws.zpix, size_t(n_pix));
  }
  parallel_for(nt, n_bands, 1, [&](int64_t begin, int64_t end, int tid) {
    for (int64_t b = begin; b < end; ++b) {
      const int by0 = int(b) * kBandRows, rows = std::min(kBandRows, out_h - by0);
      const Tile t = tile_at(ws.tile[tid].data(), out_w);
      const int64_t start = ws.band_start[b];
      band(g, tolerance, out_w, by0, rows, ws.lists.data() + start, ws.band_start[b + 1] - start, ws, t);
      for (int y = 0; y < rows; ++y) {
        const int64_t o = int64_t(by0 + y) * out_w;
        const float* s = t.acc + t.at(y, 0) * 4;
        const uint64_t* zr = t.zb + t.at(y, 0);
        if (!finish) {
          std::memcpy(zbuf + o, zr, sizeof(uint64_t) * out_w);
          std::memcpy(acc_out + o * 4, s, sizeof(float) * 4 * out_w);
          continue;
        }
        normalise_row(s, zr, out_w, color + o * 3, covered + o, ws.weight.data() + o, ws.disp.data() + o,
                      ws.zpix.data() + o);
      }
    }
  });
  if (finish)
    *n_orphans = finish_frame(ws, color, covered, out_h, out_w, static_cast<float>(prm.edge),
                              static_cast<float>(prm.coverage_full), static_cast<float>(prm.far_power), orphan, nt);
  return 0;
}

}  // namespace p3d

#ifndef P3D_SOURCE_HASH
#define P3D_SOURCE_HASH "unknown"
#endif

P3D_API int p3d_abi(void) { return P3D_ABI; }

P3D_API const char* p3d_source_hash(void) { return P3D_SOURCE_HASH; }

P3D_API void* p3d_workspace_new(void) { return new (std::nothrow) p3d::Workspace(); }

P3D_API void p3d_workspace_free(void* ws) { delete static_cast<p3d::Workspace*>(ws); }

P3D_API int p3d_splat(void* ws, const P3dGrid* grid, const P3dParams* params, const float* cams, int32_t n_frames,
                      int32_t out_w, int32_t out_h, int32_t n_threads, int64_t* zbuf, float* acc, float* color,
                      uint8_t* covered, uint8_t* orphan, int64_t* n_orphans) {
  if (!ws || !grid || !params || n_frames < 0 || out_w <= 0 || out_h <= 0) return -1;
  const bool accumulate = zbuf && acc, finish = color && covered && orphan && n_orphans;
  if (accumulate == finish) return -1;
  if (grid->width <= 0 || grid->height <= 0 || grid->layers <= 0 || grid->n_texels < 0) return -1;
  if (out_w > 65535 || out_h > 65535 || !(params->max_extent >= 0 && params->max_extent <= 100)) return -1;
  if (grid->n_texels > 0xFFFFFFFFll || int64_t(grid->layers) * grid->height * grid->width > 0xFFFFFFFFll) return -1;
  const int nt = std::max(1, int(n_threads));
  const int64_t n_pix = int64_t(out_w) * out_h;
  p3d::Workspace& w = *static_cast<p3d::Workspace*>(ws);
  try {
    for (int f = 0; f < n_frames; ++f) {
      const int64_t o = f * n_pix;
      p3d::render(w, *grid, *params, cams + 16 * f, out_w, out_h, nt, accumulate ? zbuf + o : nullptr,
                  accumulate ? acc + 4 * o : nullptr, finish ? color + 3 * o : nullptr,
                  finish ? covered + o : nullptr, finish ? orphan + o : nullptr, finish ? n_orphans + f : nullptr);
    }
  } catch (const std::bad_alloc&) {
    return -2;
  }
  return 0;
}
