// inferd perplexity (llama-perplexity's method) and inferd logits (teacher-forced logits).
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "cli/common.h"
#include "format/hf_config.h"

namespace inferd::cli {
namespace {

struct PerplexityFlags {
  ModelFlags model;
  std::string file;
  int64_t ctx = 512;
  int64_t chunks = -1;
  bool json = false;
};

// -log softmax(logits)[target], in double.
double Nll(const float* logits, int64_t vocab, int32_t target) {
  float max_logit = logits[0];
  for (int64_t i = 1; i < vocab; ++i) max_logit = std::max(max_logit, logits[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - max_logit);
  return std::log(sum) - (static_cast<double>(logits[target]) - max_logit);
}

// Like llama-perplexity: tokenize the whole text (BOS when the model adds one), split into
// non-overlapping chunks of ctx tokens, put BOS first in each chunk when the model adds
// one, and score the predictions of the second half of each chunk.
void RunPerplexity(PerplexityFlags& f) {
  auto text = ReadFileToString(f.file);
  if (!text.ok()) return Fail(text.status());
  if (f.ctx < 4) return Fail(InvalidArgument("--ctx must be at least 4"));
  if (f.model.engine.max_model_len == 0) f.model.engine.max_model_len = f.ctx;
  f.model.engine.max_num_batched_tokens = std::max<int64_t>(f.model.engine.max_num_batched_tokens, f.ctx);
  auto engine_or = EngineFromFlags(f.model);
  if (!engine_or.ok()) return Fail(engine_or.status());
  Engine& engine = **engine_or;
  const Tokenizer& tok = engine.tokenizer();
  std::vector<int32_t> tokens = tok.Encode(*text, /*add_special=*/true, /*parse_special=*/false);
  const bool add_bos = tok.add_bos() && tok.bos_id() >= 0;
  int64_t n_chunks = static_cast<int64_t>(tokens.size()) / f.ctx;
  if (f.chunks > 0) n_chunks = std::min(n_chunks, f.chunks);
  if (n_chunks == 0) {
    return Fail(InvalidArgument(fmt::format("the text has {} tokens, fewer than --ctx {}", tokens.size(), f.ctx)));
  }
  const int64_t vocab = engine.vocab_size(), first = f.ctx / 2;
  std::vector<float> logits(static_cast<size_t>(f.ctx * vocab));
  double nll = 0.0;
  int64_t count = 0;
  for (int64_t c = 0; c < n_chunks; ++c) {
    std::vector<int32_t> chunk(tokens.begin() + c * f.ctx, tokens.begin() + (c + 1) * f.ctx);
    if (add_bos) chunk[0] = tok.bos_id();
    Status st = engine.ScoreTokens(chunk, logits.data());
    if (!st.ok()) return Fail(st);
    for (int64_t j = first; j < f.ctx - 1; ++j) {
      nll += Nll(&logits[j * vocab], vocab, tokens[c * f.ctx + j + 1]);
      ++count;
    }
    if (!f.json) std::fprintf(stderr, "[%lld] %.4f\n", static_cast<long long>(c + 1), std::exp(nll / count));
  }
  const double ppl = std::exp(nll / count);
  if (f.json) std::printf("%s\n", nlohmann::json({{"perplexity", ppl}, {"tokens_scored", count}}).dump().c_str());
  else std::printf("perplexity: %.4f over %lld tokens (%lld chunks of %lld)\n", ppl, static_cast<long long>(count),
                   static_cast<long long>(n_chunks), static_cast<long long>(f.ctx));
}

struct LogitsFlags {
  ModelFlags model;
  std::string ids_file;
  std::string npy;
  bool json = false;
};

Status WriteNpy(const std::string& path, const float* data, int64_t rows, int64_t cols) {
  std::ofstream out(path, std::ios::binary);
  if (!out) return InvalidArgument("cannot write '" + path + "'");
  std::string header = fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", rows, cols);
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.write("\x93NUMPY\x01\x00", 8);
  out.write(reinterpret_cast<const char*>(&len), 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(sizeof(float) * rows * cols));
  return out ? Status::OK() : Internal("write failed for '" + path + "'");
}

void RunLogits(LogitsFlags& f) {
  auto text = ReadFileToString(f.ids_file);
  if (!text.ok()) return Fail(text.status());
  auto j = ParseJson(*text, f.ids_file);
  if (!j.ok()) return Fail(j.status());
  std::vector<int32_t> ids;
  try {
    ids = j->get<std::vector<int32_t>>();
  } catch (const nlohmann::json::exception&) {
    return Fail(InvalidArgument(f.ids_file + ": expected a JSON array of token ids"));
  }
  if (ids.empty()) return Fail(InvalidArgument(f.ids_file + ": no token ids"));
  // The sequence's length by default (a small cache); with LongRoPE this also picks the factor
  // set for that length, as transformers does for one sequence (ModelConfig::LongRopeFactors).
  if (f.model.engine.max_model_len == 0) f.model.engine.max_model_len = static_cast<int64_t>(ids.size());
  auto engine_or = EngineFromFlags(f.model);
  if (!engine_or.ok()) return Fail(engine_or.status());
  Engine& engine = **engine_or;
  const int64_t vocab = engine.vocab_size(), n = static_cast<int64_t>(ids.size());
  std::vector<float> logits(static_cast<size_t>(n * vocab));
  Status st = engine.ScoreTokens(ids, logits.data());
  if (!st.ok()) return Fail(st);
  if (!f.npy.empty()) {
    st = WriteNpy(f.npy, logits.data(), n, vocab);
    if (!st.ok()) return Fail(st);
  }
  std::vector<int32_t> argmax(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const float* row = &logits[i * vocab];
    argmax[i] = static_cast<int32_t>(std::max_element(row, row + vocab) - row);
  }
  if (f.json) std::printf("%s\n", nlohmann::json({{"argmax", argmax}}).dump().c_str());
  else for (int64_t i = 0; i < n; ++i) std::printf("%lld %d\n", static_cast<long long>(i), argmax[i]);
}

}  // namespace

void AddPerplexityCommands(CLI::App& app) {
  auto p = std::make_shared<PerplexityFlags>();
  CLI::App* cmd = app.add_subcommand("perplexity", "perplexity of a text file (llama-perplexity's method)");
  p->model.Add(cmd, /*engine_flags=*/true);
  cmd->add_option("--file,-f", p->file, "text file")->required();
  cmd->add_option("--ctx,-c", p->ctx, "tokens per chunk")->capture_default_str();
  cmd->add_option("--chunks", p->chunks, "maximum chunks (-1 = all)")->capture_default_str();
  cmd->add_flag("--json", p->json, "print {\"perplexity\", \"tokens_scored\"}");
  cmd->callback([p] { RunPerplexity(*p); });

  auto l = std::make_shared<LogitsFlags>();
  CLI::App* lc = app.add_subcommand("logits", "teacher-forced logits of a token sequence");
  l->model.Add(lc, /*engine_flags=*/true);
  lc->add_option("--token-ids-file", l->ids_file, "JSON array of token ids")->required();
  lc->add_option("--npy", l->npy, "write float32 logits [n, vocab] to this .npy file");
  lc->add_flag("--json", l->json, "print {\"argmax\": [...]}");
  lc->callback([l] { RunLogits(*l); });
}

}  // namespace inferd::cli
