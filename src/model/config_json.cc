#include "model/config_json.h"

namespace inferd::config_json {
namespace {

using json = nlohmann::json;

std::string Describe(const json& v) { return std::string(v.type_name()) + " " + v.dump(); }

}  // namespace

Status GetInt(const json& j, const char* key, int64_t* out, bool required) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) return InvalidArgument(std::string("config.json: required field '") + key + "' is missing");
    return Status::OK();
  }
  if (!it->is_number_integer()) {
    // Some configs write 4096.0; accept integral floats.
    if (it->is_number_float()) {
      const double d = it->get<double>();
      if (d > -9.0e18 && d < 9.0e18 && d == static_cast<double>(static_cast<int64_t>(d))) {
        *out = static_cast<int64_t>(d);
        return Status::OK();
      }
    }
    return InvalidArgument(std::string("config.json: '") + key + "' must be an integer, got " + Describe(*it));
  }
  if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    return InvalidArgument(std::string("config.json: '") + key + "' is out of range: " + it->dump());
  }
  *out = it->get<int64_t>();
  return Status::OK();
}

Status GetFloat(const json& j, const char* key, float* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status::OK();
  if (!it->is_number()) {
    return InvalidArgument(std::string("config.json: '") + key + "' must be a number, got " + Describe(*it));
  }
  *out = it->get<float>();
  return Status::OK();
}

Status GetBool(const json& j, const char* key, bool* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status::OK();
  if (!it->is_boolean()) {
    return InvalidArgument(std::string("config.json: '") + key + "' must be a boolean, got " + Describe(*it));
  }
  *out = it->get<bool>();
  return Status::OK();
}

Status GetString(const json& j, const char* key, std::string* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status::OK();
  if (!it->is_string()) {
    return InvalidArgument(std::string("config.json: '") + key + "' must be a string, got " + Describe(*it));
  }
  *out = it->get<std::string>();
  return Status::OK();
}

}  // namespace inferd::config_json
