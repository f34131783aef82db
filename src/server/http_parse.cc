// Beast's request parser plus the framing checks it leaves out (see http_parse.h).
//
// What Boost.Beast 1.74's basic_parser already does by itself (basic_parser.ipp, do_field):
// two Content-Length fields with different values, or a list of different values, are
// bad_content_length; Content-Length after "Transfer-Encoding: chunked" is
// bad_content_length and Transfer-Encoding after Content-Length is bad_transfer_encoding.
// What it accepts and this file rejects: equal duplicate Content-Length fields or lists
// ("5, 5"), "Transfer-Encoding: gzip" followed by Content-Length, a Transfer-Encoding
// whose final coding is not chunked (Beast then reads no body, and the would-be body is
// parsed as the next request: smuggling), Transfer-Encoding on HTTP/1.0, and a missing
// or repeated Host. Beast also merges chunked trailer fields into the message's fields,
// so the headers are copied when the header section ends, before any trailer. And Beast
// does not bound a chunk line or the trailers (its header limit covers the header only),
// so Feed() does, with the same limit.
//
// Beast quirks the fuzzer met (tests/fuzz/fuzz_http.cc), harmless as every path rejects:
// once it has seen part of a header, Beast scans for the blank line before parsing fields
// again, so a bad field in a header that arrives in pieces is reported when the header
// ends (or at the header limit, 431) rather than at once; and it subtracts a chunk's size
// from the body limit before parsing the chunk's extensions, so a malformed extension
// that needs more bytes subtracts it again on each retry and may end in 413, not 400.
#include "server/http_parse.h"

#include <algorithm>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cctype>
#include <limits>
#include <vector>

namespace inferd::server {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;

// Beast 1.74's string_view is boost's, not std's.
std::string_view Sv(beast::string_view s) { return {s.data(), s.size()}; }

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The fields of a header section, names lower-cased. A repeated field becomes one value
// joined with ", " (RFC 9110 §5.3), so no occurrence is silently dropped.
std::map<std::string, std::string> LowerCasedFields(const http::fields& fields) {
  std::map<std::string, std::string> out;
  for (const auto& f : fields) {
    auto [it, inserted] = out.try_emplace(Lower(Sv(f.name_string())), Sv(f.value()));
    if (!inserted) it->second.append(", ").append(Sv(f.value()));
  }
  return out;
}

// Method, path / query and headers; the body is added when the request is complete.
HttpRequest RequestHead(const http::request<http::string_body>& m) {
  HttpRequest r;
  r.method = std::string(Sv(m.method_string()));
  std::string_view target = Sv(m.target());
  if (auto q = target.find('?'); q != std::string_view::npos) {
    r.query = std::string(target.substr(q + 1));
    target = target.substr(0, q);
  }
  r.path = std::string(target);
  r.headers = LowerCasedFields(m.base());
  r.version = static_cast<int>(m.version());
  return r;
}

Status FromBeast(const beast::error_code& ec, const HttpParseLimits& limits) {
  if (ec == http::error::header_limit) {
    return OutOfRange("request header section exceeds the limit of " + std::to_string(limits.max_header_bytes) +
                      " bytes");
  }
  if (ec == http::error::body_limit) {
    return ResourceExhausted("request body exceeds the limit of " + std::to_string(limits.max_body_bytes) + " bytes");
  }
  return InvalidArgument("malformed HTTP request: " + ec.message());
}

}  // namespace

int HttpStatusForParseError(const Status& error) {
  switch (error.code()) {
    case StatusCode::kResourceExhausted: return 413;
    case StatusCode::kOutOfRange: return 431;
    case StatusCode::kUnimplemented: return 501;
    default: return 400;
  }
}

struct HttpRequestParser::Impl {
  explicit Impl(const HttpParseLimits& l) : limits(l) {
    using Header = std::uint32_t;  // Beast's header limit type
    const size_t header_limit = std::min<size_t>(limits.max_header_bytes, std::numeric_limits<Header>::max());
    parser.header_limit(static_cast<Header>(header_limit));
    parser.body_limit(static_cast<std::uint64_t>(limits.max_body_bytes));
    parser.eager(false);  // stop after the header section: it is validated before any body byte
  }
  HttpParseLimits limits;
  http::request_parser<http::string_body> parser;
  HttpRequest head;  // copied when the header section ends (never sees trailer fields)
  size_t header_bytes = 0;  // consumed so far by the header section
  bool header_done = false;
};

HttpRequestParser::HttpRequestParser(const HttpParseLimits& limits) : impl_(std::make_unique<Impl>(limits)) {}
HttpRequestParser::~HttpRequestParser() = default;

bool HttpRequestParser::got_some() const { return impl_->parser.got_some(); }
bool HttpRequestParser::header_done() const { return impl_->header_done; }
bool HttpRequestParser::done() const { return !failed() && impl_->header_done && impl_->parser.is_done(); }

bool HttpRequestParser::expects_continue() const {
  if (!impl_->header_done || done() || failed() || impl_->head.version < 11) return false;
  return beast::iequals(impl_->parser.get()[http::field::expect], "100-continue");
}

