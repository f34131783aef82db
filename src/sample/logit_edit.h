// One sparse logit edit and the allowed-token mask test, shared by the CPU sampler and the
// CUDA SampleRows kernel (plain C++, also compiled by nvcc). The pipeline they belong to is
// described in sample/logits_processors.h.
#pragma once

#include <cmath>
#include <cstdint>

#include "util/host_device.h"

namespace inferd {

// A sparse edit of one logit l (a row's edits name distinct tokens):
//   l += bias;                        // logit_bias
//   if (set_neg_inf) l = -inf;        // min_tokens suppression of stop ids
//   l = l > 0 ? l / rep : l * rep;    // repetition (once per distinct token)
//   l -= freq;                        // frequency_penalty * count (an fp32 product)
//   l -= presence;                    // presence_penalty
// The defaults are identities, so one edit per token expresses any combination.
struct LogitEdit {
  int32_t token = 0;
  int32_t set_neg_inf = 0;
  float bias = 0.0f;
  float rep = 1.0f;
  float freq = 0.0f;
  float presence = 0.0f;
};

// The edit's arithmetic, operation by operation in fp32 (no contraction on the device, where
// nvcc would otherwise fuse; the host sampler is built without FMA).
INFERD_HOST_DEVICE inline float ApplyLogitEdit(float l, const LogitEdit& e) {
#if defined(__CUDA_ARCH__)
  l = __fadd_rn(l, e.bias);
  if (e.set_neg_inf != 0) l = -INFINITY;
  l = l > 0.0f ? __fdiv_rn(l, e.rep) : __fmul_rn(l, e.rep);
  l = __fsub_rn(l, e.freq);
  return __fsub_rn(l, e.presence);
#else
  l += e.bias;
  if (e.set_neg_inf != 0) l = -__builtin_inff();
  l = l > 0.0f ? l / e.rep : l * e.rep;
  l -= e.freq;
  return l - e.presence;
#endif
}

// Whether token t passes an allowed-token mask (bit t % 32 of word t / 32; tokens past the
// mask are disallowed; an empty mask allows everything).
INFERD_HOST_DEVICE inline bool MaskAllows(const uint32_t* mask, int64_t words, int64_t t) {
  return mask == nullptr || (t / 32 < words && ((mask[t / 32] >> (t % 32)) & 1u) != 0);
}

}  // namespace inferd
