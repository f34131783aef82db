#include "chat/harmony.h"

#include <initializer_list>

#include "util/tag_match.h"

namespace inferd {
namespace {

constexpr std::string_view kStart = "<|start|>", kChannel = "<|channel|>", kMessage = "<|message|>";
constexpr std::string_view kEnd = "<|end|>", kCall = "<|call|>", kReturn = "<|return|>";

// The first of `tags` in `buffer`: its index, and at *at its position; or -1, and at *at how
// much of the buffer is surely not the start of a tag.
int FindFirst(const std::string& buffer, std::initializer_list<std::string_view> tags, size_t* at) {
  size_t best = std::string::npos;
  int which = -1, k = 0;
  for (std::string_view tag : tags) {
    const size_t pos = buffer.find(tag);
    if (pos < best) best = pos, which = k;
    ++k;
  }
  *at = which >= 0 ? best : buffer.size() - PartialTagsSuffix(buffer, tags);
  return which;
}

void Add(std::vector<HarmonyEvent>* out, HarmonyEvent::Kind kind, std::string_view text) {
  if (!text.empty() || kind == HarmonyEvent::Kind::kHeader || kind == HarmonyEvent::Kind::kEnd) {
    out->push_back(HarmonyEvent{kind, std::string(text)});
  }
}

}  // namespace

void HarmonyReader::Push(std::string_view text, std::vector<HarmonyEvent>* out) {
  buffer_ += text;
  while (Step(out)) {
  }
}

void HarmonyReader::Finish(std::vector<HarmonyEvent>* out) {
  if (state_ == State::kBody) Add(out, HarmonyEvent::Kind::kBody, buffer_);
  if (state_ == State::kOutside) Add(out, HarmonyEvent::Kind::kText, buffer_);
  buffer_.clear();
  header_.clear();
  state_ = State::kOutside;
}

bool HarmonyReader::Step(std::vector<HarmonyEvent>* out) {
  size_t at = 0;
  switch (state_) {
    case State::kOutside: {
      const int k = FindFirst(buffer_, {kStart, kChannel, kMessage, kEnd, kCall, kReturn}, &at);
      Add(out, HarmonyEvent::Kind::kText, std::string_view(buffer_).substr(0, at));
      buffer_.erase(0, at);
      if (k < 0) return false;
      if (k >= 3) {  // a stray end of message: dropped
        buffer_.erase(0, (k == 3 ? kEnd : k == 4 ? kCall : kReturn).size());
        return true;
      }
      state_ = State::kHeader;  // the header keeps its opening tag
      return true;
    }
    case State::kHeader: {
      const size_t end = buffer_.find(kMessage);
      if (end == std::string::npos) return false;
      header_ = buffer_.substr(0, end + kMessage.size());
      buffer_.erase(0, end + kMessage.size());
      Add(out, HarmonyEvent::Kind::kHeader, header_);
      state_ = State::kBody;
      return true;
    }
    case State::kBody: {
      const int k = FindFirst(buffer_, {kEnd, kCall, kReturn, kStart, kChannel}, &at);
      Add(out, HarmonyEvent::Kind::kBody, std::string_view(buffer_).substr(0, at));
      buffer_.erase(0, at);
      if (k < 0) return false;
      std::string_view tag;
      if (k <= 2) {
        tag = k == 0 ? kEnd : k == 1 ? kCall : kReturn;
        Add(out, HarmonyEvent::Kind::kEnd, tag);
        buffer_.erase(0, tag.size());
      } else {
        Add(out, HarmonyEvent::Kind::kEnd, "");
      }
      state_ = State::kOutside;
      return true;
    }
  }
  return false;
}

std::string HarmonyHeaderField(std::string_view header, std::string_view key) {
  const size_t at = header.find(key);
  if (at == std::string_view::npos) return "";
  std::string_view v = header.substr(at + key.size());
  const size_t end = v.find_first_of(" \t\n<");
  return std::string(v.substr(0, end));
}

}  // namespace inferd
