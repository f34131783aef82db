// The CPU kernels of cpu_ops.h.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cpu/attention.h"
#include "backend/cpu/elementwise.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/qgemm.h"
#include "backend/cpu/cpu_ops.h"
#include "util/cpu_features.h"
#include "util/thread_pool.h"

namespace inferd::cpu {

const KernelTable* Avx2KernelsImpl();
const KernelTable* Avx512KernelsImpl();

const KernelTable* Avx2Kernels() { return DetectedCpuLevel() >= CpuLevel::kAvx2 ? Avx2KernelsImpl() : nullptr; }

const KernelTable* Avx512Kernels() {
  return DetectedCpuLevel() >= CpuLevel::kAvx512 ? Avx512KernelsImpl() : nullptr;
}

const KernelTable& Kernels() {
  static const KernelTable* table = [] {
    const CpuLevel level = UsableCpuLevel();  // INFERD_CPU_KERNELS caps it
    if (level >= CpuLevel::kAvx512) return Avx512Kernels();
    if (level >= CpuLevel::kAvx2) return Avx2Kernels();
    return &GenericKernels();
  }();
  return *table;
}

namespace {

constexpr int64_t kRowBlock = 16;  // weight rows dequantized together and reused across tokens
constexpr int64_t kPrefetchRows = 8;
constexpr int64_t kMaxFusedTokens = cpu::kMaxQuantTokens;  // one register pass; 8 tokens (two passes) measured slower

int64_t RoundUpLanes(int64_t n) { return (n + cpu::kLanes - 1) / cpu::kLanes * cpu::kLanes; }

// Activations quantized in one block size (cpu::QuantActs); grown, never shrunk.
struct ActSet {
  std::vector<int8_t> q;
  std::vector<float> d;
  std::vector<int32_t> s, e, s16;  // s, e, s16 per 32-block
  void Reserve(int64_t T, int64_t k, int64_t block) {
    if (static_cast<int64_t>(q.size()) < T * k) q.resize(static_cast<size_t>(T * k));
    if (static_cast<int64_t>(d.size()) < T * k / block) d.resize(static_cast<size_t>(T * k / block));
    const auto nb = static_cast<size_t>(T * k / cpu::kQBlock);
    if (s.size() < nb) {
      s.resize(nb);
      s16.resize(nb);
      if (block != cpu::kQBlock) e.resize(nb);  // the shifts of two-level scales
    }
  }
  // Rows [t0, t1) of x; s16 too for the unit types.
  void Quantize(const cpu::QKernels& kern, const float* x, int64_t t0, int64_t t1, int64_t k, int64_t block,
                bool sums16) {
    const int64_t nd = k / block, nb = k / cpu::kQBlock;
    int32_t* ep = block == cpu::kQBlock ? nullptr : e.data() + t0 * nb;
    kern.quantize(x + t0 * k, k, t1 - t0, k, block, q.data() + t0 * k, d.data() + t0 * nd, s.data() + t0 * nb, ep);
    if (sums16) cpu::ComputeSums16(q.data() + t0 * k, t1 - t0, k, s16.data() + t0 * nb, ep);
  }
};

// Quantized activations of one MatMul call (per 32, and per 256 for cpu::CoarseActs types);
// grown, never shrunk (no allocation once warm).
struct ActBuffers {
  ActSet fine, coarse;
  std::vector<uint16_t> xb;  // the activations as bf16 (BF16 panels: pairs, or widened in xr)
  std::vector<float> xr;
  std::vector<int32_t> aux;
  std::vector<float> tail;  // outputs of a partial last row group
};

constexpr int64_t kTokenChunk = 128;        // token rows whose activations stay in L2 together
constexpr int64_t kParallelQuantRows = 32;  // fewer rows are quantized on the calling thread

// y segments: consecutive row ranges of p, each written to its own [T, rows] array. Every
// segment but the last has rows % 16 == 0 (it ends on a group boundary). A composite p
// (cpu::Compose) has one segment per part, each part in its own type.
void PackedMatMul(const cpu::PackedMatrix& p, const float* x, int64_t num_tokens, std::span<const MatMulOut> outs) {
  const auto& kern = cpu::QuantKernels();
  thread_local ActBuffers tls;
  ActBuffers& buf = tls;  // the workers below must use the calling thread's buffers
  const bool composite = !p.parts.empty();
  const size_t nparts = composite ? p.parts.size() : 1;
  auto part = [&](size_t i) -> const cpu::PackedMatrix& { return composite ? *p.parts[i] : p; };
  if (composite && outs.size() != nparts) std::abort();  // callers pass one output per part
  const int64_t k = p.cols, nb = p.nb, T = num_tokens;
  // Which activations the parts take: per 32 (unit types need s16 too), per 256; bf16
  // (BF16 panels); F32 / F16 panels take x as it is.
  bool fine = false, fine_unit = false, coarse = false, bf16 = false;
  for (size_t i = 0; i < nparts; ++i) {
    const cpu::PackedType t = part(i).type;
    bf16 = bf16 || t == cpu::PackedType::kBF16;
    if (cpu::IsFloatType(t)) continue;
    coarse = coarse || cpu::CoarseActs(t);
    fine = fine || !cpu::CoarseActs(t);
    fine_unit = fine_unit || (!cpu::CoarseActs(t) && cpu::IsUnitType(t));
  }
  const int64_t kp = cpu::Bf16PairCols(k);
  const auto bf16_rows = static_cast<size_t>(T * kp);
  if (bf16 && kern.bf16_pairs && buf.xb.size() < bf16_rows) buf.xb.resize(bf16_rows);
  if (bf16 && !kern.bf16_pairs && buf.xr.size() < bf16_rows) buf.xr.resize(bf16_rows);
  const bool quantized = fine || coarse || bf16;
  if (fine) {
    buf.fine.Reserve(T, k, cpu::kQBlock);
    if (buf.aux.size() < nparts * T * nb) buf.aux.resize(nparts * T * nb);
  }
  if (coarse) buf.coarse.Reserve(T, k, cpu::kCoarseBlock);
  auto quantize = [&](int64_t t0, int64_t t1) {
    if (bf16) {
      kern.round_bf16(x + t0 * k, k, t1 - t0, k, kern.bf16_pairs ? buf.xb.data() + t0 * kp : nullptr,
                      kern.bf16_pairs ? nullptr : buf.xr.data() + t0 * kp);
    }
    if (coarse) buf.coarse.Quantize(kern, x, t0, t1, k, cpu::kCoarseBlock, true);
    if (!fine) return;
    buf.fine.Quantize(kern, x, t0, t1, k, cpu::kQBlock, fine_unit);
    for (size_t i = 0; i < nparts; ++i) {  // aux per part: the type's correction term
      cpu::ComputeAux(part(i).type, buf.fine.d.data() + t0 * nb, buf.fine.s.data() + t0 * nb, (t1 - t0) * nb,
                      buf.aux.data() + i * T * nb + t0 * nb);
    }
  };
  if (quantized) {
    if (T >= kParallelQuantRows) {
      ThreadPool::Global().ParallelFor(T, 1, quantize);
    } else {
      quantize(0, T);
    }
  }
  auto acts = [&](size_t i) {
    if (cpu::CoarseActs(part(i).type)) {
      const ActSet& c = buf.coarse;
      return cpu::QuantActs{c.q.data(), c.d.data(), nullptr, k, nb, c.s16.data(), x, c.e.data()};
    }
    if (part(i).type == cpu::PackedType::kBF16) {
      cpu::QuantActs b;
      b.k = k;
      b.xb = buf.xb.data();
      b.xr = buf.xr.data();
      return b;
    }
    const ActSet& f = buf.fine;
    return cpu::QuantActs{f.q.data(), f.d.data(), buf.aux.data() + i * T * nb, k, nb, f.s16.data(), x};
  };
  if (static_cast<int64_t>(buf.tail.size()) < T * cpu::kGroupRows) buf.tail.resize(static_cast<size_t>(T * cpu::kGroupRows));
  float* tail = buf.tail.data();
  // Chunks of whole tiles: 4 groups side by side for one token (float panels), 2 for more
  // tokens (float panels, Q4_0 / Q4_1 prefill); an odd chunk would leave a 1-group tile.
  const int64_t grain = T == 1 ? 4 : 2;
  ThreadPool::Global().ParallelFor(p.num_groups, grain, [&](int64_t g0, int64_t g1) {
    int64_t seg_begin = 0;  // first group of the segment
    for (size_t si = 0; si < outs.size(); ++si) {
      const MatMulOut& out = outs[si];
      // The matrix this segment's groups index, and the first group of the segment in it.
      const cpu::PackedMatrix& m = part(composite ? si : 0);
      const cpu::QuantActs a = acts(composite ? si : 0);
      const int64_t base = composite ? seg_begin : 0;
      const int64_t n = out.rows, seg_groups = (n + cpu::kGroupRows - 1) / cpu::kGroupRows;
      const int64_t lo = std::max(g0, seg_begin), hi = std::min(g1, seg_begin + seg_groups);
      const int64_t full_end = seg_begin + n / cpu::kGroupRows;
      for (int64_t t0 = 0; lo < hi && t0 < T; t0 += kTokenChunk) {
        const int64_t nt = std::min(kTokenChunk, T - t0);
        const int64_t hi_full = std::min(hi, full_end);
        if (hi_full > lo) {
          kern.gemm(m, lo - base, hi_full - lo, a, t0, nt, out.y + t0 * n + (lo - seg_begin) * cpu::kGroupRows, n);
        }
        if (hi > full_end) {  // a partial last group goes through a 16-wide buffer
          const int64_t rows = n - (full_end - seg_begin) * cpu::kGroupRows;
          kern.gemm(m, full_end - base, 1, a, t0, nt, tail, cpu::kGroupRows);
          for (int64_t t = 0; t < nt; ++t)
            std::memcpy(out.y + (t0 + t) * n + (full_end - seg_begin) * cpu::kGroupRows, tail + t * cpu::kGroupRows,
                        sizeof(float) * rows);
        }
      }
      seg_begin += seg_groups;
    }
  });
}

}  // namespace

std::shared_ptr<const void> PackMatrix(const Matrix& w) {
  if (!cpu::CanPack(w)) return nullptr;
  return std::shared_ptr<const cpu::PackedMatrix>(cpu::Pack(w));
}

void MatMulSegments(const Matrix& w, const float* x, int64_t num_tokens, std::span<const MatMulOut> outs) {
  if (w.packed) {
    PackedMatMul(*static_cast<const cpu::PackedMatrix*>(w.packed), x, num_tokens, outs);
    return;
  }
  // Unpacked: one matmul per segment over that segment's rows.
  int64_t off = 0;
  for (const MatMulOut& o : outs) {
    Matrix part = w;
    part.rows = o.rows;
    part.data = w.row(off);
    MatMul(part, x, num_tokens, o.y);
    off += o.rows;
  }
}

void MatMul(const Matrix& w, const float* x, int64_t num_tokens, float* y) {
  if (w.packed) {
    const MatMulOut out{y, w.rows};
    PackedMatMul(*static_cast<const cpu::PackedMatrix*>(w.packed), x, num_tokens, {&out, 1});
    return;
  }
  const auto& kern = cpu::Kernels();
  const int64_t k = w.cols, kp = RoundUpLanes(k), n = w.rows;
  const int token_tile = kern.token_tile, row_tile = kern.row_tile;
  // The tile kernels read kp columns; pad x with zeros when k is not a multiple of kLanes.
  std::vector<float> xpad;
  const float* xs = x;
  if (kp != k) {
    xpad.assign(static_cast<size_t>(num_tokens * kp), 0.0f);
    for (int64_t t = 0; t < num_tokens; ++t) std::memcpy(&xpad[t * kp], x + t * k, sizeof(float) * k);
    xs = xpad.data();
  }
  // Few tokens (decode of small batches): dequantize in registers once per row for up to
  // kMaxQuantTokens tokens, no row buffer. Same lanes and order as the tiled path, so the
  // result does not depend on the batch. Larger batches amortize a dequantized row buffer.
  float probe = 0.0f;
  if (num_tokens <= kMaxFusedTokens && kp == k && kern.dot_quant_row && k % 32 == 0 &&
      kern.dot_quant_row(w.type, w.row(0), w.row_bytes, 1, xs, kp, 1, k, &probe, 1)) {
    ThreadPool::Global().ParallelFor(n, kRowBlock, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; r += cpu::kMaxQuantRows) {  // (the kernels prefetch: prefetch.h)
        const int nr = static_cast<int>(std::min<int64_t>(cpu::kMaxQuantRows, end - r));
        for (int64_t t0 = 0; t0 < num_tokens; t0 += cpu::kMaxQuantTokens) {
          const int nt = static_cast<int>(std::min<int64_t>(cpu::kMaxQuantTokens, num_tokens - t0));
          kern.dot_quant_row(w.type, w.row(r), w.row_bytes, nr, xs + t0 * kp, kp, nt, k, &y[t0 * n + r], n);
        }
      }
    });
    return;
  }
  ThreadPool::Global().ParallelFor(n, kRowBlock, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> wbuf;
    wbuf.resize(static_cast<size_t>(kRowBlock * kp));
    for (int64_t r0 = begin; r0 < end; r0 += kRowBlock) {
      const int64_t nr = std::min(kRowBlock, end - r0);
      const int64_t row_bytes = static_cast<int64_t>(w.row_bytes);
      for (int64_t i = 0; i < nr; ++i) {
        float* dst = &wbuf[i * kp];
        // Software prefetch a few rows ahead: the hardware prefetcher stops at page
        // boundaries, and weight rows stream from DRAM once per step.
        if (r0 + i + kPrefetchRows < end) {
          const char* ahead = reinterpret_cast<const char*>(w.row(r0 + i + kPrefetchRows));
          for (int64_t off = 0; off < row_bytes; off += 64) __builtin_prefetch(ahead + off, 0, 0);
        }
        kern.dequant_row(w.type, w.row(r0 + i), dst, k);
        std::fill(dst + k, dst + kp, 0.0f);
      }
      for (int64_t t0 = 0; t0 < num_tokens; t0 += token_tile) {
        const int nt = static_cast<int>(std::min<int64_t>(token_tile, num_tokens - t0));
        for (int64_t i = 0; i < nr; i += row_tile) {
          const int rt = static_cast<int>(std::min<int64_t>(row_tile, nr - i));
          kern.dot_tile(xs + t0 * kp, kp, nt, &wbuf[i * kp], kp, rt, kp, y + t0 * n + r0 + i, n);
        }
      }
    }
  });
}

