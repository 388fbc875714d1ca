// Launch interface of csrc/nv12.cu.
#pragma once

#include <cstdint>
#include <cuda_runtime.h>

namespace photo3d {

// rgb: (h, w, 3) uint8, h and w even; out: (h * 3 / 2, w) uint8 NV12 (Y plane, then
// interleaved Cb Cr). Returns the launch error, if any.
cudaError_t rgb_to_nv12(const uint8_t* rgb, uint8_t* out, int h, int w, cudaStream_t stream);

}  // namespace photo3d
