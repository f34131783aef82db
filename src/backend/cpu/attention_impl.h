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

// A chunk of up to kAttnChunk keys as fp32, widened once for every query of the tile (exact,
// so the scores are those of the cache's values): K as [head_dim][kAttnChunk] (keys side by
// side), V as [kAttnChunk][v_stride] (a key's values, whole vectors); for code formats the
// keys' K and V scales as fp32 [kAttnChunk]. Lanes past w are never used unmasked. An fp32
// cache whose blocks hold whole key vectors is read in place, each vector from its block.
struct ChunkF32 {
  const float* k[kAttnChunk / 16];  // key vector kv: K[dd][key] at k[kv][dd * k_stride + key]
  const float* v[kAttnChunk / 16];  // its keys' values at v[kv][key * v_stride + col]
  const float* ks;  // nullptr: not a code format
  const float* vs;
  int w;  // keys in the chunk (<= kAttnChunk)
  int64_t k_stride, v_stride;
  const float* VRow(int j) const { return v[j >> 4] + (j & 15) * v_stride; }
};

constexpr int kChunkVecs = kAttnChunk / 16;  // score vectors per chunk

// Scores of the G queries qs[i * d ...] against the chunk's first KV key vectors: one fma
// chain per (query, key vector), d in order. KV and G are compile-time so that the
// accumulators stay in registers.
template <class V, int G, int KV>
void ScoresKv(const float* qs, int64_t d, const ChunkF32& c, V (&s)[G][kChunkVecs]) {
  V acc[G][KV];
  for (int i = 0; i < G; ++i)
    for (int kv = 0; kv < KV; ++kv) acc[i][kv] = V::Zero();
  for (int64_t dd = 0; dd < d; ++dd) {
    V k[KV];
    for (int kv = 0; kv < KV; ++kv) k[kv] = V::Load(c.k[kv] + dd * c.k_stride);
    for (int i = 0; i < G; ++i) {
      const V qb = V::Set1(qs[i * d + dd]);
      for (int kv = 0; kv < KV; ++kv) acc[i][kv] = Fma(qb, k[kv], acc[i][kv]);
    }
  }
  for (int i = 0; i < G; ++i)
    for (int kv = 0; kv < KV; ++kv) s[i][kv] = acc[i][kv];
}

template <class V, int G>
void Scores(int kvn, const float* qs, int64_t d, const ChunkF32& c, V (&s)[G][kChunkVecs]) {
  static_assert(kChunkVecs == 4);
  switch (kvn) {
    case 1: return ScoresKv<V, G, 1>(qs, d, c, s);
    case 2: return ScoresKv<V, G, 2>(qs, d, c, s);
    case 3: return ScoresKv<V, G, 3>(qs, d, c, s);
    default: return ScoresKv<V, G, 4>(qs, d, c, s);
  }
}

// The query's visible lanes [a, b) of key vector kv, from its visible keys [lo, hi) of the chunk.
inline void VecRange(int lo, int hi, int kv, int* a, int* b) {
  *a = std::clamp(lo - 16 * kv, 0, 16);
  *b = std::clamp(hi - 16 * kv, 0, 16);
}

