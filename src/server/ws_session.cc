// The /v1/ws protocol (ws_session.h, docs/websocket.md).
#include "server/ws_session.h"

#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "server/openai.h"

namespace inferd::server {
namespace {

std::string Message(const std::string* id, std::string_view type, std::string_view key, std::string_view value) {
  std::string out = "{\"id\":";
  out += id ? Dump(ojson(*id)) : "null";
  out += ",\"type\":\"";
  out += type;
  out += "\"";
  if (!key.empty()) {
    out += ",\"";
    out += key;
    out += "\":";
    out += value;
  }
  out += "}";
  return out;
}

}  // namespace

// One request's response, turned into messages. Called on the I/O thread by the route.
class WsSession::Exchange final : public RelayExchange {
 public:
  Exchange(std::weak_ptr<WsSession> session, std::string id, bool want_usage)
      : session_(std::move(session)), id_(std::move(id)), want_usage_(want_usage) {}

  void Respond(int status, std::string content_type, std::string body, HttpHeaders) override {
    if (ended_ || gone_) return;
    if (status == 200) {  // not streamed (the routes always stream here): one chunk, then done
      Send(Message(&id_, "chunk", "data", body));
      return Finish(DoneMessage());
    }
    Finish(Message(&id_, "error", "error", Dump(ErrorObjectOf(status, body))));
  }
  void Write(std::string data) override {
    if (ended_ || gone_) return;
    std::vector<std::string_view> events = SsePayloads(data);
    for (size_t i = 0; i < events.size() && !ended_; ++i) {
      std::string_view e = events[i];
      if (e == "[DONE]") {
        Finish(DoneMessage());
      } else if (e.starts_with("{\"error\"")) {  // ErrorEvent: the stream failed
        Finish(Message(&id_, "error", "error", Dump(ErrorObjectOf(500, e))));
      } else if (want_usage_ && i + 1 < events.size() && events[i + 1] == "[DONE]" && TakeUsage(e)) {
        // the usage chunk (StreamEnd) goes into "done"
      } else {
        Send(Message(&id_, "chunk", "data", e));
      }
    }
  }
  void End() override {
    if (!ended_ && !gone_) Finish(DoneMessage());
  }
  size_t pending_bytes() const override {
    auto s = session_.lock();
    return s && s->ws_ ? s->ws_->pending_bytes() : 0;
  }

  // The client cancelled: abort the engine requests; the route still ends the response.
  void Cancel() {
    cancelled_ = true;
    Abort();
  }

 private:
  std::string DoneMessage() const {
    std::string out = Message(&id_, "done", usage_.empty() ? "" : "usage", usage_);
    if (cancelled_) out.insert(out.size() - 1, ",\"cancelled\":true");
    return out;
  }
  bool TakeUsage(std::string_view chunk) {
    ojson c = ojson::parse(chunk, nullptr, false);
    if (!c.is_object() || !c.contains("usage") || !c["usage"].is_object() || !c.value("choices", ojson::array()).empty()) {
      return false;
    }
    usage_ = Dump(c["usage"]);
    return true;
  }
  void Send(std::string message) {
    if (auto s = session_.lock()) s->Send(std::move(message));
  }
  void Finish(std::string last) {
    ended_ = true;
    if (auto s = session_.lock()) {
      s->Send(std::move(last));
      s->Ended(id_);
    }
  }

