// OpenAI error bodies, {"error": {"message", "type", "param", "code"}} with vLLM's type
// names, the JSON dump that never throws, and reading server-sent events back (for the
// transports that carry the routes' output in their own framing: WebSocket, gRPC). Shared by `inferd serve` (openai.h) and
// `inferd router`, which must not depend on the engine: this library needs only JSON.
#pragma once

#include <string>
#include <string_view>
#include <vector>

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
// The error object of an error body (ErrorBody's "error"); one made of the text (as the
// message) when `body` is not one.
ojson ErrorObjectOf(int status, std::string_view body);
// The payloads of the server-sent events in `data` ("data: X\n\n" each, as the routes
// write them; other lines are skipped).
std::vector<std::string_view> SsePayloads(std::string_view data);
// JSON text that never throws on invalid UTF-8 (bytes are replaced by U+FFFD).
std::string Dump(const ojson& j);

}  // namespace inferd::server
