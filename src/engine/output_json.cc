#include "engine/output_json.h"

namespace inferd {
namespace {

nlohmann::json PositionToJson(const PositionLogprobs& pos) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [id, lp] : pos) {
    j[std::to_string(id)] = {{"logprob", lp.logprob}, {"rank", lp.rank}, {"decoded_token", lp.decoded_token}};
  }
  return j;
}

}  // namespace

nlohmann::json ToJson(const CompletionOutput& o) {
  nlohmann::json j;
  j["index"] = o.index;
  j["text"] = o.text;
  j["token_ids"] = o.token_ids;
  j["cumulative_logprob"] = o.cumulative_logprob;
  if (o.logprobs) {
    nlohmann::json lps = nlohmann::json::array();
    for (const auto& pos : *o.logprobs) lps.push_back(PositionToJson(pos));
    j["logprobs"] = std::move(lps);
  } else {
    j["logprobs"] = nullptr;
  }
  j["finish_reason"] = o.finish_reason ? nlohmann::json(*o.finish_reason) : nlohmann::json(nullptr);
  if (std::holds_alternative<int32_t>(o.stop_reason)) j["stop_reason"] = std::get<int32_t>(o.stop_reason);
  else if (std::holds_alternative<std::string>(o.stop_reason)) j["stop_reason"] = std::get<std::string>(o.stop_reason);
  else j["stop_reason"] = nullptr;
  return j;
}

nlohmann::json ToJson(const RequestOutput& r) {
  nlohmann::json j;
  j["request_id"] = r.request_id;
  j["prompt"] = r.prompt;
  j["prompt_token_ids"] = r.prompt_token_ids;
  if (r.prompt_logprobs) {
    nlohmann::json p = nlohmann::json::array();
    for (const auto& pos : *r.prompt_logprobs) p.push_back(pos ? PositionToJson(*pos) : nlohmann::json(nullptr));
    j["prompt_logprobs"] = std::move(p);
  } else {
    j["prompt_logprobs"] = nullptr;
  }
  nlohmann::json outs = nlohmann::json::array();
  for (const auto& o : r.outputs) outs.push_back(ToJson(o));
  j["outputs"] = std::move(outs);
  j["finished"] = r.finished;
  j["num_cached_tokens"] = r.num_cached_tokens;
  j["metrics"] = {{"arrival_time", r.metrics.arrival_time},
                  {"first_scheduled_time", r.metrics.first_scheduled_time},
                  {"first_token_time", r.metrics.first_token_time},
                  {"last_token_time", r.metrics.last_token_time},
                  {"finished_time", r.metrics.finished_time}};
  return j;
}

}  // namespace inferd
