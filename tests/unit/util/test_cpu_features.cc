// The cpuid detector against the kernel's own view of the CPU (/proc/cpuinfo flags).
#include "util/cpu_features.h"

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace inferd {
namespace {

std::set<std::string> ProcFlags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    std::set<std::string> flags;
    for (std::string w; words >> w;) flags.insert(w);
    return flags;
  }
  return {};
}

TEST(CpuFeaturesTest, AgreesWithProcCpuinfo) {
  const std::set<std::string> flags = ProcFlags();
  if (flags.empty()) GTEST_SKIP() << "no /proc/cpuinfo flags";
  const CpuFeatures& f = GetCpuFeatures();
  EXPECT_EQ(f.avx2, flags.count("avx2") == 1);
  EXPECT_EQ(f.fma, flags.count("fma") == 1);
  EXPECT_EQ(f.f16c, flags.count("f16c") == 1);
  EXPECT_EQ(f.avx512f, flags.count("avx512f") == 1);
  EXPECT_EQ(f.avx512bw, flags.count("avx512bw") == 1);
  EXPECT_EQ(f.avx512vl, flags.count("avx512vl") == 1);
  EXPECT_EQ(f.avx512vnni, flags.count("avx512_vnni") == 1);
  EXPECT_EQ(f.avx512bf16, flags.count("avx512_bf16") == 1);
  EXPECT_EQ(f.avx512vbmi, flags.count("avx512vbmi") == 1);
}

TEST(CpuFeaturesTest, LevelsNest) {
  const CpuFeatures& f = GetCpuFeatures();
  const CpuLevel l = DetectedCpuLevel();
  EXPECT_EQ(l >= CpuLevel::kAvx2, f.avx2 && f.fma && f.f16c);
  EXPECT_EQ(l >= CpuLevel::kAvx512, f.avx2 && f.fma && f.f16c && f.avx512f && f.avx512bw && f.avx512vl);
  EXPECT_LE(UsableCpuLevel(), l);
}

}  // namespace
}  // namespace inferd
