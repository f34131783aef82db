// Device helpers shared by the kernels in this directory (not a public header): element
// conversions, 16-byte vector loads, dtype dispatch and fixed-order reductions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/kernels.h"

namespace inferd::cuda::detail {

// fp32 <-> element type (stores round to nearest even).
__device__ __forceinline__ float ToFloat(float x) { return x; }
__device__ __forceinline__ float ToFloat(__half x) { return __half2float(x); }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 x) { return __bfloat162float(x); }

template <class T>
__device__ __forceinline__ T FromFloat(float x);
template <>
__device__ __forceinline__ float FromFloat<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __half FromFloat<__half>(float x) {
  return __float2half_rn(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// Elements of T in one 16-byte vector.
template <class T>
inline constexpr int kVec = 16 / static_cast<int>(sizeof(T));

// 16 bytes of T (kVec<T> elements) <-> fp32. p must be 16-byte aligned.
template <class T>
__device__ __forceinline__ void LoadVec(const T* p, float* out) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int i = 0; i < kVec<T>; ++i) out[i] = ToFloat(e[i]);
}
template <class T>
__device__ __forceinline__ void StoreVec(T* p, const float* in) {
  uint4 raw;
  T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
  for (int i = 0; i < kVec<T>; ++i) e[i] = FromFloat<T>(in[i]);
  *reinterpret_cast<uint4*>(p) = raw;
}

__device__ __forceinline__ bool Aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

// Chunks of 8 elements (whatever T is, so that the element -> thread mapping of a kernel
// depends only on the shapes): n <= 8 valid elements; 16-byte loads when whole and aligned,
// else element by element (missing elements read as 0). The values are the same either way.
inline constexpr int kChunk = 8;
template <class T>
__device__ __forceinline__ void LoadChunk(const T* p, int n, float* v) {
  if (n == kChunk && Aligned16(p)) {
#pragma unroll
    for (int k = 0; k < kChunk; k += kVec<T>) LoadVec(p + k, v + k);
  } else {
#pragma unroll
    for (int e = 0; e < kChunk; ++e) v[e] = e < n ? ToFloat(p[e]) : 0.0f;
  }
}
template <class T>
__device__ __forceinline__ void StoreChunk(T* p, int n, const float* v) {
  if (n == kChunk && Aligned16(p)) {
#pragma unroll
    for (int k = 0; k < kChunk; k += kVec<T>) StoreVec(p + k, v + k);
  } else {
#pragma unroll
    for (int e = 0; e < kChunk; ++e) {
      if (e < n) p[e] = FromFloat<T>(v[e]);
    }
  }
}
inline bool HostAligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Butterfly reductions: every lane ends with the same bits (fp add is commutative, and each
// step adds the same two operands on both partner lanes), and the order depends only on the
// lane layout, never on the data or the launch size.
__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float WarpMax(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024): warp butterflies, then
// warp 0 adds the warp sums in a butterfly of fixed shape. Every thread gets the result.
// `scratch` holds 33 floats of shared memory. Contains __syncthreads().
__device__ __forceinline__ float BlockSum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = WarpSum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float w = lane < nwarps ? scratch[lane] : 0.0f;
    w = WarpSum(w);
    if (lane == 0) scratch[32] = w;
  }
  __syncthreads();
  return scratch[32];
}

// Calls f(T{}) with T the element type of dt (float, __half, __nv_bfloat16).
template <class F>
cudaError_t DispatchDType(DType dt, F&& f) {
  switch (dt) {
    case DType::kF32:
      return f(float{});
    case DType::kF16:
      return f(__half{});
    case DType::kBF16:
      return f(__nv_bfloat16{});
  }
  return cudaErrorInvalidValue;
}

inline unsigned CeilDiv(int64_t a, int64_t b) { return static_cast<unsigned>((a + b - 1) / b); }

}  // namespace inferd::cuda::detail
