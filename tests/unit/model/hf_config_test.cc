#include "format/hf_config.h"
#include "model/hf_config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

namespace inferd {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

bool Contains(const std::string& h, const std::string& n) { return h.find(n) != std::string::npos; }

ModelConfig MustParse(const char* text) {
  auto j = ParseJson(text, "test");
  EXPECT_TRUE(j.ok()) << j.status().ToString();
  auto c = ParseHfConfig(*j);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? *c : ModelConfig{};
}

// SmolLM2-135M-Instruct's config.json (abridged to the fields that matter).
constexpr const char kLlama[] = R"({
  "_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct",
  "architectures": ["LlamaForCausalLM"], "model_type": "llama",
  "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
  "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
  "max_position_embeddings": 8192, "rms_norm_eps": 1e-05, "rope_theta": 100000,
  "rope_scaling": null, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu"})";

TEST(HfConfig, Llama) {
  const ModelConfig c = MustParse(kLlama);
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.name, "HuggingFaceTB/SmolLM2-135M-Instruct");
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.intermediate_size, 1536);
  EXPECT_EQ(c.num_layers, 30);
  EXPECT_EQ(c.num_heads, 9);
  EXPECT_EQ(c.num_kv_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.max_position_embeddings, 8192);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-5f);
  EXPECT_FLOAT_EQ(c.rope_theta, 100000.0f);
  EXPECT_EQ(c.rope_style, RopeStyle::kNeox);
  EXPECT_EQ(c.rope_scaling, RopeScaling::kNone);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.qkv_bias);
}

TEST(HfConfig, Llama3RopeScalingAndHeadDim) {
  const ModelConfig c = MustParse(R"({
    "architectures": ["LlamaForCausalLM"], "vocab_size": 128256, "hidden_size": 4096,
    "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 8, "head_dim": 128, "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"}})");
  EXPECT_EQ(c.rope_scaling, RopeScaling::kLlama3);
  EXPECT_EQ(c.rope_factor, 8.0f);
  EXPECT_EQ(c.rope_low_freq_factor, 1.0f);
  EXPECT_EQ(c.rope_high_freq_factor, 4.0f);
  EXPECT_EQ(c.rope_original_max_position, 8192);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_FALSE(c.tie_word_embeddings);
}

// transformers 5 writes RoPE only in "rope_parameters" (no top-level rope_theta/rope_scaling).
TEST(HfConfig, Transformers5RopeParameters) {
  const ModelConfig c = MustParse(R"({
    "architectures": ["LlamaForCausalLM"], "vocab_size": 128256, "hidden_size": 4096,
    "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 8, "max_position_embeddings": 131072, "rms_norm_eps": 1e-05,
    "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}})");
  EXPECT_EQ(c.rope_theta, 500000.0f);
  EXPECT_EQ(c.rope_scaling, RopeScaling::kLlama3);
  EXPECT_EQ(c.rope_factor, 8.0f);
  EXPECT_EQ(c.rope_original_max_position, 8192);
  // Gemma 3: one object per attention type; the local base goes to the local layers.
  const ModelConfig g = MustParse(R"({
    "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "vocab_size": 262144,
    "hidden_size": 640, "intermediate_size": 2048, "num_hidden_layers": 18, "num_attention_heads": 4,
    "num_key_value_heads": 1, "head_dim": 256, "sliding_window": 512,
    "rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
                        "sliding_attention": {"rope_type": "default", "rope_theta": 20000.0}}})");
  EXPECT_EQ(g.rope_theta, 1000000.0f);
  EXPECT_EQ(g.rope_scaling, RopeScaling::kLinear);
  EXPECT_EQ(g.rope_factor, 8.0f);
  EXPECT_EQ(g.rope_local_theta, 20000.0f);
  // Errors name the key.
  const auto bad = [](const char* rope) {
    const std::string text = std::string(R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 10, "hidden_size": 8,
        "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "rope_parameters": )") + rope + "}";
    auto j = ParseJson(text, "test");
    if (!j.ok()) return j.status().message();
    const StatusOr<ModelConfig> c = ParseHfConfig(*j);
    return c.ok() ? std::string() : std::string(c.status().message());
  };
  EXPECT_TRUE(Contains(bad("[1]"), "'rope_parameters' must be an object")) << bad("[1]");
  EXPECT_TRUE(Contains(bad(R"({"rope_type": "yarn", "factor": 4})"), "rope_parameters type 'yarn' is not supported"));
  EXPECT_TRUE(Contains(bad(R"({"full_attention": {}, "chunked_attention": {}})"), "rope_parameters.chunked_attention"));
  EXPECT_TRUE(Contains(bad(R"({"rope_theta": "x"})"), "rope_theta"));
}

