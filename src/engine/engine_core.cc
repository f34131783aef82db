#include "engine/engine_core.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <cstdlib>

#include "sample/sampler.h"
#include "structured/grammar_cache.h"
#include "sample/stop_checker.h"
#include "util/logging.h"
#include "util/thread_pool.h"

namespace inferd {
namespace {

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

uint64_t MixSeed(uint64_t a, uint64_t b) {
  uint64_t x = a ^ (b + 0x9E3779B97F4A7C15ull + (a << 6) + (a >> 2));
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
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

}  // namespace

// One sampled continuation; the scheduler's unit of work.
struct EngineCore::Sequence {
  Request req;
  Group* group = nullptr;
  int index = 0;
  std::unique_ptr<IncrementalDetokenizer> detok;
  CompletionOutput out;
  size_t emitted_text = 0;  // bytes of out.text already sent as deltas
  std::vector<std::optional<PositionLogprobs>> prompt_logprobs;
  double first_token_time = 0;
  bool finished = false;
  std::unique_ptr<structured::GrammarState> grammar;  // structured outputs: the next-token mask
  // Whether the grammar applies yet: false until GenerateRequest::structured_after appears in
  // the output (the end of the reasoning).
  bool grammar_on = true;
  // The grammar constrains this sequence's next token.
  bool constrained() const { return grammar && grammar_on; }
};

struct EngineCore::Group {
  GenerateRequest request;
  RequestOutput output;
  std::vector<std::unique_ptr<Sequence>> seqs;
  int remaining = 0;
  bool done = false;
};

EngineCore::~EngineCore() = default;

namespace {
bool AllWeightsFp32(const ModelWeights& w) {
  bool all = w.output.type == GgmlType::kF32;
  for (const LayerWeights& l : w.layers)
    for (const Matrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) all = all && m->type == GgmlType::kF32;
  return all;
}
}  // namespace

StatusOr<std::unique_ptr<EngineCore>> EngineCore::Create(std::unique_ptr<LoadedModel> model,
                                                         const EngineOptions& options) {
  std::unique_ptr<EngineCore> e(new EngineCore());
  e->options_ = options;
  const ModelConfig& c = model->config;
  if (!model->tokenizer) return InvalidArgument("the engine needs a tokenizer: pass --tokenizer PATH");
  if (options.block_size <= 0 || options.block_size > 1024) {
    return InvalidArgument(fmt::format("--block-size must be in [1, 1024], got {}", options.block_size));
  }
  if (options.max_num_batched_tokens <= 0) return InvalidArgument("--max-num-batched-tokens must be positive");
  if (options.max_num_seqs <= 0) return InvalidArgument("--max-num-seqs must be positive");
  // Checked for every device, so that a bad value fails on the CPU too instead of being ignored.
  if (!(options.gpu_memory_utilization > 0.0 && options.gpu_memory_utilization <= 1.0)) {
    return InvalidArgument(fmt::format("--gpu-memory-utilization must be in (0, 1], got {}",
                                       options.gpu_memory_utilization));
  }
  static const char* const kDtypes[] = {"auto", "float16", "half", "fp16", "bfloat16", "bf16", "float32",
                                        "float", "fp32", "q4_0", "q4_1", "q8_0"};
  if (std::find(std::begin(kDtypes), std::end(kDtypes), options.dtype) == std::end(kDtypes)) {
    return InvalidArgument("unknown --dtype '" + options.dtype + "': use auto, float16, bfloat16 or float32");
  }
  auto policy = MakeSchedulingPolicy(options.scheduling_policy);
  if (!policy) {
    return InvalidArgument("unknown --scheduling-policy '" + options.scheduling_policy + "': use fcfs or priority");
  }
  KvCacheShape shape;
  std::vector<int64_t> layer_windows;
  for (int64_t l = 0; l < c.num_layers; ++l) layer_windows.push_back(c.Layer(l).sliding_window);
  shape.layout = MakeKvLayout(layer_windows);
  shape.layers_per_block = shape.layout.layers_per_group();
  shape.num_kv_heads = c.num_kv_heads;
  shape.head_dim = c.head_dim;
  shape.block_size = options.block_size;
  INFERD_ASSIGN_OR_RETURN(shape.dtype, ParseKvDtype(options.kv_cache_dtype, AllWeightsFp32(model->weights)));
  int64_t max_len = options.max_model_len > 0 ? options.max_model_len : c.max_position_embeddings;
  BackendOptions bo;
  bo.device = options.device;
  bo.dtype = options.dtype;
  bo.kv = shape;
  bo.kv_cache_dtype = options.kv_cache_dtype;
  bo.kv_cache_bytes = options.kv_cache_bytes;
  bo.max_model_len = max_len;
  if (options.max_model_len <= 0) bo.max_model_len_source = c.context_length_key;
  bo.max_num_batched_tokens = options.max_num_batched_tokens;
  bo.max_num_seqs = options.max_num_seqs;
  bo.gpu_memory_utilization = options.gpu_memory_utilization;
  bo.enforce_eager = options.enforce_eager;
  INFERD_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, CreateBackend(*model, bo));
  shape = backend->kv_shape();
  e->kv_manager_ = std::make_unique<KvCacheManager>(shape.num_blocks, shape.block_size, options.enable_prefix_caching,
                                                    shape.layout.windows());
  // The longest request the cache can hold, windows counted (binary search: the block count
  // grows with the length).
  const auto fits = [&](int64_t len) {
    return e->kv_manager_->BlocksPerRequest(len, options.max_num_batched_tokens) <= e->kv_manager_->num_blocks();
  };
  if (!fits(max_len)) {
    int64_t lo = 0, hi = max_len;  // fits(lo) (or lo == 0), !fits(hi)
    while (hi - lo > 1) {
      const int64_t mid = lo + (hi - lo) / 2;
      (fits(mid) ? lo : hi) = mid;
    }
    if (options.max_model_len > 0) {
      return InvalidArgument(fmt::format(
          "max model length {} is larger than the KV cache capacity for one request ({} tokens in {} blocks, {} "
          "bytes); raise --kv-cache-memory{} or lower --max-model-len",
          max_len, lo, e->kv_manager_->num_blocks(), shape.num_blocks * shape.bytes_per_block(),
          backend->name() == "cuda" ? " or --gpu-memory-utilization" : ""));
    }
    INFERD_LOG_WARN("KV cache holds {} tokens for one request, less than the model's context {}; max model length "
                    "set to {}",
                    lo, max_len, lo);
    if (c.rope_scaling == RopeScaling::kLongRope && c.LongRopeUsesLongFactors(max_len) &&
        !c.LongRopeUsesLongFactors(lo)) {
      // The backend's RoPE tables were built for max_len (BackendOptions::max_model_len).
      INFERD_LOG_WARN("LongRoPE keeps the long factors chosen for the model's context {}; pass --max-model-len {} or "
                      "less for the short ones",
                      max_len, c.rope_original_max_position);
    }
    max_len = lo;
  }
  if (max_len < 2) return InvalidArgument("the KV cache is too small to hold a request");
  e->max_model_len_ = max_len;
  SchedulerConfig sc;
  sc.max_num_batched_tokens = options.max_num_batched_tokens;
  sc.max_num_seqs = options.max_num_seqs;
  sc.max_model_len = max_len;
  e->scheduler_ = std::make_unique<Scheduler>(sc, *e->kv_manager_, std::move(policy));
  e->model_ = std::move(model);
  e->backend_ = std::move(backend);
  // INFERD_HOST_SAMPLING=1 samples every row on the host even where the backend could.
  const char* host = std::getenv("INFERD_HOST_SAMPLING");
  e->device_sampling_ = e->backend_->can_sample() && !(host && std::string(host) == "1");
  return e;
}

void LogEngineSummary(const EngineCore& engine) {
  const LoadedModel& m = engine.model();
  const ModelConfig& c = m.config;
  INFERD_LOG_INFO("model: {} ({}, {}), architecture {}, {:.1f}M parameters, {} layers, hidden {}, heads {}/{} (q/kv)",
                  m.path, m.format, m.weight_type, c.arch, c.NumParameters() / 1e6, c.num_layers, c.hidden_size,
                  c.num_heads, c.num_kv_heads);
  INFERD_LOG_INFO("weights: {:.1f} MiB", m.weights.nbytes / 1048576.0);
  const int64_t tokens = engine.kv_capacity_tokens();
  const KvCacheShape& kv = engine.kv_shape();
  // Other dtypes than fp16: how many tokens that is next to an fp16 cache of the same bytes.
  std::string vs_fp16;
  if (kv.dtype != KvDtype::kF16) {
    KvCacheShape fp16 = kv;
    fp16.dtype = KvDtype::kF16;
    vs_fp16 = fmt::format(", {:.2f}x the tokens of fp16",
                          static_cast<double>(fp16.bytes_per_token()) / static_cast<double>(kv.bytes_per_token()));
  }
  INFERD_LOG_INFO("KV cache: {} blocks x {} tokens x {} layers ({:.1f} MiB, {}: {} tokens{}); prefix caching {}; max "
                  "model length {}",
                  engine.num_blocks(), engine.block_size(), kv.layers_per_block,
                  static_cast<double>(engine.num_blocks()) * static_cast<double>(kv.bytes_per_block()) / 1048576.0,
                  KvDtypeName(kv.dtype), tokens, vs_fp16, engine.options().enable_prefix_caching ? "on" : "off",
                  engine.max_model_len());
  if (c.rope_scaling == RopeScaling::kLongRope) {
    // The length the backend built its RoPE tables for (BackendOptions::max_model_len).
    const int64_t len = engine.options().max_model_len > 0 ? engine.options().max_model_len : c.max_position_embeddings;
    const bool long_factors = c.LongRopeUsesLongFactors(len);
    INFERD_LOG_INFO("LongRoPE: {} factors, chosen for a maximum model length of {} ({} the original context {}); "
                    "attention factor {:.4f}",
                    long_factors ? "long" : "short", len, long_factors ? ">" : "<=", c.rope_original_max_position,
                    c.rope_attn_factor);
  }
  if (kv.layout.has_windows()) {
    std::string groups;
    for (const KvGroupSpec& g : kv.layout.groups) {
      groups += groups.empty() ? "" : ", ";
      groups += g.sliding_window > 0 ? fmt::format("window {}", g.sliding_window) : std::string("full");
    }
    INFERD_LOG_INFO("KV cache groups ({} layers each): {}; a request of {} tokens holds {} blocks ({} with full "
                    "attention everywhere)",
                    kv.layers_per_block, groups, engine.max_model_len(), engine.blocks_per_request(engine.max_model_len()),
                    kv.layout.num_groups() * ((engine.max_model_len() + engine.block_size() - 1) / engine.block_size()));
  }
  INFERD_LOG_INFO("{} KV cache size: {} tokens; maximum concurrency for {} tokens per request: {:.2f}x",
                  engine.backend().name() == "cuda" ? "GPU" : "CPU", tokens, engine.max_model_len(),
                  engine.max_concurrency());
  const std::string report = FormatMemoryReport(engine.backend().memory());
  for (size_t b = 0, e; b < report.size(); b = e + 1) {
    e = report.find('\n', b);
    if (e == std::string::npos) e = report.size();
    if (e > b) INFERD_LOG_INFO("{}", report.substr(b, e - b));
  }
}

EngineCounters EngineCore::counters() const {
  EngineCounters c = counters_;
  c.num_preemptions = scheduler_->num_preemptions_total();
  c.prefix_queries = kv_manager_->stats().queries;
  c.prefix_hits = kv_manager_->stats().hits;
  return c;
}

Status EngineCore::AddRequest(GenerateRequest request) {
  INFERD_RETURN_IF_ERROR(request.params.Validate());
  const int64_t prompt_len = static_cast<int64_t>(request.prompt_token_ids.size());
  if (prompt_len == 0) return InvalidArgument("the prompt is empty");
  for (int32_t id : request.prompt_token_ids) {
    if (id < 0 || id >= vocab_size()) {
      return InvalidArgument(fmt::format("prompt token id {} is out of range [0, {})", id, vocab_size()));
    }
  }
  if (prompt_len >= max_model_len_) {
    return InvalidArgument(fmt::format(
        "this model's maximum context length is {} tokens, but the prompt has {} tokens (no room to generate)",
        max_model_len_, prompt_len));
  }
  if (request.request_id.empty()) request.request_id = fmt::format("req-{}", next_request_);
  if (groups_.count(request.request_id)) {
    return InvalidArgument("request id '" + request.request_id + "' is already in use");
  }
  std::shared_ptr<const xgrammar::CompiledGrammar> grammar;
  if (request.params.structured_outputs) {
    auto compiled = CompileGrammar(*request.params.structured_outputs);
    if (!compiled.ok()) return compiled.status();
    grammar = *compiled;
  }
  const uint64_t counter = next_request_++;
  auto g = std::make_unique<Group>();
  g->request = std::move(request);
  const GenerateRequest& r = g->request;
  const double arrival = r.arrival_time > 0 ? r.arrival_time : NowSeconds();
  g->output.request_id = r.request_id;
  g->output.prompt = r.prompt;
  g->output.prompt_token_ids = r.prompt_token_ids;
  g->output.outputs.resize(r.params.n);
  g->output.metrics.arrival_time = arrival;
  const uint64_t base_seed = r.params.seed ? static_cast<uint64_t>(*r.params.seed) : MixSeed(options_.seed, counter);
  const int64_t room = max_model_len_ - prompt_len;
  for (int i = 0; i < r.params.n; ++i) {
    auto s = std::make_unique<Sequence>();
    s->group = g.get();
    s->index = i;
    Request& q = s->req;
    q.id = r.params.n == 1 ? r.request_id : fmt::format("{}#{}", r.request_id, i);
    q.tokens = r.prompt_token_ids;
    q.num_prompt_tokens = prompt_len;
    q.params = r.params;
    q.priority = r.priority;
    q.arrival_time = arrival;
    q.seed = i == 0 ? base_seed : MixSeed(base_seed, static_cast<uint64_t>(i));
    q.max_tokens = r.params.max_tokens ? std::min<int64_t>(*r.params.max_tokens, room) : room;
    q.skip_prefix_cache_hits = r.params.prompt_logprobs.has_value();
    s->detok = std::make_unique<IncrementalDetokenizer>(tokenizer(), r.params.skip_special_tokens,
                                                        std::span<const int32_t>(r.prompt_token_ids));
    s->out.index = i;
    if (r.params.logprobs) s->out.logprobs.emplace();
    if (grammar) {
      const StructuredOutputsParams& so = *r.params.structured_outputs;
      s->grammar = std::make_unique<structured::GrammarState>(
          grammar, so.json || so.json_object ? &grammars_->json_text_mask() : nullptr);
    }
    s->grammar_on = r.structured_after.empty();
    if (s->constrained()) s->grammar->FinishWithin(q.max_tokens, tokenizer());
    Status st = scheduler_->AddRequest(&s->req);
    if (!st.ok()) {
      for (auto& prev : g->seqs) scheduler_->FinishRequest(&prev->req, RequestStatus::kFinishedError);
      return st;
    }
    g->seqs.push_back(std::move(s));
  }
  g->remaining = r.params.n;
  for (auto& s : g->seqs) sequences_[s->req.id] = s.get();
  groups_[g->request.request_id] = std::move(g);
  return Status::OK();
}

void EngineCore::AbortRequest(const std::string& request_id) {
  auto it = groups_.find(request_id);
  if (it == groups_.end() || it->second->done) return;
  StepResult tmp;
  for (auto& s : it->second->seqs) {
    if (!s->finished) FinishSequence(*s, RequestStatus::kFinishedAborted, "abort", tmp);
  }
  for (auto& f : tmp.finished) pending_finished_.push_back(std::move(f));
  // Drop the group now: its id may be reused and no step refers to it any more.
  for (auto& s : it->second->seqs) sequences_.erase(s->req.id);
  groups_.erase(it);
}

void EngineCore::EmitDelta(Sequence& s, std::vector<int32_t> new_ids, bool finished, StepResult& result) {
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
  result.deltas.push_back(std::move(d));
}

void EngineCore::FinishSequence(Sequence& s, RequestStatus status, const char* reason, StepResult& result) {
  if (s.finished) return;
  scheduler_->FinishRequest(&s.req, status);
  s.finished = true;
  s.out.finish_reason = reason;
  EmitDelta(s, {}, /*finished=*/true, result);
  Group& g = *s.group;
  if (s.index == 0 && s.req.params.prompt_logprobs) g.output.prompt_logprobs = std::move(s.prompt_logprobs);
  if (s.first_token_time > 0 &&
      (g.output.metrics.first_token_time == 0 || s.first_token_time < g.output.metrics.first_token_time)) {
    g.output.metrics.first_token_time = s.first_token_time;
  }
  g.output.num_cached_tokens = std::max<int>(g.output.num_cached_tokens, static_cast<int>(std::max<int64_t>(0, s.req.num_cached_tokens)));
  g.output.outputs[s.index] = std::move(s.out);
  --g.remaining;
  CompleteGroupIfDone(g, result);
}

void EngineCore::CompleteGroupIfDone(Group& g, StepResult& result) {
  if (g.remaining > 0 || g.done) return;
  g.done = true;
  g.output.finished = true;
  g.output.metrics.finished_time = g.output.metrics.last_token_time = NowSeconds();
  ++counters_.requests_finished;
  result.finished.push_back({g.request.request_id, std::move(g.output)});
}

SampleInput EngineCore::MakeSampleInput(const Sequence& s, std::vector<int32_t>* stop_ids) const {
  const Tokenizer& tok = tokenizer();
  const SamplingParams& params = s.req.params;
  stop_ids->assign(params.stop_token_ids.begin(), params.stop_token_ids.end());
  if (!params.ignore_eos) stop_ids->insert(stop_ids->end(), tok.eog_ids().begin(), tok.eog_ids().end());
  SampleInput in;
  in.params = &params;
  in.prompt_ids = std::span<const int32_t>(s.req.tokens).first(static_cast<size_t>(s.req.num_prompt_tokens));
  in.output_ids = std::span<const int32_t>(s.req.tokens).subspan(static_cast<size_t>(s.req.num_prompt_tokens));
  in.seed = s.req.seed;
  in.step = static_cast<int64_t>(in.output_ids.size());
  in.stop_ids = *stop_ids;
  return in;
}

SampleResult EngineCore::Sample(Sequence& s, std::span<float> logits) const {
  std::vector<int32_t> stop_ids;
  SampleInput in = MakeSampleInput(s, &stop_ids);
  if (s.constrained()) in.allowed_tokens = s.grammar->NextMask();
  return SampleToken(logits, in);
}

StatusOr<std::shared_ptr<const xgrammar::CompiledGrammar>> EngineCore::CompileGrammar(
    const StructuredOutputsParams& p) const {
  std::call_once(grammars_once_, [&] { grammars_ = std::make_unique<structured::GrammarCache>(tokenizer()); });
  return grammars_->Get(p);
}

void EngineCore::ProcessSample(Sequence& s, const SampleResult& r, StepResult& result) {
  const Tokenizer& tok = tokenizer();
  const SamplingParams& params = s.req.params;
  if (s.constrained() && !s.grammar->Accept(r.token)) {
    // The sampler honours the mask, so this means the grammar allowed no token at all.
    INFERD_LOG_ERROR("request {}: the structured-output grammar allows no next token", s.req.id);
    FinishSequence(s, RequestStatus::kFinishedError, "error", result);
    return;
  }
  s.req.tokens.push_back(r.token);
  ++counters_.generation_tokens;
  if (s.first_token_time == 0) s.first_token_time = NowSeconds();
  CompletionOutput& out = s.out;
  out.token_ids.push_back(r.token);
  out.cumulative_logprob += r.logprob;
  if (out.logprobs) out.logprobs->push_back(MakePositionLogprobs(tok, r.token, r.logprob, r.rank, r.top_logprobs));

  const int64_t num_out = static_cast<int64_t>(out.token_ids.size());
  StopDecision d = CheckStopToken(params, r.token, tok.IsEog(r.token), num_out, s.req.num_tokens(), max_model_len_);
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
  if (d.stopped) {
    out.stop_reason = d.stop_reason;
    const bool length = d.finish_reason && std::string(d.finish_reason) == "length";
    EmitDelta(s, {r.token}, /*finished=*/false, result);
    FinishSequence(s, length ? RequestStatus::kFinishedLength : RequestStatus::kFinishedStopped,
                   length ? "length" : "stop", result);
    // Merge the token delta and the final delta into one.
    if (result.deltas.size() >= 2) {
      OutputDelta last = std::move(result.deltas.back());
      result.deltas.pop_back();
      OutputDelta& prev = result.deltas.back();
      prev.new_text += last.new_text;
      prev.new_token_ids.insert(prev.new_token_ids.end(), last.new_token_ids.begin(), last.new_token_ids.end());
      prev.new_logprobs.insert(prev.new_logprobs.end(), last.new_logprobs.begin(), last.new_logprobs.end());
      prev.finish_reason = last.finish_reason;
    }
  } else {
    EmitDelta(s, {r.token}, /*finished=*/false, result);
    if (s.constrained()) s.grammar->FinishWithin(s.req.max_tokens - num_out, tok);
  }
}

void EngineCore::AddGroupBlockTables(const std::string& id, ForwardBatch& batch) const {
  const int64_t groups = kv_manager_->num_groups();
  if (groups == 1) return;
  for (int64_t g = 0; g < groups; ++g) batch.group_block_tables.push_back(kv_manager_->BlockTable(id, g).data());
}

namespace {

// Computes grammar masks on its own thread, started at construction, so that a step's masks
// are ready when the device's forward ends (vLLM and SGLang overlap them the same way);
// Wait() joins. Only with a device sampler: on the CPU backend the forward already uses
// every core, and the masks are filled inside the parallel sampling loop instead (measured:
// BENCHMARKS.md, "Structured outputs").
class MaskWorker {
 public:
  explicit MaskWorker(std::vector<structured::GrammarState*> states) : states_(std::move(states)) {
    if (states_.empty()) return;
    thread_ = std::thread([this] {
      for (structured::GrammarState* g : states_) g->NextMask();
    });
  }
  ~MaskWorker() { Wait(); }
  void Wait() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::vector<structured::GrammarState*> states_;
  std::thread thread_;
};

}  // namespace

StepResult EngineCore::Step() {
  StepResult result;
  result.finished = std::move(pending_finished_);
  pending_finished_.clear();
  SchedulerOutput sched = scheduler_->Schedule();
  result.num_scheduled_tokens = sched.total_tokens;
  if (sched.empty()) return result;

  // Flat batch: scheduled requests back to back.
  ForwardBatch batch;
  struct Use { Sequence* seq; int64_t prompt_pos; };  // prompt_pos < 0: sampling row
  std::vector<Use> uses;
  for (const ScheduledRequest& sr : sched.scheduled) {
    Sequence& s = *sequences_.at(sr.request->id);
    Request& q = s.req;
    if (s.prompt_logprobs.empty() && q.params.prompt_logprobs && s.index == 0) s.prompt_logprobs.push_back(std::nullopt);
    const int64_t row0 = static_cast<int64_t>(batch.token_ids.size());
    batch.seqs.push_back(ops::AttnSeq{row0, sr.num_new_tokens, q.num_computed_tokens + sr.num_new_tokens,
                                      kv_manager_->BlockTable(q.id).data()});
    AddGroupBlockTables(q.id, batch);
    for (int64_t i = 0; i < sr.num_new_tokens; ++i) {
      const int64_t pos = q.num_computed_tokens + i;
      batch.token_ids.push_back(q.tokens[pos]);
      batch.positions.push_back(static_cast<int32_t>(pos));
      if (pos < q.num_prompt_tokens) ++counters_.prompt_tokens;
      // prompt_logprobs: row `pos` scores prompt token pos + 1 (recorded once, in order).
      if (q.params.prompt_logprobs && s.index == 0 && pos + 1 < q.num_prompt_tokens &&
          pos + 1 >= static_cast<int64_t>(s.prompt_logprobs.size())) {
        batch.logits_rows.push_back(row0 + i);
        uses.push_back({&s, pos});
      }
    }
    if (q.num_computed_tokens + sr.num_new_tokens == q.num_tokens()) {
      batch.logits_rows.push_back(row0 + sr.num_new_tokens - 1);
      uses.push_back({&s, -1});
    }
    if (s.group->output.metrics.first_scheduled_time == 0) s.group->output.metrics.first_scheduled_time = NowSeconds();
  }
  std::vector<structured::GrammarState*> masks;  // this step's constrained rows, with a device sampler
  for (const Use& u : uses) {
    if (device_sampling_ && u.prompt_pos < 0 && !u.seq->finished && u.seq->constrained()) {
      masks.push_back(u.seq->grammar.get());
    }
  }
  MaskWorker mask_worker(std::move(masks));
  const int64_t vocab = vocab_size();
  logits_.resize(static_cast<size_t>(batch.logits_rows.size() * vocab));
  samples_.assign(uses.size(), SampleResult{});
  sampled_on_device_.assign(uses.size(), 0);
  device_rows_.clear();
  if (device_sampling_) {
    // Rows that want no logprobs are sampled where the logits are (only ids come back).
    device_stop_ids_.resize(uses.size());
    for (size_t u = 0; u < uses.size(); ++u) {
      const Sequence& s = *uses[u].seq;
      if (uses[u].prompt_pos >= 0 || s.finished || s.req.params.logprobs) continue;
      device_rows_.push_back(DeviceSample{static_cast<int64_t>(u), MakeSampleInput(s, &device_stop_ids_[u])});
      if (s.constrained()) device_rows_.back().input.allowed_tokens = s.grammar->mask();  // filled by mask_worker
      sampled_on_device_[u] = 1;
    }
  }
  Status st = device_rows_.empty() ? backend_->Forward(batch, logits_.data())
                                   : backend_->ForwardSample(batch, device_rows_, logits_.data(), samples_,
                                                             [&mask_worker] { mask_worker.Wait(); });
  mask_worker.Wait();
  if (!st.ok()) {
    INFERD_LOG_ERROR("forward failed: {}", st.message());
    for (const ScheduledRequest& sr : sched.scheduled) {
      Sequence& s = *sequences_.at(sr.request->id);
      FinishSequence(s, RequestStatus::kFinishedError, "error", result);
    }
  } else {
    scheduler_->OnStepComputed(sched);
    const Tokenizer& tok = tokenizer();
    // Sampling reads only its own row and its sequence's state (a counter-based RNG), so
    // the rows are sampled in parallel; the results are then applied in order.
    ThreadPool::Global().ParallelFor(static_cast<int64_t>(uses.size()), 1, [&](int64_t b, int64_t e) {
      for (int64_t u = b; u < e; ++u) {
        if (uses[u].prompt_pos >= 0 || uses[u].seq->finished || sampled_on_device_[u]) continue;
        samples_[u] = Sample(*uses[u].seq, std::span<float>(&logits_[u * vocab], static_cast<size_t>(vocab)));
      }
    });
    for (size_t u = 0; u < uses.size(); ++u) {
      Sequence& s = *uses[u].seq;
      if (s.finished) continue;
      std::span<float> row(&logits_[u * vocab], static_cast<size_t>(vocab));
      if (uses[u].prompt_pos >= 0) {
        if (static_cast<int64_t>(s.prompt_logprobs.size()) != uses[u].prompt_pos + 1) continue;
        const int32_t target = s.req.tokens[uses[u].prompt_pos + 1];
        RowLogprobs rl = ComputeRowLogprobs(row, *s.req.params.prompt_logprobs, target);
        s.prompt_logprobs.push_back(MakePositionLogprobs(tok, target, rl.target_logprob, rl.target_rank, rl.top));
      } else {
        ProcessSample(s, samples_[u], result);
      }
    }
  }
  // Forget finished groups (their outputs are in result.finished).
  for (auto it = groups_.begin(); it != groups_.end();) {
    if (it->second->done) {
      for (auto& s : it->second->seqs) sequences_.erase(s->req.id);
      it = groups_.erase(it);
    } else {
      ++it;
    }
  }
  return result;
}

Status EngineCore::ScoreTokens(std::span<const int32_t> ids, float* out) {
  const int64_t n = static_cast<int64_t>(ids.size());
  if (n == 0) return Status::OK();
  if (n > max_model_len_) {
    return InvalidArgument(fmt::format("sequence of {} tokens exceeds the maximum model length {}", n, max_model_len_));
  }
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) return InvalidArgument(fmt::format("token id {} is out of range", id));
  }
  const std::string id = "__score__";
  if (!kv_manager_->AllocateSlots(id, 0, n)) {
    return ResourceExhausted(fmt::format("the KV cache cannot hold {} tokens now", n));
  }
  const int32_t* table = kv_manager_->BlockTable(id).data();
  Status st;
  for (int64_t begin = 0; begin < n && st.ok(); begin += options_.max_num_batched_tokens) {
    const int64_t count = std::min(options_.max_num_batched_tokens, n - begin);
    ForwardBatch batch;
    batch.seqs.push_back(ops::AttnSeq{0, count, begin + count, table});
    AddGroupBlockTables(id, batch);
    for (int64_t i = 0; i < count; ++i) {
      batch.token_ids.push_back(ids[begin + i]);
      batch.positions.push_back(static_cast<int32_t>(begin + i));
      batch.logits_rows.push_back(i);
    }
    st = backend_->Forward(batch, out + begin * vocab_size());
  }
  kv_manager_->Free(id);
  return st;
}

}  // namespace inferd
