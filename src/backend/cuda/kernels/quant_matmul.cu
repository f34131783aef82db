// GGUF weight-only quantized matmul (few tokens) and dequantization (Q8_0, Q4_0, Q4_K).
//
// QuantMatMulKernel: one warp per output row, up to 8 tokens per launch row (more tokens:
// more grid rows, each computing its tokens exactly as alone). The lanes of a warp read
// the row's blocks together (Q8_0: 8 lanes x 4 quants per block, 4 blocks per step; Q4_0:
// 4 lanes x 4 bytes, 8 blocks per step; Q4_K: 32 lanes x 4 bytes of one super-block per
// step), each lane accumulates its own fp32 chain over the blocks in order, then a
// butterfly adds the lanes. The order depends only on cols, never on the token count.
//
// DequantizeKernel: one thread per 32 elements, values computed exactly as DequantizeRow
// (src/format/ggml_types.cc) in fp32 (explicit _rn intrinsics: no FMA contraction), then
// rounded to dt.
#include <type_traits>

#include "backend/cuda/kernels/common.cuh"

namespace inferd::cuda {
namespace {

using detail::FromFloat;
using detail::ToFloat;

constexpr int kWarpsPerBlock = 4;
constexpr int kMaxTokens = 8;  // tokens per grid row of QuantMatMulKernel

__device__ __forceinline__ float HalfBits(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ uint16_t LoadU16(const uint8_t* p) { return *reinterpret_cast<const uint16_t*>(p); }
// 4 little-endian bytes from a 2-byte aligned address.
__device__ __forceinline__ uint32_t LoadU32Half(const uint8_t* p) {
  return static_cast<uint32_t>(LoadU16(p)) | (static_cast<uint32_t>(LoadU16(p + 2)) << 16);
}

// 4 consecutive elements of x (16-byte aligned for fp32, 8-byte for 16-bit types).
__device__ __forceinline__ void Load4(const float* p, float* v) {
  const float4 f = *reinterpret_cast<const float4*>(p);
  v[0] = f.x, v[1] = f.y, v[2] = f.z, v[3] = f.w;
}
template <class T>
__device__ __forceinline__ void Load4(const T* p, float* v) {
  const uint2 raw = *reinterpret_cast<const uint2*>(p);
  const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) v[i] = ToFloat(e[i]);
}

// Q4_K 6-bit (scale, min) of sub-block j from the 12 scale bytes (ScaleMinK4).
__device__ __forceinline__ void ScaleMinK4(int j, const uint8_t* q, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

template <class T, GgmlType W>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    QuantMatMulKernel(const uint8_t* __restrict__ w, int64_t rows, int64_t cols, size_t row_bytes,
                      const T* __restrict__ x, int64_t num_tokens, T* __restrict__ y, int64_t y_row_stride) {
  const int lane = threadIdx.x & 31;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (r >= rows) return;  // whole warp
  const int64_t t0 = static_cast<int64_t>(blockIdx.y) * kMaxTokens;
  const int nt = static_cast<int>(num_tokens - t0 < kMaxTokens ? num_tokens - t0 : kMaxTokens);
  const uint8_t* wr = w + static_cast<size_t>(r) * row_bytes;
  const T* xt = x + t0 * cols;
  float acc[kMaxTokens];
#pragma unroll
  for (int t = 0; t < kMaxTokens; ++t) acc[t] = 0.0f;

  if constexpr (W == GgmlType::kQ8_0) {
    const int sub = lane >> 3, part = lane & 7;  // block sub of 4, quants 4*part .. +3
    const int64_t nb = cols / 32;
    for (int64_t b = sub; b < nb; b += 4) {
      const uint8_t* blk = wr + b * 34;
      const float d = HalfBits(LoadU16(blk));
      const uint32_t qw = LoadU32Half(blk + 2 + 4 * part);
      float q[4];
#pragma unroll
      for (int e = 0; e < 4; ++e) q[e] = static_cast<float>(static_cast<int8_t>((qw >> (8 * e)) & 0xFF));
      const int64_t col = b * 32 + 4 * part;
#pragma unroll
      for (int t = 0; t < kMaxTokens; ++t) {
        if (t < nt) {
          float xv[4];
          Load4(xt + t * cols + col, xv);
          float s = q[0] * xv[0];
#pragma unroll
          for (int e = 1; e < 4; ++e) s = fmaf(q[e], xv[e], s);
          acc[t] = fmaf(d, s, acc[t]);
        }
      }
    }
  } else if constexpr (W == GgmlType::kQ4_0) {
    const int sub = lane >> 2, part = lane & 3;  // block sub of 8, bytes 4*part .. +3
    const int64_t nb = cols / 32;
    for (int64_t b = sub; b < nb; b += 8) {
      const uint8_t* blk = wr + b * 18;
      const float d = HalfBits(LoadU16(blk));
      const uint32_t qw = LoadU32Half(blk + 2 + 4 * part);
      float lo[4], hi[4];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int byte = static_cast<int>((qw >> (8 * e)) & 0xFF);
        lo[e] = static_cast<float>((byte & 0x0F) - 8);
        hi[e] = static_cast<float>((byte >> 4) - 8);
      }
      const int64_t col = b * 32 + 4 * part;
#pragma unroll
      for (int t = 0; t < kMaxTokens; ++t) {
        if (t < nt) {
          float xl[4], xh[4];
          Load4(xt + t * cols + col, xl);
          Load4(xt + t * cols + col + 16, xh);
          float s = lo[0] * xl[0];
#pragma unroll
          for (int e = 1; e < 4; ++e) s = fmaf(lo[e], xl[e], s);
#pragma unroll
          for (int e = 0; e < 4; ++e) s = fmaf(hi[e], xh[e], s);
          acc[t] = fmaf(d, s, acc[t]);
        }
      }
    }
  } else {  // Q4_K
    const int pair = lane >> 3, part = lane & 7;  // sub-blocks 2*pair, 2*pair+1; bytes 4*part .. +3
    const int64_t nsb = cols / 256;
    for (int64_t b = 0; b < nsb; ++b) {
      const uint8_t* blk = wr + b * 144;
      const uint32_t dd = *reinterpret_cast<const uint32_t*>(blk);
      const float d = HalfBits(static_cast<uint16_t>(dd & 0xFFFF));
      const float dmin = HalfBits(static_cast<uint16_t>(dd >> 16));
      uint8_t scales[12];
#pragma unroll
      for (int k = 0; k < 3; ++k) {
        const uint32_t s4 = *reinterpret_cast<const uint32_t*>(blk + 4 + 4 * k);
#pragma unroll
        for (int e = 0; e < 4; ++e) scales[4 * k + e] = static_cast<uint8_t>((s4 >> (8 * e)) & 0xFF);
      }
      int sc, mn;
      ScaleMinK4(2 * pair, scales, &sc, &mn);
      const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(mn);
      ScaleMinK4(2 * pair + 1, scales, &sc, &mn);
      const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(mn);
      const uint32_t qw = *reinterpret_cast<const uint32_t*>(blk + 16 + 32 * pair + 4 * part);
      float lo[4], hi[4];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const uint32_t byte = (qw >> (8 * e)) & 0xFF;
        lo[e] = static_cast<float>(byte & 0x0F);
        hi[e] = static_cast<float>(byte >> 4);
      }
      const int64_t col = b * 256 + 64 * pair + 4 * part;
#pragma unroll
      for (int t = 0; t < kMaxTokens; ++t) {
        if (t < nt) {
          float xl[4], xh[4];
          Load4(xt + t * cols + col, xl);
          Load4(xt + t * cols + col + 32, xh);
          float ql = 0.0f, sl = 0.0f, qh = 0.0f, sh = 0.0f;
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            ql = fmaf(lo[e], xl[e], ql);
            sl += xl[e];
            qh = fmaf(hi[e], xh[e], qh);
            sh += xh[e];
          }
          const float part_sum = (d1 * ql - m1 * sl) + (d2 * qh - m2 * sh);
          acc[t] += part_sum;
        }
      }
    }
  }

#pragma unroll
  for (int t = 0; t < kMaxTokens; ++t) {
    if (t < nt) {
      const float v = detail::WarpSum(acc[t]);
      if (lane == 0) y[(t0 + t) * y_row_stride + r] = FromFloat<T>(v);
    }
  }
}

