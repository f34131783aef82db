#include "server/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <variant>

#include "util/logging.h"

namespace inferd::metrics {

namespace {

// Straight to stderr, not through the logger, which may not be set up yet (static init).
[[noreturn]] void Fail(const std::string& what) { FatalInvariant("metrics", what); }

bool IsMetricName(std::string_view s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool IsLabelName(std::string_view s) {
  if (s.empty() || s.starts_with("__")) return false;  // "__" names are reserved
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

const char* TypeName(MetricType t) {
  switch (t) {
    case MetricType::kCounter: return "counter";
    case MetricType::kGauge: return "gauge";
    case MetricType::kHistogram: return "histogram";
  }
  return "untyped";
}

// `{a="x",b="y"` without the closing brace (so that a histogram can append le), or "" when
// there are no labels and nothing is appended.
std::string LabelPrefix(const std::vector<std::string>& names, const std::vector<std::string>& values) {
  std::string s;
  for (size_t i = 0; i < names.size(); ++i) {
    s += i == 0 ? "{" : ",";
    s += names[i];
    s += "=\"";
    s += EscapeLabelValue(values[i]);
    s += '"';
  }
  return s;
}

std::string CloseLabels(const std::string& prefix) { return prefix.empty() ? "" : prefix + "}"; }

void AppendSample(std::string* out, std::string_view name, std::string_view labels, double v) {
  out->append(name);
  out->append(labels);
  out->push_back(' ');
  out->append(FormatValue(v));
  out->push_back('\n');
}

}  // namespace

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Integers below 2^53 are exact in a double: write them plainly, as "5", not "5e+00".
  if (v == std::trunc(v) && std::fabs(v) < 9007199254740992.0) {
    return std::to_string(static_cast<long long>(v));
  }
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);  // shortest round-trip form
  return std::string(buf, res.ptr);
}

std::string EscapeLabelValue(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string EscapeHelp(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

void Counter::Inc(double amount) {
  if (!(amount >= 0)) return;  // negative or NaN: a counter never goes down
  value_.fetch_add(amount, std::memory_order_relaxed);
}

Histogram::Histogram(const std::vector<double>* bounds) : bounds_(bounds), counts_(bounds->size() + 1, 0) {}

void Histogram::Observe(double v) {
  if (std::isnan(v)) return;
  // Bucket i counts bounds[i-1] < v <= bounds[i]; the last one is (bounds.back(), +Inf].
  size_t i = static_cast<size_t>(std::lower_bound(bounds_->begin(), bounds_->end(), v) - bounds_->begin());
  std::lock_guard<std::mutex> lock(mu_);
  ++counts_[i];
  sum_ += v;
  ++count_;
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  std::lock_guard<std::mutex> lock(mu_);
  s.cumulative.resize(counts_.size());
  uint64_t acc = 0;
  for (size_t i = 0; i < counts_.size(); ++i) s.cumulative[i] = acc += counts_[i];
  s.sum = sum_;
  s.count = count_;
  return s;
}

struct Family::ChildHolder {
  template <class T, class... Args>
  explicit ChildHolder(std::in_place_type_t<T> t, Args&&... args) : child(t, std::forward<Args>(args)...) {}
  std::variant<Counter, Gauge, Histogram> child;
};

Family::Family(MetricType type, std::string name, std::string help, std::vector<std::string> label_names,
               std::vector<double> bounds)
    : type_(type), name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)),
      bounds_(std::move(bounds)) {
  if (!IsMetricName(name_)) Fail("invalid metric name '" + name_ + "'");
  for (size_t i = 0; i < label_names_.size(); ++i) {
    const std::string& l = label_names_[i];
    if (!IsLabelName(l)) Fail("invalid label name '" + l + "' in " + name_);
    if (type_ == MetricType::kHistogram && l == "le") Fail("label 'le' is reserved in histogram " + name_);
    if (std::find(label_names_.begin(), label_names_.begin() + i, l) != label_names_.begin() + i) {
      Fail("duplicate label name '" + l + "' in " + name_);
    }
  }
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i]) || (i > 0 && !(bounds_[i] > bounds_[i - 1]))) {
      Fail("histogram " + name_ + ": bucket bounds must be finite and strictly increasing");
    }
  }
  if (label_names_.empty()) Child({});  // render 0 before the first observation
}

Family::~Family() = default;

