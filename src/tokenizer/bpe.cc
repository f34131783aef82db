#include "tokenizer/bpe.h"

#include <algorithm>
#include <queue>

#include "tokenizer/unicode.h"

namespace inferd::tok {

namespace {

// The pair key: the separator cannot occur in token texts of real vocabularies.
void MakeKey(std::string_view left, std::string_view right, std::string* key) {
  key->assign(left);
  key->push_back('\0');
  key->append(right);
}

// A symbol is a slice [start, start + n) of the word; merged-away symbols have n == 0.
struct Symbol {
  uint32_t start;
  uint32_t n;
  int32_t prev;
  int32_t next;
};

}  // namespace

void BpeMerges::Add(std::string_view merge) {
  const size_t pos = merge.size() > 1 ? merge.find(' ', 1) : std::string_view::npos;
  if (pos == std::string_view::npos) {
    AddPair("", "");
  } else {
    AddPair(merge.substr(0, pos), merge.substr(pos + 1));
  }
}

void BpeMerges::AddPair(std::string_view left, std::string_view right) {
  std::string key;
  MakeKey(left, right, &key);
  if (ranks_.try_emplace(std::move(key), static_cast<int32_t>(list_.size())).second) {
    list_.emplace_back(std::string(left), std::string(right));
  }
}

int32_t BpeMerges::Rank(std::string_view left, std::string_view right, std::string* scratch) const {
  MakeKey(left, right, scratch);
  auto it = ranks_.find(std::string_view(*scratch));
  return it == ranks_.end() ? -1 : it->second;
}

void BpeEncodeWord(std::string_view word, const Vocab& vocab, const BpeMerges& merges,
                   bool ignore_merges, std::vector<int32_t>* out) {
  if (word.empty()) return;
  if (ignore_merges) {
    const int32_t id = vocab.Find(word);
    if (id >= 0) {
      out->push_back(id);
      return;
    }
  }
  std::vector<Symbol> syms;
  for (size_t off = 0; off < word.size();) {
    const size_t n = std::min(word.size() - off, Utf8LenFromLead(static_cast<uint8_t>(word[off])));
    const int32_t idx = static_cast<int32_t>(syms.size());
    syms.push_back({static_cast<uint32_t>(off), static_cast<uint32_t>(n), idx - 1,
                    off + n == word.size() ? -1 : idx + 1});
    off += n;
  }
  struct Bigram {
    int32_t rank;
    int32_t left;
    int32_t right;
    uint32_t left_n;
    uint32_t right_n;
  };
  // Lowest rank first; on equal rank the leftmost pair.
  auto worse = [](const Bigram& a, const Bigram& b) {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  };
  std::priority_queue<Bigram, std::vector<Bigram>, decltype(worse)> queue(worse);
  std::string scratch;
  auto text_of = [&](const Symbol& s) { return word.substr(s.start, s.n); };
  auto try_add = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const int32_t rank = merges.Rank(text_of(syms[l]), text_of(syms[r]), &scratch);
    if (rank >= 0) queue.push({rank, l, r, syms[l].n, syms[r].n});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(syms.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = syms[b.left];
    Symbol& r = syms[b.right];
    // Stale entry: one side has been merged into something else since it was queued.
    if (l.n == 0 || r.n == 0 || l.n != b.left_n || r.n != b.right_n || l.next != b.right) continue;
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  for (int32_t i = 0; i >= 0; i = syms[i].next) {
    const std::string_view text = text_of(syms[i]);
    const int32_t id = vocab.Find(text);
    if (id >= 0) {
      out->push_back(id);
      continue;
    }
    // Not a token (a character the merges never reach): llama.cpp looks each byte up.
    for (char c : text) {
      const int32_t bid = vocab.Find(std::string_view(&c, 1));
      if (bid >= 0) out->push_back(bid);
    }
  }
}

int32_t ByteToken(const Vocab& vocab, uint8_t byte) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  const char buf[6] = {'<', '0', 'x', kHex[byte >> 4], kHex[byte & 15], '>'};
  const int32_t id = vocab.Find(std::string_view(buf, 6));
  if (id >= 0) return id;
  const char c = static_cast<char>(byte);
  return vocab.Find(std::string_view(&c, 1));
}

void SpmEncode(std::string_view text, const Vocab& vocab, int32_t unk_id,
               std::vector<int32_t>* out) {
  if (text.empty()) return;
  std::vector<Symbol> syms;
  for (size_t off = 0; off < text.size();) {
    const size_t n = std::min(text.size() - off, Utf8LenFromLead(static_cast<uint8_t>(text[off])));
    const int32_t idx = static_cast<int32_t>(syms.size());
    syms.push_back({static_cast<uint32_t>(off), static_cast<uint32_t>(n), idx - 1,
                    off + n == text.size() ? -1 : idx + 1});
    off += n;
  }
  struct Bigram {
    float score;
    int32_t left;
    int32_t right;
    uint32_t size;
  };
  // Highest score first; on equal score the leftmost pair.
  auto worse = [](const Bigram& a, const Bigram& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<Bigram, std::vector<Bigram>, decltype(worse)> queue(worse);
  auto try_add = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const uint32_t size = syms[l].n + syms[r].n;
    const int32_t id = vocab.Find(text.substr(syms[l].start, size));
    if (id < 0) return;
    queue.push({vocab.at(id).score, l, r, size});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(syms.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = syms[b.left];
    Symbol& r = syms[b.right];
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size || l.next != b.right) continue;
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  for (int32_t i = 0; i >= 0; i = syms[i].next) {
    const std::string_view piece = text.substr(syms[i].start, syms[i].n);
    const int32_t id = vocab.Find(piece);
    if (id >= 0) {
      out->push_back(id);
      continue;
    }
    for (char c : piece) {
      const int32_t bid = ByteToken(vocab, static_cast<uint8_t>(c));
      if (bid >= 0) {
        out->push_back(bid);
      } else if (unk_id >= 0) {
        out->push_back(unk_id);
      }
    }
  }
}

}  // namespace inferd::tok