size_t HttpRequestParser::Feed(std::string_view bytes) {
  if (failed() || done()) return 0;
  auto& p = impl_->parser;
  beast::error_code ec;
  size_t used = 0;
  if (!impl_->header_done) {
    used = p.put(boost::asio::const_buffer(bytes.data(), bytes.size()), ec);
    impl_->header_bytes += used;
    if (ec == http::error::need_more) return used;
    if (ec) {
      // A declared body over the limit fails as the header ends; report a framing error
      // first if there is one, so that the answer does not depend on the limit.
      Status framing = ec == http::error::body_limit ? ValidateFraming() : Status::OK();
      error_ = framing.ok() ? FromBeast(ec, impl_->limits) : framing;
      return used;
    }
    OnHeaderDone();
    if (failed() || p.is_done()) return used;
    bytes.remove_prefix(used);
  }
  if (bytes.empty()) return used;
  size_t n = p.put(boost::asio::const_buffer(bytes.data(), bytes.size()), ec);
  if (ec == http::error::need_more && bytes.size() - n > impl_->limits.max_header_bytes) {
    // Body bytes are always consumed; what Beast leaves is a chunk line or the trailer
    // section, which it bounds by nothing: it would buffer them without end (and rescan
    // an unterminated quoted chunk extension, which runs past the line, each time).
    error_ = OutOfRange("a chunk line or the trailer section exceeds the limit of " +
                        std::to_string(impl_->limits.max_header_bytes) + " bytes");
  } else if (ec && ec != http::error::need_more) {
    error_ = FromBeast(ec, impl_->limits);
  }
  return used + n;
}

void HttpRequestParser::OnHeaderDone() {
  impl_->header_done = true;
  // Beast applies its header limit to what follows the part it has already parsed (the
  // start line, complete fields), so whether a header a little over the limit passes
  // depends on how it arrived; this check makes the limit exact, and first, as Beast's is
  // for a header that arrives in pieces.
  error_ = impl_->header_bytes > impl_->limits.max_header_bytes ? FromBeast(http::error::header_limit, impl_->limits)
                                                                 : ValidateFraming();
  impl_->head = RequestHead(impl_->parser.get());
  impl_->head.keep_alive = impl_->parser.keep_alive();
  impl_->parser.eager(true);  // from here on, take every body byte available
}

Status HttpRequestParser::ValidateFraming() const {
  const auto& m = impl_->parser.get();
  const size_t num_length = m.count(http::field::content_length);
  if (num_length > 1) return InvalidArgument("more than one Content-Length field (RFC 9112 §6.3)");
  if (num_length == 1) {
    std::string_view v = Sv(m[http::field::content_length]);
    if (v.empty() || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return InvalidArgument("Content-Length is not a single decimal number (RFC 9112 §6.3)");
    }
  }
  std::vector<std::string> codings;
  const auto te = m.equal_range(http::field::transfer_encoding);
  for (auto it = te.first; it != te.second; ++it) {
    std::string_view v = Sv(it->value());
    for (size_t start = 0; start <= v.size();) {
      size_t comma = std::min(v.find(',', start), v.size());
      if (auto c = TrimOws(v.substr(start, comma - start)); !c.empty()) codings.push_back(Lower(c));
      start = comma + 1;
    }
  }
  if (te.first != te.second) {
    if (num_length > 0) return InvalidArgument("both Content-Length and Transfer-Encoding (RFC 9112 §6.3)");
    if (m.version() < 11) return InvalidArgument("Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1)");
    auto chunked = std::find(codings.begin(), codings.end(), "chunked");
    if (chunked == codings.end() || chunked + 1 != codings.end()) {
      return InvalidArgument("Transfer-Encoding must end with chunked, once (RFC 9112 §6.3)");
    }
    if (codings.size() > 1) return Unimplemented("only the chunked transfer coding is supported");
  }
  if (m.version() >= 11 && m.count(http::field::host) != 1) {
    return InvalidArgument("an HTTP/1.1 request needs exactly one Host field (RFC 9112 §3.2)");
  }
  return Status::OK();
}

HttpRequest HttpRequestParser::Release() {
  auto& m = impl_->parser.get();
  if (!impl_->header_done) return RequestHead(m);
  HttpRequest r = std::move(impl_->head);
  if (done()) r.body = std::move(m.body());
  return r;
}

StatusOr<HttpRequest> ParseHttpRequest(std::string_view bytes, const HttpParseLimits& limits, size_t* consumed) {
  HttpRequestParser parser(limits);
  size_t n = parser.Feed(bytes);
  if (parser.failed()) return parser.error();
  if (!parser.done()) {
    return DataLoss(parser.header_done() ? "incomplete HTTP request: the body ends early"
                                         : "incomplete HTTP request: the header section ends early");
  }
  if (consumed) *consumed = n;
  return parser.Release();
}

std::vector<std::string_view> HeaderListItems(std::string_view value) {
  std::vector<std::string_view> out;
  constexpr std::string_view kSpace = " \t\n\r\v\f";
  for (size_t start = 0; start <= value.size();) {
    const size_t comma = std::min(value.find(',', start), value.size());
    std::string_view item = value.substr(start, comma - start);
    const size_t b = item.find_first_not_of(kSpace);
    item = b == std::string_view::npos ? std::string_view() : item.substr(b, item.find_last_not_of(kSpace) - b + 1);
    out.push_back(item);
    start = comma + 1;
  }
  return out;
}

}  // namespace inferd::server

namespace inferd::server {
namespace {

// Whether a comma-separated header value lists `token` (case-insensitive, spaces ignored).
bool ListsToken(const std::string& value, std::string_view token) {
  for (std::string_view item : HeaderListItems(value)) {
    if (item.size() == token.size() &&
        std::equal(token.begin(), token.end(), item.begin(), [](char a, char c) {
          return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(c));
        })) {
      return true;
    }
  }
  return false;
}

}  // namespace

bool HttpRequest::IsWebSocketUpgrade() const {
  return method == "GET" && ListsToken(Header("upgrade"), "websocket") && ListsToken(Header("connection"), "upgrade");
}

}  // namespace inferd::server
