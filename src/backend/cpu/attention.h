// Paged attention on the CPU: one kernel, written once over vec16.h and compiled per ISA.
//
// KV cache layout (per layer), chosen so that no horizontal reduction is needed:
//   K: [num_blocks][num_kv_heads][head_dim][block_size]   (keys of a block side by side)
//   V: [num_blocks][num_kv_heads][block_size][head_dim]
// Scores of up to 16 keys are one vector: s = sum_d q[d] * K[d][keys] (broadcast q[d]).
//
// Numerics (identical for every ISA, batch, tile and thread split):
//   a query at position p sees keys [0, p] (with a sliding window W: [p - W + 1, p]; keys
//   outside it get no score and add nothing, whatever chunk they share). Keys go in partitions
//   of kAttnPartition positions; inside a partition, in chunks of the kAttnChunk positions
//   [64c, 64c + 64) (chunk boundaries depend only on positions; a chunk may span KV blocks),
//   each four vectors of 16 keys. Per chunk: scores s = q * scale . k (one fma chain per key,
//   d in order), with soft-capping s = c * (1 - 2 / (exp(2 s / c) + 1)) (= c tanh(s / c)),
//   then ALiBi s = s + slope * float(j - p) (one rounding each: exact across ISAs),
//   m' = max(m, max s over the chunk); when m' != m, l *= e with e = exp(m - m');
//   p = exp(s - m') (0 for keys not visible); l += sum((p_0 + p_1) + (p_2 + p_3)) (the four
//   vectors, then HorizontalSum16 order); o = o * e (e = 1 when m did not move), then
//   o += p_j v_j for the chunk's visible keys in order. Partitions merge in order: M = max m_i,
//   L = sum l_i exp(m_i - M), O = sum o_i exp(m_i - M) (empty partitions skipped),
//   out = O / L. exp is vec16.h's Exp. A half K/V cache is widened exactly to fp32 on load.
//
// Quantized caches (kv_quant.h: 1-byte codes, one fp16 scale per token and KV head, ks / vs
// [num_blocks][num_kv_heads][block_size]) have their codes widened exactly to fp32 a chunk
// at a time (vec16.h), never through a dequantized copy of the cache. The chains above run
// over the widened codes; a key's score is then ks[key] * s (one multiply, before
// soft-capping), and the values accumulate o += (p_j * vs_j) v_j (p_j * vs_j one
// fp32 product; l sums the unscaled p). For e4m3 the widened code is value / 2^8 and ks, vs
// are multiplied by 2^8 (exact) when loaded.
#pragma once

#include <cstdint>

#include "backend/cpu/kv_quant.h"

namespace inferd::cpu {

constexpr int64_t kAttnPartition = 512;  // keys per split-K partition
constexpr int kAttnChunk = 64;           // keys per online-softmax step (divides kAttnPartition)
constexpr int kAttnMaxQueries = 32;      // query rows per tile
constexpr int64_t kAttnMaxHeadDim = 256;

struct AttnTile {
  const void* k = nullptr;  // layer base, layout above
  const void* v = nullptr;
  KvElem elem = KvElem::kF32;
  const uint16_t* ks = nullptr;  // code formats: fp16 scales [num_blocks][num_kv_heads][block_size]
  const uint16_t* vs = nullptr;
  int64_t block_size = 16, num_kv_heads = 0, head_dim = 0;
  const int32_t* block_table = nullptr;  // of the tile's sequence
  int64_t kv_head = 0;
  float scale = 1.0f;
  float softcap = 0.0f;  // > 0: each score s becomes softcap * tanh(s / softcap) (gemma2)
  int nq = 0;                             // <= kAttnMaxQueries
  const float* q[kAttnMaxQueries] = {};   // [head_dim] each
  int64_t limit[kAttnMaxQueries] = {};    // keys [first, limit) are visible to query i
  int64_t first[kAttnMaxQueries] = {};    // 0 without a sliding window
  // ALiBi slope of query i (0: none): its score for the key at position j gains
  // alibi[i] * (j - (limit[i] - 1)), the key's distance back from the query, times -1.
  float alibi[kAttnMaxQueries] = {};
  int64_t k0 = 0, k1 = 0;                 // partition [k0, k1)
  // Outputs per query: running max, sum, and unnormalised output [head_dim]. A query that
  // sees no key of the partition gets m = -inf, l = 0, o = 0.
  float* m = nullptr;
  float* l = nullptr;
  float* o = nullptr;  // [nq][head_dim]
};

struct AttnKernels {
  const char* name;
  void (*tile)(const AttnTile& t);
  // out[0:d] = merge of n partials (m[i], l[i], o[i * ostride : +d]), as above.
  void (*merge)(int n, const float* m, const float* l, const float* o, int64_t ostride, int64_t d, float* out);
};

const AttnKernels& GenericAttnKernels();
const AttnKernels* Avx2AttnKernels();    // nullptr without AVX2 + FMA
const AttnKernels* Avx512AttnKernels();  // nullptr without AVX-512 F/BW/VL
const AttnKernels& AttentionKernels();   // the best available (INFERD_CPU_KERNELS caps it)

}  // namespace inferd::cpu
