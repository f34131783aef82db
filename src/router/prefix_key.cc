// Routing keys of requests (prefix_key.h).
#include "router/prefix_key.h"

#include "util/hash.h"
#include "util/json.h"

namespace inferd::router {
namespace {

using json = nlohmann::json;

// Appends to `out` without passing `cap` bytes in total.
void Put(std::string* out, std::string_view s, size_t cap) {
  if (out->size() >= cap) return;
  out->append(s.substr(0, cap - out->size()));
}

// Whether `j` nests at most `levels` arrays/objects deep. Recursion depth <= levels + 1.
bool NestedAtMost(const json& j, int levels) {
  if (!j.is_structured()) return true;
  if (levels == 0) return false;
  for (const json& child : j) {
    if (!NestedAtMost(child, levels - 1)) return false;
  }
  return true;
}

// The compact dump of `j`, or "" when it nests deeper than kMaxJsonDepth: dump() recurses
// once per level and a body parsed without a depth bound could overflow the stack.
std::string SafeDump(const json& j) {
  if (!NestedAtMost(j, kMaxJsonDepth)) return {};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

void PutContent(std::string* out, const json& content, size_t cap) {
  if (content.is_string()) return Put(out, content.get_ref<const std::string&>(), cap);
  if (!content.is_array()) return;
  for (const json& part : content) {
    if (!part.is_object()) continue;
    auto type = part.find("type");
    auto text = part.find("text");
    if (type != part.end() && type->is_string() && *type == "text" && text != part.end() && text->is_string()) {
      Put(out, text->get_ref<const std::string&>(), cap);
    } else if (type != part.end() && type->is_string()) {
      Put(out, type->get_ref<const std::string&>(), cap);
    }
  }
}

std::string ChatText(const json& body, size_t cap) {
  std::string out;
  if (auto tools = body.find("tools"); tools != body.end() && !tools->is_null()) Put(&out, SafeDump(*tools), cap);
  auto messages = body.find("messages");
  if (messages == body.end() || !messages->is_array()) return out;
  for (const json& m : *messages) {
    if (out.size() >= cap) break;
    if (!m.is_object()) continue;
    if (auto role = m.find("role"); role != m.end() && role->is_string()) Put(&out, role->get_ref<const std::string&>(), cap);
    Put(&out, "\n", cap);
    if (auto content = m.find("content"); content != m.end()) PutContent(&out, *content, cap);
    if (auto calls = m.find("tool_calls"); calls != m.end() && calls->is_array()) Put(&out, SafeDump(*calls), cap);
    Put(&out, "\n", cap);
  }
  return out;
}

std::string TokenIds(const json& ids, size_t cap) {
  std::string out;
  for (const json& id : ids) {
    if (out.size() >= cap) break;
    if (!id.is_number_integer()) continue;
    if (!out.empty()) Put(&out, " ", cap);
    Put(&out, id.is_number_unsigned() ? std::to_string(id.get<uint64_t>()) : std::to_string(id.get<int64_t>()), cap);
  }
  return out;
}

std::string CompletionText(const json& body, size_t cap) {
  auto prompt = body.find("prompt");
  if (prompt == body.end()) return {};
  std::string out;
  if (prompt->is_string()) {
    Put(&out, prompt->get_ref<const std::string&>(), cap);
  } else if (prompt->is_array() && !prompt->empty()) {
    const json& first = prompt->front();
    if (first.is_string()) {
      Put(&out, first.get_ref<const std::string&>(), cap);
    } else if (first.is_number_integer()) {
      out = TokenIds(*prompt, cap);
    } else if (first.is_array()) {
      out = TokenIds(first, cap);
    }
  }
  return out;
}

}  // namespace

std::string PromptPrefixText(const json& body, std::string_view path, size_t max_bytes) {
  if (!body.is_object()) return {};
  if (path == "/v1/chat/completions") return ChatText(body, max_bytes);
  if (path == "/v1/completions") return CompletionText(body, max_bytes);
  return {};
}

std::vector<uint64_t> BlockHashes(std::string_view text, size_t block_bytes, size_t max_blocks) {
  std::vector<uint64_t> out;
  if (block_bytes == 0) return out;
  uint64_t h = 0x9e3779b97f4a7c15ULL;
  for (size_t at = 0; at + block_bytes <= text.size() && out.size() < max_blocks; at += block_bytes) {
    h = HashBytes(text.substr(at, block_bytes), h);
    out.push_back(h);
  }
  return out;
}

}  // namespace inferd::router
