// Hugging Face directories: tokenizer.json (+ tokenizer_config.json) or tokenizer.model
// through libsentencepiece; and the reverse, WriteHfFiles.
#include <sentencepiece_processor.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"
#include "util/json.h"

namespace inferd {

namespace fs = std::filesystem;
using nlohmann::json;

namespace tok {
namespace {


StatusOr<json> ReadJson(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("tokenizer: cannot open " + path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseJson(ss.str(), "tokenizer: " + path.string());
}

Status WriteText(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return NotFound("tokenizer: cannot write " + path.string());
  out << text;
  out.close();
  if (!out) return DataLoss("tokenizer: write to " + path.string() + " failed");
  return Status::OK();
}

// bos_token and friends: a string or {"content": "..."}.
std::string TokenString(const json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    auto c = it->find("content");
    if (c != it->end() && c->is_string()) return c->get<std::string>();
  }
  return "";
}

// chat_template: a string, or a list of {"name", "template"} (the "default" one is taken).
std::string ChatTemplate(const json& cfg) {
  auto it = cfg.find("chat_template");
  if (it == cfg.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    std::string first;
    for (const json& e : *it) {
      if (!e.is_object() || !e.contains("template") || !e["template"].is_string()) continue;
      if (first.empty()) first = e["template"].get<std::string>();
      if (e.value("name", "") == "default") return e["template"].get<std::string>();
    }
    return first;
  }
  return "";
}

// Visits a pre_tokenizer / normalizer / decoder node and its Sequence children.
template <typename F>
void VisitNodes(const json& node, const char* list_key, F&& f) {
  if (!node.is_object()) return;
  if (node.value("type", "") == "Sequence") {
    auto it = node.find(list_key);
    if (it != node.end() && it->is_array()) {
      for (const json& child : *it) VisitNodes(child, list_key, f);
    }
    return;
  }
  f(node);
}

std::string QuoteRegex(std::string_view s) { return "\\Q" + std::string(s) + "\\E"; }

struct JsonBpe {
  bool byte_level = false;
  std::vector<std::string> patterns;
};

Status CollectPreTokenizer(const json& j, JsonBpe* out) {
  Status status;
  auto visit = [&](const json& node) {
    const std::string type = node.value("type", "");
    if (type == "ByteLevel") {
      out->byte_level = true;
      if (node.value("use_regex", true)) out->patterns.push_back(Gpt2Pattern());
    } else if (type == "Split") {
      const json& pat = node.contains("pattern") ? node["pattern"] : json();
      if (pat.contains("Regex") && pat["Regex"].is_string()) {
        out->patterns.push_back(pat["Regex"].get<std::string>());
      } else if (pat.contains("String") && pat["String"].is_string()) {
        out->patterns.push_back(QuoteRegex(pat["String"].get<std::string>()));
      }
      const std::string behavior = node.value("behavior", "Isolated");
      if (behavior != "Isolated" || node.value("invert", false)) {
        status = Unimplemented("tokenizer: tokenizer.json Split behavior '" + behavior +
                               "' (invert " + (node.value("invert", false) ? "true" : "false") +
                               ") is not supported; only Isolated");
      }
    } else if (type == "Digits") {
      out->patterns.push_back(node.value("individual_digits", false) ? "\\p{N}" : "\\p{N}+");
    } else if (type == "Metaspace") {
      // SentencePiece-style; handled with the normalizer.
    } else if (!type.empty()) {
      status = Unimplemented("tokenizer: tokenizer.json pre_tokenizer '" + type +
                             "' is not supported (supported: ByteLevel, Split, Digits, Metaspace)");
    }
  };
  if (j.contains("pre_tokenizer")) VisitNodes(j["pre_tokenizer"], "pretokenizers", visit);
  if (j.contains("decoder")) {
    VisitNodes(j["decoder"], "decoders", [&](const json& node) {
      if (node.value("type", "") == "ByteLevel") out->byte_level = true;
    });
  }
  return status;
}

// Space handling of a SentencePiece-style tokenizer.json: the legacy normalizer
// (Prepend "▁" + Replace " " -> "▁") or the Metaspace pre-tokenizer.
void SpaceHandling(const json& j, bool* add_prefix, bool* first_only) {
  *add_prefix = false;
  *first_only = false;
  if (j.contains("normalizer")) {
    VisitNodes(j["normalizer"], "normalizers", [&](const json& node) {
      if (node.value("type", "") == "Prepend" && node.value("prepend", "") == kSpaceMarker) {
        *add_prefix = true;
      }
    });
  }
  if (j.contains("pre_tokenizer")) {
    VisitNodes(j["pre_tokenizer"], "pretokenizers", [&](const json& node) {
      if (node.value("type", "") != "Metaspace") return;
      const std::string scheme = node.value("prepend_scheme", "");
      if (scheme == "always" || (scheme.empty() && node.value("add_prefix_space", true))) {
        *add_prefix = true;
      } else if (scheme == "first") {
        *add_prefix = true;
        *first_only = true;
      }
    });
  }
}

// BOS from a TemplateProcessing post-processor whose single template starts with it.
int32_t TemplateBos(const json& j, const Vocab& vocab) {
  int32_t bos = -1;
  if (!j.contains("post_processor")) return bos;
  VisitNodes(j["post_processor"], "processors", [&](const json& node) {
    if (node.value("type", "") != "TemplateProcessing") return;
    const json& single = node.contains("single") ? node["single"] : json();
    if (!single.is_array() || single.empty() || !single[0].contains("SpecialToken")) return;
    const json& st = single[0]["SpecialToken"];
    if (st.contains("id") && st["id"].is_string()) bos = vocab.Find(st["id"].get<std::string>());
  });
  return bos;
}

bool ValidId(const json& id) {
  return id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() <= (1 << 24);
}

// model.vocab plus added_tokens, indexed by id. Ids may have gaps (filled with unused
// placeholders); added tokens are control ("special": true) or user-defined.
StatusOr<std::vector<TokenData>> ReadTokens(const json& j, const fs::path& path) {
  const json& model = j["model"];
  if (!model.contains("vocab") || !model["vocab"].is_object()) {
    return InvalidArgument("tokenizer: " + path.string() + ": model.vocab is missing");
  }
  int64_t max_id = -1;
  for (const auto& [text, id] : model["vocab"].items()) {
    if (!ValidId(id)) return InvalidArgument("tokenizer: bad id for vocab entry '" + text + "'");
    max_id = std::max(max_id, id.get<int64_t>());
  }
  const json added = j.contains("added_tokens") && j["added_tokens"].is_array() ? j["added_tokens"]
                                                                              : json::array();
  for (const json& a : added) {
    if (!a.is_object() || !a.contains("id") || !ValidId(a["id"]) || !a.contains("content") ||
        !a["content"].is_string()) {
      return InvalidArgument("tokenizer: malformed added_tokens entry " + a.dump());
    }
    max_id = std::max(max_id, a["id"].get<int64_t>());
  }
  std::vector<TokenData> data(static_cast<size_t>(max_id + 1));
  for (size_t i = 0; i < data.size(); ++i) {
    data[i].text = "[UNUSED_" + std::to_string(i) + "]";
    data[i].type = TokenType::kUnused;
  }
  for (const auto& [text, id] : model["vocab"].items()) {
    TokenData& td = data[static_cast<size_t>(id.get<int64_t>())];
    td.text = text;
    td.type = TokenType::kNormal;
  }
  for (const json& a : added) {
    TokenData& td = data[static_cast<size_t>(a["id"].get<int64_t>())];
    td.text = a["content"].get<std::string>();
    td.type = a.value("special", false) ? TokenType::kControl : TokenType::kUserDefined;
    td.lstrip = a.value("lstrip", false);
    td.rstrip = a.value("rstrip", false);
  }
  return data;
}

// Merges: "a b" strings or ["a", "b"] pairs.
Status ReadMerges(const json& model, BpeMerges* merges) {
  if (!model.contains("merges") || !model["merges"].is_array()) return Status::OK();
  for (const json& m : model["merges"]) {
    if (m.is_string()) {
      merges->Add(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merges->AddPair(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      return InvalidArgument("tokenizer: malformed merge " + m.dump());
    }
  }
  return Status::OK();
}

// The score of a token is minus the rank of the first merge that makes it, so that the
// score-ordered SentencePiece merge loop applies merges in rank order. Tokens no merge
// makes (single characters, specials) keep a score below every merge.
void ScoresFromMerges(const BpeMerges& merges, Vocab* vocab) {
  std::vector<float> score(static_cast<size_t>(vocab->size()), -1e30f);
  std::vector<bool> seen(score.size(), false);
  const auto& list = merges.list();
  for (size_t r = 0; r < list.size(); ++r) {
    const int32_t id = vocab->Find(list[r].first + list[r].second);
    if (id >= 0 && !seen[static_cast<size_t>(id)]) {
      seen[static_cast<size_t>(id)] = true;
      score[static_cast<size_t>(id)] = -static_cast<float>(r);
    }
  }
  for (int32_t id = 0; id < vocab->size(); ++id) {
    vocab->mutable_at(id).score = score[static_cast<size_t>(id)];
  }
}

StatusOr<std::unique_ptr<VocabTokenizer>> LoadTokenizerJson(const fs::path& path) {
  INFERD_ASSIGN_OR_RETURN(json j, ReadJson(path));
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) {
    return InvalidArgument("tokenizer: " + path.string() + " has no \"model\" object");
  }
  const json& model = j["model"];
  const std::string type = model.value("type", "BPE");
  if (type != "BPE") {
    return Unimplemented("tokenizer: tokenizer.json model type '" + type +
                         "' is not supported; supported: BPE (byte-level or SentencePiece-style)");
  }
  INFERD_ASSIGN_OR_RETURN(std::vector<TokenData> data, ReadTokens(j, path));
  auto t = std::make_unique<VocabTokenizer>();
  JsonBpe pre;
  INFERD_RETURN_IF_ERROR(CollectPreTokenizer(j, &pre));
  if (pre.byte_level) {
    t->algo = Algo::kByteBpe;
    t->ignore_merges = model.value("ignore_merges", false);
    INFERD_ASSIGN_OR_RETURN(t->splitter, RegexSplitter::Create(pre.patterns));
  } else {
    // No ByteLevel anywhere: SentencePiece-style BPE ("▁" for spaces, <0xNN> byte fallback).
    t->algo = Algo::kSpm;
    SpaceHandling(j, &t->add_space_prefix, &t->space_prefix_first_only);
    for (TokenData& td : data) {
      if (td.type == TokenType::kNormal && ParseByteToken(td.text) >= 0) td.type = TokenType::kByte;
    }
  }
  INFERD_RETURN_IF_ERROR(ReadMerges(model, &t->merges));
  t->vocab.Build(std::move(data));
  if (t->algo == Algo::kSpm) {
    ScoresFromMerges(t->merges, &t->vocab);
    t->merges = BpeMerges();  // not used by the SentencePiece loop
  }
  const int32_t unk = model.contains("unk_token") && model["unk_token"].is_string()
                          ? t->vocab.Find(model["unk_token"].get<std::string>())
                          : -1;
  t->SetIds(TemplateBos(j, t->vocab), -1, unk, -1);
  if (t->algo == Algo::kByteBpe) {
    const std::string pre_name = PreNameForPatterns(pre.patterns);
    t->SetNames("gpt2", pre_name.empty() ? "hf" : pre_name);
  } else {
    t->SetNames("llama", "default");
  }
  return t;
}

StatusOr<std::unique_ptr<VocabTokenizer>> LoadSentencePieceModel(const fs::path& path) {
  auto t = std::make_unique<VocabTokenizer>();
  t->spp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto st = t->spp->Load(path.string());
  if (!st.ok()) {
    return InvalidArgument("tokenizer: cannot load SentencePiece model " + path.string() + ": " +
                           st.ToString());
  }
  const int n = t->spp->GetPieceSize();
  std::vector<TokenData> data(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    TokenData& td = data[static_cast<size_t>(i)];
    td.text = t->spp->IdToPiece(i);
    td.score = t->spp->GetScore(i);
    if (t->spp->IsControl(i)) td.type = TokenType::kControl;
    else if (t->spp->IsUnknown(i)) td.type = TokenType::kUnknown;
    else if (t->spp->IsUnused(i)) td.type = TokenType::kUnused;
    else if (t->spp->IsByte(i)) td.type = TokenType::kByte;
    else td.type = TokenType::kNormal;
  }
  t->vocab.Build(std::move(data));
  t->algo = Algo::kSentencePiece;
  // Whether the model's normalizer adds the dummy "▁" prefix, seen from its output.
  std::vector<std::string> pieces;
  t->add_space_prefix = t->spp->Encode("a", &pieces).ok() && !pieces.empty() &&
                        pieces[0].compare(0, kSpaceMarker.size(), kSpaceMarker) == 0;
  auto id_or_none = [&](int id) { return (id >= 0 && id < n) ? id : -1; };
  t->SetIds(id_or_none(t->spp->bos_id()), id_or_none(t->spp->eos_id()),
            id_or_none(t->spp->unk_id()), id_or_none(t->spp->pad_id()));
  t->SetNames("llama", "default");
  return t;
}

}  // namespace
}  // namespace tok

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromHfDir(const std::string& dir) {
  const fs::path root(dir);
  json cfg = json::object();
  if (fs::exists(root / "tokenizer_config.json")) {
    INFERD_ASSIGN_OR_RETURN(cfg, tok::ReadJson(root / "tokenizer_config.json"));
    if (!cfg.is_object()) cfg = json::object();
  }
  std::unique_ptr<tok::VocabTokenizer> t;
  if (fs::exists(root / "tokenizer.json")) {
    INFERD_ASSIGN_OR_RETURN(t, tok::LoadTokenizerJson(root / "tokenizer.json"));
  } else if (fs::exists(root / "tokenizer.model")) {
    INFERD_ASSIGN_OR_RETURN(t, tok::LoadSentencePieceModel(root / "tokenizer.model"));
  } else {
    return NotFound("tokenizer: " + dir + " has neither tokenizer.json nor tokenizer.model");
  }
  const bool spm = t->algo != tok::Algo::kByteBpe;
  // Without add_bos_token: SentencePiece adds BOS; byte-level BPE only when its
  // post-processor template starts with one (Llama-3).
  const bool default_bos = spm || t->bos_id() >= 0;
  auto find_or = [&](const char* key, int32_t dflt) {
    const std::string s = tok::TokenString(cfg, key);
    if (s.empty()) return dflt;
    const int32_t id = t->vocab.Find(s);
    return id >= 0 ? id : dflt;
  };
  t->SetIds(find_or("bos_token", t->bos_id()), find_or("eos_token", t->eos_id()),
            find_or("unk_token", t->unk_id()), find_or("pad_token", t->pad_id()));
  auto flag = [&](const char* key, bool dflt) {
    auto it = cfg.find(key);
    return (it != cfg.end() && it->is_boolean()) ? it->get<bool>() : dflt;
  };
  t->SetFlags(flag("add_bos_token", default_bos) && t->bos_id() >= 0,
              flag("add_eos_token", false) && t->eos_id() >= 0);
  if (cfg.contains("inferd_pre_tokenizer") && cfg["inferd_pre_tokenizer"].is_string()) {
    t->SetNames(t->model_name(), cfg["inferd_pre_tokenizer"].get<std::string>());
  }
  t->SetChatTemplate(tok::ChatTemplate(cfg));
  t->Finalize();
  return std::unique_ptr<Tokenizer>(std::move(t));
}

namespace tok {

namespace {

json AddedTokens(const Vocab& vocab) {
  json added = json::array();
  for (int32_t id = 0; id < vocab.size(); ++id) {
    const TokenData& td = vocab.at(id);
    if (td.type != TokenType::kControl && td.type != TokenType::kUserDefined &&
        td.type != TokenType::kUnknown) {
      continue;
    }
    added.push_back({{"id", id},
                     {"content", td.text},
                     {"single_word", false},
                     {"lstrip", td.lstrip},
                     {"rstrip", td.rstrip},
                     {"normalized", false},
                     {"special", td.type != TokenType::kUserDefined}});
  }
  return added;
}

bool IsAddedType(TokenType t) {
  return t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown;
}

// Every way a SentencePiece token splits into two parts that the merge loop can hold
// (tokens, or single characters), ordered by token score (best first).
json SpmMerges(const Vocab& vocab) {
  std::vector<int32_t> order(static_cast<size_t>(vocab.size()));
  for (int32_t i = 0; i < vocab.size(); ++i) order[static_cast<size_t>(i)] = i;
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return vocab.at(a).score > vocab.at(b).score;
  });
  auto holdable = [&](std::string_view s) {
    if (vocab.Find(s) >= 0) return true;
    size_t pos = 0;
    uint32_t cp;
    return DecodeUtf8(s, &pos, &cp) ? pos == s.size() : s.size() == 1;
  };
  json merges = json::array();
  for (int32_t id : order) {
    const std::string& text = vocab.at(id).text;
    if (vocab.Find(text) != id || vocab.at(id).type == TokenType::kByte) continue;
    for (size_t cut = 1; cut < text.size(); ++cut) {
      if ((static_cast<uint8_t>(text[cut]) & 0xC0) == 0x80) continue;  // inside a character
      const std::string_view a = std::string_view(text).substr(0, cut);
      const std::string_view b = std::string_view(text).substr(cut);
      if (holdable(a) && holdable(b)) merges.push_back(json::array({a, b}));
    }
  }
  return merges;
}

}  // namespace

namespace {

// Pre-tokenizer, decoder and model fields of a byte-level BPE tokenizer.json.
void FillByteLevelJson(const VocabTokenizer& t, json* j, json* model) {
  json pres = json::array();
  for (const std::string& p : t.splitter->patterns()) {
    pres.push_back({{"type", "Split"}, {"pattern", {{"Regex", p}}}, {"behavior", "Isolated"},
                    {"invert", false}});
  }
  pres.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
                  {"use_regex", false}});
  json merges = json::array();
  for (const auto& [a, b] : t.merges.list()) merges.push_back(json::array({a, b}));
  (*model)["unk_token"] = nullptr;
  (*model)["fuse_unk"] = false;
  (*model)["byte_fallback"] = false;
  (*model)["ignore_merges"] = t.ignore_merges;
  (*model)["merges"] = std::move(merges);
  (*j)["normalizer"] = nullptr;
  (*j)["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", std::move(pres)}};
  (*j)["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true},
                     {"use_regex", true}};
}

