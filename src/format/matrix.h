// A weight matrix as a view of rows in a GGML type (format/ggml_types.h). Loaders point it
// into a file mapping or an owned buffer; kernels read it. It knows nothing about models.
#pragma once

#include <cstddef>
#include <cstdint>

#include "format/ggml_types.h"

namespace inferd {

// [rows = out_features, cols = in_features]; row r starts at data + r * row_bytes and
// holds `cols` elements of `type` (GGML block layout).
struct Matrix {
  GgmlType type = GgmlType::kF32;
  int64_t rows = 0, cols = 0;
  const uint8_t* data = nullptr;
  size_t row_bytes = 0;
  // A backend's repacked copy for its fast kernels, or nullptr; owned by whoever packed it
  // (ModelWeights::storage for the CPU backend).
  const void* packed = nullptr;

  bool empty() const { return data == nullptr; }
  const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_bytes; }
  size_t nbytes() const { return static_cast<size_t>(rows) * row_bytes; }
  // Rows [begin, begin + count) as a view (a fused [q; k; v] or [gate; up] split by rows).
  Matrix Rows(int64_t begin, int64_t count) const {
    Matrix s = *this;
    s.data = row(begin);
    s.rows = count;
    s.packed = nullptr;
    return s;
  }
};

}  // namespace inferd
