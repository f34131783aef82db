// Reasoning parsers on outputs in each family's format: whole and streamed in pieces of every
// size give the same split; the prompt decides where the output starts.
#include "chat/reasoning_parser.h"

#include <gtest/gtest.h>

#include <string>

namespace inferd {
namespace {

ReasoningDelta Whole(const std::string& name, const std::string& prompt, const std::string& output) {
  auto p = MakeReasoningParser(name);
  EXPECT_NE(p, nullptr) << name;
  return SplitReasoning(*p, prompt, output);
}

// The output in pieces of `piece` bytes; also checks in_content() at the end.
ReasoningDelta Streamed(const std::string& name, const std::string& prompt, const std::string& output, size_t piece) {
  auto p = MakeReasoningParser(name);
  p->Start(prompt);
  ReasoningDelta out;
  auto take = [&](const ReasoningDelta& d) {
    out.reasoning += d.reasoning;
    out.content += d.content;
  };
  for (size_t i = 0; i < output.size(); i += piece) take(p->Push(std::string_view(output).substr(i, piece)));
  take(p->Finish());
  return out;
}

void ExpectSplit(const std::string& name, const std::string& prompt, const std::string& output,
                 const std::string& reasoning, const std::string& content) {
  const ReasoningDelta whole = Whole(name, prompt, output);
  EXPECT_EQ(whole.reasoning, reasoning) << name << ": " << output;
  EXPECT_EQ(whole.content, content) << name << ": " << output;
  for (size_t piece = 1; piece <= output.size(); ++piece) {
    const ReasoningDelta s = Streamed(name, prompt, output, piece);
    ASSERT_EQ(s.reasoning, reasoning) << name << " piece " << piece;
    ASSERT_EQ(s.content, content) << name << " piece " << piece;
  }
}

// DeepSeek-R1-Distill's template ends the prompt with "<｜Assistant｜><think>\n".
const std::string kR1Prompt = "<｜User｜>What is 2+2?<｜Assistant｜><think>\n";

TEST(DeepSeekR1Reasoning, SplitsAtTheClosingTag) {
  ExpectSplit("deepseek_r1", kR1Prompt, "Two plus two is four.\n</think>\n\nThe answer is **4**.",
              "Two plus two is four.\n", "\n\nThe answer is **4**.");
}

TEST(DeepSeekR1Reasoning, OpeningTagInTheOutputIsDropped) {
  // R1-0528 writes <think> itself; the original R1 template adds nothing to the prompt.
  ExpectSplit("deepseek_r1", "<｜User｜>hi<｜Assistant｜>", "<think>\nGreet back.\n</think>Hello!", "\nGreet back.\n",
              "Hello!");
}

TEST(DeepSeekR1Reasoning, WithoutClosingTagEverythingIsReasoning) {
  ExpectSplit("deepseek_r1", kR1Prompt, "Still thinking about <thin", "Still thinking about <thin", "");
  ExpectSplit("deepseek_r1", kR1Prompt, "cut at </thi", "cut at </thi", "");
}

TEST(DeepSeekR1Reasoning, PromptThatClosedTheReasoningStartsInContent) {
  // DeepSeek-V3.1's non-thinking mode ends the prompt with "</think>".
  ExpectSplit("deepseek_r1", "<｜User｜>hi<｜Assistant｜></think>", "Hello </think> there", "", "Hello </think> there");
  auto p = MakeReasoningParser("deepseek_r1");
  p->Start("<｜Assistant｜></think>");
  EXPECT_TRUE(p->in_content());
  p = MakeReasoningParser("deepseek_r1");
  p->Start(kR1Prompt);
  EXPECT_FALSE(p->in_content());
  p->Push("thinking </th");
  EXPECT_FALSE(p->in_content());
  p->Push("ink>{");
  EXPECT_TRUE(p->in_content());
  EXPECT_EQ(p->end_marker(), "</think>");
}

const std::string kQwenPrompt = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";

TEST(Qwen3Reasoning, ThinkingModeWritesTheTags) {
  ExpectSplit("qwen3", kQwenPrompt, "<think>\nThe user greets me.\n</think>\n\nHello! How can I help?",
              "\nThe user greets me.\n", "\n\nHello! How can I help?");
}

TEST(Qwen3Reasoning, NoTagsMeansContent) {
  ExpectSplit("qwen3", kQwenPrompt, "Hello! <think> is a tag.", "", "Hello! <think> is a tag.");
  ExpectSplit("qwen3", kQwenPrompt, "<thin", "", "<thin");
  ExpectSplit("qwen3", kQwenPrompt, "", "", "");
}

TEST(Qwen3Reasoning, EnableThinkingFalseClosesTheTagsInThePrompt) {
  // Qwen3's template with enable_thinking=false.
  ExpectSplit("qwen3", kQwenPrompt + "<think>\n\n</think>\n\n", "Hello!", "", "Hello!");
  // Thinking-2507 templates open the tag in the prompt.
  ExpectSplit("qwen3", kQwenPrompt + "<think>\n", "hmm</think>\n\nHi", "hmm", "\n\nHi");
}

TEST(Qwen3Reasoning, LastTagOfAMultiTurnPromptWins) {
  const std::string history = kQwenPrompt + "<think>\nold\n</think>\n\nold answer<|im_end|>\n<|im_start|>assistant\n";
  ExpectSplit("qwen3", history, "<think>new</think>answer", "new", "answer");
  auto p = MakeReasoningParser("qwen3");
  p->Start(history);
  EXPECT_TRUE(p->in_content());  // as vLLM reads the prompt: a </think> in it ends the reasoning
  ExpectSplit("qwen3", history, "answer without <think>", "", "answer without <think>");
}

// gpt-oss: the prompt ends with "<|start|>assistant".
const std::string kHarmonyPrompt =
    "<|start|>system<|message|>You are ChatGPT.<|end|><|start|>user<|message|>What is 2+2?<|end|><|start|>assistant";

TEST(HarmonyReasoning, AnalysisIsReasoningFinalIsContent) {
  ExpectSplit("openai", kHarmonyPrompt,
              "<|channel|>analysis<|message|>Simple arithmetic: 4.<|end|><|start|>assistant<|channel|>final<|message|>"
              "2 + 2 = 4.",
              "Simple arithmetic: 4.", "2 + 2 = 4.");
}

TEST(HarmonyReasoning, ToolCallsPassThroughWithTheirFraming) {
  const std::string call = "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}";
  ExpectSplit("openai", kHarmonyPrompt,
              "<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant" + call + "<|call|>",
              "Need weather.", "<|start|>assistant" + call + "<|call|>");
  // The recipient in the role header.
  const std::string call2 = "<|start|>assistant to=functions.f<|channel|>commentary json<|message|>{}";
  ExpectSplit("openai", kHarmonyPrompt, "<|channel|>analysis<|message|>x<|end|>" + call2 + "<|call|>", "x",
              call2 + "<|call|>");
}

TEST(HarmonyReasoning, TextWithoutFramingIsContentAndLookalikesAreText) {
  ExpectSplit("openai", "plain prompt", "a <|b|> c <| d", "", "a <|b|> c <| d");
  ExpectSplit("openai", kHarmonyPrompt, "<|channel|>final<|message|>x <|notatag|> y<|return|>", "", "x <|notatag|> y");
}

TEST(HarmonyReasoning, StateAndMarker) {
  auto p = MakeReasoningParser("openai");
  p->Start(kHarmonyPrompt);
  EXPECT_FALSE(p->in_content());
  EXPECT_TRUE(p->keeps_special_tokens());
  p->Push("<|channel|>analysis<|message|>think<|end|><|start|>assistant");
  EXPECT_FALSE(p->in_content());
  p->Push(std::string(p->end_marker()));
  EXPECT_TRUE(p->in_content());
  auto q = MakeReasoningParser("openai");
  q->Start(kHarmonyPrompt + "<|channel|>final<|message|>");
  EXPECT_TRUE(q->in_content());
}

TEST(ReasoningParsers, NamesAndUnknown) {
  for (const std::string& n : ReasoningParserNames()) EXPECT_NE(MakeReasoningParser(n), nullptr) << n;
  EXPECT_EQ(MakeReasoningParser("granite"), nullptr);
}

}  // namespace
}  // namespace inferd
