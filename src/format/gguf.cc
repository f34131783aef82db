// GGUF layout (all little-endian), as written by llama.cpp's converters:
//
//   "GGUF" | u32 version | u64 tensor_count | u64 kv_count        (v1 used u32 counts)
//   kv_count x { string key | u32 value_type | value }
//   tensor_count x { string name | u32 n_dims | u64 dims[n_dims] | u32 ggml_type | u64 offset }
//   padding to `alignment` (general.alignment, default 32)
//   data section: tensor bytes at data_start + offset, each offset a multiple of alignment
//
//   string = u64 length | bytes (no terminator);  array = u32 elem_type | u64 count | elems
//
// The parser never trusts a count: before reserving memory for N items it checks that the
// bytes left in the file could hold N of the smallest encoding of that item, so a corrupt
// count fails fast with a message instead of a huge allocation.
#include "format/gguf.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>
#include <limits>

namespace inferd {
namespace {

constexpr uint32_t kMinVersion = 2;
constexpr uint32_t kMaxVersion = 3;
constexpr uint32_t kMaxDims = 4;
constexpr int kMaxArrayDepth = 8;  // nested arrays deeper than this are surely corrupt
constexpr uint64_t kDefaultAlignment = 32;
constexpr const char kAlignmentKey[] = "general.alignment";

// Smallest encodings, used to bound counts by the bytes left.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;          // empty key, type, one-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;  // empty name, n_dims=0, type, offset
constexpr uint64_t kMinStringBytes = 8;
constexpr uint64_t kMinArrayBytes = 4 + 8;

// Bytes of a fixed-size metadata scalar, 0 for string / array / unknown.
uint64_t ScalarSize(GgufType t) {
  switch (t) {
    case GgufType::kUint8: case GgufType::kInt8: case GgufType::kBool: return 1;
    case GgufType::kUint16: case GgufType::kInt16: return 2;
    case GgufType::kUint32: case GgufType::kInt32: case GgufType::kFloat32: return 4;
    case GgufType::kUint64: case GgufType::kInt64: case GgufType::kFloat64: return 8;
    default: return 0;
  }
}

bool ValidValueType(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::kFloat64); }

const char* ValueTypeName(GgufType t) {
  switch (t) {
    case GgufType::kUint8: return "uint8";
    case GgufType::kInt8: return "int8";
    case GgufType::kUint16: return "uint16";
    case GgufType::kInt16: return "int16";
    case GgufType::kUint32: return "uint32";
    case GgufType::kInt32: return "int32";
    case GgufType::kFloat32: return "float32";
    case GgufType::kBool: return "bool";
    case GgufType::kString: return "string";
    case GgufType::kArray: return "array";
    case GgufType::kUint64: return "uint64";
    case GgufType::kInt64: return "int64";
    case GgufType::kFloat64: return "float64";
  }
  return "?";
}

// Bounds-checked little-endian cursor over the file. Reads never advance past size_.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  size_t pos() const { return pos_; }
  size_t size() const { return size_; }
  size_t remaining() const { return size_ - pos_; }

  bool Bytes(void* out, size_t n) {
    if (n > remaining()) return false;
    if (n > 0) std::memcpy(out, data_ + pos_, n);
    pos_ += n;
    return true;
  }
  template <typename T>
  bool Scalar(T* out) { return Bytes(out, sizeof(T)); }
  const uint8_t* Take(size_t n) {
    if (n > remaining()) return nullptr;
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }

