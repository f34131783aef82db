// libFuzzer target: SafetensorsModel::Parse must return a Status for any input, never
// crash, and on success every tensor's bytes must lie inside the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "format/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto m = inferd::SafetensorsModel::Parse(data, size);
  if (!m.ok()) return 0;
  for (const auto& [name, t] : (*m)->tensors()) {
    if (t.data < data || t.nbytes > size || t.data + t.nbytes > data + size) std::abort();
    if (t.nbytes > 0 && (t.data[0] ^ t.data[t.nbytes - 1]) == 0x5A5A) std::abort();
    if ((*m)->Find(name) != &t) std::abort();
  }
  return 0;
}
