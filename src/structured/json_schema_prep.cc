#include "structured/json_schema_prep.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <optional>
#include <set>
#include <string_view>
#include <vector>

#include "util/json.h"

namespace inferd::structured {
namespace {

using Json = nlohmann::ordered_json;

// allOf members that are $refs are inlined, at most this many in one schema (a loop would
// inline forever).
constexpr int kMaxRefExpansions = 32;

// Exact patterns for formats whose XGrammar 0.2.9 patterns accept invalid values.
constexpr std::string_view kYear = R"((000[1-9]|00[1-9]\d|0[1-9]\d\d|[1-9]\d{3}))";
std::string DatePattern() {
  return fmt::format(
      R"(({}-((0[13578]|1[02])-(0[1-9]|[12]\d|3[01])|(0[469]|11)-(0[1-9]|[12]\d|30)|02-(0[1-9]|1\d|2[0-8]))|)"
      R"((\d\d(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)-02-29))",
      kYear);
}
// The fraction spelled out: XGrammar 0.2.9 makes the "\." of "(\.\d{1,9})?" or "(\.\d+)?"
// optional inside a JSON string (it accepts 12:34:4789Z).
constexpr std::string_view kTime =
    R"(([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d\d?\d?\d?\d?\d?\d?\d?\d?)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d))";
constexpr std::string_view kIpv4Octet = R"((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d))";

// A format's exact pattern and the lengths of the strings it matches.
struct FormatSpec {
  std::string pattern;
  uint64_t min_length, max_length;
};

const FormatSpec* FormatPattern(const std::string& format) {
  static const FormatSpec date{"^" + DatePattern() + "$", 10, 10};
  static const FormatSpec time{fmt::format("^{}$", kTime), 9, 24};  // 00:00:00Z .. 8 + 10 fraction + 6 offset
  static const FormatSpec date_time{fmt::format("^{}T{}$", DatePattern(), kTime), 20, 35};
  static const FormatSpec ipv4{fmt::format(R"(^({}\.){{3}}{}$)", kIpv4Octet, kIpv4Octet), 7, 15};
  static const FormatSpec hostname{
      R"(^([A-Za-z0-9]([A-Za-z0-9-]{0,28}[A-Za-z0-9])?\.){0,7}[A-Za-z]([A-Za-z0-9-]{0,28}[A-Za-z0-9])?$)", 1, 247};
  if (format == "date") return &date;
  if (format == "time") return &time;
  if (format == "date-time") return &date_time;
  if (format == "ipv4") return &ipv4;
  if (format == "hostname") return &hostname;
  return nullptr;
}

Status Unmergeable(const std::string& what) {
  return InvalidArgument(fmt::format("allOf cannot be merged into one schema: {}", what));
}

bool IsAnnotation(const std::string& k) {
  static const std::set<std::string> kKeys = {"title", "description", "$comment", "examples", "default", "$id",
                                              "$schema", "deprecated", "readOnly", "writeOnly", "$anchor"};
  return kKeys.count(k) > 0;
}

std::vector<std::string> Types(const Json& t) {
  std::vector<std::string> out;
  if (t.is_string()) out.push_back(t.get<std::string>());
  if (t.is_array()) {
    for (const Json& x : t) {
      if (x.is_string()) out.push_back(x.get<std::string>());
    }
  }
  return out;
}

StatusOr<Json> IntersectTypes(const Json& a, const Json& b) {
  Json out = Json::array();
  const std::vector<std::string> tb = Types(b);
  for (const std::string& x : Types(a)) {
    for (const std::string& y : tb) {
      std::string both = x == y                                    ? x
                         : (x == "integer" && y == "number") ||
                                   (x == "number" && y == "integer") ? "integer"
                                                                     : "";
      if (!both.empty() && std::find(out.begin(), out.end(), Json(both)) == out.end()) out.push_back(both);
    }
  }
  if (out.empty()) return Unmergeable(fmt::format("no common type in {} and {}", a.dump(), b.dump()));
  if (out.size() == 1) return out[0];
  return out;
}

Json BothOf(const Json& a, const Json& b) { return Json{{"allOf", Json::array({a, b})}}; }

// Folds subschema b into a (both objects), keyword by keyword.
Status MergeInto(Json& a, const Json& b) {
  static const std::set<std::string> kLower = {"minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties",
                                               "minContains"};
  static const std::set<std::string> kUpper = {"maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties",
                                               "maxContains"};
  for (auto it = b.begin(); it != b.end(); ++it) {
    const std::string& k = it.key();
    const Json& vb = it.value();
    if (!a.contains(k)) {
      a[k] = vb;
      continue;
    }
    Json& va = a[k];
    if (va == vb || IsAnnotation(k)) continue;
    if (k == "properties" && va.is_object() && vb.is_object()) {
      for (auto p = vb.begin(); p != vb.end(); ++p) {
        if (!va.contains(p.key())) {
          va[p.key()] = p.value();
        } else if (va[p.key()] != p.value()) {
          va[p.key()] = BothOf(va[p.key()], p.value());
        }
      }
    } else if (k == "required" && va.is_array() && vb.is_array()) {
      for (const Json& r : vb) {
        if (std::find(va.begin(), va.end(), r) == va.end()) va.push_back(r);
      }
    } else if (k == "type") {
      INFERD_ASSIGN_OR_RETURN(va, IntersectTypes(va, vb));
    } else if (k == "enum" && va.is_array() && vb.is_array()) {
      Json both = Json::array();
      for (const Json& x : va) {
        if (std::find(vb.begin(), vb.end(), x) != vb.end()) both.push_back(x);
      }
      if (both.empty()) return Unmergeable("the enums have no value in common");
      va = both;
    } else if ((kLower.count(k) || kUpper.count(k)) && va.is_number() && vb.is_number()) {
      const bool lower = kLower.count(k) > 0;
      if ((lower && vb.get<double>() > va.get<double>()) || (!lower && vb.get<double>() < va.get<double>())) va = vb;
    } else if (k == "additionalProperties" || k == "items" || k == "unevaluatedProperties") {
      if (va.is_boolean() && !va.get<bool>()) continue;
      if ((vb.is_boolean() && !vb.get<bool>()) || (va.is_boolean() && va.get<bool>())) {
        va = vb;
      } else if (!(vb.is_boolean() && vb.get<bool>())) {
        va = BothOf(va, vb);
      }
    } else if (k == "uniqueItems" && va.is_boolean() && vb.is_boolean()) {
      va = va.get<bool>() || vb.get<bool>();
    } else if ((k == "$defs" || k == "definitions") && va.is_object() && vb.is_object()) {
      for (auto d = vb.begin(); d != vb.end(); ++d) {
        if (va.contains(d.key()) && va[d.key()] != d.value()) return Unmergeable(fmt::format("two {}/{}", k, d.key()));
        va[d.key()] = d.value();
      }
    } else {
      return Unmergeable(fmt::format("the subschemas have different \"{}\"", k));
    }
  }
  return Status::OK();
}

// The formats XGrammar 0.2.9 turns into a pattern (JSONFormatToRegexPattern).
bool IsEnforcedFormat(const Json& node) {
  static const std::set<std::string> kFormats = {"email", "date", "time", "date-time", "duration", "ipv4", "ipv6",
                                                 "hostname", "uuid", "uri", "uri-reference", "uri-template",
                                                 "json-pointer", "relative-json-pointer"};
  return node.contains("format") && node["format"].is_string() && kFormats.count(node["format"].get<std::string>());
}

// A length bound's value: a non-negative integer, however the JSON spells it (0, -0, 2.0);
// nullopt for anything else.
std::optional<uint64_t> Count(const Json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) return v.get<int64_t>() >= 0 ? std::optional<uint64_t>(v.get<int64_t>()) : std::nullopt;
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (d >= 0 && d < 9007199254740992.0 && d == static_cast<double>(static_cast<uint64_t>(d))) {
      return static_cast<uint64_t>(d);
    }
  }
  return std::nullopt;
}

