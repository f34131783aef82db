#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "../model_test_util.h"
#include "format/gguf.h"
#include "backend/cpu_forward.h"
#include "model/model.h"
#include "ops/forward.h"

namespace inferd {
namespace {

class RealModel : public ::testing::Test {
 protected:
  void SetUp() override {
    INFERD_REQUIRE_MODEL(path);
    auto m = LoadModel(LoadOptions{.model = path});
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    model_ = std::move(m).value();
    PrepareCpuWeights(model_->weights);  // the CPU backend's packed weights, as the engine runs them
    KvCacheShape s{model_->config.num_layers, model_->config.num_kv_heads, model_->config.head_dim, 16, 32};
    kv_ = std::make_unique<KvCache>(s);
    llama_ = std::make_unique<CpuForward>(model_->config, model_->weights);
  }

  // Runs rows [begin, begin + count) of `ids` as one sequence with blocks `table`;
  // returns logits for every row.
  std::vector<float> Run(const std::vector<int32_t>& ids, int64_t begin, int64_t count,
                         const std::vector<int32_t>& table) {
    ForwardBatch b;
    b.seqs.push_back(ops::AttnSeq{0, count, begin + count, table.data()});
    for (int64_t i = 0; i < count; ++i) {
      b.token_ids.push_back(ids[begin + i]);
      b.positions.push_back(static_cast<int32_t>(begin + i));
      b.logits_rows.push_back(i);
    }
    std::vector<float> logits(count * model_->config.vocab_size);
    EXPECT_TRUE(llama_->Forward(b, *kv_, logits.data()).ok());
    return logits;
  }

  std::unique_ptr<LoadedModel> model_;
  std::unique_ptr<KvCache> kv_;
  std::unique_ptr<CpuForward> llama_;
};

TEST_F(RealModel, ConfigFromGguf) {
  const ModelConfig& c = model_->config;
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.num_layers, 30);
  EXPECT_EQ(c.num_heads, 9);
  EXPECT_EQ(c.num_kv_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FLOAT_EQ(c.rope_theta, 100000.0f);
  EXPECT_NEAR(c.NumParameters() / 1e6, 134.5, 1.0);
  EXPECT_EQ(model_->weights.output.data, model_->weights.tok_embd.data);
}

// Logits of a position are bit-identical whether the prompt is processed at once, in
// chunks, token by token, through other block ids, or beside another sequence.
TEST_F(RealModel, ForwardIsBatchAndChunkInvariant) {
  const std::vector<int32_t> ids = model_->tokenizer->Encode("The quick brown fox jumps over the lazy dog, and then", false, false);
  const int64_t n = static_cast<int64_t>(ids.size()), vocab = model_->config.vocab_size;
  ASSERT_GE(n, 10);
  auto whole = Run(ids, 0, n, {0, 1});
  for (float x : whole) ASSERT_TRUE(std::isfinite(x));
  // Chunked prefill (7 tokens) then one token at a time, in other blocks.
  std::vector<int32_t> table2 = {9, 4};
  auto first = Run(ids, 0, 7, table2);
  EXPECT_EQ(0, std::memcmp(first.data(), whole.data(), sizeof(float) * 7 * vocab));
  for (int64_t p = 7; p < n; ++p) {
    auto one = Run(ids, p, 1, table2);
    ASSERT_EQ(0, std::memcmp(one.data(), &whole[p * vocab], sizeof(float) * vocab)) << "position " << p;
  }
  // Two sequences in one batch: a different prompt first, then ours.
  const std::vector<int32_t> other = model_->tokenizer->Encode("Once upon a time", false, false);
  std::vector<int32_t> t_other = {20}, t_ours = {12, 13};
  ForwardBatch b;
  const int64_t no = static_cast<int64_t>(other.size());
  b.seqs.push_back(ops::AttnSeq{0, no, no, t_other.data()});
  b.seqs.push_back(ops::AttnSeq{no, n, n, t_ours.data()});
  for (int64_t i = 0; i < no; ++i) {
    b.token_ids.push_back(other[i]);
    b.positions.push_back(static_cast<int32_t>(i));
  }
  for (int64_t i = 0; i < n; ++i) {
    b.token_ids.push_back(ids[i]);
    b.positions.push_back(static_cast<int32_t>(i));
  }
  b.logits_rows = {no + n - 1, no - 1};
  std::vector<float> logits(2 * vocab);
  ASSERT_TRUE(llama_->Forward(b, *kv_, logits.data()).ok());
  EXPECT_EQ(0, std::memcmp(logits.data(), &whole[(n - 1) * vocab], sizeof(float) * vocab));
}

TEST_F(RealModel, GreedyContinuationIsSensible) {
  const std::vector<int32_t> ids = model_->tokenizer->Encode("The capital of France is", false, false);
  auto logits = Run(ids, 0, static_cast<int64_t>(ids.size()), {0});
  const float* last = &logits[(ids.size() - 1) * model_->config.vocab_size];
  const int32_t best = static_cast<int32_t>(std::max_element(last, last + model_->config.vocab_size) - last);
  EXPECT_EQ(model_->tokenizer->Decode(std::vector<int32_t>{best}, true), " Paris");
}

TEST_F(RealModel, OutOfRangeTokenIsAnError) {
  ForwardBatch b;
  std::vector<int32_t> table = {0};
  b.seqs.push_back(ops::AttnSeq{0, 1, 1, table.data()});
  b.token_ids = {static_cast<int32_t>(model_->config.vocab_size)};
  b.positions = {0};
  b.logits_rows = {0};
  std::vector<float> logits(model_->config.vocab_size);
  Status st = llama_->Forward(b, *kv_, logits.data());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
}

TEST(LoadModel, MissingFileNamesThePath) {
  auto m = LoadModel(LoadOptions{.model = "/nonexistent/model.gguf"});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound);
  EXPECT_NE(m.status().message().find("/nonexistent/model.gguf"), std::string::npos);
}

TEST(LoadModel, TruncatedModelIsAClearError) {
  INFERD_REQUIRE_MODEL(path);
  const std::string copy = ::testing::TempDir() + "/truncated.gguf";
  {
    std::ifstream in(path, std::ios::binary);
    std::vector<char> buf(5'000'000);
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    std::ofstream(copy, std::ios::binary).write(buf.data(), in.gcount());
  }
  auto m = LoadModel(LoadOptions{.model = copy});
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("gguf"), std::string::npos) << m.status().message();
  std::filesystem::remove(copy);
}

