#include "backend/cpu_forward.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/qgemm.h"
#include "ops/forward.h"
#include "util/bytes.h"
#include "util/mmap.h"
#include "util/logging.h"

namespace inferd {

using ops::Act;
using ops::Weight;

namespace {
bool IsFloatWeight(const Matrix& m) {
  return m.type == GgmlType::kF32 || m.type == GgmlType::kF16 || m.type == GgmlType::kBF16;
}
}  // namespace

void PrepareCpuWeights(ModelWeights& weights) {
  if (weights.prepared) return;
  weights.prepared = true;
  const char* env = std::getenv("INFERD_CPU_MATMUL");
  if (env && std::string(env) == "fp32") return;
  // Float matrices are packed as k-major panels: only while the copies take at most 3/5 of
  // the memory (a 7B F16 model's 13.5 GB on 24 GB), else they keep the row-wise fp32 path.
  // Every packed original is then released (ReleasePages: the file's pages are dropped, to be
  // read again only if something touches them), so the copies replace the file's pages
  // instead of sitting beside them.
  int64_t float_bytes = 0;
  auto count_float = [&](const Matrix& m) {
    if (!m.empty() && !m.packed && IsFloatWeight(m)) {
      float_bytes += static_cast<int64_t>(m.nbytes());
    }
  };
  count_float(weights.output);
  for (const LayerWeights& l : weights.layers) {
    for (const Matrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) count_float(*m);
  }
  const bool pack_floats = float_bytes <= UsableMemoryBytes() / 5 * 3;
  if (!pack_floats) {
    INFERD_LOG_INFO("float weights ({} MiB) stay unpacked: a panel copy would take over 3/5 of memory",
                    float_bytes >> 20);
  }
  // The tied LM head shares the embedding's bytes, which lookups still read.
  auto release = [&](const Matrix& m) {
    if (m.data != nullptr && m.data != weights.tok_embd.data) ReleasePages(m.data, m.nbytes());
  };
  auto pack = [&](Matrix& m) {
    if (m.packed || m.empty()) return;
    if (!pack_floats && IsFloatWeight(m)) return;
    auto p = cpu::PackMatrix(m);
    if (!p) return;
    m.packed = p.get();
    weights.packed_nbytes += cpu::PackedBytes(*static_cast<const cpu::PackedMatrix*>(p.get()));
    weights.storage.push_back(std::move(p));
    release(m);
  };
  pack(weights.output);
  // QKV and gate/up are kept only as fused copies ([q; k; v], [gate; up]): one pass over the
  // activations and one parallel region instead of three or two, with the same row
  // arithmetic (results are identical). Parts of different types (a Q4_K_M file's Q6_K
  // attn_v) become a composite (cpu::Compose); parts that cannot be packed stay alone.
  auto pack_fused = [&](std::initializer_list<Matrix*> parts, Matrix& fused) {
    std::vector<std::shared_ptr<const void>> owned;
    std::vector<const cpu::PackedMatrix*> packed;
    for (const Matrix* m : parts) {
      owned.push_back(m->packed || (IsFloatWeight(*m) && !pack_floats) ? nullptr : cpu::PackMatrix(*m));
      if (!owned.back()) break;
      packed.push_back(static_cast<const cpu::PackedMatrix*>(owned.back().get()));
    }
    std::shared_ptr<const cpu::PackedMatrix> cat;
    if (packed.size() == parts.size()) cat = cpu::Concat(packed);
    if (!cat && packed.size() == parts.size()) {  // parts of different types: a composite
      std::vector<std::shared_ptr<const cpu::PackedMatrix>> each;
      for (auto& o : owned) each.push_back(std::static_pointer_cast<const cpu::PackedMatrix>(o));
      cat = cpu::Compose(std::move(each));
    }
    if (!cat) {
      for (Matrix* m : parts) pack(*m);
      return;
    }
    fused = Matrix{};
    fused.type = (*parts.begin())->type;
    fused.rows = cat->rows;
    fused.cols = cat->cols;
    fused.packed = cat.get();
    weights.packed_nbytes += cpu::PackedBytes(*cat);
    weights.storage.push_back(std::move(cat));
    for (const Matrix* m : parts) release(*m);
  };
  for (LayerWeights& l : weights.layers) {
    pack_fused({&l.wq, &l.wk, &l.wv}, l.wqkv);
    pack_fused({&l.w_gate, &l.w_up}, l.w_gate_up);
    pack(l.wo);
    pack(l.w_down);
  }
}

CpuForward::CpuForward(const ModelConfig& config, const ModelWeights& weights, int64_t max_model_len)
    : config_(config), weights_(weights) {
  inv_freq_ = ops::RopeInvFreq(config, /*local=*/false, weights.rope_freq_factors, max_model_len);
  if (config.rope_local_theta > 0.0f) inv_freq_local_ = ops::RopeInvFreq(config, /*local=*/true, {}, max_model_len);
  if (config.alibi) alibi_slopes_ = ops::AlibiSlopes(config.num_heads);
}

int64_t CpuForward::ScratchBytes(const ModelConfig& c, int64_t T) {
  const int64_t qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim;
  // x, xn (= o), logits rows: hidden; q, attn: q_dim; k, v: kv_dim; gate (= act), up: ffn;
  // cos_sin: head_dim per RoPE table
  const int64_t tables = c.rope_local_theta > 0.0f ? 2 : 1;
  const int64_t floats =
      T * (3 * c.hidden_size + 2 * qd + 2 * kvd + 2 * c.intermediate_size + tables * c.head_dim);
  return floats * static_cast<int64_t>(sizeof(float));
}

namespace {
void Grow(std::vector<float>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
}
}  // namespace

// kO shares kXn's array and kAct kGate's: the builder never needs both of a pair at once
// (the kernels allow out to alias their input elementwise).
float* CpuForward::Buf(Act a) {
  if (a == Act::kO) a = Act::kXn;
  if (a == Act::kAct) a = Act::kGate;
  return acts_[static_cast<int>(a)].data();
}

int64_t CpuForward::Width(Act a) const {
  const ModelConfig& c = config_;
  switch (a) {
    case Act::kX: case Act::kXn: case Act::kO: return c.hidden_size;
    case Act::kQ: case Act::kAttn: return c.num_heads * c.head_dim;
    case Act::kK: case Act::kV: return c.num_kv_heads * c.head_dim;
    case Act::kGate: case Act::kUp: case Act::kAct: return c.intermediate_size;
  }
  return 0;
}

const std::vector<float>& CpuForward::NormWeight(int64_t layer, Weight w) const {
  const LayerWeights& l = weights_.layers[static_cast<size_t>(layer)];
  switch (w) {
    case Weight::kQNorm: return l.q_norm;
    case Weight::kKNorm: return l.k_norm;
    case Weight::kPostAttnNorm: return l.post_attn_norm;
    case Weight::kFfnNorm: return l.ffn_norm;
    case Weight::kPostFfnNorm: return l.post_ffn_norm;
    default: return l.attn_norm;
  }
}

void CpuForward::Tabulate(const std::vector<double>& inv_freq, double mscale, std::vector<float>& cos_sin) {
  const int64_t half = config_.head_dim / 2;
  Grow(cos_sin, rows_ * config_.head_dim);
  for (int64_t t = 0; t < rows_; ++t) {
    float* cs = &cos_sin[static_cast<size_t>(t * config_.head_dim)];
    for (int64_t i = 0; i < half; ++i) {
      const double theta = static_cast<double>(batch_->positions[static_cast<size_t>(t)]) * inv_freq[i];
      cs[2 * i] = static_cast<float>(std::cos(theta) * mscale);
      cs[2 * i + 1] = static_cast<float>(std::sin(theta) * mscale);
    }
  }
}

Status CpuForward::Forward(const ForwardBatch& batch, KvCache& kv, float* logits) {
  const ModelConfig& c = config_;
  const int64_t T = static_cast<int64_t>(batch.token_ids.size());
  if (T == 0) return Status::OK();
  if (static_cast<int64_t>(batch.positions.size()) != T) return Internal("forward: positions size mismatch");
  for (int32_t id : batch.token_ids) {
    if (id < 0 || id >= c.vocab_size) {
      return InvalidArgument(fmt::format("token id {} is out of range for vocabulary size {}", id, c.vocab_size));
    }
  }
  for (int64_t r : batch.logits_rows) {
    if (r < 0 || r >= T) return Internal("forward: logits row out of range");
  }
  batch_ = &batch;
  kv_ = &kv;
  logits_ = logits;
  rows_ = T;
  for (Act a : {Act::kX, Act::kXn, Act::kQ, Act::kK, Act::kV, Act::kAttn, Act::kGate, Act::kUp}) {
    Grow(acts_[static_cast<int>(a)], T * Width(a));
  }
  Tabulate(inv_freq_, c.rope_attn_factor, cos_sin_);
  if (!inv_freq_local_.empty()) Tabulate(inv_freq_local_, 1.0, cos_sin_local_);
  INFERD_RETURN_IF_ERROR(ops::RunLayers(c, *this));
  return ops::RunHead(c, *this, 0, static_cast<int64_t>(batch.logits_rows.size()));
}

Status CpuForward::Embed(Act out, float scale) {
  cpu::Embedding(weights_.tok_embd, batch_->token_ids, Buf(out));
  if (scale != 0.0f) cpu::Scale(Buf(out), rows_ * Width(out), scale);
  return Status::OK();
}

Status CpuForward::AddRmsNorm(Act x, std::optional<Act> delta, int64_t layer, Weight norm, float eps, Act out) {
  const int64_t h = Width(x);
  if (delta) cpu::Add(Buf(x), Buf(*delta), rows_ * h);
  cpu::RmsNorm(Buf(x), NormWeight(layer, norm).data(), rows_, h, eps, Buf(out));
  return Status::OK();
}

Status CpuForward::RmsNorm(Act a, int64_t layer, Weight norm, float eps) {
  cpu::RmsNorm(Buf(a), NormWeight(layer, norm).data(), rows_, Width(a), eps, Buf(a));
  return Status::OK();
}

Status CpuForward::HeadRmsNorm(Act a, int64_t layer, Weight norm, float eps) {
  const int64_t d = config_.head_dim;
  cpu::RmsNorm(Buf(a), NormWeight(layer, norm).data(), rows_ * (Width(a) / d), d, eps, Buf(a));
  return Status::OK();
}

Status CpuForward::Linear(int64_t layer, Weight w, bool bias) {
  const LayerWeights& l = weights_.layers[static_cast<size_t>(layer)];
  const int64_t T = rows_;
  switch (w) {
    case Weight::kQkv: {
      float *q = Buf(Act::kQ), *k = Buf(Act::kK), *v = Buf(Act::kV);
      const float* xn = Buf(Act::kXn);
      const int64_t qd = Width(Act::kQ), kvd = Width(Act::kK);
      if (l.wqkv.packed) {  // one fused matmul
        const cpu::MatMulOut outs[] = {{q, qd}, {k, kvd}, {v, kvd}};
        cpu::MatMulSegments(l.wqkv, xn, T, outs);
      } else {
        cpu::MatMul(l.wq, xn, T, q);
        cpu::MatMul(l.wk, xn, T, k);
        cpu::MatMul(l.wv, xn, T, v);
      }
      if (bias) {
        cpu::AddBias(q, l.bq.data(), T, qd);
        cpu::AddBias(k, l.bk.data(), T, kvd);
        cpu::AddBias(v, l.bv.data(), T, kvd);
      }
      return Status::OK();
    }
    case Weight::kO:
      cpu::MatMul(l.wo, Buf(Act::kAttn), T, Buf(Act::kO));
      return Status::OK();
    case Weight::kGateUp: {
      float *gate = Buf(Act::kGate), *up = Buf(Act::kUp);
      const float* xn = Buf(Act::kXn);
      if (l.w_gate_up.packed) {
        const int64_t ffn = Width(Act::kGate);
        const cpu::MatMulOut outs[] = {{gate, ffn}, {up, ffn}};
        cpu::MatMulSegments(l.w_gate_up, xn, T, outs);
      } else {
        cpu::MatMul(l.w_gate, xn, T, gate);
        cpu::MatMul(l.w_up, xn, T, up);
      }
      return Status::OK();
    }
    case Weight::kDown:
      cpu::MatMul(l.w_down, Buf(Act::kAct), T, Buf(Act::kO));
      return Status::OK();
    default:
      return Internal("CpuForward::Linear: not a projection");
  }
}

Status CpuForward::Rope(int64_t layer) {
  const ModelConfig& c = config_;
  const bool neox = c.rope_style == RopeStyle::kNeox;
  const float* cs = c.Layer(layer).local_rope ? cos_sin_local_.data() : cos_sin_.data();
  cpu::Rope(Buf(Act::kQ), rows_, c.num_heads, c.head_dim, cs, neox);
  cpu::Rope(Buf(Act::kK), rows_, c.num_kv_heads, c.head_dim, cs, neox);
  return Status::OK();
}

namespace {
cpu::KvElem CpuKvElem(KvDtype d) {
  switch (d) {
    case KvDtype::kF16: return cpu::KvElem::kF16;
    case KvDtype::kInt8: return cpu::KvElem::kInt8;
    case KvDtype::kFp8E4M3: return cpu::KvElem::kFp8E4M3;
    case KvDtype::kFp8E5M2: return cpu::KvElem::kFp8E5M2;
    default: return cpu::KvElem::kF32;  // kBF16 is refused by CreateCpuBackend
  }
}
}  // namespace

Status CpuForward::Attention(int64_t layer, const ops::AttnParams& p) {
  const ModelConfig& c = config_;
  KvCache& kv = *kv_;
  const KvCacheShape& shape = kv.shape();
  const int64_t slot = shape.slot(layer);
  // The sequences with this layer's KV group's block tables.
  std::span<const ops::AttnSeq> seqs = batch_->seqs;
  if (!batch_->group_block_tables.empty()) {
    const int64_t groups = shape.num_groups(), g = shape.group(layer);
    group_seqs_.assign(batch_->seqs.begin(), batch_->seqs.end());
    for (size_t i = 0; i < group_seqs_.size(); ++i) group_seqs_[i].block_table = batch_->group_block_tables[i * groups + g];
    seqs = group_seqs_;
  }
  cpu::KvLayerView view{kv.k(slot),         kv.v(slot), shape.block_size, c.num_kv_heads, c.head_dim,
                        CpuKvElem(shape.dtype), kv.k_scale(slot), kv.v_scale(slot)};
  cpu::WriteKv(view, seqs, batch_->positions.data(), Buf(Act::kK), Buf(Act::kV));
  const cpu::AttnOptions opt{p.scale, p.sliding_window, p.softcap, p.alibi ? alibi_slopes_.data() : nullptr};
  cpu::PagedAttention(view, seqs, batch_->positions.data(), Buf(Act::kQ), c.num_heads, opt, Buf(Act::kAttn));
  return Status::OK();
}

Status CpuForward::GatedAct(Activation act) {
  const int64_t n = rows_ * config_.intermediate_size;
  if (act == Activation::kGeluTanh) {
    cpu::GeluTanhMul(Buf(Act::kGate), Buf(Act::kUp), n, Buf(Act::kAct));
  } else {
    cpu::SiluMul(Buf(Act::kGate), Buf(Act::kUp), n, Buf(Act::kAct));
  }
  return Status::OK();
}

Status CpuForward::Add(Act x, Act delta) {
  cpu::Add(Buf(x), Buf(delta), rows_ * Width(x));
  return Status::OK();
}

Status CpuForward::Logits(int64_t first, int64_t count, float eps, float softcap) {
  const int64_t h = config_.hidden_size;
  Grow(head_rows_, count * h);
  const float* x = Buf(Act::kX);
  for (int64_t i = 0; i < count; ++i) {
    const int64_t r = batch_->logits_rows[static_cast<size_t>(first + i)];
    std::memcpy(&head_rows_[static_cast<size_t>(i * h)], x + r * h, sizeof(float) * h);
  }
  cpu::RmsNorm(head_rows_.data(), weights_.output_norm.data(), count, h, eps, head_rows_.data());
  float* out = logits_ + first * config_.vocab_size;
  cpu::MatMul(weights_.output, head_rows_.data(), count, out);  // [count, vocab]
  if (softcap != 0.0f) cpu::Softcap(out, count * config_.vocab_size, softcap);
  return Status::OK();
}

}  // namespace inferd
