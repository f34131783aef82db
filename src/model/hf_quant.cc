// AWQ / GPTQ quantization configs (hf_quant.h).
#include "model/hf_quant.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <limits>

#include "model/config_json.h"
#include "util/file.h"
#include "util/json.h"

namespace inferd {
namespace {

using json = nlohmann::json;

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// The first of `keys` present (not null) as an integer; `*key` names it for messages.
Status GetIntOf(const json& j, std::initializer_list<const char*> keys, int64_t* out, const char** key) {
  for (const char* k : keys) {
    auto it = j.find(k);
    if (it == j.end() || it->is_null()) continue;
    *key = k;
    return config_json::GetInt(j, k, out);
  }
  return Status::OK();
}

bool Has(const json& j, const char* key) { return j.contains(key) && !j[key].is_null(); }

// The method an object without "quant_method" describes, from keys only one of the tools writes.
std::string MethodFromKeys(const json& j) {
  for (const char* k : {"w_bit", "q_group_size", "zero_point", "version"}) {
    if (Has(j, k)) return "awq";
  }
  for (const char* k : {"desc_act", "sym", "damp_percent", "true_sequential"}) {
    if (Has(j, k)) return "gptq";
  }
  return "";
}

Status ParseAwq(const json& j, const std::string& src, HfQuantConfig* q) {
  bool zero_point = true;
  INFERD_RETURN_IF_ERROR(config_json::GetBool(j, "zero_point", &zero_point));
  if (!zero_point) {
    return Unimplemented(src + ": AWQ with 'zero_point': false (symmetric, no zero points) is not supported; inferd "
                         "loads AWQ checkpoints with zero points (AutoAWQ's default)");
  }
  std::string version = "gemm";
  INFERD_RETURN_IF_ERROR(config_json::GetString(j, "version", &version));
  if (Lower(version) != "gemm") {
    return Unimplemented(fmt::format("{}: AWQ 'version': '{}' is not supported: inferd reads AWQ's 'gemm' packing "
                                     "(gemv, gemv_fast and marlin pack the int4 codes differently)",
                                     src, version));
  }
  return Status::OK();
}

Status ParseGptq(const json& j, const std::string& src, HfQuantConfig* q) {
  bool desc_act = false;
  INFERD_RETURN_IF_ERROR(config_json::GetBool(j, "desc_act", &desc_act));
  if (desc_act) {
    return Unimplemented(src + ": GPTQ with 'desc_act': true (act-order: g_idx sends the inputs to groups out of "
                         "order) is not supported; use a checkpoint quantized with desc_act false");
  }
  bool marlin = false;
  INFERD_RETURN_IF_ERROR(config_json::GetBool(j, "is_marlin_format", &marlin));
  std::string fmt_name;
  for (const char* k : {"checkpoint_format", "format"}) {
    if (Has(j, k) && j[k].is_string()) {
      fmt_name = Lower(j[k].get<std::string>());
      break;
    }
  }
  if (marlin || fmt_name == "marlin") {
    return Unimplemented(src + ": GPTQ in Marlin's packing (checkpoint_format 'marlin' / is_marlin_format) is not "
                         "supported; inferd reads GPTQ's own packing (checkpoint_format 'gptq' or 'gptq_v2')");
  }
  if (fmt_name == "gptq_v2") {
    q->gptq_v2 = true;
  } else if (!fmt_name.empty() && fmt_name != "gptq") {
    return Unimplemented(fmt::format("{}: GPTQ checkpoint_format '{}' is not supported (gptq and gptq_v2 are)", src,
                                     fmt_name));
  }
  if (Has(j, "dynamic") && !(j["dynamic"].is_object() && j["dynamic"].empty())) {
    return Unimplemented(src + ": GPTQ 'dynamic' (per-module bits and group sizes) is not supported");
  }
  q->sym = true;
  INFERD_RETURN_IF_ERROR(config_json::GetBool(j, "sym", &q->sym));
  return Status::OK();
}

}  // namespace

std::string HfQuantConfig::Describe() const {
  std::string s = fmt::format("{} {}-bit, ", method, bits);
  s += group_size == -1 ? std::string("one group per row") : fmt::format("group {}", group_size);
  if (method == "gptq") s += gptq_v2 ? ", gptq_v2" : ", gptq v1";
  return s;
}

bool IsCheckpointQuantization(const std::string& q) { return q == "awq" || q == "gptq"; }

StatusOr<HfQuantConfig> ParseHfQuantConfig(const json& j, const std::string& source, const std::string& hint) {
  if (!j.is_object()) {
    return InvalidArgument(fmt::format("{} must be an object, got {}", source, j.type_name()));
  }
  HfQuantConfig q;
  q.source = source;
  std::string method;
  INFERD_RETURN_IF_ERROR(config_json::GetString(j, "quant_method", &method));
  method = Lower(method);
  if (method.empty()) method = IsCheckpointQuantization(hint) ? hint : MethodFromKeys(j);
  if (method.empty()) {
    return InvalidArgument(source + " names no quant_method and its keys do not tell AWQ from GPTQ: pass "
                           "--quantization awq or --quantization gptq");
  }
  if (!IsCheckpointQuantization(method)) {
    return Unimplemented(fmt::format("{}: quant_method '{}' is not supported: inferd loads AWQ and GPTQ int4 "
                                     "checkpoints (or quantizes fp16/bf16/fp32 weights itself with --quantization "
                                     "int8 | int4)",
                                     source, method));
  }
  q.method = method;
  const char* bits_key = "bits";
  const char* group_key = "group_size";
  constexpr int64_t kMissing = std::numeric_limits<int64_t>::min();
  int64_t bits = kMissing, group = kMissing;
  INFERD_RETURN_IF_ERROR(GetIntOf(j, {"bits", "w_bit"}, &bits, &bits_key));
  INFERD_RETURN_IF_ERROR(GetIntOf(j, {"group_size", "q_group_size"}, &group, &group_key));
  if (bits == kMissing) return InvalidArgument(source + ": 'bits' (the weights' bit width) is missing");
  if (group == kMissing) return InvalidArgument(source + ": 'group_size' is missing");
  if (bits != 4) {
    return Unimplemented(fmt::format("{}: {} with {}-bit weights ('{}': {}) is not supported: inferd loads 4-bit "
                                     "AWQ and GPTQ checkpoints",
                                     source, method == "awq" ? "AWQ" : "GPTQ", bits, bits_key, bits));
  }
  q.bits = bits;
  if (!(group == -1 || (group > 0 && group % 128 == 0))) {
    return Unimplemented(fmt::format("{}: '{}': {} is not supported: inferd's int4 kernels take groups of 128 "
                                     "inputs (or a multiple of 128, or -1: one group per row)",
                                     source, group_key, group));
  }
  q.group_size = group;
  INFERD_RETURN_IF_ERROR(method == "awq" ? ParseAwq(j, source, &q) : ParseGptq(j, source, &q));
  if (Has(j, "modules_to_not_convert")) {
    const json& m = j["modules_to_not_convert"];
    if (!m.is_array()) return InvalidArgument(source + ": 'modules_to_not_convert' must be a list of names or null");
    for (const json& x : m) {
      if (!x.is_string()) return InvalidArgument(source + ": 'modules_to_not_convert' must hold strings");
      q.modules_to_not_convert.push_back(x.get<std::string>());
    }
  }
  return q;
}

StatusOr<std::optional<HfQuantConfig>> LoadHfQuantConfig(const std::string& dir, const std::string& hint) {
  namespace fs = std::filesystem;
  const fs::path config = fs::path(dir) / "config.json";
  std::error_code ec;
  if (fs::exists(config, ec)) {
    INFERD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(config.string()));
    INFERD_ASSIGN_OR_RETURN(json j, ParseJson(text, config.string()));
    if (j.is_object() && Has(j, "quantization_config")) {
      INFERD_ASSIGN_OR_RETURN(HfQuantConfig q, ParseHfQuantConfig(j["quantization_config"],
                                                                  "config.json 'quantization_config'", hint));
      return std::optional<HfQuantConfig>(std::move(q));
    }
  }
  // vLLM's get_quant_config: AWQ's quant_config.json / quantize_config.json, GPTQ's
  // quantize_config.json; more than one is an error.
  std::vector<std::string> found;
  for (const char* name : {"quant_config.json", "quantize_config.json"}) {
    if (fs::is_regular_file(fs::path(dir) / name, ec)) found.push_back(name);
  }
  if (found.empty()) return std::optional<HfQuantConfig>();
  if (found.size() > 1) {
    return InvalidArgument(fmt::format("'{}' has both {} and {}: which quantization config applies is ambiguous", dir,
                                       found[0], found[1]));
  }
  const std::string path = (fs::path(dir) / found[0]).string();
  INFERD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  INFERD_ASSIGN_OR_RETURN(json j, ParseJson(text, path));
  INFERD_ASSIGN_OR_RETURN(HfQuantConfig q, ParseHfQuantConfig(j, found[0], hint));
  return std::optional<HfQuantConfig>(std::move(q));
}

Status CheckQuantizationArgument(const std::string& quantization, const HfQuantConfig* quant, const std::string& what) {
  if (quantization.empty() || quantization == "none") return Status::OK();
  if (IsCheckpointQuantization(quantization)) {
    if (quant == nullptr) {
      return InvalidArgument(fmt::format(
          "--quantization {}: {} is not a pre-quantized checkpoint (no 'quantization_config' in config.json, no "
          "quant_config.json or quantize_config.json); awq and gptq name the method of a checkpoint, int8 and int4 "
          "quantize fp16/bf16/fp32 weights at load",
          quantization, what));
    }
    if (quant->method != quantization) {
      return InvalidArgument(fmt::format(
          "quantization method specified in the model config ({}, {}) does not match the one specified with "
          "--quantization ({})",
          quant->method, quant->source, quantization));
    }
    return Status::OK();
  }
  if (quant != nullptr) {
    return InvalidArgument(fmt::format(
        "--quantization {} quantizes fp16/bf16/fp32 weights at load, but {} is already quantized ({}, from {}): its "
        "int4 weights load as stored; drop --quantization or pass --quantization {}",
        quantization, what, quant->Describe(), quant->source, quant->method));
  }
  return Status::OK();
}

}  // namespace inferd
