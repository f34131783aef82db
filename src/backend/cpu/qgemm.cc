// Packing, the plain reference kernels and the dispatch for qgemm.h.
#include "backend/cpu/qgemm.h"
#include "backend/cpu/quantize_acts.h"

#include "util/cpu_features.h"
#include "util/mmap.h"
#include "util/thread_pool.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

namespace inferd::cpu {
namespace {

uint16_t LoadHalf(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return h;
}

// GGML block layouts: byte offsets of d, m and the quant bytes, and the block size.
struct GgmlBlock {
  size_t bytes, d, m, qs, nqs;
};
GgmlBlock BlockOf(PackedType t) {
  switch (t) {
    case PackedType::kQ4_0: return {18, 0, 0, 2, 16};
    case PackedType::kQ4_1: return {20, 0, 2, 4, 16};
    case PackedType::kQ8_0: return {34, 0, 0, 2, 32};
    default: return {};
  }
}

float AbsMax32(const float* x) {
  float amax = 0.0f;
  for (int64_t i = 0; i < kQBlock; ++i) amax = std::max(amax, std::fabs(x[i]));
  return amax;
}

// q of a 32-block at inverse scale id; returns their sum.
int32_t QuantizeBlock32(const float* x, float id, int8_t* q) {
  int32_t sum = 0;
  for (int i = 0; i < kQBlock; ++i) {
    const int v = static_cast<int>(std::nearbyint(x[i] * id));
    q[i] = static_cast<int8_t>(v);
    sum += v;
  }
  return sum;
}

void QuantizeGeneric(const float* x, int64_t ldx, int64_t nt, int64_t k, int64_t block, int8_t* q, float* d,
                     int32_t* s, int32_t* e) {
  QuantizeActRows(x, ldx, nt, k, block, q, d, s, e, AbsMax32, QuantizeBlock32);
}

// The definition in qgemm.h, one output at a time.
void GemmGeneric(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt,
                 float* y, int64_t ldy) {
  if (IsUnitType(w.type)) return GemmUnitGeneric(w, g0, ng, a, t0, nt, y, ldy);
  if (IsFloatType(w.type)) return GemmFloatGeneric(w, g0, ng, a, t0, nt, y, ldy);
  const bool q8 = w.type == PackedType::kQ8_0;
  const int chunks = static_cast<int>(w.qs_bytes / 64);
  for (int64_t gi = 0; gi < ng; ++gi) {
    const uint8_t* grp = w.group(g0 + gi);
    for (int64_t t = 0; t < nt; ++t) {
      const int8_t* aq = a.q + (t0 + t) * a.k;
      const float* ad = a.d + (t0 + t) * a.nb;
      const int32_t* aux = a.aux + (t0 + t) * a.nb;
      for (int l = 0; l < kGroupRows; ++l) {
        float acc = 0.0f;
        for (int64_t b = 0; b < w.nb; ++b) {
          const uint8_t* qs = grp + w.qs_offset(b);
          const int8_t* xq = aq + b * kQBlock;
          int32_t isum = 0;
          for (int c = 0; c < chunks; ++c) {
            for (int j = 0; j < 4; ++j) {
              const uint8_t u = qs[c * 64 + l * 4 + j];
              if (q8) {
                isum += static_cast<int32_t>(u) * xq[4 * c + j];
              } else {
                isum += static_cast<int32_t>(u & 0x0F) * xq[4 * c + j];
                isum += static_cast<int32_t>(u >> 4) * xq[16 + 4 * c + j];
              }
            }
          }
          const float dw = Fp16ToFp32(LoadHalf(grp + w.d_offset(b) + 2 * l));
          if (w.type == PackedType::kQ4_1) {
            float dsa;
            std::memcpy(&dsa, &aux[b], 4);
            acc = std::fma(dw * ad[b], static_cast<float>(isum), acc);
            acc = std::fma(Fp16ToFp32(LoadHalf(grp + w.m_offset(b) + 2 * l)), dsa, acc);
          } else {
            acc = std::fma(dw * ad[b], static_cast<float>(isum - aux[b]), acc);
          }
        }
        y[t * ldy + gi * kGroupRows + l] = acc;
      }
    }
  }
}

}  // namespace

namespace {

bool PackedTypeOf(GgmlType t, PackedType* out) {
  switch (t) {
    case GgmlType::kQ4_0: *out = PackedType::kQ4_0; return true;
    case GgmlType::kQ4_1: *out = PackedType::kQ4_1; return true;
    case GgmlType::kQ8_0: *out = PackedType::kQ8_0; return true;
    case GgmlType::kQ5_0: *out = PackedType::kQ5_0; return true;
    case GgmlType::kQ5_1: *out = PackedType::kQ5_1; return true;
    case GgmlType::kIQ4_NL: *out = PackedType::kIQ4_NL; return true;
    case GgmlType::kQ2_K: *out = PackedType::kQ2_K; return true;
    case GgmlType::kQ3_K: *out = PackedType::kQ3_K; return true;
    case GgmlType::kQ4_K: *out = PackedType::kQ4_K; return true;
    case GgmlType::kQ5_K: *out = PackedType::kQ5_K; return true;
    case GgmlType::kQ6_K: *out = PackedType::kQ6_K; return true;
    case GgmlType::kIQ4_XS: *out = PackedType::kIQ4_XS; return true;
    case GgmlType::kI4Z128: *out = PackedType::kI4Z128; return true;
    case GgmlType::kF32: *out = PackedType::kF32; return true;
    case GgmlType::kF16: *out = PackedType::kF16; return true;
    case GgmlType::kBF16: *out = PackedType::kBF16; return true;
    default: return false;
  }
}

// p's storage: `bytes`, 64-byte aligned, zeroed where `zero`; from 8 MiB up on 2 MiB
// boundaries and advised as huge pages (AdviseHugePages): the kernels stream whole matrices.
// (The last huge page's unused part, under 2 MiB, is at most a quarter more.)
void AllocatePacked(PackedMatrix* p, size_t bytes, bool zero) {
  constexpr size_t kHuge = size_t{2} << 20;
  const size_t align = bytes >= 4 * kHuge ? kHuge : 64;
  const size_t n = (bytes + align - 1) / align * align;
  void* mem = std::aligned_alloc(align, n);
  if (mem == nullptr) std::abort();  // as operator new would throw: out of memory
  if (align == kHuge) AdviseHugePages(mem, n);  // before the first touch
  if (zero) std::memset(mem, 0, n);
  p->owner = std::unique_ptr<uint8_t, void (*)(void*)>(static_cast<uint8_t*>(mem), std::free);
  p->data = p->owner.get();
}

// Float panels (qgemm.h): element (l, k) of group g at k * 16 + l, copied in the file's type;
// BF16 by column pairs, at (k / 2) * 32 + 2 l + k % 2.
void PackFloatPanels(const Matrix& w, PackedMatrix* p) {
  const size_t es = FloatElemBytes(p->type);
  const bool pairs = p->type == PackedType::kBF16;
  const int64_t kp = pairs ? Bf16PairCols(w.cols) : w.cols;
  p->group_bytes = (static_cast<size_t>(kp) * kGroupRows * es + 63) / 64 * 64;
  // zeroed: rows past `rows` (and an odd last column's pair) stay zero
  AllocatePacked(p, static_cast<size_t>(p->num_groups) * p->group_bytes, true);
  ThreadPool::Global().ParallelFor(p->num_groups, 1, [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g) {
      uint8_t* grp = p->data + static_cast<size_t>(g) * p->group_bytes;
      for (int l = 0; l < kGroupRows && g * kGroupRows + l < w.rows; ++l) {
        const uint8_t* row = w.row(g * kGroupRows + l);
        if (es == 4) {
          for (int64_t k = 0; k < w.cols; ++k) std::memcpy(grp + (k * kGroupRows + l) * 4, row + k * 4, 4);
        } else if (pairs) {
          for (int64_t k = 0; k < w.cols; ++k) {
            std::memcpy(grp + ((k >> 1) * 2 * kGroupRows + 2 * l + (k & 1)) * 2, row + k * 2, 2);
          }
        } else {
          for (int64_t k = 0; k < w.cols; ++k) std::memcpy(grp + (k * kGroupRows + l) * 2, row + k * 2, 2);
        }
      }
    }
  });
}

}  // namespace

