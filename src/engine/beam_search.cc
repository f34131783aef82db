#include "engine/beam_search.h"

#include <algorithm>
#include <cmath>

namespace inferd {

double BeamScore(const std::vector<int32_t>& tokens, double cum_logprob, int32_t eos_token_id, float length_penalty) {
  size_t len = tokens.size();
  if (eos_token_id >= 0 && !tokens.empty() && tokens.back() == eos_token_id) --len;
  return cum_logprob / std::pow(static_cast<double>(len), static_cast<double>(length_penalty));
}

BeamSearch::BeamSearch(std::vector<std::vector<int32_t>> prompts, BeamSearchParams params, int32_t eos_token_id,
                       int64_t max_model_len)
    : params_(params), eos_(eos_token_id), max_model_len_(max_model_len) {
  instances_.resize(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    Beam b;
    b.tokens = std::move(prompts[i]);
    instances_[i].beams.push_back(std::move(b));
  }
}

SamplingParams BeamSearch::StepParams() const {
  SamplingParams p;
  p.max_tokens = 1;
  p.logprobs = 2 * params_.beam_width;
  p.temperature = params_.temperature;
  p.ignore_eos = true;  // EOS is a candidate like any other; completion is decided here
  return p;
}

void BeamSearch::Rank(std::vector<Beam>& beams) const {
  std::stable_sort(beams.begin(), beams.end(), [&](const Beam& a, const Beam& b) {
    return BeamScore(a.tokens, a.cum_logprob, eos_, params_.length_penalty) >
           BeamScore(b.tokens, b.cum_logprob, eos_, params_.length_penalty);
  });
}

std::vector<std::vector<int32_t>> BeamSearch::NextStep() {
  live_.clear();
  if (steps_ >= params_.max_tokens) return {};
  for (size_t i = 0; i < instances_.size(); ++i) {
    Instance& inst = instances_[i];
    for (Beam& beam : inst.beams) {
      if (static_cast<int64_t>(beam.tokens.size()) >= max_model_len_) {  // no room for another token
        beam.finish_reason = "length";
        inst.completed.push_back(std::move(beam));
      } else {
        live_.emplace_back(i, std::move(beam));
      }
    }
    inst.beams.clear();
  }
  std::vector<std::vector<int32_t>> out;
  out.reserve(live_.size());
  for (const auto& [i, beam] : live_) out.push_back(beam.tokens);
  return out;
}

void BeamSearch::Update(const std::vector<PositionLogprobs>& results) {
  ++steps_;
  std::vector<std::vector<Beam>> candidates(instances_.size());
  for (size_t k = 0; k < live_.size() && k < results.size(); ++k) {
    const auto& [i, beam] = live_[k];
    for (const auto& [token, lp] : results[k]) {  // token ids ascending
      Beam next;
      next.tokens = beam.tokens;
      next.tokens.push_back(token);
      next.logprobs = beam.logprobs;
      next.logprobs.push_back(results[k]);
      next.cum_logprob = beam.cum_logprob + lp.logprob;
      if (token == eos_ && !params_.ignore_eos) {
        next.finish_reason = "stop";
        instances_[i].completed.push_back(std::move(next));
      } else {
        candidates[i].push_back(std::move(next));
      }
    }
  }
  live_.clear();
  for (size_t i = 0; i < instances_.size(); ++i) {
    Rank(candidates[i]);
    if (candidates[i].size() > static_cast<size_t>(params_.beam_width)) candidates[i].resize(params_.beam_width);
    instances_[i].beams = std::move(candidates[i]);
  }
}

std::vector<std::vector<Beam>> BeamSearch::Finish() {
  std::vector<std::vector<Beam>> out;
  for (Instance& inst : instances_) {
    for (Beam& b : inst.beams) inst.completed.push_back(std::move(b));
    inst.beams.clear();
    Rank(inst.completed);
    if (inst.completed.size() > static_cast<size_t>(params_.beam_width)) inst.completed.resize(params_.beam_width);
    for (Beam& b : inst.completed) {
      if (!b.finish_reason) b.finish_reason = "length";
    }
    out.push_back(std::move(inst.completed));
  }
  return out;
}

}  // namespace inferd