TEST(HfConfig, MistralWithLinearScalingAndDefaultKvHeads) {
  const ModelConfig c = MustParse(R"({
    "architectures": ["MistralForCausalLM"], "vocab_size": 32000, "hidden_size": 4096,
    "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
    "max_position_embeddings": 32768, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
    "sliding_window": null, "rope_scaling": {"type": "linear", "factor": 2.0}})");
  EXPECT_EQ(c.arch, "mistral");
  EXPECT_EQ(c.num_kv_heads, 32);  // absent -> num_attention_heads
  EXPECT_EQ(c.rope_scaling, RopeScaling::kLinear);
  EXPECT_EQ(c.rope_factor, 2.0f);
}

TEST(HfConfig, Qwen2HasQkvBias) {
  const ModelConfig c = MustParse(R"({
    "architectures": ["Qwen2ForCausalLM"], "vocab_size": 151936, "hidden_size": 896,
    "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
    "num_key_value_heads": 2, "max_position_embeddings": 32768, "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0, "tie_word_embeddings": true, "use_sliding_window": false})");
  EXPECT_EQ(c.arch, "qwen2");
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-6f);
  EXPECT_EQ(c.rope_style, RopeStyle::kNeox);
}

TEST(HfConfig, Baichuan7B) {
  const ModelConfig c = MustParse(R"({
    "architectures": ["BaichuanForCausalLM"], "vocab_size": 125696, "hidden_size": 4096,
    "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
    "model_max_length": 4096, "rms_norm_eps": 1e-06})");
  EXPECT_EQ(c.arch, "baichuan");
  EXPECT_EQ(c.max_position_embeddings, 4096);
  EXPECT_EQ(c.num_kv_heads, 32);
  EXPECT_FLOAT_EQ(c.rope_theta, 10000.0f);

  EXPECT_FALSE(c.alibi);

  // Baichuan-13B: ALiBi.
  const ModelConfig b13 = MustParse(R"({"architectures": ["BaichuanForCausalLM"], "vocab_size": 125696,
    "hidden_size": 5120, "intermediate_size": 13696, "num_hidden_layers": 40,
    "num_attention_heads": 40})");
  EXPECT_TRUE(b13.alibi);
  EXPECT_TRUE(b13.normalize_lm_head);  // Baichuan2's vocabulary: NormHead
  EXPECT_TRUE(c.normalize_lm_head);    // c is Baichuan2-7B
  // Baichuan2-7B (the 13B spelling at the 7B size): RoPE, as vLLM decides.
  const ModelConfig b2 = MustParse(R"({"architectures": ["BaichuanForCausalLM"], "vocab_size": 125696,
    "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
    "num_attention_heads": 32})");
  EXPECT_FALSE(b2.alibi);
}

