// SampleRows (kernels.h) against SampleToken (sample/sampler.h) on the same rows and
// parameters, with the edits built by BuildLogitEdits (backend/cuda/sample_host.h) as the
// backend will. Host-only checks (the edit semantics against ApplyLogitsProcessors, the
// counter RNG) run everywhere; the device tests skip without a GPU.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "backend/cuda/kernels.h"
#include "cuda_test_util.h"
#include "backend/cuda/kernels/counter_rng.cuh"
#include "backend/cuda/sample_host.h"
#include "sample/sampler.h"

namespace inferd::cuda {
namespace {

using cuda_test::DeviceBuffer;
using cuda_test::HaveCuda;

constexpr float kInf = std::numeric_limits<float>::infinity();

// ---------------------------------------------------------------- inputs

// One row's request: parameters and history (the spans of SampleInput point into it).
struct Request {
  SamplingParams params;
  std::vector<int32_t> prompt, output, stop;
  std::vector<uint32_t> allowed;  // structured-outputs mask (empty: none)
  uint64_t seed = 0;
  int64_t step = 0;
  SampleInput Input() const {
    SampleInput in;
    in.allowed_tokens = allowed;
    in.params = &params;
    in.prompt_ids = prompt;
    in.output_ids = output;
    in.stop_ids = stop;
    in.seed = seed;
    in.step = step;
    return in;
  }
};

enum class Extra { kNone, kPenalties, kBias, kMinTokens };

struct Case {
  const char* name;
  float temperature;
  int top_k;
  float top_p;
  float min_p;
  Extra extra;
};

const Case kCases[] = {
    {"greedy", 0.0f, 0, 1.0f, 0.0f, Extra::kNone},
    {"T0.7", 0.7f, 0, 1.0f, 0.0f, Extra::kNone},
    {"T1_topk40", 1.0f, 40, 1.0f, 0.0f, Extra::kNone},
    {"top_p0.9", 1.0f, 0, 0.9f, 0.0f, Extra::kNone},
    {"min_p0.05", 1.0f, 0, 1.0f, 0.05f, Extra::kNone},
    {"topk50_topp0.95_minp0.02", 1.0f, 50, 0.95f, 0.02f, Extra::kNone},
    {"topk2000_topp0.8", 0.9f, 2000, 0.8f, 0.0f, Extra::kNone},  // the CPU's nth_element path
    {"topk1", 1.0f, 1, 1.0f, 0.0f, Extra::kNone},
    {"penalties", 0.8f, 0, 0.95f, 0.0f, Extra::kPenalties},
    {"penalties_greedy", 0.0f, 0, 1.0f, 0.0f, Extra::kPenalties},
    {"logit_bias", 1.0f, 0, 1.0f, 0.0f, Extra::kBias},
    {"logit_bias_greedy", 0.0f, 0, 1.0f, 0.0f, Extra::kBias},
    {"min_tokens", 1.0f, 40, 1.0f, 0.0f, Extra::kMinTokens},
    {"min_tokens_greedy", 0.0f, 0, 1.0f, 0.0f, Extra::kMinTokens},
};

// Row r of a case: normal logits (scale 3); every fourth row rounded to multiples of 0.5
// (many exact ties, as bf16 logits have); every eighth row with some NaN and -inf.
std::vector<float> MakeRow(int64_t vocab, uint32_t seed, int r) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  std::vector<float> row(vocab);
  for (float& x : row) x = dist(rng);
  if (r % 4 == 1) {
    for (float& x : row) x = std::round(x * 2.0f) / 2.0f;
  }
  if (r % 8 == 3) {
    for (int64_t j = 5; j < vocab; j += 97) row[j] = std::numeric_limits<float>::quiet_NaN();
    for (int64_t j = 11; j < vocab; j += 89) row[j] = -kInf;
  }
  return row;
}

std::vector<int32_t> TopIds(const std::vector<float>& row, int n) {
  std::vector<int32_t> ids(row.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
  auto clean = [&](int32_t i) { return std::isnan(row[i]) ? -kInf : row[i]; };
  std::partial_sort(ids.begin(), ids.begin() + n, ids.end(),
                    [&](int32_t a, int32_t b) { return clean(a) > clean(b) || (clean(a) == clean(b) && a < b); });
  ids.resize(n);
  return ids;
}

Request MakeRequest(const Case& c, const std::vector<float>& row, int64_t vocab, uint32_t seed, int r) {
  Request q;
  q.params.temperature = c.temperature;
  q.params.top_k = c.top_k;
  q.params.top_p = c.top_p;
  q.params.min_p = c.min_p;
  q.seed = seed * 2654435761u + 17;
  q.step = r % 7 + 3;
  std::mt19937 rng(seed ^ 0x5bd1e995u);
  std::uniform_int_distribution<int32_t> any(0, static_cast<int32_t>(vocab) - 1);
  const std::vector<int32_t> top = TopIds(row, 8);
  switch (c.extra) {
    case Extra::kNone:
      break;
    case Extra::kPenalties:
      q.params.repetition_penalty = 1.3f;
      q.params.frequency_penalty = 0.4f;
      q.params.presence_penalty = 0.6f;
      for (int i = 0; i < 300; ++i) q.prompt.push_back(i % 5 == 0 ? top[i % 4] : any(rng) % 2000);
      for (int i = 0; i < 60; ++i) q.output.push_back(i % 3 == 0 ? top[i % 6] : any(rng) % 500);
      q.prompt.push_back(-3);                                   // ignored
      q.output.push_back(static_cast<int32_t>(vocab) + 2);      // ignored
      break;
    case Extra::kBias:
      q.params.logit_bias[top[0]] = -100.0f;
      q.params.logit_bias[top[1]] = 0.75f;
      q.params.logit_bias[any(rng)] = 8.0f;
      q.params.logit_bias[any(rng)] = 0.0f;
      q.params.logit_bias[static_cast<int32_t>(vocab) + 9] = 5.0f;  // ignored
      break;
    case Extra::kMinTokens:
      q.params.min_tokens = 10;
      q.output = {any(rng), any(rng), top[3]};
      q.stop = {top[0], top[2], top[0], any(rng), -1, static_cast<int32_t>(vocab)};
      q.params.repetition_penalty = 1.1f;  // together with a penalty
      q.prompt = {top[1], top[1], any(rng)};
      break;
  }
  return q;
}

// The kernel's edit arithmetic on the host (kernels.h, LogitEdit).
// A structured-outputs mask allowing about one token in eight (a shorter mask than the
// vocabulary on odd seeds: the tokens past it are disallowed).
std::vector<uint32_t> MakeMask(int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint32_t> m(static_cast<size_t>((vocab + 31) / 32 - (seed % 2)));
  for (uint32_t& w : m) w = rng() & rng() & rng();
  m[0] |= 1u;  // at least one allowed token
  return m;
}


// ---------------------------------------------------------------- host-only

TEST(CudaSamplingHost, CounterUniformMatchesSampler) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 100000; ++i) {
    const uint64_t seed = rng(), step = i < 50000 ? static_cast<uint64_t>(i) : rng();
    const double a = CounterUniformHD(seed, step), b = CounterUniform(seed, step);
    ASSERT_EQ(std::memcmp(&a, &b, sizeof(double)), 0) << seed << " " << step;
  }
}

