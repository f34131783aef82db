#include "engine/engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <deque>

#include "sample/sampler.h"
#include "sample/stop_checker.h"
#include "util/logging.h"

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

constexpr int64_t kDefaultKvBytes = int64_t{1} << 30;

}  // namespace

// One sampled continuation (a request with n > 1 has n of them).
struct Engine::Sequence {
  size_t request_index = 0;
  int sample_index = 0;
  const GenerateRequest* request = nullptr;
  std::vector<int32_t> tokens;  // prompt followed by generated tokens
  int64_t num_prompt = 0;
  int64_t num_computed = 0;     // tokens whose K/V are in the cache
  int64_t max_tokens = 0;
  std::vector<int32_t> blocks;
  uint64_t seed = 0;
  std::unique_ptr<IncrementalDetokenizer> detok;
  CompletionOutput out;
  std::vector<std::optional<PositionLogprobs>> prompt_logprobs;
  bool finished = false;
  double first_token_time = 0;

  std::span<const int32_t> output_ids() const {
    return std::span<const int32_t>(tokens).subspan(static_cast<size_t>(num_prompt));
  }
};

StatusOr<std::unique_ptr<Engine>> Engine::Create(std::unique_ptr<LoadedModel> model, const EngineOptions& options) {
  std::unique_ptr<Engine> e(new Engine());
  e->options_ = options;
  const ModelConfig& c = model->config;
  if (options.block_size <= 0 || options.block_size > 1024) {
    return InvalidArgument(fmt::format("--block-size must be in [1, 1024], got {}", options.block_size));
  }
  if (options.max_num_batched_tokens <= 0) return InvalidArgument("--max-num-batched-tokens must be positive");
  if (options.max_num_seqs <= 0) return InvalidArgument("--max-num-seqs must be positive");
  KvCacheShape shape;
  shape.num_layers = c.num_layers;
  shape.num_kv_heads = c.num_kv_heads;
  shape.head_dim = c.head_dim;
  shape.block_size = options.block_size;
  int64_t max_len = options.max_model_len > 0 ? options.max_model_len : c.max_position_embeddings;
  int64_t bytes = options.kv_cache_bytes;
  if (bytes <= 0) {
    bytes = std::max(kDefaultKvBytes, (max_len + shape.block_size) * shape.bytes_per_token());
  }
  shape.num_blocks = NumBlocksForBytes(shape, bytes);
  const int64_t capacity = shape.num_blocks * shape.block_size;
  if (capacity < max_len) {
    if (options.max_model_len > 0) {
      return InvalidArgument(fmt::format(
          "max model length {} is larger than the KV cache capacity ({} tokens in {}); raise --kv-cache-memory or "
          "lower --max-model-len",
          max_len, capacity, bytes));
    }
    INFERD_LOG_WARN("KV cache holds {} tokens, less than the model's context {}; max model length set to {}", capacity,
                    max_len, capacity);
    max_len = capacity;
  }
  if (max_len <= 0) return InvalidArgument("the KV cache is too small for a single block");
  e->max_model_len_ = max_len;
  e->kv_ = std::make_unique<KvCache>(shape);
  e->pool_ = std::make_unique<BlockPool>(shape.num_blocks);
  e->model_ = std::move(model);
  e->llama_ = std::make_unique<LlamaModel>(e->model_->config, e->model_->weights);
  return e;
}

void LogModelSummary(const Engine& engine) {
  const LoadedModel& m = engine.model();
  const ModelConfig& c = m.config;
  INFERD_LOG_INFO("model: {} ({}, {}), architecture {}, {:.1f}M parameters, {} layers, hidden {}, heads {}/{} (q/kv)",
                  m.path, m.format, m.weight_type, c.arch, c.NumParameters() / 1e6, c.num_layers, c.hidden_size,
                  c.num_heads, c.num_kv_heads);
  INFERD_LOG_INFO("weights: {:.1f} MiB", m.weights.nbytes / 1048576.0);
  const int64_t tokens = engine.kv_capacity_tokens();
  INFERD_LOG_INFO("KV cache: {} tokens ({:.1f} MiB, fp32); max model length {}; maximum concurrency for {}-token "
                  "requests: {:.2f}x",
                  tokens, tokens * c.KvBytesPerToken(4) / 1048576.0, engine.max_model_len(), engine.max_model_len(),
                  static_cast<double>(tokens) / engine.max_model_len());
}