TEST(HfConfig, Errors) {
  struct Case { const char* text; StatusCode code; const char* part; };
  const Case cases[] = {
      {R"({"architectures": ["GPT2LMHeadModel"], "vocab_size": 1})", StatusCode::kUnimplemented,
       "architecture 'GPT2LMHeadModel' is not supported (supported: LlamaForCausalLM"},
      {R"({"vocab_size": 1})", StatusCode::kInvalidArgument, "'architectures'"},
      {R"({"architectures": "LlamaForCausalLM"})", StatusCode::kInvalidArgument, "'architectures'"},
      {R"([1, 2])", StatusCode::kInvalidArgument, "top level"},
      {R"({"architectures": ["LlamaForCausalLM"], "vocab_size": "32000", "hidden_size": 8,
           "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1})",
       StatusCode::kInvalidArgument, "'vocab_size' must be an integer, got string \"32000\""},
      {R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 1, "hidden_size": 8,
           "intermediate_size": 8, "num_attention_heads": 1})",
       StatusCode::kInvalidArgument, "required field 'num_hidden_layers' is missing"},
      {R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 1, "hidden_size": 8,
           "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1,
           "rms_norm_eps": "small"})", StatusCode::kInvalidArgument, "'rms_norm_eps' must be a number"},
      {R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 1, "hidden_size": 8,
           "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1,
           "tie_word_embeddings": 1})", StatusCode::kInvalidArgument, "'tie_word_embeddings' must be a boolean"},
      {R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 1, "hidden_size": 8,
           "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1,
           "rope_scaling": {"type": "yarn", "factor": 4}})", StatusCode::kUnimplemented,
       "rope_scaling type 'yarn'"},
      {R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 1, "hidden_size": 8,
           "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1,
           "rope_scaling": {"type": "linear"}})", StatusCode::kInvalidArgument, "needs a 'factor'"},
      {R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 1, "hidden_size": 8,
           "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1,
           "rope_scaling": [1]})", StatusCode::kInvalidArgument, "'rope_scaling' must be an object"},
      {R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 1e300, "hidden_size": 8,
           "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1})",
       StatusCode::kInvalidArgument, "'vocab_size' must be an integer"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    auto j = ParseJson(c.text, "test");
    ASSERT_TRUE(j.ok());
    auto r = ParseHfConfig(*j);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), c.code) << r.status().ToString();
    EXPECT_TRUE(Contains(r.status().message(), c.part)) << r.status().message();
  }
}

// Gemma 3 270M's config.json (text model; the fields that matter).
constexpr const char kGemma3[] = R"({
  "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
  "vocab_size": 262144, "hidden_size": 640, "intermediate_size": 2048, "num_hidden_layers": 18,
  "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256, "max_position_embeddings": 32768,
  "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0, "rope_scaling": null,
  "sliding_window": 512, "query_pre_attn_scalar": 256, "final_logit_softcapping": null,
  "attn_logit_softcapping": null, "hidden_activation": "gelu_pytorch_tanh",
  "layer_types": ["sliding_attention", "sliding_attention", "sliding_attention", "sliding_attention",
                  "sliding_attention", "full_attention", "sliding_attention", "sliding_attention",
                  "sliding_attention", "sliding_attention", "sliding_attention", "full_attention",
                  "sliding_attention", "sliding_attention", "sliding_attention", "sliding_attention",
                  "sliding_attention", "full_attention"]})";

TEST(HfConfig, Gemma3Features) {
  const ModelConfig c = MustParse(kGemma3);
  EXPECT_EQ(c.arch, "gemma3");
  EXPECT_EQ(c.head_dim, 256);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_TRUE(c.post_norms);
  EXPECT_TRUE(c.tie_word_embeddings);  // Gemma's default when the key is absent
  EXPECT_EQ(c.activation, Activation::kGeluTanh);
  EXPECT_FLOAT_EQ(c.embedding_scale, std::sqrt(640.0f));
  EXPECT_FLOAT_EQ(c.AttentionScale(), 1.0f / 16.0f);
  EXPECT_EQ(c.sliding_window_pattern, 6);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const bool global = (i + 1) % 6 == 0;
    EXPECT_EQ(c.Layer(i).sliding_window, global ? 0 : 512) << i;
    EXPECT_EQ(c.Layer(i).local_rope, !global) << i;
  }
  EXPECT_FLOAT_EQ(c.rope_local_theta, 10000.0f);
  EXPECT_EQ(c.final_logit_softcap, 0.0f);
  EXPECT_TRUE(c.Validate().ok());
  // layer_types that do not repeat one pattern, and another activation, are refused.
  auto j = ParseJson(kGemma3, "test");
  ASSERT_TRUE(j.ok());
  json bad = *j;
  bad["layer_types"][0] = "full_attention";
  EXPECT_EQ(ParseHfConfig(bad).status().code(), StatusCode::kUnimplemented);
  bad = *j;
  bad["hidden_activation"] = "relu";
  EXPECT_TRUE(Contains(ParseHfConfig(bad).status().message(), "relu"));
  bad = *j;
  bad["attn_logit_softcapping"] = 50.0;  // read, not ignored
  auto parsed = ParseHfConfig(bad);
  ASSERT_TRUE(parsed.ok());
  EXPECT_FLOAT_EQ(parsed->attn_logit_softcap, 50.0f);
}