TEST(CudaSamplingHost, DeviceParamsAndNoEdits) {
  Request q;
  q.params.temperature = 0.5f;
  q.params.top_k = 7;
  q.params.top_p = 0.3f;
  q.params.min_p = 0.1f;
  q.params.repetition_penalty = 1.0f;  // off: no edits from the history
  q.prompt = {1, 2, 3};
  q.output = {4, 4};
  q.seed = 99;
  q.step = 12;
  std::vector<LogitEdit> edits;
  BuildLogitEdits(q.Input(), 100, &edits);
  EXPECT_TRUE(edits.empty());
  const DeviceSampleParams d = MakeDeviceSampleParams(q.Input(), 3, 5);
  EXPECT_EQ(d.temperature, 0.5f);
  EXPECT_EQ(d.top_k, 7);
  EXPECT_EQ(d.top_p, 0.3f);
  EXPECT_EQ(d.min_p, 0.1f);
  EXPECT_EQ(d.seed, 99u);
  EXPECT_EQ(d.step, 12u);
  EXPECT_EQ(d.edit_begin, 3);
  EXPECT_EQ(d.edit_end, 5);
  EXPECT_EQ(SampleRowsWorkspaceBytes(3, 100), 3u * 100u * sizeof(float));
}

// ---------------------------------------------------------------- device

struct Batch {
  std::vector<float> logits;  // [n, vocab]
  std::vector<Request> requests;
};

