#include "engine/engine_core.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <cstdlib>

#include "engine/draft_proposer.h"
#include "engine/model_runner.h"
#include "engine/output_processor.h"
#include "engine/sequence.h"
#include "sample/sampler.h"
#include "spec/ngram_proposer.h"
#include "spec/suffix_proposer.h"
#include "structured/grammar_cache.h"
#include "util/logging.h"
#include "util/thread_pool.h"

namespace inferd {
namespace {

uint64_t MixSeed(uint64_t a, uint64_t b) {
  uint64_t x = a ^ (b + 0x9E3779B97F4A7C15ull + (a << 6) + (a >> 2));
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

// One sequence's sampling rows of a step: the row after its own tokens, then one row per
// draft it verifies (rows first_use .. first_use + drafts.size()).
struct EngineCore::SampleUnit {
  Sequence* seq = nullptr;
  size_t first_use = 0;
  std::vector<int32_t> drafts;
  std::vector<SampleResult> results;  // drawn by SampleChain, in row order
  bool on_device = false;             // its one row was sampled by the backend (samples_)
  bool serial = false;                // drawn in ApplyUnit, one token at a time (grammar)
};

EngineCore::EngineCore() = default;
EngineCore::~EngineCore() = default;

namespace {
bool AllWeightsFp32(const ModelWeights& w) {
  bool all = w.output.type == GgmlType::kF32;
  for (const LayerWeights& l : w.layers)
    for (const Matrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) all = all && m->type == GgmlType::kF32;
  return all;
}
}  // namespace

namespace {

Status ValidateOptions(const LoadedModel& model, const EngineOptions& options) {
  if (!model.tokenizer) return InvalidArgument("the engine needs a tokenizer: pass --tokenizer PATH");
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
  if (!MakeSchedulingPolicy(options.scheduling_policy)) {
    return InvalidArgument("unknown --scheduling-policy '" + options.scheduling_policy + "': use fcfs or priority");
  }
  return Status::OK();
}

// The longest request the cache can hold, windows counted, when it is less than max_len
// (binary search: the block count grows with the length); max_len when it fits.
int64_t LongestFit(const KvCacheManager& kv, int64_t max_len, int64_t chunk) {
  const auto fits = [&](int64_t len) { return kv.BlocksPerRequest(len, chunk) <= kv.num_blocks(); };
  if (fits(max_len)) return max_len;
  int64_t lo = 0, hi = max_len;  // fits(lo) (or lo == 0), !fits(hi)
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (fits(mid) ? lo : hi) = mid;
  }
  return lo;
}

}  // namespace

StatusOr<BackendOptions> MakeBackendOptions(const LoadedModel& model, const EngineOptions& options) {
  const ModelConfig& c = model.config;
  KvCacheShape shape;
  std::vector<int64_t> layer_windows;
  for (int64_t l = 0; l < c.num_layers; ++l) layer_windows.push_back(c.Layer(l).sliding_window);
  shape.layout = MakeKvLayout(layer_windows);
  shape.layers_per_block = shape.layout.layers_per_group();
  shape.num_kv_heads = c.num_kv_heads;
  shape.head_dim = c.head_dim;
  shape.block_size = options.block_size;
  INFERD_ASSIGN_OR_RETURN(shape.dtype, ParseKvDtype(options.kv_cache_dtype, AllWeightsFp32(model.weights)));
  BackendOptions bo;
  bo.device = options.device;
  bo.dtype = options.dtype;
  bo.kv = shape;
  bo.kv_cache_dtype = options.kv_cache_dtype;
  bo.kv_cache_bytes = options.kv_cache_bytes;
  bo.max_model_len = options.max_model_len > 0 ? options.max_model_len : c.max_position_embeddings;
  if (options.max_model_len <= 0) bo.max_model_len_source = c.context_length_key;
  bo.max_num_batched_tokens = options.max_num_batched_tokens;
  bo.max_num_seqs = options.max_num_seqs;
  bo.gpu_memory_utilization = options.gpu_memory_utilization;
  bo.enforce_eager = options.enforce_eager;
  return bo;
}

StatusOr<std::unique_ptr<EngineCore>> EngineCore::Create(std::unique_ptr<LoadedModel> model,
                                                         const EngineOptions& options) {
  INFERD_RETURN_IF_ERROR(ValidateOptions(*model, options));
  INFERD_ASSIGN_OR_RETURN(BackendOptions bo, MakeBackendOptions(*model, options));
  INFERD_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, CreateBackend(*model, bo));
  std::unique_ptr<DraftProposer> draft;
  if (options.speculative.method == "draft_model") {
    INFERD_ASSIGN_OR_RETURN(draft, DraftProposer::Create(options.speculative.draft_model, *model, *backend, options));
  }
  INFERD_ASSIGN_OR_RETURN(std::unique_ptr<EngineCore> e,
                          CreateWithBackend(std::move(model), options, std::move(backend)));
  if (draft) {
    // A draft model's first speculative step catches up on every running request's tokens:
    // explore larger batches only after the smaller ones won (spec_controller.h).
    e->spec_control_ = SpecController({.free_probe_buckets = 3});
  }
  e->draft_ = std::move(draft);
  return e;
}

StatusOr<std::unique_ptr<EngineCore>> EngineCore::CreateWithBackend(std::unique_ptr<LoadedModel> model,
                                                                    const EngineOptions& options,
                                                                    std::unique_ptr<Backend> backend) {
  INFERD_RETURN_IF_ERROR(ValidateOptions(*model, options));
  std::unique_ptr<EngineCore> e(new EngineCore());
  e->options_ = options;
  const ModelConfig& c = model->config;
  const KvCacheShape& shape = backend->kv_shape();
  e->kv_manager_ = std::make_unique<KvCacheManager>(shape.num_blocks, shape.block_size, options.enable_prefix_caching,
                                                    shape.layout.windows());
  int64_t max_len = options.max_model_len > 0 ? options.max_model_len : c.max_position_embeddings;
  const int64_t lo = LongestFit(*e->kv_manager_, max_len, options.max_num_batched_tokens);
  if (lo < max_len) {
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
  e->scheduler_ = std::make_unique<Scheduler>(sc, *e->kv_manager_, MakeSchedulingPolicy(options.scheduling_policy));
  e->model_ = std::move(model);
  e->outputs_ = std::make_unique<OutputProcessor>(*e->model_->tokenizer, *e->scheduler_, e->counters_, max_len);
  // INFERD_HOST_SAMPLING=1 samples every row on the host even where the backend could.
  const char* host = std::getenv("INFERD_HOST_SAMPLING");
  e->device_sampling_ = backend->can_sample() && !(host && std::string(host) == "1");
  e->runner_ = std::make_unique<ModelRunner>(std::move(backend), e->kv_manager_->num_groups());
  const spec::SpeculativeConfig& sp = options.speculative;
  if (sp.method == "suffix") e->suffix_ = std::make_unique<spec::SuffixCache>(sp.suffix);
  e->counters_.spec_accepted_per_pos.assign(static_cast<size_t>(sp.enabled() ? sp.num_speculative_tokens : 0), 0);
  return e;
}

const Backend& EngineCore::backend() const { return runner_->backend(); }

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
  if (engine.speculative().enabled()) {
    INFERD_LOG_INFO("speculative decoding: {}", spec::DescribeSpeculativeConfig(engine.speculative()));
  }
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
  for (auto& s : g->seqs) {
    sequences_[s->req.id] = s.get();
    if (suffix_) suffix_->StartRequest(s->req.id, s->req.tokens);
  }
  groups_[g->request.request_id] = std::move(g);
  return Status::OK();
}

void EngineCore::AbortRequest(const std::string& request_id) {
  auto it = groups_.find(request_id);
  if (it == groups_.end() || it->second->done) return;
  StepResult tmp;
  for (auto& s : it->second->seqs) {
    if (!s->finished) outputs_->Finish(*s, RequestStatus::kFinishedAborted, "abort", tmp);
  }
  for (auto& f : tmp.finished) pending_finished_.push_back(std::move(f));
  // Drop the group now: its id may be reused and no step refers to it any more.
  for (auto& s : it->second->seqs) {
    if (suffix_) suffix_->StopRequest(s->req.id, /*keep_output=*/false);
    if (draft_) draft_->Free(s->req.id);
    sequences_.erase(s->req.id);
  }
  groups_.erase(it);
}

StatusOr<std::shared_ptr<const xgrammar::CompiledGrammar>> EngineCore::CompileGrammar(
    const StructuredOutputsParams& p) const {
  std::call_once(grammars_once_, [&] { grammars_ = std::make_unique<structured::GrammarCache>(tokenizer()); });
  return grammars_->Get(p);
}

SampleInput EngineCore::MakeSampleInput(const Sequence& s, std::vector<int32_t>* stop_ids,
                                        std::span<const int32_t> drafts, std::vector<int32_t>* history) const {
  const Tokenizer& tok = tokenizer();
  const SamplingParams& params = s.req.params;
  stop_ids->assign(params.stop_token_ids.begin(), params.stop_token_ids.end());
  if (!params.ignore_eos) stop_ids->insert(stop_ids->end(), tok.eog_ids().begin(), tok.eog_ids().end());
  std::span<const int32_t> tokens(s.req.tokens);
  if (!drafts.empty()) {
    // The history of a draft's row: the sequence as if the drafts before it were accepted.
    history->assign(s.req.tokens.begin(), s.req.tokens.end());
    history->insert(history->end(), drafts.begin(), drafts.end());
    tokens = *history;
  }
  SampleInput in;
  in.params = &params;
  in.prompt_ids = tokens.first(static_cast<size_t>(s.req.num_prompt_tokens));
  in.output_ids = tokens.subspan(static_cast<size_t>(s.req.num_prompt_tokens));
  in.seed = s.req.seed;
  in.step = static_cast<int64_t>(in.output_ids.size());
  in.stop_ids = *stop_ids;
  return in;
}

void EngineCore::SampleChain(SampleUnit& u) {
  const Sequence& s = *u.seq;
  const int64_t vocab = vocab_size();
  std::vector<int32_t> stop_ids, history;
  const size_t k = u.drafts.size();
  for (size_t j = 0; j <= k; ++j) {
    SampleInput in = MakeSampleInput(s, &stop_ids, std::span<const int32_t>(u.drafts).first(j), &history);
    if (s.constrained()) in.allowed_tokens = s.grammar->NextMask();  // only units without drafts
    const size_t row = u.first_use + j;
    u.results.push_back(SampleToken(std::span<float>(&logits_[row * vocab], static_cast<size_t>(vocab)), in));
    if (j == k || u.results.back().token != u.drafts[j]) break;
  }
}

void EngineCore::ApplyUnit(SampleUnit& u, StepResult& result) {
  Sequence& s = *u.seq;
  const int64_t vocab = vocab_size();
  const size_t k = u.drafts.size();
  int64_t accepted = 0;
  for (size_t j = 0; j <= k && !s.finished; ++j) {
    SampleResult r;
    if (u.on_device) {
      r = samples_[u.first_use];
    } else if (!u.serial) {
      r = u.results[j];
    } else {
      // One token at a time: the grammar's mask for row j is the one after the tokens before.
      std::vector<int32_t> stop_ids;
      SampleInput in = MakeSampleInput(s, &stop_ids);
      if (s.constrained()) in.allowed_tokens = s.grammar->NextMask();
      const size_t row = u.first_use + j;
      r = SampleToken(std::span<float>(&logits_[row * vocab], static_cast<size_t>(vocab)), in);
    }
    const bool running = outputs_->Append(s, r, result);
    const bool match = j < k && r.token == u.drafts[j];
    if (match) {
      ++accepted;
      ++counters_.spec_accepted_per_pos[j];
    }
    if (!running || !match) break;
  }
  if (k == 0) return;
  ++counters_.spec_num_drafts;
  counters_.spec_num_draft_tokens += static_cast<int64_t>(k);
  counters_.spec_num_accepted_tokens += accepted;
  scheduler_->OnSpeculationVerified(&s.req, accepted);
}

void EngineCore::ProposeDrafts() {
  const spec::SpeculativeConfig& sp = options_.speculative;
  if (!sp.enabled()) return;
  const std::vector<Request*>& running = scheduler_->running();
  const bool off = (sp.disable_by_batch_size > 0 && static_cast<int64_t>(running.size()) > sp.disable_by_batch_size) ||
                   (options_.speculative.adaptive && !spec_control_.speculate(static_cast<int64_t>(running.size())));
  std::vector<DraftProposer::Input> draft_inputs;
  std::vector<Request*> draft_requests;
  for (Request* r : running) {
    r->spec_token_ids.clear();
    Sequence& s = *sequences_.at(r->id);
    if (suffix_) {
      // The suffix trees learn every token the sequence has accepted.
      const int64_t out = r->num_output_tokens();
      if (out > s.spec_fed) {
        suffix_->AppendOutput(r->id, std::span<const int32_t>(r->tokens).subspan(
                                         static_cast<size_t>(r->num_prompt_tokens + s.spec_fed)));
        s.spec_fed = out;
      }
    }
    if (off || r->num_tokens() - r->num_computed_tokens != 1) continue;  // not decoding next
    const int64_t k = std::min<int64_t>(sp.num_speculative_tokens, r->max_tokens - r->num_output_tokens() - 1);
    if (k <= 0) continue;
    if (sp.method == "ngram") {
      spec::NgramConfig c = sp.ngram;
      c.num_speculative_tokens = static_cast<int>(k);
      r->spec_token_ids = spec::ProposeNgram(r->tokens, c);
    } else if (suffix_) {
      r->spec_token_ids = suffix_->Propose(r->id, static_cast<int>(k));
    } else if (draft_) {
      draft_inputs.push_back({&r->id, r->tokens, static_cast<int>(k)});
      draft_requests.push_back(r);
    }
  }
  if (draft_inputs.empty()) return;
  std::vector<std::vector<int32_t>> drafts = draft_->Propose(draft_inputs);
  for (size_t i = 0; i < drafts.size() && i < draft_requests.size(); ++i) {
    draft_requests[i]->spec_token_ids = std::move(drafts[i]);
  }
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

bool EngineCore::PrepareStep(const SchedulerOutput& sched, std::vector<int64_t>* prompt_rows_from) {
  prompt_rows_from->assign(sched.scheduled.size(), -1);
  bool decode_only = true;  // every request computes one token of its own (and drafts)
  for (size_t i = 0; i < sched.scheduled.size(); ++i) {
    const ScheduledRequest& sr = sched.scheduled[i];
    Sequence& s = *sequences_.at(sr.request->id);
    const Request& q = s.req;
    const int64_t own = sr.num_new_tokens - static_cast<int64_t>(sr.spec_tokens.size());
    decode_only = decode_only && own == 1 && q.num_computed_tokens + 1 == q.num_tokens();
    counters_.prompt_tokens += std::max<int64_t>(0, std::min(q.num_computed_tokens + own, q.num_prompt_tokens) -
                                                        q.num_computed_tokens);
    if (s.group->output.metrics.first_scheduled_time == 0) s.group->output.metrics.first_scheduled_time = NowSeconds();
    if (!q.params.prompt_logprobs || s.index != 0) continue;
    if (s.prompt_logprobs.empty()) s.prompt_logprobs.push_back(std::nullopt);  // the first token has none
    (*prompt_rows_from)[i] = static_cast<int64_t>(s.prompt_logprobs.size()) - 1;
  }
  return decode_only;
}

std::vector<EngineCore::SampleUnit> EngineCore::MakeUnits(const SchedulerOutput& sched,
                                                          std::span<const LogitsRowUse> uses,
                                                          std::vector<structured::GrammarState*>* masks) {
  std::vector<SampleUnit> units;
  for (size_t r = 0; r < uses.size(); ++r) {
    if (!uses[r].sampling() || uses[r].spec_index != 0) continue;
    const ScheduledRequest& sr = sched.scheduled[uses[r].scheduled];
    SampleUnit u;
    u.seq = sequences_.at(sr.request->id);
    u.first_use = r;
    u.drafts = sr.spec_tokens;
    u.serial = !u.drafts.empty() && u.seq->grammar != nullptr;
    units.push_back(std::move(u));
  }
  samples_.assign(uses.size(), SampleResult{});
  device_rows_.clear();
  if (!device_sampling_) return units;
  // Rows that want no logprobs, of sequences verifying no drafts, are sampled where the
  // logits are (only ids come back).
  device_stop_ids_.resize(uses.size());
  for (SampleUnit& u : units) {
    const Sequence& s = *u.seq;
    if (s.finished || s.req.params.logprobs || !u.drafts.empty()) continue;
    device_rows_.push_back(
        DeviceSample{static_cast<int64_t>(u.first_use), MakeSampleInput(s, &device_stop_ids_[u.first_use])});
    if (s.constrained()) {
      masks->push_back(s.grammar.get());
      device_rows_.back().input.allowed_tokens = s.grammar->mask();  // filled by the mask worker
    }
    u.on_device = true;
  }
  return units;
}

void EngineCore::ApplyRows(const SchedulerOutput& sched, std::span<const LogitsRowUse> uses,
                           std::vector<SampleUnit>& units, StepResult& result) {
  // Sampling reads only its own rows and its sequence's state (a counter-based RNG), so the
  // units are sampled in parallel; the results are then applied in order.
  ThreadPool::Global().ParallelFor(static_cast<int64_t>(units.size()), 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      SampleUnit& u = units[i];
      if (!u.seq->finished && !u.on_device && !u.serial) SampleChain(u);
    }
  });
  const Tokenizer& tok = tokenizer();
  const int64_t vocab = vocab_size();
  size_t next_unit = 0;
  for (size_t r = 0; r < uses.size(); ++r) {
    const LogitsRowUse& use = uses[r];
    Sequence& s = *sequences_.at(sched.scheduled[use.scheduled].request->id);
    if (use.sampling()) {
      if (use.spec_index == 0) {
        SampleUnit& u = units[next_unit++];
        if (!s.finished) ApplyUnit(u, result);
      }
      continue;
    }
    if (s.finished || static_cast<int64_t>(s.prompt_logprobs.size()) != use.prompt_pos + 1) continue;
    std::span<float> row(&logits_[r * vocab], static_cast<size_t>(vocab));
    const int32_t target = s.req.tokens[use.prompt_pos + 1];
    RowLogprobs rl = ComputeRowLogprobs(row, *s.req.params.prompt_logprobs, target);
    s.prompt_logprobs.push_back(MakePositionLogprobs(tok, target, rl.target_logprob, rl.target_rank, rl.top));
  }
}

