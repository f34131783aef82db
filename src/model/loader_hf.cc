// Hugging Face directory (config.json + safetensors) → ModelConfig + weights, with the tensor
// names of the family (ArchInfo::hf_tensors).
// Matrices are zero-copy views of the mapped safetensors (F32/F16/BF16 rows); the layers of
// an AWQ / GPTQ checkpoint (model/hf_quant.h: `<name>.qweight` instead of `<name>.weight`)
// are repacked into I4Z128 rows (format/awq_gptq.h).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>

#include "format/awq_gptq.h"
#include "format/hf_config.h"
#include "format/safetensors.h"
#include "format/torch_checkpoint.h"
#include "model/arch.h"
#include "model/hf_config.h"
#include "model/hf_quant.h"
#include "model/model.h"

namespace inferd {
namespace {

StatusOr<GgmlType> ToGgml(const StTensor& t) {
  switch (t.dtype) {
    case StDtype::kF32: return GgmlType::kF32;
    case StDtype::kF16: return GgmlType::kF16;
    case StDtype::kBF16: return GgmlType::kBF16;
    default:
      return Unimplemented(fmt::format("tensor '{}' has dtype {}; supported: F32, F16, BF16", t.name, t.dtype_name));
  }
}

struct HfLoader {
  const std::map<std::string, StTensor>& tensors;
  const char* format;  // "safetensors" | "pytorch" for errors
  const HfQuantConfig* quant = nullptr;  // AWQ / GPTQ checkpoint, else nullptr
  std::vector<std::shared_ptr<const void>>* storage = nullptr;  // keeps repacked layers

  const StTensor* Find(const std::string& name) const {
    auto it = tensors.find(name);
    return it == tensors.end() ? nullptr : &it->second;
  }

  // `<base>.weight`, or the int4 layer `<base>.qweight` (+ qzeros, scales, g_idx) of an AWQ /
  // GPTQ checkpoint repacked into I4Z128 rows.
  StatusOr<Matrix> Mat(const std::string& name, bool optional = false) const {
    const StTensor* t = Find(name);
    const std::string base = name.size() > 7 && name.ends_with(".weight") ? name.substr(0, name.size() - 7) : "";
    if (t == nullptr && !base.empty() && Find(base + ".qweight") != nullptr) {
      if (quant == nullptr) {
        return InvalidArgument(fmt::format(
            "{}: '{}.qweight' is a packed int4 (AWQ / GPTQ) tensor, but the directory has no quantization config "
            "('quantization_config' in config.json, quant_config.json or quantize_config.json)",
            format, base));
      }
      const Int4Packing packing = quant->method == "awq" ? Int4Packing::kAwq
                                  : quant->gptq_v2       ? Int4Packing::kGptqV2
                                                         : Int4Packing::kGptq;
      const Int4LayerTensors lt{Find(base + ".qweight"), Find(base + ".qzeros"), Find(base + ".scales"),
                                Find(base + ".g_idx")};
      return Int4LayerToI4Z128(packing, base, lt, quant->group_size, storage);
    }
    if (t == nullptr) {
      if (optional) return Matrix{};
      return NotFound(std::string(format) + ": missing tensor '" + name + "'");
    }
    if (t->shape.size() != 2) {
      return InvalidArgument(fmt::format("{}: tensor '{}' should be 2-D, has {} dims", format, name, t->shape.size()));
    }
    INFERD_ASSIGN_OR_RETURN(GgmlType type, ToGgml(*t));
    Matrix m;
    m.type = type;
    m.rows = t->shape[0];
    m.cols = t->shape[1];
    m.data = t->data;
    m.row_bytes = GgmlRowSize(type, m.cols);
    return m;
  }

