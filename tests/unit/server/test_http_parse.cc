// ParseHttpRequest / HttpRequestParser: bytes -> HttpRequest, the framing rules of
// http_parse.h (RFC 9112 §6.3), limits, and incremental feeding as the server does it.
#include "server/http_parse.h"

#include <gtest/gtest.h>

#include <string>

namespace inferd::server {
namespace {

HttpParseLimits Limits(size_t header = 64 * 1024, size_t body = 1 << 20) { return HttpParseLimits{header, body}; }

// The HTTP status ParseHttpRequest's error maps to (0 when it parsed).
int ErrorStatus(std::string_view bytes, HttpParseLimits limits = Limits()) {
  StatusOr<HttpRequest> r = ParseHttpRequest(bytes, limits);
  return r.ok() ? 0 : HttpStatusForParseError(r.status());
}

// The same through an HttpRequestParser fed `piece` bytes at a time: 0 when the request
// parsed, the error's status, or -1 when it is still incomplete.
int PiecesStatus(std::string_view bytes, HttpParseLimits limits, size_t piece) {
  HttpRequestParser parser(limits);
  std::string pending;
  for (size_t fed = 0; fed < bytes.size() && !parser.done() && !parser.failed(); fed += piece) {
    pending.append(bytes.substr(fed, piece));
    pending.erase(0, parser.Feed(pending));
  }
  if (parser.failed()) return HttpStatusForParseError(parser.error());
  return parser.done() ? 0 : -1;
}

TEST(HttpParse, GetWithQueryAndLowerCasedHeaders) {
  const std::string bytes = "GET /v1/models?a=1&b=2 HTTP/1.1\r\nHost: x\r\nX-Custom-Thing: Value One\r\n\r\n";
  size_t consumed = 0;
  StatusOr<HttpRequest> r = ParseHttpRequest(bytes, Limits(), &consumed);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->method, "GET");
  EXPECT_EQ(r->path, "/v1/models");
  EXPECT_EQ(r->query, "a=1&b=2");
  EXPECT_EQ(r->Header("x-custom-thing"), "Value One");
  EXPECT_EQ(r->Header("host"), "x");
  EXPECT_EQ(r->version, 11);
  EXPECT_TRUE(r->keep_alive);
  EXPECT_EQ(r->body, "");
  EXPECT_EQ(consumed, bytes.size());
}

TEST(HttpParse, PostWithContentLength) {
  StatusOr<HttpRequest> r =
      ParseHttpRequest("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n{\"a\": true}", Limits());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->method, "POST");
  EXPECT_EQ(r->body, "{\"a\": true}");
}

TEST(HttpParse, ChunkedBodyIsDecodedAndTrailersAreNotHeaders) {
  // A trailer must not add or replace a header (RFC 9110 §6.5.1): Beast merges trailer
  // fields into the message, the parser keeps the header section's copy.
  StatusOr<HttpRequest> r = ParseHttpRequest(
      "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nAuthorization: Bearer a\r\n\r\n"
      "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nAuthorization: Bearer b\r\nX-Trailer: t\r\n\r\n",
      Limits());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->body, "hello world");
  EXPECT_EQ(r->Header("authorization"), "Bearer a");
  EXPECT_EQ(r->headers.count("x-trailer"), 0u);
}

TEST(HttpParse, PipelinedRequestsParseOneAfterAnother) {
  const std::string first = "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
  const std::string second = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
  size_t consumed = 0;
  StatusOr<HttpRequest> a = ParseHttpRequest(first + second, Limits(), &consumed);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->body, "abc");
  ASSERT_EQ(consumed, first.size());
  StatusOr<HttpRequest> b = ParseHttpRequest(std::string_view(first + second).substr(consumed), Limits(), &consumed);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->path, "/b");
  EXPECT_EQ(consumed, second.size());
}

TEST(HttpParse, Http10KeepAliveOnlyWhenAsked) {
  StatusOr<HttpRequest> plain = ParseHttpRequest("GET / HTTP/1.0\r\n\r\n", Limits());  // no Host needed in 1.0
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(plain->version, 10);
  EXPECT_FALSE(plain->keep_alive);
  StatusOr<HttpRequest> asked = ParseHttpRequest("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", Limits());
  ASSERT_TRUE(asked.ok());
  EXPECT_TRUE(asked->keep_alive);
  StatusOr<HttpRequest> closing = ParseHttpRequest("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", Limits());
  ASSERT_TRUE(closing.ok());
  EXPECT_FALSE(closing->keep_alive);
}

