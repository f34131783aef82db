// The render budget (RenderBudget in chat_template.h) and the engine's structural limits:
// every attack seen against the server fails with the error naming its limit, real
// templates render long conversations well within the defaults, and deep values and
// deep recursion are refused before they can overflow a small worker-thread stack.
// No test measures time: the limits are counts, so the outcomes are deterministic.
#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "chat/budget.h"
#include "chat/chat_template.h"
#include "chat/value.h"

namespace inferd {
namespace {

using Json = nlohmann::ordered_json;

StatusOr<std::string> Render(const std::string& src, const RenderBudget& budget = {}, const Json& ctx = Json::object()) {
  auto t = ChatTemplate::Parse(src);
  if (!t.ok()) return t.status();
  ChatTemplateInputs in;
  in.bos_token = "<s>";
  in.eos_token = "</s>";
  in.now_unix_seconds = 1721995200;
  in.extra_context = ctx;
  in.budget = budget;
  return (*t)->Render(in);
}

// The render fails with InvalidArgument and a message containing `what`.
void ExpectFails(const std::string& src, const std::string& what, const RenderBudget& budget = {}) {
  auto r = Render(src, budget);
  ASSERT_FALSE(r.ok()) << "rendered " << r->size() << " bytes: " << src;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(what), std::string::npos)
      << "expected '" << what << "' in: " << r.status().message() << "\n  template: " << src;
  EXPECT_EQ(r.status().message().rfind("chat template: ", 0), 0u) << r.status().message();
}

const std::string kStepLimit = "exceeded the render step limit (10000000)";
const std::string kAllocLimit = "render allocated more than 268435456 bytes";
const std::string kOutputLimit = "rendered output exceeds 16777216 bytes";
const std::string kTooDeep = "value nested too deeply (limit 512)";

// ---- the attacks seen against the server ----

TEST(RenderBudget, QuadraticStringAppendLoopHitsAllocLimit) {
  ExpectFails("{% set ns = namespace(s='') %}{% for i in range(100000) %}"
              "{% set ns.s = ns.s + 'xxxxxxxxxx' * 100 %}{% endfor %}{{ ns.s }}",
              kAllocLimit);
  ExpectFails("{% set ns = namespace(s='') %}{% for i in range(100000) %}"
              "{% set ns.s = ns.s ~ 'xxxxxxxxxx' * 100 %}{% endfor %}{{ ns.s|length }}",
              kAllocLimit);
}

TEST(RenderBudget, ListDoublingHitsAllocLimit) {
  ExpectFails("{% set ns = namespace(l=[1]) %}{% for i in range(100) %}{% set ns.l = ns.l + ns.l %}{% endfor %}"
              "{{ ns.l|length }}",
              kAllocLimit);
  // Each copy of the list copies its strings: quadratic bytes with a linear list.
  ExpectFails("{% set ns = namespace(l=[]) %}{% for i in range(100000) %}"
              "{% set ns.l = ns.l + ['x' * 100000] %}{% endfor %}{{ ns.l|length }}",
              kAllocLimit);
  ExpectFails("{% set ns = namespace(l=[1, 2, 3]) %}{% for i in range(100) %}{% set ns.l = ns.l * 2 %}{% endfor %}",
              kAllocLimit);
}

TEST(RenderBudget, ExponentialMacroHitsStepLimit) {
  ExpectFails("{% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(90) }}", kStepLimit);
}

TEST(RenderBudget, BigProductsAreRefusedBeforeAllocating) {
  ExpectFails("{{ 'x' * 300000000 }}", kAllocLimit);
  ExpectFails("{{ 'x' * 9223372036854775807 }}", kAllocLimit);
  ExpectFails("{{ ([1, 2] * 4611686018427387904)|length }}", kAllocLimit);
  ExpectFails("{% set s = 'x' * 100000000 %}{% set t = s ~ s ~ s %}", kAllocLimit);
  ExpectFails("{{ ['abc'] * 100000000 }}", kAllocLimit);
}

TEST(RenderBudget, BigRangesAddUpToAllocLimit) {
  ExpectFails("{{ range(100001)|length }}", "MAX_RANGE (100000)");
  ExpectFails("{% for i in range(1000) %}{% set r = range(100000) %}{% endfor %}", kAllocLimit);
}

TEST(RenderBudget, SixtyMegabyteOutputHitsOutputLimit) {
  ExpectFails("{% for i in range(60) %}{{ 'x' * 1000000 }}{% endfor %}", kOutputLimit);
  ExpectFails("{{ 'x' * 60000000 }}", kOutputLimit);
  // A block captured by set / macro is text too.
  ExpectFails("{% set big %}{% for i in range(60) %}{{ 'x' * 1000000 }}{% endfor %}{% endset %}", kOutputLimit);
  // Text nodes alone, no expression.
  ExpectFails("{% for i in range(10000) %}" + std::string(2000, 'y') + "{% endfor %}", kOutputLimit);
}

TEST(RenderBudget, AmplifyingBuiltinsAreChecked) {
  ExpectFails("{{ 'a\nb\nc'|indent(300000000) }}", kAllocLimit);
  ExpectFails("{{ ('\n' * 10000000)|indent(100) }}", kAllocLimit);
  ExpectFails("{{ 'x'.center(300000000) }}", kAllocLimit);
  ExpectFails("{{ 'x'.rjust(9223372036854775807) }}", kAllocLimit);
  ExpectFails("{{ '%999999999s' % 'x' }}", kAllocLimit);
  ExpectFails("{{ '%99999999999999999999d' % 1 }}", "format width or precision too large");
  ExpectFails("{{ ('x' * 10000000).replace('x', 'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyy') }}", kAllocLimit);
  ExpectFails("{{ ('x' * 10000000)|replace('', 'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyy') }}", kAllocLimit);
  ExpectFails("{{ ('{0}' * 1000000).format('x' * 1000) }}", kAllocLimit);
  ExpectFails("{{ (['x' * 1000] * 100000)|join('y' * 10000) }}", kAllocLimit);
  ExpectFails("{{ ('y' * 10000).join(['x'] * 100000) }}", kAllocLimit);
  ExpectFails("{{ (',' * 10000000).split(',')|length }}", kAllocLimit);
  ExpectFails("{{ ('x' * 10000000)|list|length }}", kAllocLimit);
  ExpectFails("{% for c in 'x' * 10000000 %}{% endfor %}", kAllocLimit);
  ExpectFails("{{ [[[[[[[[[[1]]]]]]]]]]|tojson(indent=1000) * 1000000 }}", kAllocLimit);
}

// Values are shared, so a value of n cells can print, serialize or compare as 2^n.
TEST(RenderBudget, SharedValuesCannotExplode) {
  const std::string dag =
      "{% set ns = namespace(l=[1], m=[1]) %}{% for i in range(60) %}"
      "{% set ns.l = [ns.l, ns.l] %}{% set ns.m = [ns.m, ns.m] %}{% endfor %}";
  ExpectFails(dag + "{{ ns.l }}", "chat template: ");
  ExpectFails(dag + "{{ ns.l|tojson }}", "chat template: ");
  ExpectFails(dag + "{{ ns.l|string|length }}", "chat template: ");
  ExpectFails(dag + "{{ ns.l == ns.m }}", kStepLimit);
  ExpectFails(dag + "{{ ns.l < ns.m }}", kStepLimit);
  ExpectFails(dag + "{{ ns.l in [ns.m] }}", kStepLimit);
}

// Scans that allocate nothing are charged by the bytes they compare.
TEST(RenderBudget, QuadraticSearchesHitStepLimit) {
  const std::string setup = "{% set a = 'a' * 4000000 %}{% set b = 'a' * 2000000 ~ 'b' %}";
  ExpectFails(setup + "{{ b in a }}", kStepLimit);
  ExpectFails(setup + "{{ a.find(b) }}", kStepLimit);
  ExpectFails(setup + "{{ a.rfind(b) }}", kStepLimit);
  ExpectFails(setup + "{{ a.count(b) }}", kStepLimit);
  ExpectFails(setup + "{{ a.split(b)|length }}", kStepLimit);
  ExpectFails(setup + "{{ a.replace(b, 'c') }}", kStepLimit);
  ExpectFails(setup + "{{ a.partition(b) }}", kStepLimit);
  // Short needles: every candidate position is charged (fuzzing found rfind quadratic in
  // sanitizer builds through memrchr; the scan is now a plain loop and charged per byte).
  RenderBudget small;
  small.max_steps = 200000;
  ExpectFails("{% set a = 'a' * 4000000 %}{{ a.rfind('a4000000b') }}", "exceeded the render step limit (200000)",
              small);
  ExpectFails("{% set a = 'a' * 4000000 %}{{ a.find('a4000000b') }}", "exceeded the render step limit (200000)",
              small);
  EXPECT_EQ(*Render("{{ 'abcabc'.rfind('bc') }} {{ 'abcabc'.rfind('x') }} {{ 'abc'.rfind('') }} {{ 'abc'.rfind('abcd') }}"),
            "4 -1 3 -1");
  // Comparing the same big string many times.
  ExpectFails("{% set l = ['a' * 1000000] * 100 %}{% for i in range(100000) %}{% if ('a' * 999999 ~ 'b') in l %}"
              "{% endif %}{% endfor %}",
              kStepLimit);
}

TEST(RenderBudget, CancelFlagSetBeforehand) {
  std::atomic<bool> cancel{true};
  RenderBudget b;
  b.cancel = &cancel;
  ExpectFails("{{ 1 }}", "render was cancelled", b);
}

TEST(RenderBudget, CancelFlagSetFromAnotherThread) {
  // Unbounded steps and bytes: only the flag can stop this render.
  std::atomic<bool> cancel{false};
  RenderBudget b;
  b.max_steps = INT64_MAX;
  b.max_alloc_bytes = SIZE_MAX;
  b.cancel = &cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    cancel = true;
  });
  ExpectFails("{% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(90) }}",
              "render was cancelled", b);
  canceller.join();
}

