// Paged attention over a mixed batch (kernels.h: PagedAttention).
//
// Decode rows (split-K, "flash-decoding"): DecodePartitionKernel has one CTA per
// (partition of kDecodePartition keys, decode row, group of HG query heads sharing one KV
// head). It scores the partition's keys into shared memory (one thread per key, a
// sequential dot over head_dim), takes the partition's max and sum-exp (warp per head,
// fixed lane order), and accumulates the unnormalised p * V (one thread per (head,
// 16-byte chunk of head_dim), keys interleaved over KS threads whose partial sums are added
// in a fixed order). DecodeMergeKernel then combines a row's partitions in partition
// order. Partitions past a row's context return at once and are never read, so the grid
// can be sized by max_context_len (CUDA graphs).
//
// Prefill tiles: PrefillKernel has one CTA per (tile of <= kPrefillTileRows rows, query
// head); for head_dim 256 each tile is split in two CTAs of 32 rows. The Q rows, one K or
// V tile (fp32) and P live in shared memory; each thread holds 4 rows x (a few keys) of S
// and 4 rows x (a few float4 columns) of O; an online softmax walks the key tiles in order.
// Key tiles are aligned to absolute key positions (key tile k = keys [k*KT, (k+1)*KT)) and
// a row skips the tiles past its own position, so a row's arithmetic depends only on its
// q, its position and its sequence's KV: never on the other rows of its tile or batch.
//
// Math is fp32 with expf (full precision). Keys past the tile's last position are never
// read (zeros in shared memory), so stale cache contents (even NaN) cannot leak in.
#include "backend/cuda/kernels/common.cuh"

