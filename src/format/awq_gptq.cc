// AWQ / GPTQ int4 layers -> I4Z128 rows (awq_gptq.h).
#include "format/awq_gptq.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "format/ggml_types.h"
#include "util/thread_pool.h"

namespace inferd {
namespace {

constexpr int64_t kI4Block = 128;       // elements per I4Z128 block
constexpr size_t kI4BlockBytes = 67;    // s (2), z (1), qs (64)
constexpr int64_t kI4OutChunk = 64;     // output rows per task: 8 AWQ / GPTQ-zero words

// AWQ's packing order: output 8c + j sits at bits kAwqShift[j] of word c (vLLM's
// AWQ_REVERSE_ORDER [0,4,1,5,2,6,3,7] times 4).
constexpr int kAwqShift[8] = {0, 16, 4, 20, 8, 24, 12, 28};

uint32_t Int32Word(const StTensor& t, int64_t i) {
  uint32_t w;
  std::memcpy(&w, t.data + 4 * i, 4);
  return w;
}

Status CheckInt4Tensor(const StTensor* t, const std::string& name, const char* what, StDtype dtype, const char* dtype_name,
                   int64_t d0, int64_t d1) {
  if (t == nullptr) return NotFound(fmt::format("int4 layer '{}': missing tensor '{}.{}'", name, name, what));
  if (t->dtype != dtype) {
    return InvalidArgument(fmt::format("'{}.{}' has dtype {}, expected {}", name, what, t->dtype_name, dtype_name));
  }
  const bool vec = d1 < 0;
  const std::string want = vec ? fmt::format("[{}]", d0) : fmt::format("[{}, {}]", d0, d1);
  std::string got = "[";
  for (size_t i = 0; i < t->shape.size(); ++i) got += (i ? ", " : "") + std::to_string(t->shape[i]);
  got += "]";
  if (got != want) return InvalidArgument(fmt::format("'{}.{}' has shape {}, expected {}", name, what, got, want));
  return Status::OK();
}

}  // namespace

StatusOr<Matrix> Int4LayerToI4Z128(Int4Packing packing, const std::string& name, const Int4LayerTensors& t,
                                   int64_t group_size, std::vector<std::shared_ptr<const void>>* storage) {
  const bool awq = packing == Int4Packing::kAwq;
  const StTensor* qw = t.qweight;
  if (qw == nullptr) return NotFound(fmt::format("int4 layer '{}': missing tensor '{}.qweight'", name, name));
  if (qw->dtype != StDtype::kI32 || qw->shape.size() != 2) {
    return InvalidArgument(fmt::format("'{}.qweight' should be a 2-D I32 tensor (packed int4), is {} with {} dims",
                                       name, qw->dtype_name, qw->shape.size()));
  }
  // AWQ [in, out/8]; GPTQ [in/8, out].
  const int64_t in = awq ? qw->shape[0] : 8 * qw->shape[0];
  const int64_t out = awq ? 8 * qw->shape[1] : qw->shape[1];
  if (in <= 0 || out <= 0) return InvalidArgument(fmt::format("'{}.qweight' is empty", name));
  const int64_t g = group_size == -1 ? in : group_size;
  if (g <= 0 || g % kI4Block != 0 || in % g != 0) {
    return Unimplemented(fmt::format("int4 layer '{}': group size {} over {} inputs: inferd needs groups that are a "
                                     "multiple of 128 (or -1) and divide the inputs",
                                     name, group_size, in));
  }
  if (out % 8 != 0) return InvalidArgument(fmt::format("int4 layer '{}': {} outputs, not a multiple of 8", name, out));
  const int64_t groups = in / g;
  INFERD_RETURN_IF_ERROR(CheckInt4Tensor(t.qzeros, name, "qzeros", StDtype::kI32, "I32", groups, out / 8));
  INFERD_RETURN_IF_ERROR(CheckInt4Tensor(t.scales, name, "scales", StDtype::kF16, "F16", groups, out));
  if (!awq && t.g_idx != nullptr) {
    INFERD_RETURN_IF_ERROR(CheckInt4Tensor(t.g_idx, name, "g_idx", StDtype::kI32, "I32", in, -1));
    for (int64_t k = 0; k < in; ++k) {
      const int32_t gi = static_cast<int32_t>(Int32Word(*t.g_idx, k));
      if (gi != k / g) {
        return Unimplemented(fmt::format(
            "'{}.g_idx'[{}] = {}, expected {} (= k / group_size {}): act-order GPTQ (desc_act, inputs in another "
            "order than their groups) is not supported; use a checkpoint quantized with desc_act false",
            name, k, gi, k / g, g));
      }
    }
  }

  Matrix m;
  m.type = GgmlType::kI4Z128;
  m.rows = out;
  m.cols = in;
  m.row_bytes = static_cast<size_t>(in / kI4Block) * kI4BlockBytes;
  auto buf = std::make_shared<std::vector<uint8_t>>(m.nbytes(), uint8_t{0});
  uint8_t* dst = buf->data();
  const StTensor& qz = *t.qzeros;
  const StTensor& sc = *t.scales;
  const int zero_offset = packing == Int4Packing::kGptq ? 1 : 0;  // GPTQ v1 stores z - 1
  const int64_t qw_cols = qw->shape[1];
  ThreadPool::Global().ParallelFor((out + kI4OutChunk - 1) / kI4OutChunk, 1, [&](int64_t c0, int64_t c1) {
    const int64_t o0 = c0 * kI4OutChunk, o1 = std::min(out, c1 * kI4OutChunk);
    // Block headers: s and z per row and 128-block.
    for (int64_t b = 0; b < in / kI4Block; ++b) {
      const int64_t grp = b * kI4Block / g;
      for (int64_t o = o0; o < o1; ++o) {
        uint8_t* blk = dst + static_cast<size_t>(o) * m.row_bytes + static_cast<size_t>(b) * kI4BlockBytes;
        std::memcpy(blk, sc.data + 2 * (grp * out + o), 2);
        const uint32_t zw = Int32Word(qz, grp * (out / 8) + o / 8);
        const int shift = awq ? kAwqShift[o % 8] : 4 * static_cast<int>(o % 8);
        blk[2] = static_cast<uint8_t>(((zw >> shift) & 15) + zero_offset);
      }
    }
    // Codes: input k of row o goes to block k / 128, element e = k % 128.
    for (int64_t k = 0; k < in; ++k) {
      const int64_t e = k % kI4Block;
      const size_t byte = static_cast<size_t>(k / kI4Block) * kI4BlockBytes + 3 + static_cast<size_t>(16 * (e / 32) + e % 16);
      const int hi = (e % 32) >= 16 ? 4 : 0;
      for (int64_t o = o0; o < o1; ++o) {
        const uint32_t u = awq ? (Int32Word(*qw, k * qw_cols + o / 8) >> kAwqShift[o % 8]) & 15
                               : (Int32Word(*qw, (k / 8) * qw_cols + o) >> (4 * (k % 8))) & 15;
        dst[static_cast<size_t>(o) * m.row_bytes + byte] |= static_cast<uint8_t>(u << hi);
      }
    }
  });
  m.data = buf->data();
  storage->push_back(std::move(buf));
  return m;
}

}  // namespace inferd