TEST(RenderBudget, CallerLimitsAreHonoredAndNamed) {
  RenderBudget b;
  b.max_steps = 1000;
  ExpectFails("{% for i in range(10000) %}{{ i }}{% endfor %}", "exceeded the render step limit (1000)", b);
  b = RenderBudget{};
  b.max_output_bytes = 100;
  ExpectFails("{{ 'x' * 101 }}", "rendered output exceeds 100 bytes", b);
  EXPECT_TRUE(Render("{{ 'x' * 100 }}", b).ok());
  b = RenderBudget{};
  b.max_alloc_bytes = 1 << 20;
  ExpectFails("{{ 'x' * 2000000 }}", "render allocated more than 1048576 bytes", b);
}

TEST(RenderBudget, ContinueFinalMessageSearchIsCharged) {
  // The final message does not appear: rfind tries every position of the 8 MB render.
  auto t = ChatTemplate::Parse("{{ 'a' * 8000000 }}");
  ASSERT_TRUE(t.ok());
  ChatTemplateInputs in;
  in.add_generation_prompt = false;
  in.continue_final_message = true;
  std::string content = std::string(1000000, 'a') + "b";
  in.messages = Json::array({{{"role", "user"}, {"content", content}}});
  in.budget.max_steps = 100000;
  auto r = (*t)->Render(in);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("exceeded the render step limit (100000)"), std::string::npos)
      << r.status().message();
}

