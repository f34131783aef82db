// Row-wise elementwise kernels: Embedding, AddBias, Rope, SiluMul, WriteKv. Each output
// element is computed from its own inputs only (no reductions), so batch invariance is
// automatic; rows are blockIdx.x (up to 2^31 - 1 tokens), chunks of 8 elements per thread.
#include "backend/cuda/kernels/common.cuh"

namespace inferd::cuda {
namespace {

using detail::kChunk;
constexpr int kThreads = 256;

// Launch shape for `num_rows` rows of `n` elements: x = row, y = chunk group.
dim3 RowGrid(int64_t num_rows, int64_t n) {
  return dim3(static_cast<unsigned>(num_rows), detail::CeilDiv(detail::CeilDiv(n, kChunk), kThreads));
}

template <class T>
__global__ void EmbeddingKernel(const T* __restrict__ table, const int32_t* __restrict__ ids, int64_t hidden,
                                T* __restrict__ out) {
  const int64_t t = blockIdx.x;
  const int64_t off = (static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x) * kChunk;
  if (off >= hidden) return;
  const int n = static_cast<int>(hidden - off < kChunk ? hidden - off : kChunk);
  const int32_t id = ids[t];
  float v[kChunk];
  if (id >= 0) {
    detail::LoadChunk(table + static_cast<int64_t>(id) * hidden + off, n, v);
  } else {
#pragma unroll
    for (int e = 0; e < kChunk; ++e) v[e] = 0.0f;  // negative id (padding): zeros
  }
  detail::StoreChunk(out + t * hidden + off, n, v);
}

template <class T>
__global__ void AddBiasKernel(T* y, int64_t row_stride, const float* __restrict__ bias, int64_t n) {
  const int64_t t = blockIdx.x;
  const int64_t off = (static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x) * kChunk;
  if (off >= n) return;
  const int m = static_cast<int>(n - off < kChunk ? n - off : kChunk);
  T* p = y + t * row_stride + off;
  float v[kChunk];
  detail::LoadChunk(p, m, v);
#pragma unroll
  for (int e = 0; e < kChunk; ++e) v[e] = e < m ? v[e] + bias[off + e] : 0.0f;
  detail::StoreChunk(p, m, v);
}

// One thread per rotated pair; pairs of all q heads then all k heads of row t.
template <class T>
__global__ void RopeKernel(T* q, T* k, int64_t row_stride, const int32_t* __restrict__ positions,
                           const float* __restrict__ cos_sin, int64_t num_heads, int64_t num_kv_heads,
                           int64_t head_dim, bool neox) {
  const int64_t t = blockIdx.x;
  const int64_t half = head_dim / 2;
  const int64_t p = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (p >= (num_heads + num_kv_heads) * half) return;
  const int64_t head = p / half, i = p % half;
  T* v = head < num_heads ? q + t * row_stride + head * head_dim : k + t * row_stride + (head - num_heads) * head_dim;
  const float* cs = cos_sin + static_cast<int64_t>(positions[t]) * head_dim + 2 * i;  // [half, 2]
  const float c = cs[0], s = cs[1];
  const int64_t i0 = neox ? i : 2 * i;
  const int64_t i1 = neox ? i + half : 2 * i + 1;
  const float a = detail::ToFloat(v[i0]), b = detail::ToFloat(v[i1]);
  v[i0] = detail::FromFloat<T>(a * c - b * s);
  v[i1] = detail::FromFloat<T>(a * s + b * c);
}

template <class T>
__global__ void SiluMulKernel(const T* __restrict__ gate_up, int64_t ffn, T* __restrict__ out) {
  const int64_t t = blockIdx.x;
  const int64_t off = (static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x) * kChunk;
  if (off >= ffn) return;
  const int n = static_cast<int>(ffn - off < kChunk ? ffn - off : kChunk);
  float g[kChunk], u[kChunk];
  detail::LoadChunk(gate_up + t * 2 * ffn + off, n, g);
  detail::LoadChunk(gate_up + t * 2 * ffn + ffn + off, n, u);
#pragma unroll
  for (int e = 0; e < kChunk; ++e) g[e] = g[e] / (1.0f + expf(-g[e])) * u[e];
  detail::StoreChunk(out + t * ffn + off, n, g);
}

// Row t of k and v ([num_kv_heads * head_dim] each) -> cache slot slot_mapping[t]; the
// layout [num_blocks, block_size, num_kv_heads, head_dim] makes a slot one contiguous row.
template <class T>
__global__ void WriteKvKernel(const T* __restrict__ k, const T* __restrict__ v, int64_t row_stride,
                              const int64_t* __restrict__ slot_mapping, int64_t width, T* __restrict__ k_cache,
                              T* __restrict__ v_cache) {
  const int64_t t = blockIdx.x;
  const int64_t slot = slot_mapping[t];
  if (slot < 0) return;
  const int64_t off = (static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x) * kChunk;
  if (off >= width) return;
  const int n = static_cast<int>(width - off < kChunk ? width - off : kChunk);
  float buf[kChunk];
  detail::LoadChunk(k + t * row_stride + off, n, buf);
  detail::StoreChunk(k_cache + slot * width + off, n, buf);
  detail::LoadChunk(v + t * row_stride + off, n, buf);
  detail::StoreChunk(v_cache + slot * width + off, n, buf);
}

}  // namespace

cudaError_t Embedding(DType dt, const void* table, const int32_t* ids, int64_t num_tokens, int64_t hidden, void* out,
                      cudaStream_t stream) {
  if (num_tokens <= 0) return cudaSuccess;
  if (hidden <= 0) return cudaErrorInvalidValue;
  return detail::DispatchDType(dt, [&](auto tag) {
    using T = decltype(tag);
    EmbeddingKernel<T><<<RowGrid(num_tokens, hidden), kThreads, 0, stream>>>(static_cast<const T*>(table), ids, hidden,
                                                                             static_cast<T*>(out));
    return cudaGetLastError();
  });
}

cudaError_t AddBias(DType dt, void* y, int64_t row_stride, const float* bias, int64_t num_tokens, int64_t n,
                    cudaStream_t stream) {
  if (num_tokens <= 0 || n <= 0) return cudaSuccess;
  return detail::DispatchDType(dt, [&](auto tag) {
    using T = decltype(tag);
    AddBiasKernel<T><<<RowGrid(num_tokens, n), kThreads, 0, stream>>>(static_cast<T*>(y), row_stride, bias, n);
    return cudaGetLastError();
  });
}

cudaError_t Rope(DType dt, void* q, void* k, int64_t row_stride, const int32_t* positions, const float* cos_sin,
                 int64_t num_tokens, int64_t num_heads, int64_t num_kv_heads, int64_t head_dim, bool neox,
                 cudaStream_t stream) {
  if (num_tokens <= 0) return cudaSuccess;
  if (head_dim <= 0 || head_dim % 2 != 0) return cudaErrorInvalidValue;
  const int64_t pairs = (num_heads + num_kv_heads) * (head_dim / 2);
  if (pairs <= 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(num_tokens), detail::CeilDiv(pairs, kThreads));
  return detail::DispatchDType(dt, [&](auto tag) {
    using T = decltype(tag);
    RopeKernel<T><<<grid, kThreads, 0, stream>>>(static_cast<T*>(q), static_cast<T*>(k), row_stride, positions,
                                                 cos_sin, num_heads, num_kv_heads, head_dim, neox);
    return cudaGetLastError();
  });
}

cudaError_t SiluMul(DType dt, const void* gate_up, int64_t num_tokens, int64_t ffn, void* out, cudaStream_t stream) {
  if (num_tokens <= 0 || ffn <= 0) return cudaSuccess;
  return detail::DispatchDType(dt, [&](auto tag) {
    using T = decltype(tag);
    SiluMulKernel<T><<<RowGrid(num_tokens, ffn), kThreads, 0, stream>>>(static_cast<const T*>(gate_up), ffn,
                                                                        static_cast<T*>(out));
    return cudaGetLastError();
  });
}

cudaError_t WriteKv(DType dt, const void* k, const void* v, int64_t row_stride, const int64_t* slot_mapping,
                    int64_t num_tokens, int64_t num_kv_heads, int64_t head_dim, int64_t block_size, void* k_cache,
                    void* v_cache, cudaStream_t stream) {
  if (num_tokens <= 0) return cudaSuccess;
  const int64_t width = num_kv_heads * head_dim;
  if (width <= 0 || block_size <= 0) return cudaErrorInvalidValue;
  return detail::DispatchDType(dt, [&](auto tag) {
    using T = decltype(tag);
    WriteKvKernel<T><<<RowGrid(num_tokens, width), kThreads, 0, stream>>>(
        static_cast<const T*>(k), static_cast<const T*>(v), row_stride, slot_mapping, width, static_cast<T*>(k_cache),
        static_cast<T*>(v_cache));
    return cudaGetLastError();
  });
}

}  // namespace inferd::cuda
