#include "server/beam_run.h"

#include <fmt/format.h>

namespace inferd::server {

BeamRun::BeamRun(AsyncEngine& engine, Post post, std::string id_prefix, std::vector<std::vector<int32_t>> prompts,
                 BeamSearchParams params, int priority, Done done)
    : engine_(engine),
      post_(std::move(post)),
      id_prefix_(std::move(id_prefix)),
      prompts_(prompts),
      search_(std::move(prompts), params, engine.engine().tokenizer().eos_id(), engine.engine().max_model_len()),
      priority_(priority),
      done_(std::move(done)),
      tokenizer_(engine.engine().tokenizer()) {}

void BeamRun::Start() { Step(); }

void BeamRun::Abort() {
  if (finished_ || aborted_) return;
  aborted_ = true;
  for (const auto& s : streams_) engine_.Abort(s->request_id());
}

void BeamRun::Step() {
  if (aborted_) return Complete(StatusOr<std::vector<RequestOutput>>(std::vector<RequestOutput>{}));
  std::vector<std::vector<int32_t>> beams = search_.NextStep();
  if (beams.empty()) {
    std::vector<RequestOutput> outs;
    std::vector<std::vector<Beam>> best = search_.Finish();
    const int32_t eos = tokenizer_.eos_id();
    for (size_t p = 0; p < best.size(); ++p) {
      RequestOutput ro;
      ro.request_id = fmt::format("{}-{}", id_prefix_, p);
      ro.prompt_token_ids = prompts_[p];
      ro.finished = true;
      for (size_t i = 0; i < best[p].size(); ++i) {
        const Beam& b = best[p][i];
        CompletionOutput o;
        o.index = static_cast<int>(i);
        o.token_ids.assign(b.tokens.begin() + static_cast<std::ptrdiff_t>(prompts_[p].size()), b.tokens.end());
        std::span<const int32_t> shown(o.token_ids);
        if (*b.finish_reason == "stop" && !shown.empty() && shown.back() == eos) shown = shown.first(shown.size() - 1);
        o.text = tokenizer_.Decode(shown, /*skip_special=*/true);
        o.cumulative_logprob = b.cum_logprob;
        o.finish_reason = b.finish_reason;
        ro.outputs.push_back(std::move(o));
      }
      outs.push_back(std::move(ro));
    }
    return Complete(std::move(outs));
  }
  streams_.clear();
  results_.assign(beams.size(), {});
  num_final_ = 0;
  const SamplingParams params = search_.StepParams();
  std::weak_ptr<BeamRun> weak = weak_from_this();
  for (size_t k = 0; k < beams.size(); ++k) {
    GenerateRequest er;
    er.request_id = fmt::format("{}-s{}-b{}", id_prefix_, search_.steps_done(), k);
    er.prompt_token_ids = std::move(beams[k]);
    er.params = params;
    er.priority = priority_;
    StatusOr<std::shared_ptr<RequestStream>> s = engine_.AddRequest(std::move(er));
    if (!s.ok()) {
      for (const auto& started : streams_) engine_.Abort(started->request_id());
      return Complete(s.status());
    }
    streams_.push_back(*s);
  }
  for (const auto& s : streams_) {
    s->SetNotify([post = post_, weak] {
      post([weak] {
        if (auto self = weak.lock()) self->Collect();
      });
    });
  }
}

void BeamRun::Collect() {
  if (finished_) return;
  for (size_t k = 0; k < streams_.size(); ++k) {
    RequestStream::Item item;
    while (streams_[k]->TryNext(&item)) {
      if (!item.final) continue;
      ++num_final_;
      const StatusOr<RequestOutput>& f = *item.final;
      if (!f.ok()) {
        if (error_.ok()) error_ = f.status();
        continue;
      }
      const CompletionOutput& o = f->outputs.at(0);
      if (o.finish_reason == "abort" || !o.logprobs || o.logprobs->empty()) {
        aborted_ = true;
        continue;
      }
      results_[k] = (*o.logprobs)[0];
    }
  }
  if (num_final_ < streams_.size()) return;
  streams_.clear();
  if (!error_.ok()) return Complete(error_);
  if (aborted_) return Step();  // reports the abort
  search_.Update(results_);
  Step();
}

void BeamRun::Complete(StatusOr<std::vector<RequestOutput>> result) {
  if (finished_) return;
  finished_ = true;
  if (result.ok() && aborted_) {
    // vLLM ends an aborted request with finish_reason "abort" on each output.
    std::vector<RequestOutput> outs;
    for (size_t p = 0; p < prompts_.size(); ++p) {
      RequestOutput ro;
      ro.request_id = fmt::format("{}-{}", id_prefix_, p);
      ro.prompt_token_ids = prompts_[p];
      ro.finished = true;
      CompletionOutput o;
      o.finish_reason = "abort";
      ro.outputs.push_back(std::move(o));
      outs.push_back(std::move(ro));
    }
    result = std::move(outs);
  }
  Done done = std::move(done_);
  done(std::move(result));
}

}  // namespace inferd::server
