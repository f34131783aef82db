// GGUF v2/v3 reader over a memory-mapped file (or a caller-owned buffer, for fuzzing).
//
// Contract: Open()/Parse() validate every count, length, offset and size against the
// file size before use; a truncated or corrupt file yields a DataLoss/InvalidArgument
// Status whose message names the offending field (key name, tensor name, "tensor_count"),
// never a crash or an out-of-bounds read. After a successful parse every TensorInfo's
// data pointer and nbytes lie inside the file and match its type and shape.
// Ownership: GgufFile owns the mapping; TensorInfo::data and string_views into metadata
// stay valid for the GgufFile's lifetime.
// Thread-safety: immutable after construction; safe for concurrent readers.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "format/ggml_types.h"
#include "inferd/status.h"
#include "util/mmap.h"

namespace inferd {

// GGUF metadata value types (as in the file).
enum class GgufType : uint32_t {
  kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5, kFloat32 = 6,
  kBool = 7, kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11, kFloat64 = 12,
};

struct GgufValue;
struct GgufArray {
  GgufType elem_type = GgufType::kUint8;
  // Exactly one of these is filled according to elem_type: integers (all widths, bool)
  // in ints, floats in floats, strings in strings, nested arrays in arrays.
  std::vector<int64_t> ints;
  std::vector<uint64_t> uints;  // kUint64 only (values above INT64_MAX)
  std::vector<double> floats;
  std::vector<std::string> strings;
  std::vector<GgufArray> arrays;
  size_t size() const;
};

struct GgufValue {
  GgufType type = GgufType::kUint8;
  std::variant<int64_t, uint64_t, double, bool, std::string, GgufArray> v;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> shape;  // GGML order: shape[0] is the innermost (contiguous) dim
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;         // relative to the start of the data section
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  int64_t num_elements() const;
};

class GgufFile {
 public:
  static StatusOr<std::unique_ptr<GgufFile>> Open(const std::string& path);
  // Parses a caller-owned buffer that must outlive the GgufFile (fuzzing, tests).
  static StatusOr<std::unique_ptr<GgufFile>> Parse(const uint8_t* data, size_t size);

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::string& path() const { return path_; }

  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* Find(std::string_view key) const;

  // Typed getters: nullopt when the key is absent or has an incompatible type.
  // GetInt accepts any integer type (and bool); GetFloat accepts float or integer types.
  std::optional<int64_t> GetInt(std::string_view key) const;
  std::optional<double> GetFloat(std::string_view key) const;
  std::optional<bool> GetBool(std::string_view key) const;
  std::optional<std::string> GetString(std::string_view key) const;
  const GgufArray* GetArray(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* FindTensor(std::string_view name) const;

 private:
  GgufFile() = default;
  Status ParseAll(const uint8_t* data, size_t size);

  std::unique_ptr<MappedFile> file_;
  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Writer used by tests (truncation/corruption cases, synthetic models) and tools.
// Builds a GGUF v3 file in memory.
class GgufWriter {
 public:
  // Any value, written as value.type (the variant member is converted to it): every scalar
  // type, strings, and arrays incl. nested arrays. The typed helpers below wrap it.
  void Add(const std::string& key, GgufValue value);
  void AddString(const std::string& key, const std::string& value);
  void AddUint32(const std::string& key, uint32_t value);
  void AddInt32(const std::string& key, int32_t value);
  void AddFloat32(const std::string& key, float value);
  void AddBool(const std::string& key, bool value);
  void AddStringArray(const std::string& key, const std::vector<std::string>& values);
  void AddFloat32Array(const std::string& key, const std::vector<float>& values);
  void AddInt32Array(const std::string& key, const std::vector<int32_t>& values);
  // Raw tensor bytes; size must equal GgmlRowSize(type, shape[0]) * prod(shape[1:]).
  void AddTensor(const std::string& name, GgmlType type, const std::vector<int64_t>& shape,
                 std::vector<uint8_t> bytes);
  // A non-default alignment is recorded as general.alignment unless that key was added.
  std::vector<uint8_t> Serialize(uint64_t alignment = 32) const;
  // InvalidArgument, and no file, when a tensor's type is not a GGML type (GgmlTypeIsKnown:
  // inferd's internal I4Z128 is never written to a GGUF file).
  Status WriteFile(const std::string& path) const;

 private:
  struct Kv { std::string key; GgufValue value; };
  struct Tensor { std::string name; GgmlType type; std::vector<int64_t> shape; std::vector<uint8_t> bytes; };
  std::vector<Kv> kv_;
  std::vector<Tensor> tensors_;
};

}  // namespace inferd
