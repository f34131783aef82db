// Turns chat messages into a prompt with the model's chat template (or an override),
// as vLLM's chat entry points do: rendered text, then tokenized without adding BOS
// (templates write it themselves) and with special-token text parsed.
//
// Thread-safety: immutable after Create; Render/Apply may run concurrently.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/chat_template.h"
#include "inferd/status.h"
#include "tokenizer/tokenizer.h"

namespace inferd {

// What reaches the template besides the tokenizer's special tokens.
struct ChatRenderInputs {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  nlohmann::ordered_json tools;   // null or an array of tool schemas
  nlohmann::ordered_json kwargs;  // null or an object: extra template variables (chat_template_kwargs)
  bool add_generation_prompt = true;
  bool continue_final_message = false;
  RenderBudget budget;            // steps, bytes and cancellation of the render
};

class ChatPrompter {
 public:
  // template_source empty: the tokenizer's chat_template. NotFound if neither exists.
  static StatusOr<std::unique_ptr<ChatPrompter>> Create(const Tokenizer& tokenizer, const std::string& template_source);

  // The rendered prompt text. Errors (template failures, budget exceeded) are
  // InvalidArgument with the template's message.
  StatusOr<std::string> Render(const ChatRenderInputs& in) const;

  struct Prompt {
    std::string text;
    std::vector<int32_t> token_ids;
  };
  // Render, then tokenize as vLLM does (no BOS added, special-token text parsed).
  StatusOr<Prompt> Apply(const nlohmann::ordered_json& messages, bool add_generation_prompt = true,
                         bool continue_final_message = false, const nlohmann::ordered_json& tools = nullptr,
                         const nlohmann::ordered_json& template_kwargs = nullptr) const;

 private:
  ChatPrompter(const Tokenizer& tokenizer, std::unique_ptr<ChatTemplate> tmpl)
      : tokenizer_(tokenizer), template_(std::move(tmpl)) {}
  const Tokenizer& tokenizer_;
  std::unique_ptr<ChatTemplate> template_;
};

}  // namespace inferd
