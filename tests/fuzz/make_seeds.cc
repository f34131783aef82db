// Writes small valid seed inputs for the fuzzers (run by hand when the formats change):
//   inferd_fuzz_make_seeds tests/fuzz/corpus
#include <cstdio>
#include <string>
#include <vector>

#include "format/gguf.h"
#include "format/safetensors.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 1;
  }
  const std::string dir = argv[1];
  inferd::GgufWriter w;
  w.AddString("general.architecture", "llama");
  w.AddUint32("llama.block_count", 1);
  w.AddFloat32("llama.rope.freq_base", 10000.0f);
  w.AddBool("tokenizer.ggml.add_bos_token", true);
  w.AddStringArray("tokenizer.ggml.tokens", {"<s>", "a", "b"});
  w.AddInt32Array("tokenizer.ggml.token_type", {3, 1, 1});
  inferd::GgufArray nested;
  nested.elem_type = inferd::GgufType::kArray;
  nested.arrays.resize(1);
  nested.arrays[0].elem_type = inferd::GgufType::kUint64;
  nested.arrays[0].uints = {1, 2};
  w.Add("x.nested", {inferd::GgufType::kArray, nested});
  w.AddTensor("f32", inferd::GgmlType::kF32, {4, 2}, std::vector<uint8_t>(32, 1));
  w.AddTensor("q4_0", inferd::GgmlType::kQ4_0, {32}, std::vector<uint8_t>(18, 2));
  w.AddTensor("q6_K", inferd::GgmlType::kQ6_K, {256}, std::vector<uint8_t>(210, 3));
  if (!w.WriteFile(dir + "/gguf/seed1.gguf").ok()) return 1;
  inferd::GgufWriter v;
  v.AddStringArray("tokenizer.ggml.tokens", {"x"});
  if (!v.WriteFile(dir + "/gguf/vocab_only.gguf").ok()) return 1;

  std::vector<inferd::StWriteTensor> t = {
      {"a", inferd::StDtype::kF32, {2, 2}, std::vector<uint8_t>(16, 1)},
      {"b", inferd::StDtype::kBF16, {3}, std::vector<uint8_t>(6, 2)}};
  if (!inferd::WriteSafetensors(dir + "/safetensors/seed1.safetensors", t, {{"format", "pt"}}).ok()) {
    return 1;
  }
  return 0;
}