// Runs SampleRows over the batch; tokens and logprobs.
void RunDevice(const Batch& b, int64_t vocab, bool with_logprobs, std::vector<int32_t>* tokens,
               std::vector<float>* logprobs) {
  const int64_t n = static_cast<int64_t>(b.requests.size());
  std::vector<LogitEdit> edits;
  std::vector<DeviceSampleParams> params;
  const int64_t words = (vocab + 31) / 32;
  std::vector<uint32_t> masks;
  for (const Request& q : b.requests) {
    const int32_t begin = static_cast<int32_t>(edits.size());
    BuildLogitEdits(q.Input(), vocab, &edits);
    int32_t mask_row = -1;
    if (!q.allowed.empty()) {
      mask_row = static_cast<int32_t>(masks.size() / static_cast<size_t>(words));
      masks.resize(masks.size() + static_cast<size_t>(words), 0u);
      std::copy_n(q.allowed.begin(), std::min<size_t>(q.allowed.size(), static_cast<size_t>(words)),
                  masks.end() - words);
    }
    params.push_back(MakeDeviceSampleParams(q.Input(), begin, static_cast<int32_t>(edits.size()), mask_row));
  }
  DeviceBuffer d_logits(b.logits), d_params(params), d_edits(edits), d_masks(masks);
  DeviceBuffer d_tokens(n * sizeof(int32_t)), d_logprobs(n * sizeof(float));
  DeviceBuffer d_ws(SampleRowsWorkspaceBytes(n, vocab));
  const cudaError_t err = SampleRows(d_logits.as<float>(), n, vocab, d_params.as<DeviceSampleParams>(),
                                     edits.empty() ? nullptr : d_edits.as<LogitEdit>(),
                                     masks.empty() ? nullptr : d_masks.as<uint32_t>(), words, d_tokens.as<int32_t>(),
                                     with_logprobs ? d_logprobs.as<float>() : nullptr, d_ws.get(), d_ws.bytes(),
                                     nullptr);
  ASSERT_EQ(err, cudaSuccess) << cudaGetErrorString(err);
  CUDA_OK(cudaDeviceSynchronize());
  *tokens = d_tokens.Read<int32_t>();
  *logprobs = d_logprobs.Read<float>();
  // The logits are read only.
  EXPECT_EQ(std::memcmp(d_logits.Read<float>().data(), b.logits.data(), b.logits.size() * sizeof(float)), 0);
}

TEST(CudaSampling, MatchesSampleToken) {
  REQUIRE_CUDA();
  constexpr int kRows = 256;
  int64_t draws = 0, mismatches = 0;
  for (const int64_t vocab : {int64_t{49152}, int64_t{32000}}) {
    for (const Case& c : kCases) {
      Batch b;
      b.logits.reserve(kRows * vocab);
      for (int r = 0; r < kRows; ++r) {
        const uint32_t seed = static_cast<uint32_t>(vocab) * 31u + 100000u * static_cast<uint32_t>(&c - kCases) +
                              static_cast<uint32_t>(r);
        const std::vector<float> row = MakeRow(vocab, seed, r);
        b.logits.insert(b.logits.end(), row.begin(), row.end());
        b.requests.push_back(MakeRequest(c, row, vocab, seed, r));
        if (r % 3 == 2) b.requests.back().allowed = MakeMask(vocab, seed);
      }
      std::vector<int32_t> tokens;
      std::vector<float> logprobs;
      ASSERT_NO_FATAL_FAILURE(RunDevice(b, vocab, true, &tokens, &logprobs));
      const bool greedy = c.temperature < 1e-5f;
      for (int r = 0; r < kRows; ++r) {
        std::vector<float> row(b.logits.begin() + r * vocab, b.logits.begin() + (r + 1) * vocab);
        const SampleResult want = SampleToken(row, b.requests[r].Input());
        if (greedy) {
          EXPECT_EQ(tokens[r], want.token) << c.name << " vocab " << vocab << " row " << r;
        } else {
          ++draws;
          if (tokens[r] != want.token && ++mismatches <= 20) {  // counted, not a failure by itself
            std::printf("differs: %s vocab %lld row %d: device %d cpu %d\n", c.name, static_cast<long long>(vocab), r,
                        tokens[r], want.token);
          }
        }
        if (tokens[r] == want.token) {
          if (std::isinf(want.logprob)) {
            EXPECT_EQ(logprobs[r], want.logprob) << c.name << " row " << r;
          } else {
            EXPECT_NEAR(logprobs[r], want.logprob, 1e-4) << c.name << " vocab " << vocab << " row " << r;
          }
        }
      }
    }
  }
  // Only a draw within rounding distance of a boundary may differ (see kernels/sample.cu).
  EXPECT_LE(mismatches * 1000, draws) << mismatches << " of " << draws << " draws differ";
  std::printf("random draws: %lld, differing: %lld\n", static_cast<long long>(draws),
              static_cast<long long>(mismatches));
}

