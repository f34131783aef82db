// inferd_quantize_tool MODEL QUANTIZATION OUT_DIR
//   Loads MODEL (a .gguf file or a Hugging Face directory) with LoadOptions::quantization =
//   QUANTIZATION (int8 | int4 | none), exactly as `inferd --quantization` does, and writes
//   the raw bytes of every layer matrix and of the token embedding as
//   OUT_DIR/<gguf tensor name>.bin (blk.N.attn_q.weight, ..., token_embd.weight), plus
//   OUT_DIR/types.txt ("<name> <ggml type name>" per line), so that
//   tests/reference/test_quantize.py can compare them with gguf-py's quants.quantize.
// Exit status 0 on success, 1 on error.
#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "model/model.h"
#include "util/logging.h"

namespace {

bool WriteRaw(const std::string& path, const inferd::Matrix& m) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(m.data), static_cast<std::streamsize>(m.nbytes()));
  return static_cast<bool>(out);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s MODEL int8|int4|none OUT_DIR\n", argv[0]);
    return 1;
  }
  inferd::InitLogging();  // logs to stderr; stdout has the weight type only
  inferd::LoadOptions options;
  options.model = argv[1];
  options.quantization = argv[2];
  auto model = inferd::LoadModel(options);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  const inferd::ModelWeights& w = (*model)->weights;
  std::vector<std::pair<std::string, const inferd::Matrix*>> todo = {{"token_embd.weight", &w.tok_embd}};
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const inferd::LayerWeights& l = w.layers[i];
    const std::string p = "blk." + std::to_string(i) + ".";
    todo.insert(todo.end(), {{p + "attn_q.weight", &l.wq},
                             {p + "attn_k.weight", &l.wk},
                             {p + "attn_v.weight", &l.wv},
                             {p + "attn_output.weight", &l.wo},
                             {p + "ffn_gate.weight", &l.w_gate},
                             {p + "ffn_up.weight", &l.w_up},
                             {p + "ffn_down.weight", &l.w_down}});
  }
  const std::string out_dir = argv[3];
  std::ofstream types(out_dir + "/types.txt");
  for (const auto& [name, m] : todo) {
    if (!WriteRaw(out_dir + "/" + name + ".bin", *m)) {
      std::fprintf(stderr, "cannot write %s/%s.bin\n", out_dir.c_str(), name.c_str());
      return 1;
    }
    types << name << " " << inferd::GgmlTypeName(static_cast<uint32_t>(m->type)) << "\n";
  }
  std::printf("%s\n", (*model)->weight_type.c_str());
  return types ? 0 : 1;
}