// A pattern that is one character class, \\d, \\w, "." or a letter or digit repeated, anchored or not
// ("^[a-z0-9-]+$", "\\d{2,8}"): each repetition is one character.
struct Repeated {
  std::string atom;
  uint64_t lo = 1, hi = 1;  // hi UINT64_MAX: unbounded
};

std::optional<Repeated> ParseRepeated(std::string s) {
  if (!s.empty() && s.front() == '^') s.erase(0, 1);
  if (s.size() >= 2 && s.back() == '$' && s[s.size() - 2] != '\\') s.pop_back();
  Repeated r;
  size_t i = 0;
  if (s.empty()) return std::nullopt;
  if (s[0] == '[') {
    for (i = 1; i < s.size() && !(s[i] == ']' && i > 1); i += s[i] == '\\' ? 2 : 1) {
    }
    if (i >= s.size()) return std::nullopt;
    ++i;
  } else if (s[0] == '\\' && s.size() > 1 && (s[1] == 'd' || s[1] == 'w')) {
    i = 2;
  } else if (s[0] == '.' || std::isalnum(static_cast<unsigned char>(s[0]))) {
    i = 1;
  } else {
    return std::nullopt;
  }
  r.atom = s.substr(0, i);
  const std::string q = s.substr(i);
  auto digits = [](const std::string& d) {
    return !d.empty() && d.size() < 10 && d.find_first_not_of("0123456789") == std::string::npos;
  };
  if (q == "+" || q == "*") {
    r.lo = q == "+" ? 1 : 0;
    r.hi = UINT64_MAX;
  } else if (q.size() >= 3 && q.front() == '{' && q.back() == '}') {
    const std::string body = q.substr(1, q.size() - 2);
    const size_t comma = body.find(',');
    const std::string lo = body.substr(0, comma), hi = comma == std::string::npos ? lo : body.substr(comma + 1);
    if (!digits(lo) || (!hi.empty() && !digits(hi))) return std::nullopt;
    r.lo = std::stoull(lo);
    r.hi = hi.empty() ? UINT64_MAX : std::stoull(hi);
  } else if (!q.empty()) {
    return std::nullopt;
  }
  return r;
}

