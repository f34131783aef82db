// util/protowire.h against the encoding guide's examples
// (https://protobuf.dev/programming-guides/encoding/) and hostile bytes.
#include "util/protowire.h"

#include <gtest/gtest.h>

#include "../hex_test_util.h"

#include <string>
#include <vector>

namespace inferd::protowire {
namespace {

using inferd::testing::Hex;
using inferd::testing::Unhex;

TEST(ProtoWire, WritesTheGuidesExamples) {
  Writer a;
  a.Int(1, 150);
  EXPECT_EQ(Hex(a.data()), "089601");
  Writer b;
  b.Bytes(2, "testing");
  EXPECT_EQ(Hex(b.data()), "120774657374696e67");
  Writer c;  // negative int32: ten bytes, sign-extended
  c.Int(1, -2);
  EXPECT_EQ(Hex(c.data()), "08feffffffffffffffff01");
  Writer d;  // packed repeated int32
  const std::vector<int32_t> v = {3, 270, 86942};
  d.PackedInt32(4, v);
  EXPECT_EQ(Hex(d.data()), "2206038e029ea705");
  Writer e;
  e.Float(2, 0.7f);
  EXPECT_EQ(Hex(e.data()), "153333333f");
  Writer f;
  f.PackedInt32(3, {});  // an empty repeated field is not written
  EXPECT_EQ(f.data(), "");
}

TEST(ProtoWire, ReadsWhatItWrites) {
  Writer w;
  w.Int(1, -2);
  w.Bytes(2, "testing");
  w.Float(3, -1.5f);
  const std::vector<int32_t> v = {1, -1, 70000};
  w.PackedInt32(4, v);
  w.Int(5, 1);
  Reader r(w.data());
  Field f;
  ASSERT_TRUE(r.Next(&f));
  EXPECT_EQ(f.number, 1u);
  EXPECT_EQ(f.type, WireType::kVarint);
  EXPECT_EQ(static_cast<int32_t>(static_cast<int64_t>(f.varint)), -2);
  ASSERT_TRUE(r.Next(&f));
  EXPECT_EQ(f.number, 2u);
  EXPECT_EQ(f.bytes, "testing");
  ASSERT_TRUE(r.Next(&f));
  EXPECT_EQ(f.type, WireType::kFixed32);
  EXPECT_EQ(FloatOf(f), -1.5f);
  ASSERT_TRUE(r.Next(&f));
  std::vector<int32_t> got;
  ASSERT_TRUE(AppendInt32s(f, &got));
  ASSERT_TRUE(r.Next(&f));  // an unpacked occurrence of the same kind of field
  ASSERT_TRUE(AppendInt32s(f, &got));
  EXPECT_EQ(got, (std::vector<int32_t>{1, -1, 70000, 1}));
  EXPECT_FALSE(r.Next(&f));
  EXPECT_TRUE(r.ok());
}

TEST(ProtoWire, HostileBytesAreErrorsNotReads) {
  const char* cases[] = {
      "08",                          // a tag without its varint
      "0880",                        // a varint cut short
      "08ffffffffffffffffffff01",    // eleven bytes
      "1205abcd",                    // a length past the end
      "12ffffffffffffffff7f",        // a huge length
      "15abcd",                      // a fixed32 cut short
      "0b",                          // start group: not used
      "00",                          // field number 0
      "f8ffffff7f01",                // field number past 2^29 - 1
  };
  for (const char* hex : cases) {
    const std::string bytes = Unhex(hex);
    Reader r(bytes);
    Field f;
    while (r.Next(&f)) {
    }
    EXPECT_FALSE(r.ok()) << hex;
    EXPECT_FALSE(r.Next(&f)) << hex;  // stays at the end
  }
  Field packed;
  packed.type = WireType::kLen;
  const std::string cut = Unhex("0396");  // 3, then a varint cut short
  packed.bytes = cut;
  std::vector<int32_t> out;
  EXPECT_FALSE(AppendInt32s(packed, &out));
  packed.type = WireType::kFixed32;
  EXPECT_FALSE(AppendInt32s(packed, &out));
}

}  // namespace
}  // namespace inferd::protowire
