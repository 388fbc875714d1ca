// Launch interface of csrc/splat.cu; see there for the algorithm and conventions.
#pragma once

#include <cstdint>
#include <cuda_runtime.h>

namespace photo3d {

struct SplatInputs {
  const float* points;    // (L*H*W, 3) world points of each layer's surface grid
  const uint8_t* link_x;  // (L, H, W-1) (y, x) and (y, x+1): 0 apart, 1 one surface, 2 a step
                          // whose first texel is the nearer, 3 one whose second is
  const uint8_t* link_y;  // (L, H-1, W) the same for (y, x) and (y+1, x)
  const int64_t* texels;  // (N,) flat L*H*W ids of the valid texels
  const float* colors;    // (N, 3) their colors
  const float* cam;       // (F, 16) per frame: R row-major, t, fx, fy, cx, cy
};

struct SplatParams {
  int64_t n_texels;
  int64_t n_frames;        // F: cameras, z-buffers and accumulators (at most 65535)
  int64_t grid_w, grid_h;  // the LDI grid
  int out_w, out_h;        // the output image
  float grid_focal;        // fx of the LDI grid
  float tolerance;         // resolve: disparity within this of the winner's blends
  float z_near, margin, max_extent;
};

// Both passes for F frames on `stream`, one launch each. zbuf: (F, out_h*out_w) filled with
// INT64 max by the caller (the reference's empty key; every real key is below it, signed or
// unsigned); acc: (F, out_h*out_w, 4) zeros. Returns the first CUDA error, if any.
cudaError_t splat_accumulate(const SplatInputs& in, const SplatParams& p, unsigned long long* zbuf, float* acc,
                             cudaStream_t stream);

}  // namespace photo3d
