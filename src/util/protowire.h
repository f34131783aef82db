// The protocol buffers wire format, by hand: enough to read and write the few messages of
// the gRPC API (proto/inferd/v1/generation.proto) without linking libprotobuf, which cannot
// share a process with Debian's libsentencepiece (it exports its own copy of protobuf's
// symbols, and the two interpose each other: docs/grpc.md).
//
// Reader checks every length against the bytes it has, so hostile input is an error, never a
// read past the end. https://protobuf.dev/programming-guides/encoding/
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace inferd::protowire {

enum class WireType : uint8_t { kVarint = 0, kFixed64 = 1, kLen = 2, kStartGroup = 3, kEndGroup = 4, kFixed32 = 5 };

constexpr uint32_t kMaxFieldNumber = (1u << 29) - 1;

// Appends fields to a message's bytes.
class Writer {
 public:
  void Varint(uint32_t field, uint64_t value);
  // int32 and int64 fields: a negative value takes ten bytes (sign-extended), as protobuf does.
  void Int(uint32_t field, int64_t value) { Varint(field, static_cast<uint64_t>(value)); }
  void Bool(uint32_t field, bool value) { Varint(field, value ? 1 : 0); }
  void Float(uint32_t field, float value);
  void Bytes(uint32_t field, std::string_view value);  // also strings and sub-messages
  void PackedInt32(uint32_t field, std::span<const int32_t> values);

  const std::string& data() const { return out_; }
  std::string Take() { return std::move(out_); }

 private:
  void Tag(uint32_t field, WireType type);
  void Raw(uint64_t v);
  std::string out_;
};

struct Field {
  uint32_t number = 0;
  WireType type = WireType::kVarint;
  uint64_t varint = 0;     // kVarint; kFixed32/kFixed64 bits too
  std::string_view bytes;  // kLen
};

// Reads a message's fields in order.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  // The next field: false at the end, or on malformed input (then error() says why).
  bool Next(Field* f);
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

 private:
  bool ReadVarint(uint64_t* v);
  bool Fail(std::string why);
  std::string_view data_;
  size_t pos_ = 0;
  std::string error_;
};

// A float field's value (kFixed32 bits).
float FloatOf(const Field& f);
// Appends the values of one occurrence of a repeated int32 field: packed (kLen) or a single
// value (kVarint). False on malformed packed bytes or another wire type.
bool AppendInt32s(const Field& f, std::vector<int32_t>* out);

}  // namespace inferd::protowire
