// What splat.cpp, finish.cpp, fill.cpp and grow.cpp share: the workspace, the thread pool, SIMD shims,
// float bit casts, and the functions one file calls in another.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "pool.h"

// Before a loop whose iterations touch disjoint elements of several arrays: vectorise it
// without run-time alias checks (too many pointer pairs for the compiler to version).
#if defined(__clang__)
#define P3D_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define P3D_IVDEP _Pragma("GCC ivdep")
#else
#define P3D_IVDEP
#endif

// The hot loops are compiled for SSE4.1 and AVX2 too, picked at load time by the CPU's
// features (GCC/clang function multi-versioning: x86-64 with glibc's ifunc; a compiler that
// cannot is retried with -DP3D_NO_CLONES): baseline x86-64 (SSE2) has
// no vector round, blend or 32-bit min/max and runs them ~2x slower. Every clone computes
// the same values: no fused multiply-add (-ffp-contract=off), IEEE division everywhere.
#if defined(__x86_64__) && defined(__GLIBC__) && (defined(__GNUC__) || defined(__clang__)) && !defined(P3D_NO_CLONES)
#define P3D_HOT __attribute__((target_clones("avx2", "sse4.1", "default")))
#else
#define P3D_HOT
#endif

namespace p3d {

// Four floats as one SIMD value (GCC/clang vector extension: SSE/NEON on the hardware that
// has it): a pixel's (r, g, b, weight) sums.
#if defined(__GNUC__) || defined(__clang__)
typedef float float4 __attribute__((vector_size(16)));
inline void add_scaled(float* __restrict sum, const float4& c, float w) {
  float4 s;
  std::memcpy(&s, sum, 16);
  s += c * w;
  std::memcpy(sum, &s, 16);
}
#else
struct float4 {
  float v[4];
  float operator[](int i) const { return v[i]; }
};
inline void add_scaled(float* sum, const float4& c, float w) {
  for (int ch = 0; ch < 4; ++ch) sum[ch] += c.v[ch] * w;
}
#endif

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

//: The reference's empty z-buffer key (int64 max): above every real key, signed or unsigned.
constexpr uint64_t kEmpty = 0x7FFFFFFFFFFFFFFFull;
//: Eight covered bytes (covered masks hold 0 or 1).
constexpr uint64_t kAllCovered = 0x0101010101010101ull;

template <typename T>
inline void ensure(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

// An array that grows but is never initialised: pages a frame does not write (extents of
// boxes that are not big, nearest pixels of non-holes) are never touched.
template <typename T>
struct Buffer {
  std::unique_ptr<T[]> data_;
  size_t size_ = 0;
  T* data() const { return data_.get(); }
  T& operator[](size_t i) const { return data_[i]; }
};

template <typename T>
inline void ensure(Buffer<T>& b, size_t n) {
  if (b.size_ < n) {
    b.data_.reset(new T[n]);
    b.size_ = n;
  }
}

// Scratch kept from call to call, so that a frame allocates (and page-faults) nothing.
struct Workspace {
  // per texel (T,), one frame's splats (splat.cpp)
  Buffer<uint64_t> key;                  // float bits of z << 32 | texel id; kEmpty: covers nothing
  Buffer<float> wx0, wx1, wy0, wy1;      // tent weights of the box's first two columns, rows
  Buffer<uint32_t> pos;                  // box origin x0 | y0 << 16
  Buffer<uint16_t> box;                  // box size nx | ny << 8
  Buffer<uint32_t> bands;                // first output band << 8 | number of bands (0: none)
  Buffer<float> extent;                  // (T, 6) u, v, left, right, up, down: boxes over 2x2 only
  std::vector<int64_t> counts;           // (items, bands): texels per pair, then list offsets
  std::vector<int64_t> band_start;       // (bands + 1,) first list entry of each band
  Buffer<uint32_t> lists;                // texel indices of each band, ascending
  std::vector<std::vector<float>> scratch;  // per thread: projected rows and row results
  std::vector<std::vector<uint8_t>> tile;   // per thread: a band's z-buffer, thresholds, sums
  // per pixel (H*W,), one frame's epilogue (finish.cpp, fill.cpp)
  Buffer<float> weight, disp, zpix;      // summed tent weight, winner's disparity and depth
  Buffer<float> blend;                   // (H*W, 3) anti-aliased colors of silhouette pixels
  Buffer<uint8_t> silhouette;            // 1 where blend holds the pixel's color
  Buffer<int32_t> nearest[4];            // the fill's nearest covered pixels (holes only)
  std::vector<int32_t> row_holes;        // (H,) holes per row
  std::vector<int64_t> row_orphans;      // (H,) orphans per row
  // per pixel, the LDI growth (grow.cpp)
  Buffer<float> grow_f;                  // (7, H*W) disparity, limit, seed disparity, surface, held and offered disparities
  Buffer<float> grow_cf;                 // (6, H*W) held and offered rows and columns, then per-thread rows (float32)
  Buffer<int32_t> grow_ci;               // the same in int32 (images whose squared distances reach 2^24)
  Buffer<int32_t> grow_spans;            // (4, H) columns that offer a seed, per row and offer buffer
  Buffer<uint8_t> grow_seed;             // seeds
  Buffer<int32_t> grow_up, grow_list, grow_stack;  // reach: steps toward the seeds, pending pixels, a walk
  std::vector<int64_t> grow_counts;      // reach: pending pixels per work item

  void threads(int n) {
    if (static_cast<int>(scratch.size()) < n) scratch.resize(n);
    if (static_cast<int>(tile.size()) < n) tile.resize(n);
  }
};

// Calls `hole(x)` for each x in [x0, x1) where covered[x] is 0, eight covered bytes at a time.
template <typename F>
inline void for_each_hole(const uint8_t* covered, int x0, int x1, F&& hole) {
  int x = x0;
  while (x < x1) {
    if (x + 8 <= x1) {
      uint64_t word;
      std::memcpy(&word, covered + x, 8);
      if (word == kAllCovered) {
        x += 8;
        continue;
      }
    }
    if (!covered[x]) hole(x);
    ++x;
  }
}

// Calls `set(x)` for each x in [x0, x1) where flag[x] is not 0, eight zero bytes at a time.
template <typename F>
inline void for_each_set(const uint8_t* flag, int x0, int x1, F&& set) {
  int x = x0;
  while (x < x1) {
    if (x + 8 <= x1) {
      uint64_t word;
      std::memcpy(&word, flag + x, 8);
      if (word == 0) {
        x += 8;
        continue;
      }
    }
    if (flag[x]) set(x);
    ++x;
  }
}

// One frame's far-first fill (fill.cpp). vals/out: values at [pixel * pixel_stride +
// channel * channel_stride] (the same layout in both; out may equal vals): covered pixels
// are read from vals, holes written to out (clamped to [0, 1] if clamp). Returns the number
// of orphans (holes with no covered pixel in their row or column, written as 0), whose mask
// it writes to `orphan` (when non-zero). With all or no pixels covered it writes nothing.
int64_t fill_frame(Workspace& ws, const float* vals, float* out, int64_t pixel_stride, int64_t channel_stride,
                   int channels, const uint8_t* covered, const float* depth, int height, int width,
                   float far_power, bool clamp, uint8_t* orphan, int n_threads);

// The epilogue of one frame (finish.cpp), as ops.splat.finish_frames after normalisation:
// color (H, W, 3) holds the clamped acc / max(weight, 1e-12) (normalise_row) and covered,
// ws.weight, ws.disp, ws.zpix are set; anti-aliases silhouettes and fills holes, clamping
// what it writes; orphans are left 0 for the caller's push-pull (then clamp). Returns the
// number of orphans.
int64_t finish_frame(Workspace& ws, float* color, const uint8_t* covered, int height, int width, float edge,
                     float coverage_full, float far_power, uint8_t* orphan, int n_threads);

// Normalise a row of sums (W, 4) and keys into color (W, 3), coverage, summed weight,
// disparity and depth (finish_frames' first lines: acc / clamp_min(weight, 1e-12), clamped
// to [0, 1]; covered where weight > 0; disparity 1 / z where covered, else 0).
void normalise_row(const float* sums, const uint64_t* keys, int W, float* color, uint8_t* covered, float* weight,
                   float* disp, float* z);

}  // namespace p3d
