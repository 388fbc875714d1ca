// Thin-lens depth of field on the CPU: the twin of photo3d_fast/ops/dof.py's depth_of_field
// (torch, whose module doc defines the op; Triton twin kernels/dof.py), the same formulas.
//
// The caller (ops/cpu.py) computes the per-pixel CoC radius and inverse shape area with the
// reference's own functions and passes the reference's offset table (nearest first), each
// offset with its distance minus half a pixel (float32, as the reference's rims use it); here
// every pixel walks that table and sums the front, own and hidden layers' weights and
// weighted colours, then composites them as the reference does. The walk stops at the first
// offset farther (minus half a pixel) than both the pixel's own radius and the largest
// radius within reach of its 8x8 tile, where every later weight is 0: a mostly sharp frame
// costs a few offsets per pixel. Sums are float64 (the reference sums float32 band by band:
// results agree within 1e-5, the tests' tolerance); each weight is the reference's float32
// expression.
//
// Each output pixel is written by one thread and reads the inputs only: results do not
// depend on the number of threads.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "common.h"
#include "photo3d_cpu.h"

namespace p3d {
namespace {

//: Tile side (pixels) of the bound on the radii a pixel can reach.
constexpr int kTile = 8;

inline float clamp01(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }

}  // namespace
}  // namespace p3d

P3D_API int p3d_dof(const float* color, const float* depth, const float* radius, const float* inv_area,
                    int32_t n_frames, int32_t height, int32_t width, const int32_t* off_dy, const int32_t* off_dx,
                    const float* off_edge, int32_t n_offsets, double depth_tolerance, int32_t n_threads, float* out) {
  using namespace p3d;
  if (!color || !depth || !radius || !inv_area || !off_dy || !off_dx || !off_edge || !out || n_frames < 0 ||
      height < 1 || width < 1 || n_offsets < 1)
    return -1;
  const int64_t H = height, W = width, N = H * W;
  const float k_front = float(1.0 - depth_tolerance), k_behind = float(1.0 + depth_tolerance);
  // The farthest offset of the table (its reach): a tile's bound looks this far around it.
  int reach = 0;
  for (int32_t i = 0; i < n_offsets; ++i) reach = std::max(reach, std::max(std::abs(off_dy[i]), std::abs(off_dx[i])));
  const int64_t TH = (H + kTile - 1) / kTile, TW = (W + kTile - 1) / kTile;
  const int64_t tile_reach = (reach + kTile - 1) / kTile;
  std::vector<float> tile_max, bound;
  try {
    tile_max.resize(size_t(TH * TW));
    bound.resize(size_t(TH * TW));
  } catch (const std::bad_alloc&) {
    return -2;
  }
  const int nt = std::max(1, int(n_threads));
  for (int64_t f = 0; f < n_frames; ++f) {
    const float* c = color + f * N * 3;
    const float* z = depth + f * N;
    const float* r = radius + f * N;
    const float* ia = inv_area + f * N;
    float* o = out + f * N * 3;
    // the largest radius of each tile, then of the tiles within reach of each tile
    std::fill(tile_max.begin(), tile_max.end(), 0.0f);
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        float& m = tile_max[size_t((y / kTile) * TW + x / kTile)];
        m = std::max(m, r[y * W + x]);
      }
    parallel_for(nt, TH, 4, [&](int64_t t0, int64_t t1, int) {
      for (int64_t ty = t0; ty < t1; ++ty)
        for (int64_t tx = 0; tx < TW; ++tx) {
          float m = 0.0f;
          for (int64_t sy = std::max<int64_t>(0, ty - tile_reach); sy <= std::min(TH - 1, ty + tile_reach); ++sy)
            for (int64_t sx = std::max<int64_t>(0, tx - tile_reach); sx <= std::min(TW - 1, tx + tile_reach); ++sx)
              m = std::max(m, tile_max[size_t(sy * TW + sx)]);
          bound[size_t(ty * TW + tx)] = m;
        }
    });
    parallel_for(nt, H, 4, [&](int64_t y0, int64_t y1, int) {
      for (int64_t y = y0; y < y1; ++y)
        for (int64_t x = 0; x < W; ++x) {
          const int64_t p = y * W + x;
          const float rp = r[p], ip = ia[p], zf = z[p] * k_front, zb = z[p] * k_behind;
          const float limit = std::max(rp, bound[size_t((y / kTile) * TW + x / kTile)]);
          double sf[3] = {0, 0, 0}, so[3] = {0, 0, 0}, sh[3] = {0, 0, 0};
          double wf_sum = 0, wo_sum = 0, wh_sum = 0;
          for (int32_t i = 0; i < n_offsets; ++i) {
            const float edge = off_edge[i];
            if (edge >= limit) break;  // every farther offset: no disc reaches it
            const int64_t qy = std::min<int64_t>(H - 1, std::max<int64_t>(0, y + off_dy[i]));
            const int64_t qx = std::min<int64_t>(W - 1, std::max<int64_t>(0, x + off_dx[i]));
            const int64_t q = qy * W + qx;
            const float rq = r[q], zq = z[q], iq = ia[q];
            const float cov_q = clamp01(rq - edge), cov_p = clamp01(rp - edge);
            float wf = 0.0f, wo = 0.0f;
            if (zq < zf)
              wf = cov_q * iq;
            else
              wo = std::min(cov_q, cov_p) * std::max(iq, ip);
            const float wh = zq > zb ? cov_p * ip : 0.0f;
            const float* cq = c + q * 3;
            for (int k = 0; k < 3; ++k) {
              sf[k] += double(wf) * cq[k];
              so[k] += double(wo) * cq[k];
              sh[k] += double(wh) * cq[k];
            }
            wf_sum += wf;
            wo_sum += wo;
            wh_sum += wh;
          }
          const double alpha = std::min(wf_sum, 1.0);
          const double deficit = wh_sum > 0.0 ? std::min(1.0, std::max(0.0, 1.0 - wo_sum)) : 0.0;
          for (int k = 0; k < 3; ++k) {
            const double front_mean = sf[k] / std::max(wf_sum, 1e-12);
            const double hidden = sh[k] / std::max(wh_sum, 1e-12);
            const double own_mean = (so[k] + deficit * hidden) / (wo_sum + deficit);
            o[p * 3 + k] = float(alpha * front_mean + (1.0 - alpha) * own_mean);
          }
        }
    });
  }
  return 0;
}
