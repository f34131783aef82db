// The /v1/ws protocol (docs/websocket.md): many generation requests on one WebSocket.
//
// Client → server, one JSON object per text message:
//   {"id": "c1", "type": "chat.completions" | "completions", "body": {...}}   a request
//   {"id": "c1", "type": "cancel"}                                            aborts c1
// Server → client:
//   {"id": "c1", "type": "chunk", "data": <the chunk object SSE would send>}
//   {"id": "c1", "type": "done", "usage": {...}}      the request ended (usage unless the
//                                                     body set stream_options.include_usage false)
//   {"id": "c1", "type": "error", "error": {...}}     the request ended with this error
//   {"id": null, "type": "error", "error": {...}}     a message that names no request (bad
//                                                     JSON, missing or duplicate id): it ends
//                                                     nothing
// Every accepted request ends with exactly one "done" or "error" for its id. A cancelled
// request ends with "done" carrying "cancelled": true (and the usage so far).
//
// A request is the body of the HTTP route, always streamed: it goes through the same
// handler as POST /v1/(chat/)completions (validation, auth, metrics, timeouts) with a
// WsSession exchange standing in for the HTTP response, which turns each server-sent event
// into a message. Closing the socket aborts every request still running on it.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "server/http.h"

namespace inferd::server {

struct WsSessionLimits {
  size_t max_in_flight = 256;  // requests running at once on one socket; more: error 429
  size_t max_id_bytes = 256;
};

class WsSession : public std::enable_shared_from_this<WsSession> {
 public:
  // Runs one request through the HTTP routes (on the I/O thread).
  using Dispatch = std::function<void(const HttpRequest&, std::shared_ptr<HttpExchange>)>;

  // `upgrade`: the GET /v1/ws request; its headers (Authorization, ...) go with every
  // request. `authorization`: the Authorization value to send ("" keeps the upgrade's),
  // e.g. from ?api_key= for browsers, which cannot set headers on a WebSocket.
  WsSession(const HttpRequest& upgrade, const std::string& authorization, Dispatch dispatch, WsSessionLimits limits);

  // The socket to answer on: call once, before any message.
  void Attach(std::shared_ptr<WebSocket> ws) { ws_ = std::move(ws); }
  void OnMessage(const std::string& text);
  // The socket closed: every request still running is aborted; later output is dropped.
  void OnClose();
  // Closes the socket once nothing is in flight (server shutdown), with 1001 "going away".
  void CloseWhenIdle();

  size_t num_in_flight() const { return in_flight_.size(); }

 private:
  class Exchange;
  friend class Exchange;

  void Send(std::string message);
  void SendProtocolError(const std::string* id, int status, const std::string& message);
  void Ended(const std::string& id);  // the request's last message was sent

  HttpRequest base_;  // headers and remote for every request
  Dispatch dispatch_;
  WsSessionLimits limits_;
  std::shared_ptr<WebSocket> ws_;
  std::unordered_map<std::string, std::shared_ptr<Exchange>> in_flight_;
  bool closed_ = false, close_when_idle_ = false;
};

}  // namespace inferd::server
