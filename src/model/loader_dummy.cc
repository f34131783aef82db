// --load-format dummy: random weights (fixed seed) at a real model's shape, for
// benchmarks without the files. The values are scaled so activations stay finite.
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>

#include "format/hf_config.h"
#include "model/hf_config.h"
#include "model/model.h"
#include "util/bytes.h"
#include "util/thread_pool.h"

namespace inferd {
namespace {

struct NamedShape {
  const char* name;
  int64_t vocab, hidden, ffn, layers, heads, kv_heads, ctx;
  float theta, eps;
  bool tied;
};

constexpr NamedShape kShapes[] = {
    {"llama-2-7b", 32000, 4096, 11008, 32, 32, 32, 4096, 10000.0f, 1e-5f, false},
    {"llama-2-13b", 32000, 5120, 13824, 40, 40, 40, 4096, 10000.0f, 1e-5f, false},
    {"llama-3-8b", 128256, 4096, 14336, 32, 32, 8, 8192, 500000.0f, 1e-5f, false},
    {"qwen2-0.5b", 151936, 896, 4864, 24, 14, 2, 32768, 1000000.0f, 1e-6f, true},
    {"smollm2-135m", 49152, 576, 1536, 30, 9, 3, 8192, 100000.0f, 1e-5f, true},
};

uint64_t SplitMix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

StatusOr<GgmlType> DummyType(const std::string& dtype) {
  if (dtype == "auto" || dtype == "float16" || dtype == "f16" || dtype == "half") return GgmlType::kF16;
  if (dtype == "float32" || dtype == "f32" || dtype == "float") return GgmlType::kF32;
  if (dtype == "bfloat16" || dtype == "bf16") return GgmlType::kBF16;
  if (dtype == "q4_0") return GgmlType::kQ4_0;
  if (dtype == "q4_1") return GgmlType::kQ4_1;
  if (dtype == "q8_0") return GgmlType::kQ8_0;
  return InvalidArgument("unknown dtype '" + dtype + "' for dummy weights: use float32, float16, bfloat16, q4_0, q4_1 or q8_0");
}

// Fills a [rows, cols] matrix of `type` with uniform values in (-scale, scale):
// row r is a function of (seed, r) only, generated in parallel.
Matrix RandomMatrix(GgmlType type, int64_t rows, int64_t cols, float scale, uint64_t seed, ModelWeights& w) {
  Matrix m;
  m.type = type;
  m.rows = rows;
  m.cols = cols;
  m.row_bytes = GgmlRowSize(type, cols);
  auto buf = std::shared_ptr<uint8_t[]>(new uint8_t[m.nbytes()]);
  m.data = buf.get();
  ThreadPool::Global().ParallelFor(rows, 64, [&](int64_t begin, int64_t end) {
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = begin; r < end; ++r) {
      uint64_t state = SplitMix(seed ^ (static_cast<uint64_t>(r) * 0x2545F4914F6CDD1Dull));
      for (int64_t c = 0; c < cols; ++c) {
        state = SplitMix(state);
        row[c] = scale * (static_cast<float>(state >> 40) / static_cast<float>(1 << 24) * 2.0f - 1.0f);
      }
      (void)QuantizeRow(type, row.data(), buf.get() + r * m.row_bytes, cols);
    }
  });
  w.storage.push_back(buf);
  w.nbytes += m.nbytes();
  return m;
}

StatusOr<ModelConfig> DummyConfig(const std::string& spec) {
  for (const NamedShape& s : kShapes) {
    if (spec == s.name) {
      ModelConfig c;
      c.arch = "llama";
      c.name = std::string(s.name) + " (dummy weights)";
      c.vocab_size = s.vocab;
      c.hidden_size = s.hidden;
      c.intermediate_size = s.ffn;
      c.num_layers = s.layers;
      c.num_heads = s.heads;
      c.num_kv_heads = s.kv_heads;
      c.head_dim = s.hidden / s.heads;
      c.max_position_embeddings = s.ctx;
      c.rope_theta = s.theta;
      c.rms_norm_eps = s.eps;
      c.rope_style = RopeStyle::kNeox;
      c.tie_word_embeddings = s.tied;
      return c;
    }
  }
  std::error_code ec;
  if (std::filesystem::exists(spec, ec)) {
    std::filesystem::path p(spec);
    if (std::filesystem::is_directory(p, ec)) return LoadHfConfig(spec);
    INFERD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(spec));
    INFERD_ASSIGN_OR_RETURN(nlohmann::json j, ParseJson(text, spec));
    return ParseHfConfig(j);
  }
  return NotFound("dummy model '" + spec + "': not a named shape (" + DummyShapeNames() +
                  ") and no such config.json or directory");
}

}  // namespace

