// Sampler: greedy, temperature, top-k / top-p / min-p sets, penalties, bias, min_tokens,
// determinism and raw logprobs. Every random test uses fixed seeds and counters, so the
// outcome is a fixed function of the code: it cannot flake.

#include "sample/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include <gtest/gtest.h>

namespace inferd {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

SampleInput Input(const SamplingParams& p, uint64_t seed = 0, int64_t step = 0) {
  SampleInput in;
  in.params = &p;
  in.seed = seed;
  in.step = step;
  return in;
}

// Samples from a fresh copy of `logits` (SampleToken may use its argument as scratch).
SampleResult Sample(const std::vector<float>& logits, const SampleInput& in) {
  std::vector<float> copy = logits;
  return SampleToken(copy, in);
}

// Token counts over `draws` steps of one seeded stream.
std::vector<int> Histogram(const std::vector<float>& logits, const SamplingParams& p,
                           int draws, uint64_t seed = 1234) {
  std::vector<int> counts(logits.size(), 0);
  for (int step = 0; step < draws; ++step) {
    SampleResult r = Sample(logits, Input(p, seed, step));
    EXPECT_GE(r.token, 0);
    EXPECT_LT(r.token, static_cast<int32_t>(logits.size()));
    ++counts[r.token];
  }
  return counts;
}

std::set<int32_t> SeenTokens(const std::vector<float>& logits, const SamplingParams& p,
                             int draws, uint64_t seed = 99) {
  std::vector<int> counts = Histogram(logits, p, draws, seed);
  std::set<int32_t> seen;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] > 0) seen.insert(static_cast<int32_t>(i));
  }
  return seen;
}

std::set<int32_t> Range(int32_t lo, int32_t hi) {
  std::set<int32_t> s;
  for (int32_t i = lo; i < hi; ++i) s.insert(i);
  return s;
}

// Independent reference: log-softmax in double.
std::vector<double> LogSoftmax(const std::vector<float>& x) {
  double m = -std::numeric_limits<double>::infinity();
  for (float v : x) m = std::max(m, static_cast<double>(v));
  double sum = 0.0;
  for (float v : x) sum += std::exp(static_cast<double>(v) - m);
  std::vector<double> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = static_cast<double>(x[i]) - m - std::log(sum);
  return out;
}

std::vector<float> LogOf(const std::vector<double>& probs) {
  std::vector<float> out;
  for (double p : probs) out.push_back(static_cast<float>(std::log(p)));
  return out;
}

// Deterministic pseudo-random logits (a simple LCG, independent of the code under test).
std::vector<float> RandomLogits(size_t n, uint64_t seed, float scale) {
  std::vector<float> out(n);
  uint64_t s = seed;
  for (size_t i = 0; i < n; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    out[i] = scale * (static_cast<float>((s >> 40) & 0xFFFFFF) / 16777216.0f - 0.5f);
  }
  return out;
}

// ---------------------------------------------------------------- greedy

TEST(Sampler, GreedyIsArgmax) {
  SamplingParams p;
  p.temperature = 0.0f;
  EXPECT_EQ(Sample({0.1f, 3.0f, -2.0f, 2.9f}, Input(p)).token, 1);
  EXPECT_EQ(Sample({-5.0f, -4.0f, -6.0f}, Input(p)).token, 1);
  // Greedy ignores top_k / top_p / min_p and the seed.
  p.top_k = 1;
  p.top_p = 0.1f;
  p.min_p = 0.9f;
  for (uint64_t seed : {0u, 1u, 77u}) {
    EXPECT_EQ(Sample({0.1f, 3.0f, -2.0f, 2.9f}, Input(p, seed, 5)).token, 1);
  }
}

TEST(Sampler, GreedyTiesPickLowestId) {
  SamplingParams p;
  p.temperature = 0.0f;
  EXPECT_EQ(Sample({1.0f, 7.0f, 3.0f, 7.0f, 7.0f}, Input(p)).token, 1);
  EXPECT_EQ(Sample({2.0f, 2.0f}, Input(p)).token, 0);
  // NaN never wins; all -inf falls back to token 0.
  EXPECT_EQ(Sample({std::nanf(""), 1.0f, 0.5f}, Input(p)).token, 1);
  EXPECT_EQ(Sample({kNegInf, kNegInf}, Input(p)).token, 0);
}

TEST(Sampler, TinyTemperatureIsGreedy) {
  SamplingParams p;
  p.temperature = 1e-6f;
  for (int step = 0; step < 50; ++step) {
    EXPECT_EQ(Sample({0.0f, 0.1f, 0.05f}, Input(p, 3, step)).token, 1);
  }
}