TEST(HfConfig, Qwen3MistralBaichuan) {
  ModelConfig q = MustParse(R"({"architectures": ["Qwen3ForCausalLM"], "vocab_size": 151936, "hidden_size": 1024,
    "intermediate_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8,
    "head_dim": 128, "rope_theta": 1000000, "attention_bias": false, "use_sliding_window": false,
    "sliding_window": null})");
  EXPECT_EQ(q.arch, "qwen3");
  EXPECT_TRUE(q.qk_norm);
  EXPECT_FALSE(q.qkv_bias);
  EXPECT_EQ(q.head_dim, 128);  // not hidden / heads (64)
  EXPECT_EQ(q.sliding_window, 0);
  ModelConfig m = MustParse(R"({"architectures": ["MistralForCausalLM"], "vocab_size": 32000, "hidden_size": 4096,
    "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
    "sliding_window": 4096})");
  EXPECT_EQ(m.Layer(0).sliding_window, 4096);
  EXPECT_EQ(m.Layer(31).sliding_window, 4096);
  ModelConfig b = MustParse(R"({"architectures": ["BaiChuanForCausalLM"], "vocab_size": 64000, "hidden_size": 64,
    "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "model_max_length": 4096})");
  EXPECT_EQ(b.arch, "baichuan");  // the 7B spelling is RoPE at any size
  EXPECT_FALSE(b.alibi);
  EXPECT_FALSE(b.normalize_lm_head);  // Baichuan-7B's vocabulary (64000): a plain head
}

TEST(HfConfig, MakeHfConfigRoundTrips) {
  ModelConfig c = MustParse(kLlama);
  c.rope_scaling = RopeScaling::kLlama3;
  c.rope_factor = 8.0f;
  c.rope_original_max_position = 4096;
  auto made = MakeHfConfig(c, "bfloat16", 1, 2);
  ASSERT_TRUE(made.ok());
  const json& j = *made;
  EXPECT_EQ(j["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(j["torch_dtype"], "bfloat16");
  EXPECT_EQ(j["eos_token_id"], 2);
  EXPECT_EQ(j["rms_norm_eps"].dump(), "1e-05");  // shortest float text, not 9.99999974e-06
  auto back = ParseHfConfig(j);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->vocab_size, c.vocab_size);
  EXPECT_EQ(back->num_kv_heads, c.num_kv_heads);
  EXPECT_EQ(back->head_dim, c.head_dim);
  EXPECT_EQ(back->rms_norm_eps, c.rms_norm_eps);
  EXPECT_EQ(back->rope_theta, c.rope_theta);
  EXPECT_EQ(back->rope_scaling, RopeScaling::kLlama3);
  EXPECT_EQ(back->rope_factor, 8.0f);
  EXPECT_EQ(back->rope_original_max_position, 4096);
  EXPECT_EQ(back->tie_word_embeddings, true);

  ModelConfig q = c;
  q.arch = "qwen2";
  q.rope_scaling = RopeScaling::kNone;
  auto qj = MakeHfConfig(q, "float16", 0, 0);
  ASSERT_TRUE(qj.ok());
  auto qb = ParseHfConfig(*qj);
  ASSERT_TRUE(qb.ok());
  EXPECT_EQ(qb->arch, "qwen2");
  EXPECT_TRUE(qb->qkv_bias);
  EXPECT_EQ(qb->rope_scaling, RopeScaling::kNone);

  ModelConfig g = c;
  g.arch = "gemma3";  // its config.json has keys export-hf does not write
  EXPECT_EQ(MakeHfConfig(g, "float16", 0, 0).status().code(), StatusCode::kUnimplemented);
}

class HfFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("inferd_hf_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
  }
  fs::path dir_;
};

TEST_F(HfFilesTest, LoadHfConfig) {
  auto missing = LoadHfConfig(dir_.string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  Write("config.json", kLlama);
  auto c = LoadHfConfig(dir_.string());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->num_layers, 30);
  Write("config.json", "{\"architectures\": [");
  c = LoadHfConfig(dir_.string());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(c.status().message(), "config.json: invalid JSON")) << c.status().message();
}

