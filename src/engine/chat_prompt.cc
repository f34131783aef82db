#include "engine/chat_prompt.h"

namespace inferd {

StatusOr<std::unique_ptr<ChatPrompter>> ChatPrompter::Create(const Tokenizer& tokenizer,
                                                             const std::string& template_source) {
  const std::string& source = template_source.empty() ? tokenizer.chat_template() : template_source;
  if (source.empty()) {
    return NotFound("the model has no chat template; pass one with --chat-template FILE");
  }
  INFERD_ASSIGN_OR_RETURN(std::unique_ptr<ChatTemplate> tmpl, ChatTemplate::Parse(source));
  return std::unique_ptr<ChatPrompter>(new ChatPrompter(tokenizer, std::move(tmpl)));
}

StatusOr<std::string> ChatPrompter::Render(const ChatRenderInputs& r) const {
  if (!r.messages.is_array() || r.messages.empty()) return InvalidArgument("messages must be a non-empty array");
  ChatTemplateInputs in;
  in.messages = r.messages;
  in.tools = r.tools;
  in.add_generation_prompt = r.add_generation_prompt && !r.continue_final_message;
  in.continue_final_message = r.continue_final_message;
  if (tokenizer_.bos_id() >= 0) in.bos_token = tokenizer_.TokenText(tokenizer_.bos_id());
  if (tokenizer_.eos_id() >= 0) in.eos_token = tokenizer_.TokenText(tokenizer_.eos_id());
  if (r.kwargs.is_object()) in.extra_context = r.kwargs;
  in.budget = r.budget;
  return template_->Render(in);
}

StatusOr<ChatPrompter::Prompt> ChatPrompter::Apply(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                                   bool continue_final_message, const nlohmann::ordered_json& tools,
                                                   const nlohmann::ordered_json& template_kwargs) const {
  ChatRenderInputs in;
  in.messages = messages;
  in.tools = tools;
  in.kwargs = template_kwargs;
  in.add_generation_prompt = add_generation_prompt;
  in.continue_final_message = continue_final_message;
  Prompt p;
  INFERD_ASSIGN_OR_RETURN(p.text, Render(in));
  p.token_ids = tokenizer_.Encode(p.text, /*add_special=*/false, /*parse_special=*/true);
  return p;
}

}  // namespace inferd