// ---------------------------------------------------------------- temperature

// Pearson chi-square of observed counts against expected probabilities.
double ChiSquare(const std::vector<int>& counts, const std::vector<double>& probs) {
  double total = std::accumulate(counts.begin(), counts.end(), 0.0);
  double chi = 0.0;
  for (size_t i = 0; i < counts.size(); ++i) {
    double e = total * probs[i];
    if (e == 0.0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " has zero probability";
      continue;
    }
    chi += (counts[i] - e) * (counts[i] - e) / e;
  }
  return chi;
}

std::vector<double> SoftmaxT(const std::vector<float>& logits, double t) {
  std::vector<float> scaled;
  for (float l : logits) scaled.push_back(static_cast<float>(l / t));
  std::vector<double> lp = LogSoftmax(scaled);
  std::vector<double> out;
  for (double v : lp) out.push_back(std::exp(v));
  return out;
}

TEST(Sampler, TemperatureMatchesSoftmaxDistribution) {
  const std::vector<float> logits = {1.0f, 2.0f, 0.5f, 3.0f, -1.0f, 2.5f};
  // df = 5; the 99.99th percentile of chi-square(5) is about 25.7.
  for (float t : {0.5f, 1.0f, 2.0f}) {
    SamplingParams p;
    p.temperature = t;
    std::vector<int> counts = Histogram(logits, p, 40000);
    EXPECT_LT(ChiSquare(counts, SoftmaxT(logits, t)), 25.7) << "temperature " << t;
  }
}

TEST(Sampler, LowTemperatureSharpens) {
  const std::vector<float> logits = {1.0f, 2.0f, 1.5f};
  SamplingParams cold, hot;
  cold.temperature = 0.2f;
  hot.temperature = 5.0f;
  EXPECT_GT(Histogram(logits, cold, 5000)[1], Histogram(logits, hot, 5000)[1]);
}

// ---------------------------------------------------------------- top-k / top-p / min-p

TEST(Sampler, TopKKeepsExactlyK) {
  const std::vector<float> logits = {0.0f, 1.5f, 0.2f, 1.4f, 1.3f, -1.0f};
  SamplingParams p;
  p.top_k = 3;
  EXPECT_EQ(SeenTokens(logits, p, 3000), (std::set<int32_t>{1, 3, 4}));
  p.top_k = 1;
  EXPECT_EQ(SeenTokens(logits, p, 200), (std::set<int32_t>{1}));
  p.top_k = 6;  // = vocab: no filtering
  EXPECT_EQ(SeenTokens(logits, p, 5000), Range(0, 6));
  p.top_k = -1;
  EXPECT_EQ(SeenTokens(logits, p, 5000), Range(0, 6));
}

TEST(Sampler, TopKTiesKeepLowerIds) {
  // Heap path (small k) and nth_element path (k > 1024) on all-equal logits.
  SamplingParams p;
  p.top_k = 3;
  EXPECT_EQ(SeenTokens(std::vector<float>(50, 0.0f), p, 2000), Range(0, 3));
  p.top_k = 1100;
  EXPECT_EQ(SeenTokens(std::vector<float>(1500, 0.0f), p, 30000), Range(0, 1100));
}

TEST(Sampler, TopKTemperatureDistribution) {
  // Within the kept set, the distribution is the softmax of the kept logits.
  const std::vector<float> logits = {2.0f, -1.0f, 1.0f, 0.0f, 3.0f};
  SamplingParams p;
  p.top_k = 3;
  p.temperature = 0.8f;
  std::vector<int> counts = Histogram(logits, p, 30000);
  std::vector<float> kept = {2.0f, kNegInf, 1.0f, kNegInf, 3.0f};
  EXPECT_LT(ChiSquare(counts, SoftmaxT(kept, 0.8)), 21.0);  // df = 2
}

TEST(Sampler, TopPKeepsSmallestSetReachingMass) {
  const std::vector<float> logits = LogOf({0.05, 0.5, 0.15, 0.3});
  SamplingParams p;
  p.top_p = 0.4f;
  EXPECT_EQ(SeenTokens(logits, p, 500), (std::set<int32_t>{1}));
  p.top_p = 0.75f;
  EXPECT_EQ(SeenTokens(logits, p, 3000), (std::set<int32_t>{1, 3}));
  p.top_p = 0.9f;
  EXPECT_EQ(SeenTokens(logits, p, 3000), (std::set<int32_t>{1, 2, 3}));
  p.top_p = 0.97f;
  EXPECT_EQ(SeenTokens(logits, p, 5000), Range(0, 4));
  p.top_p = 1e-6f;  // always at least one token
  EXPECT_EQ(SeenTokens(logits, p, 500), (std::set<int32_t>{1}));
}