bool CanPack(const Matrix& w) {
  PackedType t;
  if (!PackedTypeOf(w.type, &t)) return false;
  if (IsFloatType(t)) return w.cols > 0 && w.rows > 0 && w.data != nullptr;
  return w.cols % GgmlBlockSize(w.type) == 0 && w.cols % kQBlock == 0 && w.rows > 0 && w.data != nullptr;
}

std::unique_ptr<PackedMatrix> Pack(const Matrix& w) {
  auto p = std::make_unique<PackedMatrix>();
  PackedTypeOf(w.type, &p->type);
  p->rows = w.rows;
  p->cols = w.cols;
  p->nb = w.cols / kQBlock;
  p->num_groups = (w.rows + kGroupRows - 1) / kGroupRows;
  if (IsFloatType(p->type)) {
    PackFloatPanels(w, p.get());
    return p;
  }
  if (IsUnitType(p->type)) {
    const UnitLayout L = UnitLayoutOf(p->type);
    p->num_units = (p->nb + L.blocks - 1) / L.blocks;
    p->group_bytes = static_cast<size_t>(p->num_units) * static_cast<size_t>(L.unit_bytes);
    AllocatePacked(p.get(), static_cast<size_t>(p->num_groups) * p->group_bytes, true);
    PackUnits(w, p.get());
    return p;
  }
  const GgmlBlock blk = BlockOf(p->type);
  p->qs_bytes = blk.nqs * kGroupRows;
  p->pair_bytes = 2 * (p->qs_bytes + 32 + (p->type == PackedType::kQ4_1 ? 32 : 0));
  p->group_bytes = static_cast<size_t>((p->nb + 1) / 2) * p->pair_bytes;  // 64-byte multiple
  AllocatePacked(p.get(), static_cast<size_t>(p->num_groups) * p->group_bytes, true);
  const int chunks = static_cast<int>(p->qs_bytes / 64);
  for (int64_t g = 0; g < p->num_groups; ++g) {
    uint8_t* grp = p->data + static_cast<size_t>(g) * p->group_bytes;
    for (int l = 0; l < kGroupRows; ++l) {
      const int64_t r = g * kGroupRows + l;
      if (r >= w.rows) break;  // padding rows stay zero: d = 0, so they contribute 0
      const uint8_t* row = w.row(r);
      for (int64_t b = 0; b < p->nb; ++b) {
        const uint8_t* src = row + b * blk.bytes;
        uint8_t* qs = grp + p->qs_offset(b);
        for (int c = 0; c < chunks; ++c) {
          for (int j = 0; j < 4; ++j) {
            uint8_t u = src[blk.qs + 4 * c + j];
            if (p->type == PackedType::kQ8_0) u ^= 0x80;  // int8 q -> u = q + 128
            qs[c * 64 + l * 4 + j] = u;
          }
        }
        std::memcpy(grp + p->d_offset(b) + 2 * l, src + blk.d, 2);
        if (p->type == PackedType::kQ4_1) std::memcpy(grp + p->m_offset(b) + 2 * l, src + blk.m, 2);
      }
    }
  }
  return p;
}

