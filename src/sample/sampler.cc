// Token sampling for one row of logits. See sampler.h for the contract.
//
// Cost per call for a vocab of V: the sparse steps (bias, min_tokens, penalties) touch only
// the tokens they name (penalties: O(prompt + output)); greedy is one argmax pass; sampling
// with top_k <= 1024 is one pass with a bounded heap; sampling without top_k is a max pass,
// an exp pass, for top_p a mass histogram over weight buckets plus an exact selection inside
// the one boundary bucket, a filter pass, and a block-sum draw. The raw logprob and rank of
// the chosen token (always reported) cost a max, an exp and a count pass. Hot passes are
// written so GCC vectorizes them without -ffast-math (-fno-trapping-math is set for this
// library; it changes no value). Measured on a loaded 2-core x86 box, V = 151,936:
// greedy ≈ 0.7 ms, T = 0.7 + top_p = 0.9 ≈ 1.5-2.5 ms, top_k = 40 ≈ 0.8 ms; top_k > 1024 uses
// nth_element over all tokens and is the slow case (≈ 4-6 ms).
// Scratch buffers are thread_local and reused, so a steady-state call does not allocate
// (apart from the returned top_logprobs vector).
//
// Ordering convention used everywhere ("key order"): larger value first, and on equal
// values the lower token id first. It makes every selection below a total order, so the
// result never depends on the order in which a partition or heap happens to visit ties.

#include "sample/sampler.h"

#include "sample/logits_processors.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