namespace inferd::cuda {
namespace {

using detail::kVec;
using detail::LoadVec;
using detail::ToFloat;
using detail::FromFloat;

constexpr int kDecodeThreads = 128;

// Workspace: o partials [rows][heads][P][D], then m [rows][heads][P], then l (same).
struct DecodeWs {
  float* o;
  float* m;
  float* l;
};
__host__ __device__ inline DecodeWs SplitWs(void* ws, int64_t rows, int64_t heads, int64_t parts, int64_t d) {
  float* base = static_cast<float*>(ws);
  const int64_t n = rows * heads * parts;
  return {base, base + n * d, base + n * d + n};
}

__device__ __forceinline__ int RowContext(const AttentionParams& p, int row) {
  return p.row_seq[row] < 0 ? 0 : p.positions[row] + 1;
}

template <class T, int D, int HG>
__global__ void __launch_bounds__(kDecodeThreads) DecodePartitionKernel(AttentionParams p, int num_parts) {
  constexpr int VE = kVec<T>;  // elements per 16-byte chunk
  constexpr int C = D / VE;    // chunks per head row
  constexpr int NP = HG * C;   // (head, chunk) pairs of the output
  constexpr int KS = NP >= kDecodeThreads ? 1 : kDecodeThreads / NP;  // threads per pair
  __shared__ __align__(16) float q_s[HG][D];
  __shared__ float s_s[HG][kDecodePartition];
  __shared__ int slot_s[kDecodePartition];
  __shared__ __align__(16) float red_s[KS > 1 ? KS * NP * VE : 1];

  const int tid = threadIdx.x;
  const int di = blockIdx.y;
  const int row = p.decode_rows[di];
  const int ctx = RowContext(p, row);
  const int part = blockIdx.x;
  const int start = part * kDecodePartition;
  if (start >= ctx) return;  // whole CTA: nothing to contribute (the merge never reads it)
  const int n = min(kDecodePartition, ctx - start);
  const int G = static_cast<int>(p.num_heads / p.num_kv_heads);
  const int groups = G / HG;
  const int kvh = blockIdx.z / groups;
  const int h0 = kvh * G + (blockIdx.z % groups) * HG;
  const int bs = static_cast<int>(p.block_size);
  const int32_t* bt = p.block_tables + static_cast<int64_t>(p.row_seq[row]) * p.max_blocks_per_seq;
  const int64_t slot_stride = p.num_kv_heads * D;
  const T* kc = static_cast<const T*>(p.k_cache) + static_cast<int64_t>(kvh) * D;
  const T* vc = static_cast<const T*>(p.v_cache) + static_cast<int64_t>(kvh) * D;

  const T* q = static_cast<const T*>(p.q) + static_cast<int64_t>(row) * p.q_row_stride + static_cast<int64_t>(h0) * D;
  for (int i = tid; i < HG * D; i += kDecodeThreads) q_s[i / D][i % D] = ToFloat(q[i]);
  __syncthreads();

  // Scores: thread per key, dot in order of head_dim.
  for (int j = tid; j < n; j += kDecodeThreads) {
    const int pos = start + j;
    const int slot = bt[pos / bs] * bs + pos % bs;
    slot_s[j] = slot;
    const T* kr = kc + static_cast<int64_t>(slot) * slot_stride;
    float acc[HG];
#pragma unroll
    for (int hh = 0; hh < HG; ++hh) acc[hh] = 0.0f;
#pragma unroll 4
    for (int c = 0; c < C; ++c) {
      float kv[VE];
      LoadVec(kr + c * VE, kv);
#pragma unroll
      for (int hh = 0; hh < HG; ++hh) {
#pragma unroll
        for (int e = 0; e < VE; ++e) acc[hh] = fmaf(q_s[hh][c * VE + e], kv[e], acc[hh]);
      }
    }
#pragma unroll
    for (int hh = 0; hh < HG; ++hh) s_s[hh][j] = acc[hh] * p.scale;
  }
  __syncthreads();

  // Partition max and sum-exp: warp per head, lane j % 32, butterfly.
  __shared__ float m_s[HG], l_s[HG];
  const int lane = tid & 31, warp = tid >> 5;
  for (int hh = warp; hh < HG; hh += kDecodeThreads / 32) {
    float m = -INFINITY;
    for (int j = lane; j < n; j += 32) m = fmaxf(m, s_s[hh][j]);
    m = detail::WarpMax(m);
    float l = 0.0f;
    for (int j = lane; j < n; j += 32) {
      const float e = expf(s_s[hh][j] - m);
      s_s[hh][j] = e;
      l += e;
    }
    l = detail::WarpSum(l);
    if (lane == 0) {
      m_s[hh] = m;
      l_s[hh] = l;
    }
  }
  __syncthreads();

  // Unnormalised p * V.
  const DecodeWs ws = SplitWs(p.workspace, p.num_decode_rows, p.num_heads, num_parts, D);
  auto out_index = [&](int hh) { return (static_cast<int64_t>(di) * p.num_heads + h0 + hh) * num_parts + part; };
  for (int w = tid; w < NP * KS; w += kDecodeThreads) {
    const int pair = w % NP, s = w / NP;
    const int hh = pair / C, c = pair % C;
    float acc[VE];
#pragma unroll
    for (int e = 0; e < VE; ++e) acc[e] = 0.0f;
#pragma unroll 4
    for (int j = s; j < n; j += KS) {
      float vv[VE];
      LoadVec(vc + static_cast<int64_t>(slot_s[j]) * slot_stride + c * VE, vv);
      const float pj = s_s[hh][j];
#pragma unroll
      for (int e = 0; e < VE; ++e) acc[e] = fmaf(pj, vv[e], acc[e]);
    }
    if constexpr (KS > 1) {
#pragma unroll
      for (int e = 0; e < VE; ++e) red_s[(s * NP + pair) * VE + e] = acc[e];
    } else {
      float* o = ws.o + out_index(hh) * D + c * VE;
#pragma unroll
      for (int e = 0; e < VE; ++e) o[e] = acc[e];
    }
  }
  if constexpr (KS > 1) {
    __syncthreads();
    for (int pair = tid; pair < NP; pair += kDecodeThreads) {
      const int hh = pair / C, c = pair % C;
      float acc[VE];
#pragma unroll
      for (int e = 0; e < VE; ++e) acc[e] = 0.0f;
      for (int s = 0; s < KS; ++s) {
#pragma unroll
        for (int e = 0; e < VE; ++e) acc[e] += red_s[(s * NP + pair) * VE + e];
      }
      float* o = ws.o + out_index(hh) * D + c * VE;
#pragma unroll
      for (int e = 0; e < VE; ++e) o[e] = acc[e];
    }
  }
  if (tid < HG) {
    ws.m[out_index(tid)] = m_s[tid];
    ws.l[out_index(tid)] = l_s[tid];
  }
}

// out[row, h] = sum_p w_p o_p / sum_p w_p l_p with w_p = exp(m_p - max_p m_p), p in order.
template <class T, int D>
__global__ void __launch_bounds__(kDecodeThreads) DecodeMergeKernel(AttentionParams p, int num_parts) {
  const int di = blockIdx.x, h = blockIdx.y;
  const int row = p.decode_rows[di];
  const int ctx = RowContext(p, row);
  const int np = min((ctx + kDecodePartition - 1) / kDecodePartition, num_parts);
  T* out = static_cast<T*>(p.out) + (static_cast<int64_t>(row) * p.num_heads + h) * D;
  if (np <= 0) {
    for (int i = threadIdx.x; i < D; i += blockDim.x) out[i] = FromFloat<T>(0.0f);
    return;
  }
  const DecodeWs ws = SplitWs(p.workspace, p.num_decode_rows, p.num_heads, num_parts, D);
  const int64_t base = (static_cast<int64_t>(di) * p.num_heads + h) * num_parts;
  float mx = -INFINITY;
  for (int q = 0; q < np; ++q) mx = fmaxf(mx, ws.m[base + q]);
  float l = 0.0f;
  for (int q = 0; q < np; ++q) l = fmaf(ws.l[base + q], expf(ws.m[base + q] - mx), l);
  const float inv = 1.0f / l;
  for (int i = threadIdx.x; i < D; i += blockDim.x) {
    float acc = 0.0f;
    for (int q = 0; q < np; ++q) acc = fmaf(ws.o[(base + q) * D + i], expf(ws.m[base + q] - mx), acc);
    out[i] = FromFloat<T>(acc * inv);
  }
}

template <int D>
struct PrefillCfg {
  static constexpr int BR = D > 128 ? 32 : 64;  // query rows per CTA
  static constexpr int KT = D > 128 ? 32 : 64;  // keys per tile
  static constexpr int TX = D > 128 ? 16 : 8;   // threads along keys (S) and columns (O)
  static constexpr int TY = BR / 4;             // 4 rows per thread
  static constexpr int NT = TX * TY;            // threads per CTA
  static constexpr int KU = KT / TX;            // keys per thread in S
  static constexpr int D4 = D / 4;              // float4 columns
  static constexpr int NG = (D4 + TX - 1) / TX; // float4 columns per thread in O
  static constexpr int LD = D + 4;              // shared row stride of Q, K, V (floats): no bank conflicts
  static constexpr int LP = BR + 4;             // shared row stride of P^T
  static constexpr size_t kSmem = static_cast<size_t>(BR * LD + KT * LD + KT * LP) * sizeof(float);
  static_assert(NT == 128 && kPrefillTileRows % BR == 0 && 32 % TX == 0 && D % 4 == 0);
};

// Stages keys [k0, k0 + KT) of the sequence (zeros past maxpos) as fp32 into dst [KT][LD].
template <class T, int D>
__device__ __forceinline__ void StageKv(const T* cache, const int32_t* bt, int bs, int64_t slot_stride, int k0,
                                        int maxpos, float* dst) {
  using Cfg = PrefillCfg<D>;
  constexpr int VE = kVec<T>, C = D / VE;
  for (int idx = threadIdx.x; idx < Cfg::KT * C; idx += Cfg::NT) {
    const int j = idx / C, c = idx % C;
    const int key = k0 + j;
    float v[VE];
    if (key <= maxpos) {
      const int64_t slot = static_cast<int64_t>(bt[key / bs]) * bs + key % bs;
      LoadVec(cache + slot * slot_stride + c * VE, v);
    } else {
#pragma unroll
      for (int e = 0; e < VE; ++e) v[e] = 0.0f;
    }
    float4* d4 = reinterpret_cast<float4*>(dst + j * Cfg::LD + c * VE);
#pragma unroll
    for (int e = 0; e < VE; e += 4) d4[e / 4] = make_float4(v[e], v[e + 1], v[e + 2], v[e + 3]);
  }
}

template <class T, int D>
__global__ void __launch_bounds__(128) PrefillKernel(AttentionParams p) {
  using Cfg = PrefillCfg<D>;
  constexpr int BR = Cfg::BR, KT = Cfg::KT, TX = Cfg::TX, KU = Cfg::KU, NG = Cfg::NG, LD = Cfg::LD, LP = Cfg::LP;
  extern __shared__ float4 smem4[];
  float* q_s = reinterpret_cast<float*>(smem4);  // [BR][LD]
  float* kv_s = q_s + BR * LD;                   // [KT][LD]: K, then V, of one key tile
  float* p_s = kv_s + KT * LD;                   // [KT][LP]: P transposed
  __shared__ int pos_s[BR];                      // -1: padding row or past the tile
  __shared__ int seq_s, maxpos_s;

  constexpr int kSub = kPrefillTileRows / BR;
  const int tile = blockIdx.x / kSub, sub = blockIdx.x % kSub;
  const int first = p.prefill_tiles[2 * tile] + sub * BR;
  const int nrows = min(BR, p.prefill_tiles[2 * tile + 1] - sub * BR);
  if (nrows <= 0) return;
  const int h = blockIdx.y;
  const int kvh = h / static_cast<int>(p.num_heads / p.num_kv_heads);
  const int tid = threadIdx.x, tx = tid % TX, ty = tid / TX;

  if (tid < BR) {
    int pos = -1;
    if (tid < nrows && p.row_seq[first + tid] >= 0) pos = p.positions[first + tid];
    pos_s[tid] = pos;
  }
  if (tid == 0) {
    int seq = -1, maxpos = -1;
    for (int r = 0; r < nrows; ++r) {
      if (p.row_seq[first + r] >= 0) {
        seq = p.row_seq[first + r];
        maxpos = max(maxpos, p.positions[first + r]);
      }
    }
    seq_s = seq;
    maxpos_s = maxpos;
  }
  __syncthreads();
  const int seq = seq_s, maxpos = maxpos_s;

  // Q rows (zeros for rows without a position).
  const T* qbase = static_cast<const T*>(p.q) + static_cast<int64_t>(h) * D;
  for (int idx = tid; idx < BR * D; idx += Cfg::NT) {
    const int r = idx / D, i = idx % D;
    q_s[r * LD + i] = pos_s[r] >= 0 ? ToFloat(qbase[static_cast<int64_t>(first + r) * p.q_row_stride + i]) : 0.0f;
  }

  float m[4], l[4], o[4][NG][4];
  int rpos[4];
#pragma unroll
  for (int a = 0; a < 4; ++a) {
    m[a] = -INFINITY;
    l[a] = 0.0f;
    rpos[a] = pos_s[ty * 4 + a];
#pragma unroll
    for (int g = 0; g < NG; ++g) {
#pragma unroll
      for (int b = 0; b < 4; ++b) o[a][g][b] = 0.0f;
    }
  }

  if (maxpos >= 0) {
    const int bs = static_cast<int>(p.block_size);
    const int32_t* bt = p.block_tables + static_cast<int64_t>(seq) * p.max_blocks_per_seq;
    const int64_t slot_stride = p.num_kv_heads * D;
    const T* kc = static_cast<const T*>(p.k_cache) + static_cast<int64_t>(kvh) * D;
    const T* vc = static_cast<const T*>(p.v_cache) + static_cast<int64_t>(kvh) * D;
    const int num_tiles = maxpos / KT + 1;
    for (int kt = 0; kt < num_tiles; ++kt) {
      const int k0 = kt * KT;
      StageKv<T, D>(kc, bt, bs, slot_stride, k0, maxpos, kv_s);
      __syncthreads();  // K tile (and, the first time, Q) visible

      float s[4][KU];
#pragma unroll
      for (int a = 0; a < 4; ++a) {
#pragma unroll
        for (int u = 0; u < KU; ++u) s[a][u] = 0.0f;
      }
#pragma unroll 2
      for (int i = 0; i < D; i += 4) {
        float4 qv[4];
#pragma unroll
        for (int a = 0; a < 4; ++a) qv[a] = *reinterpret_cast<const float4*>(q_s + (ty * 4 + a) * LD + i);
#pragma unroll
        for (int u = 0; u < KU; ++u) {
          const float4 kv = *reinterpret_cast<const float4*>(kv_s + (tx + TX * u) * LD + i);
#pragma unroll
          for (int a = 0; a < 4; ++a) {
            s[a][u] = fmaf(qv[a].x, kv.x, s[a][u]);
            s[a][u] = fmaf(qv[a].y, kv.y, s[a][u]);
            s[a][u] = fmaf(qv[a].z, kv.z, s[a][u]);
            s[a][u] = fmaf(qv[a].w, kv.w, s[a][u]);
          }
        }
      }
      __syncthreads();  // every thread is done with K
      StageKv<T, D>(vc, bt, bs, slot_stride, k0, maxpos, kv_s);

      // Online softmax, row by row (the TX threads of a row are one aligned lane group).
#pragma unroll
      for (int a = 0; a < 4; ++a) {
        const bool active = rpos[a] >= k0;  // the row sees key k0, hence this tile
        float tmax = -INFINITY;
#pragma unroll
        for (int u = 0; u < KU; ++u) {
          const int key = k0 + tx + TX * u;
          s[a][u] = active && key <= rpos[a] ? s[a][u] * p.scale : -INFINITY;
          tmax = fmaxf(tmax, s[a][u]);
        }
#pragma unroll
        for (int off = TX / 2; off > 0; off >>= 1) tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, off));
        const float mnew = active ? fmaxf(m[a], tmax) : m[a];
        float psum = 0.0f;
#pragma unroll
        for (int u = 0; u < KU; ++u) {
          s[a][u] = s[a][u] == -INFINITY ? 0.0f : expf(s[a][u] - mnew);
          psum += s[a][u];
        }
#pragma unroll
        for (int off = TX / 2; off > 0; off >>= 1) psum += __shfl_xor_sync(0xffffffffu, psum, off);
        if (active) {
          const float alpha = expf(m[a] - mnew);  // 0 on the row's first tile (m = -inf)
          l[a] = l[a] * alpha + psum;
          m[a] = mnew;
#pragma unroll
          for (int g = 0; g < NG; ++g) {
#pragma unroll
            for (int b = 0; b < 4; ++b) o[a][g][b] *= alpha;
          }
        }
      }
#pragma unroll
      for (int u = 0; u < KU; ++u) {
        *reinterpret_cast<float4*>(p_s + (tx + TX * u) * LP + ty * 4) = make_float4(s[0][u], s[1][u], s[2][u], s[3][u]);
      }
      __syncthreads();  // V tile and P visible

#pragma unroll 2
      for (int j = 0; j < KT; ++j) {
        const float4 pj = *reinterpret_cast<const float4*>(p_s + j * LP + ty * 4);
        const float pa[4] = {pj.x, pj.y, pj.z, pj.w};
#pragma unroll
        for (int g = 0; g < NG; ++g) {
          const int col4 = tx + TX * g;
          if (NG * TX == Cfg::D4 || col4 < Cfg::D4) {
            const float4 vv = *reinterpret_cast<const float4*>(kv_s + j * LD + col4 * 4);
#pragma unroll
            for (int a = 0; a < 4; ++a) {
              o[a][g][0] = fmaf(pa[a], vv.x, o[a][g][0]);
              o[a][g][1] = fmaf(pa[a], vv.y, o[a][g][1]);
              o[a][g][2] = fmaf(pa[a], vv.z, o[a][g][2]);
              o[a][g][3] = fmaf(pa[a], vv.w, o[a][g][3]);
            }
          }
        }
      }
      __syncthreads();  // every thread is done with V and P before the next tile
    }
  }

#pragma unroll
  for (int a = 0; a < 4; ++a) {
    const int r = ty * 4 + a;
    if (r >= nrows) continue;
    T* out = static_cast<T*>(p.out) + (static_cast<int64_t>(first + r) * p.num_heads + h) * D;
    const float inv = rpos[a] >= 0 ? 1.0f / l[a] : 0.0f;  // padding rows: zeros
#pragma unroll
    for (int g = 0; g < NG; ++g) {
      const int col4 = tx + TX * g;
      if (NG * TX == Cfg::D4 || col4 < Cfg::D4) {
#pragma unroll
        for (int b = 0; b < 4; ++b) out[col4 * 4 + b] = FromFloat<T>(rpos[a] >= 0 ? o[a][g][b] * inv : 0.0f);
      }
    }
  }
}