// The same for SentencePiece-style BPE, in the layout of the Llama-2 tokenizer.json.
void FillSpmJson(const VocabTokenizer& t, json* j, json* model) {
  json norms = json::array();
  if (t.add_space_prefix && !t.space_prefix_first_only) {
    norms.push_back({{"type", "Prepend"}, {"prepend", kSpaceMarker}});
  }
  norms.push_back({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSpaceMarker}});
  (*model)["unk_token"] = t.vocab.valid(t.unk_id()) ? json(t.vocab.at(t.unk_id()).text) : json(nullptr);
  (*model)["fuse_unk"] = true;
  (*model)["byte_fallback"] = true;
  (*model)["ignore_merges"] = false;
  (*model)["merges"] = SpmMerges(t.vocab);
  (*j)["normalizer"] = {{"type", "Sequence"}, {"normalizers", std::move(norms)}};
  if (t.add_space_prefix && t.space_prefix_first_only) {
    (*j)["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", kSpaceMarker},
                             {"prepend_scheme", "first"}, {"split", false}};
  } else {
    (*j)["pre_tokenizer"] = nullptr;
  }
  const json replace = {{"type", "Replace"}, {"pattern", {{"String", kSpaceMarker}}}, {"content", " "}};
  const json strip = {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}};
  (*j)["decoder"] = {{"type", "Sequence"},
                     {"decoders", json::array({replace, {{"type", "ByteFallback"}},
                                               {{"type", "Fuse"}}, strip})}};
}

}  // namespace

