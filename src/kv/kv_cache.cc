#include "kv/kv_cache.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <string>

namespace inferd {

const char* KvDtypeName(KvDtype d) {
  switch (d) {
    case KvDtype::kF16: return "fp16";
    case KvDtype::kBF16: return "bf16";
    default: return "fp32";
  }
}

StatusOr<KvDtype> ParseKvDtype(const std::string& name, bool weights_are_fp32) {
  if (name == "auto") return weights_are_fp32 ? KvDtype::kF32 : KvDtype::kF16;
  if (name == "float32" || name == "fp32") return KvDtype::kF32;
  if (name == "float16" || name == "fp16" || name == "half") return KvDtype::kF16;
  if (name == "bfloat16" || name == "bf16") return KvDtype::kBF16;  // CUDA backend only
  if (name.rfind("fp8", 0) == 0) {
    return Unimplemented("--kv-cache-dtype " + name + " is not supported yet; use auto, float16, bfloat16 or float32");
  }
  return InvalidArgument("unknown --kv-cache-dtype '" + name + "': use auto, float16, bfloat16 or float32");
}

KvCache::KvCache(const KvCacheShape& shape) : shape_(shape) {
  const size_t n = static_cast<size_t>(shape.num_blocks * block_stride() * shape.elem_bytes());
  for (int64_t l = 0; l < shape.num_layers; ++l) {
    k_.emplace_back(new uint8_t[n]);
    v_.emplace_back(new uint8_t[n]);
  }
}

size_t KvCache::nbytes() const {
  return static_cast<size_t>(shape_.num_blocks) * shape_.block_size * shape_.bytes_per_token();
}

int64_t NumBlocksForBytes(const KvCacheShape& shape, int64_t bytes) {
  const int64_t per_block = shape.block_size * shape.bytes_per_token();
  return per_block > 0 ? bytes / per_block : 0;
}

StatusOr<int64_t> ParseByteSize(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + i, value);
  if (i == 0 || ec != std::errc() || end != text.data() + i || value < 0) {
    return InvalidArgument("invalid size '" + text + "': expected e.g. 512MiB, 2GiB");
  }
  std::string unit = text.substr(i);
  std::transform(unit.begin(), unit.end(), unit.begin(), [](unsigned char c) { return std::tolower(c); });
  double mult = 1;
  if (unit.empty() || unit == "b") mult = 1;
  else if (unit == "k" || unit == "kib" || unit == "kb") mult = 1024.0;
  else if (unit == "m" || unit == "mib" || unit == "mb") mult = 1024.0 * 1024;
  else if (unit == "g" || unit == "gib" || unit == "gb") mult = 1024.0 * 1024 * 1024;
  else if (unit == "t" || unit == "tib" || unit == "tb") mult = 1024.0 * 1024 * 1024 * 1024;
  else return InvalidArgument("invalid size unit in '" + text + "': use KiB, MiB, GiB");
  return static_cast<int64_t>(std::llround(value * mult));
}

}  // namespace inferd