// `{% set ns.out = ns.out ~ ... %}` appends in place when nothing else holds the text:
// the way templates build a prompt stays linear, and the result is jinja2's (expected
// strings rendered by jinja2 3.1).
TEST(RenderBudget, NamespaceAccumulationIsLinearAndExact) {
  auto r = Render("{% set ns = namespace(out='') %}{% for i in range(100000) %}{% set ns.out = ns.out ~ 'xxxxxxxxxx' %}"
                  "{% endfor %}{{ ns.out|length }}");
  ASSERT_TRUE(r.ok()) << r.status().ToString();  // quadratic copying would be 50 GB
  EXPECT_EQ(*r, "1000000");
  const std::pair<const char*, const char*> cases[] = {
      // A macro changes ns.out while the operands are evaluated: the value read first wins.
      {"{% set ns = namespace(out='a') %}{% macro m() %}{% set ns.out = 'X' %}m{% endmacro %}"
       "{% set ns.out = ns.out ~ m() ~ 'b' %}{{ ns.out }}",
       "amb"},
      // Another name holds the text: it must not see the append.
      {"{% set ns = namespace(out='a') %}{% set saved = ns.out %}{% set ns.out = ns.out ~ 'b' %}{{ saved }} {{ ns.out }}",
       "a ab"},
      {"{% set ns = namespace(out='') %}{% for i in range(3) %}{% set ns.out = ns.out ~ i ~ [i] %}{% set copy = ns.out %}"
       "{% endfor %}{{ ns.out }} {{ copy }}",
       "0[0]1[1]2[2] "},
      {"{% set ns = namespace(out='<'|safe) %}{% set ns.out = ns.out ~ '>' %}{{ ns.out }}", "<>"},
      {"{% set ns = namespace(out='a') %}{% set ns.out = ns.out ~ ns.out ~ ns.out %}{{ ns.out }}", "aaa"},
      {"{% set ns = namespace(out=1) %}{% set ns.out = ns.out ~ 2 %}{{ ns.out }}", "12"},
  };
  for (const auto& [src, want] : cases) {
    auto c = Render(src);
    ASSERT_TRUE(c.ok()) << src << ": " << c.status().ToString();
    EXPECT_EQ(*c, want) << src;
  }
}

