#include "tokenizer/tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <array>
#include <cctype>

#include "format/gguf.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace inferd {

namespace tok {

namespace {


// Token texts that end generation (llama.cpp's list), matched exactly.
constexpr std::array<std::string_view, 13> kEogTexts = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>",
    "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>",
    "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>",  // DeepSeek
};

void ReplaceSpaces(std::string_view in, std::string* out) {
  for (char c : in) {
    if (c == ' ') {
      out->append(kSpaceMarker);
    } else {
      out->push_back(c);
    }
  }
}

std::string UnescapeSpaces(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size();) {
    if (in.compare(i, kSpaceMarker.size(), kSpaceMarker) == 0) {
      out.push_back(' ');
      i += kSpaceMarker.size();
    } else {
      out.push_back(in[i++]);
    }
  }
  return out;
}

int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

// Returns the byte of a "<0xNN>" text, or -1.
int ParseByteToken(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  const int hi = HexVal(text[3]), lo = HexVal(text[4]);
  return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

VocabTokenizer::VocabTokenizer() = default;
VocabTokenizer::~VocabTokenizer() = default;

void VocabTokenizer::Finalize() {
  vocab_size_ = vocab.size();
  std::vector<int32_t> eog;
  for (std::string_view t : kEogTexts) {
    const int32_t id = vocab.Find(t);
    if (id < 0) continue;
    eog.push_back(id);
    TokenData& td = vocab.mutable_at(id);
    if (td.type != TokenType::kControl) td.type = TokenType::kControl;
  }
  for (int32_t id : {eos_id_, eot_id, eom_id}) {
    if (vocab.valid(id)) eog.push_back(id);
  }
  std::sort(eog.begin(), eog.end());
  eog.erase(std::unique(eog.begin(), eog.end()), eog.end());
  eog_ids_ = std::move(eog);
  vocab.RebuildSpecialCache();
}

void VocabTokenizer::EncodeText(std::string_view text, bool space_prefix,
                                std::vector<int32_t>* out) const {
  switch (algo) {
    case Algo::kByteBpe: {
      const std::string clean = SanitizeUtf8(text);
      std::string word;
      for (std::string_view piece : splitter->Split(clean)) {
        word.clear();
        for (char c : piece) word.append(ByteToUnicode(static_cast<uint8_t>(c)));
        BpeEncodeWord(word, vocab, merges, ignore_merges, out);
      }
      break;
    }
    case Algo::kSpm: {
      std::string s;
      s.reserve(text.size() * 2 + 3);
      if (space_prefix) s.append(kSpaceMarker);
      ReplaceSpaces(text, &s);
      SpmEncode(s, vocab, unk_id_, out);
      break;
    }
    case Algo::kSentencePiece: {
      std::vector<int> ids;
      // The processor applies its own normalizer (and dummy prefix) per call.
      if (spp->Encode(std::string(text), &ids).ok()) {
        out->insert(out->end(), ids.begin(), ids.end());
      }
      break;
    }
  }
}

std::vector<int32_t> VocabTokenizer::Encode(std::string_view text, bool add_special,
                                            bool parse_special) const {
  std::vector<int32_t> out;
  if (add_special && add_bos_ && bos_id_ >= 0) out.push_back(bos_id_);
  // SentencePiece prefixes a space to the text and to every piece that follows a special
  // token (llama.cpp); with space_prefix_first_only just to the first piece.
  bool prev_special = true;
  bool first = true;
  for (const Fragment& f : vocab.Partition(text, parse_special)) {
    if (f.token >= 0) {
      out.push_back(f.token);
      prev_special = true;
      continue;
    }
    const bool prefix = add_space_prefix && prev_special && (first || !space_prefix_first_only);
    EncodeText(f.text, prefix, &out);
    prev_special = false;
    first = false;
  }
  if (add_special && add_eos_ && eos_id_ >= 0) out.push_back(eos_id_);
  return out;
}

std::string VocabTokenizer::TokenToPiece(int32_t id, bool skip_special) const {
  if (!vocab.valid(id)) return "";
  const TokenData& td = vocab.at(id);
  switch (td.type) {
    case TokenType::kControl:
    case TokenType::kUnknown:
      return skip_special ? "" : td.text;
    case TokenType::kUserDefined:
      return td.text;
    case TokenType::kUnused:
    case TokenType::kUndefined:
      return "";
    case TokenType::kByte:
      if (algo != Algo::kByteBpe) {
        const int b = ParseByteToken(td.text);
        if (b >= 0) return std::string(1, static_cast<char>(b));
      }
      [[fallthrough]];
    case TokenType::kNormal:
      break;
  }
  if (algo == Algo::kByteBpe) {
    std::string out;
    UnicodeToBytes(td.text, &out);
    return out;
  }
  return UnescapeSpaces(td.text);
}

std::string VocabTokenizer::Decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string out;
  // The space SentencePiece put in front of the text is dropped from the first token that
  // is not a control token (BOS and the like may come before it).
  bool at_start = add_space_prefix;
  for (int32_t id : ids) {
    std::string piece = TokenToPiece(id, skip_special);
    if (at_start && GetTokenType(id) != TokenType::kControl) {
      if (!piece.empty() && piece[0] == ' ') piece.erase(0, 1);
      at_start = false;
    }
    out += piece;
  }
  return out;
}

