#include "backend/cuda/gemm.h"

#include "util/logging.h"

namespace inferd::cuda {
namespace {

cudaDataType_t CudaType(DType dt) {
  switch (dt) {
    case DType::kF16: return CUDA_R_16F;
    case DType::kBF16: return CUDA_R_16BF;
    default: return CUDA_R_32F;
  }
}

bool NoSplitK(const cublasLtMatmulAlgo_t& algo) {
  int32_t split = 1;
  uint32_t scheme = CUBLASLT_REDUCTION_SCHEME_NONE;
  size_t written = 0;
  if (cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &split, sizeof(split), &written) !=
      CUBLAS_STATUS_SUCCESS) {
    return false;
  }
  if (cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &scheme, sizeof(scheme),
                                           &written) != CUBLAS_STATUS_SUCCESS) {
    return false;
  }
  return split <= 1 && scheme == CUBLASLT_REDUCTION_SCHEME_NONE;
}

}  // namespace

GemmRunner::~GemmRunner() {
  for (auto& [key, r] : rows_) {
    if (r.b) cublasLtMatrixLayoutDestroy(r.b);
    if (r.c) cublasLtMatrixLayoutDestroy(r.c);
  }
  for (auto& [key, s] : shapes_) {
    if (s.a) cublasLtMatrixLayoutDestroy(s.a);
    if (s.op) cublasLtMatmulDescDestroy(s.op);
  }
  if (lt_) cublasLtDestroy(lt_);
}

Status GemmRunner::Init(void* workspace, size_t workspace_bytes, bool batch_invariant, int64_t tune_rows) {
  INFERD_CUBLAS_TRY(cublasLtCreate(&lt_));
  workspace_ = workspace;
  workspace_bytes_ = workspace_bytes;
  invariant_ = batch_invariant;
  tune_rows_ = tune_rows > 0 ? tune_rows : 16;
  return Status::OK();
}

Status GemmRunner::Heuristic(Shape& s, cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, bool no_split_k,
                             cublasLtMatmulAlgo_t* algo, bool* found) {
  cublasLtMatmulPreference_t pref = nullptr;
  INFERD_CUBLAS_TRY(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t ws = workspace_bytes_;
  cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  if (st == CUBLAS_STATUS_SUCCESS && no_split_k) {
    const uint32_t mask = CUBLASLT_REDUCTION_SCHEME_NONE;
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &mask, sizeof(mask));
  }
  constexpr int kMax = 16;
  cublasLtMatmulHeuristicResult_t results[kMax];
  int n = 0;
  if (st == CUBLAS_STATUS_SUCCESS) {
    st = cublasLtMatmulAlgoGetHeuristic(lt_, s.op, s.a, b, c, c, pref, kMax, results, &n);
  }
  cublasLtMatmulPreferenceDestroy(pref);
  INFERD_CUBLAS_TRY(st);
  *found = false;
  for (int i = 0; i < n && !*found; ++i) {
    if (results[i].state != CUBLAS_STATUS_SUCCESS) continue;
    if (no_split_k && !NoSplitK(results[i].algo)) continue;
    *algo = results[i].algo;
    *found = true;
  }
  return Status::OK();
}

StatusOr<GemmRunner::Shape*> GemmRunner::GetShape(const ShapeKey& key) {
  auto it = shapes_.find(key);
  if (it != shapes_.end()) return &it->second;
  const auto [n, k, ldy, dt_int, out_fp32] = key;
  const DType dt = static_cast<DType>(dt_int);
  Shape s;
  INFERD_CUBLAS_TRY(cublasLtMatmulDescCreate(&s.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  // Column-major view: y^T[N, T] = op(A)[N, K] . B[K, T] with A = W stored [K, N] (ld K), op = transpose.
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  INFERD_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(s.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  INFERD_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(s.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  INFERD_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&s.a, CudaType(dt), static_cast<uint64_t>(k), static_cast<uint64_t>(n), k));
  if (invariant_) {
    cublasLtMatrixLayout_t b = nullptr, c = nullptr;
    INFERD_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&b, CudaType(dt), static_cast<uint64_t>(k),
                                                 static_cast<uint64_t>(tune_rows_), k));
    INFERD_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&c, out_fp32 ? CUDA_R_32F : CudaType(dt), static_cast<uint64_t>(n),
                                                 static_cast<uint64_t>(tune_rows_), ldy));
    Status st = Heuristic(s, b, c, /*no_split_k=*/true, &s.algo, &s.pinned);
    cublasLtMatrixLayoutDestroy(b);
    cublasLtMatrixLayoutDestroy(c);
    INFERD_RETURN_IF_ERROR(st);
    if (!s.pinned) {
      INFERD_LOG_WARN("cuBLASLt has no algorithm without split-K for a [{} x {}] GEMM; its results depend on the batch",
                      n, k);
    }
  }
  return &shapes_.emplace(key, s).first->second;
}

StatusOr<GemmRunner::PerRows*> GemmRunner::GetRows(const ShapeKey& key, Shape& s, int64_t t) {
  const auto rk = std::make_tuple(key, t);
  auto it = rows_.find(rk);
  if (it != rows_.end()) return &it->second;
  const auto [n, k, ldy, dt_int, out_fp32] = key;
  const DType dt = static_cast<DType>(dt_int);
  PerRows r;
  INFERD_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&r.b, CudaType(dt), static_cast<uint64_t>(k), static_cast<uint64_t>(t), k));
  INFERD_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&r.c, out_fp32 ? CUDA_R_32F : CudaType(dt), static_cast<uint64_t>(n),
                                               static_cast<uint64_t>(t), ldy));
  bool have = false;
  if (s.pinned) {
    cublasLtMatmulHeuristicResult_t check{};
    if (cublasLtMatmulAlgoCheck(lt_, s.op, s.a, r.b, r.c, r.c, &s.algo, &check) == CUBLAS_STATUS_SUCCESS &&
        check.workspaceSize <= workspace_bytes_) {
      r.algo = s.algo;
      have = true;
    } else if (!s.warned) {
      s.warned = true;
      INFERD_LOG_WARN("the pinned cuBLASLt algorithm of a [{} x {}] GEMM does not run {} rows; those batches use "
                      "cuBLAS's heuristic and are not batch-invariant",
                      n, k, t);
    }
  }
  if (!have) {
    INFERD_RETURN_IF_ERROR(Heuristic(s, r.b, r.c, /*no_split_k=*/false, &r.algo, &have));
    if (!have) return Internal(fmt::format("cuBLASLt has no algorithm for a [{} x {}] x [{} rows] GEMM", n, k, t));
  }
  return &rows_.emplace(rk, r).first->second;
}

Status GemmRunner::Run(DType dt, const void* w, int64_t n, int64_t k, const void* x, int64_t t, void* y, int64_t ldy,
                       bool out_fp32, cudaStream_t stream) {
  if (t == 0) return Status::OK();
  const ShapeKey key{n, k, ldy, static_cast<int>(dt), out_fp32};
  INFERD_ASSIGN_OR_RETURN(Shape * s, GetShape(key));
  INFERD_ASSIGN_OR_RETURN(PerRows * r, GetRows(key, *s, t));
  const float alpha = 1.0f, beta = 0.0f;
  INFERD_CUBLAS_TRY(cublasLtMatmul(lt_, s->op, &alpha, w, s->a, x, r->b, &beta, y, r->c, y, r->c, &r->algo, workspace_,
                                   workspace_bytes_, stream));
  return Status::OK();
}

}  // namespace inferd::cuda
