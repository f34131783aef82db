// inferd_chat_render: conformance driver for tests/reference/test_chat_templates.py.
//
// Reads one JSON object per stdin line:
//   {"template_path": "...", "messages": [...], "tools": [...]|null,
//    "add_generation_prompt": bool, "continue_final_message": bool,
//    "bos_token": "...", "eos_token": "...", "extra_context": {...}, "now": <unix seconds>}
// and writes one JSON line per input: {"ok": true, "text": "..."} or
// {"ok": false, "error": "..."}. Parsed templates are cached by path.
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "chat/chat_template.h"

namespace {

using Json = nlohmann::ordered_json;

void Emit(const Json& j) {
  std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n" << std::flush;
}

}  // namespace

int main() {
  std::map<std::string, std::unique_ptr<inferd::ChatTemplate>> cache;
  std::map<std::string, std::string> parse_errors;
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    Json req;
    try {
      req = Json::parse(line);
    } catch (const std::exception& e) {
      Emit({{"ok", false}, {"error", std::string("bad request line: ") + e.what()}});
      continue;
    }
    std::string path = req.value("template_path", "");
    if (!cache.count(path) && !parse_errors.count(path)) {
      std::ifstream f(path, std::ios::binary);
      if (!f) {
        parse_errors[path] = "cannot open " + path;
      } else {
        std::stringstream ss;
        ss << f.rdbuf();
        auto t = inferd::ChatTemplate::Parse(ss.str());
        if (t.ok()) cache[path] = std::move(t).value();
        else parse_errors[path] = t.status().message();
      }
    }
    if (parse_errors.count(path)) {
      Emit({{"ok", false}, {"error", parse_errors[path]}});
      continue;
    }
    inferd::ChatTemplateInputs in;
    in.messages = req.value("messages", Json::array());
    in.tools = req.contains("tools") ? req["tools"] : Json();
    in.add_generation_prompt = req.value("add_generation_prompt", true);
    in.continue_final_message = req.value("continue_final_message", false);
    in.bos_token = req.value("bos_token", "");
    in.eos_token = req.value("eos_token", "");
    in.extra_context = req.value("extra_context", Json::object());
    if (req.contains("now") && req["now"].is_number_integer()) in.now_unix_seconds = req["now"].get<int64_t>();
    auto r = cache[path]->Render(in);
    if (r.ok()) Emit({{"ok", true}, {"text", *r}});
    else Emit({{"ok", false}, {"error", r.status().message()}});
  }
  return 0;
}
