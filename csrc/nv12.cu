// RGB -> NV12, BT.709 limited range, "left" chroma siting: the CUDA C++ twin of
// photo3d_fast/ops/nv12.py (torch reference, whose docstring defines the filter) and
// kernels/nv12.py (Triton). One thread per 2x2 block writes its four Y samples and one
// Cb, Cr pair. Reads 3 B and writes 1.5 B per pixel.
//
// Every product and sum is rounded separately (__fmul_rn, __fadd_rn) in the reference's
// order, so nvcc cannot contract them into FMAs that round differently from torch.

#include <cstdint>
#include <cuda_runtime.h>

#include "nv12.h"

namespace photo3d {

namespace {

// Coefficients evaluated in double in the reference's order, then rounded once to float,
// as torch does with the reference's Python floats.
constexpr double KR = 0.2126, KB = 0.0722, KG = 1.0 - KR - KB;
constexpr float Y_R = float(219.0 / 255.0 * KR), Y_G = float(219.0 / 255.0 * KG), Y_B = float(219.0 / 255.0 * KB);
constexpr float CB_R = float(-112.0 / 255.0 * KR / (1.0 - KB)), CB_G = float(-112.0 / 255.0 * KG / (1.0 - KB)),
                CB_B = float(112.0 / 255.0);
constexpr float CR_R = float(112.0 / 255.0), CR_G = float(-112.0 / 255.0 * KG / (1.0 - KR)),
                CR_B = float(-112.0 / 255.0 * KB / (1.0 - KR));

__device__ __forceinline__ float dot3(float m0, float m1, float m2, float r, float g, float b, float offset) {
  return __fadd_rn(__fadd_rn(__fadd_rn(__fmul_rn(r, m0), __fmul_rn(g, m1)), __fmul_rn(b, m2)), offset);
}

__device__ __forceinline__ uint8_t round_u8(float v) {
  return static_cast<uint8_t>(fminf(fmaxf(floorf(__fadd_rn(v, 0.5f)), 0.f), 255.f));
}

__global__ void rgb_to_nv12_kernel(const uint8_t* __restrict__ rgb, uint8_t* __restrict__ out, int h, int w) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;  // chroma column: luma columns 2i, 2i+1
  const int j = blockIdx.y * blockDim.y + threadIdx.y;  // chroma row: luma rows 2j, 2j+1
  if (i >= w / 2 || j >= h / 2) return;
  float pair[3][3];  // vertical pair sums at columns 2i-1 (clamped), 2i, 2i+1
  for (int c = 0; c < 3; ++c) {
    const int x = c == 0 ? max(2 * i - 1, 0) : 2 * i + c - 1;
    const uint8_t* top = rgb + (int64_t(2 * j) * w + x) * 3;
    const uint8_t* bot = top + int64_t(w) * 3;
    for (int k = 0; k < 3; ++k) pair[c][k] = __fadd_rn(float(top[k]), float(bot[k]));
  }
  for (int dy = 0; dy < 2; ++dy)
    for (int dx = 0; dx < 2; ++dx) {
      const uint8_t* p = rgb + (int64_t(2 * j + dy) * w + 2 * i + dx) * 3;
      out[int64_t(2 * j + dy) * w + 2 * i + dx] = round_u8(dot3(Y_R, Y_G, Y_B, p[0], p[1], p[2], 16.f));
    }
  float s[3];
  for (int k = 0; k < 3; ++k)
    s[k] = __fmul_rn(__fadd_rn(__fadd_rn(pair[0][k], __fmul_rn(pair[1][k], 2.f)), pair[2][k]), 0.125f);
  uint8_t* uv = out + int64_t(h) * w + int64_t(j) * w + 2 * i;
  uv[0] = round_u8(dot3(CB_R, CB_G, CB_B, s[0], s[1], s[2], 128.f));
  uv[1] = round_u8(dot3(CR_R, CR_G, CR_B, s[0], s[1], s[2], 128.f));
}

}  // namespace

cudaError_t rgb_to_nv12(const uint8_t* rgb, uint8_t* out, int h, int w, cudaStream_t stream) {
  const dim3 threads(32, 8);
  const dim3 blocks((w / 2 + threads.x - 1) / threads.x, (h / 2 + threads.y - 1) / threads.y);
  if (blocks.x == 0 || blocks.y == 0) return cudaSuccess;
  rgb_to_nv12_kernel<<<blocks, threads, 0, stream>>>(rgb, out, h, w);
  return cudaGetLastError();
}

}  // namespace photo3d
