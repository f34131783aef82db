// PyTorch checkpoints (pytorch_model.bin, torch.save's zip format) read without Python:
// the zip's data.pkl goes through a restricted unpickler that knows only the opcodes a
// state dict uses and only these globals:
//   collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter,
//   torch.{Float,Half,BFloat16,Double,Long,Int,Short,Char,Byte,Bool}Storage
// Any other global (os.system, builtins.eval, ...) is an error naming it: nothing is ever
// executed. Tensors are zero-copy views of the stored data/<key> entries of the mapping.
//
// Contract: every size, index and offset from the file is checked before use; stacks, memo
// and containers are bounded; a corrupt file is a DataLoss, a disallowed global or a
// feature outside a state dict (non-contiguous tensors, big-endian files, the pre-1.6
// non-zip format) an InvalidArgument / Unimplemented naming it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "format/safetensors.h"  // StTensor: the tensor view both formats give
#include "inferd/status.h"
#include "util/mmap.h"

namespace inferd {

class TorchCheckpoint {
 public:
  // `path`: a directory (pytorch_model.bin, or pytorch_model.bin.index.json and its
  // shards) or one .bin file.
  static StatusOr<std::unique_ptr<TorchCheckpoint>> Open(const std::string& path);
  // Parses one in-memory file (fuzzing/tests); the buffer must outlive the object.
  static StatusOr<std::unique_ptr<TorchCheckpoint>> Parse(const uint8_t* data, size_t size,
                                                          const std::string& label = "<memory>");

  const StTensor* Find(const std::string& name) const;
  const std::map<std::string, StTensor>& tensors() const { return tensors_; }

 private:
  TorchCheckpoint() = default;
  Status AddFile(const uint8_t* data, size_t size, const std::string& label);
  std::vector<std::unique_ptr<MappedFile>> files_;
  std::map<std::string, StTensor> tensors_;
};

// True when `dir` holds a PyTorch checkpoint (pytorch_model.bin or its index).
bool HasTorchCheckpoint(const std::string& dir);

}  // namespace inferd
