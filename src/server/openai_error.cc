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

}  // namespace inferd::server
