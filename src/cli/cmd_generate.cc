// inferd generate: run prompts (command line or JSONL) through the engine.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "cli/common.h"
#include "cli/progress.h"
#include "engine/chat_prompt.h"
#include "engine/output_json.h"
#include "format/hf_config.h"

namespace inferd::cli {
namespace {

struct GenerateFlags {
  ModelFlags model;
  std::vector<std::string> prompts;
  std::string input;
  bool json = false;
  SamplingParams params;
  int max_tokens = 16;
  bool chat = false;
  bool no_progress = false;
  std::string chat_template;
};

// Applies vLLM SamplingParams fields present in a JSONL record on top of `base`.
Status ParamsFromJson(const nlohmann::json& j, SamplingParams& p) {
  try {
    if (j.contains("n")) p.n = j["n"].get<int>();
    if (j.contains("temperature")) p.temperature = j["temperature"].get<float>();
    if (j.contains("top_p")) p.top_p = j["top_p"].get<float>();
    if (j.contains("top_k")) p.top_k = j["top_k"].get<int>();
    if (j.contains("min_p")) p.min_p = j["min_p"].get<float>();
    if (j.contains("presence_penalty")) p.presence_penalty = j["presence_penalty"].get<float>();
    if (j.contains("frequency_penalty")) p.frequency_penalty = j["frequency_penalty"].get<float>();
    if (j.contains("repetition_penalty")) p.repetition_penalty = j["repetition_penalty"].get<float>();
    if (j.contains("seed") && !j["seed"].is_null()) p.seed = j["seed"].get<int64_t>();
    if (j.contains("max_tokens")) {
      if (j["max_tokens"].is_null()) p.max_tokens.reset();
      else p.max_tokens = j["max_tokens"].get<int>();
    }
    if (j.contains("min_tokens")) p.min_tokens = j["min_tokens"].get<int>();
    if (j.contains("stop")) {
      if (j["stop"].is_string()) p.stop = {j["stop"].get<std::string>()};
      else p.stop = j["stop"].get<std::vector<std::string>>();
    }
    if (j.contains("stop_token_ids")) p.stop_token_ids = j["stop_token_ids"].get<std::vector<int32_t>>();
    if (j.contains("ignore_eos")) p.ignore_eos = j["ignore_eos"].get<bool>();
    if (j.contains("logprobs") && !j["logprobs"].is_null()) p.logprobs = j["logprobs"].get<int>();
    if (j.contains("prompt_logprobs") && !j["prompt_logprobs"].is_null()) p.prompt_logprobs = j["prompt_logprobs"].get<int>();
    if (j.contains("include_stop_str_in_output")) p.include_stop_str_in_output = j["include_stop_str_in_output"].get<bool>();
    if (j.contains("skip_special_tokens")) p.skip_special_tokens = j["skip_special_tokens"].get<bool>();
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument(std::string("invalid sampling field: ") + e.what());
  }
  return Status::OK();
}

void PrintText(const RequestOutput& out, bool chat) {
  for (const CompletionOutput& o : out.outputs) {
    // A chat prompt is the rendered template; show only the reply.
    std::printf("%s%s\n", chat ? "" : out.prompt.c_str(), o.text.c_str());
    std::printf("  [%zu tokens, finish_reason=%s]\n", o.token_ids.size(), o.finish_reason.value_or("?").c_str());
  }
}

void Run(GenerateFlags& f) {
  f.params.max_tokens = f.max_tokens;
  auto engine_or = EngineFromFlags(f.model);
  if (!engine_or.ok()) return Fail(engine_or.status());
  Engine& engine = **engine_or;
  const Tokenizer& tok = engine.tokenizer();

  std::unique_ptr<ChatPrompter> prompter;
  auto need_prompter = [&]() -> Status {
    if (prompter) return Status::OK();
    std::string source;
    if (!f.chat_template.empty()) {
      INFERD_ASSIGN_OR_RETURN(source, ReadFileToString(f.chat_template));
    }
    INFERD_ASSIGN_OR_RETURN(prompter, ChatPrompter::Create(tok, source));
    return Status::OK();
  };
  std::vector<GenerateRequest> requests;
  auto add_tokens = [&](std::string text, std::vector<int32_t> ids, const SamplingParams& params) {
    GenerateRequest r;
    r.request_id = std::to_string(requests.size());
    r.prompt = std::move(text);
    r.prompt_token_ids = std::move(ids);
    r.params = params;
    requests.push_back(std::move(r));
  };
  // Messages → chat template → tokens; plain prompts are tokenized with BOS as the model asks.
  auto add_messages = [&](const nlohmann::ordered_json& messages, const SamplingParams& params) -> Status {
    INFERD_RETURN_IF_ERROR(need_prompter());
    INFERD_ASSIGN_OR_RETURN(ChatPrompter::Prompt p, prompter->Apply(messages));
    add_tokens(std::move(p.text), std::move(p.token_ids), params);
    return Status::OK();
  };
  for (const std::string& p : f.prompts) {
    if (f.chat) {
      Status st = add_messages(nlohmann::ordered_json::array({{{"role", "user"}, {"content", p}}}), f.params);
      if (!st.ok()) return Fail(st);
    } else {
      add_tokens(p, tok.Encode(p, /*add_special=*/true, /*parse_special=*/false), f.params);
    }
  }
  if (!f.input.empty()) {
    std::ifstream in(f.input);
    if (!in) return Fail(NotFound("cannot open --input '" + f.input + "'"));
    std::string line;
    int line_no = 0;
    while (std::getline(in, line)) {
      ++line_no;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      auto j = ParseJson(line, fmt::format("{} line {}", f.input, line_no));
      if (!j.ok()) return Fail(j.status());
      const bool has_prompt = j->is_object() && j->contains("prompt") && (*j)["prompt"].is_string();
      const bool has_messages = j->is_object() && j->contains("messages") && (*j)["messages"].is_array();
      // vLLM's TokensPrompt: {"prompt_token_ids": [1, 2, 3]}, no tokenization.
      const bool has_ids = j->is_object() && j->contains("prompt_token_ids") && (*j)["prompt_token_ids"].is_array();
      if (int(has_prompt) + int(has_messages) + int(has_ids) != 1) {
        return Fail(InvalidArgument(fmt::format("{} line {}: expected an object with one of a string \"prompt\", a "
                                                "\"messages\" array or a \"prompt_token_ids\" array",
                                                f.input, line_no)));
      }
      std::vector<int32_t> ids;
      for (const auto& id : has_ids ? (*j)["prompt_token_ids"] : nlohmann::json::array()) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
          return Fail(InvalidArgument(fmt::format("{} line {}: prompt_token_ids must be non-negative integers",
                                                  f.input, line_no)));
        }
        ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
      }
      SamplingParams params = f.params;
      Status st = ParamsFromJson(*j, params);
      if (st.ok() && has_messages) st = add_messages(nlohmann::ordered_json::parse(line)["messages"], params);
      if (!st.ok()) return Fail(InvalidArgument(fmt::format("{} line {}: {}", f.input, line_no, st.message())));
      if (has_ids) {
        add_tokens("", std::move(ids), params);
      } else if (!has_messages) {
        const std::string text = (*j)["prompt"].get<std::string>();
        add_tokens(text, tok.Encode(text, /*add_special=*/true, /*parse_special=*/false), params);
      }
    }
  }
  if (requests.empty()) return Fail(InvalidArgument("no prompts: pass --prompt TEXT or --input FILE.jsonl"));

