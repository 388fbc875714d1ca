// torch bindings of photo3d_fast._C: checks shapes, dtypes and devices, allocates the
// outputs and launches csrc/splat.cu on the current stream.
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/extension.h>

#include "nv12.h"
#include "splat.h"

namespace {

void check(const torch::Tensor& t, const char* name, torch::ScalarType dtype) {
  TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor");
  TORCH_CHECK(t.scalar_type() == dtype, name, " has dtype ", t.scalar_type(), ", expected ", dtype);
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

// cam: (F, 16) camera blocks, one per frame. Returns (acc (F, out_h*out_w, 4) float32,
// zbuf (F, out_h*out_w) int64): frame f as photo3d_fast.ops.splat builds them.
std::vector<torch::Tensor> splat_accumulate(torch::Tensor points, torch::Tensor link_x, torch::Tensor link_y,
                                            torch::Tensor texels, torch::Tensor colors, torch::Tensor cam,
                                            int64_t out_w, int64_t out_h, double grid_focal, double tolerance,
                                            double z_near, double margin, double max_extent) {
  check(points, "points", torch::kFloat32);
  check(link_x, "link_x", torch::kUInt8);
  check(link_y, "link_y", torch::kUInt8);
  check(texels, "texels", torch::kInt64);
  check(colors, "colors", torch::kFloat32);
  check(cam, "cam", torch::kFloat32);
  TORCH_CHECK(points.dim() == 4 && points.size(3) == 3, "points must be (L, H, W, 3)");
  TORCH_CHECK(cam.dim() == 2 && cam.size(1) == 16, "cam must be (F, 16): one camera block per frame");
  TORCH_CHECK(cam.size(0) <= 65535, "at most 65535 frames per launch, got ", cam.size(0));
  TORCH_CHECK(colors.size(0) == texels.size(0), "one color per texel");
  for (const auto* t : {&link_x, &link_y, &texels, &colors, &cam})
    TORCH_CHECK(t->device() == points.device(), "every input must be on ", points.device(), ", got ", t->device());
  const c10::cuda::CUDAGuard guard(points.device());
  const int64_t frames = cam.size(0);
  auto zbuf = torch::full({frames, out_h * out_w}, std::numeric_limits<int64_t>::max(),
                          points.options().dtype(torch::kInt64));
  auto acc = torch::zeros({frames, out_h * out_w, 4}, points.options());
  photo3d::SplatInputs in{points.data_ptr<float>(), link_x.data_ptr<uint8_t>(), link_y.data_ptr<uint8_t>(),
                          texels.data_ptr<int64_t>(), colors.data_ptr<float>(), cam.data_ptr<float>()};
  photo3d::SplatParams p{texels.size(0), frames, points.size(2), points.size(1), static_cast<int>(out_w),
                         static_cast<int>(out_h), static_cast<float>(grid_focal), static_cast<float>(tolerance),
                         static_cast<float>(z_near), static_cast<float>(margin), static_cast<float>(max_extent)};
  const cudaError_t err = photo3d::splat_accumulate(
      in, p, reinterpret_cast<unsigned long long*>(zbuf.data_ptr<int64_t>()), acc.data_ptr<float>(),
      c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "photo3d splat kernels failed: ", cudaGetErrorString(err));
  return {acc, zbuf};
}

// (H*3/2, W) uint8 NV12 of an (H, W, 3) uint8 CUDA image with even H and W, written into
// out when given (a video writer's reused surface: no allocation per frame).
torch::Tensor rgb_to_nv12(torch::Tensor rgb, c10::optional<torch::Tensor> out_opt) {
  check(rgb, "rgb", torch::kUInt8);
  TORCH_CHECK(rgb.dim() == 3 && rgb.size(2) == 3, "rgb must be (H, W, 3)");
  const int64_t h = rgb.size(0), w = rgb.size(1);
  TORCH_CHECK(h % 2 == 0 && w % 2 == 0, "NV12 needs an even width and height, got ", w, "x", h);
  const c10::cuda::CUDAGuard guard(rgb.device());
  torch::Tensor out;
  if (out_opt.has_value()) {
    out = *out_opt;
    check(out, "out", torch::kUInt8);
    TORCH_CHECK(out.device() == rgb.device(), "out must be on ", rgb.device());
    TORCH_CHECK(out.dim() == 2 && out.size(0) == h * 3 / 2 && out.size(1) == w, "out must be (", h * 3 / 2, ", ", w,
                ")");
  } else {
    out = torch::empty({h * 3 / 2, w}, rgb.options());
  }
  const cudaError_t err = photo3d::rgb_to_nv12(rgb.data_ptr<uint8_t>(), out.data_ptr<uint8_t>(), static_cast<int>(h),
                                               static_cast<int>(w), c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "photo3d rgb_to_nv12 kernel failed: ", cudaGetErrorString(err));
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("splat_accumulate", &splat_accumulate, "Fused splat + resolve of LDI texels (see csrc/splat.cu)");
  m.def("rgb_to_nv12", &rgb_to_nv12, "RGB -> NV12, BT.709 limited range, left chroma siting (see csrc/nv12.cu)",
        pybind11::arg("rgb"), pybind11::arg("out") = pybind11::none());
}
