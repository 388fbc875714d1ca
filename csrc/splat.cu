// Fused splat + resolve of LDI texels: the CUDA C++ twin of kernels/splat.py (Triton) and
// of photo3d_fast/ops/splat.py (torch), same math, same outputs.
//
// Pass 1 (zbuffer_kernel), one thread per texel: project the texel's world point and its
// four surface neighbours, derive the per-side footprint, atomicMin the key
// (float bits of z << 32 | texel id) into every covered pixel of an int64 z-buffer.
// Pass 2 (resolve_kernel): same footprint, read each covered pixel's winner, atomicAdd the
// tent-weighted color of texels within the resolve tolerance into float4 accumulators.
//
// Batching: blockIdx.y is the frame; frame f reads camera block f and writes its own
// z-buffer and accumulator, so one launch of each pass renders F frames.
//
// Conventions: OpenCV camera (x right, y down, z forward), pixel centers at +0.5, the
// camera block is {R row-major (9), t (3), fx, fy, cx, cy} of a camera-to-world pose.
// Plain CUDA (no torch headers) so that it compiles with nvcc alone; bindings.cpp wraps it.

#include <cstdint>
#include <cuda_runtime.h>

#include "splat.h"

namespace photo3d {

namespace {

struct Projected {
  float u, v, z;
};

__device__ __forceinline__ Projected project(const float* __restrict__ points, int64_t idx,
                                             const float* __restrict__ cam, float z_near) {
  const float dx = points[idx * 3 + 0] - cam[9];
  const float dy = points[idx * 3 + 1] - cam[10];
  const float dz = points[idx * 3 + 2] - cam[11];
  // R^T (X - t): column j of R dotted with (X - t)
  const float x = cam[0] * dx + cam[3] * dy + cam[6] * dz;
  const float y = cam[1] * dx + cam[4] * dy + cam[7] * dz;
  const float z = cam[2] * dx + cam[5] * dy + cam[8] * dz;
  const float inv_z = 1.0f / fmaxf(z, z_near);
  return {cam[12] * x * inv_z + cam[14], cam[13] * y * inv_z + cam[15], z};
}

// One side of a footprint (reference: ops.splat.footprints). code: the link byte on this side
// (SurfaceGrid.links_u8: 0 none, 1 a link, 2 / 3 a step whose first / second texel is the
// nearer); first: this texel is the link's first. A step's nearer texel takes the silhouette
// side, its farther one reaches across the gap to the nearer one's box.
__device__ __forceinline__ float side(float near_, float far_, float shear, uint8_t code, bool first, bool has_far,
                                      float own, const SplatParams& p) {
  const bool nearer = code == (first ? 2 : 3), farther = code == (first ? 3 : 2);
  if (code != 0 && !nearer) {
    const float reach = farther ? p.margin * near_ - 0.5f : 0.5f * p.margin * fmaxf(near_, shear);
    return fminf(fmaxf(reach, 0.5f), p.max_extent);
  }
  return fminf(has_far ? 0.5f * far_ : own, p.max_extent);
}

struct Footprint {
  float u, v, z, left, right, up, down;
  int x0, y0, nx, ny;
};

__device__ Footprint footprint(const SplatInputs& in, const SplatParams& p, const float* __restrict__ cam,
                               int64_t tex) {
  const int64_t W = p.grid_w, H = p.grid_h;
  const int64_t x = tex % W, y = (tex / W) % H, k = tex / (W * H);
  const Projected c = project(in.points, tex, cam, p.z_near);
  const float z_src = in.points[tex * 3 + 2];
  const int64_t lx = k * H * (W - 1) + y * (W - 1) + x;  // link_x (L, H, W-1)
  const int64_t ly = k * (H - 1) * W + y * W + x;        // link_y (L, H-1, W)
  const uint8_t code_l = x > 0 ? in.link_x[lx - 1] : 0, code_r = x < W - 1 ? in.link_x[lx] : 0;
  const uint8_t code_t = y > 0 ? in.link_y[ly - W] : 0, code_b = y < H - 1 ? in.link_y[ly] : 0;
  const bool has_l = code_l != 0, has_r = code_r != 0, has_t = code_t != 0, has_b = code_b != 0;
  float du_l = 0.f, du_r = 0.f, dv_t = 0.f, dv_b = 0.f, shear_u = 0.f, shear_v = 0.f;
  if (has_l) {
    const Projected n = project(in.points, tex - 1, cam, p.z_near);
    du_l = fabsf(c.u - n.u);
    shear_v = fmaxf(shear_v, fabsf(c.v - n.v));
  }
  if (has_r) {
    const Projected n = project(in.points, tex + 1, cam, p.z_near);
    du_r = fabsf(n.u - c.u);
    shear_v = fmaxf(shear_v, fabsf(n.v - c.v));
  }
  if (has_t) {
    const Projected n = project(in.points, tex - W, cam, p.z_near);
    dv_t = fabsf(c.v - n.v);
    shear_u = fmaxf(shear_u, fabsf(c.u - n.u));
  }
  if (has_b) {
    const Projected n = project(in.points, tex + W, cam, p.z_near);
    dv_b = fabsf(n.v - c.v);
    shear_u = fmaxf(shear_u, fabsf(n.u - c.u));
  }
  // output fx over the LDI's fx: the magnification of an isolated texel at equal depth
  const float own = 0.5f * cam[12] / p.grid_focal * z_src / fmaxf(c.z, p.z_near);
  Footprint f;
  f.u = c.u;
  f.v = c.v;
  f.z = c.z;
  f.left = side(du_l, du_r, shear_u, code_l, false, has_r, own, p);
  f.right = side(du_r, du_l, shear_u, code_r, true, has_l, own, p);
  f.up = side(dv_t, dv_b, shear_v, code_t, false, has_b, own, p);
  f.down = side(dv_b, dv_t, shear_v, code_b, true, has_t, own, p);
  f.x0 = static_cast<int>(fmaxf(ceilf(c.u - f.left - 0.5f), 0.f));
  f.y0 = static_cast<int>(fmaxf(ceilf(c.v - f.up - 0.5f), 0.f));
  const int x1 = static_cast<int>(fminf(floorf(c.u + f.right - 0.5f), float(p.out_w - 1)));
  const int y1 = static_cast<int>(fminf(floorf(c.v + f.down - 0.5f), float(p.out_h - 1)));
  const bool ok = c.z > p.z_near;
  f.nx = ok ? max(x1 - f.x0 + 1, 0) : 0;
  f.ny = ok ? max(y1 - f.y0 + 1, 0) : 0;
  return f;
}

__global__ void zbuffer_kernel(SplatInputs in, SplatParams p, unsigned long long* __restrict__ zbuf) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.n_texels) return;
  const int64_t frame = blockIdx.y;
  zbuf += frame * p.out_w * p.out_h;
  const int64_t tex = in.texels[i];
  const Footprint f = footprint(in, p, in.cam + frame * 16, tex);
  // Positive float bits order like the floats: the integer minimum is the nearest texel,
  // ties broken by the lower id, whatever order the atomics land in.
  const unsigned long long key =
      (static_cast<unsigned long long>(__float_as_uint(f.z)) << 32) | static_cast<unsigned long long>(tex);
  for (int j = 0; j < f.ny; ++j)
    for (int k = 0; k < f.nx; ++k) atomicMin(zbuf + int64_t(f.y0 + j) * p.out_w + (f.x0 + k), key);
}