size_t PackedBytes(const PackedMatrix& p) {
  if (p.parts.empty()) return static_cast<size_t>(p.num_groups) * p.group_bytes;
  size_t n = 0;
  for (const auto& part : p.parts) n += PackedBytes(*part);
  return n;
}

std::unique_ptr<PackedMatrix> Concat(const std::vector<const PackedMatrix*>& parts) {
  if (parts.empty()) return nullptr;
  const PackedMatrix& first = *parts[0];
  int64_t rows = 0, groups = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const PackedMatrix& m = *parts[i];
    if (m.type != first.type || m.cols != first.cols) return nullptr;
    if (i + 1 < parts.size() && m.rows % kGroupRows != 0) return nullptr;
    rows += m.rows;
    groups += m.num_groups;
  }
  auto p = std::make_unique<PackedMatrix>();
  p->type = first.type;
  p->rows = rows;
  p->cols = first.cols;
  p->nb = first.nb;
  p->num_groups = groups;
  p->qs_bytes = first.qs_bytes;
  p->pair_bytes = first.pair_bytes;
  p->group_bytes = first.group_bytes;
  p->num_units = first.num_units;
  AllocatePacked(p.get(), static_cast<size_t>(groups) * p->group_bytes, false);  // the parts fill it
  size_t off = 0;
  for (const PackedMatrix* m : parts) {
    const size_t n = static_cast<size_t>(m->num_groups) * m->group_bytes;
    std::memcpy(p->data + off, m->data, n);
    off += n;
  }
  return p;
}

