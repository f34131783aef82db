#include "backend/cuda/cuda_weights.h"

#include <cuda_runtime_api.h>

#include <cstring>
#include <initializer_list>
#include <memory>

#include "util/thread_pool.h"

namespace inferd::cuda {

const char* CublasStatusName(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "unknown cuBLAS status";
  }
}

DeviceMemory::~DeviceMemory() {
  for (const Block& b : blocks_) cudaFree(b.ptr);
}

StatusOr<void*> DeviceMemory::Alloc(size_t bytes, Category category, const char* what) {
  void* p = nullptr;
  if (bytes == 0) bytes = 256;
  const cudaError_t e = cudaMalloc(&p, bytes);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky-free error state of a failed allocation
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    return ResourceExhausted(fmt::format("out of GPU memory allocating {} bytes for {} ({}; {} of {} bytes free)",
                                         bytes, what, cudaGetErrorString(e), free_b, total_b));
  }
  blocks_.push_back({p, bytes, category});
  bytes_[category] += static_cast<int64_t>(bytes);
  return p;
}

void DeviceMemory::Free(void* p) {
  for (size_t i = 0; i < blocks_.size(); ++i) {
    if (blocks_[i].ptr == p) {
      bytes_[blocks_[i].category] -= static_cast<int64_t>(blocks_[i].bytes);
      cudaFree(p);
      blocks_.erase(blocks_.begin() + static_cast<std::ptrdiff_t>(i));
      return;
    }
  }
}

int64_t DeviceMemory::total() const {
  int64_t t = 0;
  for (int64_t b : bytes_) t += b;
  return t;
}

namespace {

GgmlType DenseType(DType dt) {
  switch (dt) {
    case DType::kF16: return GgmlType::kF16;
    case DType::kBF16: return GgmlType::kBF16;
    default: return GgmlType::kF32;
  }
}

// Host rows of `m` in dt, written at dst (rows * cols elements).
void ConvertRows(const Matrix& m, DType dt, uint8_t* dst) {
  const size_t eb = DTypeBytes(dt);
  const size_t out_row = static_cast<size_t>(m.cols) * eb;
  const bool same = m.type == DenseType(dt);
  ThreadPool::Global().ParallelFor(m.rows, 16, [&](int64_t b, int64_t e) {
    std::vector<float> row(same ? 0 : static_cast<size_t>(m.cols));
    for (int64_t r = b; r < e; ++r) {
      uint8_t* out = dst + static_cast<size_t>(r) * out_row;
      if (same) {
        std::memcpy(out, m.row(r), out_row);
        continue;
      }
      DequantizeRow(m.type, m.row(r), row.data(), m.cols);
      for (int64_t k = 0; k < m.cols; ++k) {
        if (dt == DType::kF32) {
          std::memcpy(out + 4 * k, &row[k], 4);
        } else {
          const uint16_t h = dt == DType::kF16 ? Fp32ToFp16(row[k]) : Fp32ToBf16(row[k]);
          std::memcpy(out + 2 * k, &h, 2);
        }
      }
    }
  });
}

// Uploads the rows of `parts`, one after the other, as one device matrix.
StatusOr<DeviceMatrix> UploadMatrix(std::initializer_list<const Matrix*> parts, DType dt, DeviceMemory& mem,
                                    const char* what) {
  DeviceMatrix d;
  const Matrix& first = **parts.begin();
  d.cols = first.cols;
  bool same_type = true;
  for (const Matrix* p : parts) {
    d.rows += p->rows;
    same_type = same_type && p->type == first.type && p->cols == first.cols;
  }
  // The GEMV kernel reads blocks with 4-byte loads: rows must start 4-byte aligned.
  d.quantized = same_type && dt != DType::kF32 && QuantMatMulSupports(first.type) && first.row_bytes % 4 == 0;
  d.qtype = d.quantized ? first.type : DenseType(dt);
  d.row_bytes = d.quantized ? first.row_bytes : static_cast<size_t>(d.cols) * DTypeBytes(dt);
  const size_t bytes = static_cast<size_t>(d.rows) * d.row_bytes;
  INFERD_ASSIGN_OR_RETURN(d.data, mem.Alloc(bytes, DeviceMemory::kWeights, what));
  size_t offset = 0;
  for (const Matrix* p : parts) {
    const size_t n = static_cast<size_t>(p->rows) * d.row_bytes;
    if (d.quantized) {
      INFERD_CUDA_TRY(cudaMemcpy(static_cast<uint8_t*>(d.data) + offset, p->data, n, cudaMemcpyHostToDevice));
    } else {
      std::unique_ptr<uint8_t[]> host(new uint8_t[n]);
      ConvertRows(*p, dt, host.get());
      INFERD_CUDA_TRY(cudaMemcpy(static_cast<uint8_t*>(d.data) + offset, host.get(), n, cudaMemcpyHostToDevice));
    }
    offset += n;
  }
  return d;
}

// A matrix always dense in dt (embedding gather, LM head).
StatusOr<DeviceMatrix> UploadDense(const Matrix& m, DType dt, DeviceMemory& mem, const char* what) {
  DeviceMatrix d;
  d.rows = m.rows;
  d.cols = m.cols;
  d.row_bytes = static_cast<size_t>(m.cols) * DTypeBytes(dt);
  d.qtype = DenseType(dt);
  const size_t n = static_cast<size_t>(m.rows) * d.row_bytes;
  INFERD_ASSIGN_OR_RETURN(d.data, mem.Alloc(n, DeviceMemory::kWeights, what));
  std::unique_ptr<uint8_t[]> host(new uint8_t[n]);
  ConvertRows(m, dt, host.get());
  INFERD_CUDA_TRY(cudaMemcpy(d.data, host.get(), n, cudaMemcpyHostToDevice));
  return d;
}

StatusOr<float*> UploadVector(const std::vector<float>& v, DeviceMemory& mem, const char* what) {
  if (v.empty()) return static_cast<float*>(nullptr);
  INFERD_ASSIGN_OR_RETURN(void* p, mem.Alloc(v.size() * sizeof(float), DeviceMemory::kWeights, what));
  INFERD_CUDA_TRY(cudaMemcpy(p, v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice));
  return static_cast<float*>(p);
}

}  // namespace