__global__ void resolve_kernel(SplatInputs in, SplatParams p, const unsigned long long* __restrict__ zbuf,
                               float* __restrict__ acc) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.n_texels) return;
  const int64_t frame = blockIdx.y;
  zbuf += frame * p.out_w * p.out_h;
  acc += frame * p.out_w * p.out_h * 4;
  const Footprint f = footprint(in, p, in.cam + frame * 16, in.texels[i]);
  const float r = in.colors[i * 3 + 0], g = in.colors[i * 3 + 1], b = in.colors[i * 3 + 2];
  // __fdiv_rn: IEEE division whatever --use_fast_math says, as torch and the Triton twin
  // (tl.math.div_rn) divide, so the keep test at the tolerance matches the reference
  const float inv_z = __fdiv_rn(1.0f, f.z);
  for (int j = 0; j < f.ny; ++j) {
    const int py = f.y0 + j;
    const float dy = py + 0.5f - f.v;
    const float wy = 1.0f - fabsf(dy) / ((dy < 0 ? f.up : f.down) + 0.5f);
    for (int k = 0; k < f.nx; ++k) {
      const int px = f.x0 + k;
      const int64_t pix = int64_t(py) * p.out_w + px;
      const float z_win = __uint_as_float(static_cast<unsigned int>(zbuf[pix] >> 32));
      // negated >= (as the Triton twin keeps): a NaN z_win (an empty pixel) rejects the pair
      if (!(inv_z >= __fdiv_rn(1.0f, z_win) - p.tolerance)) continue;
      const float dx = px + 0.5f - f.u;
      const float w = (1.0f - fabsf(dx) / ((dx < 0 ? f.left : f.right) + 0.5f)) * wy;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
      // Hopper has a vector float4 atomicAdd (atomic per element): one global reduction
      // instead of four. acc rows are 16 bytes and torch aligns allocations to 512.
      atomicAdd(reinterpret_cast<float4*>(acc + pix * 4), make_float4(r * w, g * w, b * w, w));
#else
      atomicAdd(acc + pix * 4 + 0, r * w);
      atomicAdd(acc + pix * 4 + 1, g * w);
      atomicAdd(acc + pix * 4 + 2, b * w);
      atomicAdd(acc + pix * 4 + 3, w);
#endif
    }
  }
}

}  // namespace

cudaError_t splat_accumulate(const SplatInputs& in, const SplatParams& p, unsigned long long* zbuf, float* acc,
                             cudaStream_t stream) {
  if (p.n_texels == 0 || p.n_frames == 0) return cudaSuccess;
  if (p.n_frames > 65535) return cudaErrorInvalidConfiguration;  // gridDim.y limit
  constexpr int kThreads = 256;
  const dim3 blocks(static_cast<unsigned>((p.n_texels + kThreads - 1) / kThreads), static_cast<unsigned>(p.n_frames));
  zbuffer_kernel<<<blocks, kThreads, 0, stream>>>(in, p, zbuf);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  resolve_kernel<<<blocks, kThreads, 0, stream>>>(in, p, zbuf, acc);
  return cudaGetLastError();
}

}  // namespace photo3d