// One thread per 32 output elements (a Q8_0 / Q4_0 block, a Q4_K sub-block).
template <class T, GgmlType W>
__global__ void DequantizeKernel(const uint8_t* __restrict__ w, int64_t rows, int64_t cols, size_t row_bytes,
                                 T* __restrict__ out) {
  const int64_t per_row = cols / 32;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= rows * per_row) return;
  const int64_t r = idx / per_row, j = idx % per_row;
  const uint8_t* wr = w + static_cast<size_t>(r) * row_bytes;
  float v[32];
  if constexpr (W == GgmlType::kQ8_0) {
    const uint8_t* blk = wr + j * 34;
    const float d = HalfBits(LoadU16(blk));
#pragma unroll
    for (int e = 0; e < 32; ++e) v[e] = __fmul_rn(static_cast<float>(static_cast<int8_t>(blk[2 + e])), d);
  } else if constexpr (W == GgmlType::kQ4_0) {
    const uint8_t* blk = wr + j * 18;
    const float d = HalfBits(LoadU16(blk));
#pragma unroll
    for (int e = 0; e < 16; ++e) {
      v[e] = __fmul_rn(static_cast<float>((blk[2 + e] & 0x0F) - 8), d);
      v[e + 16] = __fmul_rn(static_cast<float>((blk[2 + e] >> 4) - 8), d);
    }
  } else {  // Q4_K: sub-block j % 8 of super-block j / 8
    const uint8_t* blk = wr + (j / 8) * 144;
    const int s = static_cast<int>(j % 8);
    const float d = HalfBits(LoadU16(blk)), dmin = HalfBits(LoadU16(blk + 2));
    int sc, mn;
    ScaleMinK4(s, blk + 4, &sc, &mn);
    const float d1 = __fmul_rn(d, static_cast<float>(sc)), m1 = __fmul_rn(dmin, static_cast<float>(mn));
    const uint8_t* q = blk + 16 + 32 * (s / 2);
    const int shift = (s & 1) * 4;
#pragma unroll
    for (int e = 0; e < 32; ++e) v[e] = __fsub_rn(__fmul_rn(d1, static_cast<float>((q[e] >> shift) & 0x0F)), m1);
  }
  T* o = out + r * cols + j * 32;
