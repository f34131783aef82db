// Token selection on the device: ArgMax (greedy).
#include <climits>

#include "backend/cuda/kernels/common.cuh"

namespace inferd::cuda {
namespace {

constexpr int kArgMaxThreads = 512;

// (v, i) beats (bv, bi) if larger, or equal with a lower index; NaN never wins.
__device__ __forceinline__ bool Better(float v, int i, float bv, int bi) { return v > bv || (v == bv && i < bi); }

// One block per row: thread-strided scan (in increasing j, so the first maximum is kept),
// then a butterfly over (value, index) pairs with the tie rule (an exact, order-free
// selection), then across warps.
__global__ void __launch_bounds__(kArgMaxThreads) ArgMaxKernel(const float* __restrict__ logits, int64_t vocab,
                                                              int32_t* __restrict__ out) {
  __shared__ float sv[32];
  __shared__ int si[32];
  const float* row = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  float bv = -INFINITY;
  int bi = INT_MAX;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
    const float v = row[j];
    if (Better(v, static_cast<int>(j), bv, bi)) bv = v, bi = static_cast<int>(j);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (Better(ov, oi, bv, bi)) bv = ov, bi = oi;
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) sv[warp] = bv, si[warp] = bi;
  __syncthreads();
  if (warp == 0) {
    const int nwarps = blockDim.x >> 5;
    bv = lane < nwarps ? sv[lane] : -INFINITY;
    bi = lane < nwarps ? si[lane] : INT_MAX;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (Better(ov, oi, bv, bi)) bv = ov, bi = oi;
    }
    if (lane == 0) out[blockIdx.x] = bi == INT_MAX ? 0 : bi;  // all NaN: token 0
  }
}

}  // namespace

cudaError_t ArgMax(const float* logits, int64_t n, int64_t vocab, int32_t* out, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (vocab <= 0 || vocab >= INT_MAX) return cudaErrorInvalidValue;
  ArgMaxKernel<<<static_cast<unsigned>(n), kArgMaxThreads, 0, stream>>>(logits, vocab, out);
  return cudaGetLastError();
}

}  // namespace inferd::cuda
