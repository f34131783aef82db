// The router proxy's pure parts: /metrics scrapes (backends.h), routing traits of a request
// body and usage scanning (forward.h).
#include <gtest/gtest.h>

#include <string>

#include "router/backends.h"
#include "router/forward.h"

namespace inferd::router {
namespace {

TEST(ScrapeValue, SumsLabelledSamplesOfExactlyThatName) {
  const std::string text =
      "# HELP inferd:num_requests_waiting Waiting.\n"
      "# TYPE inferd:num_requests_waiting gauge\n"
      "inferd:num_requests_waiting{model_name=\"a\"} 3\n"
      "inferd:num_requests_waiting{model_name=\"b\"} 1.5\n"
      "inferd:num_requests_waiting_other 100\n"
      "inferd:kv_cache_usage_perc 0.25\n";
  EXPECT_EQ(ScrapeValue(text, "inferd:num_requests_waiting"), 4.5);
  EXPECT_EQ(ScrapeValue(text, "inferd:kv_cache_usage_perc"), 0.25);
  EXPECT_FALSE(ScrapeValue(text, "inferd:absent").has_value());
  EXPECT_FALSE(ScrapeValue("inferd:x NaN\ninferd:x garbage\n", "inferd:x").has_value());
  EXPECT_FALSE(ScrapeValue("", "inferd:x").has_value());
  EXPECT_EQ(ScrapeValue("inferd:x 2", "inferd:x"), 2.0);  // no final newline
}

TEST(RequestTraits, SharedPrefixesShareLeadingHashes) {
  RouterOptions o;
  o.prefix_block_bytes = 16;
  const std::string system(64, 's');
  auto body = [&](const std::string& user) {
    return std::string(R"({"model":"m","max_tokens":10,"messages":[{"role":"system","content":")") + system +
           R"("},{"role":"user","content":")" + user + R"("}]})";
  };
  RequestTraits a = ReadRequestTraits(body("first question, rather long indeed"), "/v1/chat/completions", o);
  RequestTraits b = ReadRequestTraits(body("another one entirely, also long"), "/v1/chat/completions", o);
  ASSERT_GE(a.block_hashes.size(), 5u);
  ASSERT_GE(b.block_hashes.size(), 5u);
  EXPECT_EQ(a.block_hashes[0], b.block_hashes[0]);
  EXPECT_EQ(a.block_hashes[3], b.block_hashes[3]);
  EXPECT_NE(a.block_hashes.back(), b.block_hashes.back());
}

TEST(RequestTraits, TokenEstimate) {
  RouterOptions o;
  const std::string b1 = R"({"prompt":"hello","max_tokens":100})";
  EXPECT_DOUBLE_EQ(ReadRequestTraits(b1, "/v1/completions", o).estimated_tokens, b1.size() / 4.0 + 100);
  const std::string b2 = R"({"prompt":"hello","max_completion_tokens":10,"max_tokens":100,"n":3})";
  EXPECT_DOUBLE_EQ(ReadRequestTraits(b2, "/v1/completions", o).estimated_tokens, (b2.size() / 4.0 + 10) * 3);
  const std::string b3 = R"({"prompt":"hello"})";  // no limit: 256
  EXPECT_DOUBLE_EQ(ReadRequestTraits(b3, "/v1/completions", o).estimated_tokens, b3.size() / 4.0 + 256);
  // Not JSON, not an object: nothing to route on, no charge (the replica answers 400).
  EXPECT_TRUE(ReadRequestTraits("{nope", "/v1/completions", o).block_hashes.empty());
  EXPECT_EQ(ReadRequestTraits("[1,2]", "/v1/completions", o).estimated_tokens, 0);
  // Nested past the JSON depth bound: no routing key, no crash.
  EXPECT_TRUE(ReadRequestTraits(std::string(100000, '[') + std::string(100000, ']'), "/v1/completions", o)
                  .block_hashes.empty());
  const std::string b4 = R"({"prompt":"x","max_tokens":-5,"n":1e9})";
  EXPECT_DOUBLE_EQ(ReadRequestTraits(b4, "/v1/completions", o).estimated_tokens, b4.size() / 4.0 + 256);
}

TEST(UsageScanner, FindsUsageInAStreamSplitAnywhere) {
  const std::string sse =
      "data: {\"choices\":[{\"text\":\"a\"}],\"usage\":null}\n\n"
      "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7,\"total_tokens\":12}}\n\n"
      "data: [DONE]\n\n";
  for (size_t split = 0; split <= sse.size(); split += 7) {
    UsageScanner s;
    s.FeedStream(std::string_view(sse).substr(0, split));
    s.FeedStream(std::string_view(sse).substr(split));
    ASSERT_EQ(s.total_tokens(), 12.0) << split;
  }
  UsageScanner none;
  none.FeedStream("data: {\"choices\":[]}\n\ndata: [DONE]\n\n");
  EXPECT_FALSE(none.total_tokens().has_value());
  UsageScanner whole;
  whole.ReadWhole(R"({"id":"x","usage":{"total_tokens":30}})");
  EXPECT_EQ(whole.total_tokens(), 30.0);
  whole.ReadWhole("not json");
  EXPECT_EQ(whole.total_tokens(), 30.0);
}

TEST(StreamEndScanner, FindsDoneSplitAnywhereAndNothingElse) {
  const std::string sse = "data: {\"choices\":[{\"text\":\"[DONE]\"}]}\n\ndata: [DONE]\n\n";
  const size_t at = sse.rfind("data: [DONE]");
  for (size_t a = 0; a <= sse.size(); ++a) {
    for (size_t b = a; b <= sse.size(); b += 3) {  // three reads, split at a and b
      StreamEndScanner s;
      s.Feed(std::string_view(sse).substr(0, a));
      ASSERT_EQ(s.done(), a >= at + 12) << a;
      s.Feed(std::string_view(sse).substr(a, b - a));
      ASSERT_EQ(s.done(), b >= at + 12) << a << " " << b;
      s.Feed(std::string_view(sse).substr(b));
      ASSERT_TRUE(s.done()) << a << " " << b;
    }
  }
  StreamEndScanner one_byte_reads;  // reads shorter than the kept tail
  for (char c : std::string("data: [DON")) one_byte_reads.Feed(std::string_view(&c, 1));
  EXPECT_FALSE(one_byte_reads.done());
  one_byte_reads.Feed("E");
  one_byte_reads.Feed("]");
  EXPECT_TRUE(one_byte_reads.done());
  StreamEndScanner text_only;  // [DONE] inside a token's text is not the marker
  text_only.Feed("data: {\"text\":\"[DONE]\"}\n\n");
  EXPECT_FALSE(text_only.done());
}

}  // namespace
}  // namespace inferd::router