void RmsNorm(const float* x, const float* weight, int64_t num_tokens, int64_t d, float eps, float* y) {
  // Rows are independent (and x may be y): a prompt's rows split over the threads, a few
  // decode rows stay on the calling thread.
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 13) / std::max<int64_t>(d, 1));
  ThreadPool::Global().ParallelFor(num_tokens, grain, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const float* xr = x + t * d;
      // Sum of squares in double (each square exact) as eight interleaved chains, i mod 8,
      // added pairwise: one fixed order, so every machine and batch gets the same scale.
      double part[8] = {};
      int64_t i = 0;
      for (; i + 8 <= d; i += 8)
        for (int j = 0; j < 8; ++j) part[j] += static_cast<double>(xr[i + j]) * xr[i + j];
      for (; i < d; ++i) part[i % 8] += static_cast<double>(xr[i]) * xr[i];
      const double ss = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
      const float scale = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(d) + eps));
      float* yr = y + t * d;
      for (int64_t c = 0; c < d; ++c) yr[c] = (xr[c] * scale) * weight[c];
    }
  });
}

void SiluMul(const float* gate, const float* up, int64_t count, float* out) {
  const auto& kern = cpu::VectorKernels();
  constexpr int64_t kGrain = 1 << 14;  // elementwise: split only big batches
  ThreadPool::Global().ParallelFor(count, kGrain, [&](int64_t b, int64_t e) {
    kern.silu_mul(gate + b, up + b, e - b, out + b);
  });
}