TEST(LoadModel, UnknownArchitectureListsSupported) {
  GgufWriter w;
  w.AddString("general.architecture", "mamba");
  const std::string path = ::testing::TempDir() + "/mamba.gguf";
  ASSERT_TRUE(w.WriteFile(path).ok());
  auto m = LoadModel(LoadOptions{.model = path});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(m.status().message().find("mamba"), std::string::npos);
  EXPECT_NE(m.status().message().find("qwen2"), std::string::npos);
  std::filesystem::remove(path);
}

TEST(LoadModel, DummyWeightsAreDeterministicAndFinite) {
  // A small Llama shape from a config.json, so every dtype is quick to generate.
  const std::string cfg = ::testing::TempDir() + "/dummy_config.json";
  std::ofstream(cfg) << R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 1000, "hidden_size": 128,
    "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0})";
  for (const char* dtype : {"q4_0", "q4_1", "q8_0", "float16", "bfloat16", "float32"}) {
    LoadOptions o{.model = cfg, .load_format = "dummy", .dtype = dtype, .seed = 7};
    auto a = LoadModel(o);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    auto b = LoadModel(o);
    ASSERT_TRUE(b.ok());
    const Matrix& ma = (*a)->weights.layers[1].w_up;
    EXPECT_EQ(0, std::memcmp(ma.data, (*b)->weights.layers[1].w_up.data, ma.nbytes())) << dtype;
    KvCache kv(KvCacheShape{2, 2, 32, 16, 2});
    PrepareCpuWeights((*a)->weights);
    CpuForward llama((*a)->config, (*a)->weights);
    ForwardBatch batch;
    std::vector<int32_t> table = {0, 1};
    batch.seqs.push_back(ops::AttnSeq{0, 3, 3, table.data()});
    batch.token_ids = {1, 200, 999};
    batch.positions = {0, 1, 2};
    batch.logits_rows = {2};
    std::vector<float> logits(1000);
    ASSERT_TRUE(llama.Forward(batch, kv, logits.data()).ok());
    for (float x : logits) ASSERT_TRUE(std::isfinite(x)) << dtype;
  }
  // Named shapes resolve without files.
  auto shape = LoadModel(LoadOptions{.model = "nonexistent-shape", .load_format = "dummy"});
  ASSERT_FALSE(shape.ok());
  EXPECT_NE(shape.status().message().find("llama-2-7b"), std::string::npos);
  auto bad_dtype = LoadModel(LoadOptions{.model = cfg, .load_format = "dummy", .dtype = "int3"});
  ASSERT_FALSE(bad_dtype.ok());
  EXPECT_NE(bad_dtype.status().message().find("q4_0"), std::string::npos);
  std::filesystem::remove(cfg);
}

