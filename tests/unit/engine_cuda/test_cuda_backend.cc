// The CUDA backend against the CPU backend on the embedded model: device selection and
// its errors (runs without a GPU), then, on a GPU: teacher-forced logits within tolerance
// of the CPU's exact fp32 forward, greedy continuations that agree except at near-ties,
// batch invariance (a seeded request gives the same tokens alone or among 15 others, with
// CUDA graphs or eagerly), and a memory split that stays inside the budget.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "../model_test_util.h"
#include "backend/backend.h"
#include "engine/engine_core.h"
#include "inferd/engine.h"

namespace inferd {
namespace {

bool HaveGpu(std::string* why) {
  StatusOr<int> n = CudaDeviceCount();
  if (!n.ok()) *why = n.status().message();
  return n.ok();
}

#define INFERD_REQUIRE_GPU()                                    \
  do {                                                          \
    std::string why;                                            \
    if (!HaveGpu(&why)) GTEST_SKIP() << why;                    \
  } while (0)

std::unique_ptr<LoadedModel> Load(const std::string& path) {
  auto model = LoadModel(LoadOptions{.model = path});
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? std::move(model).value() : nullptr;
}

StatusOr<std::unique_ptr<Engine>> MakeEngine(const std::string& path, const std::string& device,
                                             EngineOptions o = {}) {
  o.device = device;
  if (o.max_model_len == 0) o.max_model_len = 1024;
  if (o.kv_cache_bytes == 0) o.kv_cache_bytes = int64_t{256} << 20;
  o.max_num_seqs = 16;
  return Engine::Create(Load(path), o);
}

TEST(CudaDeviceTest, DeviceSelection) {
  INFERD_REQUIRE_MODEL(path);
  std::string why;
  const bool gpu = HaveGpu(&why);
  auto model = Load(path);
  ASSERT_TRUE(model);
  BackendOptions o;
  o.kv.layers_per_block = model->config.num_layers;
  o.kv.num_kv_heads = model->config.num_kv_heads;
  o.kv.head_dim = model->config.head_dim;
  o.kv.dtype = KvDtype::kF16;
  o.max_model_len = 256;
  o.kv_cache_bytes = int64_t{64} << 20;
  o.max_num_batched_tokens = 64;
  o.max_num_seqs = 4;
  o.device = "cuda";
  StatusOr<std::unique_ptr<Backend>> b = CreateBackend(*model, o);
  if (gpu) {
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    EXPECT_EQ((*b)->name(), "cuda");
  } else {
    ASSERT_FALSE(b.ok());
    EXPECT_NE(b.status().message().find("no CUDA device"), std::string::npos) << b.status().message();
  }
  o.device = "auto";  // a GPU when there is one, else the CPU
  b = CreateBackend(*model, o);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ((*b)->name(), gpu ? "cuda" : "cpu");
  for (const char* bad : {"cuda:x", "cuda:-1", "tpu"}) {
    o.device = bad;
    EXPECT_EQ(CreateBackend(*model, o).status().code(), StatusCode::kInvalidArgument) << bad;
  }
  if (gpu) {
    o.device = "cuda:999";
    EXPECT_FALSE(CreateBackend(*model, o).ok());
  }
}

class CudaVsCpuTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // The CPU reference runs every matmul in fp32 on dequantized rows (and an fp32 cache).
    setenv("INFERD_CPU_MATMUL", "fp32", 1);
  }
  static void TearDownTestSuite() { unsetenv("INFERD_CPU_MATMUL"); }
};

std::vector<int32_t> TestTokens(const Engine& e) {
  const std::string text =
      "The GNU General Public License is a free, copyleft license for software and other kinds of works. "
      "The licenses for most software and other practical works are designed to take away your freedom to "
      "share and change the works. By contrast, the GNU General Public License is intended to guarantee your "
      "freedom to share and change all versions of a program--to make sure it remains free software for all "
      "its users. When we speak of free software, we are referring to freedom, not price.";
  return e.tokenizer().Encode(text, true, false);
}

