// The pure parts of `inferd bench serve`: SSE stream measurement, statistics.
#include "cli/bench_serve.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace inferd::cli {

// ----------------------------------------------------------------------------- SSE

void SseStream::Feed(std::string_view bytes, double now) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    const size_t nl = bytes.find('\n', pos);
    if (nl == std::string_view::npos) {
      line_.append(bytes.substr(pos));
      return;
    }
    if (line_.empty()) {
      HandleLine(bytes.substr(pos, nl - pos), now);
    } else {
      line_.append(bytes.substr(pos, nl - pos));
      HandleLine(line_, now);
      line_.clear();
    }
    pos = nl + 1;
  }
}

void SseStream::HandleLine(std::string_view line, double now) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.empty()) return Dispatch(now);  // blank line ends the event
  if (line.front() == ':') return;          // comment / keep-alive
  const size_t colon = line.find(':');
  const std::string_view field = line.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
  if (value.starts_with(' ')) value.remove_prefix(1);
  if (field != "data") return;  // event:, id:, retry: carry nothing we measure
  if (has_data_) data_ += '\n';
  data_.append(value);
  has_data_ = true;
}

void SseStream::SetError(std::string message) {
  if (error_.empty()) error_ = std::move(message);
}

void SseStream::Dispatch(double now) {
  if (!has_data_) return;
  std::string data = std::move(data_);
  data_.clear();
  has_data_ = false;
  if (done_) return;
  if (data == "[DONE]") {
    done_ = true;
    return;
  }
  nlohmann::json j = nlohmann::json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    SetError("bad JSON in the event stream: " + data.substr(0, 200));
    return;
  }
  if (auto e = j.find("error"); e != j.end() && !e->is_null()) {
    std::string msg = e->is_object() && e->contains("message") && (*e)["message"].is_string()
                          ? (*e)["message"].get<std::string>()
                          : e->dump();
    SetError("error event: " + msg);
    return;
  }
  // As vLLM: any event with choices is a token chunk (its text may be empty, e.g. special
  // tokens); a trailing usage event usually has `choices: []`.
  if (auto c = j.find("choices"); c != j.end() && c->is_array() && !c->empty()) {
    if (!first_chunk_) {
      first_chunk_ = true;
      first_chunk_time_ = now;
    } else {
      itl_.push_back(now - last_chunk_);
    }
    last_chunk_ = now;
    ++chunks_;
  }
  if (auto u = j.find("usage"); u != j.end() && u->is_object()) {
    if (auto ct = u->find("completion_tokens"); ct != u->end() && ct->is_number_integer()) {
      usage_tokens_ = ct->get<int64_t>();
    }
  }
}

RequestResult SseStream::Finish(double now) {
  if (!line_.empty()) {
    std::string last = std::move(line_);
    line_.clear();
    HandleLine(last, now);
  }
  Dispatch(now);
  RequestResult r;
  r.success = first_chunk_ && error_.empty();
  r.error = error_;
  if (error_.empty() && !first_chunk_) r.error = "Never received a valid chunk to calculate TTFT.";
  r.output_tokens = usage_tokens_ > 0 ? usage_tokens_ : chunks_;
  if (first_chunk_) {
    r.ttft = first_chunk_time_ - start_;
    r.latency = last_chunk_ - start_;
  }
  r.itl = std::move(itl_);
  return r;
}