void* Family::Child(const std::vector<std::string>& label_values) {
  if (label_values.size() != label_names_.size()) {
    Fail(name_ + ": " + std::to_string(label_values.size()) + " label values for " +
         std::to_string(label_names_.size()) + " label names");
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = children_[label_values];
  if (!slot) {
    switch (type_) {
      case MetricType::kCounter: slot = std::make_unique<ChildHolder>(std::in_place_type<Counter>); break;
      case MetricType::kGauge: slot = std::make_unique<ChildHolder>(std::in_place_type<Gauge>); break;
      case MetricType::kHistogram:
        slot = std::make_unique<ChildHolder>(std::in_place_type<Histogram>, &bounds_);
        break;
    }
  }
  return std::visit([](auto& c) -> void* { return &c; }, slot->child);
}

void Family::Render(std::string* out) const {
  *out += "# HELP " + name_ + " " + EscapeHelp(help_) + "\n";
  *out += "# TYPE " + name_ + " " + TypeName(type_) + "\n";
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [values, holder] : children_) {
    std::string prefix = LabelPrefix(label_names_, values);
    if (const auto* c = std::get_if<Counter>(&holder->child)) {
      AppendSample(out, name_, CloseLabels(prefix), c->Value());
    } else if (const auto* g = std::get_if<Gauge>(&holder->child)) {
      AppendSample(out, name_, CloseLabels(prefix), g->Value());
    } else if (const auto* h = std::get_if<Histogram>(&holder->child)) {
      Histogram::Snapshot s = h->Read();
      const std::string le_prefix = prefix.empty() ? "{le=\"" : prefix + ",le=\"";
      const std::string bucket = name_ + "_bucket";
      for (size_t i = 0; i < s.cumulative.size(); ++i) {
        std::string le = i < bounds_.size() ? FormatValue(bounds_[i]) : "+Inf";
        AppendSample(out, bucket, le_prefix + le + "\"}", static_cast<double>(s.cumulative[i]));
      }
      AppendSample(out, name_ + "_sum", CloseLabels(prefix), s.sum);
      AppendSample(out, name_ + "_count", CloseLabels(prefix), static_cast<double>(s.count));
    }
  }
}

Registry::Registry() = default;
Registry::~Registry() = default;

Family& Registry::Add(std::unique_ptr<Family> family) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& f : families_) {
    if (f->name() == family->name()) Fail("duplicate metric family " + family->name());
  }
  families_.push_back(std::move(family));
  return *families_.back();
}

CounterFamily& Registry::AddCounter(std::string name, std::string help, std::vector<std::string> label_names) {
  if (!name.ends_with("_total")) name += "_total";
  return static_cast<CounterFamily&>(Add(std::make_unique<CounterFamily>(
      MetricType::kCounter, std::move(name), std::move(help), std::move(label_names), std::vector<double>{})));
}

GaugeFamily& Registry::AddGauge(std::string name, std::string help, std::vector<std::string> label_names) {
  return static_cast<GaugeFamily&>(Add(std::make_unique<GaugeFamily>(
      MetricType::kGauge, std::move(name), std::move(help), std::move(label_names), std::vector<double>{})));
}

HistogramFamily& Registry::AddHistogram(std::string name, std::string help, std::vector<std::string> label_names,
                                        std::vector<double> bounds) {
  return static_cast<HistogramFamily&>(Add(std::make_unique<HistogramFamily>(
      MetricType::kHistogram, std::move(name), std::move(help), std::move(label_names), std::move(bounds))));
}

std::string Registry::Render() const {
  std::string out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& f : families_) f->Render(&out);
  return out;
}

// ---- ServerMetrics -------------------------------------------------------------------------

const std::vector<double> kTtftBuckets = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25,  0.5,   0.75,
                                          1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
