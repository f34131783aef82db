// The protocol buffers wire format (protowire.h).
#include "util/protowire.h"

#include <bit>
#include <cstring>

namespace inferd::protowire {
namespace {

// A varint at data[*pos], moving *pos past it: nullptr, or why it is malformed.
const char* ParseVarint(std::string_view data, size_t* pos, uint64_t* v) {
  uint64_t out = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*pos >= data.size()) return "truncated varint";
    const uint8_t b = static_cast<uint8_t>(data[(*pos)++]);
    out |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = out;
      return nullptr;
    }
  }
  return "varint longer than 10 bytes";
}

}  // namespace

void Writer::Raw(uint64_t v) {
  while (v >= 0x80) {
    out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out_.push_back(static_cast<char>(v));
}

void Writer::Tag(uint32_t field, WireType type) { Raw((static_cast<uint64_t>(field) << 3) | static_cast<uint8_t>(type)); }

void Writer::Varint(uint32_t field, uint64_t value) {
  Tag(field, WireType::kVarint);
  Raw(value);
}

void Writer::Float(uint32_t field, float value) {
  Tag(field, WireType::kFixed32);
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  for (int i = 0; i < 4; ++i) out_.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
}

void Writer::Bytes(uint32_t field, std::string_view value) {
  Tag(field, WireType::kLen);
  Raw(value.size());
  out_.append(value);
}

void Writer::PackedInt32(uint32_t field, std::span<const int32_t> values) {
  if (values.empty()) return;
  Writer packed;
  for (int32_t v : values) packed.Raw(static_cast<uint64_t>(static_cast<int64_t>(v)));
  Bytes(field, packed.data());
}

bool Reader::Fail(std::string why) {
  error_ = std::move(why);
  pos_ = data_.size();
  return false;
}

bool Reader::ReadVarint(uint64_t* v) {
  const char* why = ParseVarint(data_, &pos_, v);
  return why ? Fail(why) : true;
}

bool Reader::Next(Field* f) {
  if (!ok() || pos_ >= data_.size()) return false;
  uint64_t tag = 0;
  if (!ReadVarint(&tag)) return false;
  const uint64_t number = tag >> 3;
  if (number == 0 || number > kMaxFieldNumber) return Fail("invalid field number " + std::to_string(number));
  f->number = static_cast<uint32_t>(number);
  f->type = static_cast<WireType>(tag & 7);
  f->varint = 0;
  f->bytes = {};
  switch (f->type) {
    case WireType::kVarint: return ReadVarint(&f->varint);
    case WireType::kFixed32:
    case WireType::kFixed64: {
      const size_t n = f->type == WireType::kFixed32 ? 4 : 8;
      if (data_.size() - pos_ < n) return Fail("truncated fixed-size field");
      for (size_t i = 0; i < n; ++i) f->varint |= static_cast<uint64_t>(static_cast<uint8_t>(data_[pos_ + i])) << (8 * i);
      pos_ += n;
      return true;
    }
    case WireType::kLen: {
      uint64_t len = 0;
      if (!ReadVarint(&len)) return false;
      if (len > data_.size() - pos_) return Fail("length past the end of the message");
      f->bytes = data_.substr(pos_, static_cast<size_t>(len));
      pos_ += static_cast<size_t>(len);
      return true;
    }
    default: return Fail("unsupported wire type " + std::to_string(tag & 7) + " (groups are not used here)");
  }
}

float FloatOf(const Field& f) { return std::bit_cast<float>(static_cast<uint32_t>(f.varint)); }

bool AppendInt32s(const Field& f, std::vector<int32_t>* out) {
  if (f.type == WireType::kVarint) {
    out->push_back(static_cast<int32_t>(static_cast<int64_t>(f.varint)));
    return true;
  }
  if (f.type != WireType::kLen) return false;
  // A packed run: varints back to back, no tags.
  for (size_t pos = 0; pos < f.bytes.size();) {
    uint64_t v = 0;
    if (ParseVarint(f.bytes, &pos, &v)) return false;
    out->push_back(static_cast<int32_t>(static_cast<int64_t>(v)));
  }
  return true;
}

}  // namespace inferd::protowire
