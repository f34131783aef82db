// Safetensors layout: u64 little-endian N | N bytes of JSON header | data.
// The header maps tensor name -> {"dtype": "BF16", "shape": [..], "data_offsets": [b, e]}
// with offsets relative to the start of the data, plus an optional "__metadata__" object of
// string -> string. A sharded checkpoint adds model.safetensors.index.json whose
// "weight_map" maps every tensor name to its shard file.
#include "format/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "util/json.h"

namespace inferd {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// The reference implementation caps headers at 100 MB; real headers are well under 1 MB.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
constexpr const char kIndexFile[] = "model.safetensors.index.json";
constexpr const char kSingleFile[] = "model.safetensors";

struct DtypeInfo {
  const char* name;
  StDtype dtype;
  size_t size;  // bytes per element
};
constexpr DtypeInfo kDtypes[] = {
    {"F32", StDtype::kF32, 4},       {"F16", StDtype::kF16, 2},     {"BF16", StDtype::kBF16, 2},
    {"F64", StDtype::kF64, 8},       {"I64", StDtype::kI64, 8},     {"I32", StDtype::kI32, 4},
    {"I16", StDtype::kI16, 2},       {"I8", StDtype::kI8, 1},       {"U8", StDtype::kU8, 1},
    {"BOOL", StDtype::kBool, 1},     {"U16", StDtype::kOther, 2},   {"U32", StDtype::kOther, 4},
    {"U64", StDtype::kOther, 8},     {"F8_E4M3", StDtype::kOther, 1},
    {"F8_E5M2", StDtype::kOther, 1},
};

const DtypeInfo* FindDtype(const std::string& name) {
  for (const DtypeInfo& d : kDtypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

const char* DtypeName(StDtype t) {
  for (const DtypeInfo& d : kDtypes) {
    if (d.dtype == t && t != StDtype::kOther) return d.name;
  }
  return "?";
}

size_t DtypeSize(StDtype t) {
  for (const DtypeInfo& d : kDtypes) {
    if (d.dtype == t && t != StDtype::kOther) return d.size;
  }
  return 0;
}

// Validates one tensor entry of the header and fills `out` (data pointer relative to
// `data`, which holds `data_size` bytes).
Status ParseTensorEntry(const std::string& name, const json& e, const uint8_t* data,
                        uint64_t data_size, const std::string& label, StTensor* out) {
  const std::string where = "safetensors: " + label + ": tensor '" + name + "'";
  if (!e.is_object()) return DataLoss(where + " entry is not a JSON object");
  auto dtype_it = e.find("dtype");
  auto shape_it = e.find("shape");
  auto offsets_it = e.find("data_offsets");
  if (dtype_it == e.end() || !dtype_it->is_string()) {
    return DataLoss(where + ": 'dtype' is missing or not a string");
  }
  out->name = name;
  out->dtype_name = dtype_it->get<std::string>();
  const DtypeInfo* dt = FindDtype(out->dtype_name);
  if (dt == nullptr) return DataLoss(where + ": unknown dtype '" + out->dtype_name + "'");
  out->dtype = dt->dtype;

  if (shape_it == e.end() || !shape_it->is_array()) {
    return DataLoss(where + ": 'shape' is missing or not an array");
  }
  if (shape_it->size() > 8) {
    return DataLoss(where + ": 'shape' has " + std::to_string(shape_it->size()) + " dims (max 8)");
  }
  uint64_t num_elements = 1;
  for (const json& d : *shape_it) {
    if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0)) {
      return DataLoss(where + ": 'shape' entry " + d.dump() + " is not a non-negative integer");
    }
    const uint64_t v = d.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        (v != 0 && num_elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / v)) {
      return DataLoss(where + ": 'shape' element count overflows");
    }
    num_elements *= v;
    out->shape.push_back(static_cast<int64_t>(v));
  }

  if (offsets_it == e.end() || !offsets_it->is_array() || offsets_it->size() != 2 ||
      !(*offsets_it)[0].is_number_unsigned() || !(*offsets_it)[1].is_number_unsigned()) {
    return DataLoss(where + ": 'data_offsets' must be an array of two non-negative integers");
  }
  const uint64_t begin = (*offsets_it)[0].get<uint64_t>();
  const uint64_t end = (*offsets_it)[1].get<uint64_t>();
  if (begin > end || end > data_size) {
    return DataLoss(where + ": data_offsets [" + std::to_string(begin) + ", " +
                    std::to_string(end) + "] are outside the data section of " +
                    std::to_string(data_size) + " bytes");
  }
  if (num_elements > std::numeric_limits<uint64_t>::max() / dt->size ||
      num_elements * dt->size != end - begin) {
    return DataLoss(where + ": data_offsets span " + std::to_string(end - begin) +
                    " bytes but dtype " + out->dtype_name + " and shape of " +
                    std::to_string(num_elements) + " elements need " +
                    (num_elements > std::numeric_limits<uint64_t>::max() / dt->size
                         ? std::string("more than 2^64")
                         : std::to_string(num_elements * dt->size)));
  }
  out->data = data + begin;
  out->nbytes = static_cast<size_t>(end - begin);
  return Status::OK();
}

StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("safetensors: cannot open '" + path + "'");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

Status SafetensorsModel::AddFile(const uint8_t* data, size_t size, const std::string& label) {
  if (size < 8) {
    return DataLoss("safetensors: " + label + ": file of " + std::to_string(size) +
                    " bytes is too short for the 8-byte header length");
  }
  uint64_t header_len = 0;
  std::memcpy(&header_len, data, 8);
  if (header_len > size - 8 || header_len > kMaxHeaderBytes) {
    return DataLoss("safetensors: " + label + ": header length " + std::to_string(header_len) +
                    " exceeds the file size " + std::to_string(size) + " (or the 100 MB limit)");
  }
  const char* header = reinterpret_cast<const char*>(data + 8);
  if (header_len < 2 || header[0] != '{') {
    return DataLoss("safetensors: " + label + ": header is not a JSON object");
  }
  json h;
  JsonError err;
  if (!ParseJson(std::string_view(header, header_len), &h, &err) || !h.is_object()) {
    return DataLoss("safetensors: " + label + ": header is not valid JSON" +
                    (err.message.empty() ? "" : ": " + FormatJsonError(err)));
  }
  std::vector<const StTensor*> file_tensors;  // this file's tensors, for the overlap check
  const uint8_t* body = data + 8 + header_len;
  const uint64_t body_size = size - 8 - header_len;
  for (const auto& [name, entry] : h.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return DataLoss("safetensors: " + label + ": __metadata__ is not an object");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) {
          return DataLoss("safetensors: " + label + ": __metadata__ value for '" + k +
                          "' is not a string");
        }
        metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    StTensor t;
    INFERD_RETURN_IF_ERROR(ParseTensorEntry(name, entry, body, body_size, label, &t));
    if (tensors_.count(name) != 0) {
      return DataLoss("safetensors: " + label + ": tensor '" + name + "' appears twice");
    }
    file_tensors.push_back(&tensors_.emplace(name, std::move(t)).first->second);
  }
  // Writers lay tensors out back to back; overlapping ranges mean a corrupt header.
  std::sort(file_tensors.begin(), file_tensors.end(),
            [](const StTensor* a, const StTensor* b) { return a->data < b->data; });
  const StTensor* prev = nullptr;  // the non-empty tensor that ends last so far
  for (const StTensor* cur : file_tensors) {
    if (cur->nbytes == 0) continue;
    if (prev != nullptr && prev->data + prev->nbytes > cur->data) {
      return DataLoss("safetensors: " + label + ": tensor '" + cur->name +
                      "' data overlaps tensor '" + prev->name + "'");
    }
    prev = cur;  // sorted by start and non-overlapping, so cur also ends last
  }
  return Status::OK();
}

StatusOr<std::unique_ptr<SafetensorsModel>> SafetensorsModel::Parse(const uint8_t* data,
                                                                     size_t size) {
  std::unique_ptr<SafetensorsModel> m(new SafetensorsModel());
  INFERD_RETURN_IF_ERROR(m->AddFile(data, size, "<buffer>"));
  return m;
}