namespace inferd {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Above this k, top-k selection uses a sort / nth_element over an index array instead of a
// bounded heap (measured: a 5000-entry heap is slower than nth_element on a 152k row).
constexpr int kHeapTopKLimit = 1024;

// NaN logits (a broken model row) are treated as -inf: never chosen, never ranked above
// a real value.
inline float Clean(float x) { return std::isnan(x) ? kNegInf : x; }

// Key order over (value, id): a before b.
inline bool KeyBefore(float va, int32_t a, float vb, int32_t b) {
  return va > vb || (va == vb && a < b);
}

// exp(x) for x <= 0 in plain float arithmetic (no libm call, no branches), so the loops
// below vectorize and give the same bits on every x86-64 ISA level. Cody-Waite reduction
// x = n ln2 + r, |r| <= ln2/2, then a degree-6 Taylor polynomial: relative error about
// 2e-7. Returns 0 for x < -87, -inf and NaN. Inputs above 0 are clamped to 0.
// Every branch is written as a select the vectorizer can if-convert.
inline float FastExp(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;      // few mantissa bits: n * kLn2Hi is exact
  constexpr float kLn2Lo = -2.12194440e-4f;   // ln2 - kLn2Hi
  constexpr float kRound = 12582912.0f;       // 1.5 * 2^23: adding it rounds to an integer
  float xc = x >= -87.0f ? x : -87.0f;  // NaN compares false: clamped too
  xc = xc <= 0.0f ? xc : 0.0f;
  const float n = (xc * kLog2e + kRound) - kRound;
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const float scale = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  const float y = p * scale;  // computed unconditionally: a plain select vectorizes
  return x >= -87.0f ? y : 0.0f;
}

// Independent accumulator lanes let the compiler vectorize reductions without
// -ffast-math; the lane order is fixed, so results are deterministic.
constexpr size_t kLanes = 16;

float MaxOf(std::span<const float> x) {
  float lanes[kLanes];
  std::fill(lanes, lanes + kLanes, kNegInf);
  size_t i = 0;
  for (; i + kLanes <= x.size(); i += kLanes) {
    // NaN > lane is false, so NaN never enters a lane.
    for (size_t j = 0; j < kLanes; ++j) lanes[j] = x[i + j] > lanes[j] ? x[i + j] : lanes[j];
  }
  float m = kNegInf;
  for (; i < x.size(); ++i) m = x[i] > m ? x[i] : m;
  for (float l : lanes) m = std::max(m, l);
  return m;
}

// sum(exp(x - shift)): exps of a block into a small buffer (an elementwise loop, which
// vectorizes), then added into double lanes.
double SumExpShifted(std::span<const float> x, float shift) {
  constexpr size_t kBlock = 256;
  alignas(64) float e[kBlock];
  double lanes[kLanes] = {};
  size_t i = 0;
  for (; i + kBlock <= x.size(); i += kBlock) {
    const float* xb = x.data() + i;
    for (size_t j = 0; j < kBlock; ++j) e[j] = FastExp(xb[j] - shift);
    for (size_t j = 0; j < kBlock; j += kLanes) {
      for (size_t l = 0; l < kLanes; ++l) lanes[l] += e[j + l];
    }
  }
  double sum = 0.0;
  for (; i < x.size(); ++i) sum += FastExp(x[i] - shift);
  for (double l : lanes) sum += l;
  return sum;
}

uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

struct Scratch {
  std::vector<float> w;          // [vocab] unnormalized probabilities (sampling path)
  std::vector<int32_t> cand;     // candidate token ids
  std::vector<LogitEdit> edits;  // the sparse processors' edits (BuildLogitEdits)
  std::vector<std::pair<int32_t, float>> undo;  // (id, original logit), in apply order
  std::vector<std::pair<float, int32_t>> heap;  // bounded top-k heap
  std::vector<double> hist;      // [kNumWeightBins] top-p mass per weight bucket
  std::vector<double> block_sum;  // DrawDense per-block mass
};

Scratch& GetScratch() {
  thread_local Scratch s;
  return s;
}

// Records the current value of logits[id] so it can be restored, then returns a reference.
inline float& Touch(std::span<float> logits, std::vector<std::pair<int32_t, float>>& undo,
                    int32_t id) {
  undo.emplace_back(id, logits[id]);
  return logits[id];
}

// Top-k (value, id) of `vals` in key order (k clamped to the size). NaN counts as -inf.
// `get(i)` returns the value of token i. Output sorted in key order.
template <typename Get>
void SelectTopK(size_t size, int k, Get get, std::vector<std::pair<float, int32_t>>* out) {
  out->clear();
  if (k <= 0 || size == 0) return;
  size_t kk = std::min(static_cast<size_t>(k), size);
  // Heap ordered so that the *worst* element (last in key order) sits at the front.
  auto worse_first = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
    return KeyBefore(a.first, a.second, b.first, b.second);
  };
  if (kk <= static_cast<size_t>(kHeapTopKLimit)) {
    out->reserve(kk);
    for (size_t i = 0; i < kk; ++i) out->emplace_back(Clean(get(i)), static_cast<int32_t>(i));
    std::make_heap(out->begin(), out->end(), worse_first);
    for (size_t i = kk; i < size; ++i) {
      float v = Clean(get(i));
      const auto& worst = out->front();
      // Ids increase along the scan, so an equal value never beats the current worst.
      if (v > worst.first) {
        std::pop_heap(out->begin(), out->end(), worse_first);
        out->back() = {v, static_cast<int32_t>(i)};
        std::push_heap(out->begin(), out->end(), worse_first);
      }
    }
    std::sort_heap(out->begin(), out->end(), worse_first);
    return;
  }
  out->resize(size);
  for (size_t i = 0; i < size; ++i) (*out)[i] = {Clean(get(i)), static_cast<int32_t>(i)};
  std::partial_sort(out->begin(), out->begin() + kk, out->end(), worse_first);
  out->resize(kk);
}

// Raw statistics of one row: max and log-sum-exp (accumulated in double after subtracting
// the max, so it is stable for any logit range).
struct RawStats {
  float max = kNegInf;
  double log_z = 0.0;  // log(sum(exp(x - max)))
};

RawStats ComputeRawStats(std::span<const float> logits) {
  RawStats st;
  st.max = MaxOf(logits);
  if (st.max == kNegInf) return st;
  st.log_z = std::log(SumExpShifted(logits, st.max));  // >= 1: the max contributes exp(0)
  return st;
}