// XGrammar 0.2.9 drops minLength/maxLength on a string that has a pattern or an enforced
// format. A pattern that is one character class repeated ("^[a-z0-9-]+$", "\\d{2,8}") takes
// the bounds into its repetition (each repetition is one character, as the bounds count);
// any other combination is an error rather than a bound silently ignored (vLLM's xgrammar
// backend refuses such schemas too).
Status LengthWithPattern(Json& node) {
  const bool min = node.contains("minLength"), max = node.contains("maxLength");
  if (!(min || max) || !(node.contains("pattern") || IsEnforcedFormat(node))) return Status::OK();
  if ((min && !Count(node["minLength"])) || (max && !Count(node["maxLength"]))) {
    return Status::OK();  // XGrammar reports the invalid bound itself
  }
  const std::string pattern = node.contains("pattern") && node["pattern"].is_string() ? node["pattern"].get<std::string>() : "";
  std::optional<Repeated> r = node.contains("format") ? std::nullopt : ParseRepeated(pattern);
  if (r) {
    if (min) r->lo = std::max<uint64_t>(r->lo, *Count(node["minLength"]));
    if (max) r->hi = std::min<uint64_t>(r->hi, *Count(node["maxLength"]));
    if (r->lo > r->hi) return InvalidArgument(fmt::format("pattern {} allows no string of the length bounds", pattern));
    node["pattern"] = fmt::format("^{}{{{},{}}}$", r->atom, r->lo, r->hi == UINT64_MAX ? "" : std::to_string(r->hi));
    node.erase("minLength");
    node.erase("maxLength");
    return Status::OK();
  }
  return InvalidArgument(fmt::format(
      "a string with {} and minLength/maxLength is not supported (the grammar engine would drop the length "
      "bounds); use a pattern with the bounds in its repetition, or drop one of them",
      node.contains("pattern") ? "pattern " + node["pattern"].dump() : "format " + node["format"].dump()));
}

class Preparer {
 public:
  explicit Preparer(const Json& root) : root_(root) {}

  Status Schema(Json& node) {
    if (!node.is_object()) return Status::OK();
    if (node.contains("allOf") && node["allOf"].is_array()) INFERD_RETURN_IF_ERROR(MergeAllOf(node));
    if (node.contains("format") && node["format"].is_string() && !node.contains("pattern")) {
      if (const FormatSpec* f = FormatPattern(node["format"].get<std::string>())) {
        node["pattern"] = f->pattern;
        node.erase("format");
        // Length bounds that every string of the pattern meets say nothing more.
        if (node.contains("minLength") && Count(node["minLength"]).value_or(UINT64_MAX) <= f->min_length) {
          node.erase("minLength");
        }
        if (node.contains("maxLength") && Count(node["maxLength"]).value_or(0) >= f->max_length) {
          node.erase("maxLength");
        }
      }
    }
    INFERD_RETURN_IF_ERROR(LengthWithPattern(node));
    static const std::set<std::string> kMaps = {"properties", "$defs", "definitions", "patternProperties",
                                                "dependentSchemas"};
    static const std::set<std::string> kLists = {"anyOf", "oneOf", "prefixItems", "items"};
    static const std::set<std::string> kOne = {"items", "additionalProperties", "not", "if", "then", "else",
                                               "contains", "propertyNames", "unevaluatedProperties",
                                               "unevaluatedItems", "additionalItems"};
    for (auto it = node.begin(); it != node.end(); ++it) {
      Json& v = it.value();
      if (kMaps.count(it.key()) && v.is_object()) {
        for (auto m = v.begin(); m != v.end(); ++m) INFERD_RETURN_IF_ERROR(Schema(m.value()));
      } else if (kLists.count(it.key()) && v.is_array()) {
        for (Json& s : v) INFERD_RETURN_IF_ERROR(Schema(s));
      } else if (kOne.count(it.key())) {
        INFERD_RETURN_IF_ERROR(Schema(v));
      }
    }
    return Status::OK();
  }

