// Shared helpers for tests that need the embedded model.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace inferd::testing {

// $INFERD_MODEL or the default cache path; empty when the file is missing.
inline std::string EmbeddedModelPath() {
  std::string path;
  if (const char* env = std::getenv("INFERD_MODEL"); env && *env) {
    path = env;
  } else if (const char* home = std::getenv("HOME")) {
    path = std::string(home) + "/.cache/inferd/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  }
  return std::filesystem::exists(path) ? path : std::string();
}

}  // namespace inferd::testing

#define INFERD_REQUIRE_MODEL(var)                                                          \
  const std::string var = ::inferd::testing::EmbeddedModelPath();                          \
  if (var.empty()) GTEST_SKIP() << "embedded model missing: run scripts/fetch-model.sh or set INFERD_MODEL"