TEST(Sampler, TopPTiesKeepLowerIds) {
  // 100 equal tokens (quickselect path): mass 0.255 needs 26 tokens, ids 0..25.
  SamplingParams p;
  p.top_p = 0.255f;
  EXPECT_EQ(SeenTokens(std::vector<float>(100, 1.0f), p, 20000), Range(0, 26));
}

TEST(Sampler, TopPOnLargeRandomRowMatchesSortedReference) {
  const std::vector<float> logits = RandomLogits(300, 7, 4.0f);
  const float top_p = 0.6f;
  // Reference: sort by probability, accumulate to top_p.
  std::vector<double> lp = LogSoftmax(logits);
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return lp[a] > lp[b] || (lp[a] == lp[b] && a < b);
  });
  std::set<int32_t> expected;
  double acc = 0.0;
  for (int32_t id : order) {
    expected.insert(id);
    acc += std::exp(lp[id]);
    if (acc >= top_p) {
      // The boundary must not be a rounding coin-flip for this test to be meaningful.
      ASSERT_GT(acc - top_p, 1e-4);
      ASSERT_GT(top_p - (acc - std::exp(lp[id])), 1e-4);
      break;
    }
  }
  ASSERT_GT(expected.size(), 40u);
  SamplingParams p;
  p.top_p = top_p;
  EXPECT_EQ(SeenTokens(logits, p, 60000), expected);
}

TEST(Sampler, MinPDropsTokensBelowFractionOfMax) {
  const std::vector<float> logits = LogOf({0.4, 0.3, 0.2, 0.07, 0.03});
  SamplingParams p;
  p.min_p = 0.2f;  // threshold 0.08
  EXPECT_EQ(SeenTokens(logits, p, 3000), (std::set<int32_t>{0, 1, 2}));
  p.min_p = 0.1f;  // threshold 0.04
  EXPECT_EQ(SeenTokens(logits, p, 5000), (std::set<int32_t>{0, 1, 2, 3}));
  p.min_p = 1.0f;  // only the maximum
  EXPECT_EQ(SeenTokens(logits, p, 500), (std::set<int32_t>{0}));
}

TEST(Sampler, MinPUsesTemperatureScaledProbabilities) {
  // At temperature 2, probabilities flatten: 0.07 / 0.4 under T=1 becomes
  // sqrt(0.07 / 0.4) ≈ 0.42 of the max, above min_p = 0.3.
  const std::vector<float> logits = LogOf({0.4, 0.3, 0.2, 0.07, 0.03});
  SamplingParams p;
  p.min_p = 0.3f;
  p.temperature = 2.0f;
  // ratios: 1, .866, .707, .418, .274 → keep 0..3
  EXPECT_EQ(SeenTokens(logits, p, 5000), (std::set<int32_t>{0, 1, 2, 3}));
}

TEST(Sampler, TopPThenMinPWithoutTopK) {
  // top-p keeps {0, 1, 2} (0.9 >= 0.85); min-p then drops top-p's boundary token 2
  // (0.2 / 0.4 = 0.5 < 0.6).
  const std::vector<float> logits = LogOf({0.4, 0.3, 0.2, 0.1});
  SamplingParams p;
  p.top_p = 0.85f;
  EXPECT_EQ(SeenTokens(logits, p, 3000), (std::set<int32_t>{0, 1, 2}));
  p.min_p = 0.6f;
  EXPECT_EQ(SeenTokens(logits, p, 3000), (std::set<int32_t>{0, 1}));
}

TEST(Sampler, FullVocabDistributionAcrossBlocks) {
  // 1000 tokens span several draw blocks; the draw must follow the softmax everywhere.
  const std::vector<float> logits = RandomLogits(1000, 17, 3.0f);
  SamplingParams p;
  std::vector<int> counts = Histogram(logits, p, 100000, 5);
  // df = 999: mean 999, sd about 45; 1250 is more than 5 sd above.
  EXPECT_LT(ChiSquare(counts, SoftmaxT(logits, 1.0)), 1250.0);
  // With min-p, dropped tokens have zero counts and the rest follow the renormalized softmax.
  p.min_p = 0.5f;
  std::vector<float> kept = logits;
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  for (float& l : kept) {
    if (std::exp(static_cast<double>(l) - max_logit) < 0.5) l = kNegInf;
  }
  size_t num_kept = std::count_if(kept.begin(), kept.end(), [](float l) { return l != kNegInf; });
  ASSERT_GT(num_kept, 50u);
  counts = Histogram(logits, p, 100000, 6);
  double chi = ChiSquare(counts, SoftmaxT(kept, 1.0));
  EXPECT_LT(chi, static_cast<double>(num_kept) + 6.0 * std::sqrt(2.0 * num_kept));
}

