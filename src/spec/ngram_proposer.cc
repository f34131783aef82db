#include "spec/ngram_proposer.h"

#include <algorithm>

namespace inferd::spec {

std::vector<int32_t> ProposeNgram(std::span<const int32_t> tokens, const NgramConfig& config) {
  const size_t len = tokens.size();
  const size_t k = static_cast<size_t>(std::max(0, config.num_speculative_tokens));
  if (k == 0) return {};
  for (int n = config.prompt_lookup_max; n >= std::max(1, config.prompt_lookup_min); --n) {
    const size_t un = static_cast<size_t>(n);
    if (len < un + 1) continue;
    const std::span<const int32_t> suffix = tokens.subspan(len - un);
    // Latest earlier occurrence first: recent context predicts best.
    for (size_t start = len - un; start-- > 0;) {
      if (!std::equal(suffix.begin(), suffix.end(), tokens.begin() + static_cast<std::ptrdiff_t>(start))) continue;
      const size_t from = start + un;
      const size_t to = std::min(len, from + k);
      return std::vector<int32_t>(tokens.begin() + static_cast<std::ptrdiff_t>(from),
                                  tokens.begin() + static_cast<std::ptrdiff_t>(to));
    }
  }
  return {};
}

}  // namespace inferd::spec
