// libFuzzer target: the gRPC API's request messages (server/grpc_convert.h over
// util/protowire.h) on any bytes, as a client could send them.
//
// Checked for every input: no crash, leak or undefined behaviour (ASan/UBSan); the wire
// reader never hands out bytes outside the input; a message that converts gives a JSON
// object body for a known route, and one that does not gives a reason; the reflection
// answer to any request is itself a well-formed message.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "server/grpc_convert.h"
#include "util/protowire.h"

namespace {

namespace conv = inferd::server::grpc_convert;
namespace pw = inferd::protowire;

void Check(bool ok) {
  if (!ok) std::abort();
}

void CheckCall(const conv::HttpCall& call, std::string_view want_path) {
  if (!call.error.empty()) {
    Check(call.path.empty() || call.path == want_path);
    return;
  }
  if (want_path == "/health") return Check(call.path == "/health" && call.body.empty());
  Check(want_path.empty() ? call.path == "/v1/completions" || call.path == "/v1/chat/completions" : call.path == want_path);
  const inferd::server::ojson body = inferd::server::ojson::parse(call.body, nullptr, false);
  Check(body.is_object());
}

// Every field read lies inside `data`, and a kLen field's bytes too.
void CheckReader(std::string_view data) {
  pw::Reader r(data);
  pw::Field f;
  size_t fields = 0;
  while (r.Next(&f)) {
    Check(f.number >= 1 && f.number <= pw::kMaxFieldNumber);
    if (f.type == pw::WireType::kLen) {
      Check(f.bytes.data() >= data.data() && f.bytes.data() + f.bytes.size() <= data.data() + data.size());
    }
    Check(++fields <= data.size());  // each field takes at least one byte
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  const std::string_view data(reinterpret_cast<const char*>(bytes), size);
  CheckReader(data);
  CheckCall(conv::GenerateCall(data, false), "");
  CheckCall(conv::GenerateCall(data, true), "");
  CheckCall(conv::TokenizeCall(data), "/tokenize");
  CheckCall(conv::HealthCall(data), "/health");
  // A descriptor set made of the input's first half, a request of the rest.
  const std::string answer = conv::ReflectionResponse(data.substr(size / 2), data.substr(0, size / 2));
  pw::Reader r(answer);
  pw::Field f;
  while (r.Next(&f)) {
  }
  Check(r.ok());
  return 0;
}
