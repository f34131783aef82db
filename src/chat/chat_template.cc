#include "chat/chat_template.h"

#include <ctime>
#include <new>

#include "chat/budget.h"
#include "chat/evaluator.h"
#include "chat/parser.h"

namespace inferd {

ChatTemplate::ChatTemplate(std::unique_ptr<chat::Template> t) : tmpl_(std::move(t)) {}
ChatTemplate::~ChatTemplate() = default;

StatusOr<std::unique_ptr<ChatTemplate>> ChatTemplate::Parse(const std::string& source) {
  try {
    return std::unique_ptr<ChatTemplate>(new ChatTemplate(chat::ParseTemplate(source)));
  } catch (const chat::TemplateError& e) {
    return InvalidArgument(std::string("chat template syntax error: ") + e.what());
  } catch (const std::bad_alloc&) {
    return ResourceExhausted("chat template: out of memory while parsing");
  }
}

namespace {

std::string Strftime(const std::string& fmt, const std::optional<int64_t>& now) {
  std::time_t t = now ? static_cast<std::time_t>(*now) : std::time(nullptr);
  std::tm tm{};
  if (now) gmtime_r(&t, &tm);
  else localtime_r(&t, &tm);
  if (fmt.empty()) return "";
  const size_t size = chat::SatMulAdd(fmt.size(), 8, 256);
  chat::ChargeAlloc(size);  // runs inside the render, on its budget
  std::string buf(size, '\0');
  size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
  buf.resize(n);
  return buf;
}

// transformers' continue_final_message: cut right after the final message's text. Runs
// with the render's budget installed (the search is charged).
StatusOr<std::string> CutAfterFinalMessage(const std::string& rendered, const nlohmann::ordered_json& messages) {
  if (!messages.is_array() || messages.empty() || !messages.back().is_object())
    return InvalidArgument("continue_final_message needs a final message");
  const auto& content = messages.back().contains("content") ? messages.back()["content"] : nlohmann::ordered_json();
  std::string text;
  bool found = false;
  if (content.is_string()) {
    text = content.get<std::string>();
    found = true;
  } else if (content.is_array()) {
    for (auto it = content.rbegin(); it != content.rend(); ++it) {
      if (it->is_object() && it->contains("text") && (*it)["text"].is_string()) {
        text = (*it)["text"].get<std::string>();
        found = true;
        break;
      }
    }
  }
  if (!found)
    return InvalidArgument("continue_final_message is set but we could not find any text to continue in the final message");
  auto is_ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  size_t b = 0, e = text.size();
  while (b < e && is_ws(text[b])) ++b;
  while (e > b && is_ws(text[e - 1])) --e;
  std::string stripped = text.substr(b, e - b);
  std::string lstripped = text.substr(b);
  size_t loc = chat::RFindCharged(rendered, stripped);  // O(n·m) worst case: charged
  if (loc == std::string::npos)
    return InvalidArgument("continue_final_message is set but the final message does not appear in the rendered chat");
  // Python: rendered[loc : loc + len(lstripped)] == text
  if (rendered.compare(loc, lstripped.size(), text) == 0 && lstripped.size() == text.size())
    return rendered.substr(0, loc + lstripped.size());
  return rendered.substr(0, loc + stripped.size());
}

}  // namespace

StatusOr<std::string> ChatTemplate::Render(const ChatTemplateInputs& in) const {
  if (in.continue_final_message && in.add_generation_prompt)
    return InvalidArgument("continue_final_message and add_generation_prompt are not compatible");
  try {
    chat::Value g = chat::Value::Dict();
    chat::AddGlobalFunctions(g);
    std::optional<int64_t> now = in.now_unix_seconds;
    g.dict->Set("strftime_now", chat::Value::Function([now](chat::Interpreter&, chat::CallArgs& a) {
                  if (a.pos.empty() || !a.pos[0].is_string()) throw chat::TemplateError("strftime_now expects a format string");
                  return chat::Value::Str(Strftime(a.pos[0].s(), now));
                }));
    g.dict->Set("messages", chat::Value::FromJson(in.messages));
    g.dict->Set("tools", chat::Value::FromJson(in.tools));
    g.dict->Set("documents", chat::Value::None());
    g.dict->Set("add_generation_prompt", chat::Value::Bool(in.add_generation_prompt));
    g.dict->Set("bos_token", chat::Value::Str(in.bos_token));
    g.dict->Set("eos_token", chat::Value::Str(in.eos_token));
    if (in.extra_context.is_object())
      for (auto it = in.extra_context.begin(); it != in.extra_context.end(); ++it)
        g.dict->Set(it.key(), chat::Value::FromJson(it.value()));
    chat::Interpreter interp(*tmpl_, std::move(g), in.budget);
    std::string out = interp.Render();
    if (in.continue_final_message) {
      chat::BudgetScope active(&interp.budget());
      return CutAfterFinalMessage(out, in.messages);
    }
    return out;
  } catch (const chat::RaisedError& e) {
    return InvalidArgument(e.what());
  } catch (const chat::TemplateError& e) {
    return InvalidArgument(std::string("chat template: ") + e.what());
  } catch (const std::bad_alloc&) {
    return ResourceExhausted("chat template: out of memory while rendering");
  }
}

}  // namespace inferd
