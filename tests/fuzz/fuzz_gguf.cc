// libFuzzer target: GgufFile::Parse must return a Status for any input, never crash, and
// on success every tensor's bytes must lie inside the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "format/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = inferd::GgufFile::Parse(data, size);
  if (!f.ok()) return 0;
  const inferd::GgufFile& g = **f;
  for (const inferd::GgufTensorInfo& t : g.tensors()) {
    if (t.data < data || t.nbytes > size || t.data + t.nbytes > data + size) std::abort();
    // Touch the first and last byte so ASan checks the range really is readable.
    if (t.nbytes > 0 && (t.data[0] ^ t.data[t.nbytes - 1]) == 0x5A5A) std::abort();
    if (g.FindTensor(t.name) != &t) std::abort();
  }
  for (const auto& [key, value] : g.metadata()) {
    if (g.Find(key) != &value) std::abort();
    (void)g.GetInt(key);
    (void)g.GetFloat(key);
    (void)g.GetString(key);
    if (const inferd::GgufArray* a = g.GetArray(key)) (void)a->size();
  }
  return 0;
}
