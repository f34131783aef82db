#include "util/bytes.h"

#include <limits>

#include <gtest/gtest.h>

namespace inferd {
namespace {

TEST(ParseByteSize, Units) {
  EXPECT_EQ(*ParseByteSize("512MiB"), 512ll << 20);
  EXPECT_EQ(*ParseByteSize("2GiB"), 2ll << 30);
  EXPECT_EQ(*ParseByteSize("1g"), 1ll << 30);
  EXPECT_EQ(*ParseByteSize("1.5GiB"), 3ll << 29);
  EXPECT_EQ(*ParseByteSize("4096"), 4096);
  EXPECT_EQ(*ParseByteSize("4194304TiB"), int64_t{1} << 62);
  EXPECT_FALSE(ParseByteSize("lots").ok());
  EXPECT_FALSE(ParseByteSize("12parsecs").ok());
  // Past 4 EiB (llround would overflow): an error, not a wrapped number.
  EXPECT_EQ(ParseByteSize("1e30GiB").status().message().find("invalid"), 0u);
  EXPECT_FALSE(ParseByteSize("99999999999999999999TiB").ok());
  EXPECT_NE(ParseByteSize("4194305TiB").status().message().find("too large"), std::string::npos);
}

TEST(FormatBytes, Units) {
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(340 << 20), "340.0 MiB");
  EXPECT_EQ(FormatBytes(3ll << 29), "1.50 GiB");
  EXPECT_EQ(FormatBytes(5ll << 40), "5.00 TiB");
}

TEST(CheckFitsInMemory, NamesTheSource) {
  ASSERT_GT(UsableMemoryBytes(), 0);
  EXPECT_TRUE(CheckFitsInMemory(1 << 20, "x").ok());
  Status s = CheckFitsInMemory(SaturatingMul(int64_t{1} << 40, int64_t{1} << 40), "max_position_embeddings");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message().rfind("max_position_embeddings needs more than 8 EiB, more than the ", 0), 0u) << s.message();
  s = CheckFitsInMemory(UsableMemoryBytes() + 1, "--kv-cache-memory");
  EXPECT_FALSE(s.ok());
}

TEST(SaturatingMul, Saturates) {
  EXPECT_EQ(SaturatingMul(3, 4), 12);
  EXPECT_EQ(SaturatingMul(int64_t{1} << 40, int64_t{1} << 30), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(SaturatingMul(-1, 4), std::numeric_limits<int64_t>::max());
}

}  // namespace
}  // namespace inferd
