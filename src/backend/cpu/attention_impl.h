// The paged-attention kernel of attention.h as a template over a vec16.h type. Included by
// one translation unit per ISA (vec_kernels_generic.cc, vec_kernels_avx2.cc,
// vec_kernels_avx512.cc); each instantiates it with its own vector type. Compiled with
// -ffp-contract=off, so the compiler never fuses a scalar a * b + c on one ISA only.
#pragma once

#include <algorithm>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "backend/cpu/attention.h"
#include "backend/cpu/vec16.h"

namespace inferd::cpu {
namespace {

// c * tanh(s / c) as c * (1 - 2 / (exp(2 s / c) + 1)): vec16.h's Exp, so every ISA agrees.
template <class V>
V SoftCap(V s, float c) {
  const V one = V::Set1(1.0f);
  return V::Set1(c) * (one - V::Set1(2.0f) / (Exp(s * V::Set1(2.0f / c)) + one));
}

template <class V>
float ExpScalar(float x) {
  return Exp(V::Set1(x)).Lane(0);
}

// A chunk's K and V as fp32, widened once for every query of the tile (exact, so the scores
// are those of the cache's values): K as [head_dim][k_stride] (keys side by side), V as
// [16][v_stride] (a key's values, whole vectors). A full chunk of an fp32 cache whose
// head_dim is a multiple of 16 is read in place.
struct ChunkF32 {
  const float* k;
  const float* v;
  int w;  // keys in the chunk (<= 16)
  int64_t k_stride, v_stride;
};

// One chunk of w <= 16 keys (positions pos0..) for the G queries [i0, i0 + G) of the tile.
// NV = vectors per head (head_dim / 16, rounded up). G and NV are compile-time so that the
// accumulators stay in registers: V::kAttnGroup queries per call (1 on AVX2, whose 16 ymm
// hold one query's 4 score chains of 16 keys; 4 with 32 zmm), V::kAttnPvBlock vectors of the
// output per pass over the keys. Blocking changes no result: every score and output lane
// keeps its own sequence of operations.
template <class V, class E, int NV, int G>
void Chunk(const AttnTile& t, int i0, const float* qs, int64_t pos0, const ChunkF32& c, V kscale, V vscale, float* m,
           float* l) {
  const int64_t d = t.head_dim;
  const int w = c.w;
  int nvis[G], lo[G];  // query i sees the chunk's keys [lo, nvis)
  int nmax = 0;
  for (int i = 0; i < G; ++i) {
    const int64_t n = t.limit[i0 + i] - pos0;
    const int64_t f = t.first[i0 + i] - pos0;
    nvis[i] = static_cast<int>(n < 0 ? 0 : (n > w ? w : n));
    lo[i] = static_cast<int>(f < 0 ? 0 : (f > w ? w : f));
    if (lo[i] >= nvis[i]) nvis[i] = lo[i] = 0;
    nmax = nvis[i] > nmax ? nvis[i] : nmax;
  }
  if (nmax == 0) return;
  // Scores: four fma chains per query (element dd goes to chain dd mod 4).
  V acc[G][4];
  for (int i = 0; i < G; ++i)
    for (auto& a : acc[i]) a = V::Zero();
  int64_t dd = 0;
  for (; dd + 4 <= d; dd += 4) {
    const float* kr = c.k + dd * c.k_stride;
    for (int i = 0; i < G; ++i) {
      const float* qi = qs + i * d + dd;
      acc[i][0] = Fma(V::Set1(qi[0]), V::Load(kr), acc[i][0]);
      acc[i][1] = Fma(V::Set1(qi[1]), V::Load(kr + c.k_stride), acc[i][1]);
      acc[i][2] = Fma(V::Set1(qi[2]), V::Load(kr + 2 * c.k_stride), acc[i][2]);
      acc[i][3] = Fma(V::Set1(qi[3]), V::Load(kr + 3 * c.k_stride), acc[i][3]);
    }
  }
  for (; dd < d; ++dd) {  // head_dim = 2 mod 4
    const V kv = V::Load(c.k + dd * c.k_stride);
    for (int i = 0; i < G; ++i) acc[i][dd & 3] = Fma(V::Set1(qs[i * d + dd]), kv, acc[i][dd & 3]);
  }
  alignas(64) float p[G][16];
  const V neg_inf = V::Set1(-std::numeric_limits<float>::infinity());
  for (int i = 0; i < G; ++i) {
    if (nvis[i] == 0) continue;
    const int q = i0 + i;
    V raw = (acc[i][0] + acc[i][1]) + (acc[i][2] + acc[i][3]);
    if constexpr (kIsCode<E>) raw = kscale * raw;
    if (t.softcap > 0.0f) raw = SoftCap(raw, t.softcap);
    if (t.alibi[q] != 0.0f) {
      // Distances key - query for the chunk's keys: small integers, exact in float.
      alignas(64) float dist[16];
      const int64_t d0 = pos0 - (t.limit[q] - 1);
      for (int j = 0; j < 16; ++j) dist[j] = static_cast<float>(d0 + j);
      raw = raw + V::Set1(t.alibi[q]) * V::Load(dist);
    }
    V s = V::SelectFirst(nvis[i], raw, neg_inf);
    if (lo[i] > 0) s = V::SelectFirst(lo[i], neg_inf, s);  // before the sliding window
    const float bm = s.ReduceMax();
    const float m_new = m[q] < bm ? bm : m[q];
    if (m_new != m[q] && l[q] != 0.0f) {  // rescale what was accumulated
      const float e = ExpScalar<V>(m[q] - m_new);
      l[q] = l[q] * e;
      float* o = t.o + q * d;
      const V ev = V::Set1(e);
      for (int cc = 0; cc < NV; ++cc) {
        const int n = static_cast<int>(d - 16 * cc < 16 ? d - 16 * cc : 16);
        (ev * V::LoadN(o + 16 * cc, n)).StoreN(o + 16 * cc, n);
      }
    }
    m[q] = m_new;
    V pv = V::SelectFirst(nvis[i], Exp(s - V::Set1(m_new)), V::Zero());
    if (lo[i] > 0) pv = V::SelectFirst(lo[i], V::Zero(), pv);
    l[q] = l[q] + pv.ReduceAdd();
    if constexpr (kIsCode<E>) pv = pv * vscale;  // p_j * vs_j
    pv.Store(p[i]);
  }
  // o += p_j v_j, keys in order, in passes of kAttnPvBlock output vectors. A query past its
  // last visible key adds nothing (p = 0 there is skipped, not multiplied: unwritten V may be NaN).
  constexpr int kCb = V::kAttnPvBlock < NV ? V::kAttnPvBlock : NV;
  auto pass = [&](auto c0_tag) {
    constexpr int c0 = decltype(c0_tag)::value;
    constexpr int cn = NV - c0 < kCb ? NV - c0 : kCb;
    V o[G][cn];
    for (int i = 0; i < G; ++i)
      for (int cc = 0; cc < cn; ++cc) {
        const int64_t col = 16 * (c0 + cc);
        o[i][cc] = V::LoadN(t.o + (i0 + i) * d + col, static_cast<int>(d - col < 16 ? d - col : 16));
      }
    for (int j = 0; j < nmax; ++j) {
      const float* vr = c.v + j * c.v_stride + 16 * c0;
      for (int i = 0; i < G; ++i) {
        if (j >= nvis[i] || j < lo[i]) continue;
        const V pj = V::Set1(p[i][j]);
        for (int cc = 0; cc < cn; ++cc) o[i][cc] = Fma(pj, V::Load(vr + 16 * cc), o[i][cc]);
      }
    }
    for (int i = 0; i < G; ++i) {
      if (nvis[i] == 0) continue;
      for (int cc = 0; cc < cn; ++cc) {
        const int64_t col = 16 * (c0 + cc);
        o[i][cc].StoreN(t.o + (i0 + i) * d + col, static_cast<int>(d - col < 16 ? d - col : 16));
      }
    }
  };
  [&]<int... P>(std::integer_sequence<int, P...>) {
    (pass(std::integral_constant<int, P * kCb>{}), ...);
  }(std::make_integer_sequence<int, (NV + kCb - 1) / kCb>{});
}

// Widens the chunk (w keys at block slot `off` of block `blk`) into kw / vw (ChunkF32), and
// for code formats loads its keys' K and V scales as fp32 (lanes >= w are 0).
template <class V, class E, int NV>
ChunkF32 WidenChunk(const AttnTile& t, int64_t blk, int64_t off, int w, float* kw, float* vw, V* kscale, V* vscale) {
  const int64_t d = t.head_dim, bs = t.block_size;
  const E* kb = static_cast<const E*>(t.k) + ((blk * t.num_kv_heads + t.kv_head) * d) * bs + off;  // [d][bs]
  const E* vb = static_cast<const E*>(t.v) + ((blk * t.num_kv_heads + t.kv_head) * bs + off) * d;  // [w][d]
  *kscale = *vscale = V::Zero();
  if constexpr (std::is_same_v<E, float>) {
    if (w == 16 && d % 16 == 0) return ChunkF32{kb, vb, w, bs, d};
  }
  for (int64_t dd = 0; dd < d; ++dd) (w == 16 ? V::Load(kb + dd * bs) : V::LoadN(kb + dd * bs, w)).Store(kw + dd * 16);
  for (int j = 0; j < w; ++j) {
    for (int cc = 0; cc < NV; ++cc) {
      const int64_t col = 16 * cc;
      const V x = d - col >= 16 ? V::Load(vb + j * d + col) : V::LoadN(vb + j * d + col, static_cast<int>(d - col));
      x.Store(vw + j * (NV * 16) + col);
    }
  }
  if constexpr (kIsCode<E>) {
    const int64_t sb = (blk * t.num_kv_heads + t.kv_head) * bs + off;  // [w]
    *kscale = w == 16 ? V::Load(t.ks + sb) : V::LoadN(t.ks + sb, w);
    *vscale = w == 16 ? V::Load(t.vs + sb) : V::LoadN(t.vs + sb, w);
    if constexpr (std::is_same_v<E, CodeE4M3>) {
      *kscale = *kscale * V::Set1(kFp8E4M3HalfUnit);
      *vscale = *vscale * V::Set1(kFp8E4M3HalfUnit);
    }
  }
  return ChunkF32{kw, vw, w, 16, NV * 16};
}

template <class V, class E, int NV>
void TileNv(const AttnTile& t) {
  const int64_t d = t.head_dim, bs = t.block_size;
  thread_local std::vector<float> qbuf, kvbuf;
  if (static_cast<int64_t>(qbuf.size()) < kAttnMaxQueries * d) qbuf.resize(static_cast<size_t>(kAttnMaxQueries * d));
  if (kvbuf.size() < static_cast<size_t>(2 * 16 * kAttnMaxHeadDim)) kvbuf.resize(static_cast<size_t>(2 * 16 * kAttnMaxHeadDim));
  float* qs = qbuf.data();
  float* kw = kvbuf.data();
  float* vw = kw + 16 * kAttnMaxHeadDim;
  int64_t max_limit = 0, min_first = t.k1;
  const V sc = V::Set1(t.scale);
  for (int i = 0; i < t.nq; ++i) {
    for (int c = 0; c < NV; ++c) {
      const int n = static_cast<int>(d - 16 * c < 16 ? d - 16 * c : 16);
      (V::LoadN(t.q[i] + 16 * c, n) * sc).StoreN(qs + i * d + 16 * c, n);
    }
    t.m[i] = -std::numeric_limits<float>::infinity();
    t.l[i] = 0.0f;
    std::fill(t.o + i * d, t.o + (i + 1) * d, 0.0f);
    max_limit = t.limit[i] > max_limit ? t.limit[i] : max_limit;
    min_first = t.first[i] < min_first ? t.first[i] : min_first;
  }
  const int64_t end = t.k1 < max_limit ? t.k1 : max_limit;
  // Blocks before every query's window are skipped: a block start is always a chunk start,
  // so the chunks that remain are the ones a walk from k0 would make (and skipped chunks
  // would have added nothing).
  int64_t start = t.k0;
  if (min_first > start) start = std::max(t.k0, min_first / bs * bs);
  constexpr int G = V::kAttnGroup;
  for (int64_t pos = start; pos < end;) {
    const int64_t off = pos % bs;
    const int64_t w64 = std::min<int64_t>({16, bs - off, t.k1 - pos});
    V ks, vs;
    const ChunkF32 c = WidenChunk<V, E, NV>(t, t.block_table[pos / bs], off, static_cast<int>(w64), kw, vw, &ks, &vs);
    for (int i0 = 0; i0 < t.nq; i0 += G) {
      switch (t.nq - i0 < G ? t.nq - i0 : G) {
        case 1: Chunk<V, E, NV, 1>(t, i0, qs + i0 * d, pos, c, ks, vs, t.m, t.l); break;
        case 2: Chunk<V, E, NV, (G >= 2 ? 2 : 1)>(t, i0, qs + i0 * d, pos, c, ks, vs, t.m, t.l); break;
        case 3: Chunk<V, E, NV, (G >= 3 ? 3 : 1)>(t, i0, qs + i0 * d, pos, c, ks, vs, t.m, t.l); break;
        default: Chunk<V, E, NV, G>(t, i0, qs + i0 * d, pos, c, ks, vs, t.m, t.l); break;
      }
    }
    pos += w64;
  }
}

template <class V, class E>
void TileType(const AttnTile& t) {
  switch ((t.head_dim + 15) / 16) {  // head_dim <= kAttnMaxHeadDim, checked by the caller
    case 1: return TileNv<V, E, 1>(t);
    case 2: return TileNv<V, E, 2>(t);
    case 3: return TileNv<V, E, 3>(t);
    case 4: return TileNv<V, E, 4>(t);
    case 5: return TileNv<V, E, 5>(t);
    case 6: return TileNv<V, E, 6>(t);
    case 7: return TileNv<V, E, 7>(t);
    case 8: return TileNv<V, E, 8>(t);
    case 9: return TileNv<V, E, 9>(t);
    case 10: return TileNv<V, E, 10>(t);
    case 11: return TileNv<V, E, 11>(t);
    case 12: return TileNv<V, E, 12>(t);
    case 13: return TileNv<V, E, 13>(t);
    case 14: return TileNv<V, E, 14>(t);
    case 15: return TileNv<V, E, 15>(t);
    case 16: return TileNv<V, E, 16>(t);
    default: break;
  }
}

// fp32 and fp16 caches.
template <class V>
void TileFloatImpl(const AttnTile& t) {
  if (t.elem == KvElem::kF16) {
    TileType<V, uint16_t>(t);
  } else {
    TileType<V, float>(t);
  }
}

// Code formats; instantiated in their own translation units (attention_codes_*.cc), which
// keeps each ISA's compile time about what it was before them.
template <class V>
void TileCodesImpl(const AttnTile& t) {
  switch (t.elem) {
    case KvElem::kInt8: return TileType<V, CodeInt8>(t);
    case KvElem::kFp8E4M3: return TileType<V, CodeE4M3>(t);
    case KvElem::kFp8E5M2: return TileType<V, CodeE5M2>(t);
    default: return;
  }
}

template <class V>
void MergeImpl(int n, const float* m, const float* l, const float* o, int64_t ostride, int64_t d, float* out) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < n; ++i)
    if (l[i] != 0.0f) mx = mx < m[i] ? m[i] : mx;
  float sum = 0.0f;
  const int64_t nv = (d + 15) / 16;
  V acc[16];
  for (int64_t c = 0; c < nv; ++c) acc[c] = V::Zero();
  for (int i = 0; i < n; ++i) {
    if (l[i] == 0.0f) continue;
    const float e = ExpScalar<V>(m[i] - mx);
    sum = sum + l[i] * e;
    const V ev = V::Set1(e);
    for (int64_t c = 0; c < nv; ++c) {
      const int k = static_cast<int>(d - 16 * c < 16 ? d - 16 * c : 16);
      acc[c] = Fma(ev, V::LoadN(o + i * ostride + 16 * c, k), acc[c]);
    }
  }
  const V inv = V::Set1(sum != 0.0f ? 1.0f / sum : 0.0f);
  for (int64_t c = 0; c < nv; ++c) {
    const int k = static_cast<int>(d - 16 * c < 16 ? d - 16 * c : 16);
    (acc[c] * inv).StoreN(out + 16 * c, k);
  }
}

}  // namespace
}  // namespace inferd::cpu
