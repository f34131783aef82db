// inferd bench serve: online serving benchmark against an OpenAI-compatible server, like
// `vllm bench serve --dataset-name random`: every request is input_len random tokens of the
// model's vocabulary decoded to text, streamed from POST /v1/completions with max_tokens =
// output_len and ignore_eos; arrivals are Poisson at --request-rate with at most
// --max-concurrency requests in flight. Prints vLLM's result block (or --json).
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <sstream>

#include "cli/bench_serve.h"
#include "cli/common.h"
#include "cli/progress.h"
#include "format/gguf.h"
#include "tokenizer/tokenizer.h"
#include "util/logging.h"

namespace inferd::cli {
namespace {

struct ServeBenchFlags {
  std::string base_url = "http://127.0.0.1:8000";
  std::string endpoint = "/v1/completions";
  std::string model, tokenizer, served_model_name;
  int64_t num_prompts = 1000, input_len = 1024, output_len = 128;
  double request_rate = std::numeric_limits<double>::infinity();
  double burstiness = 1.0;
  int64_t max_concurrency = 0;
  uint64_t seed = 0;
  double temperature = 0;
  bool ignore_eos = true;
  double timeout_s = 6 * 3600;
  std::string percentile_metrics = "ttft,tpot,itl", metric_percentiles = "99";
  std::string result_filename;
  bool json = false, disable_tqdm = false, skip_test_run = false;
};

// Only the tokenizer: a GGUF's metadata (mmap, no weights read) or a HF directory.
StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerOnly(const std::string& path) {
  if (std::filesystem::is_directory(path)) return Tokenizer::FromHfDir(path);
  INFERD_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> gguf, GgufFile::Open(path));
  return Tokenizer::FromGguf(*gguf);
}

// Invalid UTF-8 (a byte-level BPE token can be half a character) becomes U+FFFD, as a
// Python tokenizer's decode does; JSON bodies must be valid UTF-8.
std::string ValidUtf8(const std::string& s) {
  return nlohmann::json::parse(nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
      .get<std::string>();
}

struct Prompt {
  std::string text;
  int64_t len = 0;  // tokens of `text` as the tokenizer encodes it (no BOS)
};

// vLLM's RandomDataset: random (non-special) token ids, decoded; the text re-encoded and cut
// to input_len tokens, because N random tokens seldom decode to text of exactly N tokens.
Prompt RandomPrompt(std::mt19937_64& rng, const Tokenizer& tok, int64_t len) {
  std::uniform_int_distribution<int32_t> dist(0, tok.vocab_size() - 1);
  std::vector<int32_t> ids;
  for (int attempt = 0; attempt < 8; ++attempt) {
    while (static_cast<int64_t>(ids.size()) < len + 8 * attempt) {
      const int32_t id = dist(rng);
      if (!tok.IsSpecial(id)) ids.push_back(id);
    }
    std::vector<int32_t> re = tok.Encode(ValidUtf8(tok.Decode(ids, true)), false, false);
    if (static_cast<int64_t>(re.size()) >= len) {
      re.resize(len);
      Prompt p;
      p.text = ValidUtf8(tok.Decode(re, true));
      p.len = static_cast<int64_t>(tok.Encode(p.text, false, false).size());
      return p;
    }
  }
  Prompt p;
  p.text = ValidUtf8(tok.Decode(ids, true));
  p.len = static_cast<int64_t>(tok.Encode(p.text, false, false).size());
  return p;
}

std::vector<std::string> SplitCommas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

StatusOr<std::string> FirstModelId(const BaseUrl& url) {
  INFERD_ASSIGN_OR_RETURN(std::string body, HttpGet(url, "/v1/models"));
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("data") && j["data"].is_array() && !j["data"].empty() &&
      j["data"][0].is_object() && j["data"][0].contains("id") && j["data"][0]["id"].is_string()) {
    return j["data"][0]["id"].get<std::string>();
  }
  return InvalidArgument("GET /v1/models: no model id in the answer; pass --served-model-name");
}

void RunServeBench(ServeBenchFlags& f) {
  if (f.num_prompts <= 0 || f.input_len <= 0 || f.output_len <= 0) {
    return Fail(InvalidArgument("--num-prompts, --input-len and --output-len must be positive"));
  }
  if (f.max_concurrency < 0) return Fail(InvalidArgument("--max-concurrency must be positive"));
  if (!(f.request_rate > 0) || !(f.burstiness > 0)) {
    return Fail(InvalidArgument("--request-rate and --burstiness must be positive"));
  }
  std::vector<double> percentiles;
  for (const std::string& p : SplitCommas(f.metric_percentiles)) {
    char* end = nullptr;
    const double v = std::strtod(p.c_str(), &end);
    if (*end != '\0' || !(v >= 0 && v <= 100)) return Fail(InvalidArgument("bad --metric-percentiles: " + p));
    percentiles.push_back(v);
  }
  InitLogging();
  auto url = ParseBaseUrl(f.base_url);
  if (!url.ok()) return Fail(url.status());

  const std::string tok_path = f.tokenizer.empty() ? f.model : f.tokenizer;
  auto tok_or = LoadTokenizerOnly(tok_path);
  if (!tok_or.ok()) return Fail(tok_or.status());
  const Tokenizer& tok = **tok_or;

  std::string model_id = f.served_model_name;
  if (model_id.empty()) {
    auto id = FirstModelId(*url);
    if (!id.ok()) return Fail(id.status());
    model_id = *id;
  }

  std::mt19937_64 rng(f.seed);
  std::vector<std::string> bodies(f.num_prompts);
  std::vector<int64_t> prompt_lens(f.num_prompts);
  for (int64_t i = 0; i < f.num_prompts; ++i) {
    Prompt p = RandomPrompt(rng, tok, f.input_len);
    nlohmann::json body = {{"model", model_id},
                           {"prompt", std::move(p.text)},
                           {"temperature", f.temperature},
                           {"max_tokens", f.output_len},
                           {"stream", true},
                           {"stream_options", {{"include_usage", true}}}};
    if (f.ignore_eos) body["ignore_eos"] = true;
    bodies[i] = body.dump();
    prompt_lens[i] = p.len;
  }

  ServeLoadOptions opt;
  opt.url = *url;
  opt.endpoint = f.endpoint;
  opt.request_rate = f.request_rate;
  opt.burstiness = f.burstiness;
  opt.max_concurrency = f.max_concurrency;
  opt.seed = f.seed;
  opt.timeout_s = f.timeout_s;

  // As vLLM: one request first, so that a misconfigured server fails fast and clearly.
  if (!f.skip_test_run) {
    std::fprintf(stderr, "Starting initial single prompt test run...\n");
    ServeLoadOptions one = opt;
    one.max_concurrency = 0;
    std::vector<RequestResult> r = RunServeLoad(one, std::span(bodies).first(1), std::span(prompt_lens).first(1),
                                                nullptr, nullptr);
    if (!r[0].success) {
      return Fail(FailedPrecondition("initial test run failed (" + r[0].error +
                                     "); check --base-url, --endpoint and the server's log"));
    }
    std::fprintf(stderr, "Initial test run completed. Starting main benchmark run...\n");
  }
  std::fprintf(stderr, "Traffic request rate: %s, burstiness: %.2f, maximum request concurrency: %s\n",
               std::isfinite(f.request_rate) ? fmt::format("{}", f.request_rate).c_str() : "inf", f.burstiness,
               f.max_concurrency > 0 ? std::to_string(f.max_concurrency).c_str() : "None");

  ProgressBar bar("Requests", f.num_prompts, !f.disable_tqdm);
  int64_t done = 0, in_tokens = 0, out_tokens = 0, failed = 0;
  auto on_done = [&](size_t i, const RequestResult& r) {
    ++done;
    if (r.success) {
      in_tokens += r.prompt_len;
      out_tokens += r.output_tokens;
    } else if (++failed == 1) {
      std::fprintf(stderr, "\nrequest %zu failed: %s (further failures are counted, not printed)\n", i,
                   r.error.c_str());
    }
    bar.Update(done, in_tokens, out_tokens);
  };
  double duration = 0;
  std::vector<RequestResult> results = RunServeLoad(opt, bodies, prompt_lens, on_done, &duration);
  bar.Close();

  ServeRunInfo info;
  info.num_prompts = f.num_prompts;
  info.request_rate = f.request_rate;
  info.burstiness = f.burstiness;
  if (f.max_concurrency > 0) info.max_concurrency = f.max_concurrency;
  info.model_id = model_id;
  info.tokenizer = tok_path;
  info.percentile_metrics = SplitCommas(f.percentile_metrics);
  const ServeMetrics m = ComputeServeMetrics(results, duration, percentiles);
  if (f.json) {
    std::printf("%s\n", ServeResultJson(m, info).dump().c_str());
  } else {
    std::fputs(FormatServeResult(m, info).c_str(), stdout);
  }
  std::fflush(stdout);
  if (!f.result_filename.empty()) {
    std::FILE* out = std::fopen(f.result_filename.c_str(), "w");
    if (!out) return Fail(InvalidArgument("cannot write --result-filename " + f.result_filename));
    std::fprintf(out, "%s\n", ServeResultJson(m, info).dump(2).c_str());
    std::fclose(out);
  }
  if (m.completed == 0) return Fail(Internal("all requests failed"));
}

}  // namespace