TEST_F(HfFilesTest, GenerationConfig) {
  Write("generation_config.json", R"({"bos_token_id": 1, "eos_token_id": [128001, 128009],
      "do_sample": true, "temperature": 0.6, "top_p": 0.9, "top_k": 40,
      "repetition_penalty": 1.1, "max_new_tokens": 256})");
  auto g = LoadGenerationConfig(dir_.string());
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_FLOAT_EQ(*g->temperature, 0.6f);
  EXPECT_FLOAT_EQ(*g->top_p, 0.9f);
  EXPECT_FALSE(g->min_p.has_value());
  EXPECT_EQ(*g->top_k, 40);
  EXPECT_FLOAT_EQ(*g->repetition_penalty, 1.1f);
  EXPECT_EQ(*g->max_new_tokens, 256);
  EXPECT_EQ(g->eos_token_ids, (std::vector<int>{128001, 128009}));

  Write("g2.json", R"({"eos_token_id": 2})");
  g = LoadGenerationConfig((dir_ / "g2.json").string());
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->eos_token_ids, std::vector<int>{2});
  EXPECT_FALSE(g->temperature.has_value());

  Write("g3.json", R"({"temperature": "hot"})");
  g = LoadGenerationConfig((dir_ / "g3.json").string());
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(Contains(g.status().message(), "'temperature' must be a number")) << g.status().message();
  Write("g4.json", R"({"eos_token_id": [1, "x"]})");
  EXPECT_FALSE(LoadGenerationConfig((dir_ / "g4.json").string()).ok());
  EXPECT_EQ(LoadGenerationConfig((dir_ / "none.json").string()).status().code(), StatusCode::kNotFound);
}

TEST_F(HfFilesTest, ReadFileToStringAndParseJson) {
  Write("a.txt", std::string("x\0y", 3));
  auto s = ReadFileToString((dir_ / "a.txt").string());
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, std::string("x\0y", 3));
  EXPECT_EQ(ReadFileToString((dir_ / "b.txt").string()).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ReadFileToString(dir_.string()).status().code(), StatusCode::kInvalidArgument);
  auto j = ParseJson("{\"a\": }", "thing.json");
  ASSERT_FALSE(j.ok());
  EXPECT_TRUE(Contains(j.status().message(), "thing.json: invalid JSON")) << j.status().message();
}

// Phi-3 LongRoPE (Phi-3-mini-128k-instruct's config.json at its shapes; head_dim 96: 48
// factors each, here 1 + i / 10 and 1 + i / 100).
std::string Phi3LongRopeConfig(const std::string& rope, const std::string& extra = "", int64_t num_factors = 48) {
  std::string longf, shortf;
  for (int64_t i = 0; i < num_factors; ++i) {
    if (i > 0) {
      longf += ", ";
      shortf += ", ";
    }
    longf += std::to_string(1.0 + static_cast<double>(i) / 10.0);
    shortf += std::to_string(1.0 + static_cast<double>(i) / 100.0);
  }
  std::string r = rope;
  for (auto [key, value] : {std::pair{std::string("LONG"), longf}, std::pair{std::string("SHORT"), shortf}}) {
    if (auto at = r.find(key); at != std::string::npos) r.replace(at, key.size(), value);
  }
  return R"({"architectures": ["Phi3ForCausalLM"], "vocab_size": 32064, "hidden_size": 3072,
    "intermediate_size": 8192, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
    "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 262144)" +
         extra + R"(, "rope_scaling": )" + r + "}";
}

std::string ParseError(const std::string& text) {
  auto j = ParseJson(text, "test");
  if (!j.ok()) return "json: " + j.status().message();
  const StatusOr<ModelConfig> c = ParseHfConfig(*j);
  return c.ok() ? std::string("ok") : std::string(c.status().message());
}

