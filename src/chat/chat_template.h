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
// Limits: a render fails (never crashes) past its RenderBudget (steps, output bytes,
// allocated bytes, cancellation), 100 nested macro calls, 1,000,000 loop iterations,
// values nested 512 deep, 512 KiB of C++ stack, or 128 levels of syntactic nesting at parse
// time. The budget bounds the time and memory of every render, whatever the template does.
#pragma once

#include <atomic>
#include <cstddef>
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

// What one render may spend. Every limit is cumulative over the render and never refunded;
// exceeding one fails the render with InvalidArgument("chat template: ...") naming it.
//
// Defaults: far above what real templates need, far below what hurts a server. Measured
// on every template in shared/testdata/chat_templates rendering a 1,000-message
// conversation with tool calls (~200-330 KB of prompt; tests/unit/chat/
// render_limits_test.cc, which renders them all within half of each default): most take
// 30k-150k steps and 0.2-2 MB allocated; the templates that rescan all messages for each
// message are quadratic and the most expensive, DeepSeek-V3.2 at 3.9M steps, gemma-4-31B-it
// at 62 MB allocated; the largest prompt is 0.33 MB. At the limits a render costs about
// a second of one core (~50 ns a step; filling 256 MiB with fresh pages takes as long) and
// a few hundred MiB, transiently.
struct RenderBudget {
  // Evaluated nodes + expressions + loop iterations + builtin work units (one per element
  // visited by a comparison, print or serialization, one per 64 bytes scanned).
  int64_t max_steps = 10'000'000;
  // Size of the rendered prompt (and of any text block captured by set / macro / filter).
  size_t max_output_bytes = 16u << 20;
  // Cumulative bytes of strings and container cells created during the render (strings
  // are shared: a new string costs its bytes, passing one around costs nothing).
  size_t max_alloc_bytes = 256u << 20;
  // When set and true, the render stops with an error (checked every ~1k steps). Owned by
  // the caller; must outlive the render.
  const std::atomic<bool>* cancel = nullptr;
};

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
  // Limits of this render; the defaults suit any request (see RenderBudget).
  RenderBudget budget;
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