void EngineCore::ObserveSpeculation(int64_t batch, bool on, int64_t tokens, double seconds) {
  spec_control_.Observe(batch, on, tokens, seconds);
  if (spec_control_.speculate(batch) != on) {
    INFERD_LOG_DEBUG("speculative decoding {} at batch {} (measured {:.1f} tok/s with, {:.1f} without)",
                     spec_control_.speculate(batch) ? "on" : "off", batch, spec_control_.rate_on(batch),
                     spec_control_.rate_off(batch));
  }
}

StepResult EngineCore::Step() {
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t generated_before = counters_.generation_tokens;
  const int64_t running_before = static_cast<int64_t>(scheduler_->num_running());
  const bool speculated = options_.speculative.enabled() && spec_control_.speculate(running_before);
  StepResult result;
  result.finished = std::move(pending_finished_);
  pending_finished_.clear();
  ProposeDrafts();
  SchedulerOutput sched = scheduler_->Schedule();
  result.num_scheduled_tokens = sched.total_tokens;
  if (sched.empty()) return result;

  std::vector<int64_t> prompt_rows_from;
  const bool decode_only = PrepareStep(sched, &prompt_rows_from);
  ForwardBatch batch;
  std::vector<LogitsRowUse> uses;
  runner_->Prepare(sched, prompt_rows_from, &batch, &uses);
  std::vector<structured::GrammarState*> masks;  // this step's constrained rows, with a device sampler
  std::vector<SampleUnit> units = MakeUnits(sched, uses, &masks);
  logits_.resize(static_cast<size_t>(batch.logits_rows.size() * vocab_size()));
  MaskWorker mask_worker(std::move(masks));
  Status st = runner_->Execute(batch, logits_.data(), device_rows_, samples_, [&mask_worker] { mask_worker.Wait(); });
  mask_worker.Wait();
  if (!st.ok()) {
    INFERD_LOG_ERROR("forward failed: {}", st.message());
    for (const ScheduledRequest& sr : sched.scheduled) {
      outputs_->Finish(*sequences_.at(sr.request->id), RequestStatus::kFinishedError, "error", result);
    }
    ForgetFinishedGroups();
    return result;
  }
  scheduler_->OnStepComputed(sched);
  ApplyRows(sched, uses, units, result);
  ForgetFinishedGroups();
  if (options_.speculative.enabled() && options_.speculative.adaptive && decode_only) {
    ObserveSpeculation(running_before, speculated, counters_.generation_tokens - generated_before,
                       std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return result;
}

void EngineCore::ForgetFinishedGroups() {
  // Forget finished groups (their outputs are in result.finished).
  for (auto it = groups_.begin(); it != groups_.end();) {
    if (!it->second->done) {
      ++it;
      continue;
    }
    for (auto& s : it->second->seqs) {
      if (suffix_) suffix_->StopRequest(s->req.id, s->req.status == RequestStatus::kFinishedStopped ||
                                                       s->req.status == RequestStatus::kFinishedLength);
      if (draft_) draft_->Free(s->req.id);
      sequences_.erase(s->req.id);
    }
    it = groups_.erase(it);
  }
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
  auto tables = scheduler_->ReserveScratch(id, n);
  if (!tables) return ResourceExhausted(fmt::format("the KV cache cannot hold {} tokens now", n));
  Status st = runner_->Score(ids, *tables, options_.max_num_batched_tokens, vocab_size(), out);
  scheduler_->ReleaseScratch(id);
  return st;
}

}  // namespace inferd
