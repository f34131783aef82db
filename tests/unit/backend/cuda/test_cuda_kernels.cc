// Tests of the CUDA kernels (src/backend/cuda/kernels.h) against float64 host references,
// for every dtype, plus batch invariance (a row's bits do not depend on the batch). Host
// code only (g++): the launchers and cuda_runtime_api.h. Every test skips without a device.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "backend/cuda/kernels.h"
#include "cuda_test_util.h"
#include "format/ggml_types.h"

namespace inferd::cuda {
namespace {

using cuda_test::DeviceBuffer;
using cuda_test::HaveCuda;

constexpr DType kAllTypes[] = {DType::kF32, DType::kF16, DType::kBF16};

// Relative tolerance of one rounding to dt plus fp32 arithmetic.
double Tol(DType dt) { return dt == DType::kF32 ? 2e-5 : dt == DType::kF16 ? 2e-3 : 1.5e-2; }

// Host encoding of dt elements.
std::vector<uint8_t> Encode(DType dt, const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * DTypeBytes(dt));
  for (size_t i = 0; i < v.size(); ++i) {
    if (dt == DType::kF32) {
      std::memcpy(out.data() + 4 * i, &v[i], 4);
    } else {
      const uint16_t h = dt == DType::kF16 ? Fp32ToFp16(v[i]) : Fp32ToBf16(v[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}
std::vector<float> Decode(DType dt, const std::vector<uint8_t>& b) {
  const size_t n = b.size() / DTypeBytes(dt);
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (dt == DType::kF32) {
      std::memcpy(&out[i], b.data() + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, b.data() + 2 * i, 2);
      out[i] = dt == DType::kF16 ? Fp16ToFp32(h) : Bf16ToFp32(h);
    }
  }
  return out;
}
float RoundTo(DType dt, float x) {
  if (dt == DType::kF32) return x;
  return dt == DType::kF16 ? Fp16ToFp32(Fp32ToFp16(x)) : Bf16ToFp32(Fp32ToBf16(x));
}
// Random values already representable in dt (so that references see the kernel's inputs).
std::vector<float> RandomValues(DType dt, size_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = RoundTo(dt, dist(rng));
  return v;
}

// Byte equality that reports the first difference instead of printing both buffers.
::testing::AssertionResult SameBytes(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure() << "sizes differ: " << got.size() << " vs " << want.size();
  }
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want[i]) {
      return ::testing::AssertionFailure() << "first difference at byte " << i << " of " << got.size() << ": "
                                           << int{got[i]} << " vs " << int{want[i]};
    }
  }
  return ::testing::AssertionSuccess();
}

// |got - want| <= tol * (scale + |want|) for every element (NaN fails).
void ExpectClose(const std::vector<float>& got, const std::vector<double>& want, double tol, double scale,
                 const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    const double lim = tol * (scale + std::fabs(want[i]));
    if (!(err <= lim)) {
      if (bad < 5) ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", want " << want[i] << " (err " << err
                                 << " > " << lim << ")";
      ++bad;
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << got.size() << " elements out of tolerance";
}

// ---------------------------------------------------------------- norms

std::vector<double> RmsNormRef(const std::vector<float>& x, const std::vector<float>& w, int64_t rows, int64_t d,
                               float eps) {
  std::vector<double> out(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < d; ++i) ss += static_cast<double>(x[r * d + i]) * x[r * d + i];
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(d) + eps);
    for (int64_t i = 0; i < d; ++i) out[r * d + i] = x[r * d + i] * inv * w[i];
  }
  return out;
}

