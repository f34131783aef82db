// Pre-quantized Hugging Face checkpoints (AWQ, GPTQ): their quantization config and the
// --quantization argument checked against it, as vLLM does.
//
// Where the config is (vLLM's order): config.json "quantization_config"; else one of
// quant_config.json (AutoAWQ) or quantize_config.json (AutoAWQ, AutoGPTQ) in the directory.
// Those files name the method with "quant_method" when recent; otherwise the method is
// --quantization's, else recognised from the keys (AWQ: w_bit, q_group_size, zero_point,
// version; GPTQ: desc_act, sym, damp_percent).
//
// Loaded (format/awq_gptq.h repacks the layers into I4Z128 rows for the int4 kernels):
// 4-bit, group size -1 or a multiple of 128; AWQ "gemm" with zero points; GPTQ with
// desc_act false, sym true or false, checkpoint_format "gptq" (v1) or "gptq_v2".
// Layers without qweight (modules_to_not_convert, GPTQ's modules_in_block_to_quantize, an
// unquantized lm_head) load as stored. Refused by name: other bit widths, other group sizes,
// desc_act (act-order), AWQ zero_point false and versions other than gemm (gemv, gemv_fast,
// marlin), GPTQ marlin checkpoints and "dynamic" per-module overrides, other methods.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "inferd/status.h"

namespace inferd {

struct HfQuantConfig {
  std::string method;            // "awq" | "gptq"
  std::string source;            // where it was read: "config.json 'quantization_config'", "quant_config.json"...
  int64_t bits = 4;
  int64_t group_size = 128;      // -1: one group per row
  bool gptq_v2 = false;          // GPTQ checkpoint_format "gptq_v2": zeros stored as z (v1: z - 1)
  bool sym = false;              // GPTQ sym (informational: the stored zeros are read either way)
  std::vector<std::string> modules_to_not_convert;
  // "awq 4-bit, group 128" for logs and the model's weight type.
  std::string Describe() const;
};

// The methods --quantization may name for a pre-quantized checkpoint.
bool IsCheckpointQuantization(const std::string& quantization);

// Parses one quantization config object (`source` names it in errors). `method_hint`: the
// --quantization value ("" when not given), used when the object names no method.
StatusOr<HfQuantConfig> ParseHfQuantConfig(const nlohmann::json& j, const std::string& source,
                                           const std::string& method_hint);

// The quantization config of the directory, or nullopt when it has none (an unquantized
// checkpoint). Errors: unreadable files, both quant_config.json and quantize_config.json,
// and every refused setting, by name.
StatusOr<std::optional<HfQuantConfig>> LoadHfQuantConfig(const std::string& dir, const std::string& method_hint);

// --quantization against the checkpoint (vLLM's rules): "awq" / "gptq" must be its method;
// "int8" / "int4" (inferd's quantization at load) on a pre-quantized checkpoint is an error;
// "" / "none" take it as it is. `quant`: the checkpoint's config (nullptr: not quantized or
// not a Hugging Face directory); `what` names the model in errors.
Status CheckQuantizationArgument(const std::string& quantization, const HfQuantConfig* quant, const std::string& what);

}  // namespace inferd
