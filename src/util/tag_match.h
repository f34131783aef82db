// Finding tags in streamed text: how much of a text's end may still become a tag, so that a
// streaming parser holds it back (tool-call and reasoning parsers, stop strings).
#pragma once

#include <algorithm>
#include <initializer_list>
#include <string_view>

namespace inferd {

// The length of the longest suffix of `text` that is a proper prefix of `tag`.
inline size_t PartialTagSuffix(std::string_view text, std::string_view tag) {
  for (size_t n = std::min(text.size(), tag.size() - 1); n > 0; --n) {
    if (text.substr(text.size() - n) == tag.substr(0, n)) return n;
  }
  return 0;
}

// The longest such suffix over several tags.
inline size_t PartialTagsSuffix(std::string_view text, std::initializer_list<std::string_view> tags) {
  size_t keep = 0;
  for (std::string_view tag : tags) keep = std::max(keep, PartialTagSuffix(text, tag));
  return keep;
}

}  // namespace inferd