const std::string& VocabTokenizer::TokenText(int32_t id) const {
  static const std::string kEmpty;
  return vocab.valid(id) ? vocab.at(id).text : kEmpty;
}

TokenType VocabTokenizer::GetTokenType(int32_t id) const {
  return vocab.valid(id) ? vocab.at(id).type : TokenType::kUndefined;
}

}  // namespace tok

bool Tokenizer::IsEog(int32_t id) const {
  return std::binary_search(eog_ids_.begin(), eog_ids_.end(), id);
}

bool Tokenizer::IsSpecial(int32_t id) const {
  const TokenType t = GetTokenType(id);
  return t == TokenType::kControl || t == TokenType::kUserDefined;
}

namespace tok {
namespace {

// tokenizer.ggml.{tokens,scores,token_type}; scores and types are optional.
StatusOr<std::vector<TokenData>> ReadGgufTokens(const GgufFile& gguf) {
  const GgufArray* tokens = gguf.GetArray("tokenizer.ggml.tokens");
  if (tokens == nullptr || tokens->elem_type != GgufType::kString || tokens->strings.empty()) {
    return InvalidArgument("tokenizer: GGUF has no tokenizer.ggml.tokens string array");
  }
  const size_t n = tokens->strings.size();
  const GgufArray* scores = gguf.GetArray("tokenizer.ggml.scores");
  const GgufArray* types = gguf.GetArray("tokenizer.ggml.token_type");
  if (scores != nullptr && scores->floats.size() != n) {
    return InvalidArgument("tokenizer: tokenizer.ggml.scores has " +
                           std::to_string(scores->floats.size()) + " entries for " +
                           std::to_string(n) + " tokens");
  }
  if (types != nullptr && types->ints.size() != n) {
    return InvalidArgument("tokenizer: tokenizer.ggml.token_type has " +
                           std::to_string(types->ints.size()) + " entries for " +
                           std::to_string(n) + " tokens");
  }
  std::vector<TokenData> data(n);
  for (size_t i = 0; i < n; ++i) {
    data[i].text = tokens->strings[i];
    if (scores != nullptr) data[i].score = static_cast<float>(scores->floats[i]);
    if (types != nullptr) {
      const int64_t ty = types->ints[i];
      data[i].type = (ty >= 0 && ty <= 6) ? static_cast<TokenType>(ty) : TokenType::kNormal;
    }
  }
  return data;
}

// Phi-3 GGUFs: llama.cpp strips whitespace after its added tokens (they are rstrip in the
// original tokenizer.json), except after <unk>, <s> and <|endoftext|>. Keyed on general.name.
void ApplyPhi3Rstrip(const GgufFile& gguf, std::vector<TokenData>* data) {
  std::string name = gguf.GetString("general.name").value_or("");
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (name.find("phi-3") == std::string::npos && name.find("phi3") == std::string::npos) return;
  for (TokenData& td : *data) {
    const bool special = td.type == TokenType::kControl || td.type == TokenType::kUserDefined ||
                         td.type == TokenType::kUnknown;
    if (special || td.text == "</s>") td.rstrip = true;
    if (td.text == "<unk>" || td.text == "<s>" || td.text == "<|endoftext|>") td.rstrip = false;
  }
}

}  // namespace
}  // namespace tok

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromGguf(const GgufFile& gguf) {
  using tok::Algo;
  auto t = std::make_unique<tok::VocabTokenizer>();
  const std::string model = gguf.GetString("tokenizer.ggml.model").value_or("");
  const std::string pre = gguf.GetString("tokenizer.ggml.pre").value_or("");
  INFERD_ASSIGN_OR_RETURN(std::vector<tok::TokenData> data, tok::ReadGgufTokens(gguf));
  const size_t n = data.size();

  bool default_add_bos = false;
  if (model == "gpt2") {
    t->algo = Algo::kByteBpe;
    INFERD_ASSIGN_OR_RETURN(tok::PreTokenizerSpec spec, tok::LookupPreTokenizer(pre));
    INFERD_ASSIGN_OR_RETURN(t->splitter, tok::RegexSplitter::Create(spec.patterns));
    t->ignore_merges = spec.ignore_merges;
    default_add_bos = spec.add_bos;
    const GgufArray* merges = gguf.GetArray("tokenizer.ggml.merges");
    if (merges == nullptr || merges->elem_type != GgufType::kString) {
      return InvalidArgument("tokenizer: byte-level BPE GGUF has no tokenizer.ggml.merges");
    }
    for (const std::string& m : merges->strings) t->merges.Add(m);
    t->SetNames("gpt2", pre.empty() ? "default" : pre);  // as the file names it
  } else if (model == "llama") {
    t->algo = Algo::kSpm;
    t->add_space_prefix = gguf.GetBool("tokenizer.ggml.add_space_prefix").value_or(true);
    default_add_bos = true;
    t->SetNames("llama", pre.empty() ? "default" : pre);
  } else {
    return Unimplemented("tokenizer: tokenizer.ggml.model '" + model +
                         "' is not supported; supported: gpt2 (byte-level BPE), llama "
                         "(SentencePiece)");
  }

  tok::ApplyPhi3Rstrip(gguf, &data);
  t->vocab.Build(std::move(data));

  const bool spm = t->algo == Algo::kSpm;
  // Absent keys take llama.cpp's SentencePiece defaults (1, 2, 0); out-of-range ids are -1.
  auto id_key = [&](const char* key, int32_t dflt) -> int32_t {
    const int64_t v = gguf.GetInt(key).value_or(dflt);
    return (v >= 0 && v < static_cast<int64_t>(n)) ? static_cast<int32_t>(v) : -1;
  };
  t->SetIds(id_key("tokenizer.ggml.bos_token_id", spm ? 1 : -1),
            id_key("tokenizer.ggml.eos_token_id", spm ? 2 : -1),
            id_key("tokenizer.ggml.unknown_token_id", spm ? 0 : -1),
            id_key("tokenizer.ggml.padding_token_id", -1));
  t->eot_id = id_key("tokenizer.ggml.eot_token_id", -1);
  t->eom_id = id_key("tokenizer.ggml.eom_token_id", -1);
  t->SetFlags(gguf.GetBool("tokenizer.ggml.add_bos_token").value_or(default_add_bos),
              gguf.GetBool("tokenizer.ggml.add_eos_token").value_or(false));
  t->SetChatTemplate(gguf.GetString("tokenizer.chat_template").value_or(""));
  t->Finalize();
  return std::unique_ptr<Tokenizer>(std::move(t));
}

}  // namespace inferd