void GeluTanhMul(const float* gate, const float* up, int64_t count, float* out) {
  const auto& kern = cpu::VectorKernels();
  constexpr int64_t kGrain = 1 << 14;
  ThreadPool::Global().ParallelFor(count, kGrain, [&](int64_t b, int64_t e) {
    kern.gelu_tanh_mul(gate + b, up + b, e - b, out + b);
  });
}

void Scale(float* x, int64_t count, float s) {
  for (int64_t i = 0; i < count; ++i) x[i] *= s;
}

void Softcap(float* x, int64_t count, float c) {
  for (int64_t i = 0; i < count; ++i) x[i] = c * std::tanh(x[i] / c);
}

void Embedding(const Matrix& emb, std::span<const int32_t> ids, float* out) {
  const auto& kern = cpu::Kernels();
  for (size_t t = 0; t < ids.size(); ++t) kern.dequant_row(emb.type, emb.row(ids[t]), out + t * emb.cols, emb.cols);
}

void AddBias(float* y, const float* b, int64_t num_tokens, int64_t n) {
  for (int64_t t = 0; t < num_tokens; ++t)
    for (int64_t i = 0; i < n; ++i) y[t * n + i] += b[i];
}

void Add(float* a, const float* b, int64_t count) {
  for (int64_t i = 0; i < count; ++i) a[i] += b[i];
}

