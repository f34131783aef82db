// inferd bench throughput: offline throughput with random prompts (like `vllm bench
// throughput --dataset-name random`): every request has input_len random token ids and
// generates exactly output_len tokens (ignore_eos).
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <random>

#include "cli/bench_serve.h"
#include "cli/common.h"
#include "cli/progress.h"

namespace inferd::cli {
namespace {

struct ThroughputFlags {
  ModelFlags model;
  int64_t num_prompts = 64, input_len = 128, output_len = 128;
  uint64_t dataset_seed = 0;
  bool json = false;
};

// Random prompts avoid special tokens so that no prompt contains an end-of-turn marker.
std::vector<int32_t> RandomPrompt(std::mt19937_64& rng, const Tokenizer& tok, int64_t vocab, int64_t len) {
  std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(std::min<int64_t>(vocab, tok.vocab_size()) - 1));
  std::vector<int32_t> ids;
  ids.reserve(len);
  while (static_cast<int64_t>(ids.size()) < len) {
    const int32_t id = dist(rng);
    if (!tok.IsSpecial(id)) ids.push_back(id);
  }
  return ids;
}

void RunThroughput(ThroughputFlags& f) {
  if (f.num_prompts <= 0 || f.input_len <= 0 || f.output_len <= 0) {
    return Fail(InvalidArgument("--num-prompts, --input-len and --output-len must be positive"));
  }
  if (f.model.engine.max_model_len == 0) f.model.engine.max_model_len = f.input_len + f.output_len;
  auto engine_or = EngineFromFlags(f.model);
  if (!engine_or.ok()) return Fail(engine_or.status());
  Engine& engine = **engine_or;
  std::mt19937_64 rng(f.dataset_seed);
  std::vector<GenerateRequest> requests(f.num_prompts);
  for (auto& r : requests) {
    r.prompt_token_ids = RandomPrompt(rng, engine.tokenizer(), engine.vocab_size(), f.input_len);
    r.params.temperature = 1.0f;
    r.params.ignore_eos = true;
    r.params.max_tokens = static_cast<int>(f.output_len);
  }
  ProgressBar bar("Processed prompts", f.num_prompts, !f.json);
  int64_t done = 0, in_tokens = 0, out_tokens = 0, failed = 0;
  const auto t0 = std::chrono::steady_clock::now();
  engine.Generate(std::move(requests), [&](size_t, const StatusOr<RequestOutput>& r) {
    ++done;
    if (!r.ok()) {
      ++failed;
      return;
    }
    in_tokens += static_cast<int64_t>(r->prompt_token_ids.size());
    for (const auto& o : r->outputs) out_tokens += static_cast<int64_t>(o.token_ids.size());
    bar.Update(done, in_tokens, out_tokens);
  });
  bar.Close();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (failed > 0) return Fail(Internal(fmt::format("{} of {} requests failed", failed, f.num_prompts)));
  const EngineCounters c = engine.core().counters();
  nlohmann::json j = {{"elapsed_time", secs},
                      {"num_requests", f.num_prompts},
                      {"total_num_tokens", in_tokens + out_tokens},
                      {"requests_per_s", f.num_prompts / secs},
                      {"total_tokens_per_s", (in_tokens + out_tokens) / secs},
                      {"output_tokens_per_s", out_tokens / secs},
                      {"num_preemptions", c.num_preemptions}};
  if (f.json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("Throughput: %.2f requests/s, %.2f total tokens/s, %.2f output tokens/s (%lld requests, %lld in / %lld "
                "out, %.2f s, %lld preemptions)\n",
                f.num_prompts / secs, (in_tokens + out_tokens) / secs, out_tokens / secs,
                static_cast<long long>(f.num_prompts), static_cast<long long>(f.input_len),
                static_cast<long long>(f.output_len), secs, static_cast<long long>(c.num_preemptions));
  }
}

}  // namespace

void AddBenchCommands(CLI::App& app) {
  CLI::App* bench = app.add_subcommand("bench", "benchmarks");
  bench->require_subcommand(1);
  auto t = std::make_shared<ThroughputFlags>();
  CLI::App* cmd = bench->add_subcommand("throughput", "offline throughput with random prompts");
  t->model.Add(cmd, /*engine_flags=*/true);
  cmd->add_option("--num-prompts", t->num_prompts, "number of requests")->capture_default_str();
  cmd->add_option("--input-len", t->input_len, "prompt tokens per request")->capture_default_str();
  cmd->add_option("--output-len", t->output_len, "generated tokens per request")->capture_default_str();
  cmd->add_option("--dataset-seed", t->dataset_seed, "seed of the random prompts")->capture_default_str();
  cmd->add_flag("--json", t->json, "print {requests_per_s, total_tokens_per_s, output_tokens_per_s, ...}");
  cmd->callback([t] { RunThroughput(*t); });
  AddBenchServeCommand(bench);
}

}  // namespace inferd::cli