// ---- regressions: loops that used to run 2^63 times, UB on extreme integers ----

TEST(RenderBudget, ExtremeIntegerArithmeticIsFastAndDefined) {
  EXPECT_EQ(*Render("{{ 1 ** 9223372036854775807 }}"), "1");
  EXPECT_EQ(*Render("{{ (-1) ** 9223372036854775807 }}"), "-1");
  EXPECT_EQ(*Render("{{ 0 ** 9223372036854775807 }}"), "0");
  EXPECT_EQ(*Render("{{ 2 ** 62 }}"), "4611686018427387904");
  EXPECT_EQ(*Render("{{ (-2) ** 63 }}"), "-9223372036854775808");
  ExpectFails("{{ 2 ** 63 }}", "integer overflow");
  ExpectFails("{{ 3 ** 9223372036854775807 }}", "integer overflow");
  EXPECT_EQ(*Render("{{ ('' * 9223372036854775807)|length }}"), "0");
  EXPECT_EQ(*Render("{{ ([] * 9223372036854775807)|length }}"), "0");
  ExpectFails("{{ -(-9223372036854775807 - 1) }}", "integer overflow");
  ExpectFails("{{ (-9223372036854775807 - 1)|abs }}", "integer overflow");
  EXPECT_EQ(*Render("{{ 1e300|int > 0 }}"), "True");
  EXPECT_EQ(*Render("{{ '1e300'|int > 0 }}"), "True");
  EXPECT_EQ(*Render("{{ [1, 2, 3][1::9223372036854775807] }}"), "[2]");
  EXPECT_EQ(*Render("{{ 'abc'[2::9223372036854775807] }}"), "c");
  EXPECT_EQ(*Render("{{ range(-9223372036854775807 - 1, 9223372036854775807, 4611686018427387904)|list|length }}"),
            "4");
  EXPECT_EQ(*Render("{{ 2.5|round(-9223372036854775807) }}"), "0.0");
}

