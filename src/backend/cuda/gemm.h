// Dense GEMMs of the CUDA backend on cuBLASLt:  y[T, N] = x[T, K] . W[N, K]^T  (row-major),
// fp32 accumulation, output in the model dtype or fp32 (LM head).
//
// Batch invariance (the default): every (N, K, dtype) runs ONE cuBLASLt algorithm, picked
// once from the heuristic for `tune_rows` rows among configurations without split-K, for
// every number of rows T. A fixed kernel configuration without split-K computes each
// output element with the same K-loop, whatever T is, so a sequence's logits do not depend
// on what shares its batch. Where the pinned algorithm does not apply to some T
// (cublasLtMatmulAlgoCheck fails), that T falls back to the heuristic and a warning says
// invariance is lost for it. INFERD_CUDA_GEMM=heuristic picks per T (cuBLAS's own choice,
// possibly split-K: faster small-batch GEMMs, no invariance).
#pragma once

#include <cublasLt.h>

#include <cstdint>
#include <map>
#include <tuple>

#include "backend/cuda/cuda_common.h"
#include "backend/cuda/kernels.h"

namespace inferd::cuda {

class GemmRunner {
 public:
  GemmRunner() = default;
  GemmRunner(const GemmRunner&) = delete;
  GemmRunner& operator=(const GemmRunner&) = delete;
  ~GemmRunner();

  Status Init(void* workspace, size_t workspace_bytes, bool batch_invariant, int64_t tune_rows);
  // w: [N, K] row-major in dt; x: [T, K] (row stride K); y: [T, ldy] (dt, or fp32 when out_fp32).
  Status Run(DType dt, const void* w, int64_t n, int64_t k, const void* x, int64_t t, void* y, int64_t ldy,
             bool out_fp32, cudaStream_t stream);
  bool batch_invariant() const { return invariant_; }

 private:
  using ShapeKey = std::tuple<int64_t, int64_t, int64_t, int, bool>;  // N, K, ldy, dt, out_fp32
  struct Shape {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr;
    bool pinned = false;
    cublasLtMatmulAlgo_t algo{};
    bool warned = false;
  };
  struct PerRows {
    cublasLtMatrixLayout_t b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  StatusOr<Shape*> GetShape(const ShapeKey& key);
  StatusOr<PerRows*> GetRows(const ShapeKey& key, Shape& shape, int64_t t);
  Status Heuristic(Shape& shape, cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, bool no_split_k,
                   cublasLtMatmulAlgo_t* algo, bool* found);

  cublasLtHandle_t lt_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  bool invariant_ = true;
  int64_t tune_rows_ = 16;
  std::map<ShapeKey, Shape> shapes_;
  std::map<std::tuple<ShapeKey, int64_t>, PerRows> rows_;
};

}  // namespace inferd::cuda