TEST(CudaSampling, BatchInvariance) {
  REQUIRE_CUDA();
  const int64_t vocab = 49152;
  Batch all;
  for (int r = 0; r < 64; ++r) {
    const Case& c = kCases[r % std::size(kCases)];
    const std::vector<float> row = MakeRow(vocab, 777u + static_cast<uint32_t>(r), r);
    all.logits.insert(all.logits.end(), row.begin(), row.end());
    all.requests.push_back(MakeRequest(c, row, vocab, 777u + static_cast<uint32_t>(r), r));
  }
  std::vector<int32_t> tokens_all;
  std::vector<float> logprobs_all;
  ASSERT_NO_FATAL_FAILURE(RunDevice(all, vocab, true, &tokens_all, &logprobs_all));
  for (int r : {0, 5, 17, 40, 63}) {
    Batch one;
    one.logits.assign(all.logits.begin() + r * vocab, all.logits.begin() + (r + 1) * vocab);
    one.requests.push_back(all.requests[r]);
    std::vector<int32_t> tokens;
    std::vector<float> logprobs;
    ASSERT_NO_FATAL_FAILURE(RunDevice(one, vocab, true, &tokens, &logprobs));
    EXPECT_EQ(tokens[0], tokens_all[r]) << "row " << r;
    EXPECT_EQ(std::memcmp(&logprobs[0], &logprobs_all[r], sizeof(float)), 0) << "row " << r;
  }
}

TEST(CudaSampling, EdgeRows) {
  REQUIRE_CUDA();
  const int64_t vocab = 5000;
  Batch b;
  auto add = [&](std::vector<float> row, float temperature, int top_k, float top_p) {
    Request q;
    q.params.temperature = temperature;
    q.params.top_k = top_k;
    q.params.top_p = top_p;
    q.seed = 5 + b.requests.size();
    q.step = 1;
    b.logits.insert(b.logits.end(), row.begin(), row.end());
    b.requests.push_back(q);
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  add(std::vector<float>(vocab, -kInf), 1.0f, 0, 1.0f);       // all -inf: token 0
  add(std::vector<float>(vocab, nan), 0.0f, 0, 1.0f);         // all NaN, greedy: token 0
  add(std::vector<float>(vocab, 2.5f), 1.0f, 10, 1.0f);       // all equal, top-k: ids 0..9
  add(std::vector<float>(vocab, 2.5f), 1.0f, 0, 0.001f);      // all equal, top-p: ids 0..5
  std::vector<float> one_hot(vocab, -kInf);
  one_hot[4321] = 0.0f;
  add(one_hot, 0.7f, 0, 0.5f);                                // a single finite token
  std::vector<float> two(vocab, -1e30f);
  two[7] = two[4000] = 3.0f;
  add(two, 1.0f, 1, 1.0f);                                    // tie at top-1: the lower id
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;
  ASSERT_NO_FATAL_FAILURE(RunDevice(b, vocab, true, &tokens, &logprobs));
  for (size_t r = 0; r < b.requests.size(); ++r) {
    std::vector<float> row(b.logits.begin() + r * vocab, b.logits.begin() + (r + 1) * vocab);
    const SampleResult want = SampleToken(row, b.requests[r].Input());
    EXPECT_EQ(tokens[r], want.token) << "row " << r;
  }
  EXPECT_EQ(tokens[0], 0);
  EXPECT_EQ(tokens[1], 0);
  EXPECT_LT(tokens[2], 10);
  EXPECT_LE(tokens[3], 5);  // top_p = 0.001f is a little above 1 / 1000: 6 tokens
  EXPECT_EQ(tokens[4], 4321);
  EXPECT_EQ(tokens[5], 7);
  // Without logprobs.
  std::vector<int32_t> tokens2;
  ASSERT_NO_FATAL_FAILURE(RunDevice(b, vocab, false, &tokens2, &logprobs));
  EXPECT_EQ(tokens2, tokens);
}

TEST(CudaSampling, Arguments) {
  REQUIRE_CUDA();
  EXPECT_EQ(SampleRows(nullptr, 0, 100, nullptr, nullptr, nullptr, 0, nullptr, nullptr, nullptr, 0, nullptr),
            cudaSuccess);
  DeviceBuffer ws(SampleRowsWorkspaceBytes(2, 100));
  EXPECT_EQ(SampleRows(nullptr, 2, 100, nullptr, nullptr, nullptr, 0, nullptr, nullptr, ws.get(), ws.bytes() - 1,
                       nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(SampleRows(nullptr, 1, (int64_t{1} << 21) + 1, nullptr, nullptr, nullptr, 0, nullptr, nullptr, ws.get(),
                       ws.bytes(), nullptr),
            cudaErrorInvalidValue);
}

}  // namespace
}  // namespace inferd::cuda
