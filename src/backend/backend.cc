#include "backend/backend.h"

#include <fmt/format.h>

#include <cstdlib>

#include "backend/memory_plan.h"
#include "util/logging.h"

namespace inferd {

bool CudaBackendBuilt() {
#ifdef INFERD_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

std::string FormatMemoryReport(const MemoryReport& r) {
  const int64_t used = r.weights + r.packed_weights + r.kv_cache + r.activations + r.cuda_graphs + r.other;
  const int64_t base = r.budget > 0 ? r.budget : used;
  auto line = [&](const char* what, int64_t b) {
    const double pct = base > 0 ? 100.0 * static_cast<double>(b) / static_cast<double>(base) : 0.0;
    return fmt::format("  {:<28} {:>12}  {:5.1f}%\n", what, FormatBytes(b), pct);
  };
  std::string s = fmt::format("memory on {}: {} in use", r.device, FormatBytes(used));
  if (r.budget > 0) {
    s += fmt::format(" of a budget of {} ({} total)\n", FormatBytes(r.budget), FormatBytes(r.total));
  } else {
    s += r.total > 0 ? fmt::format(" ({} RAM)\n", FormatBytes(r.total)) : "\n";
  }
  s += line("weights", r.weights);
  if (r.packed_weights > 0) s += line("weights repacked for kernels", r.packed_weights);
  s += line("KV cache", r.kv_cache);
  s += line("activations and workspace", r.activations);
  if (r.budget > 0) {
    s += line("CUDA graphs", r.cuda_graphs);
    s += line("other (context, libraries)", r.other);
    if (r.budget > used) s += line("unused budget", r.budget - used);
  }
  return s;
}

StatusOr<std::unique_ptr<Backend>> CreateBackend(LoadedModel& model, const BackendOptions& options) {
  const std::string& d = options.device;
  if (d == "cpu") return CreateCpuBackend(model, options);
  const bool want_cuda = d == "cuda" || d.rfind("cuda:", 0) == 0;
  if (d != "auto" && !want_cuda) {
    return InvalidArgument("unknown --device '" + d + "': use auto, cpu, cuda or cuda:N");
  }
#ifdef INFERD_HAVE_CUDA
  int index = 0;
  if (d.rfind("cuda:", 0) == 0) {
    char* end = nullptr;
    const long v = std::strtol(d.c_str() + 5, &end, 10);
    if (end == d.c_str() + 5 || *end != '\0' || v < 0) {
      return InvalidArgument("bad --device '" + d + "': use cuda:N with N a device index");
    }
    index = static_cast<int>(v);
  }
  StatusOr<int> count = CudaDeviceCount();
  if (!count.ok()) {
    if (want_cuda) return count.status();
    INFERD_LOG_INFO("{}; running on the CPU", count.status().message());
    return CreateCpuBackend(model, options);
  }
  if (index >= *count) {
    return InvalidArgument(fmt::format("--device {}: this machine has {} CUDA device(s)", d, *count));
  }
  return CreateCudaBackend(model, options, index);
#else
  if (want_cuda) {
    return InvalidArgument("--device " + d + ": this build of inferd has no CUDA backend (configure with "
                           "-DINFERD_CUDA=ON, e.g. cmake --preset cuda)");
  }
  return CreateCpuBackend(model, options);
#endif
}

}  // namespace inferd
