// generation_config.json of Hugging Face model directories (config.json is the model's:
// model/hf_config.cc).
#include "format/hf_config.h"

#include <charconv>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

namespace inferd {
namespace {

using json = nlohmann::json;

std::string ConfigPathOrDir(const std::string& path_or_dir, const char* file) {
  std::error_code ec;
  if (std::filesystem::is_directory(path_or_dir, ec)) {
    return (std::filesystem::path(path_or_dir) / file).string();
  }
  return path_or_dir;
}

}  // namespace

StatusOr<GenerationDefaults> LoadGenerationConfig(const std::string& path_or_dir) {
  const std::string path = ConfigPathOrDir(path_or_dir, "generation_config.json");
  INFERD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  INFERD_ASSIGN_OR_RETURN(nlohmann::json j, ParseJson(text, path));
  if (!j.is_object()) return InvalidArgument(path + ": top level must be a JSON object");
  GenerationDefaults g;
  auto bad = [&](const char* key, const char* want) {
    return InvalidArgument(path + ": '" + key + "' must be " + want + ", got " + j[key].dump());
  };
  for (auto [key, field] : {std::pair{"temperature", &g.temperature}, {"top_p", &g.top_p},
                            {"min_p", &g.min_p}, {"repetition_penalty", &g.repetition_penalty}}) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    if (!it->is_number()) return bad(key, "a number");
    *field = it->get<float>();
  }
  for (auto [key, field] : {std::pair{"top_k", &g.top_k}, {"max_new_tokens", &g.max_new_tokens}}) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    if (!it->is_number_integer()) return bad(key, "an integer");
    const int64_t v = it->get<int64_t>();
    if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
      return bad(key, "a 32-bit integer");
    }
    *field = static_cast<int>(v);
  }
  if (auto it = j.find("eos_token_id"); it != j.end() && !it->is_null()) {
    const json ids = it->is_array() ? *it : json::array({*it});
    for (const json& id : ids) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
          id.get<int64_t>() > std::numeric_limits<int>::max()) {
        return bad("eos_token_id", "a non-negative integer or an array of them");
      }
      g.eos_token_ids.push_back(static_cast<int>(id.get<int64_t>()));
    }
  }
  return g;
}

}  // namespace inferd
