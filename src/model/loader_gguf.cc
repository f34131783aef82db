// GGUF → ModelConfig + weights (zero-copy views into the mapping).
#include <fmt/format.h>

#include <memory>

#include "format/gguf.h"
#include "model/arch.h"
#include "model/model.h"

namespace inferd {
namespace {

struct GgufLoader {
  const GgufFile& f;
  std::string arch;

  std::optional<int64_t> Int(const std::string& key) const { return f.GetInt(arch + "." + key); }
  std::optional<double> Float(const std::string& key) const { return f.GetFloat(arch + "." + key); }

  StatusOr<int64_t> RequireInt(const std::string& key) const {
    auto v = Int(key);
    if (!v) return NotFound("gguf: missing metadata key '" + arch + "." + key + "'");
    return *v;
  }

  StatusOr<Matrix> Mat(const std::string& name, bool optional = false) const {
    const GgufTensorInfo* t = f.FindTensor(name);
    if (t == nullptr) {
      if (optional) return Matrix{};
      return NotFound("gguf: missing tensor '" + name + "'");
    }
    if (!GgmlTypeIsSupported(t->type)) {
      return Unimplemented(fmt::format("gguf: tensor '{}' has type {}, which inferd does not support (supported: {})",
                                       name, GgmlTypeName(static_cast<uint32_t>(t->type)), SupportedGgmlTypeNames()));
    }
    if (t->shape.empty() || t->shape.size() > 2) {
      return InvalidArgument(fmt::format("gguf: tensor '{}' should be a matrix but has {} dimensions", name, t->shape.size()));
    }
    Matrix m;
    m.type = t->type;
    m.cols = t->shape[0];
    m.rows = t->shape.size() > 1 ? t->shape[1] : 1;
    m.data = t->data;
    m.row_bytes = GgmlRowSize(t->type, m.cols);
    return m;
  }

  StatusOr<std::vector<float>> Vec(const std::string& name, bool optional = false) const {
    const GgufTensorInfo* t = f.FindTensor(name);
    if (t == nullptr) {
      if (optional) return std::vector<float>{};
      return NotFound("gguf: missing tensor '" + name + "'");
    }
    if (t->type != GgmlType::kF32 && t->type != GgmlType::kF16 && t->type != GgmlType::kBF16) {
      return Unimplemented(fmt::format("gguf: vector tensor '{}' must be f32, f16 or bf16, got {}", name,
                                       GgmlTypeName(static_cast<uint32_t>(t->type))));
    }
    std::vector<float> v(static_cast<size_t>(t->num_elements()));
    DequantizeRow(t->type, t->data, v.data(), t->num_elements());
    return v;
  }
};

StatusOr<ModelConfig> ConfigFromGguf(const GgufLoader& g, const GgufFile& f, const ArchInfo& info) {
  ModelConfig c;
  const std::string& arch = g.arch;
  c.arch = info.name;
  c.name = f.GetString("general.name").value_or("");
  INFERD_ASSIGN_OR_RETURN(c.hidden_size, g.RequireInt("embedding_length"));
  INFERD_ASSIGN_OR_RETURN(c.intermediate_size, g.RequireInt("feed_forward_length"));
  INFERD_ASSIGN_OR_RETURN(c.num_layers, g.RequireInt("block_count"));
  INFERD_ASSIGN_OR_RETURN(c.num_heads, g.RequireInt("attention.head_count"));
  c.num_kv_heads = g.Int("attention.head_count_kv").value_or(c.num_heads);
  if (c.num_heads <= 0) return InvalidArgument("gguf: attention.head_count must be positive");
  c.head_dim = g.Int("attention.key_length").value_or(c.hidden_size / c.num_heads);
  c.max_position_embeddings = g.Int("context_length").value_or(2048);
  c.context_length_key = arch + ".context_length in the GGUF";
  c.rms_norm_eps = static_cast<float>(g.Float("attention.layer_norm_rms_epsilon").value_or(1e-5));
  c.rope_theta = static_cast<float>(g.Float("rope.freq_base").value_or(10000.0));
  c.rope_style = RopeStyle::kNormal;  // the family's hook sets NeoX where llama.cpp uses it
  const std::string scaling = f.GetString(arch + ".rope.scaling.type").value_or("none");
  if (scaling == "linear") {
    c.rope_scaling = RopeScaling::kLinear;
    c.rope_factor = static_cast<float>(g.Float("rope.scaling.factor").value_or(1.0));
  } else if (scaling != "none") {
    return Unimplemented("gguf: rope scaling '" + scaling + "' is not supported (supported: none, linear, llama3 via rope_freqs)");
  }
  if (auto v = g.Int("vocab_size")) {
    c.vocab_size = *v;
  } else if (const GgufTensorInfo* t = f.FindTensor("token_embd.weight"); t && t->shape.size() == 2) {
    c.vocab_size = t->shape[1];
  }
  c.tie_word_embeddings = f.FindTensor("output.weight") == nullptr;
  if (info.from_gguf) INFERD_RETURN_IF_ERROR(info.from_gguf(f, arch + ".", &c));
  return c;
}

}  // namespace

StatusOr<std::unique_ptr<LoadedModel>> LoadGgufModel(const std::string& path) {
  INFERD_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> file, GgufFile::Open(path));
  const GgufFile& f = *file;
  GgufLoader g{f, f.GetString("general.architecture").value_or("")};
  if (g.arch.empty()) return DataLoss("gguf: '" + path + "' has no general.architecture");
  const ArchInfo* info = FindArchByGguf(g.arch);
  if (info == nullptr) {
    return Unimplemented("gguf: architecture '" + g.arch + "' is not supported (supported: " +
                         SupportedArchitectures() + ")");
  }
  auto model = std::make_unique<LoadedModel>();
  model->format = "gguf";
  model->path = path;
  INFERD_ASSIGN_OR_RETURN(model->config, ConfigFromGguf(g, f, *info));
  INFERD_RETURN_IF_ERROR(model->config.Validate());

