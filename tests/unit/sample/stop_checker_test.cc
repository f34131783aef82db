// Stop conditions: token checks in vLLM's order, stop strings across token boundaries,
// truncation with and without include_stop_str_in_output, streaming holdback.

#include "sample/stop_checker.h"

#include <string>

#include <gtest/gtest.h>

namespace inferd {
namespace {

constexpr int32_t kEos = 2;
constexpr int64_t kCtx = 1000;

StopDecision Token(const SamplingParams& p, int32_t token, int64_t num_output,
                   int64_t num_total = 10, int64_t max_model_len = kCtx) {
  return CheckStopToken(p, token, token == kEos, num_output, num_total, max_model_len);
}

std::string Reason(const StopDecision& d) { return d.finish_reason ? d.finish_reason : ""; }

TEST(StopToken, NothingToStop) {
  SamplingParams p;
  StopDecision d = Token(p, 7, 3);
  EXPECT_FALSE(d.stopped);
  EXPECT_EQ(d.finish_reason, nullptr);
  EXPECT_FALSE(d.truncate_text_to.has_value());
}

TEST(StopToken, EosStops) {
  SamplingParams p;
  StopDecision d = Token(p, kEos, 3);
  EXPECT_TRUE(d.stopped);
  EXPECT_EQ(Reason(d), "stop");
  EXPECT_TRUE(std::holds_alternative<std::monostate>(d.stop_reason));
}

TEST(StopToken, IgnoreEosContinues) {
  SamplingParams p;
  p.ignore_eos = true;
  EXPECT_FALSE(Token(p, kEos, 3).stopped);
  // stop_token_ids still apply under ignore_eos.
  p.stop_token_ids = {9};
  StopDecision d = Token(p, 9, 3);
  EXPECT_TRUE(d.stopped);
  EXPECT_EQ(std::get<int32_t>(d.stop_reason), 9);
}

TEST(StopToken, StopTokenIdsStopWithReason) {
  SamplingParams p;
  p.stop_token_ids = {9, 11};
  StopDecision d = Token(p, 11, 1);
  EXPECT_TRUE(d.stopped);
  EXPECT_EQ(Reason(d), "stop");
  ASSERT_TRUE(std::holds_alternative<int32_t>(d.stop_reason));
  EXPECT_EQ(std::get<int32_t>(d.stop_reason), 11);
}

TEST(StopToken, MinTokensGatesEosAndStopIds) {
  SamplingParams p;
  p.min_tokens = 4;
  p.stop_token_ids = {9};
  EXPECT_FALSE(Token(p, kEos, 3).stopped);
  EXPECT_FALSE(Token(p, 9, 3).stopped);
  EXPECT_TRUE(Token(p, kEos, 4).stopped);
  EXPECT_TRUE(Token(p, 9, 4).stopped);
}

TEST(StopToken, MaxTokensIsLength) {
  SamplingParams p;
  p.max_tokens = 5;
  EXPECT_FALSE(Token(p, 7, 4).stopped);
  StopDecision d = Token(p, 7, 5);
  EXPECT_TRUE(d.stopped);
  EXPECT_EQ(Reason(d), "length");
  EXPECT_TRUE(std::holds_alternative<std::monostate>(d.stop_reason));
}

TEST(StopToken, EosAtMaxTokensIsStop) {
  // EOS is checked before max_tokens: the model did finish.
  SamplingParams p;
  p.max_tokens = 5;
  EXPECT_EQ(Reason(Token(p, kEos, 5)), "stop");
  p.ignore_eos = true;
  EXPECT_EQ(Reason(Token(p, kEos, 5)), "length");
}

TEST(StopToken, MinTokensDoesNotGateLength) {
  SamplingParams p;
  p.min_tokens = 10;
  p.max_tokens = 10;
  EXPECT_FALSE(Token(p, kEos, 9).stopped);
  EXPECT_EQ(Reason(Token(p, kEos, 10)), "stop");  // min_tokens reached: EOS counts
  // The context limit applies even before min_tokens.
  EXPECT_EQ(Reason(Token(p, 7, 3, /*num_total=*/kCtx)), "length");
}

TEST(StopToken, MaxModelLenIsLength) {
  SamplingParams p;
  p.max_tokens = std::nullopt;
  EXPECT_FALSE(Token(p, 7, 500, kCtx - 1).stopped);
  StopDecision d = Token(p, 7, 500, kCtx);
  EXPECT_TRUE(d.stopped);
  EXPECT_EQ(Reason(d), "length");
  EXPECT_FALSE(Token(p, 7, 100000, 100000, /*max_model_len=*/0).stopped);  // 0: no limit
}

// ---------------------------------------------------------------- stop strings

SamplingParams WithStops(std::vector<std::string> stops, bool include = false) {
  SamplingParams p;
  p.stop = std::move(stops);
  p.include_stop_str_in_output = include;
  return p;
}

TEST(StopStrings, NoStopsOrNoNewText) {
  EXPECT_FALSE(CheckStopStrings(SamplingParams(), "hello END", 4).stopped);
  EXPECT_FALSE(CheckStopStrings(WithStops({"END"}), "hello END", 0).stopped);
}

TEST(StopStrings, MatchInNewTextTruncatesBeforeStop) {
  StopDecision d = CheckStopStrings(WithStops({"END"}), "hello END tail", 9);
  EXPECT_TRUE(d.stopped);
  EXPECT_EQ(Reason(d), "stop");
  EXPECT_EQ(std::get<std::string>(d.stop_reason), "END");
  ASSERT_TRUE(d.truncate_text_to.has_value());
  EXPECT_EQ(*d.truncate_text_to, 6u);
}

TEST(StopStrings, MatchAcrossTokenBoundary) {
  // "EN" arrived with the previous token, "D" with this one.
  SamplingParams p = WithStops({"END"});
  EXPECT_FALSE(CheckStopStrings(p, "hello EN", 3).stopped);
  StopDecision d = CheckStopStrings(p, "hello END", 1);
  EXPECT_TRUE(d.stopped);
  EXPECT_EQ(*d.truncate_text_to, 6u);
}

TEST(StopStrings, OldMatchesAreNotReported) {
  // A match that ended before the new bytes was handled (or skipped) already.
  EXPECT_FALSE(CheckStopStrings(WithStops({"ab"}), "xxabyyy", 3).stopped);
  EXPECT_TRUE(CheckStopStrings(WithStops({"ab"}), "xxabyyy", 4).stopped);
}

TEST(StopStrings, EarliestOfSeveral) {
  // "bar" is listed first but "foo" starts earlier in the text.
  SamplingParams p = WithStops({"bar", "foo"});
  StopDecision d = CheckStopStrings(p, "xx foo bar", 8);
  EXPECT_EQ(std::get<std::string>(d.stop_reason), "foo");
  EXPECT_EQ(*d.truncate_text_to, 3u);
  // Equal starts: the first in the list wins.
  d = CheckStopStrings(WithStops({"ab", "abc"}), "zabc", 3);
  EXPECT_EQ(std::get<std::string>(d.stop_reason), "ab");
  EXPECT_EQ(*d.truncate_text_to, 1u);
}

TEST(StopStrings, IncludeStopStrInOutput) {
  SamplingParams p = WithStops({"END"}, /*include=*/true);
  StopDecision d = CheckStopStrings(p, "hello END tail", 9);
  EXPECT_TRUE(d.stopped);
  ASSERT_TRUE(d.truncate_text_to.has_value());
  EXPECT_EQ(*d.truncate_text_to, 9u);  // keeps "hello END"
  // Stop string at the very end: nothing to cut.
  d = CheckStopStrings(p, "hello END", 2);
  EXPECT_TRUE(d.stopped);
  EXPECT_FALSE(d.truncate_text_to.has_value());
}

TEST(StopStrings, NewLenLargerThanTextIsClamped) {
  StopDecision d = CheckStopStrings(WithStops({"a"}), "ba", 50);
  EXPECT_TRUE(d.stopped);
  EXPECT_EQ(*d.truncate_text_to, 1u);
}

TEST(StopStrings, MultiByteUtf8) {
  SamplingParams p = WithStops({"\xE3\x80\x82"});  // "。"
  StopDecision d = CheckStopStrings(p, "\xE4\xBD\xA0\xE5\xA5\xBD\xE3\x80\x82!", 4);
  EXPECT_TRUE(d.stopped);
  EXPECT_EQ(*d.truncate_text_to, 6u);
}

TEST(StopStrings, Holdback) {
  SamplingParams p = WithStops({"</end>", "###"});
  EXPECT_EQ(StopStringHoldback(p, "text </e"), 3u);
  EXPECT_EQ(StopStringHoldback(p, "text <"), 1u);
  EXPECT_EQ(StopStringHoldback(p, "text ##"), 2u);
  EXPECT_EQ(StopStringHoldback(p, "text"), 0u);
  EXPECT_EQ(StopStringHoldback(p, ""), 0u);
  EXPECT_EQ(StopStringHoldback(p, "</end"), 5u);  // longest proper prefix
  EXPECT_EQ(StopStringHoldback(SamplingParams(), "text </e"), 0u);
  EXPECT_EQ(StopStringHoldback(WithStops({"</end>"}, /*include=*/true), "text </e"), 0u);
  // Overlapping candidates: the longest wins.
  EXPECT_EQ(StopStringHoldback(WithStops({"aab"}), "xaa"), 2u);
  EXPECT_EQ(StopStringHoldback(WithStops({"aab"}), "xa"), 1u);
}

}  // namespace
}  // namespace inferd