// Online softmax of query q over one chunk, from its raw scores s[0, kvn): sets p (the
// chunk's weights, times the V scales for code formats; 0 for invisible keys), updates
// m[q], l[q] and returns the factor the output accumulated so far must be scaled by.
template <class V>
float ChunkSoftmax(const AttnTile& t, int q, int64_t pos0, const ChunkF32& c, int kvn, int lo, int hi,
                   const V* s, float* p) {
  const V neg_inf = V::Set1(-std::numeric_limits<float>::infinity());
  V x[kChunkVecs];
  int a[kChunkVecs], b[kChunkVecs];  // visible lanes [a, b) of each key vector
  V vmax = neg_inf;
  for (int kv = 0; kv < kChunkVecs; ++kv) VecRange(lo, hi, kv, &a[kv], &b[kv]);
  for (int kv = 0; kv < kvn; ++kv) {
    V raw = s[kv];
    if (c.ks != nullptr) raw = V::Load(c.ks + 16 * kv) * raw;
    if (t.softcap > 0.0f) raw = SoftCap(raw, t.softcap);
    if (t.alibi[q] != 0.0f) {
      // Distances key - query for the vector's keys: small integers, exact in float.
      alignas(64) float dist[16];
      const int64_t d0 = pos0 + 16 * kv - (t.limit[q] - 1);
      for (int j = 0; j < 16; ++j) dist[j] = static_cast<float>(d0 + j);
      raw = raw + V::Set1(t.alibi[q]) * V::Load(dist);
    }
    x[kv] = V::SelectFirst(b[kv], raw, neg_inf);
    if (a[kv] > 0) x[kv] = V::SelectFirst(a[kv], neg_inf, x[kv]);
    vmax = Max(vmax, x[kv]);
  }
  const float bm = vmax.ReduceMax();
  const float m_new = t.m[q] < bm ? bm : t.m[q];
  float e = 1.0f;
  if (m_new != t.m[q] && t.l[q] != 0.0f) {  // rescale what was accumulated
    e = ExpScalar<V>(t.m[q] - m_new);
    t.l[q] = t.l[q] * e;
  }
  t.m[q] = m_new;
  V pv[kChunkVecs];
  for (int kv = 0; kv < kChunkVecs; ++kv) {
    pv[kv] = V::Zero();
    if (kv >= kvn || a[kv] >= b[kv]) continue;
    pv[kv] = V::SelectFirst(b[kv], Exp(x[kv] - V::Set1(m_new)), V::Zero());
    if (a[kv] > 0) pv[kv] = V::SelectFirst(a[kv], V::Zero(), pv[kv]);
  }
  t.l[q] = t.l[q] + ((pv[0] + pv[1]) + (pv[2] + pv[3])).ReduceAdd();
  for (int kv = 0; kv < kvn; ++kv) {
    if (c.vs != nullptr) pv[kv] = pv[kv] * V::Load(c.vs + 16 * kv);  // p_j * vs_j
    pv[kv].Store(p + 16 * kv);
  }
  return e;
}

