// The structured-outputs fields of a generate request (docs/structured-outputs.md):
// response_format, vLLM's structured_outputs object and the older guided_* fields, all
// mapped onto SamplingParams::structured_outputs (at most one constraint per request).
#include <fmt/format.h>

#include "chat/reasoning_parser.h"
#include "server/openai.h"
#include "util/json.h"
#include "server/request_fields.h"

namespace inferd::server {
namespace {

[[noreturn]] void Conflict(const char* param) {
  throw ApiError(400, "You can only use one kind of structured outputs constraint but multiple are specified.", param);
}

// A JSON schema given inline (an object or true) or as a string holding one (parsed with the
// request body's bounds).
std::string SchemaText(const ojson& v, const std::string& param) {
  if (v.is_object()) return v.dump();
  if (v.is_boolean()) {
    if (!v.get<bool>()) throw ApiError(400, fmt::format("'{}' is false: no output can match it", param), param);
    return "{}";
  }
  if (!v.is_string()) BadType(param, "a JSON schema (an object, or a string holding one)");
  const std::string& s = v.get_ref<const std::string&>();
  ojson parsed;
  JsonError err;
  if (!ParseJson(s, &parsed, &err) || !parsed.is_object()) {
    throw ApiError(400, fmt::format("'{}' must be a JSON schema: an object, or a string holding one{}", param,
                                    err.message.empty() ? "" : " (" + err.message + ")"),
                   param);
  }
  return s;
}

std::string StringField(const ojson& v, const std::string& param) {
  if (!v.is_string()) BadType(param, "a string");
  return v.get<std::string>();
}

std::vector<std::string> Choices(const ojson& v, const std::string& param) {
  if (!v.is_array() || v.empty()) BadType(param, "a non-empty array of strings");
  std::vector<std::string> out;
  for (const ojson& c : v) {
    if (!c.is_string()) BadType(param, "a non-empty array of strings");
    out.push_back(c.get<std::string>());
  }
  return out;
}

void ParseResponseFormat(const Fields& f, std::optional<StructuredOutputsParams>& so) {
  if (!f.Has("response_format")) return;
  const ojson& rf = f.body()["response_format"];
  if (!rf.is_object()) BadType("response_format", "an object with a 'type'");
  auto type = rf.find("type");
  if (type == rf.end() || !type->is_string()) {
    throw ApiError(400, "'response_format' needs a 'type': text, json_object, json_schema or structural_tag",
                   "response_format");
  }
  const std::string& t = type->get_ref<const std::string&>();
  auto only = [&](std::initializer_list<const char*> keys) {
    for (const auto& [k, v] : rf.items()) {
      bool ok = false;
      for (const char* key : keys) ok = ok || k == key;
      if (!ok) throw ApiError(400, fmt::format("'response_format.{}' is not a field of type {}", k, t), "response_format");
    }
  };
  if (t == "text") {
    only({"type"});
    return;
  }
  if (t == "json_object") {
    only({"type"});
    so.emplace().json_object = true;
    return;
  }
  if (t == "json_schema") {
    only({"type", "json_schema"});
    auto js = rf.find("json_schema");
    if (js == rf.end() || !js->is_object()) {
      throw ApiError(400, "'response_format.json_schema' must be an object with 'name' and 'schema'", "response_format");
    }
    for (const auto& [k, v] : js->items()) {
      if (k != "name" && k != "schema" && k != "strict" && k != "description") {
        throw ApiError(400, fmt::format("'response_format.json_schema.{}' is not a field of json_schema", k),
                       "response_format");
      }
    }
    // OpenAI's strict: false lets the model stray; XGrammar always enforces the schema (as vLLM).
    if (js->contains("strict") && !(*js)["strict"].is_boolean() && !(*js)["strict"].is_null()) {
      BadType("response_format.json_schema.strict", "a boolean");
    }
    auto schema = js->find("schema");
    if (schema == js->end() || schema->is_null()) {
      throw ApiError(400, "'response_format.json_schema.schema' is required", "response_format");
    }
    so.emplace().json = SchemaText(*schema, "response_format.json_schema.schema");
    return;
  }
  if (t == "structural_tag") {
    so.emplace().structural_tag = rf.dump();  // XGrammar reads the whole object
    return;
  }
  throw ApiError(400,
                 fmt::format("response_format type '{}' is invalid: use text, json_object, json_schema or structural_tag", t),
                 "response_format");
}

void ParseStructuredOutputsObject(const Fields& f, std::optional<StructuredOutputsParams>& so) {
  if (!f.Has("structured_outputs")) return;
  const ojson& o = f.body()["structured_outputs"];
  if (!o.is_object()) BadType("structured_outputs", "an object");
  if (so) Conflict("structured_outputs");
  StructuredOutputsParams p;
  for (const auto& [k, v] : o.items()) {
    const std::string param = "structured_outputs." + k;
    if (v.is_null()) continue;  // pydantic: null = unset
    if (k == "json") {
      p.json = SchemaText(v, param);
    } else if (k == "regex") {
      p.regex = StringField(v, param);
    } else if (k == "choice") {
      p.choice = Choices(v, param);
    } else if (k == "grammar") {
      p.grammar = StringField(v, param);
    } else if (k == "json_object") {
      if (!v.is_boolean()) BadType(param, "a boolean");
      p.json_object = v.get<bool>();
    } else if (k == "structural_tag") {
      p.structural_tag = StringField(v, param);
    } else if (k == "disable_any_whitespace") {
      if (!v.is_boolean()) BadType(param, "a boolean");
      p.disable_any_whitespace = v.get<bool>();
    } else if (k == "whitespace_pattern" || k == "disable_additional_properties") {
      throw ApiError(400, fmt::format("'{}' is not supported by inferd's structured-output backend (XGrammar)", param),
                     param);
    } else {
      throw ApiError(400, fmt::format("'{}' is not a field of structured_outputs", param), param);
    }
  }
  if (p.num_constraints() == 0) {
    throw ApiError(400, "You must use one kind of structured outputs constraint but none are specified.",
                   "structured_outputs");
  }
  if (p.num_constraints() > 1) Conflict("structured_outputs");
  so = std::move(p);
}

// vLLM's fields before structured_outputs (removed in vLLM 0.12; still accepted here).
void ParseGuided(const Fields& f, std::optional<StructuredOutputsParams>& so) {
  for (const char* key : {"guided_json", "guided_regex", "guided_choice", "guided_grammar"}) {
    if (!f.Has(key)) continue;
    if (so) Conflict(key);
    const ojson& v = f.body()[key];
    StructuredOutputsParams p;
    const std::string k = key;
    if (k == "guided_json") p.json = SchemaText(v, k);
    if (k == "guided_regex") p.regex = StringField(v, k);
    if (k == "guided_choice") p.choice = Choices(v, k);
    if (k == "guided_grammar") p.grammar = StringField(v, k);
    so = std::move(p);
  }
}

// The function definitions of `tools`: name -> parameters schema ({"type": "object"} when
// absent), in order; 400s for what OpenAI and vLLM refuse.
std::vector<std::pair<std::string, ojson>> ToolFunctions(const ojson& tools) {
  std::vector<std::pair<std::string, ojson>> out;
  for (size_t i = 0; i < tools.size(); ++i) {
    const std::string at = fmt::format("tools[{}]", i);
    const ojson& t = tools[i];
    if (!t.is_object() || !t.contains("function") || !t["function"].is_object()) {
      BadType(at, "an object {\"type\": \"function\", \"function\": {...}}");
    }
    if (t.contains("type") && t["type"] != "function") {
      throw ApiError(400, fmt::format("'{}.type' must be \"function\"", at), at + ".type");
    }
    const ojson& fn = t["function"];
    if (!fn.contains("name") || !fn["name"].is_string() || fn["name"].get_ref<const std::string&>().empty()) {
      throw ApiError(400, fmt::format("'{}.function.name' must be a non-empty string", at), at + ".function.name");
    }
    ojson params = ojson{{"type", "object"}};
    if (fn.contains("parameters") && !fn["parameters"].is_null()) {
      if (!fn["parameters"].is_object()) BadType(at + ".function.parameters", "a JSON schema object");
      params = fn["parameters"];
    }
    out.emplace_back(fn["name"].get<std::string>(), std::move(params));
  }
  return out;
}

// vLLM's schema for tool_choice "required": an array of {"name", "parameters"} items, one of
// the tools each (at most one item when parallel_tool_calls is false).
std::string RequiredSchema(const std::vector<std::pair<std::string, ojson>>& fns, bool parallel) {
  ojson any_of = ojson::array();
  for (const auto& [name, params] : fns) {
    any_of.push_back({{"properties", {{"name", {{"type", "string"}, {"enum", ojson::array({name})}}}, {"parameters", params}}},
                      {"required", ojson::array({"name", "parameters"})}});
  }
  ojson schema = {{"type", "array"}, {"minItems", 1}, {"items", {{"type", "object"}, {"anyOf", any_of}}}};
  if (!parallel) schema["maxItems"] = 1;
  return schema.dump();
}

}  // namespace

void ParseToolChoice(const Fields& f, const ModelInfo& model, ParsedRequest& r) {
  const bool tools = f.Has("tools") && !f.body()["tools"].empty();
  const bool parallel = f.Bool("parallel_tool_calls").value_or(true);
  // vLLM: tools without tool_choice mean "auto".
  const ojson tc = f.Has("tool_choice") ? f.body()["tool_choice"] : tools ? ojson("auto") : ojson("none");
  if (tc == "none") return;  // the tools reach the template; the output is plain text
  if (!(tc == "auto" || tc == "required" || tc.is_object())) {
    throw ApiError(400,
                   fmt::format("Invalid value for 'tool_choice': {}! Only named tools, \"none\", \"auto\" or "
                               "\"required\" are supported.",
                               tc.dump()),
                   "tool_choice");
  }
  if (!tools) throw ApiError(400, "When using 'tool_choice', 'tools' must be set.", "tool_choice");
  if (tc == "auto") {
    if (model.tool_call_parser.empty()) {
      throw ApiError(400,
                     "\"auto\" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set "
                     "(a tool-call parser splits the model's output into tool calls); send \"tool_choice\": "
                     "\"required\", a named function, or \"none\" to show the tools to the chat template only",
                     "tool_choice");
    }
    ToolFunctions(f.body()["tools"]);  // the same checks as the forced modes
    r.tool_mode = ParsedRequest::ToolMode::kAuto;
    r.tool_parser = model.tool_call_parser;
    r.tools = f.body()["tools"];
    // vLLM's adjust_request: keep the special tokens the parser's tags are made of.
    if (MakeToolParser(r.tool_parser)->keeps_special_tokens()) r.params.skip_special_tokens = false;
    return;
  }
  if (r.params.structured_outputs) {
    throw ApiError(400, "tool_choice \"required\" or a named function cannot be combined with another structured "
                   "outputs constraint (response_format, structured_outputs, guided_*)", "tool_choice");
  }
  const auto fns = ToolFunctions(f.body()["tools"]);
  StructuredOutputsParams so;
  if (tc == "required") {
    r.tool_mode = ParsedRequest::ToolMode::kRequired;
    so.json = RequiredSchema(fns, parallel);
    so.disable_any_whitespace = true;  // fixed separators: the streamed arguments are the exact JSON
  } else {
    const auto fn = tc.find("function");
    if ((tc.contains("type") && tc["type"] != "function") || fn == tc.end() || !fn->is_object() ||
        !fn->contains("name") || !(*fn)["name"].is_string()) {
      BadType("tool_choice", "\"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}");
    }
    const std::string name = (*fn)["name"].get<std::string>();
    const ojson* params = nullptr;
    for (const auto& [n, p] : fns) {
      if (n == name) params = &p;
    }
    if (!params) throw ApiError(400, fmt::format("Tool '{}' has not been passed in `tools`.", name), "tool_choice");
    r.tool_mode = ParsedRequest::ToolMode::kNamed;
    r.tool_name = name;
    so.json = params->dump();
    so.disable_any_whitespace = true;  // compact arguments (a small model pads free whitespace)
  }
  r.params.structured_outputs = std::move(so);
}

void ParseReasoning(const Fields& f, const ModelInfo& model, ParsedRequest& r) {
  const bool include = f.Bool("include_reasoning").value_or(true);
  if (model.reasoning_parser.empty()) {
    if (!include) {
      throw ApiError(400, "'include_reasoning': false needs a server started with --reasoning-parser",
                     "include_reasoning");
    }
    return;
  }
  std::unique_ptr<ReasoningParser> parser = MakeReasoningParser(model.reasoning_parser);
  r.reasoning_parser = model.reasoning_parser;
  r.include_reasoning = include;
  if (parser->keeps_special_tokens()) r.params.skip_special_tokens = false;  // the tags are special tokens
  parser->Start(r.prompts.at(0).text);
  if (r.params.structured_outputs && !parser->in_content()) r.structured_after = std::string(parser->end_marker());
}

void ParseStructuredOutputs(const Fields& f, SamplingParams& p) {
  std::optional<StructuredOutputsParams> so;
  ParseResponseFormat(f, so);
  ParseStructuredOutputsObject(f, so);
  ParseGuided(f, so);
  p.structured_outputs = std::move(so);
}

}  // namespace inferd::server
