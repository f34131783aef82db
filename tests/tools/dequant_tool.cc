// inferd_dequant_tool FILE.gguf OUT_DIR [TENSOR ...]
//   Dequantizes tensors of a GGUF file with inferd's reference DequantizeRow and writes each
//   as OUT_DIR/<name>.npy (float32, C order, numpy shape = GGML shape reversed), so that
//   tests/reference/test_dequant.py can compare them with gguf-py's numpy dequantization.
//   With no TENSOR arguments every tensor is written.
// inferd_dequant_tool --quantize TYPE IN.f32 OUT.bin
//   Quantizes raw little-endian float32 values (a multiple of TYPE's block size) with
//   QuantizeRow and writes the raw blocks (TYPE: f32 f16 bf16 q4_0 q4_1 q5_0 q8_0 q4_K q6_K).
// Exit status 0 on success, 1 on error.
#include <cstdio>
#include <cstring>
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

int Quantize(const std::string& type_name, const std::string& in_path, const std::string& out_path) {
  uint32_t id = 0;
  while (id < 64 && inferd::GgmlTypeName(id) != type_name) ++id;
  if (id == 64) {
    std::fprintf(stderr, "unknown type '%s'\n", type_name.c_str());
    return 1;
  }
  const auto type = static_cast<inferd::GgmlType>(id);
  std::ifstream in(in_path, std::ios::binary);
  std::vector<char> raw((std::istreambuf_iterator<char>(in)), {});
  std::vector<float> x(raw.size() / sizeof(float));
  std::memcpy(x.data(), raw.data(), x.size() * sizeof(float));
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> out(inferd::GgmlRowSize(type, n));
  inferd::Status s = inferd::QuantizeRow(type, x.data(), out.data(), n);
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  std::ofstream o(out_path, std::ios::binary);
  o.write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.size()));
  return o ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "--quantize") return Quantize(argv[2], argv[3], argv[4]);
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
