#include "engine/output_processor.h"

#include <algorithm>
#include <chrono>

#include "sample/stop_checker.h"
#include "util/logging.h"

namespace inferd {

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

PositionLogprobs MakePositionLogprobs(const Tokenizer& tok, int32_t chosen, float chosen_lp, int chosen_rank,
                                      const std::vector<std::pair<int32_t, float>>& top) {
  PositionLogprobs pl;
  pl[chosen] = Logprob{chosen_lp, chosen_rank, tok.TokenToPiece(chosen, false)};
  for (size_t k = 0; k < top.size(); ++k) {
    pl.emplace(top[k].first, Logprob{top[k].second, static_cast<int>(k) + 1, tok.TokenToPiece(top[k].first, false)});
  }
  return pl;
}

void OutputProcessor::EmitDelta(Sequence& s, std::vector<int32_t> new_ids, bool finished, StepResult& result) {
  // Hold back bytes that could still become a stop string, unless the sequence ended.
  s.emitted_text = std::min(s.emitted_text, s.out.text.size());
  size_t ready = s.out.text.size();
  if (!finished) ready -= std::min(ready, StopStringHoldback(s.req.params, s.out.text));
  OutputDelta d;
  d.request_id = s.group->request.request_id;
  d.index = s.index;
  if (s.out.logprobs && !new_ids.empty() && s.out.logprobs->size() >= new_ids.size()) {
    d.new_logprobs.assign(s.out.logprobs->end() - static_cast<std::ptrdiff_t>(new_ids.size()), s.out.logprobs->end());
  }
  d.new_token_ids = std::move(new_ids);
  if (ready > s.emitted_text) {
    d.new_text = s.out.text.substr(s.emitted_text, ready - s.emitted_text);
    s.emitted_text = ready;
  }
  if (finished) d.finish_reason = s.out.finish_reason;
  // A sequence's deltas of one step (several tokens of a speculative step, or a token and
  // the end) merge into one, in order.
  if (!result.deltas.empty()) {
    OutputDelta& prev = result.deltas.back();
    if (prev.request_id == d.request_id && prev.index == d.index && !prev.finish_reason) {
      prev.new_text += d.new_text;
      prev.new_token_ids.insert(prev.new_token_ids.end(), d.new_token_ids.begin(), d.new_token_ids.end());
      prev.new_logprobs.insert(prev.new_logprobs.end(), d.new_logprobs.begin(), d.new_logprobs.end());
      prev.finish_reason = d.finish_reason;
      return;
    }
  }
  result.deltas.push_back(std::move(d));
}

void OutputProcessor::Finish(Sequence& s, RequestStatus status, const char* reason, StepResult& result) {
  if (s.finished) return;
  scheduler_.FinishRequest(&s.req, status);
  s.finished = true;
  s.out.finish_reason = reason;
  EmitDelta(s, {}, /*finished=*/true, result);
  Group& g = *s.group;
  if (s.index == 0 && s.req.params.prompt_logprobs) g.output.prompt_logprobs = std::move(s.prompt_logprobs);
  if (s.first_token_time > 0 &&
      (g.output.metrics.first_token_time == 0 || s.first_token_time < g.output.metrics.first_token_time)) {
    g.output.metrics.first_token_time = s.first_token_time;
  }
  g.output.num_cached_tokens =
      std::max<int>(g.output.num_cached_tokens, static_cast<int>(std::max<int64_t>(0, s.req.num_cached_tokens)));
  g.output.outputs[s.index] = std::move(s.out);
  --g.remaining;
  CompleteGroupIfDone(g, result);
}

void OutputProcessor::CompleteGroupIfDone(Group& g, StepResult& result) {
  if (g.remaining > 0 || g.done) return;
  g.done = true;
  g.output.finished = true;
  g.output.metrics.finished_time = g.output.metrics.last_token_time = NowSeconds();
  ++counters_.requests_finished;
  result.finished.push_back({g.request.request_id, std::move(g.output)});
}

bool OutputProcessor::Append(Sequence& s, const SampleResult& r, StepResult& result) {
  const SamplingParams& params = s.req.params;
  if (s.constrained() && !s.grammar->Accept(r.token)) {
    // The sampler honours the mask, so this means the grammar allowed no token at all.
    INFERD_LOG_ERROR("request {}: the structured-output grammar allows no next token", s.req.id);
    Finish(s, RequestStatus::kFinishedError, "error", result);
    return false;
  }
  s.req.tokens.push_back(r.token);
  ++counters_.generation_tokens;
  if (s.first_token_time == 0) s.first_token_time = NowSeconds();
  CompletionOutput& out = s.out;
  out.token_ids.push_back(r.token);
  out.cumulative_logprob += r.logprob;
  if (out.logprobs) out.logprobs->push_back(MakePositionLogprobs(tok_, r.token, r.logprob, r.rank, r.top_logprobs));

  const int64_t num_out = static_cast<int64_t>(out.token_ids.size());
  StopDecision d = CheckStopToken(params, r.token, tok_.IsEog(r.token), num_out, s.req.num_tokens(), max_model_len_);
  if (!d.stopped && s.constrained() && s.grammar->terminated()) {  // the grammar took its stop token
    d.stopped = true;
    d.finish_reason = "stop";
  }
  if (!d.stopped && num_out >= s.req.max_tokens) {
    d.stopped = true;
    d.finish_reason = "length";
  }
  // The text of a token that stops generation (EOS, stop_token_ids) is not part of the output.
  const bool stopped_by_token = d.stopped && d.finish_reason && std::string(d.finish_reason) == "stop";
  const size_t text_before = out.text.size();
  if (!stopped_by_token) {
    std::string delta = s.detok->Push(r.token);
    if (d.stopped) delta += s.detok->Flush();
    out.text += delta;
    if (!params.stop.empty()) {
      StopDecision sd = CheckStopStrings(params, out.text, delta.size());
      if (sd.stopped) {
        d = sd;
        if (sd.truncate_text_to) out.text.resize(std::min(out.text.size(), *sd.truncate_text_to));
      }
    }
  } else {
    out.text += s.detok->Flush();
  }
  if (s.grammar && !s.grammar_on) {
    // The grammar starts with the next token once the marker has appeared (it may have been
    // completed by this token's text).
    const std::string& marker = s.group->request.structured_after;
    const size_t from = text_before >= marker.size() ? text_before - marker.size() + 1 : 0;
    s.grammar_on = out.text.find(marker, from) != std::string::npos;
  }
  EmitDelta(s, {r.token}, /*finished=*/false, result);
  if (d.stopped) {
    out.stop_reason = d.stop_reason;
    const bool length = d.finish_reason && std::string(d.finish_reason) == "length";
    Finish(s, length ? RequestStatus::kFinishedLength : RequestStatus::kFinishedStopped, length ? "length" : "stop",
           result);
    return false;
  }
  if (s.constrained()) s.grammar->FinishWithin(s.req.max_tokens - num_out, tok_);
  return true;
}

}  // namespace inferd