TEST(Sampler, TopKThenTopPThenMinP) {
  const std::vector<float> logits = LogOf({0.02, 0.3, 0.25, 0.2, 0.13, 0.1});
  SamplingParams p;
  p.top_k = 4;     // {1, 2, 3, 4}: mass 0.88
  p.top_p = 0.8f;  // within top-k (renormalized): 0.341, 0.284, 0.227 → {1, 2, 3} = 0.852
  p.min_p = 0.7f;  // 0.25 / 0.3 = 0.83 kept, 0.2 / 0.3 = 0.67 dropped → {1, 2}
  EXPECT_EQ(SeenTokens(logits, p, 3000), (std::set<int32_t>{1, 2}));
}

// ---------------------------------------------------------------- logits processors

TEST(Sampler, RepetitionPenaltyFormula) {
  std::vector<float> logits = {2.0f, -1.0f, 3.0f, 0.0f, -2.0f, 1.0f};
  SamplingParams p;
  p.repetition_penalty = 1.5f;
  std::vector<int32_t> prompt = {0, 1, 1};
  std::vector<int32_t> output = {2, 3, 0};  // 0 again: still penalized once
  SampleInput in = Input(p);
  in.prompt_ids = prompt;
  in.output_ids = output;
  ApplyLogitsProcessors(logits, in);
  EXPECT_FLOAT_EQ(logits[0], 2.0f / 1.5f);
  EXPECT_FLOAT_EQ(logits[1], -1.0f * 1.5f);
  EXPECT_FLOAT_EQ(logits[2], 3.0f / 1.5f);
  EXPECT_FLOAT_EQ(logits[3], 0.0f);  // logit <= 0 is multiplied: 0 stays 0
  EXPECT_FLOAT_EQ(logits[4], -2.0f);
  EXPECT_FLOAT_EQ(logits[5], 1.0f);
}

