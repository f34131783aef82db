// inferd memory: loads the model onto its device with the engine flags given and prints
// where memory goes (weights, KV cache, activations, CUDA graphs, other) and what the KV
// cache holds, without serving anything.
#include <cstdio>

#include "backend/memory_plan.h"
#include "cli/common.h"
#include "engine/engine_core.h"

namespace inferd::cli {
namespace {

struct MemoryFlags {
  ModelFlags model;
  bool json = false;
};

void Run(MemoryFlags& f) {
  auto engine = EngineFromFlags(f.model);
  if (!engine.ok()) return Fail(engine.status());
  const EngineCore& core = (*engine)->core();
  const MemoryReport r = core.backend().memory();
  const int64_t tokens = core.kv_capacity_tokens();
  const double concurrency = core.max_concurrency();
  if (f.json) {
    nlohmann::json j = {{"device", r.device},
                        {"total_bytes", r.total},
                        {"budget_bytes", r.budget},
                        {"weights_bytes", r.weights},
                        {"packed_weights_bytes", r.packed_weights},
                        {"kv_cache_bytes", r.kv_cache},
                        {"activations_bytes", r.activations},
                        {"cuda_graphs_bytes", r.cuda_graphs},
                        {"other_bytes", r.other},
                        {"kv_cache_tokens", tokens},
                        {"kv_cache_dtype", KvDtypeName(core.kv_shape().dtype)},
                        {"max_model_len", core.max_model_len()},
                        {"kv_blocks_per_request", core.blocks_per_request(core.max_model_len())},
                        {"max_concurrency", concurrency}};
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("%s", FormatMemoryReport(r).c_str());
  std::printf("KV cache: %lld tokens (%lld blocks of %lld, %s, %s per token in every layer); maximum concurrency "
              "for %lld tokens per request: %.2fx\n",
              static_cast<long long>(tokens), static_cast<long long>(core.num_blocks()),
              static_cast<long long>(core.block_size()), KvDtypeName(core.kv_shape().dtype),
              FormatBytes(core.kv_shape().bytes_per_token() * core.kv_shape().num_groups()).c_str(), static_cast<long long>(core.max_model_len()),
              concurrency);
}

}  // namespace

void AddMemoryCommand(CLI::App& app) {
  auto f = std::make_shared<MemoryFlags>();
  CLI::App* cmd = app.add_subcommand("memory", "show how device memory is split: weights, KV cache, activations, "
                                               "CUDA graphs, other");
  f->model.Add(cmd, /*engine_flags=*/true);
  cmd->add_flag("--json", f->json, "print one JSON object");
  cmd->callback([f] { Run(*f); });
}

}  // namespace inferd::cli