const char* DummyShapeNames() { return "llama-2-7b, llama-2-13b, llama-3-8b, qwen2-0.5b, smollm2-135m"; }

StatusOr<std::unique_ptr<LoadedModel>> LoadDummyModel(const LoadOptions& options) {
  auto model = std::make_unique<LoadedModel>();
  model->format = "dummy";
  model->path = options.model;
  INFERD_ASSIGN_OR_RETURN(model->config, DummyConfig(options.model));
  INFERD_RETURN_IF_ERROR(model->config.Validate());
  INFERD_ASSIGN_OR_RETURN(GgmlType type, DummyType(options.dtype));
  model->weight_type = GgmlTypeName(static_cast<uint32_t>(type));
  const ModelConfig& c = model->config;
  // The sizes come from a config file: check the total before allocating any of it.
  const int64_t weight_bytes = SaturatingMul(c.NumParameters(), static_cast<int64_t>(GgmlRowSize(type, 256))) / 256;
  INFERD_RETURN_IF_ERROR(CheckFitsInMemory(weight_bytes,
                                           fmt::format("dummy weights for '{}' ({:.1f}B parameters)", options.model,
                                                       static_cast<double>(c.NumParameters()) / 1e9)));
  ModelWeights& w = model->weights;
  const int64_t q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim, h = c.hidden_size;
  uint64_t seed = SplitMix(options.seed + 1);
  auto next = [&] { return seed = SplitMix(seed); };
  auto scale = [](int64_t fan_in) { return 1.0f / std::sqrt(static_cast<float>(fan_in)); };
  w.tok_embd = RandomMatrix(type, c.vocab_size, h, 1.0f, next(), w);
  w.output = c.tie_word_embeddings ? w.tok_embd : RandomMatrix(type, c.vocab_size, h, scale(h), next(), w);
  w.output_norm.assign(h, 1.0f);
  w.layers.resize(c.num_layers);
  for (LayerWeights& l : w.layers) {
    l.attn_norm.assign(h, 1.0f);
    l.ffn_norm.assign(h, 1.0f);
    l.wq = RandomMatrix(type, q, h, scale(h), next(), w);
    l.wk = RandomMatrix(type, kv, h, scale(h), next(), w);
    l.wv = RandomMatrix(type, kv, h, scale(h), next(), w);
    l.wo = RandomMatrix(type, h, q, scale(q), next(), w);
    l.w_gate = RandomMatrix(type, c.intermediate_size, h, scale(h), next(), w);
    l.w_up = RandomMatrix(type, c.intermediate_size, h, scale(h), next(), w);
    l.w_down = RandomMatrix(type, h, c.intermediate_size, scale(c.intermediate_size), next(), w);
    if (c.qkv_bias) {
      l.bq.assign(q, 0.0f);
      l.bk.assign(kv, 0.0f);
      l.bv.assign(kv, 0.0f);
    }
    if (c.qk_norm) {
      l.q_norm.assign(c.head_dim, 1.0f);
      l.k_norm.assign(c.head_dim, 1.0f);
    }
    if (c.post_norms) {
      l.post_attn_norm.assign(h, 1.0f);
      l.post_ffn_norm.assign(h, 1.0f);
    }
  }
  // A directory given as the shape may also hold tokenizer files.
  std::error_code ec;
  if (std::filesystem::is_directory(options.model, ec)) {
    auto tok = Tokenizer::FromHfDir(options.model);
    if (tok.ok()) model->tokenizer = std::move(tok).value();
  }
  return model;
}

}  // namespace inferd
