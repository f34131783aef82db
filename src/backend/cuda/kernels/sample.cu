// SampleRows: SampleToken (sample/sampler.cc) on the device, one CTA (512 threads) per row.
//
// Per row (all passes thread-strided over the row, so loads are coalesced):
//   1. copy the logits into the workspace row (-inf where the row's allowed-token mask says
//      no), max; sum of exp (logprob only);
//   2. the row's LogitEdits on the workspace copy (one thread per edit), with ApplyLogitEdit
//      (sample/logit_edit.h), the CPU's fp32 operations;
//   3. greedy: argmax (lowest id on ties, NaN never wins, all -inf/NaN -> 0), as Argmax;
//   4. otherwise m = max / T, w = FastExp(l / T - m) with FastExp replicated operation by
//      operation (so the weights are the CPU's bits); top-k = exact cut in key order of the
//      processed logits (value desc, id asc; NaN = -inf; -0 == +0); top-p = exact cut in key
//      order of w (w desc, id asc) at the first position whose cumulative mass reaches
//      top_p * total; min-p drops w < min_p (the max token has w == 1, as on the CPU);
//      inverse-CDF draw in ascending id order: the first kept token whose cumulative mass
//      exceeds CounterUniform(seed, step) * total.
//
// Sums. Every mass is an exact integer: w (<= 1) in fixed point with 2^-85 resolution, kept
// in 128 bits (U128). Integer addition is associative, so histograms may use shared-memory
// atomics and every sum is deterministic and independent of the launch (batch invariance),
// and it is the exact sum of the fp32 weights (a weight below 2^-61 truncates; all of them
// together are below 2^-64 of the mass of the max token). Cuts (top-k, top-p) are found by a
// three-level radix select (11 + 11 + 10 bits of the key) over such histograms, then the tie
// at the boundary key is resolved in id order, so they are exact selections.
//
// What can differ from SampleToken, and why: the CPU accumulates masses in double in its own
// order (sequential in id order for the draw, block lanes for DrawDense, partition order or a
// bucket histogram for top-p), so its sums carry rounding errors of about n * 2^-53 relative;
// here they are exact (then rounded once to double for the comparison with u * total).
// Decisions therefore agree except when a comparison lands within that rounding distance:
//   - the draw, when u * total is that close to the cumulative mass at a token boundary;
//   - the top-p cut, when top_p * total is that close to a cumulative mass in key order
//     (one token more or less kept, which then shifts the draw);
//   - the rounding fallbacks (u * total at or past the final sum): the CPU returns the last
//     candidate (Draw, possibly a zero-weight one) or the last drawable token (DrawDense);
//     here the last kept token with non-zero mass. Also weights below 2^-61 have no mass here.
// Token choice is otherwise bit-for-bit SampleToken's; greedy is always identical. The
// logprob is (double)x - max - log(sum exp) as RawLogprob, with the sum exact: it agrees with
// the CPU's to about 1e-7 (the float rounding of the result).
// The CPU side is assumed built without FMA contraction (x86-64 baseline, no -march).
#include <climits>
#include <cmath>

#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/counter_rng.cuh"