TEST(HfConfig, Phi3LongRope) {
  const std::string kLongRope = R"({"type": "longrope", "long_factor": [LONG], "short_factor": [SHORT]})";
  const ModelConfig c = MustParse(Phi3LongRopeConfig(kLongRope, R"(, "original_max_position_embeddings": 4096)").c_str());
  EXPECT_EQ(c.rope_scaling, RopeScaling::kLongRope);
  ASSERT_EQ(c.rope_long_factors.size(), 48u);
  ASSERT_EQ(c.rope_short_factors.size(), 48u);
  EXPECT_FLOAT_EQ(c.rope_long_factors[47], 5.7f);
  EXPECT_FLOAT_EQ(c.rope_short_factors[47], 1.47f);
  EXPECT_EQ(c.rope_original_max_position, 4096);
  // transformers: sqrt(1 + ln(131072 / 4096) / ln(4096)).
  EXPECT_FLOAT_EQ(c.rope_attn_factor, static_cast<float>(std::sqrt(1.0 + std::log(32.0) / std::log(4096.0))));
  EXPECT_FLOAT_EQ(c.rope_factor, 1.0f);
  EXPECT_TRUE(c.Validate().ok()) << c.Validate().ToString();
  // The factor set follows the engine's maximum model length.
  EXPECT_EQ(&c.LongRopeFactors(131072), &c.rope_long_factors);
  EXPECT_EQ(&c.LongRopeFactors(4097), &c.rope_long_factors);
  EXPECT_EQ(&c.LongRopeFactors(4096), &c.rope_short_factors);

  // The first Phi-3 configs say "su"; transformers 5 writes "rope_parameters" with the original
  // context inside (the top-level key wins when both are there). A given attention_factor is
  // used as is; a given factor replaces max_position_embeddings / original.
  const ModelConfig su = MustParse(Phi3LongRopeConfig(
      R"({"type": "su", "long_factor": [LONG], "short_factor": [SHORT], "original_max_position_embeddings": 8192})")
                                       .c_str());
  EXPECT_EQ(su.rope_scaling, RopeScaling::kLongRope);
  EXPECT_EQ(su.rope_original_max_position, 8192);
  std::string v5 = Phi3LongRopeConfig(
      R"(null, "rope_parameters": {"rope_type": "longrope", "rope_theta": 250000.0, "long_factor": [LONG],
          "short_factor": [SHORT], "original_max_position_embeddings": 2048, "attention_factor": 1.5,
          "partial_rotary_factor": 1.0})");
  const ModelConfig t5 = MustParse(v5.c_str());
  EXPECT_EQ(t5.rope_theta, 250000.0f);
  EXPECT_EQ(t5.rope_original_max_position, 2048);
  EXPECT_EQ(t5.rope_attn_factor, 1.5f);
  const ModelConfig top = MustParse(Phi3LongRopeConfig(
      R"({"type": "longrope", "long_factor": [LONG], "short_factor": [SHORT], "original_max_position_embeddings": 2048,
          "factor": 4.0})", R"(, "original_max_position_embeddings": 4096)").c_str());
  EXPECT_EQ(top.rope_original_max_position, 4096);
  EXPECT_FLOAT_EQ(top.rope_attn_factor, static_cast<float>(std::sqrt(1.0 + std::log(4.0) / std::log(4096.0))));
  // No extension (max_position_embeddings = original): attention factor 1.
  const ModelConfig same = MustParse(Phi3LongRopeConfig(kLongRope, R"(, "original_max_position_embeddings": 131072)").c_str());
  EXPECT_EQ(same.rope_attn_factor, 1.0f);
}