  const auto t0 = std::chrono::steady_clock::now();
  int64_t done = 0, in_tokens = 0, out_tokens = 0;
  ProgressBar bar("Processed prompts", static_cast<int64_t>(requests.size()), !f.no_progress);
  auto results = engine.Generate(std::move(requests), [&](size_t, const StatusOr<RequestOutput>& r) {
    ++done;
    if (r.ok()) {
      in_tokens += static_cast<int64_t>(r->prompt_token_ids.size());
      for (const auto& o : r->outputs) out_tokens += static_cast<int64_t>(o.token_ids.size());
    }
    bar.Update(done, in_tokens, out_tokens);
  });
  bar.Close();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  size_t prompt_tokens = 0, output_tokens = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    if (!results[i].ok()) {
      if (f.json) {
        nlohmann::json err = {{"request_id", std::to_string(i)}, {"error", results[i].status().message()}};
        std::printf("%s\n", err.dump().c_str());
      } else {
        std::fprintf(stderr, "error: request %zu: %s\n", i, results[i].status().message().c_str());
      }
      ExitCode() = 1;
      continue;
    }
    const RequestOutput& out = *results[i];
    prompt_tokens += out.prompt_token_ids.size();
    for (const auto& o : out.outputs) output_tokens += o.token_ids.size();
    if (f.json) std::printf("%s\n", ToJson(out).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    else PrintText(out, f.chat);
  }
  std::fflush(stdout);
  std::fprintf(stderr, "generated %zu tokens for %zu prompts (%zu prompt tokens) in %.2f s: %.1f output tok/s\n",
               output_tokens, results.size(), prompt_tokens, secs, output_tokens / std::max(secs, 1e-9));
}

}  // namespace