namespace inferd::cuda {
namespace {

constexpr int kThreads = 512;  // 1024 spills registers (64 per thread); 512 use ~100
constexpr int kWarps = kThreads / 32;
constexpr int64_t kMaxVocab = int64_t{1} << 21;  // limb sums below fit 64 bits
constexpr int kLimbBits = 43;                   // fixed point 2^-85 = two 43-bit limbs
constexpr uint64_t kLimbMask = (uint64_t{1} << kLimbBits) - 1;
constexpr int kMaxBins = 2048;  // radix levels: 11, 11, 10 bits
constexpr unsigned kFull = 0xffffffffu;

// ---------------------------------------------------------------- exact 128-bit sums

struct U128 {
  uint64_t lo, hi;
};
__device__ __forceinline__ U128 Make(uint64_t lo, uint64_t hi) {
  U128 r;
  r.lo = lo;
  r.hi = hi;
  return r;
}
__device__ __forceinline__ U128 Add(U128 a, U128 b) {
  const uint64_t lo = a.lo + b.lo;
  return Make(lo, a.hi + b.hi + (lo < a.lo ? 1u : 0u));
}
__device__ __forceinline__ U128 Sub(U128 a, U128 b) {  // a >= b
  return Make(a.lo - b.lo, a.hi - b.hi - (a.lo < b.lo ? 1u : 0u));
}
__device__ __forceinline__ bool Ge(U128 a, U128 b) { return a.hi > b.hi || (a.hi == b.hi && a.lo >= b.lo); }
__device__ __forceinline__ bool Eq(U128 a, U128 b) { return a.hi == b.hi && a.lo == b.lo; }
__device__ __forceinline__ bool IsZero(U128 a) { return (a.lo | a.hi) == 0; }
__device__ __forceinline__ U128 MulU32(U128 a, uint32_t m) {
  return Make(a.lo * m, a.hi * m + __umul64hi(a.lo, static_cast<uint64_t>(m)));
}
// Monotone (x <= y gives ToDouble(x) <= ToDouble(y)) and within 2 ulp; hi < 2^53 here.
__device__ __forceinline__ double ToDouble(U128 a) {
  return __dadd_rn(static_cast<double>(a.hi) * 0x1.0p64, static_cast<double>(a.lo));
}
// Smallest integer >= d (d >= 0, d < 2^127).
__device__ __forceinline__ U128 CeilToU128(double d) {
  if (d < 0x1.0p63) return Make(static_cast<uint64_t>(ceil(d)), 0);
  // d >= 2^63 is an integer; hi * 2^64 <= d and the difference is exact.
  const double hi = floor(d * 0x1.0p-64);
  return Make(static_cast<uint64_t>(d - hi * 0x1.0p64), static_cast<uint64_t>(hi));
}

// w (finite, >= 0, < 2) in fixed point: floor(w * 2^85).
__device__ __forceinline__ U128 ToFx(float w) {
  const uint32_t bits = __float_as_uint(w);
  const int e = static_cast<int>(bits >> 23);  // sign is 0
  if (e == 0 || e > 127) return Make(0, 0);     // zero / denormal (no mass); never > 1 here
  const uint64_t mant = (bits & 0x7FFFFFu) | 0x800000u;  // w = mant * 2^(e - 150)
  const int s = e - 65;                                   // w * 2^85 = mant * 2^s
  if (s >= 0) return s == 0 ? Make(mant, 0) : Make(mant << s, mant >> (64 - s));
  return -s >= 24 ? Make(0, 0) : Make(mant >> -s, 0);
}
__device__ __forceinline__ uint64_t Limb0(U128 x) { return x.lo & kLimbMask; }
__device__ __forceinline__ uint64_t Limb1(U128 x) { return (x.lo >> kLimbBits) | (x.hi << (64 - kLimbBits)); }
__device__ __forceinline__ U128 FromLimbs(uint64_t l0, uint64_t l1) {
  return Add(Make(l0, 0), Make(l1 << kLimbBits, l1 >> (64 - kLimbBits)));
}

__device__ __forceinline__ U128 ShflXor(U128 v, int o) {
  return Make(__shfl_xor_sync(kFull, v.lo, o), __shfl_xor_sync(kFull, v.hi, o));
}
__device__ __forceinline__ U128 ShflDown(U128 v, int o) {
  return Make(__shfl_down_sync(kFull, v.lo, o), __shfl_down_sync(kFull, v.hi, o));
}
__device__ __forceinline__ U128 ShflUp(U128 v, int o) {
  return Make(__shfl_up_sync(kFull, v.lo, o), __shfl_up_sync(kFull, v.hi, o));
}
__device__ __forceinline__ U128 Shfl(U128 v, int src) {
  return Make(__shfl_sync(kFull, v.lo, src), __shfl_sync(kFull, v.hi, src));
}
__device__ __forceinline__ U128 WarpSumU128(U128 v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = Add(v, ShflXor(v, o));
  return v;
}

// ---------------------------------------------------------------- CPU arithmetic, replicated

// sampler.cc's FastExp, operation by operation in round-to-nearest fp32 (no contraction).
__device__ __forceinline__ float FastExp(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;
  constexpr float kLn2Lo = -2.12194440e-4f;
  constexpr float kRound = 12582912.0f;
  float xc = x >= -87.0f ? x : -87.0f;
  xc = xc <= 0.0f ? xc : 0.0f;
  const float n = __fsub_rn(__fadd_rn(__fmul_rn(xc, kLog2e), kRound), kRound);
  const float r = __fsub_rn(__fsub_rn(xc, __fmul_rn(n, kLn2Hi)), __fmul_rn(n, kLn2Lo));
  float p = 1.0f / 720.0f;
  p = __fadd_rn(__fmul_rn(p, r), 1.0f / 120.0f);
  p = __fadd_rn(__fmul_rn(p, r), 1.0f / 24.0f);
  p = __fadd_rn(__fmul_rn(p, r), 1.0f / 6.0f);
  p = __fadd_rn(__fmul_rn(p, r), 0.5f);
  p = __fadd_rn(__fmul_rn(p, r), 1.0f);
  p = __fadd_rn(__fmul_rn(p, r), 1.0f);
  const float scale = __int_as_float((static_cast<int32_t>(n) + 127) << 23);
  const float y = __fmul_rn(p, scale);
  return x >= -87.0f ? y : 0.0f;
}

// Order-preserving key of a processed logit for key order: NaN as -inf, -0 as +0 (the CPU
// compares with == and >, so they tie).
__device__ __forceinline__ uint32_t LogitKey(float x) {
  if (isnan(x)) x = -INFINITY;
  if (x == 0.0f) x = 0.0f;
  const uint32_t b = __float_as_uint(x);
  return (b & 0x80000000u) != 0 ? ~b : (b | 0x80000000u);
}
// Kept by a cut (tau, last): key > tau, or key == tau and id <= last.
__device__ __forceinline__ bool InCut(uint32_t key, int j, uint32_t tau, int last) {
  return key > tau || (key == tau && j <= last);
}

// ---------------------------------------------------------------- block helpers

struct Smem {
  uint64_t h0[kMaxBins], h1[kMaxBins];  // radix histograms: mass limbs per digit
  float f[kWarps];
  int i[kWarps];
  U128 u[kWarps];
  // broadcast slots
  U128 above, tie_mass, carry;
  double target;
  int digit, fail, last, token, wsel, lastpos;
  uint32_t jneed;
};

__device__ __forceinline__ float BlockMax(float v, Smem& s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = detail::WarpMax(v);  // fmaxf: NaN never wins
  if (lane == 0) s.f[warp] = v;
  __syncthreads();
  float r = -INFINITY;
#pragma unroll
  for (int k = 0; k < kWarps; ++k) r = fmaxf(r, s.f[k]);
  __syncthreads();
  return r;
}

__device__ __forceinline__ int BlockMaxInt(int v, Smem& s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(kFull, v, o));
  if (lane == 0) s.i[warp] = v;
  __syncthreads();
  int r = INT_MIN;
#pragma unroll
  for (int k = 0; k < kWarps; ++k) r = max(r, s.i[k]);
  __syncthreads();
  return r;
}

__device__ __forceinline__ U128 BlockSumU128(U128 v, Smem& s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = WarpSumU128(v);
  if (lane == 0) s.u[warp] = v;
  __syncthreads();
  U128 r = Make(0, 0);
#pragma unroll
  for (int k = 0; k < kWarps; ++k) r = Add(r, s.u[k]);
  __syncthreads();
  return r;
}

// (v, i) beats (bv, bi) if larger, or equal with a lower index; NaN never wins.
__device__ __forceinline__ bool Better(float v, int i, float bv, int bi) { return v > bv || (v == bv && i < bi); }

// Lowest id among the maximal non-NaN values; 0 when all are -inf or NaN (sampler's Argmax).
__device__ int BlockArgmax(const float* row, int V, Smem& s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float bv = -INFINITY;
  int bi = INT_MAX;
  for (int j = threadIdx.x; j < V; j += kThreads) {
    const float v = row[j];
    if (Better(v, j, bv, bi)) bv = v, bi = j;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(kFull, bv, o);
    const int oi = __shfl_xor_sync(kFull, bi, o);
    if (Better(ov, oi, bv, bi)) bv = ov, bi = oi;
  }
  if (lane == 0) s.f[warp] = bv, s.i[warp] = bi;
  __syncthreads();
  bv = -INFINITY;
  bi = INT_MAX;
  for (int k = 0; k < kWarps; ++k) {
    if (Better(s.f[k], s.i[k], bv, bi)) bv = s.f[k], bi = s.i[k];
  }
  __syncthreads();
  return bi == INT_MAX ? 0 : bi;
}

// ---------------------------------------------------------------- exact cut in key order

// Over the tokens j with non-zero weight kw(j, &key) (U128), in key order (key desc, id asc),
// finds the first position whose cumulative weight reaches `target` (> 0) and returns it as
// (*tau, *last): the kept tokens are InCut(key, j, tau, last). When the total weight is below
// target, keeps every token (tau = 0, last = INT_MAX). `unit(tau)` is the weight of one token
// of key tau (all tokens of one key weigh the same). Called by the whole block.
template <class KeyWeight, class Unit>
__device__ void RadixCut(int V, KeyWeight kw, Unit unit, U128 target, Smem& s, uint32_t* tau, int* last) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  constexpr int kShift[3] = {21, 10, 0};
  constexpr int kBits[3] = {11, 11, 10};
  uint32_t prefix = 0;
  U128 above = Make(0, 0);
  for (int level = 0; level < 3; ++level) {
    const int shift = kShift[level], nb = 1 << kBits[level];
    for (int d = threadIdx.x; d < nb; d += kThreads) s.h0[d] = 0, s.h1[d] = 0;
    if (threadIdx.x == 0) s.fail = 0;
    __syncthreads();
    for (int j = threadIdx.x; j < V; j += kThreads) {
      uint32_t key;
      const U128 wt = kw(j, &key);
      if (IsZero(wt)) continue;
      if (level > 0 && (key >> (shift + kBits[level])) != prefix) continue;
      const uint32_t d = (key >> shift) & static_cast<uint32_t>(nb - 1);
      const uint64_t l0 = Limb0(wt), l1 = Limb1(wt);
      if (l0 != 0) atomicAdd(reinterpret_cast<unsigned long long*>(&s.h0[d]), static_cast<unsigned long long>(l0));
      if (l1 != 0) atomicAdd(reinterpret_cast<unsigned long long*>(&s.h1[d]), static_cast<unsigned long long>(l1));
    }
    __syncthreads();
    if (warp == 0) {
      // Lane l owns digits [l * per, (l + 1) * per); suffix sums from the top digit down.
      const int per = nb / 32;
      U128 mine = Make(0, 0);
      for (int k = 0; k < per; ++k) mine = Add(mine, FromLimbs(s.h0[lane * per + k], s.h1[lane * per + k]));
      U128 suf = mine;
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        const U128 v = ShflDown(suf, o);
        if (lane + o < 32) suf = Add(suf, v);
      }
      const unsigned ok = __ballot_sync(kFull, Ge(Add(above, suf), target));
      if (ok == 0) {
        if (lane == 0) s.fail = 1;
      } else if (lane == 31 - __clz(ok)) {
        // The boundary digit is in this lane's range: above + suffix beyond it < target.
        U128 run = Add(above, Sub(suf, mine));
        int d = lane * per + per - 1;
        for (; d > lane * per; --d) {
          const U128 next = Add(run, FromLimbs(s.h0[d], s.h1[d]));
          if (Ge(next, target)) break;
          run = next;
        }
        s.digit = d;
        s.above = run;
        s.tie_mass = FromLimbs(s.h0[d], s.h1[d]);
      }
    }
    __syncthreads();
    if (s.fail) {
      *tau = 0;
      *last = INT_MAX;
      __syncthreads();
      return;
    }
    prefix = (prefix << kBits[level]) | static_cast<uint32_t>(s.digit);
    above = s.above;
  }
  // prefix is the boundary key; above < target <= above + tie_mass. Take the first jneed
  // tokens of that key in id order, jneed = the fewest whose weight reaches the target.
  if (threadIdx.x == 0) {
    const U128 need = Sub(target, above), w1 = unit(prefix);
    uint32_t lo = 1, hi = static_cast<uint32_t>(V);
    while (lo < hi) {
      const uint32_t mid = lo + (hi - lo) / 2;
      if (Ge(MulU32(w1, mid), need)) hi = mid; else lo = mid + 1;
    }
    s.jneed = lo;
    s.last = Eq(MulU32(w1, lo), s.tie_mass) ? INT_MAX : -1;  // all ties kept: no scan
  }
  __syncthreads();
  const uint32_t jneed = s.jneed;
  if (s.last == -1) {
    uint32_t base = 0;
    for (int t0 = 0; t0 < V; t0 += kThreads) {
      const int j = t0 + static_cast<int>(threadIdx.x);
      bool is = false;
      if (j < V) {
        uint32_t key;
        const U128 wt = kw(j, &key);
        is = !IsZero(wt) && key == prefix;
      }
      const uint32_t c = static_cast<uint32_t>(__syncthreads_count(is));
      if (base + c >= jneed) {
        const unsigned b = __ballot_sync(kFull, is);
        if (lane == 0) s.i[warp] = __popc(b);
        __syncthreads();
        uint32_t before = base + static_cast<uint32_t>(__popc(b & ((1u << lane) - 1u)));
        for (int k = 0; k < warp; ++k) before += static_cast<uint32_t>(s.i[k]);
        if (is && before + 1 == jneed) s.last = j;
        __syncthreads();
        break;
      }
      base += c;
    }
  }
  *tau = prefix;
  *last = s.last;
  __syncthreads();
}