  // "(offset N, file size M)", the location suffix of every error.
  std::string Where(size_t at) const {
    return "(offset " + std::to_string(at) + ", file size " + std::to_string(size_) + ")";
  }
  Status Truncated(const std::string& what, size_t at) const {
    return DataLoss("gguf: truncated file reading " + what + " " + Where(at));
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Names the field being read ("key #12 ('tokenizer.ggml.tokens') array element 4051") as a
// chain on the stack; the text is only built on error, so reading 150k vocabulary strings
// allocates nothing beyond the values themselves.
struct Field {
  const Field* parent = nullptr;
  const std::string* label = nullptr;  // set for the root
  size_t index = 0;                    // array element index when parent != nullptr
  std::string operator()() const {
    if (parent == nullptr) return *label;
    return (*parent)() + " array element " + std::to_string(index);
  }
};

Status ReadString(Reader& r, const Field& what, std::string* out) {
  const size_t at = r.pos();
  uint64_t len = 0;
  if (!r.Scalar(&len)) return r.Truncated(what() + " string length", at);
  if (len > r.remaining()) {
    return DataLoss("gguf: " + what() + ": string length " + std::to_string(len) +
                    " exceeds the " + std::to_string(r.remaining()) + " bytes left " + r.Where(at));
  }
  const uint8_t* p = r.Take(static_cast<size_t>(len));
  out->assign(reinterpret_cast<const char*>(p), static_cast<size_t>(len));
  return Status::OK();
}

Status ReadIntScalar(Reader& r, GgufType t, const Field& what, int64_t* out) {
  const size_t at = r.pos();
  bool ok = true;
  switch (t) {
    case GgufType::kUint8: { uint8_t v = 0; ok = r.Scalar(&v); *out = v; break; }
    case GgufType::kInt8: { int8_t v = 0; ok = r.Scalar(&v); *out = v; break; }
    case GgufType::kBool: { uint8_t v = 0; ok = r.Scalar(&v); *out = v != 0; break; }
    case GgufType::kUint16: { uint16_t v = 0; ok = r.Scalar(&v); *out = v; break; }
    case GgufType::kInt16: { int16_t v = 0; ok = r.Scalar(&v); *out = v; break; }
    case GgufType::kUint32: { uint32_t v = 0; ok = r.Scalar(&v); *out = v; break; }
    case GgufType::kInt32: { int32_t v = 0; ok = r.Scalar(&v); *out = v; break; }
    case GgufType::kInt64: { int64_t v = 0; ok = r.Scalar(&v); *out = v; break; }
    default: return Internal("gguf: ReadIntScalar called for a non-integer type");
  }
  if (!ok) return r.Truncated(what(), at);
  return Status::OK();
}

Status ReadFloatScalar(Reader& r, GgufType t, const Field& what, double* out) {
  const size_t at = r.pos();
  bool ok;
  if (t == GgufType::kFloat32) {
    float v = 0;
    ok = r.Scalar(&v);
    *out = v;
  } else {
    ok = r.Scalar(out);
  }
  if (!ok) return r.Truncated(what(), at);
  return Status::OK();
}

Status ReadArray(Reader& r, int depth, const Field& what, GgufArray* out);

// Reads the array header (element type, count) and checks the count against the bytes
// left, then the elements.
Status ReadArray(Reader& r, int depth, const Field& what, GgufArray* out) {
  size_t at = r.pos();
  uint32_t elem_type = 0;
  if (!r.Scalar(&elem_type)) return r.Truncated(what() + " array element type", at);
  if (!ValidValueType(elem_type)) {
    return DataLoss("gguf: " + what() + ": invalid array element type " +
                    std::to_string(elem_type) + " " + r.Where(at));
  }
  out->elem_type = static_cast<GgufType>(elem_type);
  if (out->elem_type == GgufType::kArray && depth >= kMaxArrayDepth) {
    return DataLoss("gguf: " + what() + ": arrays nested deeper than " +
                    std::to_string(kMaxArrayDepth) + " levels " + r.Where(at));
  }
  at = r.pos();
  uint64_t count = 0;
  if (!r.Scalar(&count)) return r.Truncated(what() + " array length", at);
  const uint64_t min_elem = out->elem_type == GgufType::kString  ? kMinStringBytes
                            : out->elem_type == GgufType::kArray ? kMinArrayBytes
                                                                 : ScalarSize(out->elem_type);
  if (count > r.remaining() / min_elem) {
    return DataLoss("gguf: " + what() + ": array length " + std::to_string(count) + " of " +
                    ValueTypeName(out->elem_type) + " needs at least " +
                    (count > std::numeric_limits<uint64_t>::max() / min_elem
                         ? std::string("2^64")
                         : std::to_string(count * min_elem)) +
                    " bytes but only " + std::to_string(r.remaining()) + " are left " +
                    r.Where(at));
  }
  const size_t n = static_cast<size_t>(count);
  auto elem_what = [&what](size_t i) { return Field{&what, nullptr, i}; };
  switch (out->elem_type) {
    case GgufType::kString:
      out->strings.resize(n);
      for (size_t i = 0; i < n; ++i) {
        INFERD_RETURN_IF_ERROR(ReadString(r, elem_what(i), &out->strings[i]));
      }
      break;
    case GgufType::kArray:
      out->arrays.resize(n);
      for (size_t i = 0; i < n; ++i) {
        INFERD_RETURN_IF_ERROR(ReadArray(r, depth + 1, elem_what(i), &out->arrays[i]));
      }
      break;
    case GgufType::kFloat32:
    case GgufType::kFloat64:
      out->floats.resize(n);
      for (size_t i = 0; i < n; ++i) {
        INFERD_RETURN_IF_ERROR(ReadFloatScalar(r, out->elem_type, elem_what(i), &out->floats[i]));
      }
      break;
    case GgufType::kUint64:
      out->uints.resize(n);
      for (size_t i = 0; i < n; ++i) {
        at = r.pos();
        if (!r.Scalar(&out->uints[i])) return r.Truncated(elem_what(i)(), at);
      }
      break;
    default:
      out->ints.resize(n);
      for (size_t i = 0; i < n; ++i) {
        INFERD_RETURN_IF_ERROR(ReadIntScalar(r, out->elem_type, elem_what(i), &out->ints[i]));
      }
      break;
  }
  return Status::OK();
}

Status ReadValue(Reader& r, GgufType type, const Field& what, GgufValue* out) {
  out->type = type;
  switch (type) {
    case GgufType::kString: {
      std::string s;
      INFERD_RETURN_IF_ERROR(ReadString(r, what, &s));
      out->v = std::move(s);
      return Status::OK();
    }
    case GgufType::kArray: {
      GgufArray a;
      INFERD_RETURN_IF_ERROR(ReadArray(r, 1, what, &a));
      out->v = std::move(a);
      return Status::OK();
    }
    case GgufType::kFloat32:
    case GgufType::kFloat64: {
      double d = 0;
      INFERD_RETURN_IF_ERROR(ReadFloatScalar(r, type, what, &d));
      out->v = d;
      return Status::OK();
    }
    case GgufType::kUint64: {
      const size_t at = r.pos();
      uint64_t u = 0;
      if (!r.Scalar(&u)) return r.Truncated(what(), at);
      out->v = u;
      return Status::OK();
    }
    case GgufType::kBool: {
      int64_t i = 0;
      INFERD_RETURN_IF_ERROR(ReadIntScalar(r, type, what, &i));
      out->v = i != 0;
      return Status::OK();
    }
    default: {
      int64_t i = 0;
      INFERD_RETURN_IF_ERROR(ReadIntScalar(r, type, what, &i));
      out->v = i;
      return Status::OK();
    }
  }
}

std::string Quote(const std::string& s) {
  // Names come from the file: cap their length in messages and hide control bytes.
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < 120; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    out += (c < 0x20 || c == 0x7F) ? '?' : static_cast<char>(c);
  }
  if (s.size() > 120) out += "...";
  return out + "'";
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// --- file sections, in order ---

// Magic, version and the two counts; the counts are bounded by the bytes left.
Status ReadHeader(Reader& r, uint32_t* version, uint64_t* tensor_count, uint64_t* kv_count) {
  char magic[4];
  if (!r.Bytes(magic, 4)) return r.Truncated("magic", 0);
  if (std::memcmp(magic, "GGUF", 4) != 0) {
    return InvalidArgument("gguf: not a GGUF file (magic bytes are not 'GGUF')");
  }
  if (!r.Scalar(version)) return r.Truncated("version", 4);
  if (*version == 1) {
    return Unimplemented("gguf: GGUF version 1 is not supported (versions 2 and 3 are); "
                         "re-convert the model with a current llama.cpp");
  }
  if (*version < kMinVersion || *version > kMaxVersion) {
    const uint32_t swapped = __builtin_bswap32(*version);
    return Unimplemented("gguf: unsupported GGUF version " + std::to_string(*version) +
                         (swapped >= 1 && swapped <= kMaxVersion ? " (a big-endian file?)" : "") +
                         "; versions 2 and 3 are supported");
  }
  if (!r.Scalar(tensor_count)) return r.Truncated("tensor_count", r.pos());
  if (!r.Scalar(kv_count)) return r.Truncated("metadata_kv_count", r.pos());
  if (*tensor_count > r.remaining() / kMinTensorInfoBytes) {
    return DataLoss("gguf: tensor_count " + std::to_string(*tensor_count) + " cannot fit in the " +
                    std::to_string(r.remaining()) + " bytes left " + r.Where(8));
  }
  if (*kv_count > r.remaining() / kMinKvBytes) {
    return DataLoss("gguf: metadata_kv_count " + std::to_string(*kv_count) +
                    " cannot fit in the " + std::to_string(r.remaining()) + " bytes left " +
                    r.Where(16));
  }
  return Status::OK();
}

// Metadata pair #i: key string, value type, value.
Status ReadKv(Reader& r, uint64_t i, std::string* key, GgufValue* value) {
  const std::string idx = "key #" + std::to_string(i);
  const std::string idx_name = idx + " name";
  INFERD_RETURN_IF_ERROR(ReadString(r, Field{nullptr, &idx_name, 0}, key));
  const std::string label = idx + " (" + Quote(*key) + ")";
  const size_t at = r.pos();
  uint32_t type = 0;
  if (!r.Scalar(&type)) return r.Truncated(label + " value type", at);
  if (!ValidValueType(type)) {
    return DataLoss("gguf: " + label + ": invalid value type " + std::to_string(type) + " " +
                    r.Where(at));
  }
  return ReadValue(r, static_cast<GgufType>(type), Field{nullptr, &label, 0}, value);
}

// general.alignment: an integer power of two (the spec says uint32; any integer is read).
StatusOr<uint64_t> ResolveAlignment(const GgufValue* v) {
  if (v == nullptr) return kDefaultAlignment;
  const int64_t* i = std::get_if<int64_t>(&v->v);
  int64_t from_u64 = 0;
  if (const uint64_t* u = std::get_if<uint64_t>(&v->v)) {
    from_u64 = *u > (uint64_t{1} << 62) ? -1 : static_cast<int64_t>(*u);  // -1: rejected below
    i = &from_u64;
  }
  if (i == nullptr) {
    return InvalidArgument(std::string("gguf: ") + kAlignmentKey + " has type " +
                           ValueTypeName(v->type) + "; expected an integer (uint32)");
  }
  if (*i <= 0 || !std::has_single_bit(static_cast<uint64_t>(*i)) || *i > (int64_t{1} << 30)) {
    return InvalidArgument(std::string("gguf: ") + kAlignmentKey + " = " + std::to_string(*i) +
                           " is not a power of two between 1 and 2^30");
  }
  return static_cast<uint64_t>(*i);
}

// Tensor info #i: name, n_dims <= 4, dims (product fits int64), known and supported type,
// aligned offset; fills nbytes from type and shape. Data placement is checked later.
Status ReadTensorInfo(Reader& r, uint64_t i, uint64_t alignment, GgufTensorInfo* t) {
  const std::string idx = "tensor #" + std::to_string(i);
  const std::string idx_name = idx + " name";
  INFERD_RETURN_IF_ERROR(ReadString(r, Field{nullptr, &idx_name, 0}, &t->name));
  const std::string label = idx + " (" + Quote(t->name) + ")";
  size_t at = r.pos();
  uint32_t n_dims = 0;
  if (!r.Scalar(&n_dims)) return r.Truncated(label + " n_dims", at);
  if (n_dims > kMaxDims) {
    return DataLoss("gguf: " + label + ": n_dims " + std::to_string(n_dims) +
                    " exceeds the maximum " + std::to_string(kMaxDims) + " " + r.Where(at));
  }
  int64_t num_elements = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    at = r.pos();
    uint64_t dim = 0;
    if (!r.Scalar(&dim)) return r.Truncated(label + " dim " + std::to_string(d), at);
    if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return DataLoss("gguf: " + label + ": dim " + std::to_string(d) + " = " +
                      std::to_string(dim) + " is negative or too large " + r.Where(at));
    }
    const int64_t di = static_cast<int64_t>(dim);
    if (di != 0 && num_elements > std::numeric_limits<int64_t>::max() / di) {
      return DataLoss("gguf: " + label + ": shape overflows int64 at dim " + std::to_string(d) +
                      " = " + std::to_string(dim) + " " + r.Where(at));
    }
    num_elements *= di;
    t->shape.push_back(di);
  }
  at = r.pos();
  uint32_t type = 0;
  if (!r.Scalar(&type)) return r.Truncated(label + " type", at);
  if (!GgmlTypeIsKnown(type)) {
    return DataLoss("gguf: " + label + ": unknown GGML type id " + std::to_string(type) + " " +
                    r.Where(at));
  }
  t->type = static_cast<GgmlType>(type);
  if (!GgmlTypeIsSupported(t->type)) {
    return Unimplemented("gguf: tensor " + Quote(t->name) + " has type " + GgmlTypeName(type) +
                         ", which inferd does not support (supported: " +
                         SupportedGgmlTypeNames() + ")");
  }
  at = r.pos();
  if (!r.Scalar(&t->offset)) return r.Truncated(label + " offset", at);
  if (t->offset % alignment != 0) {
    return DataLoss("gguf: " + label + ": data offset " + std::to_string(t->offset) +
                    " is not a multiple of the alignment " + std::to_string(alignment) + " " +
                    r.Where(at));
  }
  const int64_t block = GgmlBlockSize(t->type);
  const int64_t row = t->shape.empty() ? 1 : t->shape[0];
  if (row % block != 0) {
    return DataLoss("gguf: " + label + ": shape " + ShapeString(t->shape) + " row length " +
                    std::to_string(row) + " is not a multiple of the " + GgmlTypeName(type) +
                    " block size " + std::to_string(block));
  }
  // nbytes = num_elements / block * type_size; check the product against 2^64 first.
  const uint64_t blocks = static_cast<uint64_t>(num_elements / block);
  const uint64_t type_size = GgmlTypeSize(t->type);
  if (blocks > std::numeric_limits<uint64_t>::max() / type_size) {
    return DataLoss("gguf: " + label + ": byte size of shape " + ShapeString(t->shape) +
                    " overflows");
  }
  t->nbytes = static_cast<size_t>(blocks * type_size);
  return Status::OK();
}

