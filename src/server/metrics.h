// Prometheus metrics: a small registry of counter, gauge and histogram families and its
// rendering in the Prometheus text exposition format, version 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/), plus ServerMetrics, the
// metric set that `inferd serve` exposes on /metrics under vLLM's names ("vllm:" -> "inferd:").
//
// Format, as rendered by Registry::Render():
//   # HELP <name> <help, with \ and newline escaped as \\ and \n>
//   # TYPE <name> counter|gauge|histogram
//   <name>{label="value",...} <value>
// - Families appear in registration order; a family's children (one per combination of
//   label values) in lexicographic order of their label values. A family without labels
//   has its single child from the start, so it renders 0 before the first observation.
// - Counters: the family name always ends in "_total" ("inferd:prompt_tokens" and
//   "inferd:prompt_tokens_total" register the same name), and HELP, TYPE and the sample
//   all use it. This is what prometheus_client's generate_latest() writes, which is what
//   vLLM serves; prometheus_client's parser reads it back as family "inferd:prompt_tokens"
//   with sample "inferd:prompt_tokens_total", Prometheus stores "inferd:prompt_tokens_total".
// - Histograms: per child, "<name>_bucket" with le="<bound>" for every bound in increasing
//   order and le="+Inf" (cumulative counts), then "<name>_sum" and "<name>_count".
// - Values: integers of magnitude below 2^53 without exponent or fraction ("5", "1000000"),
//   others in the shortest form that reads back to the same double ("0.005", "1e+20"),
//   "+Inf", "-Inf", "NaN". No timestamps.
// - Label values escape backslash, double quote and newline as \\, \" and \n.
//
// Thread-safety: everything here is safe to call from any thread. Counter and Gauge are
// lock-free atomics; a Histogram child takes a short mutex per observation so that a
// concurrent Render() sees buckets, sum and count of the same set of observations.
// References returned by the Add*() and Labels() calls stay valid as long as the Registry.
//
// Errors: names and label sets are fixed by the program, so an invalid metric or label
// name, a duplicate family, a reserved label ("le" on a histogram), unsorted bucket bounds
// or a wrong number of label values is a programming error: it is reported on stderr and
// aborts.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace inferd::metrics {

// The Content-Type of a /metrics response.
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

// Formatting helpers of the exposition format (exposed for tests and other writers).
std::string FormatValue(double v);
std::string EscapeLabelValue(std::string_view s);
std::string EscapeHelp(std::string_view s);