// ---------------------------------------------------------------- sampling

// The random path of SampleToken over the processed row `w` (overwritten with weights).
__device__ int SampleOne(float* w, int V, const DeviceSampleParams& p, Smem& s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < V; j += kThreads) mx = fmaxf(mx, w[j]);
  const float lmax = BlockMax(mx, s);
  if (lmax == -INFINITY) return 0;  // every logit -inf / NaN: Argmax gives 0
  const float temp = p.temperature;
  const float m = __fdiv_rn(lmax, temp);  // == max(l / temp): division is monotone

  // top-k on the processed logits, exactly k (lower id first among equal logits).
  const bool use_top_k = p.top_k > 0 && p.top_k < V;
  uint32_t k_tau = 0;
  int k_last = INT_MAX;
  if (use_top_k) {
    RadixCut(
        V,
        [w](int j, uint32_t* key) {
          *key = LogitKey(w[j]);
          return Make(1, 0);
        },
        [](uint32_t) { return Make(1, 0); }, Make(static_cast<uint64_t>(p.top_k), 0), s, &k_tau, &k_last);
  }

  // Weights (zero outside the top-k set) and their total.
  U128 part = Make(0, 0);
  for (int j = threadIdx.x; j < V; j += kThreads) {
    const float l = w[j];
    const bool keep = !use_top_k || InCut(LogitKey(l), j, k_tau, k_last);
    const float wj = keep ? FastExp(__fsub_rn(__fdiv_rn(l, temp), m)) : 0.0f;
    w[j] = wj;
    part = Add(part, ToFx(wj));
  }
  const U128 total_k = BlockSumU128(part, s);  // (the block sum synchronizes: w is complete)

  // top-p on w in key order: the smallest prefix whose mass reaches top_p * total.
  const bool use_top_p = p.top_p < 1.0f;
  uint32_t p_tau = 0;
  int p_last = INT_MAX;
  if (use_top_p) {
    U128 target = CeilToU128(static_cast<double>(p.top_p) * ToDouble(total_k));
    if (IsZero(target)) target = Make(1, 0);  // at least one token
    RadixCut(
        V,
        [w](int j, uint32_t* key) {
          const float wj = w[j];
          *key = __float_as_uint(wj);
          return ToFx(wj);
        },
        [](uint32_t key) { return ToFx(__uint_as_float(key)); }, target, s, &p_tau, &p_last);
  }

  // Kept mass of token j (top-k via w == 0, top-p, min-p).
  const float min_p = p.min_p;
  auto kept = [&](int j) {
    const float wj = w[j];
    if (wj == 0.0f || wj < min_p) return Make(0, 0);
    if (use_top_p && !InCut(__float_as_uint(wj), j, p_tau, p_last)) return Make(0, 0);
    return ToFx(wj);
  };

  // Draw: warp `warp` owns ids [warp * seg, (warp + 1) * seg).
  const int seg = (((V + kWarps - 1) / kWarps) + 31) / 32 * 32;
  const int lo = min(V, warp * seg), hi = min(V, lo + seg);
  U128 acc = Make(0, 0);
  int lastpos = -1;
  for (int j = lo + lane; j < hi; j += 32) {
    const U128 f = kept(j);
    if (!IsZero(f)) acc = Add(acc, f), lastpos = j;
  }
  acc = WarpSumU128(acc);
  if (lane == 0) s.u[warp] = acc;
  lastpos = BlockMaxInt(lastpos, s);  // (synchronizes: s.u is complete)
  if (threadIdx.x == 0) {
    U128 total = Make(0, 0);
    for (int k = 0; k < kWarps; ++k) total = Add(total, s.u[k]);
    const double target = CounterUniformHD(p.seed, p.step) * ToDouble(total);
    U128 run = Make(0, 0);
    int sel = -1;
    for (int k = 0; k < kWarps; ++k) {
      const U128 next = Add(run, s.u[k]);
      if (ToDouble(next) > target) {
        sel = k;
        break;
      }
      run = next;
    }
    s.wsel = sel;
    s.carry = run;
    s.target = target;
    s.token = lastpos >= 0 ? lastpos : 0;  // rounding fallback: the last kept token
  }
  __syncthreads();
  if (warp == s.wsel) {
    // Lane chunks of this warp's range, then the chunk holding the crossing, 32 ids at a time.
    const double target = s.target;
    const int len = (hi - lo + 31) / 32;
    const int c_lo = min(hi, lo + lane * len), c_hi = min(hi, c_lo + len);
    U128 mine = Make(0, 0);
    for (int j = c_lo; j < c_hi; ++j) mine = Add(mine, kept(j));
    U128 incl = mine;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const U128 v = ShflUp(incl, o);
      if (lane >= o) incl = Add(incl, v);
    }
    const U128 carry = s.carry;
    const unsigned crossed = __ballot_sync(kFull, ToDouble(Add(carry, incl)) > target);
    if (crossed != 0) {  // always, as the warp total crosses
      const int src = __ffs(crossed) - 1;
      U128 run = Add(carry, Sub(Shfl(incl, src), Shfl(mine, src)));
      const int a = min(hi, lo + src * len), b = min(hi, a + len);
      for (int t0 = a; t0 < b; t0 += 32) {
        const int j = t0 + lane;
        const U128 f = j < b ? kept(j) : Make(0, 0);
        U128 in = f;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
          const U128 v = ShflUp(in, o);
          if (lane >= o) in = Add(in, v);
        }
        const unsigned hit = __ballot_sync(kFull, ToDouble(Add(run, in)) > target);
        if (hit != 0) {
          if (lane == 0) s.token = t0 + __ffs(hit) - 1;
          break;
        }
        run = Add(run, Shfl(in, 31));
      }
    }
  }
  __syncthreads();
  return s.token;
}

