// Logging: thin wrappers over spdlog so call sites stay short and the sink is set in one place.
// Logs go to stderr; stdout is reserved for command output (text or --json).
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace inferd {

// Sets the level from a name ("debug", "info", "warning", "error") or INFERD_LOG_LEVEL.
void InitLogging(const char* level = nullptr);

// A broken internal invariant (never bad input): prints "inferd <component>: <what>"
// straight to stderr (the logger may not be set up yet) and aborts.
[[noreturn]] void FatalInvariant(const char* component, const std::string& what);

}  // namespace inferd

#define INFERD_LOG_DEBUG(...) ::spdlog::debug(__VA_ARGS__)
#define INFERD_LOG_INFO(...) ::spdlog::info(__VA_ARGS__)
#define INFERD_LOG_WARN(...) ::spdlog::warn(__VA_ARGS__)
#define INFERD_LOG_ERROR(...) ::spdlog::error(__VA_ARGS__)