TEST(HttpParse, RepeatedFieldsAreJoined) {
  StatusOr<HttpRequest> r =
      ParseHttpRequest("GET / HTTP/1.1\r\nHost: x\r\nAccept: a\r\naccept: b\r\n\r\n", Limits());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->Header("accept"), "a, b");
}

TEST(HttpParse, DuplicateContentLengthIsRejected) {
  // Different values: Beast's own check. Equal values and lists: ours (RFC 9112 §6.3
  // lets a server reject them; a proxy in front may have read them differently).
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"), 400);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"), 400);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc"), 400);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc"), 400);
  StatusOr<HttpRequest> r =
      ParseHttpRequest("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", Limits());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("Content-Length"), std::string::npos) << r.status().message();
}

TEST(HttpParse, ContentLengthWithTransferEncodingIsRejected) {
  const char* body = "3\r\nabc\r\n0\r\n\r\n";
  EXPECT_EQ(ErrorStatus(std::string("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                                    "Transfer-Encoding: chunked\r\n\r\n") + body), 400);
  EXPECT_EQ(ErrorStatus(std::string("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                    "Content-Length: 3\r\n\r\n") + body), 400);
  // Beast accepts a non-chunked coding followed by Content-Length; we do not.
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc"), 400);
}

TEST(HttpParse, TransferEncodingMustEndWithChunked) {
  // Without a final chunked the length is unknown: Beast would read no body and take the
  // body's bytes for the next request.
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nGET /x HTTP/1.1\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), 501);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n"), 0);
  // HTTP/1.0 has no transfer codings (RFC 9112 §6.1).
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), 400);
}

TEST(HttpParse, Http11NeedsExactlyOneHost) {
  EXPECT_EQ(ErrorStatus("GET / HTTP/1.1\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
}

TEST(HttpParse, Limits) {
  const std::string big(2000, 'a');
  EXPECT_EQ(ErrorStatus("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + big + "\r\n\r\n", Limits(1024, 100)), 431);
  EXPECT_EQ(ErrorStatus("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + big + "\r\n\r\n", Limits(4096, 100)), 0);
  // A declared body over the limit fails before any body byte is read.
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n", Limits(1024, 100)), 413);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'b'),
                        Limits(1024, 100)),
            0);
  // A chunked body over the limit fails as the chunk that crosses it is announced.
  const std::string chunked = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  EXPECT_EQ(ErrorStatus(chunked + "64\r\n" + std::string(100, 'c') + "\r\n1\r\nd\r\n0\r\n\r\n", Limits(1024, 100)), 413);
  // A framing error wins over the size, whatever the limit.
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\nContent-Length: 101\r\n\r\n",
                        Limits(1024, 100)),
            400);
}

TEST(HttpParse, HeaderLimitIsExactHoweverTheBytesArrive) {
  // Beast's own limit counts from what it has not parsed yet (after the start line, after
  // complete fields), so it alone would let a header a little over the limit through when
  // it arrives at once, and not when it arrives in pieces.
  const std::string head = "GET / HTTP/1.1\r\nHost: x\r\nCookie: " + std::string(1000, 'a') + "\r\n\r\n";
  for (size_t piece : {head.size(), size_t{1}, size_t{7}, size_t{64}}) {
    EXPECT_EQ(PiecesStatus(head, Limits(head.size(), 100), piece), 0) << piece;
    EXPECT_EQ(PiecesStatus(head, Limits(head.size() - 1, 100), piece), 431) << piece;
  }
}

TEST(HttpParse, ChunkLinesAndTrailersAreBounded) {
  // Beast bounds neither: an unterminated quoted chunk extension (which Beast scans past
  // the line's end) or a trailer section without its blank line would be buffered
  // without end. They get the header limit.
  const std::string head = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  const HttpParseLimits limits = Limits(1024, 1 << 20);
  EXPECT_EQ(ErrorStatus(head + "1;a=\"" + std::string(2000, 'x'), limits), 431);
  EXPECT_EQ(PiecesStatus(head + "1;a=\"" + std::string(2000, 'x'), limits, 100), 431);
  EXPECT_EQ(ErrorStatus(head + "1\r\nx\r\n0\r\nX-T: " + std::string(2000, 'y'), limits), 431);
  EXPECT_EQ(PiecesStatus(head + "1\r\nx\r\n0\r\nX-T: " + std::string(2000, 'y'), limits, 100), 431);
  EXPECT_EQ(ErrorStatus(head + "1\r\nx\r\n0\r\nX-T: " + std::string(500, 'y') + "\r\n\r\n", limits), 0);
  // Chunk data itself is consumed as it comes: a long chunk is no chunk line.
  EXPECT_EQ(PiecesStatus(head + "1000\r\n" + std::string(4096, 'z') + "\r\n0\r\n\r\n", limits, 1500), 0);
}

TEST(HttpParse, IncompleteAndMalformed) {
  StatusOr<HttpRequest> head = ParseHttpRequest("GET / HTTP/1.1\r\nHost: x\r\n", Limits());
  ASSERT_FALSE(head.ok());
  EXPECT_EQ(head.status().code(), StatusCode::kDataLoss);
  StatusOr<HttpRequest> body = ParseHttpRequest("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab", Limits());
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(ParseHttpRequest("", Limits()).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(ErrorStatus("\x16\x03\x01 not http at all\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), 400);
}

// The server's way: bytes arrive in pieces; the parser consumes a prefix and the caller
// keeps the rest for the next call.
TEST(HttpParse, ByteByByteFeedingGivesTheSameRequest) {
  const std::string bytes =
      "POST /v1/completions?x=1 HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\nGET /next HTTP/1.1\r\n";
  HttpRequestParser parser(Limits());
  std::string pending;
  size_t fed = 0;
  bool saw_continue = false;
  while (!parser.done() && fed < bytes.size()) {
    pending += bytes[fed++];
    pending.erase(0, parser.Feed(pending));
    ASSERT_FALSE(parser.failed()) << parser.error().ToString();
    saw_continue |= parser.expects_continue();
  }
  ASSERT_TRUE(parser.done());
  EXPECT_TRUE(saw_continue);
  EXPECT_FALSE(parser.expects_continue());  // the body is complete
  HttpRequest r = parser.Release();
  EXPECT_EQ(r.path, "/v1/completions");
  EXPECT_EQ(r.query, "x=1");
  EXPECT_EQ(r.body, "abcdefg");
  EXPECT_EQ(pending + bytes.substr(fed), "GET /next HTTP/1.1\r\n");  // the next request is untouched
}

TEST(HttpParse, ExpectContinueOnlyForHttp11WithPendingBody) {
  HttpRequestParser v11(Limits());
  v11.Feed("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
  EXPECT_TRUE(v11.header_done());
  EXPECT_TRUE(v11.expects_continue());
  HttpRequestParser v10(Limits());
  v10.Feed("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
  EXPECT_TRUE(v10.header_done());
  EXPECT_FALSE(v10.expects_continue());  // RFC 9110 §10.1.1: ignored for HTTP/1.0
}

TEST(HttpParse, ReleaseAfterAnErrorHasTheHeadersSeen) {
  HttpRequestParser parser(Limits());
  parser.Feed("POST /x HTTP/1.1\r\nHost: x\r\nOrigin: http://a.example\r\n"
              "Content-Length: 1\r\nContent-Length: 1\r\n\r\n");
  ASSERT_TRUE(parser.failed());
  EXPECT_EQ(HttpStatusForParseError(parser.error()), 400);
  HttpRequest r = parser.Release();
  EXPECT_EQ(r.path, "/x");
  EXPECT_EQ(r.Header("origin"), "http://a.example");
}

}  // namespace
}  // namespace inferd::server

namespace inferd::server {
namespace {

TEST(HeaderListItems, SplitsAndTrims) {
  using V = std::vector<std::string_view>;
  EXPECT_EQ(HeaderListItems("a, b,c"), (V{"a", "b", "c"}));
  EXPECT_EQ(HeaderListItems(" keep-alive ,\tUpgrade "), (V{"keep-alive", "Upgrade"}));
  EXPECT_EQ(HeaderListItems(""), (V{""}));
  EXPECT_EQ(HeaderListItems("x,,y,"), (V{"x", "", "y", ""}));
  EXPECT_EQ(HeaderListItems("   "), (V{""}));
}

}  // namespace
}  // namespace inferd::server