#pragma unroll
  for (int k = 0; k < 32; k += detail::kChunk) detail::StoreChunk(o + k, detail::kChunk, v + k);
}

template <class F>
cudaError_t DispatchWeight(GgmlType wtype, F&& f) {
  switch (wtype) {
    case GgmlType::kQ8_0:
      return f(std::integral_constant<GgmlType, GgmlType::kQ8_0>{});
    case GgmlType::kQ4_0:
      return f(std::integral_constant<GgmlType, GgmlType::kQ4_0>{});
    case GgmlType::kQ4_K:
      return f(std::integral_constant<GgmlType, GgmlType::kQ4_K>{});
    default:
      return cudaErrorInvalidValue;
  }
}

bool ShapeOk(GgmlType wtype, int64_t cols, size_t row_bytes) {
  const int64_t block = wtype == GgmlType::kQ4_K ? 256 : 32;
  const size_t bytes = wtype == GgmlType::kQ8_0 ? 34 : wtype == GgmlType::kQ4_0 ? 18 : 144;
  return cols > 0 && cols % block == 0 && row_bytes >= static_cast<size_t>(cols / block) * bytes &&
         row_bytes % (wtype == GgmlType::kQ4_K ? 4 : 2) == 0;
}

}  // namespace

bool QuantMatMulSupports(GgmlType wtype) {
  return wtype == GgmlType::kQ8_0 || wtype == GgmlType::kQ4_0 || wtype == GgmlType::kQ4_K;
}

cudaError_t QuantMatMul(DType dt, GgmlType wtype, const void* w, int64_t rows, int64_t cols, size_t row_bytes,
                        const void* x, int64_t num_tokens, void* y, int64_t y_row_stride, cudaStream_t stream) {
  if (num_tokens <= 0 || rows <= 0) return cudaSuccess;
  if (!QuantMatMulSupports(wtype) || !ShapeOk(wtype, cols, row_bytes)) return cudaErrorInvalidValue;
  if (!detail::HostAligned16(x) || (reinterpret_cast<uintptr_t>(w) & 3u) != 0) return cudaErrorMisalignedAddress;
  const dim3 grid(detail::CeilDiv(rows, kWarpsPerBlock), detail::CeilDiv(num_tokens, kMaxTokens));
  if (grid.y > 65535) return cudaErrorInvalidValue;
  return detail::DispatchDType(dt, [&](auto tag) {
    using T = decltype(tag);
    return DispatchWeight(wtype, [&](auto wt) {
      QuantMatMulKernel<T, decltype(wt)::value><<<grid, kWarpsPerBlock * 32, 0, stream>>>(
          static_cast<const uint8_t*>(w), rows, cols, row_bytes, static_cast<const T*>(x), num_tokens,
          static_cast<T*>(y), y_row_stride);
      return cudaGetLastError();
    });
  });
}

cudaError_t Dequantize(GgmlType wtype, const void* w, int64_t rows, int64_t cols, size_t row_bytes, DType dt,
                       void* out, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  if (!QuantMatMulSupports(wtype) || !ShapeOk(wtype, cols, row_bytes)) return cudaErrorInvalidValue;
  if ((reinterpret_cast<uintptr_t>(w) & 3u) != 0) return cudaErrorMisalignedAddress;
  const int64_t n = rows * (cols / 32);
  constexpr int kThreads = 256;
  return detail::DispatchDType(dt, [&](auto tag) {
    using T = decltype(tag);
    return DispatchWeight(wtype, [&](auto wt) {
      DequantizeKernel<T, decltype(wt)::value><<<detail::CeilDiv(n, kThreads), kThreads, 0, stream>>>(
          static_cast<const uint8_t*>(w), rows, cols, row_bytes, static_cast<T*>(out));
      return cudaGetLastError();
    });
  });
}

}  // namespace inferd::cuda
