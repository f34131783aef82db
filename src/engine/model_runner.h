// ModelRunner: the device side of a step (issue 19's split, vLLM V1's GPUModelRunner). It
// owns the backend and a persistent copy of every running request's KV block tables, kept
// up to date from the scheduler's per-step updates (BlockTableUpdate) — the engine never
// reads the KV manager's tables. Prepare lays out one flat batch from a SchedulerOutput:
// each request's new tokens, then its speculative tokens, with positions and block tables,
// and the logits rows the step needs (prompt-logprob rows, the sampling row, and one row per
// draft to verify). Execute runs the backend on it.
// The backend is injected, so the scheduler and runner are testable with a fake one.
// Thread-safety: none; the engine thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/backend.h"
#include "ops/batch.h"
#include "sched/scheduler.h"

namespace inferd {

// What one logits row of the step is for.
struct LogitsRowUse {
  size_t scheduled = 0;     // index into SchedulerOutput::scheduled
  int64_t prompt_pos = -1;  // >= 0: the row after prompt token prompt_pos (prompt_logprobs)
  int spec_index = 0;       // sampling rows: 0 after the request's own tokens, i after i drafts
  bool sampling() const { return prompt_pos < 0; }
};

class ModelRunner {
 public:
  ModelRunner(std::unique_ptr<Backend> backend, int64_t num_kv_groups)
      : backend_(std::move(backend)), num_groups_(num_kv_groups) {}

  // Applies out's table updates (dropping freed requests' tables first) and lays out the
  // batch. prompt_rows_from[i]: for scheduled request i, the first prompt position whose row
  // is wanted for prompt_logprobs, or -1 for none. uses[j] describes batch->logits_rows[j].
  void Prepare(const SchedulerOutput& out, std::span<const int64_t> prompt_rows_from, ForwardBatch* batch,
               std::vector<LogitsRowUse>* uses);

  // Runs the forward; with device rows, samples them there (Backend::ForwardSample).
  Status Execute(const ForwardBatch& batch, float* logits, std::span<const DeviceSample> device_rows,
                 std::span<SampleResult> device_results, const std::function<void()>& inputs_ready);

  // Teacher-forced logits of `ids` (one sequence whose tables `tables` hold room for every
  // token), in chunks of `chunk` rows: out[i] = logits after ids[0..i].
  Status Score(std::span<const int32_t> ids, const std::vector<BlockTableUpdate>& tables, int64_t chunk,
               int64_t vocab, float* out);

  Backend& backend() { return *backend_; }
  const Backend& backend() const { return *backend_; }

 private:
  using Tables = std::vector<std::vector<int32_t>>;  // per KV group
  static void Apply(Tables& t, const std::vector<BlockTableUpdate>& updates);

  std::unique_ptr<Backend> backend_;
  int64_t num_groups_;
  std::unordered_map<std::string, Tables> tables_;
};

}  // namespace inferd
