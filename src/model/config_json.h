// Typed reads of config.json fields: a wrong JSON type is an InvalidArgument naming the
// field; absent or null leaves *out unchanged (or is an error when required).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "inferd/status.h"

namespace inferd::config_json {

Status GetInt(const nlohmann::json& j, const char* key, int64_t* out, bool required = false);
Status GetFloat(const nlohmann::json& j, const char* key, float* out);
Status GetBool(const nlohmann::json& j, const char* key, bool* out);
Status GetString(const nlohmann::json& j, const char* key, std::string* out);

}  // namespace inferd::config_json