inline float RawLogprob(const RawStats& st, float x) {
  x = Clean(x);
  if (st.max == kNegInf || x == kNegInf) return kNegInf;
  return static_cast<float>(static_cast<double>(x) - st.max - st.log_z);
}

// 1 + number of tokens with a strictly larger raw logit (vLLM's rank: ties share a rank).
int RawRank(std::span<const float> logits, float x) {
  x = Clean(x);
  int64_t greater = 0;  // NaN > x is false, so NaN logits need no cleaning here
  for (float y : logits) greater += y > x ? 1 : 0;
  return static_cast<int>(greater + 1);
}

void TopLogprobs(std::span<const float> logits, const RawStats& st, int top_n,
                 std::vector<std::pair<float, int32_t>>* heap,
                 std::vector<std::pair<int32_t, float>>* out) {
  out->clear();
  if (top_n <= 0) return;
  SelectTopK(logits.size(), top_n, [&](size_t i) { return logits[i]; }, heap);
  out->reserve(heap->size());
  for (const auto& [v, id] : *heap) out->emplace_back(id, RawLogprob(st, v));
}

// The sparse logits processors (sample/logits_processors.h), one edit per touched token.
// Every write goes through Touch so that RestoreRaw can put the raw row back.
void ApplySparse(std::span<float> logits, const SampleInput& in, Scratch& s) {
  s.edits.clear();
  BuildLogitEdits(in, static_cast<int64_t>(logits.size()), &s.edits);
  for (const LogitEdit& e : s.edits) {
    float& l = Touch(logits, s.undo, e.token);
    l = ApplyLogitEdit(l, e);
  }
}

void RestoreRaw(std::span<float> logits, Scratch& s) {
  for (auto it = s.undo.rbegin(); it != s.undo.rend(); ++it) logits[it->first] = it->second;
  s.undo.clear();
}

// Lowest id among the maximal (non-NaN) values; 0 when every value is -inf or NaN.
int32_t Argmax(std::span<const float> logits) {
  // Per-lane first maximum (strict >, so NaN never wins), then the lowest id among the
  // lanes holding the overall maximum: that is the first maximum of the whole row.
  float lane_v[kLanes];
  int32_t lane_i[kLanes] = {};
  std::fill(lane_v, lane_v + kLanes, kNegInf);
  const size_t n = logits.size();
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (size_t j = 0; j < kLanes; ++j) {
      const float v = logits[i + j];
      const bool better = v > lane_v[j];
      lane_v[j] = better ? v : lane_v[j];
      lane_i[j] = better ? static_cast<int32_t>(i + j) : lane_i[j];
    }
  }
  float best_v = kNegInf;
  int32_t best = 0;
  for (size_t j = 0; j < kLanes; ++j) {
    if (lane_v[j] > best_v || (lane_v[j] == best_v && lane_i[j] < best)) {
      best_v = lane_v[j];
      best = lane_i[j];
    }
  }
  for (; i < n; ++i) {
    if (logits[i] > best_v) {
      best_v = logits[i];
      best = static_cast<int32_t>(i);
    }
  }
  return best;
}