TEST(RenderBudget, StripWithALongCharacterSetIsNotQuadratic) {
  // Every character of a 1M-character text is tested against a 1M-character set.
  auto r = Render("{{ (('a' * 1000000).strip('b' * 1000000 ~ 'a'))|length }}");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "0");
}

TEST(RenderBudget, GeneratorConsumptionIsCharged) {
  // |first on a generator shifts the rest: 10^5 times 10^5 moves without a charge.
  ExpectFails("{% set g = range(100000)|map('string') %}{% for i in range(100000) %}{{ g|first }}{% endfor %}",
              kStepLimit);
}

// ---- depth: values and recursion stay within a 1 MiB stack ----

// Runs fn on a thread with a 1 MiB stack, as a server worker thread may have (scaled in
// sanitizer builds, as the engine's own stack limit is: chat::kStackScale).
void RunOnSmallStack(const std::function<void()>& fn) {
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, (1u << 20) * chat::kStackScale), 0);
  pthread_t th;
  auto body = [](void* p) -> void* {
    (*static_cast<const std::function<void()>*>(p))();
    return nullptr;
  };
  ASSERT_EQ(pthread_create(&th, &attr, body, const_cast<std::function<void()>*>(&fn)), 0);
  pthread_join(th, nullptr);
  pthread_attr_destroy(&attr);
}

TEST(RenderDepth, LoopBuiltNestingHitsDepthLimit) {
  for (const char* src : {
           "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}",
           "{% set ns = namespace(x={}) %}{% for i in range(100000) %}{% set ns.x = {'a': ns.x} %}{% endfor %}",
           // dict.copy() used to reset the copy's depth to 1.
           "{% set ns = namespace(x={}) %}{% for i in range(100000) %}{% set ns.x = {'a': ns.x}.copy() %}{% endfor %}",
           // A bound method holds its object: a chain of them is a chain of values.
           "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x].copy %}{% endfor %}",
           // loop.previtem holds the previous loop's dict.
           "{% set ns = namespace(x=0) %}{% for a in range(100000) %}{% for b in [ns.x, 0] %}"
           "{% if not loop.first %}{% set ns.x = loop %}{% endif %}{% endfor %}{% endfor %}",
       }) {
    RunOnSmallStack([&] { ExpectFails(src, kTooDeep); });
  }
}

TEST(RenderDepth, DeepestValuesPrintCompareAndDieOnASmallStack) {
  // 510 wraps: 511-deep lists, so that [1, ns.y] is 512 deep, the deepest allowed.
  const std::string build =
      "{% set ns = namespace(x=[], y=[]) %}{% for i in range(510) %}{% set ns.x = [ns.x] %}"
      "{% set ns.y = [ns.y] %}{% endfor %}";
  RunOnSmallStack([&] {
    auto r = Render(build + "{{ ns.x|string|length }} {{ ns.x == ns.y }} {{ ns.x <= ns.y }} {{ ns.x in [1, ns.y] }}"
                            "{{ [ns.x]|pprint|length }}");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(*r, "1022 True True True1024");
    ExpectFails(build + "{{ ns.x|tojson }}", "tojson: value nested too deeply");
    ExpectFails(build + "{% set ns.x = [[ns.x]] %}", kTooDeep);
  });
}

TEST(RenderDepth, ValueHelpersOnTheDeepestValueUseLittleStack) {
  using chat::Value;
  RunOnSmallStack([] {
    Value v = Value::List({});
    for (int k = 1; k < chat::kMaxValueDepth; ++k) v = Value::List({v});
    Value w = v;
    EXPECT_TRUE(chat::PyEquals(v, w));
    EXPECT_EQ(chat::PyCompare(v, w), 0);
    EXPECT_EQ(v.Repr().size(), 2u * chat::kMaxValueDepth);
    EXPECT_THROW(Value::List({v}), chat::TemplateError);
    Value d = Value::Dict();
    for (int k = 1; k < chat::kMaxValueDepth; ++k) {
      Value next = Value::Dict();
      next.dict->Set("k", d);
      d = next;
    }
    chat::JsonOptions o;
    o.indent = 1;
    EXPECT_THROW(chat::ToJson(d, o), chat::TemplateError);  // tojson stops at 500
    v = Value();  // destroyed here, recursively, 512 deep
    d = Value();
  });
}

