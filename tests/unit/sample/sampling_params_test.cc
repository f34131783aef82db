// SamplingParams::Validate: one test per rule; each checks the message names the parameter
// and the offending value as vLLM writes it.

#include <cmath>
#include <limits>
#include <string>

#include <gtest/gtest.h>

#include "inferd/sampling_params.h"

namespace inferd {
namespace {

// Expects Validate() to fail with kInvalidArgument and exactly `message`.
void ExpectInvalid(const SamplingParams& p, const std::string& message) {
  Status st = p.Validate();
  ASSERT_FALSE(st.ok()) << "expected failure: " << message;
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), message);
}

TEST(SamplingParamsValidate, DefaultsAreValid) {
  SamplingParams p;
  EXPECT_TRUE(p.Validate().ok());
  EXPECT_FALSE(p.greedy());
  p.temperature = 0.0f;
  EXPECT_TRUE(p.greedy());
}

TEST(SamplingParamsValidate, N) {
  SamplingParams p;
  p.n = 0;
  ExpectInvalid(p, "n must be at least 1, got 0.");
  p.n = 4;
  EXPECT_TRUE(p.Validate().ok());
}

TEST(SamplingParamsValidate, PresencePenalty) {
  SamplingParams p;
  p.presence_penalty = 2.5f;
  ExpectInvalid(p, "presence_penalty must be in [-2, 2], got 2.5.");
  p.presence_penalty = -3.0f;
  ExpectInvalid(p, "presence_penalty must be in [-2, 2], got -3.0.");
  p.presence_penalty = std::nanf("");
  ExpectInvalid(p, "presence_penalty must be in [-2, 2], got nan.");
  p.presence_penalty = -2.0f;
  EXPECT_TRUE(p.Validate().ok());
  p.presence_penalty = 2.0f;
  EXPECT_TRUE(p.Validate().ok());
}

TEST(SamplingParamsValidate, FrequencyPenalty) {
  SamplingParams p;
  p.frequency_penalty = -2.1f;
  ExpectInvalid(p, "frequency_penalty must be in [-2, 2], got -2.1.");
  p.frequency_penalty = 1.5f;
  EXPECT_TRUE(p.Validate().ok());
}

TEST(SamplingParamsValidate, RepetitionPenalty) {
  SamplingParams p;
  p.repetition_penalty = 0.0f;
  ExpectInvalid(p, "repetition_penalty must be greater than zero, got 0.0.");
  p.repetition_penalty = -2.0f;
  ExpectInvalid(p, "repetition_penalty must be greater than zero, got -2.0.");
  p.repetition_penalty = std::numeric_limits<float>::infinity();
  ExpectInvalid(p, "repetition_penalty must be a finite number, got inf.");
  p.repetition_penalty = 1.1f;
  EXPECT_TRUE(p.Validate().ok());
}

TEST(SamplingParamsValidate, Temperature) {
  SamplingParams p;
  p.temperature = -1.0f;
  ExpectInvalid(p, "temperature must be non-negative, got -1.0.");
  p.temperature = std::nanf("");
  ExpectInvalid(p, "temperature must be a finite number, got nan.");
  p.temperature = 0.0f;
  EXPECT_TRUE(p.Validate().ok());
  p.temperature = 5.0f;
  EXPECT_TRUE(p.Validate().ok());
}

TEST(SamplingParamsValidate, TopP) {
  SamplingParams p;
  p.top_p = 0.0f;
  ExpectInvalid(p, "top_p must be in (0, 1], got 0.0.");
  p.top_p = 1.5f;
  ExpectInvalid(p, "top_p must be in (0, 1], got 1.5.");
  p.top_p = 0.01f;
  EXPECT_TRUE(p.Validate().ok());
}

TEST(SamplingParamsValidate, TopK) {
  SamplingParams p;
  p.top_k = -5;
  ExpectInvalid(p, "top_k must be 0 or -1 (disable), or at least 1, got -5.");
  for (int k : {-1, 0, 1, 50, 1 << 30}) {
    p.top_k = k;
    EXPECT_TRUE(p.Validate().ok()) << k;
  }
}

TEST(SamplingParamsValidate, MinP) {
  SamplingParams p;
  p.min_p = -0.1f;
  ExpectInvalid(p, "min_p must be in [0, 1], got -0.1.");
  p.min_p = 1.25f;
  ExpectInvalid(p, "min_p must be in [0, 1], got 1.25.");
  p.min_p = 1.0f;
  EXPECT_TRUE(p.Validate().ok());
}

TEST(SamplingParamsValidate, MaxTokens) {
  SamplingParams p;
  p.max_tokens = 0;
  ExpectInvalid(p, "max_tokens must be at least 1, got 0.");
  p.max_tokens = std::nullopt;
  EXPECT_TRUE(p.Validate().ok());
}

TEST(SamplingParamsValidate, MinTokens) {
  SamplingParams p;
  p.min_tokens = -1;
  ExpectInvalid(p, "min_tokens must be greater than or equal to 0, got -1.");
  p.min_tokens = 17;  // default max_tokens is 16
  ExpectInvalid(p, "min_tokens must be less than or equal to max_tokens=16, got 17.");
  p.max_tokens = std::nullopt;
  EXPECT_TRUE(p.Validate().ok());
  p.max_tokens = 17;
  EXPECT_TRUE(p.Validate().ok());
}

TEST(SamplingParamsValidate, Logprobs) {
  SamplingParams p;
  p.logprobs = -1;
  ExpectInvalid(p, "logprobs must be non-negative, got -1.");
  p.logprobs = 0;
  EXPECT_TRUE(p.Validate().ok());
}

TEST(SamplingParamsValidate, PromptLogprobs) {
  SamplingParams p;
  p.prompt_logprobs = -2;
  ExpectInvalid(p, "prompt_logprobs must be non-negative, got -2.");
  p.prompt_logprobs = 5;
  EXPECT_TRUE(p.Validate().ok());
}

TEST(SamplingParamsValidate, Stop) {
  SamplingParams p;
  p.stop = {"\n\n", ""};
  ExpectInvalid(p, "stop cannot contain an empty string.");
  p.stop = {"\n\n", "###"};
  EXPECT_TRUE(p.Validate().ok());
}

TEST(SamplingParamsValidate, StopTokenIds) {
  SamplingParams p;
  p.stop_token_ids = {2, -7};
  ExpectInvalid(p, "stop_token_ids must be non-negative token ids, got -7.");
}

TEST(SamplingParamsValidate, LogitBias) {
  SamplingParams p;
  p.logit_bias = {{-3, 1.0f}};
  ExpectInvalid(p, "logit_bias token ids must be non-negative, got -3.");
  p.logit_bias = {{3, std::nanf("")}};
  ExpectInvalid(p, "logit_bias for token 3 must be a number, got nan.");
  p.logit_bias = {{3, -100.0f}, {5, 100.0f}};
  EXPECT_TRUE(p.Validate().ok());
}

}  // namespace
}  // namespace inferd
