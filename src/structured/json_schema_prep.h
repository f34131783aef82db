// JSON schemas prepared before XGrammar 0.2.9 compiles them (docs/structured-outputs.md),
// for what it would otherwise let through invalid or loop on:
//   - allOf is merged into one schema (XGrammar compiles an allOf of two or more subschemas
//     as any JSON): properties united (a property in several subschemas merged the same
//     way), required lists united, bounds tightened, enums and types intersected, local
//     $refs resolved; keywords that cannot be merged (two different patterns, anyOf in two
//     subschemas, ...) are an InvalidArgument naming them, never ignored;
//   - string formats whose XGrammar patterns accept invalid values get exact patterns:
//     ipv4 without leading zeros, date and date-time with the days of each month (29
//     February in leap years), time and date-time without leap seconds and with at most
//     nine fractional digits (XGrammar's own pattern also lets "12:34:4789Z" through),
//     hostname with at most 8 labels of at most 30 characters
//     (within the 253-character limit).
// Thread-safety: pure functions.
#pragma once

#include <string>

#include "inferd/status.h"

namespace inferd::structured {

// The schema text to compile, or InvalidArgument (invalid JSON, nesting past the request
// limit, an allOf that cannot be merged).
StatusOr<std::string> PrepareJsonSchema(const std::string& schema);

}  // namespace inferd::structured
