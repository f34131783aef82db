#include "sample/logits_processors.h"

#include <algorithm>

namespace inferd {

void BuildLogitEdits(const SampleInput& in, int64_t vocab, std::vector<LogitEdit>* out) {
  static const SamplingParams kDefaults;
  const SamplingParams& p = in.params != nullptr ? *in.params : kDefaults;
  auto valid = [vocab](int32_t id) { return id >= 0 && id < vocab; };
  const bool min_tokens = static_cast<int64_t>(in.output_ids.size()) < p.min_tokens;
  const bool rep = p.repetition_penalty != 1.0f;
  const bool freq_pres = p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f;

  // The distinct tokens touched, ascending.
  std::vector<int32_t> ids;
  for (const auto& [id, bias] : p.logit_bias) {
    if (valid(id)) ids.push_back(id);
  }
  if (min_tokens) {
    for (int32_t id : in.stop_ids) {
      if (valid(id)) ids.push_back(id);
    }
  }
  if (rep) {
    for (int32_t id : in.prompt_ids) {
      if (valid(id)) ids.push_back(id);
    }
  }
  if (rep || freq_pres) {
    for (int32_t id : in.output_ids) {
      if (valid(id)) ids.push_back(id);
    }
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  if (ids.empty()) return;

  const size_t base = out->size();
  out->resize(base + ids.size());
  LogitEdit* e = out->data() + base;
  for (size_t i = 0; i < ids.size(); ++i) e[i].token = ids[i];
  auto at = [&](int32_t id) -> LogitEdit& {
    return e[std::lower_bound(ids.begin(), ids.end(), id) - ids.begin()];
  };

  // The values that reproduce the sequential definition (logit_edit.h).
  for (const auto& [id, bias] : p.logit_bias) {
    if (valid(id)) at(id).bias = bias;
  }
  if (min_tokens) {
    for (int32_t id : in.stop_ids) {
      if (valid(id)) at(id).set_neg_inf = 1;
    }
  }
  if (rep) {
    for (auto span : {in.prompt_ids, in.output_ids}) {
      for (int32_t id : span) {
        if (valid(id)) at(id).rep = p.repetition_penalty;  // once per token: the kernel applies it once
      }
    }
  }
  if (freq_pres) {
    // count(id in output) for each distinct output token: sort a copy.
    std::vector<int32_t> outs;
    outs.reserve(in.output_ids.size());
    for (int32_t id : in.output_ids) {
      if (valid(id)) outs.push_back(id);
    }
    std::sort(outs.begin(), outs.end());
    for (size_t i = 0; i < outs.size();) {
      size_t k = i;
      while (k < outs.size() && outs[k] == outs[i]) ++k;
      LogitEdit& ed = at(outs[i]);
      // The CPU's operands: l -= frequency_penalty * float(count); l -= presence_penalty.
      ed.freq = p.frequency_penalty * static_cast<float>(static_cast<int32_t>(k - i));
      ed.presence = p.presence_penalty;
      i = k;
    }
  }
}

}  // namespace inferd