std::vector<StatusOr<RequestOutput>> Engine::Generate(std::vector<GenerateRequest> requests,
                                                      const std::function<void(size_t)>& on_finished) {
  const Tokenizer& tok = tokenizer();
  const int64_t bs = kv_->shape().block_size;
  std::vector<StatusOr<RequestOutput>> results(requests.size(), Status(StatusCode::kInternal, "not run"));
  std::vector<RequestOutput> outputs(requests.size());
  std::vector<int> remaining(requests.size(), 0);
  std::deque<std::unique_ptr<Sequence>> waiting;
  const double arrival = NowSeconds();

  for (size_t i = 0; i < requests.size(); ++i) {
    const GenerateRequest& r = requests[i];
    Status valid = r.params.Validate();
    const int64_t prompt_len = static_cast<int64_t>(r.prompt_token_ids.size());
    if (valid.ok() && prompt_len == 0) valid = InvalidArgument("the prompt is empty");
    if (valid.ok() && prompt_len >= max_model_len_) {
      valid = InvalidArgument(fmt::format(
          "this model's maximum context length is {} tokens, but the prompt has {} tokens (no room to generate)",
          max_model_len_, prompt_len));
    }
    for (int32_t id : r.prompt_token_ids) {
      if (valid.ok() && (id < 0 || id >= vocab_size())) {
        valid = InvalidArgument(fmt::format("prompt token id {} is out of range [0, {})", id, vocab_size()));
      }
    }
    if (!valid.ok()) {
      results[i] = valid;
      if (on_finished) on_finished(i);
      continue;
    }
    outputs[i].request_id = r.request_id;
    outputs[i].prompt = r.prompt;
    outputs[i].prompt_token_ids = r.prompt_token_ids;
    outputs[i].outputs.resize(r.params.n);
    outputs[i].metrics.arrival_time = arrival;
    remaining[i] = r.params.n;
    const uint64_t base_seed = r.params.seed ? static_cast<uint64_t>(*r.params.seed) : MixSeed(options_.seed, i);
    for (int s = 0; s < r.params.n; ++s) {
      auto seq = std::make_unique<Sequence>();
      seq->request_index = i;
      seq->sample_index = s;
      seq->request = &requests[i];
      seq->tokens = r.prompt_token_ids;
      seq->num_prompt = prompt_len;
      const int64_t room = max_model_len_ - prompt_len;
      seq->max_tokens = r.params.max_tokens ? std::min<int64_t>(*r.params.max_tokens, room) : room;
      seq->seed = s == 0 ? base_seed : MixSeed(base_seed, static_cast<uint64_t>(s));
      seq->detok = std::make_unique<IncrementalDetokenizer>(tok, r.params.skip_special_tokens,
                                                            std::span<const int32_t>(r.prompt_token_ids));
      seq->out.index = s;
      if (r.params.logprobs) seq->out.logprobs.emplace();
      waiting.push_back(std::move(seq));
    }
  }

  std::vector<std::unique_ptr<Sequence>> running;
  auto finish_sequence = [&](std::unique_ptr<Sequence>& seq) {
    pool_->Free(seq->blocks);
    seq->blocks.clear();
    RequestOutput& ro = outputs[seq->request_index];
    if (seq->sample_index == 0 && seq->request->params.prompt_logprobs) ro.prompt_logprobs = seq->prompt_logprobs;
    ro.outputs[seq->sample_index] = std::move(seq->out);
    if (seq->first_token_time > 0 && (ro.metrics.first_token_time == 0 || seq->first_token_time < ro.metrics.first_token_time)) {
      ro.metrics.first_token_time = seq->first_token_time;
    }
    if (--remaining[seq->request_index] == 0) {
      ro.finished = true;
      ro.metrics.finished_time = ro.metrics.last_token_time = NowSeconds();
      results[seq->request_index] = std::move(ro);
      if (on_finished) on_finished(seq->request_index);
    }
  };

  while (!waiting.empty() || !running.empty()) {
    // Admit waiting sequences whose whole length fits in the free blocks.
    while (!waiting.empty() && static_cast<int64_t>(running.size()) < options_.max_num_seqs) {
      Sequence& s = *waiting.front();
      const int64_t need = (s.num_prompt + s.max_tokens + bs - 1) / bs;
      if (need > pool_->num_blocks()) {
        results[s.request_index] = ResourceExhausted(fmt::format(
            "request needs {} KV blocks but the cache has only {}", need, pool_->num_blocks()));
        waiting.pop_front();
        continue;
      }
      if (need > pool_->num_free()) break;
      auto blocks = pool_->Allocate(need);
      s.blocks = std::move(blocks).value();
      if (outputs[s.request_index].metrics.first_scheduled_time == 0) {
        outputs[s.request_index].metrics.first_scheduled_time = NowSeconds();
      }
      running.push_back(std::move(waiting.front()));
      waiting.pop_front();
    }
    Step(running);
    for (auto& seq : running) {
      if (seq->finished) finish_sequence(seq);
    }
    std::erase_if(running, [](const std::unique_ptr<Sequence>& s) { return !s || s->finished; });
  }
  return results;
}