// The data section starts at the first multiple of `alignment` after the tensor infos
// (which end at `infos_end`). Sets every data pointer after checking its range lies in the
// file, and rejects overlapping ranges (llama.cpp writes tensors back to back, so overlap
// means a corrupt tensor table).
Status PlaceTensorData(const uint8_t* data, size_t size, size_t infos_end, uint64_t alignment,
                       std::vector<GgufTensorInfo>* tensors) {
  if (tensors->empty()) return Status::OK();  // vocab-only files may end without padding
  const uint64_t data_start = (static_cast<uint64_t>(infos_end) + alignment - 1) / alignment * alignment;
  if (data_start > size) {
    return DataLoss("gguf: truncated file: data section starts at " + std::to_string(data_start) +
                    " past the end (offset " + std::to_string(infos_end) + ", file size " +
                    std::to_string(size) + ")");
  }
  const uint64_t data_size = size - data_start;
  for (GgufTensorInfo& t : *tensors) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset) {
      return DataLoss("gguf: tensor " + Quote(t.name) + " data [offset " +
                      std::to_string(data_start) + " + " + std::to_string(t.offset) + ", size " +
                      std::to_string(t.nbytes) + "] extends past end of file (size " +
                      std::to_string(size) + ")");
    }
    t.data = data + data_start + t.offset;
  }
  std::vector<const GgufTensorInfo*> by_offset;
  by_offset.reserve(tensors->size());
  for (const GgufTensorInfo& t : *tensors) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  const GgufTensorInfo* prev = nullptr;  // the non-empty tensor that ends last so far
  for (const GgufTensorInfo* cur : by_offset) {
    if (cur->nbytes == 0) continue;
    if (prev != nullptr && prev->offset + prev->nbytes > cur->offset) {
      return DataLoss("gguf: tensor " + Quote(cur->name) + " data at offset " +
                      std::to_string(cur->offset) + " overlaps tensor " + Quote(prev->name) +
                      " [offset " + std::to_string(prev->offset) + ", size " +
                      std::to_string(prev->nbytes) + "]");
    }
    prev = cur;  // sorted by start and non-overlapping, so cur also ends last
  }
  return Status::OK();
}

}  // namespace

