// OpenAI error bodies, {"error": {"message", "type", "param", "code"}} with vLLM's type
// names, and the JSON dump that never throws. Shared by `inferd serve` (openai.h) and
// `inferd router`, which must not depend on the engine: this library needs only JSON.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace inferd::server {

using ojson = nlohmann::ordered_json;

// vLLM's error type name for an HTTP status ("BadRequestError", "RateLimitError", ...).
const char* ErrorType(int status);
// The error object {"message", "type", "param", "code"} for an HTTP status.
ojson ErrorJson(int status, const std::string& message, const std::string& param = {});
// {"error": {...}} for an HTTP status.
std::string ErrorBody(int status, const std::string& message, const std::string& param = {});
// The same, as an SSE event for errors after a stream started.
std::string ErrorEvent(int status, const std::string& message);
// JSON text that never throws on invalid UTF-8 (bytes are replaced by U+FFFD).
std::string Dump(const ojson& j);

}  // namespace inferd::server