void AddGenerateCommand(CLI::App& app) {
  auto f = std::make_shared<GenerateFlags>();
  CLI::App* cmd = app.add_subcommand("generate", "generate text for prompts");
  f->model.Add(cmd, /*engine_flags=*/true);
  cmd->add_option("--prompt,-p", f->prompts, "prompt text (repeatable)");
  cmd->add_option("--input", f->input, "JSONL file: {\"prompt\": ...} or {\"messages\": [...]} or {\"prompt_token_ids\": [...]}, sampling fields as in vLLM");
  cmd->add_option("--max-tokens", f->max_tokens, "maximum generated tokens")->capture_default_str();
  cmd->add_option("--temperature", f->params.temperature, "sampling temperature (0 = greedy)")->capture_default_str();
  cmd->add_option("--top-p", f->params.top_p, "nucleus sampling mass")->capture_default_str();
  cmd->add_option("--top-k", f->params.top_k, "top-k (0 = off)")->capture_default_str();
  cmd->add_option("--min-p", f->params.min_p, "min-p")->capture_default_str();
  cmd->add_option("--repetition-penalty", f->params.repetition_penalty, "repetition penalty")->capture_default_str();
  cmd->add_option("--presence-penalty", f->params.presence_penalty, "presence penalty")->capture_default_str();
  cmd->add_option("--frequency-penalty", f->params.frequency_penalty, "frequency penalty")->capture_default_str();
  cmd->add_option("--n", f->params.n, "samples per prompt")->capture_default_str();
  cmd->add_option("--logprobs", f->params.logprobs, "top-N logprobs per output token");
  cmd->add_option("--request-seed", f->params.seed, "seed of every request");
  cmd->add_option("--stop", f->params.stop, "stop string (repeatable)");
  cmd->add_option("--min-tokens", f->params.min_tokens, "minimum generated tokens")->capture_default_str();
  cmd->add_flag("--ignore-eos", f->params.ignore_eos, "keep generating after EOS");
  cmd->add_flag("--include-stop-str-in-output", f->params.include_stop_str_in_output, "keep the stop string");
  cmd->add_flag("--json", f->json, "one JSON object (vLLM RequestOutput) per line");
  cmd->add_flag("--disable-progress-bar", f->no_progress, "no progress bar on stderr");
  cmd->add_flag("--chat", f->chat, "wrap each --prompt as a user message in the chat template");
  cmd->add_option("--chat-template", f->chat_template, "Jinja chat template file (default: the model's)");
  cmd->callback([f] { Run(*f); });
}

}  // namespace inferd::cli
