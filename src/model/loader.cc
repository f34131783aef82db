#include <filesystem>
#include <mutex>
#include <set>

#include "format/ggml_types.h"
#include "format/gguf.h"
#include "model/hf_quant.h"
#include "model/model.h"
#include "model/quantize.h"
#include "util/logging.h"

namespace inferd {
namespace fs = std::filesystem;

namespace {

Status CheckMatrix(const Matrix& m, const std::string& name, int64_t rows, int64_t cols) {
  if (m.empty()) return NotFound("model is missing weight '" + name + "'");
  if (m.rows != rows || m.cols != cols) {
    return InvalidArgument(fmt::format("weight '{}' has shape [{}, {}], expected [{}, {}] from the model config",
                                       name, m.rows, m.cols, rows, cols));
  }
  return Status::OK();
}

Status CheckVector(const std::vector<float>& v, const std::string& name, int64_t n, bool optional) {
  if (v.empty() && optional) return Status::OK();
  if (static_cast<int64_t>(v.size()) != n) {
    return InvalidArgument(fmt::format("weight '{}' has {} elements, expected {}", name, v.size(), n));
  }
  return Status::OK();
}

// One warning line per weight type that only the scalar reference dequantizes (format/
// ggml_types.h GgmlTypeIsReferenceOnly).
void WarnReferenceOnlyTypes(const ModelWeights& w) {
  std::set<uint32_t> warned;
  auto check = [&](const Matrix& m) {
    if (m.empty() || !GgmlTypeIsReferenceOnly(m.type) || !warned.insert(static_cast<uint32_t>(m.type)).second) return;
    INFERD_LOG_WARN("tensor type {} has no fast CPU kernel; the CPU backend uses the reference dequantization on "
                    "every matmul (slow)",
                    GgmlTypeName(static_cast<uint32_t>(m.type)));
  };
  check(w.tok_embd);
  check(w.output);
  for (const LayerWeights& l : w.layers) {
    for (const Matrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) check(*m);
  }
}

}  // namespace

Status CheckWeightShapes(const ModelConfig& c, const ModelWeights& w) {
  const int64_t q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim, h = c.hidden_size;
  INFERD_RETURN_IF_ERROR(CheckMatrix(w.tok_embd, "token embedding", c.vocab_size, h));
  INFERD_RETURN_IF_ERROR(CheckMatrix(w.output, "output", c.vocab_size, h));
  INFERD_RETURN_IF_ERROR(CheckVector(w.output_norm, "output norm", h, false));
  if (static_cast<int64_t>(w.layers.size()) != c.num_layers) {
    return InvalidArgument(fmt::format("model has {} layers of weights, config says {}", w.layers.size(), c.num_layers));
  }
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const LayerWeights& l = w.layers[i];
    const std::string p = fmt::format("layer {} ", i);
    INFERD_RETURN_IF_ERROR(CheckVector(l.attn_norm, p + "attn_norm", h, false));
    INFERD_RETURN_IF_ERROR(CheckVector(l.ffn_norm, p + "ffn_norm", h, false));
    INFERD_RETURN_IF_ERROR(CheckMatrix(l.wq, p + "q_proj", q, h));
    INFERD_RETURN_IF_ERROR(CheckMatrix(l.wk, p + "k_proj", kv, h));
    INFERD_RETURN_IF_ERROR(CheckMatrix(l.wv, p + "v_proj", kv, h));
    INFERD_RETURN_IF_ERROR(CheckMatrix(l.wo, p + "o_proj", h, q));
    INFERD_RETURN_IF_ERROR(CheckMatrix(l.w_gate, p + "gate_proj", c.intermediate_size, h));
    INFERD_RETURN_IF_ERROR(CheckMatrix(l.w_up, p + "up_proj", c.intermediate_size, h));
    INFERD_RETURN_IF_ERROR(CheckMatrix(l.w_down, p + "down_proj", h, c.intermediate_size));
    INFERD_RETURN_IF_ERROR(CheckVector(l.bq, p + "q bias", q, true));
    INFERD_RETURN_IF_ERROR(CheckVector(l.bk, p + "k bias", kv, true));
    INFERD_RETURN_IF_ERROR(CheckVector(l.bv, p + "v bias", kv, true));
    INFERD_RETURN_IF_ERROR(CheckVector(l.q_norm, p + "q_norm", c.head_dim, !c.qk_norm));
    INFERD_RETURN_IF_ERROR(CheckVector(l.k_norm, p + "k_norm", c.head_dim, !c.qk_norm));
    INFERD_RETURN_IF_ERROR(CheckVector(l.post_attn_norm, p + "post_attention_norm", h, !c.post_norms));
    INFERD_RETURN_IF_ERROR(CheckVector(l.post_ffn_norm, p + "post_ffn_norm", h, !c.post_norms));
    if (c.qkv_bias && (l.bq.empty() || l.bk.empty() || l.bv.empty())) {
      return InvalidArgument(p + "has no q/k/v bias, which this family (" + c.arch + ") needs");
    }
  }
  if (!w.rope_freq_factors.empty() && static_cast<int64_t>(w.rope_freq_factors.size()) != c.head_dim / 2) {
    return InvalidArgument("rope_freqs has the wrong length for the head dimension");
  }
  return Status::OK();
}