StatusOr<std::unique_ptr<SafetensorsModel>> SafetensorsModel::Open(const std::string& path) {
  std::unique_ptr<SafetensorsModel> m(new SafetensorsModel());
  auto add = [&m](const std::string& file) -> Status {
    INFERD_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> f, MappedFile::Open(file));
    INFERD_RETURN_IF_ERROR(m->AddFile(f->data(), f->size(), "'" + file + "'"));
    m->files_.push_back(std::move(f));
    return Status::OK();
  };
  std::error_code ec;
  if (!fs::is_directory(path, ec)) {
    INFERD_RETURN_IF_ERROR(add(path));
    return m;
  }
  const fs::path dir(path);
  const fs::path index = dir / kIndexFile;
  if (!fs::exists(index, ec)) {
    const fs::path single = dir / kSingleFile;
    if (!fs::exists(single, ec)) {
      return NotFound("safetensors: '" + path + "' has neither " + kSingleFile + " nor " +
                      kIndexFile);
    }
    INFERD_RETURN_IF_ERROR(add(single.string()));
    return m;
  }
  INFERD_ASSIGN_OR_RETURN(std::string text, ReadText(index.string()));
  json j;
  JsonError err;
  if (!ParseJson(text, &j, &err) || !j.is_object()) {
    return InvalidArgument("safetensors: '" + index.string() + "' is not valid JSON" +
                           (err.message.empty() ? "" : ": " + FormatJsonError(err)));
  }
  auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object() || wm->empty()) {
    return InvalidArgument("safetensors: '" + index.string() +
                           "' has no \"weight_map\" object of tensor name -> shard file");
  }
  std::set<std::string> shards;
  for (const auto& [name, shard] : wm->items()) {
    if (!shard.is_string()) {
      return InvalidArgument("safetensors: '" + index.string() + "': weight_map entry for '" +
                             name + "' is not a string");
    }
    const std::string s = shard.get<std::string>();
    // Shards must be plain file names inside the model directory.
    if (s.empty() || s.find('/') != std::string::npos || s == "." || s == "..") {
      return InvalidArgument("safetensors: '" + index.string() + "': shard name '" + s +
                             "' for tensor '" + name + "' is not a file name");
    }
    shards.insert(s);
  }
  for (const std::string& s : shards) {
    const size_t before = m->tensors_.size();
    Status st = add((dir / s).string());
    if (!st.ok()) return st;
    if (m->tensors_.size() == before) {
      return DataLoss("safetensors: shard '" + s + "' holds no tensors");
    }
  }
  // The index and the shards must agree: every mapped tensor exists, and in its shard.
  for (const auto& [name, shard] : wm->items()) {
    if (m->tensors_.count(name) == 0) {
      return DataLoss("safetensors: tensor '" + name + "' is listed in " + kIndexFile +
                      " (shard '" + shard.get<std::string>() + "') but missing from the shards");
    }
  }
  if (m->tensors_.size() != wm->size()) {
    for (const auto& [name, t] : m->tensors_) {
      if (!wm->contains(name)) {
        return DataLoss("safetensors: tensor '" + name + "' is in a shard but not in " +
                        std::string(kIndexFile) + "'s weight_map");
      }
    }
  }
  if (auto meta = j.find("metadata"); meta != j.end() && meta->is_object()) {
    for (const auto& [k, v] : meta->items()) {
      if (v.is_string()) m->metadata_.emplace(k, v.get<std::string>());
      else m->metadata_.emplace(k, v.dump());
    }
  }
  return m;
}

const StTensor* SafetensorsModel::Find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

Status WriteSafetensors(const std::string& path, const std::vector<StWriteTensor>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  // nlohmann::json objects sort keys; that is fine, the order of data is ours.
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::vector<uint64_t> offsets;
  for (const StWriteTensor& t : tensors) {
    const size_t elem = DtypeSize(t.dtype);
    if (t.dtype != StDtype::kF32 && t.dtype != StDtype::kF16 && t.dtype != StDtype::kBF16) {
      return InvalidArgument("safetensors: WriteSafetensors supports F32, F16, BF16; tensor '" +
                             t.name + "' has another dtype");
    }
    uint64_t n = 1;
    for (int64_t d : t.shape) {
      if (d < 0 || __builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) {
        return InvalidArgument("safetensors: tensor '" + t.name + "' has an invalid shape");
      }
    }
    if (n > t.bytes.size() || n * elem != t.bytes.size()) {
      return InvalidArgument("safetensors: tensor '" + t.name + "' has " +
                             std::to_string(t.bytes.size()) + " bytes, shape needs " +
                             std::to_string(n * elem));
    }
    if (header.contains(t.name) || t.name == "__metadata__") {
      return InvalidArgument("safetensors: duplicate or reserved tensor name '" + t.name + "'");
    }
    // Keep every tensor 8-byte aligned within the data section (padding is unnamed bytes,
    // which readers ignore since they only follow data_offsets).
    offset = (offset + 7) / 8 * 8;
    offsets.push_back(offset);
    header[t.name] = {{"dtype", DtypeName(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string h = header.dump();
  // Pad the header with spaces so that the data section starts 8-byte aligned.
  while ((8 + h.size()) % 8 != 0) h += ' ';
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return InvalidArgument("safetensors: cannot open '" + path + "' for writing");
  const uint64_t len = h.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out.write(h.data(), static_cast<std::streamsize>(h.size()));
  uint64_t pos = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    for (; pos < offsets[i]; ++pos) out.put('\0');
    out.write(reinterpret_cast<const char*>(tensors[i].bytes.data()),
              static_cast<std::streamsize>(tensors[i].bytes.size()));
    pos += tensors[i].bytes.size();
  }
  out.close();
  if (!out) return Internal("safetensors: writing '" + path + "' failed");
  return Status::OK();
}

}  // namespace inferd
