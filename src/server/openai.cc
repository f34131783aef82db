#include "server/openai.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include <fmt/format.h>

#include "chat/tool_call_stream.h"
#include "engine/chat_prompt.h"
#include "tokenizer/tokenizer.h"

namespace inferd::server {
namespace {

// The scanner that turns a forced-tool-call output into calls (req.tool_mode != kNone).
ToolCallStream ToolStream(const ParsedRequest& req) {
  return req.tool_mode == ParsedRequest::ToolMode::kNamed ? ToolCallStream::Named(req.tool_name)
                                                          : ToolCallStream::Required();
}

// A tool call's id: OpenAI's form, or Mistral's 9 letters and digits (mistral parser).
std::string ToolCallId(ToolParser::IdKind kind) {
  if (kind == ToolParser::IdKind::kMistral) {
    return RandomChars(9, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
  }
  return "chatcmpl-tool-" + RandomHex(32);
}

// One entry of message.tool_calls (a call's first streamed delta has the same fields).
ojson ToolCallJson(const std::string& name, const std::string& arguments,
                   ToolParser::IdKind kind = ToolParser::IdKind::kRandomHex) {
  return {{"id", ToolCallId(kind)}, {"type", "function"}, {"function", {{"name", name}, {"arguments", arguments}}}};
}

ojson ToolCallsJson(const std::vector<ToolCallResult>& calls,
                    ToolParser::IdKind kind = ToolParser::IdKind::kRandomHex) {
  ojson out = ojson::array();
  for (const ToolCallResult& call : calls) out.push_back(ToolCallJson(call.name, call.arguments, kind));
  return out;
}

// delta.tool_calls: a call's first piece has its id, type and name; then arguments in pieces.
ojson StreamedCalls(const std::vector<ToolCallDelta>& deltas,
                    ToolParser::IdKind kind = ToolParser::IdKind::kRandomHex) {
  ojson calls = ojson::array();
  for (const ToolCallDelta& t : deltas) {
    ojson call = t.name ? ToolCallJson(*t.name, t.arguments, kind) : ojson{{"function", {{"arguments", t.arguments}}}};
    call["index"] = t.index;
    calls.push_back(std::move(call));
  }
  return calls;
}

}  // namespace

std::string RandomChars(size_t n, std::string_view alphabet) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string s(n, '0');
  for (char& c : s) c = alphabet[rng() % alphabet.size()];
  return s;
}

std::string RandomHex(size_t n) { return RandomChars(n, "0123456789abcdef"); }

// ---- responses ----------------------------------------------------------------------------

ResponseBuilder::ResponseBuilder(const ParsedRequest& req, std::string id, int64_t created, const Tokenizer& tokenizer)
    : req_(req), id_(std::move(id)), created_(created), tokenizer_(tokenizer) {
  const size_t choices = req.prompts.size() * static_cast<size_t>(req.params.n);
  text_offsets_.assign(choices, 0);
  echoed_.assign(choices, false);
  completion_tokens_.assign(choices, 0);
  if (req.chat && !req.reasoning_parser.empty()) {
    for (size_t i = 0; i < choices; ++i) {
      reasoning_parsers_.push_back(MakeReasoningParser(req.reasoning_parser));
      reasoning_parsers_.back()->Start(req.prompts[i / static_cast<size_t>(req.params.n)].text);
    }
  }
  if (req.chat && req.tool_mode == ParsedRequest::ToolMode::kAuto) {
    for (size_t i = 0; i < choices; ++i) tool_parsers_.push_back(MakeToolParser(req.tool_parser, req.tools));
  } else if (req.chat && req.tool_mode != ParsedRequest::ToolMode::kNone) {
    for (size_t i = 0; i < choices; ++i) tool_streams_.push_back(ToolStream(req));
  }
}

ojson ResponseBuilder::Usage(int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens) {
  return ojson{{"prompt_tokens", prompt_tokens},
               {"total_tokens", prompt_tokens + completion_tokens},
               {"completion_tokens", completion_tokens},
               {"prompt_tokens_details", {{"cached_tokens", cached_tokens}}}};
}

ojson ResponseBuilder::ChunkBase() const {
  return ojson{{"id", id_},
               {"object", req_.chat ? "chat.completion.chunk" : "text_completion"},
               {"created", created_},
               {"model", req_.model}};
}

namespace {
double ClampLogprob(double lp) { return std::isfinite(lp) ? lp : -9999.0; }

ojson Bytes(const std::string& s) {
  ojson b = ojson::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

ojson StopReason(const CompletionOutput& o) {
  if (std::holds_alternative<int32_t>(o.stop_reason)) return std::get<int32_t>(o.stop_reason);
  if (std::holds_alternative<std::string>(o.stop_reason)) return std::get<std::string>(o.stop_reason);
  return nullptr;
}

ojson FinishReason(const std::optional<std::string>& r) { return r ? ojson(*r) : ojson(nullptr); }
}  // namespace

std::string ResponseBuilder::Shown(int32_t id, const std::string& decoded) const {
  return req_.tokens_as_ids ? fmt::format("token_id:{}", id) : decoded;
}

std::string ResponseBuilder::Piece(int32_t id, const PositionLogprobs* pl) const {
  if (pl) {
    auto it = pl->find(id);
    if (it != pl->end()) return it->second.decoded_token;
  }
  return tokenizer_.TokenToPiece(id, false);
}

ojson ResponseBuilder::CompletionLogprobs(const std::vector<PositionLogprobs>& lps, const std::vector<int32_t>& ids,
                                          size_t text_offset0,
                                          const std::vector<std::optional<PositionLogprobs>>* prompt_lps,
                                          const std::vector<int32_t>* prompt_ids) const {
  ojson tokens = ojson::array(), token_lps = ojson::array(), top = ojson::array(), offsets = ojson::array();
  size_t offset = text_offset0;
  auto add = [&](int32_t id, const PositionLogprobs* pl) {
    const std::string piece = Piece(id, pl);
    tokens.push_back(Shown(id, piece));
    offsets.push_back(offset);
    offset += piece.size();
    if (!pl) {
      token_lps.push_back(nullptr);
      top.push_back(nullptr);
      return;
    }
    auto chosen = pl->find(id);
    token_lps.push_back(chosen != pl->end() ? ClampLogprob(chosen->second.logprob) : -9999.0);
    ojson t = ojson::object();
    std::vector<std::pair<int, std::pair<int32_t, const Logprob*>>> ranked;
    for (const auto& [tid, lp] : *pl) ranked.push_back({lp.rank, {tid, &lp}});
    std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [rank, entry] : ranked) {
      const std::string key = Shown(entry.first, entry.second->decoded_token);
      if (!t.contains(key)) t[key] = ClampLogprob(entry.second->logprob);
    }
    top.push_back(std::move(t));
  };
  if (prompt_ids) {
    for (size_t i = 0; i < prompt_ids->size(); ++i) {
      const PositionLogprobs* pl = nullptr;
      if (prompt_lps && i < prompt_lps->size() && (*prompt_lps)[i]) pl = &*(*prompt_lps)[i];
      add((*prompt_ids)[i], pl);
    }
  }
  for (size_t i = 0; i < ids.size() && i < lps.size(); ++i) add(ids[i], &lps[i]);
  return ojson{{"text_offset", offsets}, {"token_logprobs", token_lps}, {"tokens", tokens}, {"top_logprobs", top}};
}

ojson ResponseBuilder::ChatLogprobs(const std::vector<PositionLogprobs>& lps, const std::vector<int32_t>& ids) const {
  ojson content = ojson::array();
  for (size_t i = 0; i < ids.size() && i < lps.size(); ++i) {
    const PositionLogprobs& pl = lps[i];
    const std::string piece = Piece(ids[i], &pl);
    auto chosen = pl.find(ids[i]);
    const double lp = chosen != pl.end() ? ClampLogprob(chosen->second.logprob) : -9999.0;
    std::vector<std::pair<int32_t, const Logprob*>> ranked;
    for (const auto& [tid, l] : pl) {
      if (l.rank >= 1 && l.rank <= req_.logprobs) ranked.push_back({tid, &l});
    }
    std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.second->rank < b.second->rank; });
    ojson top = ojson::array();
    for (const auto& [tid, l] : ranked) {
      const std::string shown = Shown(tid, l->decoded_token);
      top.push_back({{"token", shown}, {"logprob", ClampLogprob(l->logprob)}, {"bytes", Bytes(l->decoded_token)}});
    }
    content.push_back({{"token", Shown(ids[i], piece)}, {"logprob", lp}, {"bytes", Bytes(piece)}, {"top_logprobs", top}});
  }
  return ojson{{"content", content}};
}

