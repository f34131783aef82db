// ChatTemplate: renders a model's Jinja chat template (tokenizer_config.json
// `chat_template`) into a prompt string, byte-identical to what Python's jinja2 produces
// with the environment transformers / vLLM use: ImmutableSandboxedEnvironment with
// trim_blocks and lstrip_blocks, loop controls (break/continue), the `{% generation %}`
// tag, `raise_exception(msg)`, `strftime_now(fmt)` and transformers' `tojson` filter
// (json.dumps: ensure_ascii=False, indent, separators, sort_keys).
//
// Thread-safety: Parse once; a ChatTemplate is immutable afterwards and Render may be
// called concurrently from any number of threads.
//
// Limits: a render fails (never crashes) past 100 nested macro calls, 1,000,000 loop
// iterations, 64 MiB of output, or 128 levels of syntactic nesting at parse time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "inferd/status.h"

namespace inferd {

namespace chat {
struct Template;
}

struct ChatTemplateInputs {
  // ordered_json keeps object keys in the order the client sent them, as Python dicts do;
  // tool schemas rendered with tojson depend on it. (nlohmann::json converts implicitly.)
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();  // [{role, content, ...}]
  nlohmann::ordered_json tools;  // null or array of tool schemas
  bool add_generation_prompt = true;
  // vLLM / transformers semantics: render without generation prompt, then cut the text
  // right after the final message's content so the model continues it.
  bool continue_final_message = false;
  std::string bos_token, eos_token;
  nlohmann::ordered_json extra_context;  // object: chat_template_kwargs (e.g. enable_thinking)
  // Time seen by strftime_now(), seconds since the epoch, formatted as UTC. Unset: the
  // current local time (what Python's datetime.now() gives).
  std::optional<int64_t> now_unix_seconds;
};

class ChatTemplate {
 public:
  ~ChatTemplate();
  // Syntax errors come back as InvalidArgument with "line L:C" of the offending token.
  static StatusOr<std::unique_ptr<ChatTemplate>> Parse(const std::string& source);

  // raise_exception(msg) -> InvalidArgument(msg); other template errors (undefined value
  // used, type errors, limits) -> InvalidArgument("chat template: ...").
  StatusOr<std::string> Render(const ChatTemplateInputs& in) const;

 private:
  explicit ChatTemplate(std::unique_ptr<chat::Template> t);
  std::unique_ptr<chat::Template> tmpl_;
};

}  // namespace inferd