StatusOr<std::unique_ptr<LoadedModel>> LoadModel(const LoadOptions& options) {
  std::unique_ptr<LoadedModel> model;
  const std::string& path = options.model;
  // awq / gptq name a checkpoint's method (checked against it by the HF loader); the other
  // values are quantization at load. Either way: fail before loading.
  const bool checkpoint_quant = IsCheckpointQuantization(options.quantization);
  if (!checkpoint_quant) {
    const Status s = WeightQuantizationType(options.quantization).status();
    if (!s.ok()) {
      return Status(s.code(), s.message() + "; or awq | gptq, the method of a pre-quantized Hugging Face checkpoint");
    }
  }
  if (options.trust_remote_code) {
    static std::once_flag once;
    std::call_once(once, [] {
      INFERD_LOG_INFO("--trust-remote-code has no effect: inferd never runs code from a model directory; the "
                      "model family comes from config.json ('architectures')");
    });
  }
  if (options.load_format == "dummy") {
    INFERD_RETURN_IF_ERROR(CheckQuantizationArgument(checkpoint_quant ? options.quantization : "", nullptr,
                                                     "'" + path + "' (dummy weights)"));
    INFERD_ASSIGN_OR_RETURN(model, LoadDummyModel(options));
  } else {
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      return NotFound("model '" + path + "' not found: pass a .gguf file or a Hugging Face model directory "
                      "(or --load-format dummy with one of: " + DummyShapeNames() + ")");
    }
    const bool is_dir = fs::is_directory(path, ec);
    std::string format = options.load_format;
    if (format == "auto") format = is_dir ? "hf" : "gguf";
    if (format == "gguf") {
      if (is_dir) return InvalidArgument("'" + path + "' is a directory; --load-format gguf needs a .gguf file");
      INFERD_RETURN_IF_ERROR(CheckQuantizationArgument(checkpoint_quant ? options.quantization : "", nullptr,
                                                       "'" + path + "' (a GGUF file: its tensor types are its quantization)"));
      INFERD_ASSIGN_OR_RETURN(model, LoadGgufModel(path));
    } else if (format == "hf" || format == "safetensors" || format == "pt") {
      if (!is_dir) return InvalidArgument("'" + path + "' is not a directory; Hugging Face models are directories");
      INFERD_ASSIGN_OR_RETURN(model, LoadHfModel(path, format == "hf" ? "auto" : format, options.quantization));
    } else {
      return InvalidArgument("unknown --load-format '" + options.load_format + "': use auto, gguf, safetensors, pt or dummy");
    }
  }
  if (!options.tokenizer.empty()) {
    std::error_code ec;
    if (fs::is_directory(options.tokenizer, ec)) {
      INFERD_ASSIGN_OR_RETURN(model->tokenizer, Tokenizer::FromHfDir(options.tokenizer));
    } else {
      INFERD_ASSIGN_OR_RETURN(auto gguf, GgufFile::Open(options.tokenizer));
      INFERD_ASSIGN_OR_RETURN(model->tokenizer, Tokenizer::FromGguf(*gguf));
    }
  }
  if (!model->tokenizer && model->format != "dummy") {
    return NotFound("no tokenizer for model '" + path + "': pass --tokenizer PATH (a .gguf file or a Hugging Face "
                    "directory with tokenizer.json or tokenizer.model)");
  }
  // A checkpoint with q/k/v biases uses them whatever its family says (Llama configs have
  // attention_bias); the shape check then wants them in every layer.
  if (!model->weights.layers.empty() && !model->weights.layers[0].bq.empty()) model->config.qkv_bias = true;
  INFERD_RETURN_IF_ERROR(model->config.Validate());
  INFERD_RETURN_IF_ERROR(CheckWeightShapes(model->config, model->weights));
  WarnReferenceOnlyTypes(model->weights);
  if (model->tokenizer && model->tokenizer->vocab_size() > model->config.vocab_size) {
    return InvalidArgument(fmt::format("tokenizer has {} tokens but the model's vocabulary is {}",
                                       model->tokenizer->vocab_size(), model->config.vocab_size));
  }
  if (!checkpoint_quant) INFERD_RETURN_IF_ERROR(QuantizeWeights(*model, options.quantization));  // before the repack
  // The CPU backend repacks the weights for its kernels when it is created
  // (PrepareCpuWeights); a model loaded for the GPU or for export is left as stored.
  return model;
}

}  // namespace inferd
