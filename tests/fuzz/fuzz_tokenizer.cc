// libFuzzer target: every vocabulary in shared/testdata/tokenizer (BPE with each
// pre-tokenizer, SentencePiece) on arbitrary bytes. The first byte picks the vocabulary
// and the mode; the rest is text, and read again as token ids for Decode.
// Invariants: Encode never fails and returns ids in the vocabulary; byte-level BPE with
// every byte in its vocabulary round-trips valid UTF-8 exactly (Decode(Encode(t)) == t); the incremental detokenizer
// streams exactly Decode's text whenever that text is valid UTF-8; Decode/TokenToPiece
// accept any id in range.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "format/gguf.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"
#include "util/mmap.h"

namespace {

using namespace inferd;

struct Vocab {
  std::unique_ptr<MappedFile> file;
  std::unique_ptr<GgufFile> gguf;
  std::unique_ptr<Tokenizer> tok;
  // Byte-level BPE with a token for each of the 256 bytes. Some vocabularies lack a few
  // (Falcon: 28 control and invalid-lead bytes, StarCoder: 14); those bytes are dropped
  // by llama.cpp and by inferd alike, so only complete ones must round-trip.
  bool round_trips = false;
};

// GPT-2's byte-to-unicode map: the vocabulary text of the token for byte b.
std::string ByteToken(int b) {
  int cp = b;
  const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  if (!printable) {
    int n = 0;
    for (int x = 0; x < b; ++x) {
      const bool p = (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF);
      if (!p) ++n;
    }
    cp = 256 + n;
  }
  std::string out;
  tok::AppendUtf8(static_cast<uint32_t>(cp), &out);
  return out;
}

bool HasEveryByte(const Tokenizer& t) {
  std::set<std::string> texts;
  for (int32_t id = 0; id < t.vocab_size(); ++id) texts.insert(t.TokenText(id));
  for (int b = 0; b < 256; ++b) {
    if (!texts.count(ByteToken(b))) return false;
  }
  return true;
}

std::vector<Vocab>* Load() {
  auto* out = new std::vector<Vocab>;
  const char* env = std::getenv("INFERD_TESTDATA_DIR");
  const std::filesystem::path dir = std::filesystem::path(env && *env ? env : INFERD_DEFAULT_TESTDATA) / "tokenizer";
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".gguf") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& p : files) {
    Vocab v;
    auto m = MappedFile::Open(p.string());
    if (!m.ok()) continue;
    v.file = std::move(*m);
    auto g = GgufFile::Parse(v.file->data(), v.file->size());
    if (!g.ok()) continue;
    v.gguf = std::move(*g);
    auto t = Tokenizer::FromGguf(*v.gguf);
    if (!t.ok()) continue;  // a vocabulary type inferd does not support
    v.tok = std::move(*t);
    v.round_trips = v.tok->model_name() == "gpt2" && HasEveryByte(*v.tok);
    out->push_back(std::move(v));
  }
  if (out->empty()) {
    std::fprintf(stderr, "fuzz_tokenizer: no vocabularies under %s (set INFERD_TESTDATA_DIR)\n", dir.c_str());
    std::abort();
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<Vocab>* vocabs = Load();
  if (size == 0) return 0;
  const Vocab& vocab = (*vocabs)[data[0] % vocabs->size()];
  const Tokenizer& tok = *vocab.tok;
  const bool add_special = data[0] & 0x40, parse_special = data[0] & 0x80;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);

  const std::vector<int32_t> ids = tok.Encode(text, add_special, parse_special);
  for (int32_t id : ids) {
    if (id < 0 || id >= tok.vocab_size()) std::abort();
  }
  if (vocab.round_trips && !add_special && !parse_special && tok::IsValidUtf8(text)) {
    if (tok.Decode(ids, /*skip_special=*/false) != text) std::abort();
  }
  // The same bytes as token ids (2 bytes each), for Decode and the streaming detokenizer.
  std::vector<int32_t> any;
  for (size_t i = 1; i + 1 < size; i += 2) any.push_back(((data[i] << 8) | data[i + 1]) % tok.vocab_size());
  for (bool skip : {false, true}) {
    const std::string whole = tok.Decode(any, skip);
    IncrementalDetokenizer inc(tok, skip);
    std::string streamed;
    for (int32_t id : any) streamed += inc.Push(id);
    streamed += inc.Flush();
    if (tok::IsValidUtf8(whole) && streamed != whole) std::abort();
    for (int32_t id : any) (void)tok.TokenToPiece(id, skip);
  }
  return 0;
}