// vLLM's prompt_logprobs field: null for the first position, then {token id: {logprob,
// rank, decoded_token}} with the prompt's own token and the top-N.
ojson ResponseBuilder::PromptLogprobs(const RequestOutput& ro) const {
  ojson out = ojson::array();
  if (!ro.prompt_logprobs) return out;
  for (const std::optional<PositionLogprobs>& pos : *ro.prompt_logprobs) {
    if (!pos) {
      out.push_back(nullptr);
      continue;
    }
    ojson m = ojson::object();
    for (const auto& [tid, l] : *pos) {
      m[std::to_string(tid)] = {{"logprob", ClampLogprob(l.logprob)}, {"rank", l.rank},
                                {"decoded_token", Shown(tid, l.decoded_token)}};
    }
    out.push_back(std::move(m));
  }
  return out;
}

std::string ResponseBuilder::Complete(const std::vector<RequestOutput>& outputs) const {
  ojson choices = ojson::array();
  int64_t prompt_tokens = 0, completion_tokens = 0, cached = 0;
  const int n = req_.params.n;
  for (size_t p = 0; p < outputs.size(); ++p) {
    const RequestOutput& ro = outputs[p];
    prompt_tokens += static_cast<int64_t>(ro.prompt_token_ids.size());
    cached += ro.num_cached_tokens;
    for (const CompletionOutput& o : ro.outputs) {
      completion_tokens += static_cast<int64_t>(o.token_ids.size());
      const int index = static_cast<int>(p) * n + o.index;
      ojson logprobs = nullptr;
      ojson c;
      if (req_.chat) {
        if (req_.logprobs >= 0 && o.logprobs) logprobs = ChatLogprobs(*o.logprobs, o.token_ids);
        // With a reasoning parser: the reasoning apart, the rest is the message (tool calls too).
        std::string body = o.text;
        std::optional<std::string> reasoning;
        if (!req_.reasoning_parser.empty()) {
          std::unique_ptr<ReasoningParser> rp = MakeReasoningParser(req_.reasoning_parser);
          ReasoningDelta split = SplitReasoning(*rp, req_.prompts[p].text, o.text);
          body = std::move(split.content);
          if (!split.reasoning.empty()) reasoning = std::move(split.reasoning);
        }
        const std::string content = req_.chat_echo + body;
        c = {{"index", index},
             {"message", {{"role", "assistant"},
                          {"content", content.empty() && reasoning ? ojson(nullptr) : ojson(content)}}},
             {"logprobs", logprobs},
             {"finish_reason", FinishReason(o.finish_reason)},
             {"stop_reason", StopReason(o)}};
        if (!req_.reasoning_parser.empty() && req_.include_reasoning) {
          // vLLM's field and the older name many clients read.
          c["message"]["reasoning_content"] = reasoning ? ojson(*reasoning) : ojson(nullptr);
          c["message"]["reasoning"] = c["message"]["reasoning_content"];
        }
        if (req_.tool_mode == ParsedRequest::ToolMode::kAuto) {
          // The model's own format, split by the server's tool-call parser.
          std::unique_ptr<ToolParser> parser = MakeToolParser(req_.tool_parser, req_.tools);
          const ParsedToolOutput parsed = ParseToolOutput(*parser, body);
          if (!parsed.calls.empty()) {
            const bool blank = parsed.content.find_first_not_of(" \t\r\n") == std::string::npos;
            c["message"]["content"] = blank ? ojson(nullptr) : ojson(req_.chat_echo + parsed.content);
            c["message"]["tool_calls"] = ToolCallsJson(parsed.calls, parser->id_kind());
            if (o.finish_reason == "stop") c["finish_reason"] = "tool_calls";
          }
        } else if (req_.tool_mode != ParsedRequest::ToolMode::kNone && o.finish_reason == "stop") {
          // The grammar made the text tool calls: they replace the content.
          std::vector<ToolCallResult> calls;
          CollectToolCalls(ToolStream(req_).Push(body), &calls);
          c["message"]["content"] = nullptr;
          c["message"]["tool_calls"] = ToolCallsJson(calls);
          c["finish_reason"] = "tool_calls";
        }
      } else {
        std::string prompt_text;
        if (req_.echo) {
          prompt_text = !req_.prompts[p].text.empty() ? req_.prompts[p].text
                                                       : tokenizer_.Decode(ro.prompt_token_ids, false);
        }
        if (req_.logprobs >= 0 && o.logprobs) {
          logprobs = CompletionLogprobs(*o.logprobs, o.token_ids, 0,
                                        req_.echo && ro.prompt_logprobs ? &*ro.prompt_logprobs : nullptr,
                                        req_.echo ? &ro.prompt_token_ids : nullptr);
        }
        c = {{"index", index},
             {"text", prompt_text + o.text},
             {"logprobs", logprobs},
             {"finish_reason", FinishReason(o.finish_reason)},
             {"stop_reason", StopReason(o)}};
        if (req_.prompt_logprobs_field) c["prompt_logprobs"] = PromptLogprobs(ro);
        if (req_.return_token_ids) c["prompt_token_ids"] = ro.prompt_token_ids;
      }
      if (req_.return_token_ids) c["token_ids"] = o.token_ids;
      choices.push_back(std::move(c));
    }
  }
  std::sort(choices.begin(), choices.end(),
            [](const ojson& a, const ojson& b) { return a["index"].get<int>() < b["index"].get<int>(); });
  ojson r = {{"id", id_},
             {"object", req_.chat ? "chat.completion" : "text_completion"},
             {"created", created_},
             {"model", req_.model},
             {"choices", choices},
             {"usage", Usage(prompt_tokens, completion_tokens, cached)}};
  if (req_.chat && !outputs.empty()) {
    if (req_.prompt_logprobs_field) r["prompt_logprobs"] = PromptLogprobs(outputs[0]);
    if (req_.return_token_ids) r["prompt_token_ids"] = outputs[0].prompt_token_ids;
  }
  return Dump(r);
}