void AddBenchServeCommand(CLI::App* bench) {
  auto f = std::make_shared<ServeBenchFlags>();
  f->model = DefaultModelPath();
  CLI::App* cmd = bench->add_subcommand("serve", "online serving benchmark against an OpenAI-compatible server");
  cmd->add_option("--base-url", f->base_url, "server, http://host:port[/prefix]")->capture_default_str();
  cmd->add_option("--endpoint", f->endpoint, "completions endpoint")->capture_default_str();
  cmd->add_option("--model,-m", f->model, "GGUF file or HF directory whose tokenizer makes the prompts")
      ->capture_default_str();
  cmd->add_option("--tokenizer", f->tokenizer, "tokenizer source, when not --model");
  cmd->add_option("--served-model-name", f->served_model_name,
                  "`model` of the requests (default: the first id of GET /v1/models)");
  cmd->add_option("--num-prompts", f->num_prompts, "number of requests")->capture_default_str();
  cmd->add_option("--input-len", f->input_len, "prompt tokens per request")->capture_default_str();
  cmd->add_option("--output-len", f->output_len, "generated tokens per request (max_tokens)")->capture_default_str();
  cmd->add_option("--request-rate", f->request_rate, "requests per second, Poisson arrivals (default inf: all at once)");
  cmd->add_option("--burstiness", f->burstiness, "gamma shape of the arrival gaps (1 = Poisson)")
      ->capture_default_str();
  cmd->add_option("--max-concurrency", f->max_concurrency, "requests in flight at most (default: no cap)");
  cmd->add_option("--seed", f->seed, "seed of the prompts and arrival times")->capture_default_str();
  cmd->add_option("--temperature", f->temperature, "sampling temperature of the requests")->capture_default_str();
  cmd->add_flag("--ignore-eos,!--no-ignore-eos", f->ignore_eos, "send ignore_eos (default on)");
  cmd->add_option("--timeout", f->timeout_s, "seconds without progress before a request fails")
      ->capture_default_str();
  cmd->add_option("--percentile-metrics", f->percentile_metrics, "sections printed: ttft,tpot,itl,e2el")
      ->capture_default_str();
  cmd->add_option("--metric-percentiles", f->metric_percentiles, "percentiles reported, e.g. 50,90,99")
      ->capture_default_str();
  cmd->add_flag("--skip-test-run", f->skip_test_run, "do not send one request before the run");
  cmd->add_flag("--disable-tqdm", f->disable_tqdm, "no progress line on stderr");
  cmd->add_option("--result-filename", f->result_filename, "also write the JSON result to this file");
  cmd->add_flag("--json", f->json, "print the result as one JSON object (vLLM's keys)");
  cmd->callback([f] { RunServeBench(*f); });
}

}  // namespace inferd::cli