int DecodeHeadGroup(int64_t g) { return g % 8 == 0 ? 8 : g % 4 == 0 ? 4 : g % 2 == 0 ? 2 : 1; }

int64_t DecodeParts(int64_t max_context_len) {
  const int64_t parts = (max_context_len + kDecodePartition - 1) / kDecodePartition;
  return parts < 1 ? 1 : parts;
}

template <class T, int D, int HG>
cudaError_t LaunchDecode(const AttentionParams& p, int parts, cudaStream_t stream) {
  const int64_t g = p.num_heads / p.num_kv_heads;
  const dim3 grid(static_cast<unsigned>(parts), static_cast<unsigned>(p.num_decode_rows),
                  static_cast<unsigned>(p.num_kv_heads * (g / HG)));
  DecodePartitionKernel<T, D, HG><<<grid, kDecodeThreads, 0, stream>>>(p, parts);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  const dim3 mgrid(static_cast<unsigned>(p.num_decode_rows), static_cast<unsigned>(p.num_heads));
  DecodeMergeKernel<T, D><<<mgrid, kDecodeThreads, 0, stream>>>(p, parts);
  return cudaGetLastError();
}

template <class T, int D>
cudaError_t LaunchAttention(const AttentionParams& p, cudaStream_t stream) {
  if (p.num_decode_rows > 0) {
    if (p.num_decode_rows > 65535) return cudaErrorInvalidValue;
    if (p.workspace_bytes < AttentionWorkspaceBytes(p.num_decode_rows, p.num_heads, D, p.max_context_len) ||
        p.workspace == nullptr) {
      return cudaErrorInvalidValue;
    }
    const int parts = static_cast<int>(DecodeParts(p.max_context_len));
    cudaError_t err = cudaSuccess;
    switch (DecodeHeadGroup(p.num_heads / p.num_kv_heads)) {
      case 8: err = LaunchDecode<T, D, 8>(p, parts, stream); break;
      case 4: err = LaunchDecode<T, D, 4>(p, parts, stream); break;
      case 2: err = LaunchDecode<T, D, 2>(p, parts, stream); break;
      default: err = LaunchDecode<T, D, 1>(p, parts, stream); break;
    }
    if (err != cudaSuccess) return err;
  }
  if (p.num_prefill_tiles > 0) {
    using Cfg = PrefillCfg<D>;
    // Dynamic shared memory above 48 KiB needs the opt-in (host-side attribute, legal
    // during stream capture); at most 99 KiB, which every supported arch allows.
    cudaError_t err = cudaFuncSetAttribute(PrefillKernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(Cfg::kSmem));
    if (err != cudaSuccess) return err;
    constexpr int kSub = kPrefillTileRows / Cfg::BR;
    const dim3 grid(static_cast<unsigned>(p.num_prefill_tiles * kSub), static_cast<unsigned>(p.num_heads));
    PrefillKernel<T, D><<<grid, Cfg::NT, Cfg::kSmem, stream>>>(p);
    return cudaGetLastError();
  }
  return cudaSuccess;
}