TEST_F(CudaVsCpuTest, TeacherForcedLogitsWithinTolerance) {
  INFERD_REQUIRE_MODEL(path);
  INFERD_REQUIRE_GPU();
  EngineOptions cpu_opts;
  cpu_opts.kv_cache_dtype = "float32";
  auto cpu = MakeEngine(path, "cpu", cpu_opts);
  ASSERT_TRUE(cpu.ok()) << cpu.status().ToString();
  const std::vector<int32_t> ids = TestTokens(**cpu);
  ASSERT_GT(ids.size(), 80u);
  const int64_t vocab = (*cpu)->vocab_size();
  std::vector<float> ref(ids.size() * vocab);
  ASSERT_TRUE((*cpu)->ScoreTokens(ids, ref.data()).ok());
  for (const char* dtype : {"float16", "bfloat16", "float32"}) {
    EngineOptions o;
    o.dtype = dtype;
    auto gpu = MakeEngine(path, "cuda", o);
    ASSERT_TRUE(gpu.ok()) << dtype << ": " << gpu.status().ToString();
    std::vector<float> got(ids.size() * vocab);
    ASSERT_TRUE((*gpu)->ScoreTokens(ids, got.data()).ok());
    double sum_abs = 0, max_abs = 0;
    size_t top1 = 0;
    for (size_t t = 0; t < ids.size(); ++t) {
      const float* r = &ref[t * vocab];
      const float* g = &got[t * vocab];
      top1 += (std::max_element(r, r + vocab) - r) == (std::max_element(g, g + vocab) - g);
      for (int64_t j = 0; j < vocab; ++j) {
        const double d = std::fabs(static_cast<double>(r[j]) - g[j]);
        sum_abs += d;
        max_abs = std::max(max_abs, d);
      }
    }
    const double mean_abs = sum_abs / static_cast<double>(ref.size());
    const double agree = static_cast<double>(top1) / static_cast<double>(ids.size());
    // fp16 keeps ~11 bits through 30 layers; bf16 8 bits; fp32 (cuBLAS, no TF32) ~exact.
    const double tol_mean = std::string(dtype) == "float32" ? 1e-3 : std::string(dtype) == "float16" ? 0.05 : 0.2;
    const double min_agree = std::string(dtype) == "bfloat16" ? 0.9 : 0.97;
    EXPECT_LE(mean_abs, tol_mean) << dtype << " max " << max_abs;
    EXPECT_GE(agree, min_agree) << dtype;
    std::printf("[%s] mean |diff| %.5f, max |diff| %.4f, top-1 agreement %.2f%%\n", dtype, mean_abs, max_abs,
                100.0 * agree);
  }
}

TEST_F(CudaVsCpuTest, GreedyAgreesExceptAtNearTies) {
  INFERD_REQUIRE_MODEL(path);
  INFERD_REQUIRE_GPU();
  EngineOptions cpu_opts;
  cpu_opts.kv_cache_dtype = "float32";
  auto cpu = MakeEngine(path, "cpu", cpu_opts);
  auto gpu = MakeEngine(path, "cuda");
  ASSERT_TRUE(cpu.ok() && gpu.ok());
  SamplingParams p;
  p.temperature = 0;
  p.max_tokens = 24;
  p.ignore_eos = true;
  std::vector<GenerateRequest> reqs;
  for (const char* prompt : {"The capital of France is", "Once upon a time", "def fibonacci(n):",
                             "The three primary colors are"}) {
    GenerateRequest r;
    r.prompt = prompt;
    r.prompt_token_ids = (*cpu)->tokenizer().Encode(prompt, true, false);
    r.params = p;
    reqs.push_back(r);
  }
  auto a = (*cpu)->Generate(reqs);
  auto b = (*gpu)->Generate(reqs);
  const int64_t vocab = (*cpu)->vocab_size();
  for (size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_TRUE(a[i].ok() && b[i].ok());
    const auto& x = a[i]->outputs[0].token_ids;
    const auto& y = b[i]->outputs[0].token_ids;
    size_t k = 0;
    while (k < x.size() && k < y.size() && x[k] == y[k]) ++k;
    if (k == x.size()) continue;
    // First divergence: the CPU's logits there must be a near-tie between the two tokens.
    std::vector<int32_t> ctx = reqs[i].prompt_token_ids;
    ctx.insert(ctx.end(), x.begin(), x.begin() + static_cast<std::ptrdiff_t>(k));
    std::vector<float> logits(ctx.size() * vocab);
    ASSERT_TRUE((*cpu)->ScoreTokens(ctx, logits.data()).ok());
    const float* row = &logits[(ctx.size() - 1) * vocab];
    EXPECT_LT(std::fabs(row[x[k]] - row[y[k]]), 0.25f)
        << "prompt " << i << " diverges at token " << k << " without a near-tie";
  }
}

