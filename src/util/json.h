// Parsing JSON that comes from outside (request bodies, model files) with bounds.
//
// nlohmann's own DOM parser has three problems with hostile text: nesting is unbounded
// (the recursive walks that follow it — dump(), conversions — overflow the stack at
// ~75,000 levels), a number too large for a double is reported as a bare "number
// overflow", and an ordered_json object inserts each key with a linear search (100,000
// keys in one object: seconds of CPU). ParseJson builds the same DOM through nlohmann's
// SAX interface instead and fixes all three:
//   - nesting deeper than `max_depth` is an error before the level is built;
//   - every error names the field it happened in, as a path ("messages[2].content");
//   - object keys are deduplicated through a hash index (the last value wins, at the
//     position of the first, as Python's json and nlohmann's DOM do).
//
// Thread-safety: a pure function; call it from any thread.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "inferd/status.h"

namespace inferd {

// pydantic-core's JSON parser (what vLLM's request models go through) stops at 200
// levels; real request bodies and model files nest fewer than 20.
inline constexpr int kMaxJsonDepth = 200;

struct JsonError {
  std::string message;  // a sentence, e.g. "number overflow: 1e999 is not a finite number"
  std::string path;     // the field where it happened ("temperature", "tools[0].function"); "" at the top
  size_t byte_offset = 0;
};

// Parses `text` into *out. On failure returns false and fills *err (out is left null).
// Explicitly instantiated for nlohmann::json and nlohmann::ordered_json.
template <class Json>
bool ParseJson(std::string_view text, Json* out, JsonError* err, int max_depth = kMaxJsonDepth);

// For files (config.json, JSONL input lines): InvalidArgument "<what>: invalid JSON at
// <path>: <message>", with the same bounds.
StatusOr<nlohmann::json> ParseJson(std::string_view text, const std::string& what);

// "path: message" or just the message at the top level, for logs and Status messages.
std::string FormatJsonError(const JsonError& err);

}  // namespace inferd