template <class T>
cudaError_t DispatchHeadDim(const AttentionParams& p, cudaStream_t stream) {
  switch (p.head_dim) {
    case 64: return LaunchAttention<T, 64>(p, stream);
    case 80: return LaunchAttention<T, 80>(p, stream);
    case 96: return LaunchAttention<T, 96>(p, stream);
    case 128: return LaunchAttention<T, 128>(p, stream);
    case 256: return LaunchAttention<T, 256>(p, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace

size_t AttentionWorkspaceBytes(int64_t num_decode_rows, int64_t num_heads, int64_t head_dim, int64_t max_context_len) {
  if (num_decode_rows <= 0) return 0;
  return static_cast<size_t>(num_decode_rows * num_heads * DecodeParts(max_context_len) * (head_dim + 2)) *
         sizeof(float);
}

cudaError_t PagedAttention(const AttentionParams& p, cudaStream_t stream) {
  switch (p.head_dim) {
    case 64: case 80: case 96: case 128: case 256: break;
    default: return cudaErrorInvalidValue;
  }
  if (p.num_heads <= 0 || p.num_kv_heads <= 0 || p.num_heads % p.num_kv_heads != 0 || p.block_size <= 0 ||
      p.num_heads > 65535) {
    return cudaErrorInvalidValue;
  }
  if (p.num_tokens <= 0 || (p.num_decode_rows <= 0 && p.num_prefill_tiles <= 0)) return cudaSuccess;
  if (!detail::HostAligned16(p.k_cache) || !detail::HostAligned16(p.v_cache)) return cudaErrorMisalignedAddress;
  return detail::DispatchDType(p.dt, [&](auto tag) { return DispatchHeadDim<decltype(tag)>(p, stream); });
}

}  // namespace inferd::cuda
