// --quantization int8 | int4 (model/quantize.h): weight-only Q8_0 / llama.cpp's Q4_K_M recipe
// at load.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../model_test_util.h"
#include "backend/cpu_forward.h"
#include "model/model.h"
#include "model/quantize.h"
#include "util/thread_pool.h"

namespace inferd {
namespace {

bool Contains(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }

// A small Llama shape as a config.json (every matrix has a multiple of 32 columns).
std::string WriteConfig(const std::string& name, bool tied, int64_t hidden = 128) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 1000, "hidden_size": )" << hidden
                      << R"(, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
    "tie_word_embeddings": )" << (tied ? "true" : "false") << "}";
  return path;
}

std::unique_ptr<LoadedModel> Load(const std::string& cfg, const std::string& dtype, const std::string& quant) {
  LoadOptions o{.model = cfg, .load_format = "dummy", .dtype = dtype, .seed = 3, .quantization = quant};
  auto m = LoadModel(o);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.ok() ? std::move(m).value() : nullptr;
}

std::vector<const Matrix*> LayerMatrices(const ModelWeights& w) {
  std::vector<const Matrix*> out;
  for (const LayerWeights& l : w.layers) {
    for (const Matrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) out.push_back(m);
  }
  return out;
}

std::vector<float> Row(const Matrix& m, int64_t r) {
  std::vector<float> v(static_cast<size_t>(m.cols));
  DequantizeRow(m.type, m.row(r), v.data(), m.cols);
  return v;
}

bool SameBytes(const Matrix& a, const Matrix& b) {
  return a.type == b.type && a.rows == b.rows && a.cols == b.cols && a.nbytes() == b.nbytes() &&
         std::memcmp(a.data, b.data, a.nbytes()) == 0;
}

// Every group of 32 dequantized weights is within the format's bound of the originals.
//   Q8_0: d = max|x| / 127 (fp32), stored as fp16 d16, q = round(x / d), |q| <= 127:
//         |x - q d16| <= |x - q d| + |q| |d - d16| <= d / 2 + 127 |d - d16|.
//   Q4_0: d = x_max / -8 (x_max the largest-magnitude value, signed), q = round(x / d) + 8
//         clamped to [0, 15]: x / d lies in [-8, 8]; values with x / d <= 7.5 are rounded
//         (|err| <= |d| / 2 + 8 |d - d16|); those above 7.5 (near -x_max) are clamped to 7,
//         so |err| <= |d| + 8 |d - d16|, the whole step, at x = -x_max.
void ExpectWithinBound(const Matrix& orig, const Matrix& quant, const std::string& what) {
  ASSERT_EQ(orig.rows, quant.rows);
  ASSERT_EQ(orig.cols, quant.cols);
  double worst_ratio = 0.0;  // max |err| / |d| seen, to check the bound is tight-ish too
  for (int64_t r = 0; r < orig.rows; ++r) {
    const std::vector<float> x = Row(orig, r), y = Row(quant, r);
    for (int64_t g = 0; g < orig.cols; g += 32) {
      float amax = 0.0f, max = 0.0f;
      for (int j = 0; j < 32; ++j) {
        if (std::fabs(x[g + j]) > amax) {
          amax = std::fabs(x[g + j]);
          max = x[g + j];
        }
      }
      const float d = quant.type == GgmlType::kQ8_0 ? amax / 127.0f : max / -8.0f;
      const float d16 = Fp16ToFp32(Fp32ToFp16(d));
      const double slack = 1e-6 * amax;  // fp32 rounding of x * (1 / d)
      for (int j = 0; j < 32; ++j) {
        const double err = std::fabs(static_cast<double>(x[g + j]) - y[g + j]);
        double bound;
        if (quant.type == GgmlType::kQ8_0) {
          bound = std::fabs(d) / 2 + 127 * std::fabs(d - d16);
        } else {
          const bool clamped = d != 0.0f && x[g + j] / d > 7.5f;
          bound = (clamped ? std::fabs(d) : std::fabs(d) / 2) + 8 * std::fabs(d - d16);
        }
        ASSERT_LE(err, bound + slack) << what << " row " << r << " col " << g + j << " x " << x[g + j] << " d " << d;
        if (d != 0.0f) worst_ratio = std::max(worst_ratio, err / std::fabs(d));
      }
    }
  }
  EXPECT_GT(worst_ratio, 0.3) << what << ": suspiciously exact";  // it really was quantized
}

