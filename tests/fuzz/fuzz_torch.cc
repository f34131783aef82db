// libFuzzer target: TorchCheckpoint::Parse (the zip reader and the restricted unpickler of
// pytorch_model.bin) must return a Status for any input, never crash or recurse without
// bound, and on success every tensor's bytes must lie inside the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "format/torch_checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto m = inferd::TorchCheckpoint::Parse(data, size);
  if (!m.ok()) return 0;
  for (const auto& [name, t] : (*m)->tensors()) {
    if (t.data < data || t.nbytes > size || t.data + t.nbytes > data + size) std::abort();
    if ((*m)->Find(name) != &t) std::abort();
  }
  return 0;
}
