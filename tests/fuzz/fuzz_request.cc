// libFuzzer target: a request body (JSON from the network) through everything the server
// does with it before the engine sees it: the bounded JSON parser, the field tables, the
// typed getters, chat rendering (with a request-supplied template: trust is on, with a
// small render budget), tokenization, and the response renderer on synthetic outputs.
// Every input must end in a parsed request or an ApiError; nothing may crash, leak or
// throw anything else.
//
// The first byte picks the route; the rest is the body. The tokenizer and chat template
// are the embedded model's (INFERD_MODEL, else ~/.cache/inferd/models/...).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "engine/chat_prompt.h"
#include "format/gguf.h"
#include "server/openai.h"
#include "tokenizer/tokenizer.h"
#include "util/mmap.h"

namespace {

using namespace inferd;
using namespace inferd::server;

struct Fixture {
  std::unique_ptr<MappedFile> file;
  std::unique_ptr<GgufFile> gguf;
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<ChatPrompter> prompter;
  ModelInfo info;
};

Fixture* Load() {
  auto* f = new Fixture;
  const char* env = std::getenv("INFERD_MODEL");
  std::string path = env && *env ? env : std::string(std::getenv("HOME") ? std::getenv("HOME") : "") +
                                             "/.cache/inferd/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  auto mapped = MappedFile::Open(path);
  if (!mapped.ok()) {
    std::fprintf(stderr, "fuzz_request: cannot open the model %s (set INFERD_MODEL): %s\n", path.c_str(),
                 mapped.status().message().c_str());
    std::abort();
  }
  f->file = std::move(*mapped);
  auto g = GgufFile::Parse(f->file->data(), f->file->size());
  auto t = g.ok() ? Tokenizer::FromGguf(**g) : StatusOr<std::unique_ptr<Tokenizer>>(g.status());
  if (!t.ok()) std::abort();
  f->gguf = std::move(*g);
  f->tok = std::move(*t);
  auto p = ChatPrompter::Create(*f->tok, "");
  if (p.ok()) f->prompter = std::move(*p);
  f->info.served_names = {"m", "other"};
  f->info.max_model_len = 256;
  f->info.vocab_size = f->tok->vocab_size();
  f->info.max_prompt_bytes = PromptByteBound(f->info.max_model_len, 81);
  f->info.trust_request_chat_template = true;
  f->info.chat_budget.max_steps = 200'000;
  f->info.chat_budget.max_alloc_bytes = 8u << 20;
  return f;
}

void Exercise(const Fixture& f, const ParsedRequest& r) {
  ResponseBuilder b(r, "id", 0, *f.tok);
  (void)b.StreamStart();
  std::vector<RequestOutput> outs;
  for (size_t i = 0; i < r.prompts.size(); ++i) {
    RequestOutput ro;
    ro.prompt_token_ids = r.prompts[i].token_ids;
    for (int k = 0; k < r.params.n; ++k) {
      CompletionOutput o;
      o.index = k;
      o.text = r.prompts[i].text.substr(0, 64);
      o.token_ids.assign(r.prompts[i].token_ids.begin(),
                         r.prompts[i].token_ids.begin() + std::min<size_t>(4, r.prompts[i].token_ids.size()));
      o.finish_reason = "length";
      OutputDelta d;
      d.index = k;
      d.new_text = o.text;
      d.new_token_ids = o.token_ids;
      (void)b.StreamDelta(static_cast<int>(i), d);
      ro.outputs.push_back(std::move(o));
    }
    outs.push_back(std::move(ro));
  }
  (void)b.Complete(outs);
  (void)b.StreamEnd(1, 2, 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Fixture* f = Load();
  if (size == 0) return 0;
  const int route = data[0] % 4;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    const ojson j = ParseRequestBody(body);
    switch (route) {
      case 0:
      case 1: {
        ParsedRequest r = ParseGenerateRequest(j, route == 1, f->info, *f->tok, f->prompter.get());
        Exercise(*f, r);
        break;
      }
      case 2: (void)TokenizeResponse(j, f->info, *f->tok, f->prompter.get()); break;
      default: (void)DetokenizeResponse(j, f->info, *f->tok); break;
    }
  } catch (const ApiError& e) {
    if (e.status != 400 && e.status != 404) std::abort();  // only client errors come from a body
  }
  return 0;
}
