#include "model/quantize.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <cstring>
#include <memory>
#include <unordered_set>
#include <vector>

#include "util/logging.h"
#include "util/thread_pool.h"

namespace inferd {
namespace {

constexpr int64_t kGroupSize = 32;  // the smallest block of the types written

bool IsFloatType(GgmlType t) { return t == GgmlType::kF32 || t == GgmlType::kF16 || t == GgmlType::kBF16; }

std::string TypeName(GgmlType t) { return GgmlTypeName(static_cast<uint32_t>(t)); }

// fp16 -> fp32 for every bit pattern (256 KiB, built once from Fp16ToFp32, so identical to
// DequantizeRow): the scalar conversion's branches were 40% of the time of a 7B model.
const float* HalfTable() {
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (uint32_t h = 0; h < 65536; ++h) t[h] = Fp16ToFp32(static_cast<uint16_t>(h));
    return t;
  }();
  return table.data();
}

void RowToFloat(const Matrix& m, int64_t r, const float* half_table, float* out) {
  if (m.type == GgmlType::kF16) {
    uint16_t h[256];
    for (int64_t c = 0; c < m.cols; c += 256) {
      const int64_t n = std::min<int64_t>(256, m.cols - c);
      std::memcpy(h, m.row(r) + 2 * c, static_cast<size_t>(n) * 2);  // rows need not be 2-byte aligned
      for (int64_t j = 0; j < n; ++j) out[c + j] = half_table[h[j]];
    }
  } else {
    DequantizeRow(m.type, m.row(r), out, m.cols);
  }
}

struct Job {
  Matrix* m;
  std::string name;
  bool more_bits = false;  // int4: a wv / w_down that llama.cpp's Q4_K_M recipe gives Q6_K
};

// llama-quant.cpp's use_more_bits: the first and last eighth of the layers and every third
// layer between.
bool UseMoreBits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// The type a matrix gets: int8 -> Q8_0; int4 -> Q4_K or Q6_K, or their fallbacks Q5_0 / Q8_0
// when a row is not a whole number of 256-blocks (llama-quant.cpp tensor_type_fallback).
GgmlType TargetType(GgmlType main, const Job& j) {
  if (main != GgmlType::kQ4_K) return main;
  const GgmlType t = j.more_bits ? GgmlType::kQ6_K : GgmlType::kQ4_K;
  if (j.m->cols % 256 == 0) return t;
  return t == GgmlType::kQ6_K ? GgmlType::kQ8_0 : GgmlType::kQ5_0;
}

}  // namespace

StatusOr<GgmlType> WeightQuantizationType(const std::string& q) {
  if (q.empty() || q == "none") return GgmlType::kF32;
  if (q == "int8") return GgmlType::kQ8_0;
  if (q == "int4") return GgmlType::kQ4_K;
  return InvalidArgument("unknown --quantization '" + q +
                         "': use int8 (q8_0) or int4 (llama.cpp's q4_K_M recipe), weight-only, or none");
}

