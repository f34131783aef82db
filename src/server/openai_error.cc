// OpenAI error bodies (openai_error.h).
#include "server/openai_error.h"

namespace inferd::server {

const char* ErrorType(int status) {
  switch (status) {
    case 400: return "BadRequestError";
    case 401: return "AuthenticationError";
    case 404: return "NotFoundError";
    case 405: return "MethodNotAllowedError";
    case 408: return "TimeoutError";
    case 413: return "RequestTooLargeError";
    case 429: return "RateLimitError";
    case 503: return "ServiceUnavailableError";
    default: return status >= 500 ? "InternalServerError" : "BadRequestError";
  }
}

std::string Dump(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

ojson ErrorJson(int status, const std::string& message, const std::string& param) {
  ojson e = {{"message", message}, {"type", ErrorType(status)}, {"param", nullptr}, {"code", status}};
  if (!param.empty()) e["param"] = param;
  return e;
}

std::string ErrorBody(int status, const std::string& message, const std::string& param) {
  return Dump(ojson{{"error", ErrorJson(status, message, param)}});
}

std::string ErrorEvent(int status, const std::string& message) {
  return "data: " + ErrorBody(status, message) + "\n\n";
}

ojson ErrorObjectOf(int status, std::string_view body) {
  ojson parsed = ojson::parse(body, nullptr, false);
  if (parsed.is_object() && parsed.contains("error") && parsed["error"].is_object()) return parsed["error"];
  return ErrorJson(status, std::string(body));
}

std::vector<std::string_view> SsePayloads(std::string_view data) {
  std::vector<std::string_view> out;
  while (!data.empty()) {
    const size_t end = data.find("\n\n");
    std::string_view event = data.substr(0, end);
    data = end == std::string_view::npos ? std::string_view() : data.substr(end + 2);
    if (event.starts_with("data: ")) out.push_back(event.substr(6));
  }
  return out;
}

}  // namespace inferd::server
