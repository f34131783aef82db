// inferd bench throughput / latency: offline throughput with random prompts (like `vllm bench
// throughput --dataset-name random`): every request has input_len random token ids and
// generates exactly output_len tokens (ignore_eos).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <set>
#include <cstdio>
#include <random>

#include "cli/bench_serve.h"
#include "cli/common.h"
#include "cli/progress.h"

namespace inferd::cli {
namespace {

// Speculative decoding's numbers (vLLM's names): the share of draft tokens accepted, the
// mean tokens per verifying step (1 + accepted per draft), and the acceptance rate at each
// draft position. Empty without speculation.
nlohmann::json SpecStats(const EngineCounters& c) {
  if (c.spec_num_drafts == 0) return nlohmann::json::object();
  nlohmann::json per_pos = nlohmann::json::array();
  for (int64_t a : c.spec_accepted_per_pos) per_pos.push_back(static_cast<double>(a) / c.spec_num_drafts);
  return {{"spec_num_drafts", c.spec_num_drafts},
          {"spec_num_draft_tokens", c.spec_num_draft_tokens},
          {"spec_num_accepted_tokens", c.spec_num_accepted_tokens},
          {"spec_acceptance_rate", static_cast<double>(c.spec_num_accepted_tokens) / c.spec_num_draft_tokens},
          {"spec_mean_acceptance_length", 1.0 + static_cast<double>(c.spec_num_accepted_tokens) / c.spec_num_drafts},
          {"spec_acceptance_rate_per_position", per_pos}};
}

void PrintSpecStats(const nlohmann::json& s) {
  if (s.empty()) return;
  std::printf("Speculative decoding: %lld drafts, %lld draft tokens, %lld accepted (acceptance rate %.3f, mean "
              "acceptance length %.2f), per position %s\n",
              static_cast<long long>(s["spec_num_drafts"].get<int64_t>()),
              static_cast<long long>(s["spec_num_draft_tokens"].get<int64_t>()),
              static_cast<long long>(s["spec_num_accepted_tokens"].get<int64_t>()),
              s["spec_acceptance_rate"].get<double>(), s["spec_mean_acceptance_length"].get<double>(),
              s["spec_acceptance_rate_per_position"].dump().c_str());
}

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
  const EngineCounters c = engine.counters();
  nlohmann::json j = {{"elapsed_time", secs},
                      {"num_requests", f.num_prompts},
                      {"total_num_tokens", in_tokens + out_tokens},
                      {"requests_per_s", f.num_prompts / secs},
                      {"total_tokens_per_s", (in_tokens + out_tokens) / secs},
                      {"output_tokens_per_s", out_tokens / secs},
                      {"num_preemptions", c.num_preemptions}};
  const nlohmann::json spec = SpecStats(c);
  j.update(spec);
  if (f.json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("Throughput: %.2f requests/s, %.2f total tokens/s, %.2f output tokens/s (%lld requests, %lld in / %lld "
                "out, %.2f s, %lld preemptions)\n",
                f.num_prompts / secs, (in_tokens + out_tokens) / secs, out_tokens / secs,
                static_cast<long long>(f.num_prompts), static_cast<long long>(f.input_len),
                static_cast<long long>(f.output_len), secs, static_cast<long long>(c.num_preemptions));
    PrintSpecStats(spec);
  }
}

struct LatencyFlags {
  ModelFlags model;
  int64_t input_len = 32, output_len = 128, batch_size = 8;
  int num_iters = 3, num_iters_warmup = 1;
  uint64_t dataset_seed = 0;
  bool json = false;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0.0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

// inferd bench latency: one batch of batch_size random prompts, run to completion, timed
// as prefill (until every request has its first token) and decode (the rest), like
// `vllm bench latency` plus the split that CPU comparisons with llama-bench need.
void RunLatency(LatencyFlags& f) {
  if (f.batch_size <= 0 || f.input_len <= 0 || f.output_len <= 1 || f.num_iters <= 0) {
    return Fail(InvalidArgument("--batch-size, --input-len, --num-iters must be positive and --output-len above 1"));
  }
  if (f.model.engine.max_model_len == 0) f.model.engine.max_model_len = f.input_len + f.output_len;
  f.model.engine.max_num_seqs = std::max(f.model.engine.max_num_seqs, f.batch_size);
  f.model.engine.enable_prefix_caching = false;  // every iteration computes its prompts
  auto engine_or = EngineFromFlags(f.model);
  if (!engine_or.ok()) return Fail(engine_or.status());
  Engine& engine = **engine_or;
  std::mt19937_64 rng(f.dataset_seed);
  std::vector<double> latencies, prefill_rates, decode_rates;
  for (int it = 0; it < f.num_iters_warmup + f.num_iters; ++it) {
    for (int64_t b = 0; b < f.batch_size; ++b) {
      GenerateRequest r;
      r.request_id = fmt::format("lat-{}-{}", it, b);
      r.prompt_token_ids = RandomPrompt(rng, engine.tokenizer(), engine.vocab_size(), f.input_len);
      r.params.temperature = 0.0f;
      r.params.ignore_eos = true;
      r.params.max_tokens = static_cast<int>(f.output_len);
      if (Status st = engine.AddRequest(std::move(r)); !st.ok()) return Fail(st);
    }
    std::set<std::string> started;
    const auto t0 = std::chrono::steady_clock::now();
    auto t_prefill = t0;
    while (engine.HasUnfinishedRequests()) {
      StepResult res = engine.Step();
      for (const OutputDelta& d : res.deltas) {
        if (!d.new_token_ids.empty() && started.insert(d.request_id).second &&
            static_cast<int64_t>(started.size()) == f.batch_size) {
          t_prefill = std::chrono::steady_clock::now();
        }
      }
      for (const FinishedRequest& fr : res.finished) {
        if (!fr.output.ok()) return Fail(fr.output.status());
      }
    }
    const auto t1 = std::chrono::steady_clock::now();
    if (it < f.num_iters_warmup) continue;
    const double total = std::chrono::duration<double>(t1 - t0).count();
    const double prefill = std::chrono::duration<double>(t_prefill - t0).count();
    latencies.push_back(total);
    prefill_rates.push_back(f.batch_size * f.input_len / prefill);
    decode_rates.push_back(f.batch_size * (f.output_len - 1) / (total - prefill));
  }
  const double avg = std::accumulate(latencies.begin(), latencies.end(), 0.0) / latencies.size();
  nlohmann::json j = {{"avg_latency", avg},
                      {"latencies", latencies},
                      {"batch_size", f.batch_size},
                      {"input_len", f.input_len},
                      {"output_len", f.output_len},
                      {"prefill_tokens_per_s", Median(prefill_rates)},
                      {"decode_tokens_per_s", Median(decode_rates)}};
  const nlohmann::json spec = SpecStats(engine.counters());
  j.update(spec);
  if (f.json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("Avg latency: %.4f seconds (batch %lld, %lld in / %lld out, %d iterations)\n", avg,
                static_cast<long long>(f.batch_size), static_cast<long long>(f.input_len),
                static_cast<long long>(f.output_len), f.num_iters);
    std::printf("Prefill: %.1f tokens/s, decode: %.1f tokens/s (medians)\n", Median(prefill_rates),
                Median(decode_rates));
    PrintSpecStats(spec);
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
  auto l = std::make_shared<LatencyFlags>();
  CLI::App* lat = bench->add_subcommand("latency", "latency of one batch: prefill and decode tokens/s");
  l->model.Add(lat, /*engine_flags=*/true);
  lat->add_option("--input-len", l->input_len, "prompt tokens per request")->capture_default_str();
  lat->add_option("--output-len", l->output_len, "generated tokens per request")->capture_default_str();
  lat->add_option("--batch-size", l->batch_size, "requests in the batch")->capture_default_str();
  lat->add_option("--num-iters", l->num_iters, "timed iterations")->capture_default_str();
  lat->add_option("--num-iters-warmup", l->num_iters_warmup, "untimed iterations first")->capture_default_str();
  lat->add_option("--dataset-seed", l->dataset_seed, "seed of the random prompts")->capture_default_str();
  lat->add_flag("--json", l->json, "print {prefill_tokens_per_s, decode_tokens_per_s, avg_latency, ...}");
  lat->callback([l] { RunLatency(*l); });
  AddBenchServeCommand(bench);
}

}  // namespace inferd::cli