const std::vector<double> kInterTokenBuckets = {0.01, 0.025, 0.05, 0.075, 0.1,  0.15, 0.2,  0.3,  0.4, 0.5,
                                                0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
const std::vector<double> kRequestLatencyBuckets = {0.3,  0.5,  0.8,  1.0,  1.5,   2.0,   2.5,   5.0,   10.0,  15.0, 20.0,
                                                    30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};

void ServerMetrics::CounterTracker::Advance(int64_t total) {
  if (total <= last) return;  // nothing new, or an older snapshot than the last one
  counter->Inc(static_cast<double>(total - last));
  last = total;
}

ServerMetrics::ServerMetrics(std::string model_name) : model_name_(std::move(model_name)) {
  const std::vector<std::string> m = {"model_name"};
  const std::vector<std::string> v = {model_name_};
  Registry& r = registry_;
  running_ = &r.AddGauge("inferd:num_requests_running", "Number of requests in model execution batches.", m).Labels(v);
  waiting_ = &r.AddGauge("inferd:num_requests_waiting", "Number of requests waiting to be processed.", m).Labels(v);
  kv_usage_ = &r.AddGauge("inferd:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", m).Labels(v);
  prefix_queries_.counter =
      &r.AddCounter("inferd:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.", m)
           .Labels(v);
  prefix_hits_.counter =
      &r.AddCounter("inferd:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", m).Labels(v);
  preemptions_.counter =
      &r.AddCounter("inferd:num_preemptions", "Cumulative number of preemption from the engine.", m).Labels(v);
  prompt_tokens_.counter = &r.AddCounter("inferd:prompt_tokens", "Number of prefill tokens processed.", m).Labels(v);
  generation_tokens_.counter =
      &r.AddCounter("inferd:generation_tokens", "Number of generation tokens processed.", m).Labels(v);
  request_success_ = &r.AddCounter("inferd:request_success", "Count of successfully processed requests.",
                                   {"model_name", "finished_reason"});
  for (const char* reason : {"stop", "length", "abort"}) request_success_->Labels({model_name_, reason});
  ttft_ = &r.AddHistogram("inferd:time_to_first_token_seconds", "Histogram of time to first token in seconds.", m,
                          kTtftBuckets)
               .Labels(v);
  itl_ = &r.AddHistogram("inferd:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", m,
                         kInterTokenBuckets)
              .Labels(v);
  e2e_ = &r.AddHistogram("inferd:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", m,
                         kRequestLatencyBuckets)
              .Labels(v);
  queue_ = &r.AddHistogram("inferd:request_queue_time_seconds",
                           "Histogram of time spent in WAITING phase for request.", m, kRequestLatencyBuckets)
                .Labels(v);
}

void ServerMetrics::Update(const EngineStats& stats) {
  running_->Set(stats.num_running);
  waiting_->Set(stats.num_waiting);
  kv_usage_->Set(stats.kv_usage);
  std::lock_guard<std::mutex> lock(update_mu_);
  prompt_tokens_.Advance(stats.prompt_tokens);
  generation_tokens_.Advance(stats.generation_tokens);
  preemptions_.Advance(stats.num_preemptions);
  prefix_queries_.Advance(stats.prefix_queries);
  prefix_hits_.Advance(stats.prefix_hits);
  UpdateSpec(stats);
}

void ServerMetrics::UpdateSpec(const EngineStats& stats) {
  if (stats.spec_accepted_per_pos.empty()) return;
  const std::vector<std::string> m = {"model_name"};
  const std::vector<std::string> v = {model_name_};
  if (spec_drafts_.counter == nullptr) {
    spec_drafts_.counter =
        &registry_.AddCounter("inferd:spec_decode_num_drafts", "Number of spec decoding drafts.", m).Labels(v);
    spec_draft_tokens_.counter =
        &registry_.AddCounter("inferd:spec_decode_num_draft_tokens", "Number of draft tokens.", m).Labels(v);
    spec_accepted_.counter =
        &registry_.AddCounter("inferd:spec_decode_num_accepted_tokens", "Number of accepted tokens.", m).Labels(v);
    CounterFamily& per_pos = registry_.AddCounter("inferd:spec_decode_num_accepted_tokens_per_pos",
                                                  "Accepted tokens per draft position.", {"model_name", "position"});
    for (size_t i = 0; i < stats.spec_accepted_per_pos.size(); ++i) {
      spec_accepted_per_pos_.push_back({&per_pos.Labels({model_name_, std::to_string(i)})});
    }
  }
  spec_drafts_.Advance(stats.spec_num_drafts);
  spec_draft_tokens_.Advance(stats.spec_num_draft_tokens);
  spec_accepted_.Advance(stats.spec_num_accepted_tokens);
  for (size_t i = 0; i < stats.spec_accepted_per_pos.size() && i < spec_accepted_per_pos_.size(); ++i) {
    spec_accepted_per_pos_[i].Advance(stats.spec_accepted_per_pos[i]);
  }
}

void ServerMetrics::ObserveFinished(const std::string& finish_reason, double queue_s, double ttft_s, double e2e_s) {
  request_success_->Labels({model_name_, finish_reason}).Inc();
  if (queue_s >= 0) queue_->Observe(queue_s);
  if (ttft_s >= 0) ttft_->Observe(ttft_s);
  if (e2e_s >= 0) e2e_->Observe(e2e_s);
}

void ServerMetrics::ObserveInterToken(double s) {
  if (s >= 0) itl_->Observe(s);
}

}  // namespace inferd::metrics