StatusOr<DType> ResolveDType(const std::string& name, const ModelWeights& w) {
  if (name == "float16" || name == "half" || name == "fp16") return DType::kF16;
  if (name == "bfloat16" || name == "bf16") return DType::kBF16;
  if (name == "float32" || name == "float" || name == "fp32") return DType::kF32;
  if (name != "auto" && name.rfind("q", 0) != 0) {
    return InvalidArgument("unknown --dtype '" + name + "' for the CUDA backend: use auto, float16, bfloat16 or float32");
  }
  // auto (and the quantized dummy types, whose compute dtype is auto).
  for (const LayerWeights& l : w.layers) {
    if (l.wq.type == GgmlType::kBF16) return DType::kBF16;
  }
  return DType::kF16;
}

StatusOr<DeviceWeights> UploadWeights(const ModelConfig& c, const ModelWeights& w, DType dt, DeviceMemory& mem) {
  // AWQ / GPTQ layers (I4Z128 rows) have no CUDA kernel yet: refused by name, not dequantized.
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const LayerWeights& l = w.layers[i];
    for (const Matrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down, &w.output}) {
      if (m->type == GgmlType::kI4Z128) {
        return Unimplemented("the CUDA backend has no kernel for AWQ / GPTQ int4 weights (inferd's i4z128 rows, layer " +
                             std::to_string(i) + "): run this checkpoint with --device cpu");
      }
    }
  }
  DeviceWeights d;
  // The embedding gather and the LM head read dense rows.
  INFERD_ASSIGN_OR_RETURN(d.tok_embd, UploadDense(w.tok_embd, dt, mem, "token embedding"));
  if (w.output.data == w.tok_embd.data && w.output.type == w.tok_embd.type) {
    d.output = d.tok_embd;  // tied
  } else {
    INFERD_ASSIGN_OR_RETURN(d.output, UploadDense(w.output, dt, mem, "LM head"));
  }
  INFERD_ASSIGN_OR_RETURN(d.output_norm, UploadVector(w.output_norm, mem, "output norm"));
  const int64_t qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim;
  for (const LayerWeights& l : w.layers) {
    DeviceLayer dl;
    INFERD_ASSIGN_OR_RETURN(dl.attn_norm, UploadVector(l.attn_norm, mem, "attn_norm"));
    INFERD_ASSIGN_OR_RETURN(dl.ffn_norm, UploadVector(l.ffn_norm, mem, "ffn_norm"));
    INFERD_ASSIGN_OR_RETURN(dl.wqkv, UploadMatrix({&l.wq, &l.wk, &l.wv}, dt, mem, "qkv_proj"));
    INFERD_ASSIGN_OR_RETURN(dl.wo, UploadMatrix({&l.wo}, dt, mem, "o_proj"));
    INFERD_ASSIGN_OR_RETURN(dl.w_gate_up, UploadMatrix({&l.w_gate, &l.w_up}, dt, mem, "gate_up_proj"));
    INFERD_ASSIGN_OR_RETURN(dl.w_down, UploadMatrix({&l.w_down}, dt, mem, "down_proj"));
    if (!l.bq.empty() || !l.bk.empty() || !l.bv.empty()) {
      std::vector<float> b(static_cast<size_t>(qd + 2 * kvd), 0.0f);
      std::copy(l.bq.begin(), l.bq.end(), b.begin());
      std::copy(l.bk.begin(), l.bk.end(), b.begin() + qd);
      std::copy(l.bv.begin(), l.bv.end(), b.begin() + qd + kvd);
      INFERD_ASSIGN_OR_RETURN(dl.bqkv, UploadVector(b, mem, "qkv bias"));
    }
    for (const DeviceMatrix* m : {&dl.wqkv, &dl.wo, &dl.w_gate_up, &dl.w_down}) {
      if (m->quantized) d.max_dequant_elems = std::max(d.max_dequant_elems, m->rows * m->cols);
    }
    d.layers.push_back(dl);
  }
  return d;
}

}  // namespace inferd::cuda
