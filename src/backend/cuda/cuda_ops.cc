// The CUDA backend's ops::Ops: what the layer builder (ops/forward.cc) calls, enqueued on
// the backend's stream for the step_rows_ rows of the uploaded plan. Activations map to
// fixed buffers: q, k, v side by side in qkv_ (row stride q + 2 kv), gate and up in
// gate_up_ (row stride 2 ffn), the attention and FFN outputs in o_. The residual add of
// each block is fused into the next norm (AddRmsNorm), as the builder orders it.
#include <fmt/format.h>

#include <cmath>
#include <string>

#include "backend/cuda/cuda_backend_impl.h"

namespace inferd {

using ops::Act;
using ops::Weight;

Status CheckCudaFeatures(const ModelConfig& c) {
  std::string missing;
  auto need = [&](bool used, const char* what) {
    if (used) missing += (missing.empty() ? "" : ", ") + std::string(what);
  };
  need(c.qk_norm, "QK-norm");
  need(c.post_norms, "post-attention/FFN norms");
  need(c.activation != Activation::kSilu, "GELU");
  need(c.embedding_scale != 0.0f, "embedding scale");
  need(c.final_logit_softcap != 0.0f || c.attn_logit_softcap != 0.0f, "logit soft-capping");
  need(c.sliding_window > 0, "sliding-window attention");
  need(c.rope_local_theta > 0.0f, "per-layer RoPE bases");
  need(c.alibi, "ALiBi attention");
  if (missing.empty()) return Status::OK();
  return Unimplemented(fmt::format("the CUDA backend does not run {} yet (needed by this {} model); use "
                                   "--device cpu",
                                   missing, c.arch));
}

StatusOr<void*> CudaBackend::ActPtr(Act a) const {
  const ModelConfig& c = model_.config;
  const int64_t qd = c.num_heads * c.head_dim;
  switch (a) {
    case Act::kX: return x_;
    case Act::kXn: return xn_;
    case Act::kO: return o_;
    case Act::kQ: return qkv_;
    case Act::kK: return At(qkv_, qd);
    case Act::kV: return At(qkv_, qd + c.num_kv_heads * c.head_dim);
    case Act::kAttn: return attn_;
    case Act::kGate: return gate_up_;
    case Act::kUp: return At(gate_up_, c.intermediate_size);
    case Act::kAct: return act_;
  }
  return Internal("CUDA backend: unknown activation");
}

Status CudaBackend::Embed(Act out, float scale) {
  if (out != Act::kX || scale != 0.0f) return Internal("CUDA backend: Embed writes x, unscaled");
  INFERD_CUDA_TRY(cuda::Embedding(dt_, w_.tok_embd.data, Meta<int32_t>(meta_.token_ids), step_rows_,
                                  model_.config.hidden_size, x_, stream_));
  return Status::OK();
}

Status CudaBackend::AddRmsNorm(Act x, std::optional<Act> delta, int64_t layer, Weight norm, float eps, Act out) {
  if (x != Act::kX || out != Act::kXn || (delta && *delta != Act::kO)) {
    return Internal("CUDA backend: AddRmsNorm is x += o; xn = norm(x)");
  }
  const cuda::DeviceLayer& l = w_.layers[static_cast<size_t>(layer)];
  const float* w = norm == Weight::kAttnNorm ? l.attn_norm : norm == Weight::kFfnNorm ? l.ffn_norm : nullptr;
  if (w == nullptr) return Internal("CUDA backend: AddRmsNorm takes the attention or FFN norm");
  INFERD_CUDA_TRY(cuda::AddRmsNorm(dt_, x_, delta ? o_ : nullptr, w, step_rows_, model_.config.hidden_size, eps, xn_,
                                   stream_));
  return Status::OK();
}

Status CudaBackend::RmsNorm(Act, int64_t, Weight, float) {
  return Internal("CUDA backend: post norms are not implemented (CheckCudaFeatures)");
}

Status CudaBackend::HeadRmsNorm(Act, int64_t, Weight, float) {
  return Internal("CUDA backend: QK-norm is not implemented (CheckCudaFeatures)");
}

Status CudaBackend::Linear(int64_t layer, Weight w, bool bias) {
  const ModelConfig& c = model_.config;
  const cuda::DeviceLayer& l = w_.layers[static_cast<size_t>(layer)];
  const int64_t rows = step_rows_;
  switch (w) {
    case Weight::kQkv:  // [R, q | k | v]
      INFERD_RETURN_IF_ERROR(Gemm(l.wqkv, xn_, rows, qkv_, qkv_dim_));
      if (bias && l.bqkv) INFERD_CUDA_TRY(cuda::AddBias(dt_, qkv_, qkv_dim_, l.bqkv, rows, qkv_dim_, stream_));
      return Status::OK();
    case Weight::kO:
      return Gemm(l.wo, attn_, rows, o_, c.hidden_size);
    case Weight::kGateUp:  // [R, gate | up]
      return Gemm(l.w_gate_up, xn_, rows, gate_up_, 2 * c.intermediate_size);
    case Weight::kDown:
      return Gemm(l.w_down, act_, rows, o_, c.hidden_size);
    default:
      return Internal("CUDA backend: Linear of a norm weight");
  }
}

Status CudaBackend::Rope(int64_t) {
  const ModelConfig& c = model_.config;
  INFERD_ASSIGN_OR_RETURN(void* k, ActPtr(Act::kK));
  INFERD_CUDA_TRY(cuda::Rope(dt_, qkv_, k, qkv_dim_, Meta<int32_t>(meta_.positions), cos_sin_, step_rows_,
                             c.num_heads, c.num_kv_heads, c.head_dim, c.rope_style == RopeStyle::kNeox, stream_));
  return Status::OK();
}

Status CudaBackend::Attention(int64_t layer, const ops::AttnParams& p) {
  const ModelConfig& c = model_.config;
  if (p.sliding_window != 0 || p.softcap != 0.0f || p.alibi) {
    return Internal("CUDA backend: sliding windows, soft-capping and ALiBi are not implemented (CheckCudaFeatures)");
  }
  INFERD_ASSIGN_OR_RETURN(void* k, ActPtr(Act::kK));
  INFERD_ASSIGN_OR_RETURN(void* v, ActPtr(Act::kV));
  INFERD_CUDA_TRY(cuda::WriteKv(dt_, k, v, qkv_dim_, Meta<int64_t>(meta_.slot_mapping), step_rows_, c.num_kv_heads,
                                c.head_dim, kv_shape_.block_size, k_cache_[layer], v_cache_[layer], stream_));
  step_attn_.k_cache = k_cache_[layer];
  step_attn_.v_cache = v_cache_[layer];
  step_attn_.scale = p.scale;
  INFERD_CUDA_TRY(cuda::PagedAttention(step_attn_, stream_));
  return Status::OK();
}

Status CudaBackend::GatedAct(Activation act) {
  if (act != Activation::kSilu) return Internal("CUDA backend: only SiLU is implemented (CheckCudaFeatures)");
  INFERD_CUDA_TRY(cuda::SiluMul(dt_, gate_up_, step_rows_, model_.config.intermediate_size, act_, stream_));
  return Status::OK();
}

Status CudaBackend::Add(Act x, Act delta) {
  if (x != Act::kX || delta != Act::kO) return Internal("CUDA backend: Add is x += o");
  // The fused kernel also writes a normed copy to xn_, which nothing reads: the final norm
  // runs on the gathered logits rows.
  const ModelConfig& c = model_.config;
  INFERD_CUDA_TRY(cuda::AddRmsNorm(dt_, x_, o_, w_.output_norm, step_rows_, c.hidden_size, c.rms_norm_eps, xn_,
                                   stream_));
  return Status::OK();
}

Status CudaBackend::Logits(int64_t first, int64_t count, float eps, float softcap) {
  if (softcap != 0.0f) return Internal("CUDA backend: soft-capping is not implemented (CheckCudaFeatures)");
  const ModelConfig& c = model_.config;
  INFERD_CUDA_TRY(cuda::GatherRmsNorm(dt_, x_, Meta<int32_t>(meta_.logits_rows) + first, count, c.hidden_size,
                                      w_.output_norm, eps, xn_, stream_));
  return Gemm(w_.output, xn_, count, logits_dev_, c.vocab_size, /*out_fp32=*/true);
}

}  // namespace inferd
