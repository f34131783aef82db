// DType helpers of kernels.h.
#include "backend/cuda/kernels.h"

namespace inferd::cuda {

size_t DTypeBytes(DType dt) {
  switch (dt) {
    case DType::kF32:
      return 4;
    case DType::kF16:
    case DType::kBF16:
      return 2;
  }
  return 0;
}

const char* DTypeName(DType dt) {
  switch (dt) {
    case DType::kF32:
      return "float32";
    case DType::kF16:
      return "float16";
    case DType::kBF16:
      return "bfloat16";
  }
  return "unknown";
}

}  // namespace inferd::cuda