Status QuantizeWeights(LoadedModel& model, const std::string& quantization) {
  INFERD_ASSIGN_OR_RETURN(GgmlType target, WeightQuantizationType(quantization));
  if (target == GgmlType::kF32) return Status::OK();
  ModelWeights& w = model.weights;

  std::vector<Job> jobs;
  for (size_t i = 0; i < w.layers.size(); ++i) {
    LayerWeights& l = w.layers[i];
    const std::string p = fmt::format("layer {} ", i);
    const bool more = UseMoreBits(static_cast<int64_t>(i), static_cast<int64_t>(w.layers.size()));
    jobs.push_back({&l.wq, p + "q_proj"});
    jobs.push_back({&l.wk, p + "k_proj"});
    jobs.push_back({&l.wv, p + "v_proj", more});
    jobs.push_back({&l.wo, p + "o_proj"});
    jobs.push_back({&l.w_gate, p + "gate_proj"});
    jobs.push_back({&l.w_up, p + "up_proj"});
    jobs.push_back({&l.w_down, p + "down_proj", more});
  }
  // Check everything before touching anything.
  for (const Job& j : jobs) {
    if (j.m->empty()) return NotFound("--quantization " + quantization + ": model is missing weight '" + j.name + "'");
    if (!IsFloatType(j.m->type)) {
      return InvalidArgument(fmt::format(
          "--quantization {} re-quantizes fp16/bf16/fp32 weights; this model's weights are already {} ('{}'): "
          "load it without --quantization",
          quantization, TypeName(j.m->type), j.name));
    }
    if (j.m->cols % kGroupSize != 0) {
      return InvalidArgument(fmt::format(
          "--quantization {}: weight '{}' has {} columns, not a multiple of the block size {}", quantization,
          j.name, j.m->cols, kGroupSize));
    }
    if (j.m->packed != nullptr) {
      return FailedPrecondition("--quantization must be applied before the weights are packed for the backend");
    }
  }
  if (jobs.empty()) return Status::OK();

  const auto t0 = std::chrono::steady_clock::now();
  const GgmlType source = w.layers[0].w_up.type;
  // New buffers, and a prefix sum of rows so that one ParallelFor covers every matrix.
  std::vector<std::shared_ptr<uint8_t[]>> buffers(jobs.size());
  std::vector<Matrix> out(jobs.size());
  std::vector<int64_t> first_row(jobs.size() + 1, 0);
  size_t bytes_before = 0, bytes_after = 0;
  int64_t max_cols = 0;
  std::map<std::string, int> type_counts;  // for the log line
  for (size_t i = 0; i < jobs.size(); ++i) {
    const Matrix& src = *jobs[i].m;
    Matrix& dst = out[i];
    dst.type = TargetType(target, jobs[i]);
    ++type_counts[TypeName(dst.type)];
    dst.rows = src.rows;
    dst.cols = src.cols;
    dst.row_bytes = GgmlRowSize(dst.type, src.cols);
    buffers[i] = std::shared_ptr<uint8_t[]>(new uint8_t[dst.nbytes()]);  // uninitialised: written below
    dst.data = buffers[i].get();
    first_row[i + 1] = first_row[i] + src.rows;
    bytes_before += src.nbytes();
    bytes_after += dst.nbytes();
    max_cols = std::max(max_cols, src.cols);
  }

  std::atomic<bool> failed{false};
  const float* half_table = HalfTable();
  ThreadPool& pool = ThreadPool::Global();
  pool.ParallelFor(first_row.back(), 8, [&](int64_t begin, int64_t end) {
    std::vector<float> row(static_cast<size_t>(max_cols));
    size_t i = static_cast<size_t>(std::upper_bound(first_row.begin(), first_row.end(), begin) - first_row.begin()) - 1;
    for (int64_t g = begin; g < end; ++g) {
      while (g >= first_row[i + 1]) ++i;
      const Matrix& src = *jobs[i].m;
      const int64_t r = g - first_row[i];
      RowToFloat(src, r, half_table, row.data());
      if (!QuantizeRow(out[i].type, row.data(), buffers[i].get() + static_cast<size_t>(r) * out[i].row_bytes, src.cols)
               .ok()) {
        failed.store(true, std::memory_order_relaxed);
      }
    }
  });
  if (failed.load()) return Internal("--quantization " + quantization + ": QuantizeRow failed");

  // Swap the views, then release owned buffers that held only replaced matrices (dummy
  // weights own one buffer per matrix). A buffer is released only if it starts exactly at a
  // replaced matrix and is not where the embedding / LM head live; mapped files (GGUF,
  // safetensors) are kept by an object whose address is no tensor's, so they stay.
  std::unordered_set<const void*> replaced;
  for (size_t i = 0; i < jobs.size(); ++i) {
    replaced.insert(jobs[i].m->data);
    *jobs[i].m = out[i];
  }
  replaced.erase(w.tok_embd.data);
  replaced.erase(w.output.data);
  std::erase_if(w.storage, [&](const std::shared_ptr<const void>& s) { return replaced.count(s.get()) != 0; });
  for (auto& b : buffers) w.storage.push_back(std::move(b));
  w.nbytes = w.nbytes - bytes_before + bytes_after;

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::string embd = w.output.data == w.tok_embd.data || w.output.empty()
                               ? TypeName(w.tok_embd.type) + ", tied"
                               : TypeName(w.tok_embd.type) + " / " + TypeName(w.output.type);
  std::string types;
  for (const auto& [name, count] : type_counts) types += fmt::format("{}{} x{}", types.empty() ? "" : ", ", name, count);
  const std::string recipe = target == GgmlType::kQ4_K ? "q4_K_M" : TypeName(target);
  INFERD_LOG_INFO(
      "quantization {}: {} layer matrices {} -> {} ({}), {:.1f} MiB -> {:.1f} MiB in {:.2f} s ({} threads); "
      "token embedding and LM head left unquantized ({}); weights {:.1f} MiB -> {:.1f} MiB",
      quantization, jobs.size(), TypeName(source), recipe, types, bytes_before / 1048576.0,
      bytes_after / 1048576.0, seconds, pool.num_threads(), embd, (w.nbytes + bytes_before - bytes_after) / 1048576.0,
      w.nbytes / 1048576.0);
  model.weight_type = fmt::format("{} ({} from {})", recipe, quantization, TypeName(source));
  return Status::OK();
}

}  // namespace inferd
