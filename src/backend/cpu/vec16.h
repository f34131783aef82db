// Sixteen fp32 lanes with one arithmetic, three implementations: a zmm register
// (AVX-512), two ymm registers (AVX2 + FMA) and a plain array. Kernels written once as
// templates over these types (attention_impl.h) compute bit-identical results on every
// ISA: each operation here is exact IEEE arithmetic (fma, mul, add, max, round to nearest
// even, conversions), and the two reductions use one fixed order (HorizontalSum16 for the
// sum; max is order-free).
//
// Each translation unit includes this header with its own target flags and uses only the
// type its flags allow; everything here is in an anonymous namespace, so the copies
// compiled for different ISAs never meet at link time.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <type_traits>

#include "backend/cpu/kernels.h"
#include "backend/cpu/kv_quant.h"
#include "format/ggml_types.h"

namespace inferd::cpu {
namespace {

// One-byte KV cache codes (kv_quant.h), as element types: the type picks the widening. Each
// is widened exactly to fp32: int8 as an integer, e5m2 as the fp16 whose high byte it is,
// e4m3 as the fp16 of Fp8E4M3HalfBits (its value / 2^8; the kernels fold the 2^8 into the
// scale). Loads of 16 codes read 16 bytes; LoadN reads n.
struct CodeInt8 { uint8_t b; };
struct CodeE4M3 { uint8_t b; };
struct CodeE5M2 { uint8_t b; };
template <class E>
inline constexpr bool kIsCode = std::is_same_v<E, CodeInt8> || std::is_same_v<E, CodeE4M3> || std::is_same_v<E, CodeE5M2>;

inline float WidenCode(CodeInt8 c) { return static_cast<float>(static_cast<int8_t>(c.b)); }
inline float WidenCode(CodeE4M3 c) { return Fp16ToFp32(Fp8E4M3HalfBits(c.b)); }
inline float WidenCode(CodeE5M2 c) { return Fp16ToFp32(static_cast<uint16_t>(c.b << 8)); }

// The plain implementation (any CPU).
struct VecGeneric {
  static constexpr int kAttnGroup = 4, kAttnPvBlock = 4;  // attention_impl.h's register blocking
  float v[16];
  static VecGeneric Zero() { return Set1(0.0f); }
  static VecGeneric Set1(float x) {
    VecGeneric r;
    for (float& e : r.v) e = x;
    return r;
  }
  static VecGeneric Load(const float* p) {
    VecGeneric r;
    std::memcpy(r.v, p, sizeof r.v);
    return r;
  }
  // Lanes >= n read as 0 (n <= 16); nothing past p[n - 1] is read.
  static VecGeneric LoadN(const float* p, int n) {
    VecGeneric r = Zero();
    std::memcpy(r.v, p, sizeof(float) * n);
    return r;
  }
  // IEEE halves, widened exactly.
  static VecGeneric Load(const uint16_t* p) { return LoadN(p, 16); }
  static VecGeneric LoadN(const uint16_t* p, int n) {
    VecGeneric r = Zero();
    for (int i = 0; i < n; ++i) r.v[i] = Fp16ToFp32(p[i]);
    return r;
  }
  template <class C>
    requires kIsCode<C>
  static VecGeneric Load(const C* p) {
    return LoadN(p, 16);
  }
  template <class C>
    requires kIsCode<C>
  static VecGeneric LoadN(const C* p, int n) {
    VecGeneric r = Zero();
    for (int i = 0; i < n; ++i) r.v[i] = WidenCode(p[i]);
    return r;
  }
  void Store(float* p) const { std::memcpy(p, v, sizeof v); }
  void StoreN(float* p, int n) const { std::memcpy(p, v, sizeof(float) * n); }
  // As 16 IEEE halves, nearest even (format's Fp32ToFp16).
  void Store(uint16_t* p) const {
    for (int i = 0; i < 16; ++i) p[i] = Fp32ToFp16(v[i]);
  }
  friend VecGeneric Fma(VecGeneric a, VecGeneric b, VecGeneric c) {
    for (int i = 0; i < 16; ++i) c.v[i] = std::fma(a.v[i], b.v[i], c.v[i]);
    return c;
  }
  friend VecGeneric operator*(VecGeneric a, VecGeneric b) {
    for (int i = 0; i < 16; ++i) a.v[i] *= b.v[i];
    return a;
  }
  friend VecGeneric operator+(VecGeneric a, VecGeneric b) {
    for (int i = 0; i < 16; ++i) a.v[i] += b.v[i];
    return a;
  }
  friend VecGeneric operator-(VecGeneric a, VecGeneric b) {
    for (int i = 0; i < 16; ++i) a.v[i] -= b.v[i];
    return a;
  }
  friend VecGeneric operator/(VecGeneric a, VecGeneric b) {
    for (int i = 0; i < 16; ++i) a.v[i] /= b.v[i];
    return a;
  }
  friend VecGeneric Max(VecGeneric a, VecGeneric b) {
    for (int i = 0; i < 16; ++i) a.v[i] = a.v[i] < b.v[i] ? b.v[i] : a.v[i];
    return a;
  }
  friend VecGeneric Min(VecGeneric a, VecGeneric b) {
    for (int i = 0; i < 16; ++i) a.v[i] = b.v[i] < a.v[i] ? b.v[i] : a.v[i];
    return a;
  }
  // Lanes < n from a, the rest from b.
  static VecGeneric SelectFirst(int n, VecGeneric a, VecGeneric b) {
    for (int i = n; i < 16; ++i) a.v[i] = b.v[i];
    return a;
  }
  // 2^round(x) * y for |round(x)| <= 126: rounds x to nearest even, builds the power of two.
  friend VecGeneric RoundScale(VecGeneric x, VecGeneric y, VecGeneric* rounded) {
    for (int i = 0; i < 16; ++i) {
      const float n = std::nearbyint(x.v[i]);
      rounded->v[i] = n;
      const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
      float p;
      std::memcpy(&p, &bits, 4);
      y.v[i] *= p;
    }
    return y;
  }
  float ReduceMax() const {
    float m = v[0];
    for (int i = 1; i < 16; ++i) m = m < v[i] ? v[i] : m;
    return m;
  }
  float ReduceAdd() const { return HorizontalSum16(v); }
  float Lane(int i) const { return v[i]; }
};

#if defined(__AVX2__) && defined(__FMA__)
// Lanes 0-7 in lo, 8-15 in hi.
struct VecAvx2 {
  static constexpr int kAttnGroup = 1, kAttnPvBlock = 4;  // 16 ymm: one query's 4 x 2 score accumulators
  __m256 lo, hi;
  static VecAvx2 Zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
  static VecAvx2 Set1(float x) { return {_mm256_set1_ps(x), _mm256_set1_ps(x)}; }
  static VecAvx2 Load(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
  static __m256i Mask8(int n) {  // lanes < n all-ones
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static VecAvx2 LoadN(const float* p, int n) {
    return {_mm256_maskload_ps(p, Mask8(n)), _mm256_maskload_ps(p + 8, Mask8(n - 8))};
  }
  static VecAvx2 Load(const uint16_t* p) {
    return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)))};
  }
  static VecAvx2 LoadN(const uint16_t* p, int n) {
    alignas(32) uint16_t tmp[16] = {};
    std::memcpy(tmp, p, sizeof(uint16_t) * n);
    return Load(tmp);
  }
  static VecAvx2 Load(const CodeInt8* p) {  // vpmovsxbd + vcvtdq2ps
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return {_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(x)), _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(x, x)))};
  }
  static VecAvx2 Load(const CodeE5M2* p) {  // b << 8 is an fp16
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), z = _mm_setzero_si128();
    return {_mm256_cvtph_ps(_mm_unpacklo_epi8(z, x)), _mm256_cvtph_ps(_mm_unpackhi_epi8(z, x))};
  }
  static VecAvx2 Load(const CodeE4M3* p) {  // (b << 8) >>arith 1, bit 14 cleared: Fp8E4M3HalfBits
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), z = _mm_setzero_si128();
    const __m128i mask = _mm_set1_epi16(static_cast<int16_t>(0xBF80));
    const __m128i lo = _mm_and_si128(_mm_srai_epi16(_mm_unpacklo_epi8(z, x), 1), mask);
    const __m128i hi = _mm_and_si128(_mm_srai_epi16(_mm_unpackhi_epi8(z, x), 1), mask);
    return {_mm256_cvtph_ps(lo), _mm256_cvtph_ps(hi)};
  }
  template <class C>
    requires kIsCode<C>
  static VecAvx2 LoadN(const C* p, int n) {
    alignas(16) C tmp[16] = {};
    std::memcpy(tmp, p, static_cast<size_t>(n));
    return Load(tmp);
  }
  void Store(float* p) const {
    _mm256_storeu_ps(p, lo);
    _mm256_storeu_ps(p + 8, hi);
  }
  void StoreN(float* p, int n) const {
    _mm256_maskstore_ps(p, Mask8(n), lo);
    _mm256_maskstore_ps(p + 8, Mask8(n - 8), hi);
  }
  void Store(uint16_t* p) const {  // vcvtps2ph, nearest even: Fp32ToFp16's bits
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(lo, _MM_FROUND_TO_NEAREST_INT));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p + 8), _mm256_cvtps_ph(hi, _MM_FROUND_TO_NEAREST_INT));
  }
  friend VecAvx2 Fma(VecAvx2 a, VecAvx2 b, VecAvx2 c) {
    return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
  }
  friend VecAvx2 operator*(VecAvx2 a, VecAvx2 b) { return {_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
  friend VecAvx2 operator+(VecAvx2 a, VecAvx2 b) { return {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
  friend VecAvx2 operator-(VecAvx2 a, VecAvx2 b) { return {_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)}; }
  friend VecAvx2 operator/(VecAvx2 a, VecAvx2 b) { return {_mm256_div_ps(a.lo, b.lo), _mm256_div_ps(a.hi, b.hi)}; }
  // max(a, b) = a < b ? b : a, as the generic code (vmaxps returns its second operand
  // when either is NaN or both are zero; operands are ordered so that it matches).
  friend VecAvx2 Max(VecAvx2 a, VecAvx2 b) { return {_mm256_max_ps(b.lo, a.lo), _mm256_max_ps(b.hi, a.hi)}; }
  friend VecAvx2 Min(VecAvx2 a, VecAvx2 b) { return {_mm256_min_ps(b.lo, a.lo), _mm256_min_ps(b.hi, a.hi)}; }
  static VecAvx2 SelectFirst(int n, VecAvx2 a, VecAvx2 b) {
    return {_mm256_blendv_ps(b.lo, a.lo, _mm256_castsi256_ps(Mask8(n))),
            _mm256_blendv_ps(b.hi, a.hi, _mm256_castsi256_ps(Mask8(n - 8)))};
  }
  friend VecAvx2 RoundScale(VecAvx2 x, VecAvx2 y, VecAvx2* rounded) {
    const __m256 nl = _mm256_round_ps(x.lo, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 nh = _mm256_round_ps(x.hi, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    *rounded = {nl, nh};
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 pl = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(nl), bias), 23));
    const __m256 ph = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(nh), bias), 23));
    return {_mm256_mul_ps(y.lo, pl), _mm256_mul_ps(y.hi, ph)};
  }
  float ReduceMax() const {
    alignas(32) float l[16];
    Store(l);
    return VecGeneric::Load(l).ReduceMax();
  }
  float ReduceAdd() const {  // HorizontalSum16's order, as VecAvx512's
    const __m256 a = _mm256_add_ps(lo, hi);
    const __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    const __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));
    return _mm_cvtss_f32(_mm_add_ss(c, _mm_movehdup_ps(c)));
  }
  float Lane(int i) const {
    alignas(32) float l[16];
    Store(l);
    return l[i];
  }
};
#endif