  ModelWeights& w = model->weights;
  INFERD_ASSIGN_OR_RETURN(w.tok_embd, g.Mat("token_embd.weight"));
  INFERD_ASSIGN_OR_RETURN(w.output_norm, g.Vec("output_norm.weight"));
  INFERD_ASSIGN_OR_RETURN(w.output, g.Mat("output.weight", /*optional=*/true));
  if (w.output.empty()) w.output = w.tok_embd;
  INFERD_ASSIGN_OR_RETURN(w.rope_freq_factors, g.Vec("rope_freqs.weight", /*optional=*/true));
  w.layers.resize(model->config.num_layers);
  for (int64_t i = 0; i < model->config.num_layers; ++i) {
    LayerWeights& l = w.layers[i];
    const std::string p = fmt::format("blk.{}.", i);
    INFERD_ASSIGN_OR_RETURN(l.attn_norm, g.Vec(p + "attn_norm.weight"));
    INFERD_ASSIGN_OR_RETURN(l.ffn_norm, g.Vec(p + "ffn_norm.weight"));
    const ModelConfig& cfg = model->config;
    const int64_t qd = cfg.num_heads * cfg.head_dim, kvd = cfg.num_kv_heads * cfg.head_dim;
    if (f.FindTensor(p + "attn_qkv.weight") != nullptr) {  // fused [q; k; v] (phi3)
      INFERD_ASSIGN_OR_RETURN(Matrix qkv, g.Mat(p + "attn_qkv.weight"));
      if (qkv.rows != qd + 2 * kvd) {
        return InvalidArgument(fmt::format("gguf: tensor '{}attn_qkv.weight' has {} rows, expected {}", p, qkv.rows,
                                           qd + 2 * kvd));
      }
      l.wq = qkv.Rows(0, qd);
      l.wk = qkv.Rows(qd, kvd);
      l.wv = qkv.Rows(qd + kvd, kvd);
    } else {
      INFERD_ASSIGN_OR_RETURN(l.wq, g.Mat(p + "attn_q.weight"));
      INFERD_ASSIGN_OR_RETURN(l.wk, g.Mat(p + "attn_k.weight"));
      INFERD_ASSIGN_OR_RETURN(l.wv, g.Mat(p + "attn_v.weight"));
    }
    INFERD_ASSIGN_OR_RETURN(l.wo, g.Mat(p + "attn_output.weight"));
    INFERD_ASSIGN_OR_RETURN(l.w_up, g.Mat(p + "ffn_up.weight"));
    if (f.FindTensor(p + "ffn_gate.weight") != nullptr) {
      INFERD_ASSIGN_OR_RETURN(l.w_gate, g.Mat(p + "ffn_gate.weight"));
    } else if (l.w_up.rows == 2 * cfg.intermediate_size) {  // fused [gate; up] in ffn_up (phi3)
      l.w_gate = l.w_up.Rows(0, cfg.intermediate_size);
      l.w_up = l.w_up.Rows(cfg.intermediate_size, cfg.intermediate_size);
    } else {
      return NotFound("gguf: missing tensor '" + p + "ffn_gate.weight'");
    }
    INFERD_ASSIGN_OR_RETURN(l.w_down, g.Mat(p + "ffn_down.weight"));
    INFERD_ASSIGN_OR_RETURN(l.bq, g.Vec(p + "attn_q.bias", true));
    INFERD_ASSIGN_OR_RETURN(l.bk, g.Vec(p + "attn_k.bias", true));
    INFERD_ASSIGN_OR_RETURN(l.bv, g.Vec(p + "attn_v.bias", true));
    const ModelConfig& c = model->config;
    if (c.qk_norm) {
      INFERD_ASSIGN_OR_RETURN(l.q_norm, g.Vec(p + "attn_q_norm.weight"));
      INFERD_ASSIGN_OR_RETURN(l.k_norm, g.Vec(p + "attn_k_norm.weight"));
    }
    if (c.post_norms) {
      INFERD_ASSIGN_OR_RETURN(l.post_attn_norm, g.Vec(p + "post_attention_norm.weight"));
      INFERD_ASSIGN_OR_RETURN(l.post_ffn_norm, g.Vec(p + "post_ffw_norm.weight"));
    }
  }
  size_t bytes = 0;
  for (const GgufTensorInfo& t : f.tensors()) bytes += t.nbytes;
  w.nbytes = bytes;
  const GgufTensorInfo* ffn = f.FindTensor("blk.0.ffn_up.weight");
  model->weight_type = ffn ? GgmlTypeName(static_cast<uint32_t>(ffn->type)) : "?";

  INFERD_ASSIGN_OR_RETURN(model->tokenizer, Tokenizer::FromGguf(f));
  w.storage.push_back(std::shared_ptr<const void>(std::move(file)));
  return model;
}

}  // namespace inferd
