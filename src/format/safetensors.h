// Safetensors reader (single file or sharded with model.safetensors.index.json) and writer.
//
// Contract: the 8-byte header length, the JSON header, every dtype, shape and data_offsets
// pair are validated against the file size; a corrupt file is a DataLoss Status naming the
// tensor and field. Supported dtypes for weights: F32, F16, BF16 (others parse but are
// reported by name so callers can reject them clearly).
// Ownership: SafetensorsModel owns all mappings; TensorView::data valid for its lifetime.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "inferd/status.h"
#include "util/mmap.h"

namespace inferd {

enum class StDtype { kF32, kF16, kBF16, kF64, kI64, kI32, kI16, kI8, kU8, kBool, kOther };

struct StTensor {
  std::string name;
  StDtype dtype = StDtype::kF32;
  std::string dtype_name;       // as written ("BF16")
  std::vector<int64_t> shape;   // row-major, PyTorch order: shape.back() is contiguous
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
};

class SafetensorsModel {
 public:
  // `path` is a directory (model.safetensors, or model.safetensors.index.json + shards)
  // or a single .safetensors file.
  static StatusOr<std::unique_ptr<SafetensorsModel>> Open(const std::string& path);
  // Parses one in-memory file (fuzzing/tests); buffer must outlive the object.
  static StatusOr<std::unique_ptr<SafetensorsModel>> Parse(const uint8_t* data, size_t size);

  const StTensor* Find(const std::string& name) const;
  const std::map<std::string, StTensor>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsModel() = default;
  Status AddFile(const uint8_t* data, size_t size, const std::string& label);
  std::vector<std::unique_ptr<MappedFile>> files_;
  std::map<std::string, StTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Writes one .safetensors file. Tensors are written in the given order, 8-byte aligned.
struct StWriteTensor {
  std::string name;
  StDtype dtype;                // kF32, kF16 or kBF16
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};
Status WriteSafetensors(const std::string& path, const std::vector<StWriteTensor>& tensors,
                        const std::map<std::string, std::string>& metadata = {});

}  // namespace inferd