size_t GgufArray::size() const {
  switch (elem_type) {
    case GgufType::kString: return strings.size();
    case GgufType::kArray: return arrays.size();
    case GgufType::kFloat32: case GgufType::kFloat64: return floats.size();
    case GgufType::kUint64: return uints.size();
    default: return ints.size();
  }
}

int64_t GgufTensorInfo::num_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // overflow excluded by the parser
  return n;
}

StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  INFERD_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> mapped, MappedFile::Open(path));
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  Status s = f->ParseAll(mapped->data(), mapped->size());
  if (!s.ok()) return Status(s.code(), s.message() + " in '" + path + "'");
  f->file_ = std::move(mapped);
  return f;
}

StatusOr<std::unique_ptr<GgufFile>> GgufFile::Parse(const uint8_t* data, size_t size) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  INFERD_RETURN_IF_ERROR(f->ParseAll(data, size));
  return f;
}

Status GgufFile::ParseAll(const uint8_t* data, size_t size) {
  Reader r(data, size);
  uint64_t tensor_count = 0, kv_count = 0;
  INFERD_RETURN_IF_ERROR(ReadHeader(r, &version_, &tensor_count, &kv_count));

  kv_.reserve(static_cast<size_t>(kv_count));
  for (uint64_t i = 0; i < kv_count; ++i) {
    std::string key;
    GgufValue value;
    INFERD_RETURN_IF_ERROR(ReadKv(r, i, &key, &value));
    if (kv_index_.count(key) != 0) {
      return DataLoss("gguf: duplicate metadata key #" + std::to_string(i) + " (" + Quote(key) +
                      ") " + r.Where(r.pos()));
    }
    kv_index_.emplace(key, kv_.size());
    kv_.emplace_back(std::move(key), std::move(value));
  }
  INFERD_ASSIGN_OR_RETURN(alignment_, ResolveAlignment(Find(kAlignmentKey)));

  tensors_.reserve(static_cast<size_t>(tensor_count));
  for (uint64_t i = 0; i < tensor_count; ++i) {
    GgufTensorInfo t;
    INFERD_RETURN_IF_ERROR(ReadTensorInfo(r, i, alignment_, &t));
    if (tensor_index_.count(t.name) != 0) {
      return DataLoss("gguf: duplicate tensor name in tensor #" + std::to_string(i) + " (" +
                      Quote(t.name) + ") " + r.Where(r.pos()));
    }
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }
  return PlaceTensorData(data, size, r.pos(), alignment_, &tensors_);
}

