#include "tokenizer/vocab.h"

#include <algorithm>

namespace inferd::tok {

void Vocab::Build(std::vector<TokenData> tokens) {
  tokens_ = std::move(tokens);
  text_to_id_.clear();
  text_to_id_.reserve(tokens_.size());
  for (size_t i = 0; i < tokens_.size(); ++i) {
    if (tokens_[i].text.empty()) tokens_[i].text = "[EMPTY_" + std::to_string(i) + "]";
    text_to_id_[tokens_[i].text] = static_cast<int32_t>(i);
  }
  RebuildSpecialCache();
}

void Vocab::RebuildSpecialCache() {
  special_cache_.clear();
  for (int32_t id = 0; id < size(); ++id) {
    const TokenType t = at(id).type;
    if (t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown) {
      special_cache_.push_back(id);
    }
  }
  std::stable_sort(special_cache_.begin(), special_cache_.end(), [&](int32_t a, int32_t b) {
    return at(a).text.size() > at(b).text.size();
  });
}

namespace {

bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

}  // namespace

std::vector<Fragment> Vocab::Partition(std::string_view text, bool parse_special) const {
  std::vector<Fragment> frags;
  if (text.empty()) return frags;
  frags.push_back({-1, text});
  std::vector<Fragment> next;
  for (int32_t id : special_cache_) {
    const TokenData& td = at(id);
    if (!parse_special && td.type != TokenType::kUserDefined) continue;
    const std::string_view needle = td.text;
    bool any = false;
    for (const Fragment& f : frags) {
      if (f.token < 0 && f.text.find(needle) != std::string_view::npos) {
        any = true;
        break;
      }
    }
    if (!any) continue;
    next.clear();
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      std::string_view rest = f.text;
      while (!rest.empty()) {
        const size_t at_pos = rest.find(needle);
        if (at_pos == std::string_view::npos) {
          next.push_back({-1, rest});
          break;
        }
        std::string_view left = rest.substr(0, at_pos);
        if (td.lstrip) {
          while (!left.empty() && IsAsciiSpace(left.back())) left.remove_suffix(1);
        }
        if (!left.empty()) next.push_back({-1, left});
        next.push_back({id, {}});
        rest = rest.substr(at_pos + needle.size());
        if (td.rstrip) {
          while (!rest.empty() && IsAsciiSpace(rest.front())) rest.remove_prefix(1);
        }
      }
    }
    frags.swap(next);
  }
  return frags;
}

}  // namespace inferd::tok
