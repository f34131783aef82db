// JSON form of RequestOutput with vLLM's field names (used by `inferd generate --json`).
#pragma once

#include <nlohmann/json.hpp>

#include "inferd/request_output.h"

namespace inferd {

nlohmann::json ToJson(const RequestOutput& out);
nlohmann::json ToJson(const CompletionOutput& out);

}  // namespace inferd
