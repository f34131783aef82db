#include "util/json.h"

#include <cmath>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

namespace inferd {
namespace {

// Builds the DOM from SAX events. Invariant: stack_ holds the open containers from the
// root down; each is the most recently inserted element of the one above it, and nothing
// is inserted into a container while one of its children is open, so the pointers stay
// valid (vector storage only grows at the open end; std::map nodes never move).
template <class Json>
class BoundedDomBuilder {
 public:
  using number_integer_t = typename Json::number_integer_t;
  using number_unsigned_t = typename Json::number_unsigned_t;
  using number_float_t = typename Json::number_float_t;
  using string_t = typename Json::string_t;
  using binary_t = typename Json::binary_t;
  static constexpr bool kOrdered = !std::is_same_v<Json, nlohmann::json>;

  BoundedDomBuilder(Json* root, JsonError* err, int max_depth) : root_(root), err_(err), max_depth_(max_depth) {}

  bool null() { return Put(nullptr); }
  bool boolean(bool v) { return Put(v); }
  bool number_integer(number_integer_t v) { return Put(v); }
  bool number_unsigned(number_unsigned_t v) { return Put(v); }
  bool number_float(number_float_t v, const string_t&) { return Put(v); }
  bool string(string_t& v) { return Put(std::move(v)); }
  bool binary(binary_t&) { return Fail("binary values are not JSON"); }

  bool start_object(std::size_t) { return Open(Json::object()); }
  bool start_array(std::size_t) { return Open(Json::array()); }
  bool end_object() { return Close(); }
  bool end_array() { return Close(); }
  bool key(string_t& k) {
    stack_.back().key = std::move(k);
    return true;
  }

  bool parse_error(std::size_t position, const std::string& token, const nlohmann::detail::exception& ex) {
    err_->byte_offset = position > 0 ? position - 1 : 0;
    if (ex.id == 406) {  // out_of_range: a number literal beyond what a double holds
      err_->message = fmt::format("number overflow: {} is not a finite number", token);
      err_->path = Path(/*include_pending=*/true);
      return false;
    }
    // nlohmann's message starts with "[json.exception.parse_error.101] "; keep the rest.
    std::string what = ex.what();
    if (auto p = what.find("] "); what.rfind("[json.exception.", 0) == 0 && p != std::string::npos) {
      what = what.substr(p + 2);
    }
    err_->message = std::move(what);
    err_->path = Path(/*include_pending=*/true);
    return false;
  }

 private:
  struct Frame {
    Json* container;
    string_t key;                                    // objects: the key of the value being parsed
    std::unordered_map<string_t, size_t> index;      // ordered objects: key -> position
  };

  bool Fail(std::string message) {
    err_->message = std::move(message);
    err_->path = Path(true);
    return false;
  }

  template <class V>
  Json* Insert(V&& v) {
    if (stack_.empty()) {
      *root_ = Json(std::forward<V>(v));
      return root_;
    }
    Frame& f = stack_.back();
    if (f.container->is_array()) {
      auto& arr = f.container->template get_ref<typename Json::array_t&>();
      arr.emplace_back(std::forward<V>(v));
      return &arr.back();
    }
    auto& obj = f.container->template get_ref<typename Json::object_t&>();
    if constexpr (kOrdered) {
      // ordered_map is a vector of pairs; going through the vector skips its linear key
      // search (the index knows where each key is).
      auto& vec = static_cast<typename Json::object_t::Container&>(obj);
      auto [it, inserted] = f.index.try_emplace(f.key, vec.size());
      if (!inserted) {
        vec[it->second].second = Json(std::forward<V>(v));
        return &vec[it->second].second;
      }
      vec.emplace_back(f.key, Json(std::forward<V>(v)));
      return &vec.back().second;
    } else {
      Json& slot = obj[f.key];
      slot = Json(std::forward<V>(v));
      return &slot;
    }
  }

  template <class V>
  bool Put(V&& v) {
    Insert(std::forward<V>(v));
    return true;
  }

  bool Open(Json empty) {
    if (static_cast<int>(stack_.size()) >= max_depth_) {
      return Fail(fmt::format("JSON nested deeper than {} levels", max_depth_));
    }
    Json* c = Insert(std::move(empty));
    stack_.push_back(Frame{c, {}, {}});
    return true;
  }

  bool Close() {
    stack_.pop_back();
    return true;
  }

  // "a.b[3].c"; the innermost levels of a very deep path are elided.
  std::string Path(bool include_pending) const {
    std::string out;
    constexpr size_t kMaxShown = 16;
    for (size_t i = 0; i < stack_.size(); ++i) {
      if (i == kMaxShown && stack_.size() > kMaxShown + 1) {
        out += "...";
        i = stack_.size() - 1;
      }
      const Frame& f = stack_[i];
      const bool last = i + 1 == stack_.size();
      if (!last || include_pending) {
        if (f.container->is_array()) {
          // The index of the element being parsed: the count of elements before it, or the
          // last one when a child container is open.
          size_t n = f.container->size();
          if (!last && n > 0) --n;
          out += fmt::format("[{}]", n);
        } else if (!f.key.empty() || !last) {
          if (!out.empty()) out += '.';
          out += f.key;
        }
      }
    }
    return out;
  }

  Json* root_;
  JsonError* err_;
  int max_depth_;
  std::vector<Frame> stack_;
};

}  // namespace

template <class Json>
bool ParseJson(std::string_view text, Json* out, JsonError* err, int max_depth) {
  *out = Json();
  *err = JsonError{};
  BoundedDomBuilder<Json> builder(out, err, max_depth);
  const bool ok = Json::sax_parse(text.begin(), text.end(), &builder, nlohmann::detail::input_format_t::json,
                                  /*strict=*/true);
  if (!ok) {
    *out = Json();
    if (err->message.empty()) err->message = "malformed JSON";
  }
  return ok;
}

template bool ParseJson<nlohmann::json>(std::string_view, nlohmann::json*, JsonError*, int);
template bool ParseJson<nlohmann::ordered_json>(std::string_view, nlohmann::ordered_json*, JsonError*, int);

StatusOr<nlohmann::json> ParseJson(std::string_view text, const std::string& what) {
  nlohmann::json j;
  JsonError err;
  if (!ParseJson(text, &j, &err)) {
    return InvalidArgument(fmt::format("{}: invalid JSON{}: {}", what, err.path.empty() ? "" : " at " + err.path,
                                       err.message));
  }
  return j;
}

std::string FormatJsonError(const JsonError& err) {
  return err.path.empty() ? err.message : fmt::format("{}: {}", err.path, err.message);
}

}  // namespace inferd
