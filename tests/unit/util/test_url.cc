// util/url.h: base URL forms and host labels.
#include "util/url.h"

#include <gtest/gtest.h>

namespace inferd {
namespace {

TEST(Url, Forms) {
  auto a = ParseBaseUrl("http://127.0.0.1:8000");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, "8000");
  EXPECT_EQ(a->prefix, "");
  auto b = ParseBaseUrl("localhost:9001/");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->host, "localhost");
  EXPECT_EQ(b->port, "9001");
  EXPECT_EQ(b->prefix, "");
  auto c = ParseBaseUrl("http://example.com/proxy/a/");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->port, "80");
  EXPECT_EQ(c->prefix, "/proxy/a");
  auto d = ParseBaseUrl("http://[::1]:8080");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->host, "::1");
  EXPECT_EQ(d->port, "8080");
  EXPECT_FALSE(ParseBaseUrl("https://x:1").ok());
  EXPECT_FALSE(ParseBaseUrl("ftp://x").ok());
  EXPECT_FALSE(ParseBaseUrl("http://:80").ok());
  EXPECT_FALSE(ParseBaseUrl("http://x:99999").ok());
  EXPECT_FALSE(ParseBaseUrl("http://x:8a").ok());
}

TEST(Url, HostLabels) {
  auto a = ParseBaseUrl("http://127.0.0.1:8000");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(HostPort(*a), "127.0.0.1:8000");
  EXPECT_EQ(HostHeader(*a), "127.0.0.1:8000");
  auto b = ParseBaseUrl("http://[::1]");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(HostPort(*b), "[::1]:80");
  EXPECT_EQ(HostHeader(*b), "[::1]");
}

TEST(Url, QueryParam) {
  EXPECT_EQ(QueryParam("api_key=abc", "api_key"), "abc");
  EXPECT_EQ(QueryParam("a=1&api_key=x%2By+z&api_key=second", "api_key"), "x+y z");  // the first one
  EXPECT_EQ(QueryParam("a=1&b", "b"), "");
  EXPECT_EQ(QueryParam("api%5Fkey=v", "api_key"), "v");  // the name is decoded too
  EXPECT_EQ(QueryParam("a=%E2%9C%93", "a"), "\xE2\x9C\x93");
  EXPECT_FALSE(QueryParam("", "a").has_value());
  EXPECT_FALSE(QueryParam("ab=1", "a").has_value());
  EXPECT_FALSE(QueryParam("a=%4", "a").has_value());   // truncated escape
  EXPECT_FALSE(QueryParam("a=%zz", "a").has_value());  // not hex
  EXPECT_FALSE(QueryParam("a=%", "a").has_value());
}

}  // namespace
}  // namespace inferd
