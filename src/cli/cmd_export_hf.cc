// inferd export-hf GGUF OUTDIR: writes a Hugging Face directory (dequantized safetensors,
// config.json, tokenizer.json, tokenizer_config.json) from a GGUF model.
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli/common.h"
#include "format/hf_config.h"
#include "model/hf_config.h"
#include "format/safetensors.h"

namespace inferd::cli {
namespace {

struct ExportFlags {
  std::string gguf, outdir, dtype = "float16";
};

// GGUF stores llama Q/K rows permuted for GGML's adjacent-pair RoPE; HF checkpoints use
// rotate_half. Within each head, GGUF row 2i + s holds HF row s * (head_dim / 2) + i.
std::vector<float> UnpermuteRows(const std::vector<float>& w, int64_t heads, int64_t head_dim, int64_t cols) {
  std::vector<float> out(w.size());
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t s = 0; s < 2; ++s) {
        const float* src = &w[((h * head_dim) + 2 * i + s) * cols];
        std::copy(src, src + cols, &out[((h * head_dim) + s * half + i) * cols]);
      }
  return out;
}

std::vector<float> Dequant(const Matrix& m) {
  std::vector<float> out(static_cast<size_t>(m.rows * m.cols));
  for (int64_t r = 0; r < m.rows; ++r) DequantizeRow(m.type, m.row(r), &out[r * m.cols], m.cols);
  return out;
}

StWriteTensor Encode(const std::string& name, const std::vector<float>& v, std::vector<int64_t> shape, StDtype dtype) {
  StWriteTensor t{name, dtype, std::move(shape), {}};
  t.bytes.resize(v.size() * 2);
  for (size_t i = 0; i < v.size(); ++i) {
    const uint16_t h = dtype == StDtype::kF16 ? Fp32ToFp16(v[i]) : Fp32ToBf16(v[i]);
    t.bytes[2 * i] = static_cast<uint8_t>(h & 0xFF);
    t.bytes[2 * i + 1] = static_cast<uint8_t>(h >> 8);
  }
  return t;
}

Status Export(const ExportFlags& f) {
  StDtype dtype;
  if (f.dtype == "float16") dtype = StDtype::kF16;
  else if (f.dtype == "bfloat16") dtype = StDtype::kBF16;
  else return InvalidArgument("--dtype must be float16 or bfloat16, got '" + f.dtype + "'");
  INFERD_ASSIGN_OR_RETURN(std::unique_ptr<LoadedModel> model, LoadGgufModel(f.gguf));
  const ModelConfig& c = model->config;
  INFERD_RETURN_IF_ERROR(MakeHfConfig(c, f.dtype, 0, 0).status());  // a family it cannot write: before any file
  const ModelWeights& w = model->weights;
  std::filesystem::create_directories(f.outdir);
  const bool unpermute = c.rope_style == RopeStyle::kNormal;
  std::vector<StWriteTensor> tensors;
  auto mat = [&](const std::string& name, const Matrix& m, int64_t permute_heads = 0) {
    std::vector<float> v = Dequant(m);
    if (permute_heads > 0 && unpermute) v = UnpermuteRows(v, permute_heads, c.head_dim, m.cols);
    tensors.push_back(Encode(name, v, {m.rows, m.cols}, dtype));
  };
  auto vec = [&](const std::string& name, const std::vector<float>& v) {
    tensors.push_back(Encode(name, v, {static_cast<int64_t>(v.size())}, dtype));
  };
  mat("model.embed_tokens.weight", w.tok_embd);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const LayerWeights& l = w.layers[i];
    const std::string p = fmt::format("model.layers.{}.", i);
    vec(p + "input_layernorm.weight", l.attn_norm);
    mat(p + "self_attn.q_proj.weight", l.wq, c.num_heads);
    mat(p + "self_attn.k_proj.weight", l.wk, c.num_kv_heads);
    mat(p + "self_attn.v_proj.weight", l.wv);
    mat(p + "self_attn.o_proj.weight", l.wo);
    if (!l.bq.empty()) vec(p + "self_attn.q_proj.bias", l.bq);
    if (!l.bk.empty()) vec(p + "self_attn.k_proj.bias", l.bk);
    if (!l.bv.empty()) vec(p + "self_attn.v_proj.bias", l.bv);
    vec(p + "post_attention_layernorm.weight", l.ffn_norm);
    mat(p + "mlp.gate_proj.weight", l.w_gate);
    mat(p + "mlp.up_proj.weight", l.w_up);
    mat(p + "mlp.down_proj.weight", l.w_down);
  }
  vec("model.norm.weight", w.output_norm);
  if (!c.tie_word_embeddings) mat("lm_head.weight", w.output);
  INFERD_RETURN_IF_ERROR(WriteSafetensors(f.outdir + "/model.safetensors", tensors, {{"format", "pt"}}));

  const Tokenizer& tok = *model->tokenizer;
  INFERD_ASSIGN_OR_RETURN(nlohmann::json config, MakeHfConfig(c, f.dtype, tok.bos_id(), tok.eos_id()));
  std::ofstream(f.outdir + "/config.json") << config.dump(2) << "\n";
  INFERD_RETURN_IF_ERROR(tok.WriteHfFiles(f.outdir));
  std::fprintf(stderr, "wrote %zu tensors to %s\n", tensors.size(), f.outdir.c_str());
  return Status::OK();
}

}  // namespace

void AddExportHfCommand(CLI::App& app) {
  auto f = std::make_shared<ExportFlags>();
  CLI::App* cmd = app.add_subcommand("export-hf", "write a Hugging Face directory from a GGUF model");
  cmd->add_option("gguf", f->gguf, "input .gguf")->required();
  cmd->add_option("outdir", f->outdir, "output directory")->required();
  cmd->add_option("--dtype", f->dtype, "float16 | bfloat16")->capture_default_str();
  cmd->callback([f] {
    Status st = Export(*f);
    if (!st.ok()) Fail(st);
  });
}

}  // namespace inferd::cli