// Phi-3 LongRoPE from a GGUF (llama.cpp's converter's names): the factor tensors are checked
// where they are read, naming the tensor. Loading stops at the configuration.
TEST(LoadModel, Phi3LongRopeFactorTensorsAreChecked) {
  const auto load = [](int64_t n_long, const std::vector<float>& short_factors) {
    GgufWriter w;
    w.AddString("general.architecture", "phi3");
    w.AddUint32("phi3.context_length", 131072);
    w.AddUint32("phi3.embedding_length", 128);
    w.AddUint32("phi3.feed_forward_length", 256);
    w.AddUint32("phi3.block_count", 1);
    w.AddUint32("phi3.attention.head_count", 4);  // head_dim 32: 16 factors
    w.AddUint32("phi3.vocab_size", 64);
    w.AddUint32("phi3.rope.scaling.original_context_length", 4096);
    w.AddFloat32("phi3.rope.scaling.attn_factor", 1.19f);
    auto bytes = [](const std::vector<float>& v) {
      std::vector<uint8_t> b(v.size() * sizeof(float));
      std::memcpy(b.data(), v.data(), b.size());
      return b;
    };
    if (n_long > 0) {
      w.AddTensor("rope_factors_long.weight", GgmlType::kF32, {n_long}, bytes(std::vector<float>(n_long, 2.0f)));
    }
    if (!short_factors.empty()) {
      w.AddTensor("rope_factors_short.weight", GgmlType::kF32, {static_cast<int64_t>(short_factors.size())},
                  bytes(short_factors));
    }
    const std::string path = ::testing::TempDir() + "/phi3_longrope.gguf";
    EXPECT_TRUE(w.WriteFile(path).ok());
    auto m = LoadModel(LoadOptions{.model = path});
    std::filesystem::remove(path);
    return m.ok() ? std::string("ok") : m.status().message();
  };
  const std::vector<float> ok16(16, 1.0f);
  std::string e = load(15, ok16);
  EXPECT_NE(e.find("'rope_factors_long.weight' has 15 elements in 1 dimensions, expected a vector of head_dim / 2 = 16"),
            std::string::npos) << e;
  e = load(16, {});
  EXPECT_NE(e.find("'rope_factors_short.weight' is missing"), std::string::npos) << e;
  std::vector<float> bad = ok16;
  bad[3] = std::nanf("");
  e = load(16, bad);
  EXPECT_NE(e.find("'rope_factors_short.weight' must hold positive finite factors"), std::string::npos) << e;
  bad[3] = 0.0f;
  e = load(16, bad);
  EXPECT_NE(e.find("positive finite factors, got 0"), std::string::npos) << e;
  e = load(16, ok16);  // the factors pass; the file has no weights
  EXPECT_NE(e.find("missing tensor 'token_embd.weight'"), std::string::npos) << e;
}

// LongRoPE's inverse frequencies: 1 / (factor_i * base^(2i / d)) with the long set when the
// maximum model length exceeds the original context, else the short set (0: the model's
// context length).
TEST(LongRope, InverseFrequenciesFollowTheMaxModelLength) {
  ModelConfig c;
  c.head_dim = 8;
  c.rope_theta = 10000.0f;
  c.max_position_embeddings = 128;
  c.rope_scaling = RopeScaling::kLongRope;
  c.rope_original_max_position = 32;
  c.rope_long_factors = {1.0f, 2.0f, 4.0f, 8.0f};
  c.rope_short_factors = {1.0f, 1.5f, 1.25f, 1.125f};
  for (auto [len, factors] : {std::pair{int64_t{33}, &c.rope_long_factors}, std::pair{int64_t{0}, &c.rope_long_factors},
                              std::pair{int64_t{32}, &c.rope_short_factors}, std::pair{int64_t{8}, &c.rope_short_factors}}) {
    const std::vector<double> inv = ops::RopeInvFreq(c, /*local=*/false, {}, len);
    ASSERT_EQ(inv.size(), 4u);
    for (int i = 0; i < 4; ++i) {
      EXPECT_DOUBLE_EQ(inv[i], 1.0 / ((*factors)[i] * std::pow(10000.0, 2.0 * i / 8.0))) << len << " " << i;
    }
  }
}

}  // namespace
}  // namespace inferd
