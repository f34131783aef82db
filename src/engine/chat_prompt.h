// Turns chat messages into a prompt with the model's chat template (or an override),
// as vLLM's chat entry points do: rendered text, then tokenized without adding BOS
// (templates write it themselves) and with special-token text parsed.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/chat_template.h"
#include "inferd/status.h"
#include "tokenizer/tokenizer.h"

namespace inferd {

class ChatPrompter {
 public:
  // template_source empty: the tokenizer's chat_template. NotFound if neither exists.
  static StatusOr<std::unique_ptr<ChatPrompter>> Create(const Tokenizer& tokenizer, const std::string& template_source);

  struct Prompt {
    std::string text;
    std::vector<int32_t> token_ids;
  };
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