// ----------------------------------------------------------------------------- metrics

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double h = (static_cast<double>(v.size()) - 1) * p / 100.0;
  const size_t lo = static_cast<size_t>(std::floor(h));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (h - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

MetricStats Summarize(const std::vector<double>& seconds, std::span<const double> percentiles) {
  MetricStats s;
  if (!seconds.empty()) {
    const double n = static_cast<double>(seconds.size());
    s.mean = std::accumulate(seconds.begin(), seconds.end(), 0.0) / n;
    double var = 0;
    for (double x : seconds) var += (x - s.mean) * (x - s.mean);
    s.std = std::sqrt(var / n) * 1000;  // numpy's std: population (ddof = 0)
    s.mean *= 1000;
  }
  s.median = Percentile(seconds, 50) * 1000;
  for (double p : percentiles) s.percentiles.emplace_back(p, Percentile(seconds, p) * 1000);
  return s;
}

ServeMetrics ComputeServeMetrics(std::span<const RequestResult> results, double duration_s,
                                 std::span<const double> percentiles) {
  ServeMetrics m;
  m.duration = duration_s;
  std::vector<double> ttfts, tpots, itls, e2els;
  for (const RequestResult& r : results) {
    if (!r.success) {
      ++m.failed;
      continue;
    }
    ++m.completed;
    m.total_input += r.prompt_len;
    m.total_output += r.output_tokens;
    if (r.output_tokens > 1) tpots.push_back((r.latency - r.ttft) / static_cast<double>(r.output_tokens - 1));
    itls.insert(itls.end(), r.itl.begin(), r.itl.end());
    ttfts.push_back(r.ttft);
    e2els.push_back(r.latency);
  }
  if (duration_s > 0) {
    m.request_throughput = static_cast<double>(m.completed) / duration_s;
    m.output_throughput = static_cast<double>(m.total_output) / duration_s;
    m.total_token_throughput = static_cast<double>(m.total_input + m.total_output) / duration_s;
  }
  m.ttft = Summarize(ttfts, percentiles);
  m.tpot = Summarize(tpots, percentiles);
  m.itl = Summarize(itls, percentiles);
  m.e2el = Summarize(e2els, percentiles);
  return m;
}

namespace {

struct MetricSection {
  const char* key;     // ttft
  const char* name;    // TTFT
  const char* header;  // Time to First Token
  const MetricStats ServeMetrics::*stats;
};

constexpr MetricSection kSections[] = {
    {"ttft", "TTFT", "Time to First Token", &ServeMetrics::ttft},
    {"tpot", "TPOT", "Time per Output Token (excl. 1st token)", &ServeMetrics::tpot},
    {"itl", "ITL", "Inter-token Latency", &ServeMetrics::itl},
    {"e2el", "E2EL", "End-to-end Latency", &ServeMetrics::e2el},
};

// "99" for 99.0, "99.9" for 99.9 (as vLLM's p_word).
std::string PercentileWord(double p) {
  if (p == std::floor(p)) return fmt::format("{}", static_cast<int64_t>(p));
  return fmt::format("{}", p);
}

std::string Centered(const std::string& s, char fill) {  // Python's "{s:{c}^50}"
  const size_t n = 50;
  if (s.size() >= n) return s;
  const size_t left = (n - s.size()) / 2;
  return std::string(left, fill) + s + std::string(n - s.size() - left, fill);
}

}  // namespace

std::string FormatServeResult(const ServeMetrics& m, const ServeRunInfo& info) {
  std::string out = Centered(" Serving Benchmark Result ", '=') + "\n";
  auto row = [&out](const std::string& label, const std::string& value) {
    out += fmt::format("{:<40} {:<10}\n", label, value);
  };
  auto f2 = [](double v) { return fmt::format("{:.2f}", v); };
  row("Successful requests:", std::to_string(m.completed));
  if (m.failed > 0) row("Failed requests:", std::to_string(m.failed));
  if (info.max_concurrency) row("Maximum request concurrency:", std::to_string(*info.max_concurrency));
  if (std::isfinite(info.request_rate)) row("Request rate configured (RPS):", f2(info.request_rate));
  row("Benchmark duration (s):", f2(m.duration));
  row("Total input tokens:", std::to_string(m.total_input));
  row("Total generated tokens:", std::to_string(m.total_output));
  row("Request throughput (req/s):", f2(m.request_throughput));
  row("Output token throughput (tok/s):", f2(m.output_throughput));
  row("Total Token throughput (tok/s):", f2(m.total_token_throughput));
  for (const MetricSection& s : kSections) {
    if (std::find(info.percentile_metrics.begin(), info.percentile_metrics.end(), s.key) ==
        info.percentile_metrics.end()) {
      continue;
    }
    const MetricStats& st = m.*s.stats;
    out += Centered(s.header, '-') + "\n";
    row(fmt::format("Mean {} (ms):", s.name), f2(st.mean));
    row(fmt::format("Median {} (ms):", s.name), f2(st.median));
    for (const auto& [p, v] : st.percentiles) row(fmt::format("P{} {} (ms):", PercentileWord(p), s.name), f2(v));
  }
  out += std::string(50, '=') + "\n";
  return out;
}

nlohmann::json ServeResultJson(const ServeMetrics& m, const ServeRunInfo& info) {
  nlohmann::json j;
  j["backend"] = "openai";
  j["model_id"] = info.model_id;
  j["tokenizer_id"] = info.tokenizer;
  j["num_prompts"] = info.num_prompts;
  j["request_rate"] = std::isfinite(info.request_rate) ? nlohmann::json(info.request_rate) : nlohmann::json("inf");
  j["burstiness"] = info.burstiness;
  j["max_concurrency"] = info.max_concurrency ? nlohmann::json(*info.max_concurrency) : nlohmann::json(nullptr);
  j["duration"] = m.duration;
  j["completed"] = m.completed;
  j["failed"] = m.failed;
  j["total_input_tokens"] = m.total_input;
  j["total_output_tokens"] = m.total_output;
  j["request_throughput"] = m.request_throughput;
  j["output_throughput"] = m.output_throughput;
  j["total_token_throughput"] = m.total_token_throughput;
  for (const MetricSection& s : kSections) {
    const MetricStats& st = m.*s.stats;
    j[fmt::format("mean_{}_ms", s.key)] = st.mean;
    j[fmt::format("median_{}_ms", s.key)] = st.median;
    j[fmt::format("std_{}_ms", s.key)] = st.std;
    for (const auto& [p, v] : st.percentiles) j[fmt::format("p{}_{}_ms", PercentileWord(p), s.key)] = v;
  }
  return j;
}

}  // namespace inferd::cli