const GgufValue* GgufFile::Find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

std::optional<int64_t> GgufFile::GetInt(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return std::nullopt;
  if (const int64_t* i = std::get_if<int64_t>(&v->v)) return *i;
  if (const bool* b = std::get_if<bool>(&v->v)) return *b ? 1 : 0;
  if (const uint64_t* u = std::get_if<uint64_t>(&v->v)) {
    if (*u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return static_cast<int64_t>(*u);
    }
  }
  return std::nullopt;
}

std::optional<double> GgufFile::GetFloat(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return std::nullopt;
  if (const double* d = std::get_if<double>(&v->v)) return *d;
  if (const int64_t* i = std::get_if<int64_t>(&v->v)) return static_cast<double>(*i);
  if (const uint64_t* u = std::get_if<uint64_t>(&v->v)) return static_cast<double>(*u);
  return std::nullopt;
}

std::optional<bool> GgufFile::GetBool(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return std::nullopt;
  if (const bool* b = std::get_if<bool>(&v->v)) return *b;
  return std::nullopt;
}

std::optional<std::string> GgufFile::GetString(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return std::nullopt;
  if (const std::string* s = std::get_if<std::string>(&v->v)) return *s;
  return std::nullopt;
}

const GgufArray* GgufFile::GetArray(std::string_view key) const {
  const GgufValue* v = Find(key);
  return v == nullptr ? nullptr : std::get_if<GgufArray>(&v->v);
}

