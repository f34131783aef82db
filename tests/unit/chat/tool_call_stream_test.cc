// ToolCallStream: the calls of a constrained output, fed whole, byte by byte and in uneven
// pieces, come out the same (names first, arguments as the exact JSON text of each call).
#include "chat/tool_call_stream.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace inferd {
namespace {

struct Call {
  std::string name, arguments;
  bool operator==(const Call&) const = default;
};

std::vector<Call> Feed(ToolCallStream s, const std::string& text, size_t piece) {
  std::vector<Call> calls;
  for (size_t i = 0; i < text.size(); i += piece) {
    for (const ToolCallDelta& d : s.Push(std::string_view(text).substr(i, piece))) {
      if (d.name) {
        EXPECT_EQ(d.index, static_cast<int>(calls.size())) << "names arrive in order, once";
        calls.push_back(Call{*d.name, ""});
      }
      EXPECT_LT(d.index, static_cast<int>(calls.size())) << "arguments before their call's name";
      calls[d.index].arguments += d.arguments;
    }
  }
  return calls;
}

TEST(ToolCallStream, RequiredArrayInAnyPieces) {
  const std::string text =
      R"([{"name": "get_weather", "parameters": {"city": "Paris, \"FR\"", "days": [1, {"x": "}]"}]}},)"
      "\n  {\"name\":\"noop\",\"parameters\":{}}]";
  const std::vector<Call> want = {
      {"get_weather", R"({"city": "Paris, \"FR\"", "days": [1, {"x": "}]"}]})"},
      {"noop", "{}"},
  };
  for (size_t piece : {text.size(), size_t{1}, size_t{2}, size_t{7}}) {
    EXPECT_EQ(Feed(ToolCallStream::Required(), text, piece), want) << "piece " << piece;
  }
}

TEST(ToolCallStream, NamedIsTheWholeOutput) {
  const std::string text = R"({"query": "a [b] {c}"})";
  for (size_t piece : {text.size(), size_t{1}, size_t{5}}) {
    EXPECT_EQ(Feed(ToolCallStream::Named("search"), text, piece), (std::vector<Call>{{"search", text}}));
  }
}

TEST(ToolCallStream, PartialOutputGivesWhatIsComplete) {
  auto s = ToolCallStream::Required();
  const auto d = s.Push(R"([{"name": "f", "parameters": {"a": 1)");
  EXPECT_EQ(s.num_calls(), 1);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(*d[0].name, "f");
  EXPECT_EQ(d[0].arguments, R"({"a": 1)");
}

}  // namespace
}  // namespace inferd
