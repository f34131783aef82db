// HTTP/1.x request parsing: received bytes -> HttpRequest, without sockets.
//
// The server (http.cc) feeds what it reads from a connection into an HttpRequestParser;
// tests and the fuzzer (tests/fuzz/fuzz_http.cc) use ParseHttpRequest on a byte string.
// Both run the same code: Boost.Beast's request parser with our limits, then the framing
// checks Beast does not make (RFC 9112 §6.3, request smuggling), then the HttpRequest.
//
// Framing rules enforced here, each answered with an error status and a closed connection
// (a request whose length is ambiguous cannot be followed by another on that connection):
//   - more than one Content-Length field, even with equal values, or a Content-Length
//     value that is not a plain decimal number (a list "5, 5" included)       -> 400
//   - Content-Length together with Transfer-Encoding                          -> 400
//   - Transfer-Encoding whose final coding is not chunked                     -> 400
//   - Transfer-Encoding on an HTTP/1.0 request (RFC 9112 §6.1: faulty framing) -> 400
//   - Transfer-Encoding with a coding before chunked (gzip, ...): unsupported  -> 501
//   - HTTP/1.1 without exactly one Host field (RFC 9112 §3.2)                  -> 400
//   - a header section over max_header_bytes, or a chunk line or trailer section
//     over it                                                                  -> 431
//   - a body over max_body_bytes (declared or chunked)                        -> 413
//   - anything Beast rejects (bad start line, bad field, bad chunk)           -> 400
// Headers are those of the header section only: chunked trailer fields never reach
// HttpRequest::headers (RFC 9110 §6.5.1), so a trailer cannot add or replace a header.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "inferd/status.h"
#include "server/http.h"

namespace inferd::server {

struct HttpParseLimits {
  size_t max_header_bytes = 64 * 1024;  // request line + fields
  size_t max_body_bytes = 64u << 20;
};

// The HTTP status that answers a parse error from this file: kResourceExhausted -> 413,
// kOutOfRange -> 431, kUnimplemented -> 501, anything else -> 400.
int HttpStatusForParseError(const Status& error);

// Incremental parser for one request. Feed() the bytes received so far; it consumes a
// prefix and the caller keeps the rest, to present again followed by newer bytes (a
// partial header is consumed only once complete). Bytes after the end of the request
// (a pipelined next request) are never consumed.
class HttpRequestParser {
 public:
  explicit HttpRequestParser(const HttpParseLimits& limits);
  ~HttpRequestParser();
  HttpRequestParser(const HttpRequestParser&) = delete;
  HttpRequestParser& operator=(const HttpRequestParser&) = delete;

  // Returns the number of bytes consumed. After an error (see error()) it consumes nothing.
  size_t Feed(std::string_view bytes);

  bool got_some() const;     // some bytes of a request were seen (the start line began)
  bool header_done() const;  // the header section is complete and valid
  bool done() const;         // the whole request (body included) is complete and valid
  bool failed() const { return !error_.ok(); }
  const Status& error() const { return error_; }
  // An HTTP/1.1 request with "Expect: 100-continue" whose body is not complete yet: the
  // client may be waiting for "100 Continue" before sending it (RFC 9110 §10.1.1; an
  // HTTP/1.0 client's expectation is ignored).
  bool expects_continue() const;

  // The request: complete after done(); before that (after an error, for instance) it holds
  // the method, target and headers seen so far, for an error response. Call at most once.
  HttpRequest Release();

 private:
  struct Impl;
  void OnHeaderDone();
  Status ValidateFraming() const;

  std::unique_ptr<Impl> impl_;
  Status error_;
};

// Parses exactly one request from the start of `bytes`. `consumed` (optional) receives its
// length, so that pipelined requests can be parsed one after another. Bytes that end
// before the request does give kDataLoss ("incomplete"); the other errors are those above.
StatusOr<HttpRequest> ParseHttpRequest(std::string_view bytes, const HttpParseLimits& limits,
                                       size_t* consumed = nullptr);

// The items of a comma-separated header value ("a, b,c" -> a, b, c), each trimmed of
// whitespace; empty items are kept (an empty value is one empty item).
std::vector<std::string_view> HeaderListItems(std::string_view value);

}  // namespace inferd::server