const GgufTensorInfo* GgufFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

// ---------------------------------------------------------------------------------------
// Writer

namespace {

class Buffer {
 public:
  void Bytes(const void* p, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    out_.insert(out_.end(), b, b + n);
  }
  template <typename T>
  void Scalar(T v) { Bytes(&v, sizeof(T)); }
  void String(const std::string& s) {
    Scalar<uint64_t>(s.size());
    Bytes(s.data(), s.size());
  }
  void PadTo(uint64_t alignment) {
    while (out_.size() % alignment != 0) out_.push_back(0);
  }
  std::vector<uint8_t>& out() { return out_; }

 private:
  std::vector<uint8_t> out_;
};

void WriteScalarAs(Buffer& b, GgufType t, int64_t i, uint64_t u, double f) {
  switch (t) {
    case GgufType::kUint8: b.Scalar(static_cast<uint8_t>(i)); break;
    case GgufType::kInt8: b.Scalar(static_cast<int8_t>(i)); break;
    case GgufType::kBool: b.Scalar(static_cast<uint8_t>(i != 0)); break;
    case GgufType::kUint16: b.Scalar(static_cast<uint16_t>(i)); break;
    case GgufType::kInt16: b.Scalar(static_cast<int16_t>(i)); break;
    case GgufType::kUint32: b.Scalar(static_cast<uint32_t>(i)); break;
    case GgufType::kInt32: b.Scalar(static_cast<int32_t>(i)); break;
    case GgufType::kInt64: b.Scalar(static_cast<int64_t>(i)); break;
    case GgufType::kUint64: b.Scalar(u); break;
    case GgufType::kFloat32: b.Scalar(static_cast<float>(f)); break;
    case GgufType::kFloat64: b.Scalar(f); break;
    default: break;
  }
}

void WriteArray(Buffer& b, const GgufArray& a) {
  b.Scalar(static_cast<uint32_t>(a.elem_type));
  b.Scalar<uint64_t>(a.size());
  switch (a.elem_type) {
    case GgufType::kString:
      for (const std::string& s : a.strings) b.String(s);
      break;
    case GgufType::kArray:
      for (const GgufArray& sub : a.arrays) WriteArray(b, sub);
      break;
    case GgufType::kFloat32: case GgufType::kFloat64:
      for (double f : a.floats) WriteScalarAs(b, a.elem_type, 0, 0, f);
      break;
    case GgufType::kUint64:
      for (uint64_t u : a.uints) b.Scalar(u);
      break;
    default:
      for (int64_t i : a.ints) WriteScalarAs(b, a.elem_type, i, 0, 0);
      break;
  }
}

// The value is written as `value.type`; the variant member is converted to it.
void WriteValue(Buffer& b, const GgufValue& value) {
  b.Scalar(static_cast<uint32_t>(value.type));
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) {
          b.String(x);
        } else if constexpr (std::is_same_v<T, GgufArray>) {
          WriteArray(b, x);
        } else if constexpr (std::is_same_v<T, double>) {
          WriteScalarAs(b, value.type, static_cast<int64_t>(x), static_cast<uint64_t>(x), x);
        } else {
          WriteScalarAs(b, value.type, static_cast<int64_t>(x), static_cast<uint64_t>(x),
                        static_cast<double>(x));
        }
      },
      value.v);
}

}  // namespace