 private:
  // A local reference ("#/$defs/x", "#" for the root) with its siblings, or the schema itself.
  StatusOr<Json> Resolve(const Json& sub) {
    if (!sub.is_object() || !sub.contains("$ref")) return sub;
    const Json& ref = sub["$ref"];
    if (!ref.is_string() || ref.get<std::string>().empty() || ref.get<std::string>()[0] != '#') {
      return Unmergeable(fmt::format("$ref {} is not a local reference", ref.dump()));
    }
    if (++expansions_ > kMaxRefExpansions) {
      return Unmergeable(fmt::format("it inlines more than {} $refs (they refer to each other in a loop, or there "
                                     "are too many)",
                                     kMaxRefExpansions));
    }
    Json target;
    try {
      target = root_.at(Json::json_pointer(ref.get<std::string>().substr(1)));
    } catch (const std::exception&) {
      return Unmergeable(fmt::format("$ref {} points nowhere", ref.dump()));
    }
    INFERD_ASSIGN_OR_RETURN(Json resolved, Resolve(target));
    if (!resolved.is_object()) return resolved;
    Json rest = sub;
    rest.erase("$ref");
    INFERD_RETURN_IF_ERROR(MergeInto(resolved, rest));
    return resolved;
  }

  Status MergeAllOf(Json& node) {
    Json subs = std::move(node["allOf"]);
    node.erase("allOf");
    std::vector<std::set<std::string>> closed;  // property names of subschemas closed by additionalProperties: false
    for (const Json& raw : subs) {
      INFERD_ASSIGN_OR_RETURN(Json sub, Resolve(raw));
      if (sub.is_boolean()) {
        if (!sub.get<bool>()) return Unmergeable("a subschema is false");
        continue;
      }
      if (!sub.is_object()) return InvalidArgument("allOf: each subschema must be an object or a boolean");
      INFERD_RETURN_IF_ERROR(Schema(sub));  // nested allOf first
      if (sub.contains("additionalProperties") && sub["additionalProperties"] == Json(false)) {
        std::set<std::string> names;
        if (sub.contains("properties") && sub["properties"].is_object()) {
          for (auto p = sub["properties"].begin(); p != sub["properties"].end(); ++p) names.insert(p.key());
        }
        closed.push_back(std::move(names));
      }
      INFERD_RETURN_IF_ERROR(MergeInto(node, sub));
    }
    if (!closed.empty() && node.contains("properties") && node["properties"].is_object()) {
      Json kept = Json::object();
      for (auto p = node["properties"].begin(); p != node["properties"].end(); ++p) {
        const bool everywhere = std::all_of(closed.begin(), closed.end(), [&](const auto& c) { return c.count(p.key()); });
        if (everywhere) {
          kept[p.key()] = p.value();
        } else if (node.contains("required") && node["required"].is_array() &&
                   std::find(node["required"].begin(), node["required"].end(), Json(p.key())) != node["required"].end()) {
          return Unmergeable(fmt::format("required property \"{}\" is not allowed by a subschema with "
                                         "additionalProperties: false",
                                         p.key()));
        }
      }
      node["properties"] = std::move(kept);
    }
    return Status::OK();
  }

  const Json& root_;
  int expansions_ = 0;
};

}  // namespace

StatusOr<std::string> PrepareJsonSchema(const std::string& schema) {
  Json doc;
  JsonError err;
  if (!ParseJson(schema, &doc, &err)) return InvalidArgument("invalid JSON schema: " + FormatJsonError(err));
  const Json root = doc;  // $refs resolve against the schema as sent
  Preparer prep(root);
  INFERD_RETURN_IF_ERROR(prep.Schema(doc));
  try {
    return doc.dump();
  } catch (const std::exception& e) {  // invalid UTF-8 in a string
    return InvalidArgument(fmt::format("invalid JSON schema: {}", e.what()));
  }
}

}  // namespace inferd::structured