// Top-p over `c` (ids into w): reorders c so that c[0, cut) is the smallest set in key order
// (w desc, id asc) whose mass reaches `target`, and returns cut (>= 1 when c is non-empty).
// Quickselect on mass: expected linear time, no full sort.
size_t TopPCut(std::span<int32_t> c, const float* w, double target) {
  auto before = [w](int32_t a, int32_t b) { return KeyBefore(w[a], a, w[b], b); };
  size_t lo = 0, hi = c.size();
  double acc = 0.0;  // mass of c[0, lo), all of which precede every element of c[lo, hi)
  constexpr size_t kSmall = 32;
  while (hi - lo > kSmall) {
    int32_t a = c[lo], b = c[lo + (hi - lo) / 2], d = c[hi - 1];
    // Median of three in key order.
    if (before(b, a)) std::swap(a, b);
    if (before(d, b)) std::swap(b, d);
    if (before(b, a)) std::swap(a, b);
    const int32_t pivot = b;
    auto mid = std::partition(c.begin() + lo, c.begin() + hi,
                              [&](int32_t x) { return !before(pivot, x); });
    const size_t m = static_cast<size_t>(mid - c.begin());
    double mass = 0.0;
    for (size_t i = lo; i < m; ++i) mass += w[c[i]];
    if (acc + mass < target) {
      acc += mass;
      lo = m;  // m > lo: the pivot itself is on the left
      continue;
    }
    if (m < hi) {
      hi = m;
      continue;
    }
    // The pivot is the last element of the range in key order: decide it alone.
    auto pos = std::find(c.begin() + lo, c.begin() + hi, pivot);
    std::iter_swap(pos, c.begin() + (hi - 1));
    if (acc + mass - w[pivot] >= target) {
      --hi;
      continue;
    }
    return hi;
  }
  std::sort(c.begin() + lo, c.begin() + hi, before);
  for (size_t i = lo; i < hi; ++i) {
    acc += w[c[i]];
    if (acc >= target) return i + 1;
  }
  return std::max<size_t>(hi, 1);
}

// Inverse-CDF draw over `cand` (ascending ids) with weights w.
int32_t Draw(const std::vector<int32_t>& cand, const float* w, const SampleInput& in) {
  double total = 0.0;
  for (int32_t id : cand) total += w[id];
  const double target = CounterUniform(in.seed, static_cast<uint64_t>(in.step)) * total;
  double acc = 0.0;
  for (int32_t id : cand) {
    acc += w[id];
    if (acc > target) return id;
  }
  return cand.back();  // rounding: u * total landed at or past the final sum
}

// Inverse-CDF draw over all of w[0, n) in id order (zero weights are never drawn). Block
// sums (vectorized) locate the block holding the target; only that block is walked.
int32_t DrawDense(const float* w, size_t n, const SampleInput& in, Scratch& s) {
  constexpr size_t kBlock = 256;
  const size_t num_blocks = (n + kBlock - 1) / kBlock;
  s.block_sum.resize(num_blocks);
  double total = 0.0;
  for (size_t b = 0; b < num_blocks; ++b) {
    const size_t lo = b * kBlock, hi = std::min(n, lo + kBlock);
    double lanes[kLanes] = {};
    size_t i = lo;
    for (; i + kLanes <= hi; i += kLanes) {
      for (size_t l = 0; l < kLanes; ++l) lanes[l] += w[i + l];
    }
    double sum = 0.0;
    for (; i < hi; ++i) sum += w[i];
    for (double l : lanes) sum += l;
    s.block_sum[b] = sum;
    total += sum;
  }
  const double target = CounterUniform(in.seed, static_cast<uint64_t>(in.step)) * total;
  double acc = 0.0;
  for (size_t b = 0; b < num_blocks; ++b) {
    if (!(acc + s.block_sum[b] > target)) {
      acc += s.block_sum[b];
      continue;
    }
    const size_t lo = b * kBlock, hi = std::min(n, lo + kBlock);
    double inner = acc;
    for (size_t i = lo; i < hi; ++i) {
      inner += w[i];
      if (inner > target && w[i] > 0.0f) return static_cast<int32_t>(i);
    }
    acc += s.block_sum[b];  // rounding: the walk fell short; go on with the block sum
  }
  for (size_t i = n; i-- > 0;) {  // rounding at the very end: the last drawable token
    if (w[i] > 0.0f) return static_cast<int32_t>(i);
  }
  return 0;
}

// Bucket of a weight w in [0, 1]: the float's exponent and top 3 mantissa bits. Monotone
// in w, so every token in a higher bucket precedes every token in a lower one in key order.
constexpr int kNumWeightBins = 1024;
inline uint32_t WeightBin(float w) { return std::bit_cast<uint32_t>(w) >> 20; }