  StatusOr<std::vector<float>> Vec(const std::string& name, bool optional = false) const {
    const StTensor* t = Find(name);
    if (t == nullptr) {
      if (optional) return std::vector<float>{};
      return NotFound(std::string(format) + ": missing tensor '" + name + "'");
    }
    INFERD_ASSIGN_OR_RETURN(GgmlType type, ToGgml(*t));
    int64_t n = 1;
    for (int64_t d : t->shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    DequantizeRow(type, t->data, v.data(), n);
    return v;
  }
};

// A wqkv whose rows are grouped per KV head ([kv_heads][heads / kv_heads + 2][head_dim]: the
// group's query heads, its key head, its value head; InternLM2) copied into [q; k; v] order,
// the layout every backend reads. The copy is kept in `storage`; the rows keep their type.
Matrix RegroupQkv(const Matrix& pack, const ModelConfig& c, std::vector<std::shared_ptr<const void>>* storage) {
  const int64_t d = c.head_dim, group = c.num_heads / c.num_kv_heads;
  auto buf = std::make_shared<std::vector<uint8_t>>(pack.nbytes());
  uint8_t* q = buf->data();
  uint8_t* k = q + static_cast<size_t>(c.num_heads * d) * pack.row_bytes;
  uint8_t* v = k + static_cast<size_t>(c.num_kv_heads * d) * pack.row_bytes;
  const size_t head_bytes = static_cast<size_t>(d) * pack.row_bytes;
  for (int64_t g = 0; g < c.num_kv_heads; ++g) {
    const uint8_t* src = pack.row(g * (group + 2) * d);
    std::memcpy(q, src, group * head_bytes);
    std::memcpy(k, src + group * head_bytes, head_bytes);
    std::memcpy(v, src + (group + 1) * head_bytes, head_bytes);
    q += group * head_bytes;
    k += head_bytes;
    v += head_bytes;
  }
  Matrix out = pack;
  out.data = buf->data();
  storage->push_back(std::move(buf));
  return out;
}

// The LM head with every row scaled to unit L2 norm (x / max(|x|, 1e-12), torch's
// F.normalize), in its own type (F32, F16 or BF16: what HF checkpoints hold).
StatusOr<Matrix> NormalizedRows(const Matrix& m, std::vector<std::shared_ptr<const void>>* storage) {
  if (m.type != GgmlType::kF32 && m.type != GgmlType::kF16 && m.type != GgmlType::kBF16) {
    return Unimplemented(std::string("normalising the LM head of type ") + GgmlTypeName(static_cast<uint32_t>(m.type)));
  }
  auto buf = std::make_shared<std::vector<uint8_t>>(m.nbytes());
  std::vector<float> row(static_cast<size_t>(m.cols));
  for (int64_t r = 0; r < m.rows; ++r) {
    DequantizeRow(m.type, m.row(r), row.data(), m.cols);
    double sum = 0;
    for (const float x : row) sum += static_cast<double>(x) * x;
    const double inv = 1.0 / std::max(std::sqrt(sum), 1e-12);
    uint8_t* out = buf->data() + static_cast<size_t>(r) * m.row_bytes;
    for (int64_t i = 0; i < m.cols; ++i) {
      const float y = static_cast<float>(row[i] * inv);
      if (m.type == GgmlType::kF32) {
        std::memcpy(out + i * 4, &y, 4);
      } else {
        const uint16_t h = m.type == GgmlType::kF16 ? Fp32ToFp16(y) : Fp32ToBf16(y);
        std::memcpy(out + i * 2, &h, 2);
      }
    }
  }
  Matrix out = m;
  out.data = buf->data();
  storage->push_back(std::move(buf));
  return out;
}

bool HasSafetensors(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".safetensors" || e.path().filename() == "model.safetensors.index.json") return true;
  }
  return false;
}

}  // namespace

