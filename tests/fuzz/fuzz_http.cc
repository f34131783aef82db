// libFuzzer target: the HTTP request parser (server/http_parse.h) on any bytes.
//
// Checked for every input: no crash, leak or undefined behaviour (ASan/UBSan); an error
// maps to one of the statuses the server answers with; a parsed request respects the
// limits and the HttpRequest invariants (lower-case header names, no '?' in the path);
// and feeding the same bytes in pieces, as the server does from a socket, gives the same
// outcome as parsing them at once.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "server/http_parse.h"

namespace {

using inferd::StatusCode;
using inferd::server::HttpParseLimits;
using inferd::server::HttpRequest;
using inferd::server::HttpRequestParser;

// Small limits, so that inputs of a few KB reach them.
constexpr HttpParseLimits kLimits{/*max_header_bytes=*/2048, /*max_body_bytes=*/4096};

void Check(bool ok) {
  if (!ok) std::abort();
}

void CheckRequest(const HttpRequest& r) {
  Check(r.body.size() <= kLimits.max_body_bytes);
  Check(r.path.find('?') == std::string::npos);
  Check(r.version == 10 || r.version == 11);
  for (const auto& [name, value] : r.headers) {
    for (char c : name) Check(!(c >= 'A' && c <= 'Z'));
  }
}

// An error of Beast's parsing or of a limit, as opposed to one of our framing checks.
bool ParseError(const inferd::Status& st) {
  return st.code() == StatusCode::kResourceExhausted || st.code() == StatusCode::kOutOfRange ||
         (st.code() == StatusCode::kInvalidArgument && st.message().rfind("malformed HTTP request", 0) == 0);
}

bool SameRequest(const HttpRequest& a, const HttpRequest& b) {
  return a.method == b.method && a.path == b.path && a.query == b.query && a.headers == b.headers &&
         a.body == b.body && a.version == b.version && a.keep_alive == b.keep_alive;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  size_t consumed = 0;
  inferd::StatusOr<HttpRequest> whole = inferd::server::ParseHttpRequest(bytes, kLimits, &consumed);
  if (whole.ok()) {
    Check(consumed > 0 && consumed <= size);
    CheckRequest(*whole);
  } else {
    const int status = inferd::server::HttpStatusForParseError(whole.status());
    Check(status == 400 || status == 413 || status == 431 || status == 501);
    Check(!whole.status().message().empty());
  }

  // The same bytes in pieces of 1..16 bytes (sizes from a generator seeded by the length,
  // so that the split does not take bytes away from the input).
  HttpRequestParser parser(kLimits);
  std::string pending;
  size_t fed = 0;
  uint32_t state = static_cast<uint32_t>(size) * 2654435761u + 1;
  while (fed < size && !parser.done() && !parser.failed()) {
    state = state * 1103515245u + 12345u;
    size_t piece = std::min<size_t>(1 + (state >> 16) % 16, size - fed);
    pending.append(bytes.substr(fed, piece));
    fed += piece;
    size_t used = parser.Feed(pending);
    Check(used <= pending.size());
    pending.erase(0, used);
  }
  if (whole.ok() || parser.done()) {
    Check(whole.ok() && parser.done() && !parser.failed());
    Check(fed - pending.size() == consumed);  // the same request boundary
    Check(SameRequest(parser.Release(), *whole));
  } else if (whole.status().code() == StatusCode::kDataLoss) {
    // Incomplete at once: incomplete in pieces, or rejected by a quirk (see below).
    Check(!parser.failed() || ParseError(parser.error()));
  } else if (parser.failed() && parser.error().code() == whole.status().code()) {
    // The same verdict.
  } else {
    // A rejection either way, where Beast's quirks (http_parse.cc) make the verdict depend
    // on how the bytes arrive: a bad field in a header in pieces shows only when the header
    // ends, at the header limit, or at end of stream (the server's 400); a malformed chunk
    // may count against the body limit more than once (413 for 400), or leave the pieces
    // waiting for more. Never a framing verdict of ours (they see the same header).
    Check(ParseError(whole.status()));
    Check(!parser.failed() || ParseError(parser.error()));
  }
  if (parser.failed()) (void)parser.Release();  // what the server reads for the error's CORS headers
  return 0;
}
