#include "engine/draft_proposer.h"

#include <fmt/format.h>

#include <algorithm>

#include "sample/sampler.h"
#include "util/logging.h"

namespace inferd {
namespace {

// The draft must speak the target's tokens: the same vocabulary, piece for piece.
Status CheckSameVocabulary(const LoadedModel& draft, const LoadedModel& target, const std::string& path) {
  if (!draft.tokenizer) return InvalidArgument("draft model " + path + " has no tokenizer");
  const Tokenizer &d = *draft.tokenizer, &t = *target.tokenizer;
  if (draft.config.vocab_size != target.config.vocab_size || d.vocab_size() != t.vocab_size()) {
    return InvalidArgument(fmt::format("draft model {} has a vocabulary of {} tokens, the target {}: a draft model "
                                       "needs the target's tokenizer",
                                       path, draft.config.vocab_size, target.config.vocab_size));
  }
  for (int32_t id = 0; id < t.vocab_size(); ++id) {
    if (d.TokenToPiece(id, false) != t.TokenToPiece(id, false)) {
      return InvalidArgument(fmt::format("draft model {}: token {} is {:?}, the target's is {:?}: a draft model needs "
                                         "the target's tokenizer",
                                         path, id, d.TokenToPiece(id, false), t.TokenToPiece(id, false)));
    }
  }
  return Status::OK();
}

}  // namespace

StatusOr<std::unique_ptr<DraftProposer>> DraftProposer::Create(const std::string& path, const LoadedModel& target,
                                                               const Backend& target_backend,
                                                               const EngineOptions& options) {
  if (target_backend.name() != "cpu") {
    return InvalidArgument("--speculative-config: method \"draft_model\" runs on the CPU backend only (for now)");
  }
  auto loaded = LoadModel(LoadOptions{.model = path});
  if (!loaded.ok()) return InvalidArgument("draft model " + path + ": " + loaded.status().message());
  std::unique_ptr<DraftProposer> p(new DraftProposer());
  p->model_ = std::move(loaded).value();
  INFERD_RETURN_IF_ERROR(CheckSameVocabulary(*p->model_, target, path));
  EngineOptions draft_options = options;
  draft_options.device = "cpu";
  draft_options.kv_cache_dtype = "auto";
  INFERD_ASSIGN_OR_RETURN(BackendOptions bo, MakeBackendOptions(*p->model_, draft_options));
  // As many tokens as the target's cache holds.
  const KvCacheShape& tk = target_backend.kv_shape();
  bo.kv_cache_bytes = tk.num_blocks / tk.num_groups() * tk.block_size * bo.kv.bytes_per_token() * bo.kv.num_groups();
  p->max_model_len_ = bo.max_model_len;
  INFERD_ASSIGN_OR_RETURN(p->backend_, CreateBackend(*p->model_, bo));
  const KvCacheShape& shape = p->backend_->kv_shape();
  p->kv_ = std::make_unique<KvCacheManager>(shape.num_blocks, shape.block_size, /*enable_prefix_caching=*/false,
                                            shape.layout.windows());
  p->max_batch_ = std::max<int64_t>(1, options.max_num_batched_tokens);
  INFERD_LOG_INFO("draft model: {} ({}, {:.1f}M parameters), KV cache {} blocks x {} tokens", path,
                  p->model_->config.arch, p->model_->config.NumParameters() / 1e6, shape.num_blocks,
                  shape.block_size);
  return p;
}

std::vector<std::vector<int32_t>> DraftProposer::Failed(const Status& st, std::span<const Input> inputs) {
  // The target does not need drafts: log, forget what the draft held, propose nothing.
  INFERD_LOG_ERROR("draft model forward failed: {}", st.message());
  for (const Input& in : inputs) Free(*in.id);
  return std::vector<std::vector<int32_t>>(inputs.size());
}

void DraftProposer::Free(const std::string& id) {
  held_.erase(id);
  kv_->Free(id);
}

Status DraftProposer::Forward(std::span<const Chunk> chunks, std::vector<int32_t>* argmax) {
  ForwardBatch batch;
  const int64_t groups = kv_->num_groups();
  for (const Chunk& c : chunks) {
    const int64_t n = static_cast<int64_t>(c.tokens.size());
    const int64_t row0 = batch.AddSeq(n, c.first_pos + n, groups, [&](int64_t g) { return kv_->BlockTable(*c.id, g).data(); });
    batch.AddRows(c.tokens, c.first_pos);
    if (c.wants_logits) batch.logits_rows.push_back(row0 + n - 1);
  }
  const int64_t vocab = model_->config.vocab_size;
  logits_.resize(batch.logits_rows.size() * static_cast<size_t>(vocab));
  INFERD_RETURN_IF_ERROR(backend_->Forward(batch, logits_.data()));
  argmax->clear();
  for (size_t r = 0; r < batch.logits_rows.size(); ++r) {
    argmax->push_back(ArgmaxToken(std::span<const float>(&logits_[r * vocab], static_cast<size_t>(vocab))));
  }
  return Status::OK();
}

std::vector<std::vector<int32_t>> DraftProposer::Propose(std::span<const Input> inputs) {
  std::vector<std::vector<int32_t>> out(inputs.size());
  // 1. Catch up: each request's tokens past the longest prefix the draft still holds (the
  //    last token always, as its logits give the first draft), in chunks of the token budget.
  struct Pending {
    size_t input;
    int64_t next, end;
  };
  std::vector<Pending> pending;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Input& in = inputs[i];
    const int64_t n = static_cast<int64_t>(in.tokens.size());
    if (n == 0 || in.num_tokens <= 0 || n + in.num_tokens - 1 > max_model_len_) continue;
    std::vector<int32_t>& held = held_[*in.id];
    int64_t keep = 0;
    while (keep < static_cast<int64_t>(held.size()) && keep < n - 1 && held[keep] == in.tokens[keep]) ++keep;
    held.resize(static_cast<size_t>(keep));
    kv_->TrimSlots(*in.id, keep);
    if (!kv_->AllocateSlots(*in.id, keep, n - keep + in.num_tokens - 1)) {
      Free(*in.id);  // no room: no drafts for it this step
      continue;
    }
    pending.push_back({i, keep, n});
  }
  std::vector<int32_t> argmax;
  std::vector<Chunk> chunks;
  std::vector<size_t> finishing;  // inputs whose last catch-up row is in this forward
  while (!pending.empty()) {
    chunks.clear();
    finishing.clear();
    int64_t budget = max_batch_;
    for (Pending& p : pending) {
      if (budget == 0) break;
      const int64_t m = std::min(budget, p.end - p.next);
      const Input& in = inputs[p.input];
      chunks.push_back({in.id, in.tokens.subspan(static_cast<size_t>(p.next), static_cast<size_t>(m)), p.next,
                        p.next + m == p.end});
      if (p.next + m == p.end) finishing.push_back(p.input);
      p.next += m;
      budget -= m;
    }
    if (Status st = Forward(chunks, &argmax); !st.ok()) return Failed(st, inputs);
    for (size_t f = 0; f < finishing.size(); ++f) {
      const Input& in = inputs[finishing[f]];
      out[finishing[f]].push_back(argmax[f]);
      held_[*in.id].assign(in.tokens.begin(), in.tokens.end());
    }
    std::erase_if(pending, [](const Pending& p) { return p.next == p.end; });
  }
  // 2. Draft j + 1 from draft j, one row per request still drafting.
  for (int j = 1;; ++j) {
    chunks.clear();
    std::vector<size_t> active;
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (static_cast<int>(out[i].size()) != j || inputs[i].num_tokens <= j) continue;
      std::vector<int32_t>& held = held_[*inputs[i].id];
      chunks.push_back({inputs[i].id, std::span<const int32_t>(&out[i].back(), 1), static_cast<int64_t>(held.size()),
                        true});
      active.push_back(i);
    }
    if (active.empty()) break;
    if (Status st = Forward(chunks, &argmax); !st.ok()) return Failed(st, inputs);
    for (size_t a = 0; a < active.size(); ++a) {
      held_[*inputs[active[a]].id].push_back(out[active[a]].back());  // its K/V is in the cache now
      out[active[a]].push_back(argmax[a]);
    }
  }
  return out;
}

}  // namespace inferd