Status VocabTokenizer::WriteSentencePieceFiles(const std::string& dir) const {
  const fs::path root(dir);
  INFERD_RETURN_IF_ERROR(WriteText(root / "tokenizer.model", spp->serialized_model_proto()));
  std::error_code ec;
  fs::remove(root / "tokenizer.json", ec);
  return Status::OK();
}

Status VocabTokenizer::WriteHfFiles(const std::string& dir) const {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return NotFound("tokenizer: cannot create directory " + dir + ": " + ec.message());
  const fs::path root(dir);
  if (algo == Algo::kSentencePiece) {
    INFERD_RETURN_IF_ERROR(WriteSentencePieceFiles(dir));
  } else {
    // model.vocab holds the ordinary tokens (the one a text lookup finds, should two share
    // a text); control / user-defined / unknown tokens go to added_tokens.
    json vocab_obj = json::object();
    for (int32_t id = 0; id < vocab.size(); ++id) {
      const TokenData& td = vocab.at(id);
      if (IsAddedType(td.type) || vocab.Find(td.text) != id) continue;
      vocab_obj[td.text] = id;
    }
    json model = {{"type", "BPE"}, {"dropout", nullptr}, {"continuing_subword_prefix", nullptr},
                  {"end_of_word_suffix", nullptr}, {"vocab", std::move(vocab_obj)}};
    json j = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr},
              {"added_tokens", AddedTokens(vocab)}};
    if (algo == Algo::kByteBpe) {
      FillByteLevelJson(*this, &j, &model);
    } else {
      FillSpmJson(*this, &j, &model);
    }
    j["post_processor"] = nullptr;
    j["model"] = std::move(model);
    INFERD_RETURN_IF_ERROR(WriteText(root / "tokenizer.json", j.dump()));
  }
  auto text_or_null = [&](int32_t id) {
    return vocab.valid(id) ? json(vocab.at(id).text) : json(nullptr);
  };
  // inferd_pre_tokenizer keeps the GGUF pre-tokenizer name; HF ignores unknown keys.
  json cfg = {{"add_bos_token", add_bos_},
              {"add_eos_token", add_eos_},
              {"bos_token", text_or_null(bos_id_)},
              {"eos_token", text_or_null(eos_id_)},
              {"unk_token", text_or_null(unk_id_)},
              {"pad_token", text_or_null(pad_id_)},
              {"clean_up_tokenization_spaces", false},
              {"inferd_pre_tokenizer", pre_}};
  if (!chat_template_.empty()) cfg["chat_template"] = chat_template_;
  return WriteText(root / "tokenizer_config.json", cfg.dump(2));
}

}  // namespace tok
}  // namespace inferd
