// Verifying speculative tokens (issue 19): speculative sampling as in Leviathan et al. 2023
// and Chen et al. 2023. A proposer guessed k tokens; one forward of the target model gives its
// next-token distribution at each of the k + 1 positions (after every logits processor:
// penalties, masks, temperature, top-k/p). Draft token i is kept with probability
// min(1, p_i(d) / q_i(d)); at the first rejection a token is drawn from the residual
// max(0, p_i - q_i) (normalised) and the step ends; when all k are kept, a bonus token is
// drawn from p_{k+1}. Every emitted token is then distributed exactly as the target model
// would have sampled it alone. A proposer without probabilities (ngram, suffix) is a point
// mass: q_i(d) = 1, so d is kept with probability p_i(d) and the residual is p_i without d.
// Greedy decoding keeps a draft token exactly when it is the target's argmax, so the output
// is token for token the non-speculative one.
// Thread-safety: pure functions (the caller owns the random source).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace inferd {

struct Verification {
  std::vector<int32_t> tokens;  // the kept draft tokens, then one drawn (recovered or bonus)
  int num_accepted = 0;         // draft tokens kept (tokens.size() - 1)
};

// target: k + 1 probability distributions over the vocabulary (each summing to 1); draft: k
// tokens; draft_probs: the proposer's k distributions, or empty for a point-mass proposer;
// uniform: a draw in [0, 1) per call (called once per acceptance test and once for the
// final draw).
Verification VerifySpeculative(std::span<const int32_t> draft, std::span<const std::span<const float>> target,
                               std::span<const std::span<const float>> draft_probs,
                               const std::function<double()>& uniform);

// Greedy verification over the target's k + 1 rows of logits (or probabilities): keep draft
// tokens while each is its row's argmax (lowest id on ties, as the sampler), then the argmax
// of the next row.
Verification VerifyGreedy(std::span<const int32_t> draft, std::span<const std::span<const float>> target);

}  // namespace inferd