// No top-k: w[0, vocab) holds every token's weight. top-p in expected linear time without
// touching most tokens twice: a histogram of mass per bucket finds the boundary bucket, and
// only the tokens in that bucket go through the exact selection. The kept set is then
// collected in id order in one scan (no sort).
int32_t SampleFullVocab(size_t vocab, const SampleInput& in, const SamplingParams& p,
                        Scratch& s) {
  const float* w = s.w.data();
  uint32_t bin_b = 0;     // tokens in buckets above bin_b are kept (top-p)
  int32_t last = -1;      // in bucket bin_b, tokens up to `last` in key order are kept
  if (p.top_p < 1.0f) {
    s.hist.assign(kNumWeightBins, 0.0);
    for (size_t i = 0; i < vocab; ++i) s.hist[WeightBin(w[i])] += w[i];
    double total = 0.0;
    for (double h : s.hist) total += h;
    const double target = static_cast<double>(p.top_p) * total;
    double acc = 0.0;  // mass of the buckets above b
    uint32_t b = kNumWeightBins - 1;
    for (; b > 0; --b) {
      if (acc + s.hist[b] >= target) break;
      acc += s.hist[b];
    }
    if (b > 0) {  // b == 0 (zero / denormal weights): rounding says keep everything
      std::vector<int32_t>& bucket = s.cand;
      bucket.clear();
      for (size_t i = 0; i < vocab; ++i) {
        if (WeightBin(w[i]) == b) bucket.push_back(static_cast<int32_t>(i));
      }
      const size_t cut = TopPCut(bucket, w, target - acc);
      bin_b = b;
      last = bucket[cut - 1];
    }
  }
  // Filters zero the weights of dropped tokens. The most likely token has
  // w == exp(0) == 1 and is always kept, so min-p's "prob < min_p × max prob" is "w < min_p".
  float* wm = s.w.data();
  const float min_w = p.min_p;
  if (min_w > 0.0f || last >= 0) {
    const float w_last = last >= 0 ? wm[last] : 0.0f;  // read before the loop zeroes any
    for (size_t i = 0; i < vocab; ++i) {
      const float wi = wm[i];
      const uint32_t bin = WeightBin(wi);
      bool drop = wi < min_w || bin < bin_b;
      if (bin == bin_b && last >= 0) {
        drop = drop || KeyBefore(w_last, last, wi, static_cast<int32_t>(i));
      }
      wm[i] = drop ? 0.0f : wi;
    }
  }
  return DrawDense(wm, vocab, in, s);
}

// Random path: temperature, top-k, top-p, min-p, inverse-CDF draw over the kept tokens in
// ascending id order. `logits` holds the processed (post-penalty) values.
int32_t SampleRandom(std::span<const float> logits, const SampleInput& in,
                     const SamplingParams& p, Scratch& s) {
  const size_t vocab = logits.size();
  const float temp = p.temperature;
  const bool use_top_k = p.top_k > 0 && static_cast<size_t>(p.top_k) < vocab;
  if (s.w.size() < vocab) s.w.resize(vocab);
  float* w = s.w.data();
  std::vector<int32_t>& cand = s.cand;
  cand.clear();

  if (use_top_k && p.top_k <= kHeapTopKLimit) {
    // Select on the processed logits (dividing by temperature preserves the order).
    SelectTopK(vocab, p.top_k, [&](size_t i) { return logits[i]; }, &s.heap);
    float m = kNegInf;
    for (const auto& [v, id] : s.heap) {
      if (v == kNegInf) break;
      cand.push_back(id);
      m = std::max(m, v / temp);
    }
    for (int32_t id : cand) w[id] = FastExp(logits[id] / temp - m);
  } else {
    // Division by temp > 0 is monotonic, so max(l / temp) == max(l) / temp exactly.
    const float m = MaxOf(logits) / temp;
    if (m == kNegInf) return Argmax(logits);
    for (size_t i = 0; i < vocab; ++i) w[i] = FastExp(logits[i] / temp - m);
    if (!use_top_k) return SampleFullVocab(vocab, in, p, s);
    for (size_t i = 0; i < vocab; ++i) {
      // Zero-mass tokens can never be drawn and never change top-p's set: skip them.
      if (w[i] > 0.0f) cand.push_back(static_cast<int32_t>(i));
    }
    if (static_cast<size_t>(p.top_k) < cand.size()) {
      auto before = [&](int32_t a, int32_t b) { return KeyBefore(logits[a], a, logits[b], b); };
      std::nth_element(cand.begin(), cand.begin() + (p.top_k - 1), cand.end(), before);
      cand.resize(static_cast<size_t>(p.top_k));
    }
  }
  if (cand.empty()) return Argmax(logits);

  // Here cand is a top-k set (at most top_k ids, any order).
  if (p.top_p < 1.0f) {
    double total = 0.0;
    for (int32_t id : cand) total += w[id];
    size_t cut = TopPCut(cand, w, static_cast<double>(p.top_p) * total);
    cand.resize(cut);
  }
  if (p.min_p > 0.0f) {
    // The most likely candidate has w == exp(0) == 1 and is always kept, so
    // "prob < min_p × max prob" is "w < min_p".
    std::erase_if(cand, [&](int32_t id) { return w[id] < p.min_p; });
  }
  std::sort(cand.begin(), cand.end());
  return Draw(cand, w, in);
}

}  // namespace

