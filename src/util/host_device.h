// INFERD_HOST_DEVICE: marks inline functions that host code (g++) and CUDA kernels (nvcc)
// both call, so that one definition serves both; without nvcc it is empty.
#pragma once

#if defined(__CUDACC__)
#define INFERD_HOST_DEVICE __host__ __device__
#else
#define INFERD_HOST_DEVICE
#endif
