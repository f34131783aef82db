#include "engine/model_runner.h"

#include <algorithm>

#include "util/logging.h"

namespace inferd {

void ModelRunner::Apply(Tables& t, const std::vector<BlockTableUpdate>& updates) {
  t.resize(updates.size());
  for (size_t g = 0; g < updates.size(); ++g) {
    const BlockTableUpdate& u = updates[g];
    if (u.keep > static_cast<int64_t>(t[g].size())) {
      FatalInvariant("ModelRunner", fmt::format("a block table update keeps {} entries of {}", u.keep, t[g].size()));
    }
    t[g].resize(static_cast<size_t>(u.keep));
    t[g].insert(t[g].end(), u.append.begin(), u.append.end());
  }
}

void ModelRunner::Prepare(const SchedulerOutput& out, std::span<const int64_t> prompt_rows_from, ForwardBatch* batch,
                          std::vector<LogitsRowUse>* uses) {
  for (const std::string& id : out.freed_ids) tables_.erase(id);
  *batch = ForwardBatch();
  uses->clear();
  for (size_t i = 0; i < out.scheduled.size(); ++i) {
    const ScheduledRequest& sr = out.scheduled[i];
    const Request& q = *sr.request;
    Tables& t = tables_[q.id];
    Apply(t, sr.block_tables);
    const int64_t num_spec = static_cast<int64_t>(sr.spec_tokens.size());
    const int64_t num_own = sr.num_new_tokens - num_spec;  // rows of q.tokens
    const int64_t row0 = batch->AddSeq(sr.num_new_tokens, q.num_computed_tokens + sr.num_new_tokens, num_groups_,
                                       [&t](int64_t g) { return t[g].data(); });
    batch->AddRows(std::span<const int32_t>(q.tokens).subspan(static_cast<size_t>(q.num_computed_tokens),
                                                              static_cast<size_t>(num_own)),
                   q.num_computed_tokens);
    const int64_t prompt_from = i < prompt_rows_from.size() ? prompt_rows_from[i] : -1;
    for (int64_t r = 0; r < num_own; ++r) {
      const int64_t pos = q.num_computed_tokens + r;
      // prompt_logprobs: row `pos` scores prompt token pos + 1.
      if (prompt_from >= 0 && pos >= prompt_from && pos + 1 < q.num_prompt_tokens) {
        batch->logits_rows.push_back(row0 + r);
        uses->push_back({i, pos, 0});
      }
    }
    if (q.num_computed_tokens + num_own != q.num_tokens()) continue;  // a prefill chunk short of the end
    batch->logits_rows.push_back(row0 + num_own - 1);
    uses->push_back({i, -1, 0});
    batch->AddRows(sr.spec_tokens, q.num_tokens());  // drafts continue the sequence
    for (int64_t j = 0; j < num_spec; ++j) {
      batch->logits_rows.push_back(row0 + num_own + j);
      uses->push_back({i, -1, static_cast<int>(j + 1)});
    }
  }
}

Status ModelRunner::Execute(const ForwardBatch& batch, float* logits, std::span<const DeviceSample> device_rows,
                            std::span<SampleResult> device_results, const std::function<void()>& inputs_ready) {
  if (device_rows.empty()) {
    Status st = backend_->Forward(batch, logits);
    if (inputs_ready) inputs_ready();
    return st;
  }
  return backend_->ForwardSample(batch, device_rows, logits, device_results, inputs_ready);
}

Status ModelRunner::Score(std::span<const int32_t> ids, const std::vector<BlockTableUpdate>& tables, int64_t chunk,
                          int64_t vocab, float* out) {
  Tables t;
  Apply(t, tables);
  const int64_t n = static_cast<int64_t>(ids.size());
  Status st;
  for (int64_t begin = 0; begin < n && st.ok(); begin += chunk) {
    const int64_t count = std::min(chunk, n - begin);
    ForwardBatch batch;
    batch.AddSeq(count, begin + count, num_groups_, [&t](int64_t g) { return t[g].data(); });
    batch.AddRows(ids.subspan(static_cast<size_t>(begin), static_cast<size_t>(count)), begin);
    for (int64_t i = 0; i < count; ++i) batch.logits_rows.push_back(i);
    st = backend_->Forward(batch, out + begin * vocab);
  }
  return st;
}

}  // namespace inferd