// Relative RMS error of a quantized matrix: small, but not zero (it really was quantized).
void ExpectRelativeRms(const Matrix& orig, const Matrix& quant, double max_rel, const std::string& what) {
  double num = 0, den = 0;
  for (int64_t r = 0; r < orig.rows; ++r) {
    const std::vector<float> x = Row(orig, r), y = Row(quant, r);
    for (int64_t c = 0; c < orig.cols; ++c) num += (x[c] - y[c]) * double(x[c] - y[c]), den += x[c] * double(x[c]);
  }
  const double rel = std::sqrt(num / den);
  EXPECT_LT(rel, max_rel) << what;
  EXPECT_GT(rel, 1e-4) << what << ": suspiciously exact";
}

// The int4 (Q4_K_M) type of each layer matrix of the test config (hidden 128, ffn 256, 2
// layers): rows of 128 are not whole 256-blocks, so Q4_K falls back to Q5_0 and Q6_K to Q8_0;
// use_more_bits(i, 2) holds for layer 1 only, which gives wv and w_down the Q6_K side.
GgmlType Int4Type(size_t matrix_index) {
  const size_t layer = matrix_index / 7, kind = matrix_index % 7;  // q k v o gate up down
  if (kind == 2) return layer == 1 ? GgmlType::kQ8_0 : GgmlType::kQ5_0;
  if (kind == 6) return layer == 1 ? GgmlType::kQ6_K : GgmlType::kQ4_K;
  return GgmlType::kQ5_0;
}

TEST(Quantize, Int8AndInt4FromEveryFloatType) {
  const std::string cfg = WriteConfig("quant_untied.json", /*tied=*/false);
  for (const char* dtype : {"float16", "bfloat16", "float32"}) {
    auto base = Load(cfg, dtype, "");
    ASSERT_NE(base, nullptr);
    const std::string src = base->weight_type;
    for (const char* quant : {"int8", "int4"}) {
      const bool int8 = std::string(quant) == "int8";
      const std::string what = std::string(dtype) + " -> " + quant;
      auto q = Load(cfg, dtype, quant);
      ASSERT_NE(q, nullptr);
      EXPECT_EQ(q->weight_type, std::string(int8 ? "q8_0" : "q4_K_M") + " (" + quant + " from " + src + ")");
      const auto a = LayerMatrices(base->weights), b = LayerMatrices(q->weights);
      ASSERT_EQ(a.size(), 14u);
      size_t before = 0, after = 0;
      for (size_t i = 0; i < a.size(); ++i) {
        const GgmlType want = int8 ? GgmlType::kQ8_0 : Int4Type(i);
        EXPECT_EQ(b[i]->type, want) << what << " matrix " << i;
        EXPECT_EQ(b[i]->row_bytes, GgmlRowSize(want, a[i]->cols));
        before += a[i]->nbytes();
        after += b[i]->nbytes();
        if (int8) {
          ExpectWithinBound(*a[i], *b[i], what + " matrix " + std::to_string(i));
        } else {
          ExpectRelativeRms(*a[i], *b[i], want == GgmlType::kQ4_K ? 0.12 : 0.06, what + " matrix " + std::to_string(i));
        }
        // Bit for bit the reference QuantizeRow of the original row.
        std::vector<uint8_t> ref(b[i]->row_bytes);
        for (int64_t r = 0; r < a[i]->rows; ++r) {
          ASSERT_TRUE(QuantizeRow(want, Row(*a[i], r).data(), ref.data(), a[i]->cols).ok());
          ASSERT_EQ(0, std::memcmp(ref.data(), b[i]->row(r), ref.size())) << what << " row " << r;
        }
      }
      EXPECT_EQ(q->weights.nbytes, base->weights.nbytes - before + after);
      // Embedding and LM head as stored.
      EXPECT_TRUE(SameBytes(q->weights.tok_embd, base->weights.tok_embd)) << what;
      EXPECT_TRUE(SameBytes(q->weights.output, base->weights.output)) << what;
      EXPECT_NE(q->weights.output.data, q->weights.tok_embd.data);
      // It runs and gives finite logits close to the unquantized ones.
      std::vector<float> logits[2];
      for (int k = 0; k < 2; ++k) {
        const LoadedModel& m = k == 0 ? *base : *q;
        KvCache kv(KvCacheShape{2, 2, 32, 16, 2});
        CpuForward llama(m.config, m.weights);
        ForwardBatch batch;
        std::vector<int32_t> table = {0, 1};
        batch.seqs.push_back(ops::AttnSeq{0, 3, 3, table.data()});
        batch.token_ids = {1, 200, 999};
        batch.positions = {0, 1, 2};
        batch.logits_rows = {2};
        logits[k].resize(1000);
        ASSERT_TRUE(llama.Forward(batch, kv, logits[k].data()).ok());
      }
      double num = 0, den = 0;
      for (size_t i = 0; i < logits[0].size(); ++i) {
        ASSERT_TRUE(std::isfinite(logits[1][i])) << what;
        num += (logits[1][i] - logits[0][i]) * (logits[1][i] - logits[0][i]);
        den += logits[0][i] * logits[0][i];
      }
      EXPECT_LT(std::sqrt(num / den), int8 ? 0.05 : 0.3) << what;
    }
  }
  std::filesystem::remove(cfg);
}

