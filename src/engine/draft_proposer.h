// Draft-model proposals for speculative decoding (issue 19; vLLM's
// `--speculative-config '{"method": "draft_model", "model": PATH, "num_speculative_tokens": k}'`,
// llama.cpp's `-md`): a smaller model with the same tokenizer guesses the next k tokens of
// each decoding request, running k forwards of its own per step (the first catches it up on
// the tokens the target accepted since, batched over the requests). Drafts are the draft's
// greedy choices, a point-mass proposal: the engine's verification (the target samples each
// row and keeps drafts while they match) is then exact for greedy and sampled requests alike
// (sample/rejection_sampler.h).
// The draft has its own backend and paged KV cache (as many tokens as the target's), and per
// request the tokens it holds K/V for; a step keeps the longest prefix of those that still
// matches the request's tokens (what the target rejected is recomputed), so preemption and
// rejection need no extra bookkeeping. A request the draft's cache cannot hold gets no drafts.
// Thread-safety: none; the engine thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/backend.h"
#include "engine/engine_core.h"
#include "kv/kv_cache_manager.h"
#include "model/model.h"

namespace inferd {

class DraftProposer {
 public:
  // Loads the draft model at `path` and its backend on options.device, with a KV cache for
  // as many tokens as the target's. Errors: the file does not load, its vocabulary or
  // tokenizer differs from the target's, or the device is not the CPU.
  static StatusOr<std::unique_ptr<DraftProposer>> Create(const std::string& path, const LoadedModel& target,
                                                         const Backend& target_backend, const EngineOptions& options);

  struct Input {
    const std::string* id = nullptr;
    std::span<const int32_t> tokens;  // the request's tokens (prompt + output), all verified
    int num_tokens = 0;               // drafts wanted (>= 1)
  };
  // One vector of drafts per input (empty where the draft's cache had no room).
  std::vector<std::vector<int32_t>> Propose(std::span<const Input> inputs);
  // Drops a request's K/V (finished or aborted).
  void Free(const std::string& id);

  const LoadedModel& model() const { return *model_; }
  int64_t num_blocks() const { return kv_->num_blocks(); }

 private:
  DraftProposer() = default;
  // Tokens of one request for one forward, from position first_pos.
  struct Chunk {
    const std::string* id;
    std::span<const int32_t> tokens;
    int64_t first_pos;
    bool wants_logits;  // the argmax after its last token is wanted
  };
  // One forward over `chunks`; *argmax gets the greedy token of each chunk that wants logits,
  // in order.
  Status Forward(std::span<const Chunk> chunks, std::vector<int32_t>* argmax);
  std::vector<std::vector<int32_t>> Failed(const Status& st, std::span<const Input> inputs);

  std::unique_ptr<LoadedModel> model_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<KvCacheManager> kv_;
  int64_t max_model_len_ = 0;
  int64_t max_batch_ = 512;  // rows per forward (the target's token budget)
  std::unordered_map<std::string, std::vector<int32_t>> held_;  // tokens with K/V in the draft's cache
  std::vector<float> logits_;
};

}  // namespace inferd