  std::weak_ptr<WsSession> session_;
  const std::string id_;
  const bool want_usage_;  // include_usage is on: the usage chunk becomes "done"'s usage
  std::string usage_;
  bool ended_ = false, cancelled_ = false;
};

WsSession::WsSession(const HttpRequest& upgrade, const std::string& authorization, Dispatch dispatch,
                     WsSessionLimits limits)
    : dispatch_(std::move(dispatch)), limits_(limits) {
  base_.method = "POST";
  base_.headers = upgrade.headers;
  // The upgrade's own headers describe the upgrade, not the requests.
  for (const char* h : {"upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
                        "sec-websocket-extensions", "sec-websocket-protocol", "content-length", "transfer-encoding"}) {
    base_.headers.erase(h);
  }
  if (!authorization.empty()) base_.headers["authorization"] = authorization;
  base_.headers["content-type"] = "application/json";
  base_.remote = upgrade.remote;
}

void WsSession::Send(std::string message) {
  if (!closed_ && ws_) ws_->Send(std::move(message));
}

void WsSession::SendProtocolError(const std::string* id, int status, const std::string& message) {
  Send(Message(id, "error", "error", Dump(ErrorJson(status, message))));
}

void WsSession::Ended(const std::string& id) {
  in_flight_.erase(id);
  if (close_when_idle_ && in_flight_.empty() && ws_) ws_->Close(1001, "the server is shutting down");
}

void WsSession::OnMessage(const std::string& text) {
  if (closed_) return;
  ojson msg;
  try {
    msg = ParseRequestBody(text);
  } catch (const ApiError& e) {
    return SendProtocolError(nullptr, 400, e.message);
  }
  for (const auto& [key, value] : msg.items()) {
    if (key != "id" && key != "type" && key != "body") {
      return SendProtocolError(nullptr, 400, fmt::format("unknown field '{}' in a message: expected id, type, body", key));
    }
  }
  if (!msg.contains("id") || !msg["id"].is_string()) {
    return SendProtocolError(nullptr, 400, "every message needs an 'id' string");
  }
  const std::string id = msg["id"].get<std::string>();
  if (id.empty() || id.size() > limits_.max_id_bytes) {
    return SendProtocolError(nullptr, 400, fmt::format("'id' must be 1 to {} bytes", limits_.max_id_bytes));
  }
  const std::string type = msg.contains("type") && msg["type"].is_string() ? msg["type"].get<std::string>() : "";
  if (type == "cancel") {
    if (msg.contains("body")) return SendProtocolError(nullptr, 400, "a cancel message has no 'body'");
    // Cancelling a request that already ended (or never was) does nothing: the two cross.
    if (auto it = in_flight_.find(id); it != in_flight_.end()) it->second->Cancel();
    return;
  }
  std::string path;
  if (type == "chat.completions") path = "/v1/chat/completions";
  if (type == "completions") path = "/v1/completions";
  if (path.empty()) {
    return SendProtocolError(nullptr, 400,
                             fmt::format("message '{}': 'type' must be \"chat.completions\", \"completions\" or \"cancel\"",
                                         id));
  }
  if (in_flight_.count(id)) {
    return SendProtocolError(nullptr, 400, fmt::format("id '{}' is already in flight on this socket", id));
  }
  if (!msg.contains("body") || !msg["body"].is_object()) {
    return SendProtocolError(&id, 400, "a request message needs a 'body' object (the HTTP route's request body)");
  }
  if (in_flight_.size() >= limits_.max_in_flight) {
    return SendProtocolError(&id, 429, fmt::format("{} requests are already in flight on this socket", in_flight_.size()));
  }
  ojson& body = msg["body"];
  if (body.contains("stream") && body["stream"] != true) {
    return SendProtocolError(&id, 400, "WebSocket requests always stream: leave out 'stream' or set it to true");
  }
  body["stream"] = true;
  // "done" carries the usage unless the client turned it off.
  bool want_usage = true;
  if (body.contains("stream_options") && body["stream_options"].is_object()) {
    ojson& so = body["stream_options"];
    if (so.contains("include_usage") && so["include_usage"].is_boolean()) want_usage = so["include_usage"].get<bool>();
    if (!so.contains("include_usage")) so["include_usage"] = true;
  } else if (!body.contains("stream_options") || body["stream_options"].is_null()) {
    body["stream_options"] = {{"include_usage", true}};
  }  // else not an object: the route answers with its own 400
  HttpRequest r = base_;
  r.path = path;
  r.body = Dump(body);
  auto ex = std::make_shared<Exchange>(weak_from_this(), id, want_usage);
  in_flight_[id] = ex;
  dispatch_(r, ex);
}

void WsSession::OnClose() {
  closed_ = true;
  auto running = std::move(in_flight_);
  in_flight_.clear();
  for (auto& [id, ex] : running) ex->Gone();
  ws_.reset();  // the socket's callbacks hold this session: no cycle left behind
}

void WsSession::CloseWhenIdle() {
  close_when_idle_ = true;
  if (in_flight_.empty() && ws_) ws_->Close(1001, "the server is shutting down");
}

}  // namespace inferd::server