void Rope(float* x, int64_t num_tokens, int64_t num_heads, int64_t head_dim, const float* cos_sin, bool neox) {
  const int64_t half = head_dim / 2;
  for (int64_t t = 0; t < num_tokens; ++t) {
    const float* cs = cos_sin + t * head_dim;  // [half, 2]
    for (int64_t h = 0; h < num_heads; ++h) {
      float* v = x + (t * num_heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const float c = cs[2 * i], s = cs[2 * i + 1];
        const int64_t i0 = neox ? i : 2 * i;
        const int64_t i1 = neox ? i + half : 2 * i + 1;
        const float a = v[i0], b = v[i1];
        v[i0] = a * c - b * s;
        v[i1] = a * s + b * c;
      }
    }
  }
}

void WriteKv(const KvLayerView& kv, std::span<const AttnSeq> seqs, const int32_t* positions,
             const float* k, const float* v) {
  const int64_t d = kv.head_dim, nkv = kv.num_kv_heads, bs = kv.block_size;
  // Every (sequence, row) writes its own slots: rows split over the threads (a decode step's
  // few rows stay on the calling thread).
  thread_local std::vector<std::pair<int32_t, int32_t>> tls_rows;  // (sequence, row within it)
  auto& rows = tls_rows;  // the calling thread's, also inside the workers' calls
  rows.clear();
  for (size_t si = 0; si < seqs.size(); ++si)
    for (int64_t i = 0; i < seqs[si].num_tokens; ++i) rows.emplace_back(static_cast<int32_t>(si), static_cast<int32_t>(i));
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 13) / std::max<int64_t>(nkv * d, 1));
  auto for_rows = [&](auto&& fn) {
    ThreadPool::Global().ParallelFor(static_cast<int64_t>(rows.size()), grain, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) fn(seqs[rows[r].first], rows[r].second);
    });
  };
  // fn(K row, V row, K slot, V slot, scale index) for every (row, kv head): the K row goes to
  // elements ko + dd * bs of the cache ([d][bs] per block and head), the V row to vo + dd;
  // sb indexes the (block, head, slot) scales of the code caches.
  auto for_heads = [&](auto&& fn) {
    for_rows([&](const AttnSeq& s, int64_t i) {
      const int64_t t = s.token_begin + i, pos = positions[t];
      const int64_t blk = s.block_table[pos / bs], off = pos % bs;
      for (int64_t g = 0; g < nkv; ++g) {
        const int64_t sb = (blk * nkv + g) * bs + off;
        fn(k + (t * nkv + g) * d, v + (t * nkv + g) * d, (blk * nkv + g) * d * bs + off, sb * d, sb);
      }
    });
  };
  if (IsKvCode(kv.elem)) {
    for_heads([&](const float* kr, const float* vr, int64_t ko, int64_t vo, int64_t sb) {
      kv.ks[sb] = QuantizeKvVector(kv.elem, kr, d, static_cast<uint8_t*>(kv.k) + ko, bs);
      kv.vs[sb] = QuantizeKvVector(kv.elem, vr, d, static_cast<uint8_t*>(kv.v) + vo, 1);
    });
  } else if (kv.elem == KvElem::kF16) {
    const auto to_fp16 = VectorKernels().to_fp16;
    for_heads([&](const float* kr, const float* vr, int64_t ko, int64_t vo, int64_t) {
      to_fp16(kr, d, static_cast<uint16_t*>(kv.k) + ko, bs);
      to_fp16(vr, d, static_cast<uint16_t*>(kv.v) + vo, 1);
    });
  } else {
    for_heads([&](const float* kr, const float* vr, int64_t ko, int64_t vo, int64_t) {
      float* kt = static_cast<float*>(kv.k) + ko;
      for (int64_t dd = 0; dd < d; ++dd) kt[dd * bs] = kr[dd];
      std::memcpy(static_cast<float*>(kv.v) + vo, vr, sizeof(float) * d);
    });
  }
}