// A monotonically increasing value. Inc() with a negative or NaN amount is ignored.
class Counter {
 public:
  void Inc(double amount = 1.0);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A value that goes up and down; Set() it from a snapshot (e.g. AsyncEngine::Snapshot())
// right before rendering, or Inc()/Dec() it as things happen.
class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Inc(double amount = 1.0) { value_.fetch_add(amount, std::memory_order_relaxed); }
  void Dec(double amount = 1.0) { value_.fetch_sub(amount, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Counts observations into buckets with fixed upper bounds (le, inclusive) plus +Inf.
class Histogram {
 public:
  struct Snapshot {
    std::vector<uint64_t> cumulative;  // [bounds.size() + 1]; the last one is the +Inf bucket
    double sum = 0;
    uint64_t count = 0;
  };
  explicit Histogram(const std::vector<double>* bounds);  // bounds owned by the family
  void Observe(double v);  // NaN is ignored
  Snapshot Read() const;

 private:
  const std::vector<double>* bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; guarded by mu_
  double sum_ = 0;                // guarded by mu_
  uint64_t count_ = 0;            // guarded by mu_
};

enum class MetricType { kCounter, kGauge, kHistogram };

// One metric family: a name, help, label names and a child per combination of label values.
class Family {
 public:
  Family(MetricType type, std::string name, std::string help, std::vector<std::string> label_names,
         std::vector<double> bounds);
  ~Family();

  const std::string& name() const { return name_; }
  MetricType type() const { return type_; }
  void Render(std::string* out) const;

 protected:
  // The child for these label values (one per label name), created on first use.
  void* Child(const std::vector<std::string>& label_values);

 private:
  struct ChildHolder;
  const MetricType type_;
  const std::string name_, help_;
  const std::vector<std::string> label_names_;
  const std::vector<double> bounds_;  // histograms only
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<ChildHolder>> children_;  // guarded by mu_
};

template <class T>
class TypedFamily : public Family {
 public:
  using Family::Family;
  // The child for these label values, in the order of the label names.
  T& Labels(const std::vector<std::string>& label_values) { return *static_cast<T*>(Child(label_values)); }
  // The child of a family without labels.
  T& Get() { return Labels({}); }
};
using CounterFamily = TypedFamily<Counter>;
using GaugeFamily = TypedFamily<Gauge>;
using HistogramFamily = TypedFamily<Histogram>;

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  CounterFamily& AddCounter(std::string name, std::string help, std::vector<std::string> label_names = {});
  GaugeFamily& AddGauge(std::string name, std::string help, std::vector<std::string> label_names = {});
  // bounds: finite, strictly increasing upper bounds; +Inf is implied.
  HistogramFamily& AddHistogram(std::string name, std::string help, std::vector<std::string> label_names,
                                std::vector<double> bounds);

  // The whole registry in the text format (see the top of this file).
  std::string Render() const;

 private:
  Family& Add(std::unique_ptr<Family> family);
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Family>> families_;  // guarded by mu_
};

// vLLM's bucket bounds (vllm/v1/metrics/loggers.py).
extern const std::vector<double> kTtftBuckets;            // time_to_first_token_seconds
extern const std::vector<double> kInterTokenBuckets;      // inter_token_latency_seconds
extern const std::vector<double> kRequestLatencyBuckets;  // e2e_request_latency, request_queue_time

// Engine numbers for ServerMetrics::Update(): gauges as they are now, counters as running
// totals since the engine started (AsyncEngine::Snapshot() gives exactly these).
struct EngineStats {
  double num_running = 0, num_waiting = 0;
  double kv_usage = 0;  // 0..1
  int64_t prompt_tokens = 0, generation_tokens = 0, num_preemptions = 0;
  int64_t prefix_queries = 0, prefix_hits = 0;  // tokens
  // Speculative decoding (empty per-position vector: speculation is off, no series).
  int64_t spec_num_drafts = 0, spec_num_draft_tokens = 0, spec_num_accepted_tokens = 0;
  std::vector<int64_t> spec_accepted_per_pos;
};

// The metric set of `inferd serve`, every series labelled model_name="<served model name>":
//   gauges      inferd:num_requests_running, inferd:num_requests_waiting,
//               inferd:kv_cache_usage_perc (0..1)
//   counters    inferd:prompt_tokens_total, inferd:generation_tokens_total,
//               inferd:num_preemptions_total, inferd:prefix_cache_queries_total,
//               inferd:prefix_cache_hits_total,
//               inferd:request_success_total (also finished_reason: stop|length|abort)
//               with --speculative-config (vLLM's spec_decode_* names):
//               inferd:spec_decode_num_drafts_total, inferd:spec_decode_num_draft_tokens_total,
//               inferd:spec_decode_num_accepted_tokens_total,
//               inferd:spec_decode_num_accepted_tokens_per_pos_total (also position: 0..k-1)
//   histograms  inferd:time_to_first_token_seconds, inferd:inter_token_latency_seconds,
//               inferd:e2e_request_latency_seconds, inferd:request_queue_time_seconds
// Typical use in the server:
//   ServerMetrics metrics(served_model_name);
//   on every generated token after the first:  metrics.ObserveInterToken(gap_s);
//   on every finished request:  metrics.ObserveFinished(reason, queue_s, ttft_s, e2e_s);
//   GET /metrics:  metrics.UpdateFromEngine(engine.Snapshot());
//                  reply 200, Content-Type metrics::kContentType, body metrics.Render().
// Thread-safe: all methods may be called concurrently from any thread.
class ServerMetrics {
 public:
  explicit ServerMetrics(std::string model_name);

  // Sets the gauges and advances the engine counters to the given totals. A total below
  // the largest one seen is ignored: it comes from an older snapshot (two scrapes racing),
  // and a counter never decreases. (One engine per ServerMetrics: its totals never reset.)
  void Update(const EngineStats& stats);
  // The same from an inferd::EngineSnapshot (engine/async_engine.h); a template so that
  // this library does not depend on the engine.
  template <class EngineSnapshotT>
  void UpdateFromEngine(const EngineSnapshotT& s) {
    EngineStats e;
    e.num_running = static_cast<double>(s.num_running);
    e.num_waiting = static_cast<double>(s.num_waiting);
    e.kv_usage = s.kv_usage;
    e.prompt_tokens = s.counters.prompt_tokens;
    e.generation_tokens = s.counters.generation_tokens;
    e.num_preemptions = s.counters.num_preemptions;
    e.prefix_queries = s.counters.prefix_queries;
    e.prefix_hits = s.counters.prefix_hits;
    e.spec_num_drafts = s.counters.spec_num_drafts;
    e.spec_num_draft_tokens = s.counters.spec_num_draft_tokens;
    e.spec_num_accepted_tokens = s.counters.spec_num_accepted_tokens;
    e.spec_accepted_per_pos = s.counters.spec_accepted_per_pos;
    Update(e);
  }

  // A finished request: counts it under finish_reason ("stop", "length", "abort"; any
  // other string gets its own series) and observes its times in seconds. A negative time
  // means "not known" (e.g. ttft of a request aborted before its first token) and is not
  // observed.
  void ObserveFinished(const std::string& finish_reason, double queue_s, double ttft_s, double e2e_s);
  // The time between two consecutive tokens of one request, in seconds.
  void ObserveInterToken(double s);

  std::string Render() const { return registry_.Render(); }
  Registry& registry() { return registry_; }  // for extra server metrics

 private:
  struct CounterTracker {
    Counter* counter;
    int64_t last = 0;  // the largest engine total seen; guarded by update_mu_
    void Advance(int64_t total);
  };

  const std::string model_name_;
  Registry registry_;
  // Children of the families, labelled with model_name_ (request_success_ also by reason).
  Gauge *running_, *waiting_, *kv_usage_;
  CounterFamily* request_success_;
  Histogram *ttft_, *itl_, *e2e_, *queue_;
  std::mutex update_mu_;
  CounterTracker prompt_tokens_, generation_tokens_, preemptions_, prefix_queries_, prefix_hits_;
  // Made on the first update from an engine that speculates; guarded by update_mu_.
  CounterTracker spec_drafts_{}, spec_draft_tokens_{}, spec_accepted_{};
  std::vector<CounterTracker> spec_accepted_per_pos_;
  void UpdateSpec(const EngineStats& stats);
};

}  // namespace inferd::metrics