TEST(HfConfig, Phi3LongRopeErrors) {
  const std::string orig = R"(, "original_max_position_embeddings": 4096)";
  struct Case { std::string text; const char* part; };
  const Case cases[] = {
      {Phi3LongRopeConfig(R"({"type": "longrope", "long_factor": [LONG], "short_factor": [SHORT]})", orig, 47),
       "'rope_scaling.long_factor' has 47 entries, expected head_dim / 2 = 48"},
      {Phi3LongRopeConfig(R"({"type": "longrope", "long_factor": [LONG], "short_factor": [SHORT]})", orig, 100000),
       "'rope_scaling.long_factor' has 100000 entries"},
      {Phi3LongRopeConfig(R"({"type": "longrope", "long_factor": [LONG]})", orig),
       "'rope_scaling.short_factor' is missing"},
      {Phi3LongRopeConfig(R"({"type": "longrope", "long_factor": {"a": 1}, "short_factor": [SHORT]})", orig),
       "'rope_scaling.long_factor' must be an array"},
      {Phi3LongRopeConfig(R"({"type": "longrope", "long_factor": [LONG], "short_factor": [SHORT, "x"]})", orig),
       "'rope_scaling.short_factor' has 49 entries"},
      {Phi3LongRopeConfig(R"({"type": "longrope", "long_factor": ["x", LONG], "short_factor": [SHORT]})", orig, 47),
       "'rope_scaling.long_factor' must hold positive finite numbers, got \"x\""},
      {Phi3LongRopeConfig(R"({"type": "longrope", "long_factor": [0, LONG], "short_factor": [SHORT]})", orig, 47),
       "must hold positive finite numbers, got 0"},
      {Phi3LongRopeConfig(R"({"type": "longrope", "long_factor": [-1, LONG], "short_factor": [SHORT]})", orig, 47),
       "must hold positive finite numbers, got -1"},
      {Phi3LongRopeConfig(R"({"type": "longrope", "long_factor": [1e300, LONG], "short_factor": [SHORT]})", orig, 47),
       "must hold positive finite numbers"},
      {Phi3LongRopeConfig(R"({"type": "longrope", "long_factor": [LONG], "short_factor": [SHORT]})"),
       "LongRoPE needs 'original_max_position_embeddings'"},
      {Phi3LongRopeConfig(R"({"type": "longrope", "long_factor": [LONG], "short_factor": [SHORT]})",
                          R"(, "original_max_position_embeddings": -5)"),
       "between 1 and"},
      {Phi3LongRopeConfig(R"({"type": "longrope", "long_factor": [LONG], "short_factor": [SHORT],
                              "attention_factor": -2})", orig),
       "'factor' and 'attention_factor' must be positive"},
      {Phi3LongRopeConfig(R"({"type": "longrope", "long_factor": [LONG], "short_factor": [SHORT]})",
                          orig + R"(, "partial_rotary_factor": 0.75)"),
       "'partial_rotary_factor' 0.75"},
      {Phi3LongRopeConfig(R"(null, "rope_parameters": {"rope_type": "longrope", "long_factor": [LONG],
                              "short_factor": [SHORT], "partial_rotary_factor": 0.5})", orig),
       "'rope_parameters.partial_rotary_factor' 0.5"},
      {Phi3LongRopeConfig(R"({"type": "yarn", "factor": 4.0})", orig), "type 'yarn' is not supported"},
  };
  for (const Case& c : cases) {
    const std::string got = ParseError(c.text);
    EXPECT_TRUE(Contains(got, c.part)) << "expected '" << c.part << "', got: " << got;
  }
  // A config filled elsewhere (a GGUF, a test) is held to the same sizes.
  ModelConfig m = MustParse(Phi3LongRopeConfig(R"({"type": "longrope", "long_factor": [LONG], "short_factor": [SHORT]})",
                                               orig).c_str());
  m.rope_short_factors.pop_back();
  EXPECT_TRUE(Contains(m.Validate().message(), "LongRoPE short factors have 47 entries, expected head_dim / 2 = 48"));
  m.rope_short_factors.push_back(std::nanf(""));
  EXPECT_TRUE(Contains(m.Validate().message(), "positive and finite"));
  m.rope_short_factors.back() = 1.0f;
  m.rope_attn_factor = 0.0f;
  EXPECT_TRUE(Contains(m.Validate().message(), "attention factor"));
}

// InternLM2 (remote code): its own tensor names, grouped wqkv; "dynamic" RoPE scaling is plain
// RoPE within max_position_embeddings. internlm2-chat-7b's config.json at its shapes.
TEST(HfConfig, InternLm2) {
  const char* kInternLm2 = R"({"architectures": ["InternLM2ForCausalLM"], "model_type": "internlm2",
    "auto_map": {"AutoConfig": "configuration_internlm2.InternLM2Config"}, "bias": false, "hidden_act": "silu",
    "vocab_size": 92544, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-05, "rope_theta": 1000000, "rope_scaling": {"type": "dynamic", "factor": 2.0},
    "tie_word_embeddings": false})";
  const ModelConfig c = MustParse(kInternLm2);
  EXPECT_EQ(c.arch, "internlm2");
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.rope_theta, 1e6f);
  EXPECT_EQ(c.rope_style, RopeStyle::kNeox);
  EXPECT_EQ(c.rope_scaling, RopeScaling::kNone);
  std::string bias = kInternLm2;
  bias.replace(bias.find(R"("bias": false)"), 13, R"("bias": true)");
  EXPECT_TRUE(Contains(ParseError(bias), "\"bias\": true")) << ParseError(bias);
}

}  // namespace
}  // namespace inferd
