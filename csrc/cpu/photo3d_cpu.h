// C interface of the CPU library (libphoto3d_cpu): the splat, fill, grow, snap and dof ops in plain
// C++17 on its own threads (pool.h), called from photo3d_fast/ops/cpu.py through ctypes with
// tensor data pointers. No torch or Python headers: it compiles with any C++17 compiler, at
// install (setup.py) or on first use into the cache. See splat.cpp, finish.cpp, fill.cpp,
// grow.cpp, snap.cpp and dof.cpp for the algorithms. n_threads: how many threads a call may use (the caller's included); results do
// not depend on it.
//
// Conventions as the torch reference (photo3d_fast/ops/splat.py): OpenCV camera (x right,
// y down, z forward), pixel centers at +0.5, a camera block is {R row-major (9), t (3), fx,
// fy, cx, cy} of a camera-to-world pose. Every array is contiguous, row-major.
#pragma once

#include <cstdint>

#if defined(_WIN32)
#define P3D_API extern "C" __declspec(dllexport)
#else
#define P3D_API extern "C" __attribute__((visibility("default")))
#endif

//: Bumped when a signature or struct below (or the meaning of its fields) changes; ops/cpu.py
//: refuses another number.
#define P3D_ABI 2

struct P3dGrid {
  const float* points;       // (3, L, H, W) world points of each layer's surface, x y z planes
  const uint8_t* link_x;     // (L, H, W-1) (y, x) and (y, x+1): 0 apart, 1 one surface, 2 a step
                             // whose first texel is the nearer, 3 one whose second is
  const uint8_t* link_y;     // (L, H-1, W) the same for (y, x) and (y+1, x)
  const int64_t* texels;     // (T,) flat L*H*W ids of the valid texels, ascending
  const float* colors;       // (T, 3) their colors
  const int64_t* row_start;  // (L*H + 1,) index of the first texel at or after each grid row
  int64_t n_texels;          // T
  int32_t layers, height, width, reserved;
  double focal;              // fx of the LDI grid
};

struct P3dParams {
  double z_near;      // points nearer than this to the camera plane are dropped
  double margin;      // FOOTPRINT_MARGIN
  double max_extent;  // MAX_HALF_EXTENT, pixels
  double tolerance;   // RESOLVE_SHARE * edge disparity
  double far_power;   // the fill's FAR_POWER
  double edge;        // the LDI's edge disparity: silhouettes are depth steps beyond it
  double coverage_full;  // COVERAGE_FULL: summed tent weight of a fully covered silhouette pixel
};

P3D_API int p3d_abi(void);
// Digest of the sources it was built from (ops/cpu.py source_hash), passed by the build.
P3D_API const char* p3d_source_hash(void);

// Scratch reused from call to call (records, band lists, per-thread tiles). One per calling
// thread: calls that share a workspace must not overlap.
P3D_API void* p3d_workspace_new(void);
P3D_API void p3d_workspace_free(void* ws);

// Render n_frames cameras (cams: (F, 16)) at out_w x out_h. Two output modes:
// - zbuf (F, N) int64 and acc (F, N, 4) float32 non-null (N = out_h*out_w): the z-buffer keys
//   (float bits of z << 32 | texel id; INT64 max where empty) and the sums of
//   weight * (r, g, b, 1) of the resolved pairs, as the reference builds them;
// - color (F, H, W, 3) float32, covered (F, H, W) uint8 and n_orphans (F,) non-null: the
//   finished frame (ops.splat.finish_frames: normalised, silhouettes anti-aliased, holes
//   filled far-first, clamped to [0, 1]) and its coverage. A frame with n_orphans > 0 also
//   gets orphan (F, H, W) uint8 written: holes with no covered pixel in their row or column,
//   left 0, which the caller fills by push-pull (then clamps them).
// Returns 0, or -1 on bad arguments, -2 when out of memory.
P3D_API int p3d_splat(void* ws, const P3dGrid* grid, const P3dParams* params, const float* cams, int32_t n_frames,
                      int32_t out_w, int32_t out_h, int32_t n_threads, int64_t* zbuf, float* acc, float* color,
                      uint8_t* covered, uint8_t* orphan, int64_t* n_orphans);

// The epilogue alone: p3d_splat's finish mode from given sums acc (F, N, 4) and keys zbuf
// (F, N), N = height * width (what ops/cpu.py checks against ops.splat.finish_frames).
P3D_API int p3d_finish(void* ws, const float* acc, const int64_t* zbuf, int32_t n_frames, int32_t height,
                       int32_t width, const P3dParams* params, int32_t n_threads, float* color, uint8_t* covered,
                       uint8_t* orphan, int64_t* n_orphans);