StatusOr<std::unique_ptr<LoadedModel>> LoadHfModel(const std::string& dir, const std::string& weights,
                                                    const std::string& quantization) {
  auto model = std::make_unique<LoadedModel>();
  model->format = "safetensors";
  model->path = dir;
  // An AWQ / GPTQ checkpoint, checked against --quantization before any weight is read.
  INFERD_ASSIGN_OR_RETURN(std::optional<HfQuantConfig> quant,
                          LoadHfQuantConfig(dir, IsCheckpointQuantization(quantization) ? quantization : ""));
  INFERD_RETURN_IF_ERROR(CheckQuantizationArgument(quantization, quant ? &*quant : nullptr, "'" + dir + "'"));
  INFERD_ASSIGN_OR_RETURN(model->config, LoadHfConfig(dir));
  INFERD_RETURN_IF_ERROR(model->config.Validate());
  const ModelConfig& c = model->config;
  // Weights: *.safetensors when there are any, else pytorch_model.bin (restricted unpickler,
  // format/torch_checkpoint.h). Both are zero-copy views of the mapped files.
  std::shared_ptr<const void> keep;
  const std::map<std::string, StTensor>* tensors = nullptr;
  const char* format = "safetensors";
  const bool has_st = HasSafetensors(dir), has_pt = HasTorchCheckpoint(dir);  // one directory scan each
  const bool pt = weights == "pt" || (weights != "safetensors" && !has_st && has_pt);
  if (weights == "auto" && !has_st && !has_pt) {
    return NotFound("'" + dir + "' has no weights: expected model.safetensors (or model.safetensors.index.json and "
                    "its shards) or pytorch_model.bin (or pytorch_model.bin.index.json and its shards)");
  }
  if (pt) {
    INFERD_ASSIGN_OR_RETURN(std::unique_ptr<TorchCheckpoint> tc, TorchCheckpoint::Open(dir));
    tensors = &tc->tensors();
    keep = std::shared_ptr<const void>(std::move(tc));
    format = "pytorch";
    model->format = "pytorch";
  } else {
    INFERD_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsModel> st, SafetensorsModel::Open(dir));
    tensors = &st->tensors();
    keep = std::shared_ptr<const void>(std::move(st));
  }
  HfLoader g{*tensors, format, quant ? &*quant : nullptr, &model->weights.storage};

  const ArchInfo* info = FindArch(c.arch);
  if (info == nullptr) return Internal("no ArchInfo for family " + c.arch);
  const HfTensorNames& n = info->hf_tensors;
  // A norm weight, with the family's offset added (Gemma stores w for x * (1 + w)).
  auto norm = [&](const std::string& name) -> StatusOr<std::vector<float>> {
    INFERD_ASSIGN_OR_RETURN(std::vector<float> v, g.Vec(name));
    if (n.norm_offset != 0.0f)
      for (float& x : v) x += n.norm_offset;
    return v;
  };
  ModelWeights& w = model->weights;
  INFERD_ASSIGN_OR_RETURN(w.tok_embd, g.Mat(n.embed));
  INFERD_ASSIGN_OR_RETURN(w.output_norm, norm(n.final_norm));
  INFERD_ASSIGN_OR_RETURN(w.output, g.Mat(n.lm_head, /*optional=*/true));
  if (w.output.empty()) w.output = w.tok_embd;
  if (c.normalize_lm_head) {
    INFERD_ASSIGN_OR_RETURN(w.output, NormalizedRows(w.output, &w.storage));
  }
  w.layers.resize(c.num_layers);
  const int64_t q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  for (int64_t i = 0; i < c.num_layers; ++i) {
    LayerWeights& l = w.layers[i];
    const std::string p = fmt::format("model.layers.{}.", i);
    INFERD_ASSIGN_OR_RETURN(l.attn_norm, norm(p + n.attn_norm));
    INFERD_ASSIGN_OR_RETURN(l.ffn_norm, norm(p + n.ffn_norm));
    if (n.qkv != nullptr) {
      const std::string name = p + n.qkv + ".weight";
      INFERD_ASSIGN_OR_RETURN(Matrix pack, g.Mat(name));
      if (pack.rows != q + 2 * kv) {
        return InvalidArgument(fmt::format("{}: '{}' has {} rows, expected {}", format, name, pack.rows, q + 2 * kv));
      }
      if (n.qkv_grouped) pack = RegroupQkv(pack, c, &w.storage);
      l.wq = pack.Rows(0, q);
      l.wk = pack.Rows(q, kv);
      l.wv = pack.Rows(q + kv, kv);
    } else {
      INFERD_ASSIGN_OR_RETURN(l.wq, g.Mat(p + n.q + ".weight"));
      INFERD_ASSIGN_OR_RETURN(l.wk, g.Mat(p + n.k + ".weight"));
      INFERD_ASSIGN_OR_RETURN(l.wv, g.Mat(p + n.v + ".weight"));
      INFERD_ASSIGN_OR_RETURN(l.bq, g.Vec(p + n.q + ".bias", true));
      INFERD_ASSIGN_OR_RETURN(l.bk, g.Vec(p + n.k + ".bias", true));
      INFERD_ASSIGN_OR_RETURN(l.bv, g.Vec(p + n.v + ".bias", true));
    }
    INFERD_ASSIGN_OR_RETURN(l.wo, g.Mat(p + n.o));
    if (n.gate_up != nullptr) {
      const std::string name = p + n.gate_up;
      INFERD_ASSIGN_OR_RETURN(Matrix gu, g.Mat(name));
      if (gu.rows != 2 * c.intermediate_size) {
        return InvalidArgument(fmt::format("{}: '{}' has {} rows, expected {}", format, name, gu.rows,
                                           2 * c.intermediate_size));
      }
      l.w_gate = gu.Rows(0, c.intermediate_size);
      l.w_up = gu.Rows(c.intermediate_size, c.intermediate_size);
    } else {
      INFERD_ASSIGN_OR_RETURN(l.w_gate, g.Mat(p + n.gate));
      INFERD_ASSIGN_OR_RETURN(l.w_up, g.Mat(p + n.up));
    }
    INFERD_ASSIGN_OR_RETURN(l.w_down, g.Mat(p + n.down));
    if (c.qk_norm) {
      INFERD_ASSIGN_OR_RETURN(l.q_norm, norm(p + n.q_norm));
      INFERD_ASSIGN_OR_RETURN(l.k_norm, norm(p + n.k_norm));
    }
    if (c.post_norms) {
      INFERD_ASSIGN_OR_RETURN(l.post_attn_norm, norm(p + n.post_attn_norm));
      INFERD_ASSIGN_OR_RETURN(l.post_ffn_norm, norm(p + n.post_ffn_norm));
    }
  }
  size_t bytes = 0;
  for (const auto& [name, t] : *tensors) bytes += t.nbytes;
  w.nbytes = bytes;
  model->weight_type = GgmlTypeName(static_cast<uint32_t>(w.layers.empty() ? w.tok_embd.type : w.layers[0].w_up.type));
  if (quant) model->weight_type = quant->Describe() + " (" + model->weight_type + ")";

  std::error_code ec;
  if (std::filesystem::exists(std::filesystem::path(dir) / "generation_config.json", ec)) {
    INFERD_ASSIGN_OR_RETURN(model->generation, LoadGenerationConfig(dir));
  }
  auto tok = Tokenizer::FromHfDir(dir);
  if (tok.ok()) {
    model->tokenizer = std::move(tok).value();
  } else if (tok.status().code() != StatusCode::kNotFound) {
    return tok.status();
  }
  w.storage.push_back(std::move(keep));
  return model;
}

}  // namespace inferd