int32_t ArgmaxToken(std::span<const float> logits) { return Argmax(logits); }

double CounterUniform(uint64_t seed, uint64_t counter) {
  // Two splitmix64 finalizer rounds: the seed selects a stream, the counter a position in it.
  uint64_t z = Mix64(Mix64(seed + 0x9E3779B97F4A7C15ull) ^ (counter * 0xD1B54A32D192ED03ull));
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

namespace {

void ApplyAllowedMask(std::span<float> logits, std::span<const uint32_t> mask) {
  if (mask.empty()) return;
  const int64_t n = static_cast<int64_t>(logits.size()), words = static_cast<int64_t>(mask.size());
  for (int64_t t = 0; t < n; ++t) {
    if (!MaskAllows(mask.data(), words, t)) logits[t] = -std::numeric_limits<float>::infinity();
  }
}

}  // namespace

SampleResult SampleToken(std::span<float> logits, const SampleInput& in) {
  static const SamplingParams kDefaults;
  const SamplingParams& p = in.params != nullptr ? *in.params : kDefaults;
  SampleResult result;
  if (logits.empty()) return result;
  Scratch& s = GetScratch();

  ApplyAllowedMask(logits, in.allowed_tokens);
  s.undo.clear();
  ApplySparse(logits, in, s);
  result.token = p.greedy() ? Argmax(logits) : SampleRandom(logits, in, p, s);
  RestoreRaw(logits, s);

  // Logprobs of the raw model output.
  const RawStats st = ComputeRawStats(logits);
  result.logprob = RawLogprob(st, logits[result.token]);
  result.rank = RawRank(logits, logits[result.token]);
  if (p.logprobs.has_value() && *p.logprobs > 0) {
    TopLogprobs(logits, st, *p.logprobs, &s.heap, &result.top_logprobs);
  }
  return result;
}

void ApplyLogitsProcessors(std::span<float> logits, const SampleInput& in) {
  Scratch& s = GetScratch();
  ApplyAllowedMask(logits, in.allowed_tokens);
  s.undo.clear();
  ApplySparse(logits, in, s);
  s.undo.clear();
}

RowLogprobs ComputeRowLogprobs(std::span<const float> logits, int top_n, int32_t target) {
  RowLogprobs out;
  if (logits.empty()) return out;
  const RawStats st = ComputeRawStats(logits);
  std::vector<std::pair<float, int32_t>> heap;
  TopLogprobs(logits, st, top_n, &heap, &out.top);
  if (target >= 0 && static_cast<size_t>(target) < logits.size()) {
    out.target_logprob = RawLogprob(st, logits[target]);
    out.target_rank = RawRank(logits, logits[target]);
  }
  return out;
}

}  // namespace inferd