TEST(RenderDepth, DeepJsonInputIsRefused) {
  RunOnSmallStack([] {
    Json deep = Json::array();
    for (int k = 0; k < 100000; ++k) deep = Json::array({std::move(deep)});
    EXPECT_THROW(chat::Value::FromJson(deep), chat::TemplateError);
    // Through a render (smaller: nlohmann copies JSON recursively, and the context is copied).
    Json d1000 = Json::array();
    for (int k = 0; k < 1000; ++k) d1000 = Json::array({std::move(d1000)});
    auto r = Render("{{ d|length }}", {}, Json{{"d", d1000}});
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find(kTooDeep), std::string::npos) << r.status().message();
    Json ok = Json::array();
    for (int k = 1; k < chat::kMaxValueDepth; ++k) ok = Json::array({std::move(ok)});
    EXPECT_EQ(chat::ChildDepth(chat::Value::FromJson(ok)), chat::kMaxValueDepth);
    // nlohmann destroys deep JSON iteratively; only what we build is depth-limited.
  });
}

TEST(RenderDepth, DeepRecursionStopsBeforeTheStackEnds) {
  // 100 nested macro calls, each through a 60-deep expression: beyond what 100 macro
  // levels or the parse limits alone allow on a small stack.
  std::string expr = "f(n - 1)";
  for (int k = 0; k < 60; ++k) expr = "(" + expr + " + '')";
  const std::string src = "{% macro f(n) %}{% if n > 0 %}{{ " + expr + " }}{% endif %}{% endmacro %}{{ f(99) }}";
  RunOnSmallStack([&] { ExpectFails(src, "template recursion too deep"); });
  // The deepest expression the parser accepts, and 100 nested calls of a plain macro, fit.
  std::string sum = "1";
  for (int k = 1; k < 500; ++k) sum += " + 1";
  const std::string calls =
      "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{% else %}bottom{% endif %}{% endmacro %}{{ f(99) }}";
  RunOnSmallStack([&] {
    auto r = Render("{{ " + sum + " }}");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(*r, "500");
    r = Render(calls);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(*r, "bottom");
  });
  // Parsing the deepest template the parser accepts fits too.
  std::string nested;
  for (int k = 0; k < 120; ++k) nested += "{% if true %}";
  nested += "x";
  for (int k = 0; k < 120; ++k) nested += "{% endif %}";
  RunOnSmallStack([&] {
    auto r = Render(nested);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(*r, "x");
  });
}

// ---- real templates: long conversations stay well within the defaults ----

Json Tools() {
  return Json::parse(R"([
    {"type": "function", "function": {"name": "get_weather",
      "description": "Get the current weather in a city. Returns \"sunny\" or <rainy> & more.",
      "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name, e.g. Zürich"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Unit"},
        "days": {"type": "integer", "description": "Forecast days"}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "search", "description": "Search the web.",
      "parameters": {"type": "object", "properties": {
        "query": {"type": "string"}, "filters": {"type": "array", "items": {"type": "string"}},
        "opts": {"type": "object", "properties": {"safe": {"type": "boolean"}}}}, "required": ["query"]}}}])");
}

std::string Text(const char* who, int k) {
  // ~250 bytes, some of them non-ASCII and markup-like, as chat text is.
  return std::string(who) + " message " + std::to_string(k) +
         ": héllo 世界 🚀 \"quoted\" <tag> & 'single'. Lorem ipsum dolor sit amet, consectetur adipiscing "
         "elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, "
         "quis nostrud exercitation ullamco laboris.";
}

