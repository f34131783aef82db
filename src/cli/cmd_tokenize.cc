// inferd tokenize: text → token ids, as llama-tokenize does (no BOS, no special parsing
// unless asked).
#include <cstdio>
#include <fstream>

#include "cli/common.h"
#include "format/hf_config.h"

namespace inferd::cli {
namespace {

struct TokenizeFlags {
  ModelFlags model;
  bool add_special = false, parse_special = false, json = false;
  std::string file;
  std::string text;
};

void Print(const std::vector<int32_t>& ids, const Tokenizer& tok, bool json) {
  if (json) {
    std::printf("%s\n", nlohmann::json({{"tokens", ids}}).dump().c_str());
    return;
  }
  for (int32_t id : ids) std::printf("%6d -> '%s'\n", id, tok.TokenToPiece(id, false).c_str());
}

void Run(TokenizeFlags& f) {
  auto model = LoadFromFlags(f.model);
  if (!model.ok()) return Fail(model.status());
  if (!(*model)->tokenizer) return Fail(InvalidArgument("the model has no tokenizer"));
  const Tokenizer& tok = *(*model)->tokenizer;
  if (f.file.empty()) {
    Print(tok.Encode(f.text, f.add_special, f.parse_special), tok, f.json);
    return;
  }
  std::ifstream in(f.file);
  if (!in) return Fail(NotFound("cannot open --file '" + f.file + "'"));
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    auto j = ParseJson(line, f.file + " line " + std::to_string(line_no));
    if (!j.ok()) return Fail(j.status());
    if (!j->is_string()) return Fail(InvalidArgument(f.file + " line " + std::to_string(line_no) + ": expected a JSON string"));
    Print(tok.Encode(j->get<std::string>(), f.add_special, f.parse_special), tok, f.json);
  }
}

}  // namespace

void AddTokenizeCommand(CLI::App& app) {
  auto f = std::make_shared<TokenizeFlags>();
  CLI::App* cmd = app.add_subcommand("tokenize", "print the token ids of a text");
  f->model.Add(cmd, /*engine_flags=*/false);
  cmd->add_flag("--add-special-tokens", f->add_special, "add BOS/EOS as the model does");
  cmd->add_flag("--parse-special", f->parse_special, "parse special-token text such as <|im_start|>");
  cmd->add_flag("--json", f->json, "print {\"tokens\": [...]}");
  cmd->add_option("--file", f->file, "JSONL file of strings, one result line each");
  cmd->add_option("text", f->text, "text to tokenize");
  cmd->callback([f] { Run(*f); });
}

}  // namespace inferd::cli
