#include "engine/engine.h"

#include <fmt/format.h>

#include <unordered_map>

namespace inferd {

StatusOr<std::unique_ptr<Engine>> Engine::Create(std::unique_ptr<LoadedModel> model, const EngineOptions& options) {
  auto e = std::make_unique<Engine>();
  INFERD_ASSIGN_OR_RETURN(e->core_, EngineCore::Create(std::move(model), options));
  return e;
}

std::vector<StatusOr<RequestOutput>> Engine::Generate(std::vector<GenerateRequest> requests,
                                                      const FinishedFn& on_finished,
                                                      const ContinueFn& should_continue) {
  std::vector<StatusOr<RequestOutput>> results(requests.size(), Status(StatusCode::kInternal, "not run"));
  std::vector<std::string> user_ids(requests.size());
  std::unordered_map<std::string, size_t> index_of;
  for (size_t i = 0; i < requests.size(); ++i) {
    // Internal ids are unique even when callers repeat theirs; outputs carry the caller's id.
    user_ids[i] = requests[i].request_id.empty() ? std::to_string(i) : requests[i].request_id;
    requests[i].request_id = fmt::format("batch-{}", i);
    index_of[requests[i].request_id] = i;
    Status st = core_->AddRequest(std::move(requests[i]));
    if (!st.ok()) {
      results[i] = st;
      if (on_finished) on_finished(i, results[i]);
    }
  }
  bool aborted = false;
  while (core_->HasUnfinished()) {
    if (!aborted && should_continue && !should_continue()) {
      aborted = true;  // ids already finished (or never added) are ignored by AbortRequest
      for (const auto& [id, i] : index_of) core_->AbortRequest(id);
    }
    StepResult step = core_->Step();
    for (FinishedRequest& f : step.finished) {
      const size_t i = index_of.at(f.request_id);
      results[i] = std::move(f.output);
      if (results[i].ok()) results[i]->request_id = user_ids[i];
      if (on_finished) on_finished(i, results[i]);
    }
  }
  return results;
}

}  // namespace inferd