// One chunk (positions pos0..) for the G queries [i0, i0 + G) of the tile. NV = vectors per
// head (head_dim / 16, rounded up). V::kAttnGroup queries per call (1 on AVX2, whose 16 ymm
// hold one query's 4 score vectors; 4 with 32 zmm), V::kAttnPvBlock vectors of the output per
// pass over the keys. Blocking changes no result: every score and output lane keeps its own
// sequence of operations.
template <class V, int NV, int G>
void Chunk(const AttnTile& t, int i0, const float* qs, int64_t pos0, const ChunkF32& c) {
  const int64_t d = t.head_dim;
  int hi[G], lo[G];  // query i sees the chunk's keys [lo, hi)
  int nmax = 0, jlo = kAttnChunk, all_lo = 0, all_hi = kAttnChunk;
  for (int i = 0; i < G; ++i) {
    const int64_t n = t.limit[i0 + i] - pos0;
    const int64_t f = t.first[i0 + i] - pos0;
    hi[i] = static_cast<int>(std::clamp<int64_t>(n, 0, c.w));
    lo[i] = static_cast<int>(std::clamp<int64_t>(f, 0, c.w));
    if (lo[i] >= hi[i]) hi[i] = lo[i] = 0;
    nmax = std::max(nmax, hi[i]);
    jlo = std::min(jlo, hi[i] > 0 ? lo[i] : kAttnChunk);
    all_lo = std::max(all_lo, lo[i]);
    all_hi = std::min(all_hi, hi[i]);
  }
  if (nmax == 0) return;
  const int kvn = (nmax + 15) / 16;
  V s[G][kChunkVecs];
  Scores<V, G>(kvn, qs, d, c, s);
  alignas(64) float p[G][kAttnChunk];
  float e[G];
  for (int i = 0; i < G; ++i) e[i] = hi[i] > 0 ? ChunkSoftmax<V>(t, i0 + i, pos0, c, kvn, lo[i], hi[i], s[i], p[i]) : 1.0f;
  // o = o * e + sum_j p_j v_j, keys in order, in passes of kAttnPvBlock output vectors. Keys
  // [all_lo, all_hi) are seen by every query of the group; elsewhere a query past its visible
  // keys adds nothing (p = 0 there is skipped, not multiplied: unwritten V may be NaN).
  if (all_lo >= all_hi) all_lo = all_hi = nmax;
  constexpr int kCb = V::kAttnPvBlock < NV ? V::kAttnPvBlock : NV;
  auto pass = [&](auto c0_tag) {
    constexpr int c0 = decltype(c0_tag)::value;
    constexpr int cn = NV - c0 < kCb ? NV - c0 : kCb;
    V o[G][cn];
    for (int i = 0; i < G; ++i) {
      const V ev = V::Set1(e[i]);
      for (int cc = 0; cc < cn; ++cc) {
        if (hi[i] == 0) {  // sees none of the chunk: untouched (and not stored)
          o[i][cc] = V::Zero();
          continue;
        }
        const int64_t col = 16 * (c0 + cc);
        o[i][cc] = ev * V::LoadN(t.o + (i0 + i) * d + col, static_cast<int>(d - col < 16 ? d - col : 16));
      }
    }
    auto some = [&](int j) {
      const float* vr = c.VRow(j) + 16 * c0;
      for (int i = 0; i < G; ++i) {
        if (j >= hi[i] || j < lo[i]) continue;
        const V pj = V::Set1(p[i][j]);
        for (int cc = 0; cc < cn; ++cc) o[i][cc] = Fma(pj, V::Load(vr + 16 * cc), o[i][cc]);
      }
    };
    for (int j = jlo; j < all_lo; ++j) some(j);
    for (int j = all_lo; j < all_hi; ++j) {
      const float* vr = c.VRow(j) + 16 * c0;
      V vv[cn];
      for (int cc = 0; cc < cn; ++cc) vv[cc] = V::Load(vr + 16 * cc);
      for (int i = 0; i < G; ++i) {
        const V pj = V::Set1(p[i][j]);
        for (int cc = 0; cc < cn; ++cc) o[i][cc] = Fma(pj, vv[cc], o[i][cc]);
      }
    }
    for (int j = all_hi; j < nmax; ++j) some(j);
    for (int i = 0; i < G; ++i) {
      if (hi[i] == 0) continue;
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

// Widens the chunk of w keys at positions pos.. (they may span several KV blocks) into kw / vw
// (ChunkF32), and for code formats its keys' K and V scales into ksw / vsw.
template <class V, class E, int NV>
ChunkF32 WidenChunk(const AttnTile& t, int64_t pos, int w, float* kw, float* vw, float* ksw, float* vsw) {
  const int64_t d = t.head_dim, bs = t.block_size;
  ChunkF32 c{};
  c.w = w;
  if constexpr (std::is_same_v<E, float>) {
    if (bs % 16 == 0 && d % 16 == 0) {  // in place: key vectors (16-aligned) never cross a block
      for (int kv = 0; kv < kChunkVecs && 16 * kv < w; ++kv) {
        const int64_t p = pos + 16 * kv, head = t.block_table[p / bs] * t.num_kv_heads + t.kv_head;
        c.k[kv] = static_cast<const float*>(t.k) + head * d * bs + p % bs;
        c.v[kv] = static_cast<const float*>(t.v) + (head * bs + p % bs) * d;
      }
      c.k_stride = bs;
      c.v_stride = d;
      return c;
    }
  }
  for (int j0 = 0; j0 < w;) {
    const int64_t blk = t.block_table[(pos + j0) / bs], off = (pos + j0) % bs;
    const int n = static_cast<int>(std::min<int64_t>(w - j0, bs - off));  // keys of this block
    const int64_t head = blk * t.num_kv_heads + t.kv_head;
    const E* kb = static_cast<const E*>(t.k) + head * d * bs + off;  // [d][bs]
    const E* vb = static_cast<const E*>(t.v) + (head * bs + off) * d;  // [n][d]
    for (int64_t dd = 0; dd < d; ++dd) {
      float* dst = kw + dd * kAttnChunk + j0;
      int j = 0;
      for (; j + 16 <= n; j += 16) V::Load(kb + dd * bs + j).Store(dst + j);
      if (j < n) V::LoadN(kb + dd * bs + j, n - j).StoreN(dst + j, n - j);
    }
    for (int j = 0; j < n; ++j) {
      for (int cc = 0; cc < NV; ++cc) {
        const int64_t col = 16 * cc;
        const V x = d - col >= 16 ? V::Load(vb + j * d + col) : V::LoadN(vb + j * d + col, static_cast<int>(d - col));
        x.Store(vw + (j0 + j) * (NV * 16) + col);
      }
    }
    if constexpr (kIsCode<E>) {
      const int64_t sb = head * bs + off;  // [n]
      const V unit = V::Set1(std::is_same_v<E, CodeE4M3> ? kFp8E4M3HalfUnit : 1.0f);
      for (int j = 0; j < n; j += 16) {
        const int m = std::min(16, n - j);
        (unit * V::LoadN(t.ks + sb + j, m)).StoreN(ksw + j0 + j, m);
        (unit * V::LoadN(t.vs + sb + j, m)).StoreN(vsw + j0 + j, m);
      }
    }
    j0 += n;
  }
  for (int kv = 0; kv < kChunkVecs; ++kv) {
    c.k[kv] = kw + 16 * kv;
    c.v[kv] = vw + 16 * kv * (NV * 16);
  }
  c.k_stride = kAttnChunk;
  c.v_stride = NV * 16;
  if constexpr (kIsCode<E>) {
    c.ks = ksw;
    c.vs = vsw;
  }
  return c;
}

template <class V, class E, int NV>
void TileNv(const AttnTile& t) {
  const int64_t d = t.head_dim;
  thread_local std::vector<float> qbuf, kvbuf;
  if (static_cast<int64_t>(qbuf.size()) < kAttnMaxQueries * d) qbuf.resize(static_cast<size_t>(kAttnMaxQueries * d));
  constexpr size_t kKv = kAttnChunk * kAttnMaxHeadDim;
  if (kvbuf.size() < 2 * kKv + 2 * kAttnChunk) kvbuf.resize(2 * kKv + 2 * kAttnChunk);
  float* qs = qbuf.data();
  float* kw = kvbuf.data();
  float* vw = kw + kKv;
  float* ksw = vw + kKv;
  float* vsw = ksw + kAttnChunk;
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
  // Chunks are the kAttnChunk-aligned runs of positions (a partition holds whole chunks);
  // those before every query's window are skipped (they would add nothing).
  int64_t start = t.k0;
  if (min_first > start) start = std::max(t.k0, min_first / kAttnChunk * kAttnChunk);
  constexpr int G = V::kAttnGroup;
  for (int64_t pos = start; pos < end;) {
    const int64_t cend = std::min(end, (pos / kAttnChunk + 1) * kAttnChunk);
    const ChunkF32 c = WidenChunk<V, E, NV>(t, pos, static_cast<int>(cend - pos), kw, vw, ksw, vsw);
    for (int i0 = 0; i0 < t.nq; i0 += G) {
      switch (t.nq - i0 < G ? t.nq - i0 : G) {
        case 1: Chunk<V, NV, 1>(t, i0, qs + i0 * d, pos, c); break;
        case 2: Chunk<V, NV, (G >= 2 ? 2 : 1)>(t, i0, qs + i0 * d, pos, c); break;
        case 3: Chunk<V, NV, (G >= 3 ? 3 : 1)>(t, i0, qs + i0 * d, pos, c); break;
        default: Chunk<V, NV, G>(t, i0, qs + i0 * d, pos, c); break;
      }
    }
    pos = cend;
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
