#include "util/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace inferd {

void InitLogging(const char* level) {
  static bool initialized = false;
  if (!initialized) {
    auto logger = spdlog::stderr_color_mt("inferd");
    logger->set_pattern("%^%L%$ %m-%d %H:%M:%S.%e %v");
    spdlog::set_default_logger(logger);
    initialized = true;
  }
  std::string name = level ? level : "";
  if (name.empty()) {
    const char* env = std::getenv("INFERD_LOG_LEVEL");
    name = env ? env : "info";
  }
  spdlog::set_level(spdlog::level::from_str(name));
}

void FatalInvariant(const char* component, const std::string& what) {
  std::fprintf(stderr, "inferd %s: %s\n", component, what.c_str());
  std::abort();
}

}  // namespace inferd