__global__ void __launch_bounds__(kThreads, 1)
    SampleRowsKernel(const float* __restrict__ logits, int64_t vocab, const DeviceSampleParams* __restrict__ params,
                     const LogitEdit* __restrict__ edits, const uint32_t* __restrict__ masks, int64_t mask_words,
                     int32_t* __restrict__ out_tokens, float* __restrict__ out_logprobs,
                     float* __restrict__ workspace) {
  __shared__ Smem s;
  const int V = static_cast<int>(vocab);
  const float* x = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  float* w = workspace + static_cast<int64_t>(blockIdx.x) * vocab;
  const DeviceSampleParams p = params[blockIdx.x];
  const uint32_t* mask = masks != nullptr && p.mask_row >= 0 ? masks + static_cast<int64_t>(p.mask_row) * mask_words : nullptr;

  // 1. Copy with the mask, statistics (max ignores NaN; FastExp(NaN or -inf) = 0, as on the CPU).
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < V; j += kThreads) {
    const float v = MaskAllows(mask, mask_words, j) ? x[j] : -INFINITY;
    w[j] = v;
    mx = fmaxf(mx, v);
  }
  const float raw_max = BlockMax(mx, s);  // (synchronizes: the copy is complete)
  double log_z = 0.0;
  if (out_logprobs != nullptr && raw_max != -INFINITY) {
    U128 part = Make(0, 0);
    for (int j = threadIdx.x; j < V; j += kThreads) part = Add(part, ToFx(FastExp(__fsub_rn(w[j], raw_max))));
    log_z = log(ToDouble(BlockSumU128(part, s)) * 0x1.0p-85);
  }

  // 2. Edits, in ApplyLogitsProcessors' order (distinct tokens: no two threads share one).
  if (edits != nullptr) {
    for (int e = p.edit_begin + static_cast<int>(threadIdx.x); e < p.edit_end; e += kThreads) {
      const LogitEdit ed = edits[e];
      if (ed.token < 0 || ed.token >= V) continue;
      w[ed.token] = ApplyLogitEdit(w[ed.token], ed);
    }
  }
  __syncthreads();

  // 3./4. Greedy or the random path.
  const int token = p.temperature < 1e-5f ? BlockArgmax(w, V, s) : SampleOne(w, V, p, s);
  if (threadIdx.x == 0) {
    out_tokens[blockIdx.x] = token;
    if (out_logprobs != nullptr) {
      float xt = MaskAllows(mask, mask_words, token) ? x[token] : -INFINITY;
      if (isnan(xt)) xt = -INFINITY;
      out_logprobs[blockIdx.x] = raw_max == -INFINITY || xt == -INFINITY
                                     ? -INFINITY
                                     : static_cast<float>(static_cast<double>(xt) - raw_max - log_z);
    }
  }
}

}  // namespace

size_t SampleRowsWorkspaceBytes(int64_t n, int64_t vocab) {
  return n <= 0 || vocab <= 0 ? 0 : static_cast<size_t>(n) * static_cast<size_t>(vocab) * sizeof(float);
}

cudaError_t SampleRows(const float* logits, int64_t n, int64_t vocab, const DeviceSampleParams* params,
                       const LogitEdit* edits, const uint32_t* masks, int64_t mask_words, int32_t* out_tokens,
                       float* out_logprobs, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (vocab <= 0 || vocab > kMaxVocab || n > INT_MAX) return cudaErrorInvalidValue;
  if (workspace == nullptr || workspace_bytes < SampleRowsWorkspaceBytes(n, vocab)) return cudaErrorInvalidValue;
  SampleRowsKernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(
      logits, vocab, params, edits, masks, mask_words, out_tokens, out_logprobs, static_cast<float*>(workspace));
  return cudaGetLastError();
}

}  // namespace inferd::cuda