TEST(CudaKernels, AddRmsNorm) {
  REQUIRE_CUDA();
  const float eps = 1e-5f;
  for (DType dt : kAllTypes) {
    for (int64_t d : {100, 576, 4096, 8200}) {
      for (bool with_delta : {true, false}) {
        SCOPED_TRACE(std::string(DTypeName(dt)) + " d=" + std::to_string(d) + (with_delta ? " +delta" : ""));
        const int64_t T = 5;
        const std::vector<float> res = RandomValues(dt, T * d, -2, 2, 1);
        const std::vector<float> delta = RandomValues(dt, T * d, -1, 1, 2);
        const std::vector<float> w = RandomValues(DType::kF32, d, 0.5f, 1.5f, 3);
        std::vector<float> sum(res.size());
        for (size_t i = 0; i < res.size(); ++i) sum[i] = with_delta ? RoundTo(dt, res[i] + delta[i]) : res[i];

        DeviceBuffer d_res(Encode(dt, res)), d_delta(Encode(dt, delta)), d_w(w);
        DeviceBuffer d_out(T * d * DTypeBytes(dt));
        CUDA_OK(AddRmsNorm(dt, d_res.get(), with_delta ? d_delta.get() : nullptr, d_w.as<float>(), T, d, eps,
                           d_out.get(), nullptr));
        CUDA_OK(cudaDeviceSynchronize());
        EXPECT_TRUE(SameBytes(d_res.Bytes(), Encode(dt, sum))) << "residual after the add";
        const std::vector<uint8_t> out = d_out.Bytes();
        ExpectClose(Decode(dt, out), RmsNormRef(sum, w, T, d, eps), Tol(dt), 1.0, "out");

        // Batch invariance: row 2 alone gives the same bits.
        DeviceBuffer d_res1(Encode(dt, std::vector<float>(res.begin() + 2 * d, res.begin() + 3 * d)));
        DeviceBuffer d_delta1(Encode(dt, std::vector<float>(delta.begin() + 2 * d, delta.begin() + 3 * d)));
        DeviceBuffer d_out1(d * DTypeBytes(dt));
        CUDA_OK(AddRmsNorm(dt, d_res1.get(), with_delta ? d_delta1.get() : nullptr, d_w.as<float>(), 1, d, eps,
                           d_out1.get(), nullptr));
        CUDA_OK(cudaDeviceSynchronize());
        const size_t rb = d * DTypeBytes(dt);
        EXPECT_TRUE(SameBytes(d_out1.Bytes(), std::vector<uint8_t>(out.begin() + 2 * rb, out.begin() + 3 * rb)))
            << "row 2 alone";
      }
    }
  }
}