// n uint8 of (color * 255 + 0.5) truncated, color in [0, 1]: the Renderer's quantisation.
P3D_API int p3d_quantise(const float* color, uint8_t* out, int64_t n, int32_t n_threads);

// Far-first hole fill of F frames, values (F, C, H, W) planar into out (may equal values):
// covered pixels are copied, a frame with every pixel or no pixel covered is copied whole,
// each hole takes the (z / z_farthest)^far_power / distance blend of the nearest covered
// pixels left, right, up and down. Orphans as in p3d_splat. Returns 0, -1, -2.
P3D_API int p3d_fill(void* ws, const float* values, float* out, const uint8_t* covered, const float* depth,
                     int32_t n_frames, int32_t channels, int32_t height, int32_t width, double far_power,
                     int32_t n_threads, uint8_t* orphan, int64_t* n_orphans);

// (4, F, H, W) int32: index of the nearest covered pixel left, right (columns), up, down
// (rows) of each pixel, itself included; -1 where there is none. Returns 0 or -1.
P3D_API int p3d_nearest(const uint8_t* covered, int32_t n_frames, int32_t height, int32_t width, int32_t* out,
                        int32_t n_threads);

// One LDI back layer behind the depth edges of depth (H, W) float32 z-depth (ops.grow's
// grow_back_layer without its colours): jump passes of the given steps (ops.grow.jump_steps(
// band)), at most `rounds` pointer-jumping passes (ops.grow.reach_rounds(H, W)), band2 =
// band^2 (band clamped to H + W), edge: the disparity jump of an edge; allowed (H, W) uint8
// (null: anywhere). Writes mask (H, W) uint8 (0/1) and layer_depth (H, W) float32 (0 outside
// the mask); when non-null also seeds (H, W) uint8, surface (H, W) float32 (the seeds'
// surface disparities, inf elsewhere) and nearest (4, H, W) int32: row, column, disparity
// (float32 bits) and squared distance of the seed each pixel holds after the jump passes
// (0, 0, inf, INT32_MAX where none), as ops.grow.nearest_seed_behind returns them.
// Returns 0, -1 on bad arguments (also when H * W or H^2 + W^2 do not fit int32, or when
// 2^rounds < H * W), -2 when out of memory.
P3D_API int p3d_grow(void* ws, const float* depth, int32_t height, int32_t width, const int32_t* steps,
                     int32_t n_steps, int32_t rounds, int64_t band2, double edge, const uint8_t* allowed,
                     int32_t n_threads, uint8_t* mask, float* layer_depth, uint8_t* seeds, float* surface,
                     int32_t* nearest);

// (H, W) uint8 background seeds of depth (H, W) float32 (ops.grow.discontinuities' second
// output). Returns 0, -1, -2.
P3D_API int p3d_seeds(const float* depth, int32_t height, int32_t width, double edge, int32_t n_threads,
                      uint8_t* seeds);

// One pass of the colour-weighted median of disparities at jumps (ops.snap.snap_to_color_edges):
// rgb (3, H, W) float32 planar, disp (H, W) float32; a pixel whose 3x3 window spans more than
// (float)edge takes the weighted median of its (2 radius + 1)^2 window, weights
// exp(-d2 / sigma^2), every other pixel is copied. Writes out (H, W) float32 (must not
// overlap disp) and n_jumps (the pixels that took a median). Returns 0, -1 on bad arguments
// (radius outside 0 .. 1000), -2 when out of memory.
// Thin-lens depth of field of F frames (ops.dof.depth_of_field): color (F, H, W, 3), depth,
// radius (the CoC radius, pixels) and inv_area (1 / the shape's area) (F, H, W) float32; the
// offset table (dy, dx, distance - 0.5) of n_offsets entries, nearest first (ops.dof.offsets);
// depth_tolerance: ops.dof.DEPTH_TOLERANCE. Writes out (F, H, W, 3) float32 (must not overlap
// the inputs). Returns 0, -1 on bad arguments, -2 when out of memory.
P3D_API int p3d_dof(const float* color, const float* depth, const float* radius, const float* inv_area,
                    int32_t n_frames, int32_t height, int32_t width, const int32_t* off_dy, const int32_t* off_dx,
                    const float* off_edge, int32_t n_offsets, double depth_tolerance, int32_t n_threads, float* out);

P3D_API int p3d_snap(const float* rgb, const float* disp, int32_t height, int32_t width, double edge, int32_t radius,
                     double sigma, int32_t n_threads, float* out, int64_t* n_jumps);