void GgufWriter::Add(const std::string& key, GgufValue value) {
  kv_.push_back({key, std::move(value)});
}
void GgufWriter::AddString(const std::string& key, const std::string& value) {
  Add(key, GgufValue{GgufType::kString, value});
}
void GgufWriter::AddUint32(const std::string& key, uint32_t value) {
  Add(key, GgufValue{GgufType::kUint32, static_cast<int64_t>(value)});
}
void GgufWriter::AddInt32(const std::string& key, int32_t value) {
  Add(key, GgufValue{GgufType::kInt32, static_cast<int64_t>(value)});
}
void GgufWriter::AddFloat32(const std::string& key, float value) {
  Add(key, GgufValue{GgufType::kFloat32, static_cast<double>(value)});
}
void GgufWriter::AddBool(const std::string& key, bool value) {
  Add(key, GgufValue{GgufType::kBool, value});
}
void GgufWriter::AddStringArray(const std::string& key, const std::vector<std::string>& values) {
  GgufArray a;
  a.elem_type = GgufType::kString;
  a.strings = values;
  Add(key, GgufValue{GgufType::kArray, std::move(a)});
}
void GgufWriter::AddFloat32Array(const std::string& key, const std::vector<float>& values) {
  GgufArray a;
  a.elem_type = GgufType::kFloat32;
  a.floats.assign(values.begin(), values.end());
  Add(key, GgufValue{GgufType::kArray, std::move(a)});
}
void GgufWriter::AddInt32Array(const std::string& key, const std::vector<int32_t>& values) {
  GgufArray a;
  a.elem_type = GgufType::kInt32;
  a.ints.assign(values.begin(), values.end());
  Add(key, GgufValue{GgufType::kArray, std::move(a)});
}