TEST(CudaKernels, GatherRmsNorm) {
  REQUIRE_CUDA();
  const float eps = 1e-6f;
  for (DType dt : kAllTypes) {
    SCOPED_TRACE(DTypeName(dt));
    const int64_t T = 6, d = 960;
    const std::vector<int32_t> rows = {3, 0, 5, 3};
    const std::vector<float> x = RandomValues(dt, T * d, -3, 3, 4);
    const std::vector<float> w = RandomValues(DType::kF32, d, 0.5f, 1.5f, 5);
    std::vector<float> picked;
    for (int32_t r : rows) picked.insert(picked.end(), x.begin() + r * d, x.begin() + (r + 1) * d);
    DeviceBuffer d_x(Encode(dt, x)), d_rows(rows), d_w(w), d_out(rows.size() * d * DTypeBytes(dt));
    CUDA_OK(GatherRmsNorm(dt, d_x.get(), d_rows.as<int32_t>(), static_cast<int64_t>(rows.size()), d, d_w.as<float>(),
                          eps, d_out.get(), nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    const std::vector<float> out = Decode(dt, d_out.Bytes());
    ExpectClose(out, RmsNormRef(picked, w, static_cast<int64_t>(rows.size()), d, eps), Tol(dt), 1.0, "out");
    // Rows 0 and 3 both gather x[3]: identical bits.
    EXPECT_TRUE(SameBytes(Encode(DType::kF32, std::vector<float>(out.begin(), out.begin() + d)),
                          Encode(DType::kF32, std::vector<float>(out.begin() + 3 * d, out.begin() + 4 * d))));
  }
}

// ---------------------------------------------------------------- elementwise

TEST(CudaKernels, Embedding) {
  REQUIRE_CUDA();
  for (DType dt : kAllTypes) {
    SCOPED_TRACE(DTypeName(dt));
    const int64_t vocab = 50, hidden = 203;
    const std::vector<int32_t> ids = {3, 0, 49, 3, 17};
    const std::vector<float> table = RandomValues(dt, vocab * hidden, -1, 1, 6);
    std::vector<float> want;
    for (int32_t id : ids) want.insert(want.end(), table.begin() + id * hidden, table.begin() + (id + 1) * hidden);
    DeviceBuffer d_table(Encode(dt, table)), d_ids(ids), d_out(ids.size() * hidden * DTypeBytes(dt));
    CUDA_OK(Embedding(dt, d_table.get(), d_ids.as<int32_t>(), static_cast<int64_t>(ids.size()), hidden, d_out.get(),
                      nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    EXPECT_TRUE(SameBytes(d_out.Bytes(), Encode(dt, want)));
  }
}

TEST(CudaKernels, AddBias) {
  REQUIRE_CUDA();
  for (DType dt : kAllTypes) {
    SCOPED_TRACE(DTypeName(dt));
    const int64_t T = 3, stride = 300, n = 257;
    const std::vector<float> y = RandomValues(dt, T * stride, -2, 2, 7);
    const std::vector<float> bias = RandomValues(DType::kF32, n, -1, 1, 8);
    std::vector<float> want = y;
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t i = 0; i < n; ++i) want[t * stride + i] = RoundTo(dt, y[t * stride + i] + bias[i]);
    }
    DeviceBuffer d_y(Encode(dt, y)), d_bias(bias);
    CUDA_OK(AddBias(dt, d_y.get(), stride, d_bias.as<float>(), T, n, nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    EXPECT_TRUE(SameBytes(d_y.Bytes(), Encode(dt, want)));  // one fp32 add, one rounding: exact
  }
}

TEST(CudaKernels, Rope) {
  REQUIRE_CUDA();
  for (DType dt : kAllTypes) {
    for (int64_t hd : {64, 128}) {
      for (bool neox : {false, true}) {
        SCOPED_TRACE(std::string(DTypeName(dt)) + " hd=" + std::to_string(hd) + (neox ? " neox" : " normal"));
        const int64_t T = 5, nh = 8, nkv = 2, max_pos = 128, half = hd / 2;
        const int64_t stride = (nh + 2 * nkv) * hd;  // fused q | k | v
        std::vector<float> cos_sin(max_pos * hd);
        for (int64_t p = 0; p < max_pos; ++p) {
          for (int64_t i = 0; i < half; ++i) {
            const double th = static_cast<double>(p) * std::pow(10000.0, -2.0 * static_cast<double>(i) / hd);
            cos_sin[(p * half + i) * 2] = static_cast<float>(std::cos(th));
            cos_sin[(p * half + i) * 2 + 1] = static_cast<float>(std::sin(th));
          }
        }
        const std::vector<int32_t> pos = {0, 1, 77, 127, 5};
        const std::vector<float> x = RandomValues(dt, T * stride, -1, 1, 9);
        std::vector<double> want(x.begin(), x.end());
        for (int64_t t = 0; t < T; ++t) {
          for (int64_t h = 0; h < nh + nkv; ++h) {
            const int64_t base = t * stride + h * hd;
            for (int64_t i = 0; i < half; ++i) {
              const double c = cos_sin[(pos[t] * half + i) * 2], s = cos_sin[(pos[t] * half + i) * 2 + 1];
              const int64_t i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
              const double a = x[base + i0], b = x[base + i1];
              want[base + i0] = a * c - b * s;
              want[base + i1] = a * s + b * c;
            }
          }
        }
        DeviceBuffer d_x(Encode(dt, x)), d_pos(pos), d_cs(cos_sin);
        const size_t eb = DTypeBytes(dt);
        CUDA_OK(Rope(dt, d_x.get(), d_x.as<uint8_t>() + nh * hd * eb, stride, d_pos.as<int32_t>(), d_cs.as<float>(),
                     T, nh, nkv, hd, neox, nullptr));
        CUDA_OK(cudaDeviceSynchronize());
        ExpectClose(Decode(dt, d_x.Bytes()), want, Tol(dt), 1.0, "q|k|v");
      }
    }
  }
}

TEST(CudaKernels, SiluMul) {
  REQUIRE_CUDA();
  for (DType dt : kAllTypes) {
    SCOPED_TRACE(DTypeName(dt));
    const int64_t T = 3, ffn = 300;
    const std::vector<float> gu = RandomValues(dt, T * 2 * ffn, -6, 6, 10);
    std::vector<double> want(T * ffn);
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t i = 0; i < ffn; ++i) {
        const double g = gu[t * 2 * ffn + i], u = gu[t * 2 * ffn + ffn + i];
        want[t * ffn + i] = g / (1.0 + std::exp(-g)) * u;
      }
    }
    DeviceBuffer d_gu(Encode(dt, gu)), d_out(T * ffn * DTypeBytes(dt));
    CUDA_OK(SiluMul(dt, d_gu.get(), T, ffn, d_out.get(), nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    ExpectClose(Decode(dt, d_out.Bytes()), want, Tol(dt), 1.0, "out");
  }
}

TEST(CudaKernels, WriteKv) {
  REQUIRE_CUDA();
  for (DType dt : kAllTypes) {
    SCOPED_TRACE(DTypeName(dt));
    const int64_t nh = 8, nkv = 2, hd = 64, bs = 16, num_blocks = 8, width = nkv * hd;
    const int64_t stride = (nh + 2 * nkv) * hd;
    const std::vector<int64_t> slots = {5, -1, 100, 17, 127, 64};
    const int64_t T = static_cast<int64_t>(slots.size());
    const std::vector<float> qkv = RandomValues(dt, T * stride, -1, 1, 11);
    const std::vector<float> kc0 = RandomValues(dt, num_blocks * bs * width, -1, 1, 12);
    const std::vector<float> vc0 = RandomValues(dt, num_blocks * bs * width, -1, 1, 13);
    std::vector<float> kc = kc0, vc = vc0;
    for (int64_t t = 0; t < T; ++t) {
      if (slots[t] < 0) continue;
      for (int64_t i = 0; i < width; ++i) {
        kc[slots[t] * width + i] = qkv[t * stride + nh * hd + i];
        vc[slots[t] * width + i] = qkv[t * stride + (nh + nkv) * hd + i];
      }
    }
    DeviceBuffer d_qkv(Encode(dt, qkv)), d_slots(slots), d_kc(Encode(dt, kc0)), d_vc(Encode(dt, vc0));
    const size_t eb = DTypeBytes(dt);
    CUDA_OK(WriteKv(dt, d_qkv.as<uint8_t>() + nh * hd * eb, d_qkv.as<uint8_t>() + (nh + nkv) * hd * eb, stride,
                    d_slots.as<int64_t>(), T, nkv, hd, bs, d_kc.get(), d_vc.get(), nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    EXPECT_TRUE(SameBytes(d_kc.Bytes(), Encode(dt, kc)));
    EXPECT_TRUE(SameBytes(d_vc.Bytes(), Encode(dt, vc)));
  }
}

// ---------------------------------------------------------------- attention

// A paged KV cache of several sequences with shuffled, non-contiguous blocks; positions
// past each sequence's length (and blocks nobody owns) hold NaN, which must never leak.
class AttentionFixture {
 public:
  static constexpr int64_t kHeads = 8, kKvHeads = 2, kBlockSize = 16, kNumBlocks = 200, kMaxBlocksPerSeq = 96;

  AttentionFixture(DType dt, int64_t hd, std::vector<int> seq_lens) : dt_(dt), hd_(hd), seq_lens_(std::move(seq_lens)) {
    std::mt19937 rng(1234 + static_cast<uint32_t>(hd));
    std::vector<int32_t> ids(kNumBlocks);
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
    tables_.assign(seq_lens_.size() * kMaxBlocksPerSeq, -1);
    size_t next = 0;
    for (size_t s = 0; s < seq_lens_.size(); ++s) {
      for (int64_t b = 0; b * kBlockSize < seq_lens_[s]; ++b) tables_[s * kMaxBlocksPerSeq + b] = ids[next++];
    }
    const size_t n = static_cast<size_t>(kNumBlocks * kBlockSize * kKvHeads * hd_);
    k_.assign(n, std::numeric_limits<float>::quiet_NaN());
    v_.assign(n, std::numeric_limits<float>::quiet_NaN());
    std::uniform_real_distribution<float> dist(-1, 1);
    for (size_t s = 0; s < seq_lens_.size(); ++s) {
      for (int pos = 0; pos < seq_lens_[s]; ++pos) {
        const int64_t base = Slot(static_cast<int>(s), pos) * kKvHeads * hd_;
        for (int64_t i = 0; i < kKvHeads * hd_; ++i) {
          k_[base + i] = RoundTo(dt_, dist(rng));
          v_[base + i] = RoundTo(dt_, dist(rng));
        }
      }
    }
    d_k_ = std::make_unique<DeviceBuffer>(Encode(dt_, k_));
    d_v_ = std::make_unique<DeviceBuffer>(Encode(dt_, v_));
    d_tables_ = std::make_unique<DeviceBuffer>(tables_);
  }

  int64_t Slot(int seq, int pos) const {
    return static_cast<int64_t>(tables_[seq * kMaxBlocksPerSeq + pos / kBlockSize]) * kBlockSize + pos % kBlockSize;
  }
  // The query of (seq, pos): a fixed function of both, so a row has the same q in any batch.
  std::vector<float> Query(int seq, int pos) const {
    std::mt19937 rng(static_cast<uint32_t>(seq * 7919 + pos * 104729 + hd_));
    std::uniform_real_distribution<float> dist(-2, 2);
    std::vector<float> q(kHeads * hd_);
    for (float& x : q) x = RoundTo(dt_, dist(rng));
    return q;
  }
  double Scale() const { return 1.0 / std::sqrt(static_cast<double>(hd_)); }
  // float64 reference of one row: [heads, hd].
  std::vector<double> Reference(int seq, int pos) const {
    std::vector<double> out(kHeads * hd_, 0.0);
    if (seq < 0) return out;
    const std::vector<float> q = Query(seq, pos);
    const float s32 = static_cast<float>(Scale());
    for (int64_t h = 0; h < kHeads; ++h) {
      const int64_t g = h / (kHeads / kKvHeads);
      std::vector<double> s(pos + 1);
      double mx = -1e300;
      for (int j = 0; j <= pos; ++j) {
        const float* kr = &k_[(Slot(seq, j) * kKvHeads + g) * hd_];
        double dot = 0;
        for (int64_t i = 0; i < hd_; ++i) dot += static_cast<double>(q[h * hd_ + i]) * kr[i];
        s[j] = dot * s32;
        mx = std::max(mx, s[j]);
      }
      double l = 0;
      for (double& x : s) l += (x = std::exp(x - mx));
      for (int j = 0; j <= pos; ++j) {
        const float* vr = &v_[(Slot(seq, j) * kKvHeads + g) * hd_];
        for (int64_t i = 0; i < hd_; ++i) out[h * hd_ + i] += s[j] / l * vr[i];
      }
    }
    return out;
  }

  // One launch. rows: (seq, pos) with seq -1 for padding; decode: row indices; tiles:
  // (first, count) pairs. Returns the output bytes [T, heads, hd].
  struct Batch {
    std::vector<std::pair<int, int>> rows;
    std::vector<int32_t> decode;
    std::vector<int32_t> tiles;
    int64_t max_context_len = 0;
  };
  std::vector<uint8_t> Run(const Batch& b, cudaError_t* err) const {
    const int64_t T = static_cast<int64_t>(b.rows.size());
    const int64_t q_stride = (kHeads + 2 * kKvHeads) * hd_;  // q viewed inside a fused QKV row
    std::vector<float> q(T * q_stride, 0.0f);
    std::vector<int32_t> row_seq(T), positions(T);
    for (int64_t t = 0; t < T; ++t) {
      row_seq[t] = b.rows[t].first;
      positions[t] = b.rows[t].second;
      if (row_seq[t] >= 0) {
        const std::vector<float> qr = Query(row_seq[t], positions[t]);
        std::copy(qr.begin(), qr.end(), q.begin() + t * q_stride);
      }
    }
    DeviceBuffer d_q(Encode(dt_, q)), d_row_seq(row_seq), d_pos(positions);
    DeviceBuffer d_decode(b.decode), d_tiles(b.tiles);
    DeviceBuffer d_out(T * kHeads * hd_ * DTypeBytes(dt_));
    const size_t ws_bytes =
        AttentionWorkspaceBytes(static_cast<int64_t>(b.decode.size()), kHeads, hd_, b.max_context_len);
    DeviceBuffer d_ws(ws_bytes);
    cudaMemset(d_out.get(), 0x7F, T * kHeads * hd_ * DTypeBytes(dt_));  // every element must be written
    AttentionParams p;
    p.dt = dt_;
    p.q = d_q.get();
    p.q_row_stride = q_stride;
    p.k_cache = d_k_->get();
    p.v_cache = d_v_->get();
    p.out = d_out.get();
    p.block_tables = d_tables_->as<int32_t>();
    p.max_blocks_per_seq = kMaxBlocksPerSeq;
    p.row_seq = d_row_seq.as<int32_t>();
    p.positions = d_pos.as<int32_t>();
    p.decode_rows = d_decode.as<int32_t>();
    p.num_decode_rows = static_cast<int64_t>(b.decode.size());
    p.prefill_tiles = d_tiles.as<int32_t>();
    p.num_prefill_tiles = static_cast<int64_t>(b.tiles.size() / 2);
    p.num_tokens = T;
    p.num_heads = kHeads;
    p.num_kv_heads = kKvHeads;
    p.head_dim = hd_;
    p.block_size = kBlockSize;
    p.scale = static_cast<float>(Scale());
    p.max_context_len = b.max_context_len;
    p.workspace = d_ws.get();
    p.workspace_bytes = ws_bytes;
    *err = PagedAttention(p, nullptr);
    if (*err == cudaSuccess) *err = cudaDeviceSynchronize();
    return d_out.Bytes();
  }

  DType dt() const { return dt_; }
  int64_t hd() const { return hd_; }
  size_t RowBytes() const { return static_cast<size_t>(kHeads * hd_) * DTypeBytes(dt_); }

 private:
  DType dt_;
  int64_t hd_;
  std::vector<int> seq_lens_;
  std::vector<int32_t> tables_;
  std::vector<float> k_, v_;
  std::unique_ptr<DeviceBuffer> d_k_, d_v_, d_tables_;
};

// Appends prefill rows (seq, first_pos .. first_pos + n - 1) as tiles of kPrefillTileRows.
void AddPrefill(AttentionFixture::Batch* b, int seq, int first_pos, int n) {
  for (int done = 0; done < n; done += kPrefillTileRows) {
    const int count = std::min(kPrefillTileRows, n - done);
    b->tiles.push_back(static_cast<int32_t>(b->rows.size()));
    b->tiles.push_back(count);
    for (int i = 0; i < count; ++i) b->rows.push_back({seq, first_pos + done + i});
  }
}
void AddDecode(AttentionFixture::Batch* b, int seq, int pos) {
  b->decode.push_back(static_cast<int32_t>(b->rows.size()));
  b->rows.push_back({seq, pos});
}

std::vector<uint8_t> RowSlice(const std::vector<uint8_t>& out, size_t row_bytes, size_t first, size_t n) {
  return std::vector<uint8_t>(out.begin() + first * row_bytes, out.begin() + (first + n) * row_bytes);
}

void CheckAgainstReference(const AttentionFixture& f, const AttentionFixture::Batch& b,
                           const std::vector<uint8_t>& out, const std::string& what) {
  const std::vector<float> got = Decode(f.dt(), out);
  std::vector<double> want;
  for (const auto& [seq, pos] : b.rows) {
    const std::vector<double> r = f.Reference(seq, pos);
    want.insert(want.end(), r.begin(), r.end());
  }
  ExpectClose(got, want, Tol(f.dt()), 1.0, what);
  // Padding rows are exactly zero.
  const size_t per_row = static_cast<size_t>(AttentionFixture::kHeads * f.hd());
  for (size_t t = 0; t < b.rows.size(); ++t) {
    if (b.rows[t].first >= 0) continue;
    for (size_t i = 0; i < per_row; ++i) ASSERT_EQ(got[t * per_row + i], 0.0f) << what << " padding row " << t;
  }
}

TEST(CudaKernels, PagedAttention) {
  REQUIRE_CUDA();
  // Sequences: 0..3 decode at contexts 1, 17, 600, 1500; 4: a prompt chunk at positions
  // 0..69; 5: a chunk at 300..369 (its earlier KV already cached).
  const std::vector<int> lens = {1, 17, 600, 1500, 70, 370};
  for (DType dt : kAllTypes) {
    for (int64_t hd : {64, 80, 96, 128, 256}) {
      SCOPED_TRACE(std::string(DTypeName(dt)) + " hd=" + std::to_string(hd));
      AttentionFixture f(dt, hd, lens);
      cudaError_t err = cudaSuccess;

      AttentionFixture::Batch full;
      AddDecode(&full, 0, 0);
      AddDecode(&full, 1, 16);
      AddDecode(&full, 2, 599);
      AddDecode(&full, 3, 1499);
      AddDecode(&full, -1, 0);  // padding row on the decode path
      AddPrefill(&full, 4, 0, 70);
      AddPrefill(&full, 5, 300, 70);
      full.tiles.push_back(static_cast<int32_t>(full.rows.size()));  // a padding-only prefill tile
      full.tiles.push_back(1);
      full.rows.push_back({-1, 0});
      full.max_context_len = 1500;
      const std::vector<uint8_t> out = f.Run(full, &err);
      ASSERT_EQ(err, cudaSuccess) << cudaGetErrorString(err);
      CheckAgainstReference(f, full, out, "mixed batch");

      // Batch invariance: a decode row (context 17) and the 300.. chunk alone (and with a
      // smaller max_context_len, hence fewer partitions) give the same bits.
      const size_t rb = f.RowBytes();
      AttentionFixture::Batch small;
      AddDecode(&small, 1, 16);
      AddPrefill(&small, 5, 300, 70);
      small.max_context_len = 17;
      const std::vector<uint8_t> out_small = f.Run(small, &err);
      ASSERT_EQ(err, cudaSuccess) << cudaGetErrorString(err);
      EXPECT_TRUE(SameBytes(RowSlice(out_small, rb, 0, 1), RowSlice(out, rb, 1, 1))) << "decode row, context 17";
      EXPECT_TRUE(SameBytes(RowSlice(out_small, rb, 1, 70), RowSlice(out, rb, 75, 70))) << "prefill chunk at 300";

      // ... and the context-1500 decode alone, in a launch sized for a CUDA graph.
      AttentionFixture::Batch alone;
      AddDecode(&alone, 3, 1499);
      alone.max_context_len = 4096;
      const std::vector<uint8_t> out_alone = f.Run(alone, &err);
      ASSERT_EQ(err, cudaSuccess) << cudaGetErrorString(err);
      EXPECT_TRUE(SameBytes(out_alone, RowSlice(out, rb, 3, 1))) << "decode row, context 1500";

      // Decode path vs prefill path on the same rows (the 0..69 prompt, every row a decode).
      AttentionFixture::Batch as_decode;
      for (int pos = 0; pos < 70; ++pos) AddDecode(&as_decode, 4, pos);
      as_decode.max_context_len = 70;
      const std::vector<uint8_t> out_dec = f.Run(as_decode, &err);
      ASSERT_EQ(err, cudaSuccess) << cudaGetErrorString(err);
      CheckAgainstReference(f, as_decode, out_dec, "prompt rows on the decode path");
      const std::vector<float> dec = Decode(dt, out_dec);
      const std::vector<float> pre = Decode(dt, RowSlice(out, rb, 5, 70));
      ExpectClose(dec, std::vector<double>(pre.begin(), pre.end()), 2 * Tol(dt), 1.0, "decode vs prefill");
    }
  }
}

TEST(CudaKernels, PagedAttentionRejectsBadHeadDim) {
  REQUIRE_CUDA();
  AttentionParams p;
  p.head_dim = 72;
  p.num_heads = 8;
  p.num_kv_heads = 2;
  p.num_tokens = 1;
  EXPECT_EQ(PagedAttention(p, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(AttentionWorkspaceBytes(0, 8, 128, 4096), 0u);
  EXPECT_GE(AttentionWorkspaceBytes(3, 8, 128, 1500), size_t{3} * 8 * 3 * 128 * sizeof(float));
}

// ---------------------------------------------------------------- quantized matmul

// Rows of random weights in GGUF layout: Q8_0 / Q4_0 through QuantizeRow; Q4_K as random
// bytes with small fp16 scales (d, dmin in [1e-3, 1e-2)).
std::vector<uint8_t> RandomQuantRows(GgmlType type, int64_t rows, int64_t cols, uint32_t seed) {
  const size_t row_bytes = GgmlRowSize(type, cols);
  std::vector<uint8_t> w(rows * row_bytes);
  std::mt19937 rng(seed);
  if (type == GgmlType::kQ4_K) {
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_real_distribution<float> sc(1e-3f, 1e-2f);
    for (uint8_t& b : w) b = static_cast<uint8_t>(byte(rng));
    for (size_t blk = 0; blk < w.size(); blk += 144) {
      const uint16_t d = Fp32ToFp16(sc(rng)), dmin = Fp32ToFp16(sc(rng));
      std::memcpy(&w[blk], &d, 2);
      std::memcpy(&w[blk + 2], &dmin, 2);
    }
    return w;
  }
  std::normal_distribution<float> dist(0.0f, 0.05f);
  std::vector<float> row(cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (float& x : row) x = dist(rng);
    EXPECT_TRUE(QuantizeRow(type, row.data(), w.data() + r * row_bytes, cols).ok());
  }
  return w;
}

std::vector<float> DequantRows(GgmlType type, const std::vector<uint8_t>& w, int64_t rows, int64_t cols) {
  std::vector<float> out(rows * cols);
  const size_t row_bytes = GgmlRowSize(type, cols);
  for (int64_t r = 0; r < rows; ++r) DequantizeRow(type, w.data() + r * row_bytes, out.data() + r * cols, cols);
  return out;
}

TEST(CudaKernels, QuantMatMul) {
  REQUIRE_CUDA();
  for (GgmlType type : {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_K}) {
    ASSERT_TRUE(QuantMatMulSupports(type));
    const int64_t rows = 37, cols = type == GgmlType::kQ4_K ? 512 : 768, T = 11, ystride = rows + 3;
    const std::vector<uint8_t> w = RandomQuantRows(type, rows, cols, 21);
    const std::vector<float> deq = DequantRows(type, w, rows, cols);
    const size_t row_bytes = GgmlRowSize(type, cols);
    DeviceBuffer d_w(w);
    for (DType dt : kAllTypes) {
      SCOPED_TRACE(GgmlTypeName(static_cast<uint32_t>(type)) + " " + DTypeName(dt));
      const std::vector<float> x = RandomValues(dt, T * cols, -1, 1, 22);
      std::vector<double> want(T * ystride, 0.0), mag(T * ystride, 0.0);
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t r = 0; r < rows; ++r) {
          double s = 0, a = 0;
          for (int64_t k = 0; k < cols; ++k) {
            s += static_cast<double>(x[t * cols + k]) * deq[r * cols + k];
            a += std::fabs(static_cast<double>(x[t * cols + k]) * deq[r * cols + k]);
          }
          want[t * ystride + r] = s;
          mag[t * ystride + r] = a;
        }
      }
      DeviceBuffer d_x(Encode(dt, x)), d_y(T * ystride * DTypeBytes(dt));
      CUDA_OK(cudaMemset(d_y.get(), 0, T * ystride * DTypeBytes(dt)));
      CUDA_OK(QuantMatMul(dt, type, d_w.get(), rows, cols, row_bytes, d_x.get(), T, d_y.get(), ystride, nullptr));
      CUDA_OK(cudaDeviceSynchronize());
      const std::vector<uint8_t> ybytes = d_y.Bytes();
      const std::vector<float> y = Decode(dt, ybytes);
      size_t bad = 0;
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t r = 0; r < ystride; ++r) {
          const size_t i = t * ystride + r;
          const double lim = r < rows ? 1e-5 * mag[i] + Tol(dt) * std::fabs(want[i]) : 0.0;
          if (!(std::fabs(y[i] - want[i]) <= lim)) {
            if (bad++ < 5) ADD_FAILURE() << "y[" << t << "," << r << "] = " << y[i] << ", want " << want[i];
          }
        }
      }
      EXPECT_EQ(bad, 0u);
      // Batch invariance: each token alone gives the same bits as inside the 11-token launch.
      const size_t eb = DTypeBytes(dt);
      for (int64_t t = 0; t < T; ++t) {
        DeviceBuffer d_y1(rows * eb);
        CUDA_OK(QuantMatMul(dt, type, d_w.get(), rows, cols, row_bytes, d_x.as<uint8_t>() + t * cols * eb, 1,
                            d_y1.get(), rows, nullptr));
        CUDA_OK(cudaDeviceSynchronize());
        EXPECT_TRUE(SameBytes(d_y1.Bytes(), std::vector<uint8_t>(ybytes.begin() + t * ystride * eb,
                                                                 ybytes.begin() + (t * ystride + rows) * eb)))
            << "token " << t << " alone";
      }
    }
  }
}

TEST(CudaKernels, Dequantize) {
  REQUIRE_CUDA();
  for (GgmlType type : {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_K}) {
    const int64_t rows = 9, cols = 1024;
    const std::vector<uint8_t> w = RandomQuantRows(type, rows, cols, 31);
    const std::vector<float> deq = DequantRows(type, w, rows, cols);
    DeviceBuffer d_w(w);
    for (DType dt : kAllTypes) {
      SCOPED_TRACE(GgmlTypeName(static_cast<uint32_t>(type)) + " " + DTypeName(dt));
      DeviceBuffer d_out(rows * cols * DTypeBytes(dt));
      CUDA_OK(Dequantize(type, d_w.get(), rows, cols, GgmlRowSize(type, cols), dt, d_out.get(), nullptr));
      CUDA_OK(cudaDeviceSynchronize());
      // Same fp32 values as DequantizeRow, then one round-to-nearest-even: bit for bit.
      EXPECT_TRUE(SameBytes(d_out.Bytes(), Encode(dt, deq)));
    }
  }
  EXPECT_FALSE(QuantMatMulSupports(GgmlType::kQ6_K));
}

// ---------------------------------------------------------------- argmax

TEST(CudaKernels, ArgMax) {
  REQUIRE_CUDA();
  const int64_t vocab = 50007, n = 5;
  std::vector<float> logits = RandomValues(DType::kF32, n * vocab, -10, 10, 41);
  std::vector<int32_t> want(n);
  // Row 0: random. Row 1: a tie between 100 and 40000 (lowest wins). Row 2: all equal.
  // Row 3: NaNs around, the maximum at the last index. Row 4: all -inf.
  want[0] = static_cast<int32_t>(std::max_element(logits.begin(), logits.begin() + vocab) - logits.begin());
  logits[vocab + 100] = logits[vocab + 40000] = 50.0f;
  want[1] = 100;
  std::fill(logits.begin() + 2 * vocab, logits.begin() + 3 * vocab, 1.5f);
  want[2] = 0;
  for (int64_t j = 0; j < vocab; j += 7) logits[3 * vocab + j] = std::numeric_limits<float>::quiet_NaN();
  logits[4 * vocab - 1] = 99.0f;
  want[3] = static_cast<int32_t>(vocab - 1);
  std::fill(logits.begin() + 4 * vocab, logits.end(), -std::numeric_limits<float>::infinity());
  want[4] = 0;
  DeviceBuffer d_logits(logits), d_out(n * sizeof(int32_t));
  CUDA_OK(ArgMax(d_logits.as<float>(), n, vocab, d_out.as<int32_t>(), nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  EXPECT_EQ(d_out.Read<int32_t>(), want);
}

TEST(CudaKernels, EmptyLaunchesSucceed) {
  REQUIRE_CUDA();
  EXPECT_EQ(AddRmsNorm(DType::kF16, nullptr, nullptr, nullptr, 0, 64, 1e-5f, nullptr, nullptr), cudaSuccess);
  EXPECT_EQ(SiluMul(DType::kBF16, nullptr, 0, 64, nullptr, nullptr), cudaSuccess);
  EXPECT_EQ(ArgMax(nullptr, 0, 100, nullptr, nullptr), cudaSuccess);
  EXPECT_STREQ(DTypeName(DType::kBF16), "bfloat16");
  EXPECT_EQ(DTypeBytes(DType::kF32), 4u);
}

}  // namespace
}  // namespace inferd::cuda