void Engine::Step(std::vector<std::unique_ptr<Sequence>>& running) {
  // Build the flat batch: decodes first (one token each), then prompt chunks.
  ForwardBatch batch;
  struct Sampled { Sequence* seq; int64_t row; bool samples; int64_t prompt_begin; int64_t count; };
  std::vector<Sampled> plan;
  int64_t budget = options_.max_num_batched_tokens;
  auto schedule = [&](Sequence& s, int64_t count) {
    const int64_t row0 = static_cast<int64_t>(batch.token_ids.size());
    ops::AttnSeq a;
    a.token_begin = row0;
    a.num_tokens = count;
    a.context_len = s.num_computed + count;
    a.block_table = s.blocks.data();
    batch.seqs.push_back(a);
    for (int64_t i = 0; i < count; ++i) {
      batch.token_ids.push_back(s.tokens[s.num_computed + i]);
      batch.positions.push_back(static_cast<int32_t>(s.num_computed + i));
    }
    const bool samples = s.num_computed + count == static_cast<int64_t>(s.tokens.size());
    plan.push_back({&s, row0, samples, s.num_computed, count});
    budget -= count;
  };
  for (auto& s : running) {
    if (budget <= 0) break;
    if (static_cast<int64_t>(s->tokens.size()) - s->num_computed == 1 && s->num_computed >= s->num_prompt) schedule(*s, 1);
  }
  for (auto& s : running) {
    if (budget <= 0) break;
    const int64_t left = static_cast<int64_t>(s->tokens.size()) - s->num_computed;
    if (left >= 1 && !(left == 1 && s->num_computed >= s->num_prompt)) schedule(*s, std::min(left, budget));
  }
  if (batch.token_ids.empty()) return;

  // Logits rows: the last row of every sampling sequence, plus prompt rows for prompt_logprobs.
  struct RowUse { Sampled* p; int64_t prompt_pos; };  // prompt_pos < 0: sampling row
  std::vector<RowUse> uses;
  for (Sampled& p : plan) {
    const auto& params = p.seq->request->params;
    if (params.prompt_logprobs && p.seq->sample_index == 0 && p.prompt_begin < p.seq->num_prompt) {
      for (int64_t i = 0; i < p.count; ++i) {
        const int64_t pos = p.prompt_begin + i;
        if (pos + 1 < p.seq->num_prompt) {
          batch.logits_rows.push_back(p.row + i);
          uses.push_back({&p, pos});
        }
      }
    }
    if (p.samples) {
      batch.logits_rows.push_back(p.row + p.count - 1);
      uses.push_back({&p, -1});
    }
  }
  const int64_t vocab = vocab_size();
  logits_.resize(static_cast<size_t>(batch.logits_rows.size() * vocab));
  Status st = llama_->Forward(batch, *kv_, logits_.data());
  for (Sampled& p : plan) p.seq->num_computed += p.count;
  if (!st.ok()) {
    for (Sampled& p : plan) {
      p.seq->out.finish_reason = "error";
      p.seq->finished = true;
    }
    INFERD_LOG_ERROR("forward failed: {}", st.message());
    return;
  }

  const Tokenizer& tok = tokenizer();
  for (size_t u = 0; u < uses.size(); ++u) {
    Sequence& s = *uses[u].p->seq;
    const SamplingParams& params = s.request->params;
    std::span<float> row(&logits_[u * vocab], static_cast<size_t>(vocab));
    if (uses[u].prompt_pos >= 0) {
      if (s.prompt_logprobs.empty()) s.prompt_logprobs.push_back(std::nullopt);  // first prompt token
      const int32_t target = s.tokens[uses[u].prompt_pos + 1];
      RowLogprobs rl = ComputeRowLogprobs(row, *params.prompt_logprobs, target);
      PositionLogprobs pl;
      pl[target] = Logprob{rl.target_logprob, rl.target_rank, tok.TokenToPiece(target, false)};
      for (size_t k = 0; k < rl.top.size(); ++k) {
        pl.emplace(rl.top[k].first, Logprob{rl.top[k].second, static_cast<int>(k) + 1, tok.TokenToPiece(rl.top[k].first, false)});
      }
      s.prompt_logprobs.push_back(std::move(pl));
      continue;
    }
    std::vector<int32_t> stop_ids(params.stop_token_ids.begin(), params.stop_token_ids.end());
    if (!params.ignore_eos) stop_ids.insert(stop_ids.end(), tok.eog_ids().begin(), tok.eog_ids().end());
    SampleInput in;
    in.params = &params;
    in.prompt_ids = std::span<const int32_t>(s.tokens).first(static_cast<size_t>(s.num_prompt));
    in.output_ids = s.output_ids();
    in.seed = s.seed;
    in.step = static_cast<int64_t>(in.output_ids.size());
    in.stop_ids = stop_ids;
    SampleResult r = SampleToken(row, in);
    s.tokens.push_back(r.token);
    if (s.first_token_time == 0) s.first_token_time = NowSeconds();
    CompletionOutput& out = s.out;
    out.token_ids.push_back(r.token);
    out.cumulative_logprob += r.logprob;
    if (out.logprobs) {
      PositionLogprobs pl;
      pl[r.token] = Logprob{r.logprob, r.rank, tok.TokenToPiece(r.token, false)};
      for (size_t k = 0; k < r.top_logprobs.size(); ++k) {
        const auto& [id, lp] = r.top_logprobs[k];
        pl.emplace(id, Logprob{lp, static_cast<int>(k) + 1, tok.TokenToPiece(id, false)});
      }
      out.logprobs->push_back(std::move(pl));
    }
    const int64_t num_out = static_cast<int64_t>(out.token_ids.size());
    StopDecision d = CheckStopToken(params, r.token, tok.IsEog(r.token), num_out,
                                    static_cast<int64_t>(s.tokens.size()), max_model_len_);
    if (!d.stopped && num_out >= s.max_tokens) {
      d.stopped = true;
      d.finish_reason = "length";
    }
    // Text: a stop token's own text is not part of the output.
    const bool stop_token = d.stopped && std::holds_alternative<int32_t>(d.stop_reason);
    const bool eos_stop = d.stopped && d.finish_reason && std::string(d.finish_reason) == "stop" &&
                          std::holds_alternative<std::monostate>(d.stop_reason);
    if (!stop_token && !eos_stop) {
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
    if (d.stopped) {
      out.finish_reason = d.finish_reason ? d.finish_reason : "stop";
      out.stop_reason = d.stop_reason;
      s.finished = true;
    }
  }
}

Status Engine::ScoreTokens(std::span<const int32_t> ids, float* out) {
  const int64_t n = static_cast<int64_t>(ids.size());
  if (n == 0) return Status::OK();
  if (n > max_model_len_) {
    return InvalidArgument(fmt::format("sequence of {} tokens exceeds the maximum model length {}", n, max_model_len_));
  }
  const int64_t bs = kv_->shape().block_size;
  INFERD_ASSIGN_OR_RETURN(std::vector<int32_t> blocks, pool_->Allocate((n + bs - 1) / bs));
  Status st;
  for (int64_t begin = 0; begin < n && st.ok(); begin += options_.max_num_batched_tokens) {
    const int64_t count = std::min(options_.max_num_batched_tokens, n - begin);
    ForwardBatch batch;
    batch.seqs.push_back(ops::AttnSeq{0, count, begin + count, blocks.data()});
    for (int64_t i = 0; i < count; ++i) {
      batch.token_ids.push_back(ids[begin + i]);
      batch.positions.push_back(static_cast<int32_t>(begin + i));
      batch.logits_rows.push_back(i);
    }
    st = llama_->Forward(batch, *kv_, out + begin * vocab_size());
  }
  pool_->Free(blocks);
  return st;
}

}  // namespace inferd