std::vector<int32_t> SeededTokens(Engine& e, bool crowded) {
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_p = 0.95f;
  p.seed = 1234;
  p.max_tokens = 32;
  p.ignore_eos = true;
  std::vector<GenerateRequest> reqs;
  GenerateRequest target;
  target.prompt_token_ids = e.tokenizer().Encode("Write a short story about a robot.", true, false);
  target.params = p;
  reqs.push_back(target);
  if (crowded) {
    for (int i = 0; i < 15; ++i) {
      GenerateRequest r;
      r.prompt_token_ids = e.tokenizer().Encode("Request number " + std::to_string(i) + " asks about " +
                                                    std::string(static_cast<size_t>(i * 7 % 50 + 1), 'x'),
                                                true, false);
      r.params = p;
      r.params.seed = 100 + i;
      r.params.max_tokens = 8 + 3 * i;
      reqs.push_back(r);
    }
  }
  auto out = e.Generate(reqs);
  EXPECT_TRUE(out[0].ok());
  return out[0].ok() ? out[0]->outputs[0].token_ids : std::vector<int32_t>{};
}

TEST(CudaBatchInvarianceTest, SeededRequestGivesTheSameTokensInAnyBatch) {
  INFERD_REQUIRE_MODEL(path);
  INFERD_REQUIRE_GPU();
  auto graphs = MakeEngine(path, "cuda");
  EngineOptions eager_opts;
  eager_opts.enforce_eager = true;
  auto eager = MakeEngine(path, "cuda", eager_opts);
  ASSERT_TRUE(graphs.ok() && eager.ok());
  const std::vector<int32_t> alone = SeededTokens(**graphs, false);
  ASSERT_EQ(alone.size(), 32u);
  EXPECT_EQ(SeededTokens(**graphs, true), alone);
  EXPECT_EQ(SeededTokens(**eager, false), alone);
  EXPECT_EQ(SeededTokens(**eager, true), alone);
}

TEST(CudaSamplingTest, DeviceSamplingFollowsTheHostSampler) {
  INFERD_REQUIRE_MODEL(path);
  INFERD_REQUIRE_GPU();
  auto device = MakeEngine(path, "cuda");
  setenv("INFERD_HOST_SAMPLING", "1", 1);
  auto host = MakeEngine(path, "cuda");
  unsetenv("INFERD_HOST_SAMPLING");
  ASSERT_TRUE(device.ok() && host.ok());
  // Same logits on both (same device, same kernels); only where the sampling runs differs.
  EXPECT_EQ(SeededTokens(**device, true), SeededTokens(**host, true));
  // Penalties, min_tokens and logit_bias go to the device as logit edits.
  SamplingParams p;
  p.temperature = 0.9f;
  p.top_k = 40;
  p.min_p = 0.02f;
  p.repetition_penalty = 1.3f;
  p.frequency_penalty = 0.4f;
  p.presence_penalty = 0.2f;
  p.min_tokens = 8;
  p.seed = 99;
  p.max_tokens = 24;
  std::vector<GenerateRequest> reqs(1);
  reqs[0].prompt_token_ids = (*device)->tokenizer().Encode("List some fruits: apple, apple, apple,", true, false);
  reqs[0].params = p;
  auto a = (*device)->Generate(reqs);
  auto b = (*host)->Generate(reqs);
  ASSERT_TRUE(a[0].ok() && b[0].ok());
  EXPECT_EQ(a[0]->outputs[0].token_ids, b[0]->outputs[0].token_ids);
  EXPECT_NEAR(a[0]->outputs[0].cumulative_logprob, b[0]->outputs[0].cumulative_logprob, 1e-3);
}

TEST(CudaMemoryTest, SplitStaysInsideTheBudget) {
  INFERD_REQUIRE_MODEL(path);
  INFERD_REQUIRE_GPU();
  EngineOptions o;
  o.gpu_memory_utilization = 0.3;
  o.device = "cuda";
  o.max_model_len = 2048;
  auto e = Engine::Create(Load(path), o);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  const MemoryReport r = (*e)->core().backend().memory();
  EXPECT_GT(r.total, 0);
  EXPECT_NEAR(static_cast<double>(r.budget), 0.3 * static_cast<double>(r.total), 1.0);
  EXPECT_GT(r.weights, 90 << 20);  // the model, dequantized to fp16, is larger than the Q4_1 file
  EXPECT_GT(r.kv_cache, 0);
  // Everything but the CUDA graphs is planned inside the budget; graphs get a reserve.
  EXPECT_LE(r.weights + r.kv_cache + r.activations + r.other, r.budget);
  EXPECT_EQ((*e)->core().kv_capacity_tokens(), (*e)->core().num_blocks() * (*e)->core().block_size());
}

}  // namespace
}  // namespace inferd
