// server/grpc_convert.h: the messages of proto/inferd/v1/generation.proto as Python's protobuf
// writes them (the hex vectors were made with protoc's Python code), read into the routes' JSON;
// the routes' JSON written back as the bytes protobuf would write.
#include "server/grpc_convert.h"

#include <gtest/gtest.h>

#include "../hex_test_util.h"

#include <string>

#include "util/protowire.h"

namespace inferd::server::grpc_convert {
namespace {

using inferd::testing::Hex;
using inferd::testing::Unhex;

TEST(GrpcConvert, GenerateRequestBecomesACompletionsBody) {
  // GenerateRequest(model='smollm2', prompt='Hello', sampling=SamplingParams(max_tokens=16,
  // temperature=0.7, stop=['\n','END'], stop_token_ids=[2,7], seed=-5, logprobs=2,
  // ignore_eos=True, skip_special_tokens=False), request_id='r1', priority=-3)
  const std::string msg = Unhex(
      "0a07736d6f6c6c6d32120548656c6c6f2a250810153333333f30fbffffffffffffffff013a010a3a03454e4442020207680178008001"
      "023202723138fdffffffffffffffff01");
  HttpCall call = GenerateCall(msg, /*stream=*/false);
  ASSERT_EQ(call.error, "");
  EXPECT_EQ(call.path, "/v1/completions");
  const ojson body = ojson::parse(call.body);
  EXPECT_EQ(body["model"], "smollm2");
  EXPECT_EQ(body["prompt"], "Hello");
  EXPECT_EQ(body["max_tokens"], 16);
  EXPECT_EQ(body["temperature"].get<double>(), 0.7);  // the float's shortest decimal
  EXPECT_EQ(body["stop"], ojson({"\n", "END"}));
  EXPECT_EQ(body["stop_token_ids"], ojson({2, 7}));
  EXPECT_EQ(body["seed"], -5);
  EXPECT_EQ(body["logprobs"], 2);
  EXPECT_EQ(body["return_tokens_as_token_ids"], true);
  EXPECT_EQ(body["ignore_eos"], true);
  EXPECT_EQ(body["skip_special_tokens"], false);  // optional: present though false
  EXPECT_EQ(body["request_id"], "r1");
  EXPECT_EQ(body["priority"], -3);
  EXPECT_EQ(body["return_token_ids"], true);
  EXPECT_FALSE(body.contains("stream"));

  const ojson streamed = ojson::parse(GenerateCall(msg, /*stream=*/true).body);
  EXPECT_EQ(streamed["stream"], true);
  EXPECT_EQ(streamed["stream_options"]["include_usage"], true);
}

TEST(GrpcConvert, MessagesGoToTheChatRoute) {
  // messages=[system 'Be brief.', user 'Hi'], sampling=SamplingParams(logprobs=0)
  HttpCall call = GenerateCall(Unhex("22210a130a0673797374656d120942652062726965662e0a0a0a0475736572120248692a03800100"), false);
  ASSERT_EQ(call.error, "");
  EXPECT_EQ(call.path, "/v1/chat/completions");
  const ojson body = ojson::parse(call.body);
  EXPECT_EQ(body["messages"], ojson::parse(R"([{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}])"));
  EXPECT_EQ(body["logprobs"], true);  // chat's shape of logprobs=0
  EXPECT_EQ(body["top_logprobs"], 0);
  EXPECT_FALSE(body.contains("prompt"));

  // prompt_token_ids=TokenIds(ids=[1, 150, 70000]), packed
  const ojson ids = ojson::parse(GenerateCall(Unhex("1a080a06019601f0a204"), false).body);
  EXPECT_EQ(ids["prompt"], ojson({1, 150, 70000}));
}

TEST(GrpcConvert, TheLastInputOfTheOneofWins) {
  protowire::Writer w;
  w.Bytes(2, "text");
  protowire::Writer ids, list;
  const int32_t v[] = {5};
  ids.PackedInt32(1, v);
  w.Bytes(3, ids.data());
  ojson body = ojson::parse(GenerateCall(w.data(), false).body);
  EXPECT_EQ(body["prompt"], ojson({5}));
  w.Bytes(2, "again");
  body = ojson::parse(GenerateCall(w.data(), false).body);
  EXPECT_EQ(body["prompt"], "again");
}

TEST(GrpcConvert, UnknownFieldsAndBadBytesAreErrors) {
  protowire::Writer w;
  w.Bytes(2, "x");
  w.Int(99, 1);
  EXPECT_NE(GenerateCall(w.data(), false).error.find("field number 99"), std::string::npos);
  protowire::Writer s, outer;
  s.Int(42, 1);  // not a SamplingParams field
  outer.Bytes(5, s.data());
  EXPECT_NE(GenerateCall(outer.data(), false).error.find("inferd.v1.SamplingParams"), std::string::npos);
  protowire::Writer wrong;
  wrong.Int(2, 7);  // prompt as a varint
  EXPECT_NE(GenerateCall(wrong.data(), false).error.find("wrong wire type"), std::string::npos);
  EXPECT_NE(GenerateCall(Unhex("1205ab"), false).error, "");
  EXPECT_NE(HealthCall(Unhex("0801")).error, "");  // HealthRequest has no fields
  EXPECT_EQ(HealthCall("").error, "");
  EXPECT_EQ(HealthCall("").path, "/health");
}

TEST(GrpcConvert, TokenizeRequest) {
  // TokenizeRequest(prompt='hi', add_special_tokens=False)
  HttpCall call = TokenizeCall(Unhex("120268692000"));
  ASSERT_EQ(call.error, "");
  EXPECT_EQ(call.path, "/tokenize");
  EXPECT_EQ(ojson::parse(call.body), ojson::parse(R"({"prompt":"hi","add_special_tokens":false})"));
}

TEST(GrpcConvert, ResponsesAreWhatProtobufWrites) {
  // GenerateStreamResponse(id='cmpl-1', text=' Paris', token_ids=[7042, 30],
  //   logprobs=[TokenLogprob(token_id=7042, logprob=-0.25, top_logprobs=[(7042, -0.25), (0, -1.5)])],
  //   finish_reason='length', usage=Usage(prompt_tokens=5, completion_tokens=2))
  const ojson chunk = ojson::parse(R"({"id":"cmpl-1","choices":[{"index":0,"text":" Paris","finish_reason":"length",
      "token_ids":[7042,30],"logprobs":{"tokens":["token_id:7042"],"token_logprobs":[-0.25],
      "top_logprobs":[{"token_id:7042":-0.25,"token_id:0":-1.5}]}}]})");
  Completion c;
  AddChunk(chunk, &c);
  AddChunk(ojson::parse(R"({"id":"cmpl-1","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,
      "prompt_tokens_details":{"cached_tokens":0}}})"), &c);
  EXPECT_EQ(Hex(c.Encode()),
            "0a06636d706c2d3112062050617269731a0382371e221908823715000080be1a0808823715000080be1a05150000c0bf2a066c656e67"
            "7468320408051002");

  EXPECT_EQ(Hex(*TokenizeResponseOf(ojson::parse(R"({"count":3,"max_model_len":2048,"tokens":[1,2,300]})"))),
            "0a040102ac021003188010");
  EXPECT_EQ(Hex(HealthResponse(false, "loading")), "080212076c6f6164696e67");
  EXPECT_FALSE(TokenizeResponseOf(ojson::parse(R"({"error":{}})")));
}

