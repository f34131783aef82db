// Proto wire <-> OpenAI JSON for the gRPC API (grpc_convert.h). The field numbers are those of
// proto/inferd/v1/generation.proto; tests/e2e/test_grpc.py checks them against protoc's code.
#include "server/grpc_convert.h"

#include <charconv>
#include <cmath>
#include <span>

#include <fmt/format.h>

#include "util/protowire.h"

namespace inferd::server::grpc_convert {
namespace {

using protowire::Field;
using protowire::Reader;
using protowire::WireType;
using protowire::Writer;

// ---- reading request messages into JSON -------------------------------------------------------

enum class Kind { kInt32, kInt64, kFloat, kBool, kString, kStrings, kInt32s };
struct FieldSpec {
  uint32_t number;
  const char* name;  // the JSON key
  Kind kind;
};

constexpr FieldSpec kSampling[] = {
    {1, "max_tokens", Kind::kInt32},        {2, "temperature", Kind::kFloat},
    {3, "top_p", Kind::kFloat},             {4, "top_k", Kind::kInt32},
    {5, "min_p", Kind::kFloat},             {6, "seed", Kind::kInt64},
    {7, "stop", Kind::kStrings},            {8, "stop_token_ids", Kind::kInt32s},
    {9, "presence_penalty", Kind::kFloat},  {10, "frequency_penalty", Kind::kFloat},
    {11, "repetition_penalty", Kind::kFloat}, {12, "min_tokens", Kind::kInt32},
    {13, "ignore_eos", Kind::kBool},        {14, "include_stop_str_in_output", Kind::kBool},
    {15, "skip_special_tokens", Kind::kBool}, {16, "logprobs", Kind::kInt32},
};
constexpr FieldSpec kGenerate[] = {{1, "model", Kind::kString}, {2, "prompt", Kind::kString},
                                   {6, "request_id", Kind::kString}, {7, "priority", Kind::kInt32}};
constexpr FieldSpec kTokenize[] = {{1, "model", Kind::kString}, {2, "prompt", Kind::kString},
                                   {4, "add_special_tokens", Kind::kBool}};
constexpr FieldSpec kTokenIds[] = {{1, "ids", Kind::kInt32s}};
constexpr FieldSpec kChatMessage[] = {{1, "role", Kind::kString}, {2, "content", Kind::kString}};

WireType WireOf(Kind k) {
  switch (k) {
    case Kind::kFloat: return WireType::kFixed32;
    case Kind::kString:
    case Kind::kStrings: return WireType::kLen;
    default: return WireType::kVarint;  // kInt32s also comes packed (kLen): AppendInt32s
  }
}

// A float as the shortest decimal that reads back as it (0.7f is 0.7, not 0.699999988).
double ShortestDouble(float v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  double d = v;
  std::from_chars(buf, end, d);
  return d;
}

// Reads the fields of one message: those in `specs` into `out` (by name), the rest through
// `other` (false: not a field of this message). `type` names the message in errors.
template <class Other>
bool DecodeFields(std::string_view msg, const char* type, std::span<const FieldSpec> specs, ojson* out,
                  std::string* error, Other other) {
  Reader r(msg);
  Field f;
  while (r.Next(&f)) {
    const FieldSpec* spec = nullptr;
    for (const FieldSpec& s : specs) spec = s.number == f.number ? &s : spec;
    if (!spec) {
      if (!other(f)) {
        if (error->empty()) *error = fmt::format("{}: field number {} is not known to this server", type, f.number);
        return false;
      }
      continue;
    }
    const bool packed = spec->kind == Kind::kInt32s && f.type == WireType::kLen;
    if (f.type != WireOf(spec->kind) && !packed) {
      *error = fmt::format("{}.{}: wrong wire type {}", type, spec->name, static_cast<int>(f.type));
      return false;
    }
    ojson& v = (*out)[spec->name];
    switch (spec->kind) {
      case Kind::kInt32: v = static_cast<int32_t>(static_cast<int64_t>(f.varint)); break;
      case Kind::kInt64: v = static_cast<int64_t>(f.varint); break;
      case Kind::kFloat: v = ShortestDouble(protowire::FloatOf(f)); break;
      case Kind::kBool: v = f.varint != 0; break;
      case Kind::kString: v = std::string(f.bytes); break;
      case Kind::kStrings:
        if (!v.is_array()) v = ojson::array();
        v.push_back(std::string(f.bytes));
        break;
      case Kind::kInt32s: {
        std::vector<int32_t> ids;
        if (!protowire::AppendInt32s(f, &ids)) {
          *error = fmt::format("{}.{}: malformed packed integers", type, spec->name);
          return false;
        }
        if (!v.is_array()) v = ojson::array();
        for (int32_t id : ids) v.push_back(id);
        break;
      }
    }
  }
  if (!r.ok()) {
    *error = fmt::format("{}: {}", type, r.error());
    return false;
  }
  return true;
}

bool DecodeFields(std::string_view msg, const char* type, std::span<const FieldSpec> specs, ojson* out,
                  std::string* error) {
  return DecodeFields(msg, type, specs, out, error, [](const Field&) { return false; });
}

// inferd.v1.ChatMessages: {"messages": [{"role", "content"}, ...]} appended to `out`.
bool DecodeMessages(std::string_view msg, ojson* out, std::string* error) {
  if (!out->is_array()) *out = ojson::array();
  return DecodeFields(msg, "inferd.v1.ChatMessages", {}, nullptr, error, [&](const Field& f) {
    if (f.number != 1 || f.type != WireType::kLen) return false;
    ojson m = ojson::object();
    if (!DecodeFields(f.bytes, "inferd.v1.ChatMessage", kChatMessage, &m, error)) return false;
    out->push_back({{"role", m.value("role", "")}, {"content", m.value("content", "")}});
    return true;
  });
}

// ---- writing response messages -----------------------------------------------------------------

// Messages are written as protobuf writes them (proto3: fields holding their default value
// are left out), so they are byte-for-byte what protoc's code would send.
void IntField(Writer& w, uint32_t field, int64_t v) {
  if (v != 0) w.Int(field, v);
}
void FloatField(Writer& w, uint32_t field, float v) {
  if (v != 0.0f || std::signbit(v)) w.Float(field, v);
}

std::string UsageBytes(const Usage& u) {
  Writer w;
  IntField(w, 1, u.prompt_tokens);
  IntField(w, 2, u.completion_tokens);
  IntField(w, 3, u.cached_tokens);
  return w.Take();
}

std::string TokenLogprobBytes(const TokenLogprob& lp) {
  Writer w;
  IntField(w, 1, lp.token_id);
  FloatField(w, 2, lp.logprob);
  for (const auto& [id, logprob] : lp.top) {
    Writer t;
    IntField(t, 1, id);
    FloatField(t, 2, logprob);
    w.Bytes(3, t.data());
  }
  return w.Take();
}

// ---- reading the routes' JSON --------------------------------------------------------------------

// "token_id:N" (return_tokens_as_token_ids) -> N; -1 when it is not one.
int32_t IdOf(const ojson& token) {
  if (!token.is_string()) return -1;
  const std::string& s = token.get_ref<const std::string&>();
  constexpr std::string_view kPrefix = "token_id:";
  if (s.rfind(kPrefix, 0) != 0) return -1;
  int32_t id = -1;
  auto [end, ec] = std::from_chars(s.data() + kPrefix.size(), s.data() + s.size(), id);
  return ec == std::errc() && end == s.data() + s.size() ? id : -1;
}

float FloatOr0(const ojson& v) { return v.is_number() ? v.get<float>() : 0.0f; }

std::string StringOr(const ojson& obj, const char* key) {
  if (!obj.is_object()) return {};
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// A choice's logprobs, either route's shape, appended to `out` (one per generated token).
void AddLogprobs(const ojson& lp, const ojson& token_ids, std::vector<TokenLogprob>* out) {
  if (!lp.is_object()) return;
  auto chosen_id = [&](size_t i, const ojson& token) {
    if (token_ids.is_array() && i < token_ids.size() && token_ids[i].is_number_integer()) return token_ids[i].get<int32_t>();
    return IdOf(token);
  };
  if (lp.contains("content") && lp["content"].is_array()) {  // chat: [{token, logprob, top_logprobs: [...]}]
    const ojson& content = lp["content"];
    for (size_t i = 0; i < content.size(); ++i) {
      const ojson& t = content[i];
      TokenLogprob p{chosen_id(i, t.value("token", ojson())), FloatOr0(t.value("logprob", ojson())), {}};
      for (const ojson& top : t.value("top_logprobs", ojson::array())) {
        p.top.emplace_back(IdOf(top.value("token", ojson())), FloatOr0(top.value("logprob", ojson())));
      }
      out->push_back(std::move(p));
    }
    return;
  }
  // completions: {tokens: [...], token_logprobs: [...], top_logprobs: [{token: logprob}, ...]}
  const ojson tokens = lp.value("tokens", ojson::array());
  const ojson logprobs = lp.value("token_logprobs", ojson::array());
  const ojson tops = lp.value("top_logprobs", ojson::array());
  for (size_t i = 0; i < tokens.size(); ++i) {
    TokenLogprob p{chosen_id(i, tokens[i]), i < logprobs.size() ? FloatOr0(logprobs[i]) : 0.0f, {}};
    if (i < tops.size() && tops[i].is_object()) {
      for (const auto& [token, value] : tops[i].items()) p.top.emplace_back(IdOf(ojson(token)), FloatOr0(value));
    }
    out->push_back(std::move(p));
  }
}

void AddTokenIds(const ojson& choice, std::vector<int32_t>* out) {
  for (const ojson& id : choice.value("token_ids", ojson::array())) {
    if (id.is_number_integer()) out->push_back(id.get<int32_t>());
  }
}

Usage UsageOf(const ojson& usage) {
  Usage u;
  u.prompt_tokens = usage.value("prompt_tokens", int64_t{0});
  u.completion_tokens = usage.value("completion_tokens", int64_t{0});
  const ojson details = usage.value("prompt_tokens_details", ojson::object());
  if (details.is_object()) u.cached_tokens = details.value("cached_tokens", int64_t{0});
  return u;
}

// The text, token ids, logprobs and finish reason of a choice (message or delta for chat).
void AddChoice(const ojson& choice, Completion* out) {
  const char* msg_key = choice.contains("delta") ? "delta" : choice.contains("message") ? "message" : nullptr;
  if (msg_key) {
    out->text += StringOr(choice[msg_key], "content");
    out->reasoning += StringOr(choice[msg_key], "reasoning_content");
  } else {
    out->text += StringOr(choice, "text");
  }
  AddTokenIds(choice, &out->token_ids);
  AddLogprobs(choice.value("logprobs", ojson()), choice.value("token_ids", ojson()), &out->logprobs);
  if (std::string reason = StringOr(choice, "finish_reason"); !reason.empty()) out->finish_reason = std::move(reason);
}

}  // namespace

HttpCall GenerateCall(std::string_view message, bool stream) {
  HttpCall call;
  ojson body = ojson::object();
  ojson sampling = ojson::object();
  enum { kNone, kPrompt, kIds, kMessages } input = kNone;  // the oneof
  ojson ids = ojson::object(), messages = ojson::array();
  const bool ok = DecodeFields(message, "inferd.v1.GenerateRequest", kGenerate, &body, &call.error, [&](const Field& f) {
    if (f.type != WireType::kLen) return false;
    switch (f.number) {
      case 3: return DecodeFields(f.bytes, "inferd.v1.TokenIds", kTokenIds, &ids, &call.error);
      case 4: return DecodeMessages(f.bytes, &messages, &call.error);
      case 5: return DecodeFields(f.bytes, "inferd.v1.SamplingParams", kSampling, &sampling, &call.error);
      default: return false;
    }
  });
  if (!ok) return call;
  // The oneof's last field: protobuf keeps only that one.
  Reader order(message);
  for (Field f; order.Next(&f);) {
    if (f.number == 2) input = kPrompt;
    if (f.number == 3) input = kIds;
    if (f.number == 4) input = kMessages;
  }
  if (input != kPrompt) body.erase("prompt");
  if (input == kIds) body["prompt"] = ids.value("ids", ojson::array());
  if (input == kMessages) body["messages"] = messages;
  const bool chat = input == kMessages;
  if (sampling.contains("logprobs")) {
    const ojson n = sampling["logprobs"];
    sampling.erase("logprobs");
    if (chat) {
      sampling["logprobs"] = true;
      sampling["top_logprobs"] = n;
    } else {
      sampling["logprobs"] = n;
    }
    sampling["return_tokens_as_token_ids"] = true;  // "token_id:N": alternatives by id
  }
  body.update(sampling);
  body["return_token_ids"] = true;
  if (stream) {
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
  }
  call.path = chat ? "/v1/chat/completions" : "/v1/completions";
  call.body = Dump(body);
  return call;
}

HttpCall TokenizeCall(std::string_view message) {
  HttpCall call;
  ojson body = ojson::object();
  ojson messages = ojson::array();
  bool has_messages = false;
  const bool ok = DecodeFields(message, "inferd.v1.TokenizeRequest", kTokenize, &body, &call.error, [&](const Field& f) {
    if (f.number != 3 || f.type != WireType::kLen) return false;
    has_messages = true;
    return DecodeMessages(f.bytes, &messages, &call.error);
  });
  if (!ok) return call;
  bool messages_last = has_messages;
  Reader order(message);
  for (Field f; order.Next(&f);) {
    if (f.number == 2) messages_last = false;
    if (f.number == 3) messages_last = true;
  }
  if (messages_last) {
    body.erase("prompt");
    body["messages"] = messages;
  } else if (!body.contains("prompt")) {
    body["prompt"] = "";
  }
  call.path = "/tokenize";
  call.body = Dump(body);
  return call;
}

HttpCall HealthCall(std::string_view message) {
  HttpCall call;
  if (DecodeFields(message, "inferd.v1.HealthRequest", {}, nullptr, &call.error)) call.path = "/health";
  return call;
}

grpc::StatusCode CodeFor(int http_status) {
  switch (http_status) {
    case 200: return grpc::StatusCode::OK;
    case 401: return grpc::StatusCode::UNAUTHENTICATED;
    case 403: return grpc::StatusCode::PERMISSION_DENIED;
    case 404: return grpc::StatusCode::NOT_FOUND;
    case 405:
    case 501: return grpc::StatusCode::UNIMPLEMENTED;
    case 408:
    case 504: return grpc::StatusCode::DEADLINE_EXCEEDED;
    case 429: return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case 499: return grpc::StatusCode::CANCELLED;
    case 503: return grpc::StatusCode::UNAVAILABLE;
    default: return http_status >= 500 ? grpc::StatusCode::INTERNAL : grpc::StatusCode::INVALID_ARGUMENT;
  }
}

grpc::Status StatusFor(int http_status, std::string_view body) {
  std::string message = StringOr(ErrorObjectOf(http_status, body), "message");
  if (message.empty()) message = std::string(body);
  return grpc::Status(CodeFor(http_status), message);
}

bool Completion::Empty() const {
  return token_ids.empty() && text.empty() && reasoning.empty() && finish_reason.empty() && !usage;
}

std::string Completion::Encode() const {
  Writer w;
  if (!id.empty()) w.Bytes(1, id);
  if (!text.empty()) w.Bytes(2, text);
  w.PackedInt32(3, token_ids);
  for (const TokenLogprob& lp : logprobs) w.Bytes(4, TokenLogprobBytes(lp));
  if (!finish_reason.empty()) w.Bytes(5, finish_reason);
  if (usage) w.Bytes(6, UsageBytes(*usage));
  if (!reasoning.empty()) w.Bytes(7, reasoning);
  return w.Take();
}

std::optional<Completion> CompletionOf(const ojson& body) {
  if (!body.is_object() || !body.contains("choices") || !body["choices"].is_array() || body["choices"].empty()) {
    return std::nullopt;
  }
  Completion c;
  c.id = StringOr(body, "id");
  AddChoice(body["choices"][0], &c);
  if (body.contains("usage") && body["usage"].is_object()) c.usage = UsageOf(body["usage"]);
  return c;
}

void AddChunk(const ojson& chunk, Completion* out) {
  if (!chunk.is_object()) return;
  if (out->id.empty()) out->id = StringOr(chunk, "id");
  if (chunk.contains("usage") && chunk["usage"].is_object()) out->usage = UsageOf(chunk["usage"]);
  const ojson choices = chunk.value("choices", ojson::array());
  if (choices.is_array() && !choices.empty()) AddChoice(choices[0], out);
}

std::optional<std::string> TokenizeResponseOf(const ojson& body) {
  if (!body.is_object() || !body.contains("tokens") || !body["tokens"].is_array()) return std::nullopt;
  std::vector<int32_t> ids;
  for (const ojson& id : body["tokens"]) {
    if (id.is_number_integer()) ids.push_back(id.get<int32_t>());
  }
  Writer w;
  w.PackedInt32(1, ids);
  IntField(w, 2, body.value("count", static_cast<int64_t>(ids.size())));
  IntField(w, 3, body.value("max_model_len", int64_t{0}));
  return w.Take();
}

std::string HealthResponse(bool serving, std::string_view message) {
  Writer w;
  w.Int(1, serving ? 1 : 2);
  if (!message.empty()) w.Bytes(2, message);
  return w.Take();
}

const char* const kServiceNames[4] = {"inferd.v1.Generation", "grpc.health.v1.Health",
                                      "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"};

std::string ReflectionResponse(std::string_view request, std::string_view descriptor_set) {
  // The file: the first (only) FileDescriptorProto of the set; its name is field 1.
  std::string_view file, file_name;
  Field f;
  for (Reader set(descriptor_set); file.empty() && set.Next(&f);) {
    if (f.number == 1 && f.type == WireType::kLen) file = f.bytes;
  }
  for (Reader fields(file); file_name.empty() && fields.Next(&f);) {
    if (f.number == 1 && f.type == WireType::kLen) file_name = f.bytes;
  }
  Writer w;
  Writer error;
  auto fail = [&](int code, std::string_view why) {
    error.Int(1, code);
    error.Bytes(2, why);
  };
  Reader r(request);
  bool answered = false;
  while (r.Next(&f)) {
    if (f.type != WireType::kLen) continue;
    const std::string_view arg = f.bytes;
    switch (f.number) {
      case 1: w.Bytes(1, arg); break;  // host: echoed as valid_host
      case 3:                          // file_by_filename
      case 4: {                        // file_containing_symbol
        answered = true;
        const bool ours = f.number == 3 ? arg == file_name : arg.starts_with("inferd.v1.") || arg == "inferd.v1";
        if (ours && !file.empty()) {
          Writer files;
          files.Bytes(1, file);
          w.Bytes(4, files.data());
        } else {
          fail(static_cast<int>(grpc::StatusCode::NOT_FOUND), fmt::format("'{}' is not known to this server", arg));
        }
        break;
      }
      case 5:  // file_containing_extension
      case 6:  // all_extension_numbers_of_type
        answered = true;
        fail(static_cast<int>(grpc::StatusCode::NOT_FOUND), "this server's messages have no extensions");
        break;
      case 7: {  // list_services
        answered = true;
        Writer list;
        for (const char* name : kServiceNames) {
          Writer service;
          service.Bytes(1, name);
          list.Bytes(1, service.data());
        }
        w.Bytes(6, list.data());
        break;
      }
      default: break;
    }
  }
  if (!r.ok() || !answered) {
    fail(static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT),
         r.ok() ? "the request asks for nothing this server answers" : r.error());
  }
  w.Bytes(2, request);  // original_request
  if (!error.data().empty()) w.Bytes(7, error.data());
  return w.Take();
}

}  // namespace inferd::server::grpc_convert