#if defined(__AVX512F__)
struct VecAvx512 {
  static constexpr int kAttnGroup = 4, kAttnPvBlock = 4;  // 32 zmm: 4 queries' 4 score accumulators
  __m512 v;
  static VecAvx512 Zero() { return {_mm512_setzero_ps()}; }
  static VecAvx512 Set1(float x) { return {_mm512_set1_ps(x)}; }
  static VecAvx512 Load(const float* p) { return {_mm512_loadu_ps(p)}; }
  static __mmask16 Mask(int n) { return static_cast<__mmask16>(n >= 16 ? 0xFFFF : (1u << n) - 1); }
  static VecAvx512 LoadN(const float* p, int n) { return {_mm512_maskz_loadu_ps(Mask(n), p)}; }
  static VecAvx512 Load(const uint16_t* p) {
    return {_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)))};
  }
  static VecAvx512 LoadN(const uint16_t* p, int n) { return {_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(Mask(n), p))}; }
  static VecAvx512 Widen(CodeInt8, __m128i x) { return {_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(x))}; }
  static VecAvx512 Widen(CodeE5M2, __m128i x) {
    return {_mm512_cvtph_ps(_mm256_slli_epi16(_mm256_cvtepu8_epi16(x), 8))};
  }
  static VecAvx512 Widen(CodeE4M3, __m128i x) {
    const __m256i w = _mm256_slli_epi16(_mm256_cvtepu8_epi16(x), 8);
    return {_mm512_cvtph_ps(_mm256_and_si256(_mm256_srai_epi16(w, 1), _mm256_set1_epi16(static_cast<int16_t>(0xBF80))))};
  }
  template <class C>
    requires kIsCode<C>
  static VecAvx512 Load(const C* p) {
    return Widen(C{}, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  template <class C>
    requires kIsCode<C>
  static VecAvx512 LoadN(const C* p, int n) {
    return Widen(C{}, _mm_maskz_loadu_epi8(Mask(n), p));
  }
  void Store(float* p) const { _mm512_storeu_ps(p, v); }
  void StoreN(float* p, int n) const { _mm512_mask_storeu_ps(p, Mask(n), v); }
  void Store(uint16_t* p) const {  // vcvtps2ph, nearest even: Fp32ToFp16's bits
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  }
  friend VecAvx512 Fma(VecAvx512 a, VecAvx512 b, VecAvx512 c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
  friend VecAvx512 operator*(VecAvx512 a, VecAvx512 b) { return {_mm512_mul_ps(a.v, b.v)}; }
  friend VecAvx512 operator+(VecAvx512 a, VecAvx512 b) { return {_mm512_add_ps(a.v, b.v)}; }
  friend VecAvx512 operator-(VecAvx512 a, VecAvx512 b) { return {_mm512_sub_ps(a.v, b.v)}; }
  friend VecAvx512 operator/(VecAvx512 a, VecAvx512 b) { return {_mm512_div_ps(a.v, b.v)}; }
  friend VecAvx512 Max(VecAvx512 a, VecAvx512 b) { return {_mm512_max_ps(b.v, a.v)}; }
  friend VecAvx512 Min(VecAvx512 a, VecAvx512 b) { return {_mm512_min_ps(b.v, a.v)}; }
  static VecAvx512 SelectFirst(int n, VecAvx512 a, VecAvx512 b) { return {_mm512_mask_blend_ps(Mask(n), b.v, a.v)}; }
  friend VecAvx512 RoundScale(VecAvx512 x, VecAvx512 y, VecAvx512* rounded) {
    const __m512 n = _mm512_roundscale_ps(x.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    rounded->v = n;
    const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return {_mm512_mul_ps(y.v, _mm512_castsi512_ps(bits))};
  }
  float ReduceMax() const { return _mm512_reduce_max_ps(v); }
  float ReduceAdd() const {  // HorizontalSum16's order: halves, quarters, then (b0 + b2) + (b1 + b3)
    const __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    const __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    const __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));
    return _mm_cvtss_f32(_mm_add_ss(c, _mm_movehdup_ps(c)));
  }
  float Lane(int i) const {
    alignas(64) float l[16];
    Store(l);
    return l[i];
  }
};
#endif

// exp(x) for every lane, Cephes' single-precision polynomial in fma form (max relative
// error ~2 ulp on [-87, 88]; inputs outside are clamped, so exp(-inf) gives 1.6e-38, not 0:
// callers mask what must be exactly 0). exp(0) is exactly 1.
template <class V>
V Exp(V x) {
  x = Min(Max(x, V::Set1(-87.0f)), V::Set1(88.0f));
  V n;
  // Scale by 2^n at the end: p(r) with r = x - n ln2, |r| <= ln2 / 2.
  const V unit = RoundScale(x * V::Set1(1.44269504088896341f), V::Set1(1.0f), &n);
  V r = Fma(n, V::Set1(-0.693359375f), x);
  r = Fma(n, V::Set1(2.12194440e-4f), r);
  V p = V::Set1(1.9875691500e-4f);
  p = Fma(p, r, V::Set1(1.3981999507e-3f));
  p = Fma(p, r, V::Set1(8.3334519073e-3f));
  p = Fma(p, r, V::Set1(4.1665795894e-2f));
  p = Fma(p, r, V::Set1(1.6666665459e-1f));
  p = Fma(p, r, V::Set1(5.0000001201e-1f));
  const V y = Fma(p, r * r, r) + V::Set1(1.0f);
  return y * unit;
}

}  // namespace
}  // namespace inferd::cpu