void GgufWriter::AddTensor(const std::string& name, GgmlType type,
                           const std::vector<int64_t>& shape, std::vector<uint8_t> bytes) {
  tensors_.push_back({name, type, shape, std::move(bytes)});
}

std::vector<uint8_t> GgufWriter::Serialize(uint64_t alignment) const {
  if (alignment == 0) alignment = kDefaultAlignment;
  bool has_alignment_key = false;
  for (const Kv& kv : kv_) has_alignment_key |= kv.key == kAlignmentKey;
  const bool add_alignment_key = !has_alignment_key && alignment != kDefaultAlignment;

  Buffer b;
  b.Bytes("GGUF", 4);
  b.Scalar<uint32_t>(3);
  b.Scalar<uint64_t>(tensors_.size());
  b.Scalar<uint64_t>(kv_.size() + (add_alignment_key ? 1 : 0));
  for (const Kv& kv : kv_) {
    b.String(kv.key);
    WriteValue(b, kv.value);
  }
  if (add_alignment_key) {
    b.String(kAlignmentKey);
    WriteValue(b, GgufValue{GgufType::kUint32, static_cast<int64_t>(alignment)});
  }
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    b.String(t.name);
    b.Scalar<uint32_t>(static_cast<uint32_t>(t.shape.size()));
    for (int64_t d : t.shape) b.Scalar<uint64_t>(static_cast<uint64_t>(d));
    b.Scalar<uint32_t>(static_cast<uint32_t>(t.type));
    b.Scalar<uint64_t>(offset);
    offset += (t.bytes.size() + alignment - 1) / alignment * alignment;
  }
  if (!tensors_.empty()) {
    b.PadTo(alignment);
    for (const Tensor& t : tensors_) {
      b.Bytes(t.bytes.data(), t.bytes.size());
      b.PadTo(alignment);
    }
  }
  return std::move(b.out());
}

Status GgufWriter::WriteFile(const std::string& path) const {
  for (const Tensor& t : tensors_) {  // inferd's internal types (I4Z128) have no GGML id
    if (!GgmlTypeIsKnown(static_cast<uint32_t>(t.type))) {
      return InvalidArgument("gguf: tensor " + Quote(t.name) + " has type " +
                             GgmlTypeName(static_cast<uint32_t>(t.type)) + ", which is not a GGML type");
    }
  }
  const std::vector<uint8_t> bytes = Serialize();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return InvalidArgument("gguf: cannot open '" + path + "' for writing");
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return Internal("gguf: writing '" + path + "' failed");
  return Status::OK();
}

}  // namespace inferd