TEST(Sampler, FrequencyAndPresencePenaltyFormula) {
  std::vector<float> logits = {2.0f, -1.0f, 3.0f, 0.5f};
  SamplingParams p;
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  std::vector<int32_t> prompt = {3, 3, 3};  // prompt tokens are not frequency-penalized
  std::vector<int32_t> output = {0, 2, 0, 0, 1};
  SampleInput in = Input(p);
  in.prompt_ids = prompt;
  in.output_ids = output;
  ApplyLogitsProcessors(logits, in);
  EXPECT_FLOAT_EQ(logits[0], 2.0f - 3 * 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(logits[1], -1.0f - 1 * 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(logits[2], 3.0f - 1 * 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(logits[3], 0.5f);
}

TEST(Sampler, NegativePenaltiesEncourageRepeats) {
  std::vector<float> logits = {1.0f, 1.0f};
  SamplingParams p;
  p.frequency_penalty = -1.0f;
  p.presence_penalty = -0.5f;
  std::vector<int32_t> output = {1, 1};
  SampleInput in = Input(p);
  in.output_ids = output;
  ApplyLogitsProcessors(logits, in);
  EXPECT_FLOAT_EQ(logits[0], 1.0f);
  EXPECT_FLOAT_EQ(logits[1], 1.0f + 2.0f + 0.5f);
}

TEST(Sampler, PenaltiesApplyInOrderRepetitionThenFrequencyThenPresence) {
  std::vector<float> logits = {4.0f};
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  p.frequency_penalty = 1.0f;
  p.presence_penalty = 0.5f;
  std::vector<int32_t> output = {0, 0};
  SampleInput in = Input(p);
  in.output_ids = output;
  ApplyLogitsProcessors(logits, in);
  EXPECT_FLOAT_EQ(logits[0], 4.0f / 2.0f - 2.0f - 0.5f);
}

TEST(Sampler, PenaltiesChangeGreedyChoice) {
  const std::vector<float> logits = {2.0f, 1.9f, 0.0f};
  SamplingParams p;
  p.temperature = 0.0f;
  p.repetition_penalty = 1.2f;
  std::vector<int32_t> output = {0};
  SampleInput in = Input(p);
  in.output_ids = output;
  EXPECT_EQ(Sample(logits, in).token, 1);
}

TEST(Sampler, LogitBias) {
  std::vector<float> logits = {1.0f, 2.0f, 3.0f};
  SamplingParams p;
  p.logit_bias = {{0, 5.0f}, {2, -1.5f}, {7, 100.0f} /* out of vocab: ignored */};
  ApplyLogitsProcessors(logits, Input(p));
  EXPECT_FLOAT_EQ(logits[0], 6.0f);
  EXPECT_FLOAT_EQ(logits[1], 2.0f);
  EXPECT_FLOAT_EQ(logits[2], 1.5f);

  p.temperature = 0.0f;
  EXPECT_EQ(Sample({1.0f, 2.0f, 3.0f}, Input(p)).token, 0);
  // A -100 bias effectively bans a token under sampling.
  SamplingParams ban;
  ban.logit_bias = {{1, -100.0f}};
  EXPECT_EQ(SeenTokens({0.0f, 3.0f, 0.0f}, ban, 2000), (std::set<int32_t>{0, 2}));
}

TEST(Sampler, BiasAppliesBeforePenalties) {
  // Bias makes the logit positive, so the repetition penalty divides.
  std::vector<float> logits = {-1.0f};
  SamplingParams p;
  p.logit_bias = {{0, 3.0f}};
  p.repetition_penalty = 2.0f;
  std::vector<int32_t> output = {0};
  SampleInput in = Input(p);
  in.output_ids = output;
  ApplyLogitsProcessors(logits, in);
  EXPECT_FLOAT_EQ(logits[0], 1.0f);
}

TEST(Sampler, MinTokensSuppressesStopIds) {
  const std::vector<float> logits = {0.0f, 5.0f, 1.0f, 4.0f};  // 1 = EOS, 3 = stop token
  const std::vector<int32_t> stop_ids = {1, 3};
  SamplingParams p;
  p.temperature = 0.0f;
  p.min_tokens = 2;
  std::vector<int32_t> output = {2};
  SampleInput in = Input(p);
  in.stop_ids = stop_ids;
  in.output_ids = output;  // 1 < min_tokens: suppressed
  EXPECT_EQ(Sample(logits, in).token, 2);
  std::vector<float> processed = logits;
  ApplyLogitsProcessors(processed, in);
  EXPECT_EQ(processed[1], kNegInf);
  EXPECT_EQ(processed[3], kNegInf);
  EXPECT_EQ(processed[2], 1.0f);

  output = {2, 2};  // 2 >= min_tokens: allowed again
  in.output_ids = output;
  EXPECT_EQ(Sample(logits, in).token, 1);

  // Under sampling too, the stop ids never appear before min_tokens.
  SamplingParams rp;
  rp.min_tokens = 5;
  SampleInput rin = Input(rp);
  rin.stop_ids = stop_ids;
  for (int step = 0; step < 500; ++step) {
    rin.step = step;
    int32_t t = Sample(logits, rin).token;
    EXPECT_NE(t, 1);
    EXPECT_NE(t, 3);
  }
}

TEST(Sampler, OutOfRangeIdsAreIgnored) {
  std::vector<float> logits = {1.0f, 2.0f};
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  p.frequency_penalty = 1.0f;
  p.min_tokens = 4;
  std::vector<int32_t> ids = {-1, 5, 1};  // 3 outputs < min_tokens: stop ids suppressed
  SampleInput in = Input(p);
  in.prompt_ids = ids;
  in.output_ids = ids;
  in.stop_ids = ids;
  ApplyLogitsProcessors(logits, in);
  EXPECT_FLOAT_EQ(logits[0], 1.0f);
  EXPECT_EQ(logits[1], kNegInf);
}

// ---------------------------------------------------------------- determinism

TEST(Sampler, SameSeedAndStepSameToken) {
  const std::vector<float> logits = RandomLogits(1000, 3, 2.0f);
  SamplingParams p;
  p.top_p = 0.95f;
  for (int step = 0; step < 100; ++step) {
    SampleResult a = Sample(logits, Input(p, 42, step));
    SampleResult b = Sample(logits, Input(p, 42, step));
    EXPECT_EQ(a.token, b.token);
    EXPECT_EQ(a.logprob, b.logprob);
    EXPECT_EQ(a.rank, b.rank);
  }
}

TEST(Sampler, DifferentSeedsGiveDifferentStreams) {
  const std::vector<float> logits(1000, 0.0f);
  SamplingParams p;
  std::vector<int32_t> a, b, c;
  for (int step = 0; step < 64; ++step) {
    a.push_back(Sample(logits, Input(p, 1, step)).token);
    b.push_back(Sample(logits, Input(p, 2, step)).token);
    c.push_back(Sample(logits, Input(p, 1, step)).token);
  }
  EXPECT_NE(a, b);
  EXPECT_EQ(a, c);
  int same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += a[i] == b[i];
  EXPECT_LT(same, 5);  // independent uniform streams over 1000 tokens rarely agree
  // Consecutive steps within one stream vary too.
  EXPECT_GT(std::set<int32_t>(a.begin(), a.end()).size(), 50u);
}

TEST(Sampler, ResultDoesNotDependOnPriorCalls) {
  // Batch invariance: scratch state left by another row (other vocab size, penalties) must
  // not change this row's result.
  const std::vector<float> logits = RandomLogits(500, 11, 3.0f);
  SamplingParams p;
  p.top_k = 50;
  p.top_p = 0.9f;
  p.repetition_penalty = 1.3f;
  std::vector<int32_t> output = {4, 9, 9, 100};
  SampleInput in = Input(p, 5, 17);
  in.output_ids = output;
  SampleResult first = Sample(logits, in);

  SamplingParams other;
  other.frequency_penalty = 1.0f;
  std::vector<int32_t> other_out = {1, 2, 3, 1000, 2000};
  SampleInput oin = Input(other, 9, 1);
  oin.output_ids = other_out;
  Sample(RandomLogits(5000, 1, 1.0f), oin);

  SampleResult second = Sample(logits, in);
  EXPECT_EQ(first.token, second.token);
  EXPECT_EQ(first.logprob, second.logprob);
}

TEST(Sampler, CounterUniformRangeAndMean) {
  double sum = 0.0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    double u = CounterUniform(7, static_cast<uint64_t>(i));
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / n, 0.5, 0.005);
  EXPECT_EQ(CounterUniform(1, 2), CounterUniform(1, 2));
  EXPECT_NE(CounterUniform(1, 2), CounterUniform(2, 1));
  EXPECT_NE(CounterUniform(0, 0), CounterUniform(0, 1));
}

// ---------------------------------------------------------------- logprobs

TEST(Sampler, LogprobsAreRawLogSoftmax) {
  const std::vector<float> logits = {1.0f, 2.0f, 0.5f, 3.0f, -1.0f, 2.5f};
  const std::vector<double> ref = LogSoftmax(logits);
  SamplingParams p;
  p.logprobs = 3;
  // Temperature, bias and penalties must not change the reported (raw) logprobs.
  p.temperature = 0.5f;
  p.logit_bias = {{4, 50.0f}};
  p.repetition_penalty = 1.7f;
  std::vector<int32_t> output = {3};
  SampleInput in = Input(p, 3, 0);
  in.output_ids = output;
  SampleResult r = Sample(logits, in);
  EXPECT_EQ(r.token, 4);  // the bias dominates the choice
  EXPECT_NEAR(r.logprob, ref[4], 1e-5);
  EXPECT_EQ(r.rank, 6);
  ASSERT_EQ(r.top_logprobs.size(), 3u);
  EXPECT_EQ(r.top_logprobs[0].first, 3);
  EXPECT_EQ(r.top_logprobs[1].first, 5);
  EXPECT_EQ(r.top_logprobs[2].first, 1);
  for (const auto& [id, lp] : r.top_logprobs) EXPECT_NEAR(lp, ref[id], 1e-5);
}

TEST(Sampler, LogprobsNotRequestedGivesEmptyTop) {
  SamplingParams p;
  p.temperature = 0.0f;
  SampleResult r = Sample({0.0f, 1.0f}, Input(p));
  EXPECT_TRUE(r.top_logprobs.empty());
  EXPECT_EQ(r.rank, 1);
  EXPECT_NEAR(r.logprob, LogSoftmax({0.0f, 1.0f})[1], 1e-6);
  p.logprobs = 0;  // vLLM: only the chosen token
  EXPECT_TRUE(Sample({0.0f, 1.0f}, Input(p)).top_logprobs.empty());
}

TEST(Sampler, LogprobsTiesAndRanks) {
  // Ties: top list by lower id; ranks shared (1 + number strictly greater).
  const std::vector<float> logits = {1.0f, 3.0f, 3.0f, 2.0f, 3.0f};
  RowLogprobs row = ComputeRowLogprobs(logits, 4, 4);
  ASSERT_EQ(row.top.size(), 4u);
  EXPECT_EQ(row.top[0].first, 1);
  EXPECT_EQ(row.top[1].first, 2);
  EXPECT_EQ(row.top[2].first, 4);
  EXPECT_EQ(row.top[3].first, 3);
  EXPECT_EQ(row.target_rank, 1);
  EXPECT_EQ(ComputeRowLogprobs(logits, 0, 3).target_rank, 4);
  EXPECT_EQ(ComputeRowLogprobs(logits, 0, 0).target_rank, 5);
  // top_n larger than the vocab is clamped.
  EXPECT_EQ(ComputeRowLogprobs(logits, 100, -1).top.size(), 5u);
}

TEST(Sampler, RowLogprobsMatchReferenceOnLargeRow) {
  const std::vector<float> logits = RandomLogits(49152, 5, 20.0f);
  const std::vector<double> ref = LogSoftmax(logits);
  for (int top_n : {5, 20, 2000}) {  // heap path and partial_sort path
    RowLogprobs row = ComputeRowLogprobs(logits, top_n, 1234);
    ASSERT_EQ(row.top.size(), static_cast<size_t>(top_n));
    for (size_t i = 0; i < row.top.size(); ++i) {
      EXPECT_NEAR(row.top[i].second, ref[row.top[i].first], 1e-4);
      if (i > 0) {
        const auto& a = row.top[i - 1];
        const auto& b = row.top[i];
        EXPECT_TRUE(logits[a.first] > logits[b.first] ||
                    (logits[a.first] == logits[b.first] && a.first < b.first));
      }
    }
    // Nothing outside the list beats its last element.
    float last = logits[row.top.back().first];
    int greater = 0;
    for (float x : logits) greater += x > last;
    EXPECT_LT(greater, top_n);
    EXPECT_NEAR(row.target_logprob, ref[1234], 1e-4);
    int expected_rank = 1;
    for (float x : logits) expected_rank += x > logits[1234];
    EXPECT_EQ(row.target_rank, expected_rank);
  }
}

TEST(Sampler, LogprobsStableForHugeLogits) {
  const std::vector<float> logits = {10000.0f, 9999.0f, -10000.0f, kNegInf};
  RowLogprobs row = ComputeRowLogprobs(logits, 4, 3);
  const std::vector<double> ref = LogSoftmax({10000.0f, 9999.0f, -10000.0f});
  EXPECT_NEAR(row.top[0].second, ref[0], 1e-6);
  EXPECT_NEAR(row.top[1].second, ref[1], 1e-6);
  EXPECT_NEAR(row.top[2].second, ref[2], 1e-2);
  EXPECT_EQ(row.top[3].second, kNegInf);
  EXPECT_EQ(row.target_logprob, kNegInf);
  EXPECT_EQ(row.target_rank, 4);
}

TEST(Sampler, LargeVocabSamplingStaysInTopSet) {
  // 151,936 tokens (Qwen2-sized) with a few dominant logits: every path must pick from them.
  std::vector<float> logits = RandomLogits(151936, 21, 2.0f);
  const std::vector<int32_t> hot = {17, 50000, 151935};
  for (int32_t id : hot) logits[id] = 30.0f;
  for (int top_k : {0, 40, 5000}) {
    SamplingParams p;
    p.top_k = top_k;
    p.top_p = 0.9f;
    p.temperature = 0.7f;
    for (int step = 0; step < 20; ++step) {
      int32_t t = Sample(logits, Input(p, 8, step)).token;
      EXPECT_TRUE(t == 17 || t == 50000 || t == 151935) << t;
    }
  }
}


// The structured-outputs mask: disallowed tokens are never drawn (greedy or random, even
// when the model prefers them), tokens past the mask are disallowed, and the logprobs are
// those of the masked distribution (the allowed tokens' softmax).
TEST(Sampler, AllowedTokenMaskRestrictsEveryDrawAndItsLogprobs) {
  const std::vector<float> logits = {5.0f, 1.0f, 0.5f, 4.0f, 0.0f, 3.0f, 2.0f, 6.0f, -1.0f, 0.25f,
                                     1.5f, 2.5f, 0.75f, 3.5f, 4.5f, 5.5f, 0.1f, 0.2f, 0.3f, 0.4f,
                                     0.6f, 0.7f, 0.8f, 0.9f, 1.1f, 1.2f, 1.3f, 1.4f, 1.6f, 1.7f,
                                     1.8f, 1.9f, 7.0f, 7.5f};  // 34 tokens: the mask has two words
  const std::vector<uint32_t> mask = {(1u << 1) | (1u << 4) | (1u << 6), 0u};  // tokens 1, 4, 6
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  greedy.logprobs = 3;
  SampleInput in = Input(greedy);
  in.allowed_tokens = mask;
  const SampleResult g = Sample(logits, in);
  EXPECT_EQ(g.token, 6);  // the best allowed, though 32, 33 and 7 score higher
  const double z = std::exp(1.0) + std::exp(0.0) + std::exp(2.0);
  EXPECT_NEAR(g.logprob, 2.0 - std::log(z), 1e-5);
  ASSERT_EQ(g.top_logprobs.size(), 3u);
  EXPECT_EQ(g.top_logprobs[0].first, 6);
  EXPECT_EQ(g.top_logprobs[1].first, 1);
  EXPECT_EQ(g.top_logprobs[2].first, 4);
  SamplingParams hot;
  hot.temperature = 2.0f;
  std::set<int32_t> seen;
  for (int step = 0; step < 400; ++step) {
    SampleInput r = Input(hot, 77, step);
    r.allowed_tokens = mask;
    seen.insert(Sample(logits, r).token);
  }
  EXPECT_EQ(seen, (std::set<int32_t>{1, 4, 6}));
  // A one-word mask covers tokens 0..31 only: 32 and 33 (the model's favourites) are out.
  const std::vector<uint32_t> short_mask = {0xFFFFFFFFu};
  SampleInput s = Input(greedy);
  s.allowed_tokens = short_mask;
  EXPECT_EQ(Sample(logits, s).token, 7);
}

// The sparse processors as one edit per token (BuildLogitEdits, which the CUDA sampler runs
// too) against the sequential definition written out plainly: bias for each entry, stop ids
// to -inf under min_tokens, repetition once per distinct prompt ∪ output token, then
// frequency × count and presence once per distinct output token; ids out of range skipped.
void SequentialReference(std::vector<float>& l, const SampleInput& in) {
  const SamplingParams& p = *in.params;
  const int64_t v = static_cast<int64_t>(l.size());
  auto ok = [v](int32_t id) { return id >= 0 && id < v; };
  for (const auto& [id, bias] : p.logit_bias) {
    if (ok(id)) l[id] += bias;
  }
  if (static_cast<int64_t>(in.output_ids.size()) < p.min_tokens) {
    for (int32_t id : in.stop_ids) {
      if (ok(id)) l[id] = kNegInf;
    }
  }
  std::set<int32_t> seen;
  for (auto ids : {in.prompt_ids, in.output_ids}) {
    for (int32_t id : ids) {
      if (!ok(id) || !seen.insert(id).second || p.repetition_penalty == 1.0f) continue;
      l[id] = l[id] > 0.0f ? l[id] / p.repetition_penalty : l[id] * p.repetition_penalty;
    }
  }
  std::set<int32_t> done;
  for (int32_t id : in.output_ids) {
    if (!ok(id) || !done.insert(id).second) continue;
    const auto count = std::count(in.output_ids.begin(), in.output_ids.end(), id);
    const float f = p.frequency_penalty * static_cast<float>(count);
    l[id] -= f;
    l[id] -= p.presence_penalty;
  }
}

TEST(Sampler, SparseProcessorsMatchTheSequentialDefinition) {
  std::mt19937 rng(11);
  const int64_t vocab = 4000;
  for (int trial = 0; trial < 300; ++trial) {
    SamplingParams p;
    std::vector<int32_t> prompt, output, stops;
    auto id = [&] { return static_cast<int32_t>(rng() % (vocab + 40)) - 20; };  // some out of range
    for (int i = 0, n = static_cast<int>(rng() % 200); i < n; ++i) prompt.push_back(id() % 300);
    for (int i = 0, n = static_cast<int>(rng() % 60); i < n; ++i) output.push_back(id() % 300);
    for (int i = 0, n = static_cast<int>(rng() % 4); i < n; ++i) stops.push_back(id());
    if (trial % 2) p.repetition_penalty = 0.5f + static_cast<float>(rng() % 100) / 50.0f;
    if (trial % 3) p.frequency_penalty = static_cast<float>(static_cast<int>(rng() % 400) - 200) / 100.0f;
    if (trial % 5) p.presence_penalty = static_cast<float>(static_cast<int>(rng() % 400) - 200) / 100.0f;
    for (int i = 0, n = static_cast<int>(rng() % 8); i < n; ++i) p.logit_bias[id()] = static_cast<float>(rng() % 200) - 100.0f;
    p.min_tokens = static_cast<int>(rng() % 80);
    SampleInput in = Input(p);
    in.prompt_ids = prompt;
    in.output_ids = output;
    in.stop_ids = stops;
    std::vector<float> row(static_cast<size_t>(vocab));
    for (float& x : row) x = static_cast<float>(static_cast<int>(rng() % 4000) - 2000) / 97.0f;
    std::vector<float> want = row, got = row;
    SequentialReference(want, in);
    ApplyLogitsProcessors(got, in);
    for (int64_t t = 0; t < vocab; ++t) ASSERT_EQ(got[t], want[t]) << "trial " << trial << " token " << t;
  }
}

}  // namespace
}  // namespace inferd
