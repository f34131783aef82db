#include "chat/chat_template.h"

#include <gtest/gtest.h>

namespace inferd {
namespace {

std::string R(const std::string& src, nlohmann::ordered_json ctx = nlohmann::ordered_json::object()) {
  auto t = ChatTemplate::Parse(src);
  if (!t.ok()) return "PARSE ERROR: " + t.status().message();
  ChatTemplateInputs in;
  in.extra_context = std::move(ctx);
  in.now_unix_seconds = 1700000000;
  auto r = (*t)->Render(in);
  if (!r.ok()) return "ERROR: " + r.status().message();
  return *r;
}

TEST(ChatTemplate, Smoke) { EXPECT_EQ(R("a{{ 1 + 2 }}b"), "a3b"); }

}  // namespace
}  // namespace inferd
