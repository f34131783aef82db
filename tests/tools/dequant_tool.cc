// inferd_dequant_tool FILE.gguf OUT_DIR [TENSOR ...]
//
// Dequantizes tensors of a GGUF file with inferd's reference DequantizeRow and writes each
// as OUT_DIR/<name>.npy (float32, C order, numpy shape = GGML shape reversed), so that
// tests/reference/test_dequant.py can compare them with gguf-py's numpy dequantization.
// With no TENSOR arguments every tensor is written. Exit status 0 on success, 1 on error.
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "format/gguf.h"

namespace {

// NPY v1.0: magic, version, u16 header length, a Python dict literal padded with spaces
// so that the data starts at a multiple of 64 bytes, then the raw little-endian data.
bool WriteNpy(const std::string& path, const std::vector<int64_t>& ggml_shape,
              const std::vector<float>& values) {
  std::string shape = "(";
  for (auto it = ggml_shape.rbegin(); it != ggml_shape.rend(); ++it) {
    shape += std::to_string(*it) + ",";
    if (ggml_shape.size() > 1) shape += " ";
  }
  shape += ")";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  const size_t prefix = 10;  // magic(6) + version(2) + header length(2)
  while ((prefix + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  if (!out) return false;
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.write("\x93NUMPY\x01\x00", 8);
  out.write(reinterpret_cast<const char*>(&len), 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(reinterpret_cast<const char*>(values.data()),
            static_cast<std::streamsize>(values.size() * sizeof(float)));
  return static_cast<bool>(out);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s FILE.gguf OUT_DIR [TENSOR ...]\n", argv[0]);
    return 1;
  }
  auto file = inferd::GgufFile::Open(argv[1]);
  if (!file.ok()) {
    std::fprintf(stderr, "%s\n", file.status().ToString().c_str());
    return 1;
  }
  std::vector<const inferd::GgufTensorInfo*> todo;
  if (argc == 3) {
    for (const auto& t : (*file)->tensors()) todo.push_back(&t);
  } else {
    for (int i = 3; i < argc; ++i) {
      const inferd::GgufTensorInfo* t = (*file)->FindTensor(argv[i]);
      if (t == nullptr) {
        std::fprintf(stderr, "tensor '%s' not found in %s\n", argv[i], argv[1]);
        return 1;
      }
      todo.push_back(t);
    }
  }
  const std::string out_dir = argv[2];
  for (const inferd::GgufTensorInfo* t : todo) {
    std::vector<float> values(static_cast<size_t>(t->num_elements()));
    inferd::DequantizeRow(t->type, t->data, values.data(), t->num_elements());
    if (!WriteNpy(out_dir + "/" + t->name + ".npy", t->shape, values)) {
      std::fprintf(stderr, "cannot write %s/%s.npy\n", out_dir.c_str(), t->name.c_str());
      return 1;
    }
  }
  return 0;
}