// A conversation of about n messages ending with a user message, in one of four shapes:
// with tool calls and results (shape 0), plain alternation after a system prompt (1),
// without one (2), or as 1 with the older tool formats some templates want (3).
constexpr int kNumShapes = 4;
Json Conversation(int shape, int n) {
  Json m = Json::array();
  if (shape != 2) m.push_back({{"role", "system"}, {"content", "You are a helpful assistant."}});
  for (int k = 0;; ++k) {
    // A turn: user, [tool call, tool result,] assistant; then room for the final user.
    const bool tool_turn = shape == 0 && static_cast<int>(m.size()) + 5 <= n;
    if (static_cast<int>(m.size()) + (tool_turn ? 5 : 3) > n) break;
    m.push_back({{"role", "user"}, {"content", Text("user", k)}});
    if (tool_turn) {
      char id[16];
      std::snprintf(id, sizeof(id), "call%05d", k % 100000);
      m.push_back({{"role", "assistant"}, {"content", ""},
                   {"tool_calls", Json::array({{{"id", id}, {"type", "function"},
                                                {"function", {{"name", "get_weather"},
                                                              {"arguments", {{"city", "Paris"}, {"days", 3}}}}}}})}});
      m.push_back({{"role", "tool"}, {"tool_call_id", id}, {"name", "get_weather"},
                   {"content", "{\"temperature\": 21, \"condition\": \"sunny\"}"}});
    }
    m.push_back({{"role", "assistant"}, {"content", Text("assistant", k)}});
  }
  m.push_back({{"role", "user"}, {"content", Text("user", n)}});
  return m;
}

StatusOr<std::string> RenderConversation(const ChatTemplate& t, int shape, int n, const RenderBudget& budget) {
  ChatTemplateInputs in;
  in.messages = Conversation(shape, n);
  if (shape == 0) in.tools = Tools();
  if (shape == 3) {
    // Command R+ tool_use: Cohere's parameter_definitions; firefunction-v2: `functions`.
    in.tools = Json::parse(R"([{"name": "get_weather", "description": "Get the weather.",
        "parameter_definitions": {"city": {"type": "str", "description": "City", "required": true}}}])");
    in.extra_context = {{"functions", Tools().dump()}, {"datetime", "2024-07-26"}};
  }
  in.bos_token = "<s>";
  in.eos_token = "</s>";
  in.now_unix_seconds = 1721995200;
  in.budget = budget;
  return t.Render(in);
}

TEST(RenderBudget, RealTemplatesRenderLongConversationsWellWithinDefaults) {
  const std::filesystem::path dir = std::filesystem::path(INFERD_TESTDATA_DIR) / "chat_templates";
  if (!std::filesystem::is_directory(dir)) GTEST_SKIP() << "no test data at " << dir;
  // "Well within": the 1,000-message render also fits half of every default.
  RenderBudget half;
  half.max_steps /= 2;
  half.max_output_bytes /= 2;
  half.max_alloc_bytes /= 2;
  int templates = 0, rendered = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".jinja") continue;
    ++templates;
    std::ifstream f(entry.path());
    std::stringstream ss;
    ss << f.rdbuf();
    auto t = ChatTemplate::Parse(ss.str());
    ASSERT_TRUE(t.ok()) << entry.path() << ": " << t.status().ToString();
    // The richest shape the template accepts (some refuse tool calls or a system prompt).
    int shape = 0;
    while (shape < kNumShapes && !RenderConversation(**t, shape, 8, {}).ok()) ++shape;
    if (shape == kNumShapes) {
      ADD_FAILURE() << entry.path().filename() << " renders none of the conversation shapes";
      continue;
    }
    auto r = RenderConversation(**t, shape, 1000, half);
    EXPECT_TRUE(r.ok()) << entry.path().filename() << " (shape " << shape << "): " << r.status().ToString();
    if (r.ok()) {
      EXPECT_GT(r->size(), 100000u) << entry.path().filename();
      ++rendered;
    }
  }
  EXPECT_EQ(rendered, templates);
  EXPECT_GE(templates, 70);
}

}  // namespace
}  // namespace inferd
