#include "util/bytes.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>

#include <fmt/format.h>

namespace inferd {

StatusOr<int64_t> ParseByteSize(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + i, value);
  if (i == 0 || ec != std::errc() || end != text.data() + i || value < 0) {
    return InvalidArgument("invalid size '" + text + "': expected e.g. 512MiB, 2GiB");
  }
  std::string unit = text.substr(i);
  std::transform(unit.begin(), unit.end(), unit.begin(), [](unsigned char c) { return std::tolower(c); });
  double mult = 1;
  if (unit.empty() || unit == "b") mult = 1;
  else if (unit == "k" || unit == "kib" || unit == "kb") mult = 1024.0;
  else if (unit == "m" || unit == "mib" || unit == "mb") mult = 1024.0 * 1024;
  else if (unit == "g" || unit == "gib" || unit == "gb") mult = 1024.0 * 1024 * 1024;
  else if (unit == "t" || unit == "tib" || unit == "tb") mult = 1024.0 * 1024 * 1024 * 1024;
  else return InvalidArgument("invalid size unit in '" + text + "': use KiB, MiB, GiB");
  const double bytes = value * mult;
  if (!(bytes <= 4611686018427387904.0)) return InvalidArgument("size '" + text + "' is too large (at most 4 EiB)");
  return static_cast<int64_t>(std::llround(bytes));
}

std::string FormatBytes(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  const int64_t a = bytes == std::numeric_limits<int64_t>::min() ? std::numeric_limits<int64_t>::max() : std::llabs(bytes);
  if (a >= (int64_t{1} << 40)) return fmt::format("{:.2f} TiB", b / static_cast<double>(int64_t{1} << 40));
  if (a >= (int64_t{1} << 30)) return fmt::format("{:.2f} GiB", b / (1 << 30));
  if (a >= (int64_t{1} << 20)) return fmt::format("{:.1f} MiB", b / (1 << 20));
  if (a >= (int64_t{1} << 10)) return fmt::format("{:.1f} KiB", b / (1 << 10));
  return fmt::format("{} B", bytes);
}

namespace {
// cgroup v2 memory.max ("max" or bytes), else v1's limit_in_bytes; 0 when absent.
int64_t CgroupLimit() {
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream in(path);
    std::string s;
    if (!(in >> s) || s == "max") continue;
    int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc() && v > 0) return v;
  }
  return 0;
}
}  // namespace

int64_t UsableMemoryBytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  int64_t total = pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page : 0;
  const int64_t cg = CgroupLimit();
  if (cg > 0 && (total == 0 || cg < total)) total = cg;
  return total;
}

Status CheckFitsInMemory(int64_t bytes, const std::string& what) {
  const int64_t usable = UsableMemoryBytes();
  if (usable <= 0 || bytes <= usable) return Status::OK();
  const std::string need = bytes == std::numeric_limits<int64_t>::max() ? "more than 8 EiB" : FormatBytes(bytes);
  return ResourceExhausted(fmt::format("{} needs {}, more than the {} of memory this machine has", what, need,
                                       FormatBytes(usable)));
}

int64_t SaturatingMul(int64_t a, int64_t b) {
  int64_t r = 0;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) return std::numeric_limits<int64_t>::max();
  return r;
}

}  // namespace inferd
