// libFuzzer target: a JSON schema from a request (response_format, structured_outputs.json,
// a tool's parameters) through PrepareJsonSchema, the rewrite before XGrammar compiles it
// (allOf merged with $refs inlined, format patterns, length bounds beside patterns). Any
// input must give a schema or a Status: never crash, hang or grow without bound. A prepared
// schema is a fixed point: preparing it again changes nothing.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "structured/json_schema_prep.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto once = inferd::structured::PrepareJsonSchema(text);
  if (!once.ok()) return 0;
  auto twice = inferd::structured::PrepareJsonSchema(*once);
  if (!twice.ok() || *twice != *once) abort();
  return 0;
}
