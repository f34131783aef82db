// RMS norms: AddRmsNorm (residual add fused) and GatherRmsNorm (final norm of chosen rows).
// One block per row. The block size and the element -> thread mapping depend only on d
// (thread i owns chunks i, i + blockDim, ... of 8 elements), and the sum of squares is a
// fixed-shape butterfly, so a row's bits never depend on how many rows share the launch.
#include "backend/cuda/kernels/common.cuh"

namespace inferd::cuda {
namespace {

using detail::kChunk;

int NormThreads(int64_t d) {
  const int64_t chunks = (d + kChunk - 1) / kChunk;
  int64_t t = (chunks + 31) / 32 * 32;
  return static_cast<int>(t < 32 ? 32 : t > 512 ? 512 : t);
}

// kAdd: residual[row] += delta[row] (rounded to T), then normalise it.
// kGather: the source row of output i is rows[i].
template <class T, bool kAdd, bool kGather>
__global__ void RmsNormKernel(T* x, const T* delta, const int32_t* rows, const float* __restrict__ weight,
                              int64_t d, float eps, T* __restrict__ out) {
  __shared__ float scratch[33];
  const int64_t i = blockIdx.x;
  const int64_t src = kGather ? static_cast<int64_t>(rows[i]) : i;
  T* xr = x + src * d;
  float ss = 0.0f;
  for (int64_t c = threadIdx.x; c * kChunk < d; c += blockDim.x) {
    const int64_t off = c * kChunk;
    const int n = static_cast<int>(d - off < kChunk ? d - off : kChunk);
    float v[kChunk];
    detail::LoadChunk(xr + off, n, v);
    if (kAdd && delta != nullptr) {
      float dv[kChunk];
      detail::LoadChunk(delta + src * d + off, n, dv);
#pragma unroll
      for (int e = 0; e < kChunk; ++e) v[e] = detail::ToFloat(detail::FromFloat<T>(v[e] + dv[e]));
      detail::StoreChunk(xr + off, n, v);
    }
#pragma unroll
    for (int e = 0; e < kChunk; ++e) ss = fmaf(v[e], v[e], ss);  // missing elements are 0
  }
  ss = detail::BlockSum(ss, scratch);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(d) + eps);
  T* orow = out + i * d;
  for (int64_t c = threadIdx.x; c * kChunk < d; c += blockDim.x) {
    const int64_t off = c * kChunk;
    const int n = static_cast<int>(d - off < kChunk ? d - off : kChunk);
    float v[kChunk];
    detail::LoadChunk(xr + off, n, v);  // this thread's own (rounded) stores of pass 1
#pragma unroll
    for (int e = 0; e < kChunk; ++e) v[e] = e < n ? v[e] * inv * weight[off + e] : 0.0f;
    detail::StoreChunk(orow + off, n, v);
  }
}

}  // namespace

cudaError_t AddRmsNorm(DType dt, void* residual, const void* delta, const float* weight, int64_t num_tokens,
                       int64_t d, float eps, void* out, cudaStream_t stream) {
  if (num_tokens <= 0) return cudaSuccess;
  if (d <= 0) return cudaErrorInvalidValue;
  return detail::DispatchDType(dt, [&](auto tag) {
    using T = decltype(tag);
    RmsNormKernel<T, true, false><<<static_cast<unsigned>(num_tokens), NormThreads(d), 0, stream>>>(
        static_cast<T*>(residual), static_cast<const T*>(delta), nullptr, weight, d, eps, static_cast<T*>(out));
    return cudaGetLastError();
  });
}

cudaError_t GatherRmsNorm(DType dt, const void* x, const int32_t* rows, int64_t num_rows, int64_t d,
                          const float* weight, float eps, void* out, cudaStream_t stream) {
  if (num_rows <= 0) return cudaSuccess;
  if (d <= 0) return cudaErrorInvalidValue;
  return detail::DispatchDType(dt, [&](auto tag) {
    using T = decltype(tag);
    // x is only read (kAdd is false).
    RmsNormKernel<T, false, true><<<static_cast<unsigned>(num_rows), NormThreads(d), 0, stream>>>(
        const_cast<T*>(static_cast<const T*>(x)), nullptr, rows, weight, d, eps, static_cast<T*>(out));
    return cudaGetLastError();
  });
}

}  // namespace inferd::cuda