std::string ResponseBuilder::StreamStart() const {
  if (!req_.chat) return {};
  std::string out;
  const int choices = static_cast<int>(text_offsets_.size());
  for (int i = 0; i < choices; ++i) {
    ojson c = ChunkBase();
    c["choices"] = ojson::array({{{"index", i},
                                  {"delta", {{"role", "assistant"}, {"content", req_.chat_echo}}},
                                  {"logprobs", nullptr},
                                  {"finish_reason", nullptr}}});
    if (req_.return_token_ids && i == 0) c["prompt_token_ids"] = req_.prompts[0].token_ids;
    if (req_.include_usage) {
      c["usage"] = req_.continuous_usage
                       ? Usage(static_cast<int64_t>(req_.prompts[0].token_ids.size()), 0, 0)
                       : ojson(nullptr);
    }
    out += "data: " + Dump(c) + "\n\n";
  }
  return out;
}

std::string ResponseBuilder::StreamDelta(int prompt_index, const OutputDelta& d) {
  const size_t index = static_cast<size_t>(prompt_index) * static_cast<size_t>(req_.params.n) + static_cast<size_t>(d.index);
  const PromptInput& in = req_.prompts[static_cast<size_t>(prompt_index)];
  std::string text = d.new_text;
  bool first = false;
  if (!req_.chat && index < echoed_.size() && !echoed_[index]) {
    echoed_[index] = first = true;
    if (req_.echo) text = (in.text.empty() ? tokenizer_.Decode(in.token_ids, false) : in.text) + text;
  }
  if (index < completion_tokens_.size()) completion_tokens_[index] += static_cast<int64_t>(d.new_token_ids.size());
  std::string reasoning;  // delta.reasoning_content
  if (index < reasoning_parsers_.size()) {
    ReasoningDelta rd = reasoning_parsers_[index]->Push(text);
    if (d.finish_reason) {
      ReasoningDelta rest = reasoning_parsers_[index]->Finish();
      rd.reasoning += rest.reasoning;
      rd.content += rest.content;
    }
    if (req_.include_reasoning) reasoning = std::move(rd.reasoning);
    text = std::move(rd.content);
  }
  const bool has_lp = req_.logprobs >= 0 && !d.new_logprobs.empty();
  const bool has_ids = req_.return_token_ids && !d.new_token_ids.empty();
  // Something to send besides content: logprobs, token ids or reasoning.
  const bool other = has_lp || has_ids || !reasoning.empty();
  if (text.empty() && !d.finish_reason && !other && !(first && req_.return_token_ids)) return {};
  ojson choice;
  if (req_.chat) {
    choice = {{"index", index}, {"delta", ojson::object()}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
    if (index < tool_parsers_.size() && tool_parsers_[index]) {
      // tool_choice auto: content and the calls the parser finds, as they complete.
      ToolParse parsed = tool_parsers_[index]->Push(text);
      if (d.finish_reason) {
        ToolParse rest = tool_parsers_[index]->Finish();
        parsed.content += rest.content;
        parsed.calls.insert(parsed.calls.end(), rest.calls.begin(), rest.calls.end());
      }
      ojson calls = StreamedCalls(parsed.calls, tool_parsers_[index]->id_kind());
      if (calls.empty() && parsed.content.empty() && !d.finish_reason && !other) return {};
      if (!parsed.content.empty() || (calls.empty() && !d.finish_reason && reasoning.empty())) {
        choice["delta"]["content"] = parsed.content;
      }
      if (!calls.empty()) choice["delta"]["tool_calls"] = std::move(calls);
    } else if (index < tool_streams_.size()) {
      // Tool calls: a call's first delta has its id, type and name; then arguments in pieces.
      ojson calls = StreamedCalls(tool_streams_[index].Push(text));
      if (calls.empty() && !d.finish_reason && !other) return {};
      if (!calls.empty()) choice["delta"]["tool_calls"] = std::move(calls);
    } else if (!text.empty() || (!d.finish_reason && reasoning.empty())) {
      choice["delta"]["content"] = text;
    }
    if (!reasoning.empty()) {
      choice["delta"]["reasoning_content"] = reasoning;
      choice["delta"]["reasoning"] = std::move(reasoning);
    }
    if (has_lp) choice["logprobs"] = ChatLogprobs(d.new_logprobs, d.new_token_ids);
  } else {
    choice = {{"index", index}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", nullptr}, {"stop_reason", nullptr}};
    if (has_lp) {
      choice["logprobs"] = CompletionLogprobs(d.new_logprobs, d.new_token_ids,
                                              index < text_offsets_.size() ? text_offsets_[index] : 0, nullptr, nullptr);
    }
    if (index < text_offsets_.size()) text_offsets_[index] += text.size();
    if (first && req_.return_token_ids) choice["prompt_token_ids"] = in.token_ids;
  }
  if (req_.return_token_ids) choice["token_ids"] = d.new_token_ids;
  if (d.finish_reason) {
    const int num_calls = index < tool_streams_.size()                             ? tool_streams_[index].num_calls()
                          : index < tool_parsers_.size() && tool_parsers_[index] ? tool_parsers_[index]->num_calls()
                                                                                 : 0;
    const bool calls = *d.finish_reason == "stop" && num_calls > 0;
    choice["finish_reason"] = calls ? std::string("tool_calls") : *d.finish_reason;
  }
  ojson c = ChunkBase();
  c["choices"] = ojson::array({choice});
  if (req_.include_usage) {
    c["usage"] = req_.continuous_usage ? Usage(static_cast<int64_t>(in.token_ids.size()),
                                               index < completion_tokens_.size() ? completion_tokens_[index] : 0, 0)
                                       : ojson(nullptr);
  }
  return "data: " + Dump(c) + "\n\n";
}

std::string ResponseBuilder::StreamEnd(int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens) const {
  std::string out;
  if (req_.include_usage) {
    ojson c = ChunkBase();
    c["choices"] = ojson::array();
    c["usage"] = Usage(prompt_tokens, completion_tokens, cached_tokens);
    out += "data: " + Dump(c) + "\n\n";
  }
  out += "data: [DONE]\n\n";
  return out;
}

}  // namespace inferd::server