TEST(GrpcConvert, ChatResponseAndChatLogprobs) {
  const ojson body = ojson::parse(R"({"id":"chatcmpl-1","choices":[{"index":0,"message":{"role":"assistant",
      "content":"Hi!","reasoning_content":"think"},"finish_reason":"stop","token_ids":[10,11],
      "logprobs":{"content":[{"token":"token_id:10","logprob":-0.5,"top_logprobs":[{"token":"token_id:10","logprob":-0.5}]},
      {"token":"token_id:11","logprob":-0.1,"top_logprobs":[]}]}}],
      "usage":{"prompt_tokens":7,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":4}}})");
  std::optional<Completion> c = CompletionOf(body);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->id, "chatcmpl-1");
  EXPECT_EQ(c->text, "Hi!");
  EXPECT_EQ(c->reasoning, "think");
  EXPECT_EQ(c->token_ids, (std::vector<int32_t>{10, 11}));
  ASSERT_EQ(c->logprobs.size(), 2u);
  EXPECT_EQ(c->logprobs[0].token_id, 10);
  EXPECT_EQ(c->logprobs[0].top.size(), 1u);
  EXPECT_EQ(c->logprobs[1].logprob, -0.1f);
  EXPECT_EQ(c->finish_reason, "stop");
  ASSERT_TRUE(c->usage);
  EXPECT_EQ(c->usage->cached_tokens, 4);
  EXPECT_FALSE(CompletionOf(ojson::parse(R"({"choices":[]})")));
}

TEST(GrpcConvert, StatusCodes) {
  EXPECT_EQ(CodeFor(400), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(CodeFor(401), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(CodeFor(404), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(CodeFor(408), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(CodeFor(413), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(CodeFor(429), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(CodeFor(503), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(CodeFor(500), grpc::StatusCode::INTERNAL);
  grpc::Status s = StatusFor(400, R"({"error":{"message":"'temperature' must be >= 0","type":"BadRequestError"}})");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "'temperature' must be >= 0");
  EXPECT_EQ(StatusFor(502, "upstream said no").error_message(), "upstream said no");
}

TEST(GrpcConvert, Reflection) {
  // A FileDescriptorSet holding one FileDescriptorProto named "inferd/v1/generation.proto".
  protowire::Writer file, set;
  file.Bytes(1, "inferd/v1/generation.proto");
  file.Bytes(2, "inferd.v1");
  set.Bytes(1, file.data());
  auto answer = [&](uint32_t field, std::string_view arg) {
    protowire::Writer req;
    req.Bytes(field, arg);
    ojson out = ojson::object();
    const std::string resp = ReflectionResponse(req.data(), set.data());
    protowire::Reader r(resp);
    protowire::Field f;
    while (r.Next(&f)) out[std::to_string(f.number)] = std::string(f.bytes);
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(out["2"], req.data());  // original_request
    return out;
  };
  ojson list = answer(7, "");
  ASSERT_TRUE(list.contains("6"));
  EXPECT_NE(list["6"].get<std::string>().find("inferd.v1.Generation"), std::string::npos);
  EXPECT_NE(list["6"].get<std::string>().find("grpc.health.v1.Health"), std::string::npos);
  ojson by_symbol = answer(4, "inferd.v1.Generation");
  protowire::Writer files;
  files.Bytes(1, file.data());
  EXPECT_EQ(by_symbol["4"], files.data());
  EXPECT_EQ(answer(3, "inferd/v1/generation.proto")["4"], files.data());
  ojson missing = answer(4, "other.Service");
  EXPECT_FALSE(missing.contains("4"));
  EXPECT_TRUE(missing.contains("7"));  // error_response
}

}  // namespace
}  // namespace inferd::server::grpc_convert
