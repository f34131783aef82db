#include "backend/cuda/sample_host.h"

namespace inferd::cuda {
namespace {

const SamplingParams& ParamsOf(const SampleInput& in) {
  static const SamplingParams kDefaults;
  return in.params != nullptr ? *in.params : kDefaults;
}

}  // namespace

DeviceSampleParams MakeDeviceSampleParams(const SampleInput& in, int32_t edit_begin, int32_t edit_end,
                                          int32_t mask_row) {
  const SamplingParams& p = ParamsOf(in);
  DeviceSampleParams d;
  d.temperature = p.temperature;
  d.top_k = p.top_k;
  d.top_p = p.top_p;
  d.min_p = p.min_p;
  d.seed = in.seed;
  d.step = static_cast<uint64_t>(in.step);
  d.edit_begin = edit_begin;
  d.edit_end = edit_end;
  d.mask_row = mask_row;
  return d;
}

}  // namespace inferd::cuda