namespace {

// One unit of attention work: `nt` consecutive rows of one sequence, query heads
// [h0, h0 + nh) (all of one KV head), one split-K partition.
struct AttnItem {
  int32_t seq, nt, h0, nh, part;
  int64_t t0;
};

struct AttnBuffers {
  std::vector<AttnItem> items;
  std::vector<int64_t> part_base;  // [T + 1]: first partial slot / num_heads of each row
  std::vector<float> m, l, o;      // partials: slot (part_base[t] * H + h * nparts(t) + p)
};

}  // namespace

void PagedAttention(const KvLayerView& kv, std::span<const AttnSeq> seqs, const int32_t* positions,
                    const float* q, int64_t num_heads, const AttnOptions& opt, float* out) {
  const int64_t sliding_window = opt.sliding_window;
  const auto& kern = cpu::AttentionKernels();
  const int64_t d = kv.head_dim, nkv = kv.num_kv_heads, group = num_heads / nkv;
  const int64_t P = cpu::kAttnPartition;
  thread_local AttnBuffers tls;
  AttnBuffers& buf = tls;  // workers use the calling thread's buffers
  int64_t total = 0;
  for (const AttnSeq& s : seqs) total = std::max(total, s.token_begin + s.num_tokens);
  // Row t sees keys [first, pos]: partitions first_part(t) .. last_part(t). Partitions wholly
  // before a sliding window get no work item (they would add nothing).
  auto first_key = [&](int64_t t) {
    return sliding_window > 0 ? std::max<int64_t>(0, positions[t] + 1 - sliding_window) : int64_t{0};
  };
  auto first_part = [&](int64_t t) { return first_key(t) / P; };
  auto last_part = [&](int64_t t) { return static_cast<int64_t>(positions[t]) / P; };
  buf.part_base.assign(static_cast<size_t>(total + 1), 0);
  for (const AttnSeq& s : seqs)
    for (int64_t i = s.token_begin; i < s.token_begin + s.num_tokens; ++i) buf.part_base[i] = last_part(i) - first_part(i) + 1;
  int64_t acc = 0;
  for (int64_t t = 0; t <= total; ++t) {
    const int64_t n = t < total ? buf.part_base[t] : 0;
    buf.part_base[t] = acc;
    acc += n;
  }
  // Tiles: as many rows as fit kAttnMaxQueries query heads. The grouping only decides what
  // shares K/V loads, never the arithmetic of a row, so it may depend on the batch: few
  // tiles (small decode batches) are split per query head to keep every thread busy.
  const int threads = ThreadPool::Global().num_threads();
  int64_t tiles = 0;
  const int64_t rows_per_tile = std::max<int64_t>(1, cpu::kAttnMaxQueries / group);
  for (const AttnSeq& s : seqs) tiles += (s.num_tokens + rows_per_tile - 1) / rows_per_tile;
  const int64_t heads_per_item = tiles * nkv < 4 * threads ? 1 : group;
  // Rows are in position order within a sequence, so a tile's partitions run from its first
  // row's first to its last row's last. When every tile has one partition each item
  // normalises its own rows; else the partials go to slots and a second pass merges them.
  bool split_k = false;
  buf.items.clear();
  for (size_t si = 0; si < seqs.size(); ++si) {
    const AttnSeq& s = seqs[si];
    for (int64_t t0 = 0; t0 < s.num_tokens; t0 += rows_per_tile) {
      const int64_t nt = std::min(rows_per_tile, s.num_tokens - t0);
      const int64_t p0 = first_part(s.token_begin + t0), p1 = last_part(s.token_begin + t0 + nt - 1);
      split_k = split_k || p1 > p0;
      for (int64_t h0 = 0; h0 < num_heads; h0 += heads_per_item)
        for (int64_t p = p0; p <= p1; ++p)
          buf.items.push_back({static_cast<int32_t>(si), static_cast<int32_t>(nt), static_cast<int32_t>(h0),
                               static_cast<int32_t>(heads_per_item), static_cast<int32_t>(p), s.token_begin + t0});
    }
  }
  if (split_k) {
    const int64_t slots = acc * num_heads;
    if (static_cast<int64_t>(buf.m.size()) < slots) {
      buf.m.resize(static_cast<size_t>(slots));
      buf.l.resize(static_cast<size_t>(slots));
    }
    if (static_cast<int64_t>(buf.o.size()) < slots * d) buf.o.resize(static_cast<size_t>(slots * d));
  }
  ThreadPool::Global().ParallelFor(static_cast<int64_t>(buf.items.size()), 1, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> m, l, o;
    const int64_t nq_max = cpu::kAttnMaxQueries;
    m.resize(nq_max);
    l.resize(nq_max);
    o.resize(static_cast<size_t>(nq_max * d));
    for (int64_t it = begin; it < end; ++it) {
      const AttnItem& item = buf.items[it];
      cpu::AttnTile tile;
      tile.k = kv.k;
      tile.v = kv.v;
      tile.elem = kv.elem;
      tile.ks = kv.ks;
      tile.vs = kv.vs;
      tile.block_size = kv.block_size;
      tile.num_kv_heads = nkv;
      tile.head_dim = d;
      tile.block_table = seqs[item.seq].block_table;
      tile.kv_head = item.h0 / group;
      tile.scale = opt.scale;
      tile.softcap = opt.softcap;
      tile.k0 = item.part * P;
      tile.k1 = tile.k0 + P;
      tile.m = m.data();
      tile.l = l.data();
      tile.o = o.data();
      for (int32_t r = 0; r < item.nt; ++r) {
        const int64_t t = item.t0 + r;
        for (int64_t h = item.h0; h < item.h0 + item.nh; ++h) {
          tile.q[tile.nq] = q + (t * num_heads + h) * d;
          tile.limit[tile.nq] = positions[t] + 1;
          tile.first[tile.nq] = first_key(t);
          tile.alibi[tile.nq] = opt.alibi != nullptr ? opt.alibi[h] : 0.0f;
          ++tile.nq;
        }
      }
      kern.tile(tile);
      for (int i = 0; i < tile.nq; ++i) {
        const int64_t t = item.t0 + i / item.nh, h = item.h0 + i % item.nh;
        if (!split_k) {  // the merge of one partial: out = o / l
          kern.merge(1, &m[i], &l[i], &o[i * d], d, d, out + (t * num_heads + h) * d);
          continue;
        }
        const int64_t np = buf.part_base[t + 1] - buf.part_base[t];
        const int64_t p = item.part - first_part(t);
        if (p < 0 || p >= np) continue;  // this row sees no key of the partition
        const int64_t slot = buf.part_base[t] * num_heads + h * np + p;
        buf.m[slot] = m[i];
        buf.l[slot] = l[i];
        std::memcpy(&buf.o[slot * d], &o[i * d], sizeof(float) * d);
      }
    }
  });
  if (!split_k) return;
  ThreadPool::Global().ParallelFor(total * num_heads, 4, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t t = r / num_heads, h = r % num_heads;
      const int64_t np = buf.part_base[t + 1] - buf.part_base[t];
      if (np == 0) continue;  // not a row of any sequence
      const int64_t slot = buf.part_base[t] * num_heads + h * np;
      kern.merge(static_cast<int>(np), &buf.m[slot], &buf.l[slot], &buf.o[slot * d], d, d, out + r * d);
    }
  });
}

}  // namespace inferd::cpu