std::shared_ptr<const PackedMatrix> Compose(std::vector<std::shared_ptr<const PackedMatrix>> parts) {
  if (parts.empty()) return nullptr;
  auto p = std::make_shared<PackedMatrix>();
  p->type = parts[0]->type;
  p->cols = parts[0]->cols;
  p->nb = parts[0]->nb;
  for (const auto& m : parts) {
    if (m == nullptr || m->cols != p->cols || !m->parts.empty()) return nullptr;
    p->rows += m->rows;
    p->num_groups += m->num_groups;
  }
  p->parts = std::move(parts);
  return p;
}

void ComputeAux(PackedType type, const float* d, const int32_t* s, int64_t n, int32_t* aux) {
  switch (type) {
    case PackedType::kQ4_0:
      for (int64_t i = 0; i < n; ++i) aux[i] = 8 * s[i];
      break;
    case PackedType::kQ8_0:
      for (int64_t i = 0; i < n; ++i) aux[i] = 128 * s[i];
      break;
    case PackedType::kQ4_1:
    case PackedType::kQ5_1:
      for (int64_t i = 0; i < n; ++i) {
        const float v = d[i] * static_cast<float>(s[i]);
        std::memcpy(&aux[i], &v, 4);
      }
      break;
    default: break;  // the other unit types use QuantActs::s16
  }
}

float CoarseScales(const float* amax8, int32_t* e8) {
  float amax_u = 0.0f;
  for (int b = 0; b < 8; ++b) amax_u = std::max(amax_u, amax8[b]);
  for (int b = 0; b < 8; ++b) {  // the smallest e with amax_b <= amax_u * 2^(e - 4) (exact products)
    int e = kMaxActShift;
    while (e > 0 && amax8[b] <= amax_u * (1.0f / static_cast<float>(1 << (kMaxActShift - e + 1)))) --e;
    e8[b] = e;
  }
  return amax_u / 127.0f / static_cast<float>(1 << kMaxActShift);
}

const QKernels* Avx2QKernelsImpl();
const QKernels* Avx512VnniQKernelsImpl();

const QKernels* Avx2QKernels() { return DetectedCpuLevel() >= CpuLevel::kAvx2 ? Avx2QKernelsImpl() : nullptr; }

const QKernels* Avx512VnniQKernels() {
  return DetectedCpuLevel() >= CpuLevel::kAvx512Vnni ? Avx512VnniQKernelsImpl() : nullptr;
}

const QKernels& GenericQKernels() {
  static const QKernels k{"generic", QuantizeGeneric, GemmGeneric, RoundBf16Rows, false};
  return k;
}

const QKernels& QuantKernels() {
  static const QKernels* table = [] {
    const CpuLevel level = UsableCpuLevel();  // INFERD_CPU_KERNELS caps it
    if (level >= CpuLevel::kAvx512Vnni) return Avx512VnniQKernels();
    if (level >= CpuLevel::kAvx2) return Avx2QKernels();
    return &GenericQKernels();
  }();
  return *table;
}

}  // namespace inferd::cpu