TEST(Quantize, TiedEmbeddingStaysTiedAndUnquantized) {
  const std::string cfg = WriteConfig("quant_tied.json", /*tied=*/true);
  auto base = Load(cfg, "float16", "none");
  auto q = Load(cfg, "float16", "int4");
  ASSERT_NE(base, nullptr);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(base->weight_type, "f16");  // "none": as stored
  EXPECT_EQ(q->weight_type, "q4_K_M (int4 from f16)");
  EXPECT_EQ(q->weights.output.data, q->weights.tok_embd.data);
  EXPECT_TRUE(SameBytes(q->weights.tok_embd, base->weights.tok_embd));
  const auto layers = LayerMatrices(q->weights);
  for (size_t i = 0; i < layers.size(); ++i) EXPECT_EQ(layers[i]->type, Int4Type(i)) << i;
  std::filesystem::remove(cfg);
}

TEST(Quantize, ResultDoesNotDependOnThreadCount) {
  const std::string cfg = WriteConfig("quant_threads.json", /*tied=*/false);
  auto many = Load(cfg, "bfloat16", "int8");
  ThreadPool::SetGlobalThreads(1);
  auto one = Load(cfg, "bfloat16", "int8");
  ThreadPool::SetGlobalThreads(0);
  ASSERT_NE(many, nullptr);
  ASSERT_NE(one, nullptr);
  const auto a = LayerMatrices(many->weights), b = LayerMatrices(one->weights);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(SameBytes(*a[i], *b[i])) << i;
  std::filesystem::remove(cfg);
}

TEST(Quantize, Errors) {
  const std::string cfg = WriteConfig("quant_errors.json", /*tied=*/false);
  auto bad = LoadModel(LoadOptions{.model = cfg, .load_format = "dummy", .quantization = "int3"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(bad.status().message(),
                       "unknown --quantization 'int3': use int8 (q8_0) or int4 (llama.cpp's q4_K_M recipe), weight-only, "
                       "or none"))
      << bad.status().message();
  // Already quantized weights.
  for (const char* dtype : {"q4_1", "q8_0", "q4_0"}) {
    auto already = LoadModel(LoadOptions{.model = cfg, .load_format = "dummy", .dtype = dtype, .quantization = "int8"});
    ASSERT_FALSE(already.ok()) << dtype;
    EXPECT_TRUE(Contains(already.status().message(),
                         std::string("--quantization int8 re-quantizes fp16/bf16/fp32 weights; this model's weights are "
                                     "already ") + dtype))
        << already.status().message();
  }
  // Columns not a multiple of the block size: hidden 80 (q_proj has 80 columns).
  const std::string odd = WriteConfig("quant_odd.json", /*tied=*/false, /*hidden=*/80);
  auto cols = LoadModel(LoadOptions{.model = odd, .load_format = "dummy", .dtype = "float16", .quantization = "int4"});
  ASSERT_FALSE(cols.ok());
  EXPECT_TRUE(Contains(cols.status().message(), "has 80 columns, not a multiple of the block size 32"))
      << cols.status().message();
  EXPECT_TRUE(Contains(cols.status().message(), "--quantization int4")) << cols.status().message();
  // The same shape loads without quantization.
  EXPECT_TRUE(LoadModel(LoadOptions{.model = odd, .load_format = "dummy", .dtype = "float16"}).ok());
  std::filesystem::remove(cfg);
  std::filesystem::remove(odd);
}

TEST(Quantize, EmbeddedQ4_1ModelIsAlreadyQuantized) {
  INFERD_REQUIRE_MODEL(path);
  auto m = LoadModel(LoadOptions{.model = path, .quantization = "int8"});
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(Contains(m.status().message(),
                       "--quantization int8 re-quantizes fp16/bf16/fp32 weights; this model's weights are already q4_1"))
      << m.status().message();
}

}  // namespace
}  // namespace inferd
