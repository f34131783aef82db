// Between the gRPC messages (proto/inferd/v1/generation.proto) and the OpenAI JSON of the HTTP
// routes: a call's request message becomes a route and a JSON body; the route's response
// body, stream chunks and error statuses become response messages and gRPC statuses. The
// messages are read and written with util/protowire.h (no libprotobuf: docs/grpc.md).
// Pure functions, for grpc_frontend.cc and its tests.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <grpcpp/support/status.h>

#include "server/openai_error.h"

namespace inferd::server::grpc_convert {

// A synthesized HTTP request: the route and its JSON body; or why the message is malformed
// (a field this server does not know, a wrong wire type, bytes that do not parse), which the
// call answers INVALID_ARGUMENT. The fields themselves are the route's to validate.
struct HttpCall {
  std::string path;
  std::string body;
  std::string error;
};

// inferd.v1.GenerateRequest: POST /v1/completions for a prompt or prompt_token_ids,
// /v1/chat/completions for messages. Token ids are always returned (return_token_ids), and
// logprob alternatives by id (return_tokens_as_token_ids); streams ask for the usage chunk.
HttpCall GenerateCall(std::string_view message, bool stream);
// inferd.v1.TokenizeRequest: POST /tokenize.
HttpCall TokenizeCall(std::string_view message);
// inferd.v1.HealthRequest (no fields): GET /health.
HttpCall HealthCall(std::string_view message);

// The gRPC code for an HTTP status (400 INVALID_ARGUMENT, 401 UNAUTHENTICATED, ...).
grpc::StatusCode CodeFor(int http_status);
// The status for an error response: the code for `http_status`, the error body's message.
grpc::Status StatusFor(int http_status, std::string_view body);

struct TokenLogprob {
  int32_t token_id = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;  // (token id, logprob), most likely first
};

struct Usage {
  int64_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
};

// inferd.v1.GenerateResponse and GenerateStreamResponse (the same fields and numbers).
struct Completion {
  std::string id, text;
  std::vector<int32_t> token_ids;
  std::vector<TokenLogprob> logprobs;
  std::string finish_reason;
  std::optional<Usage> usage;
  std::string reasoning;

  // Nothing a client needs (the opening chunk of a stream: role, prompt ids).
  bool Empty() const;
  std::string Encode() const;
};

// A completion response body (either route); nullopt when it is not one.
std::optional<Completion> CompletionOf(const ojson& body);
// Adds what one stream chunk carries (its choice's text, token ids, logprobs and finish
// reason; a usage chunk's usage) to `out`.
void AddChunk(const ojson& chunk, Completion* out);
// inferd.v1.TokenizeResponse for a POST /tokenize body; nullopt when it is not one.
std::optional<std::string> TokenizeResponseOf(const ojson& body);
// inferd.v1.HealthResponse: SERVING (1), or NOT_SERVING (2) with the reason.
std::string HealthResponse(bool serving, std::string_view message);

// The services this server lists through reflection.
extern const char* const kServiceNames[4];
// grpc.reflection.v1 (and v1alpha, the same messages) ServerReflectionResponse for one
// ServerReflectionRequest. `descriptor_set`: protoc's FileDescriptorSet of
// proto/inferd/v1/generation.proto, whose symbols (inferd.v1.*) and file name it serves.
std::string ReflectionResponse(std::string_view request, std::string_view descriptor_set);

}  // namespace inferd::server::grpc_convert
