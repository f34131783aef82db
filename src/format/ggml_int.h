// The integer form of GGML's quantized blocks, for kernels that multiply the integer codes
// directly (backend/cpu/qgemm*): every type below is, per block of `unit` elements,
//
//   w_e = D * sc_j * (v(u_e) - z) - Dmin * m_j        (j = e / 16, the 16-element sub-block)
//
// with integer codes u_e, integer sub-block scales sc_j and mins m_j, fp16 D and Dmin, a
// constant zero z, and v the identity or, for the IQ4 types, the non-linear table
// kIq4Values. The 32-element types have sc = 1 and Dmin * m the block's fp16 min (Q5_1)
// or 0. inferd's I4Z128 (AWQ / GPTQ, per-block zero z_b) is Q4_K's form with sc = 1,
// m_j = z_b and D = Dmin = s: w = s u - s z_b. The decomposition is exact: it holds the
// file's integers and fp16 scales, and DequantizeRow (ggml_types.h) is the reference it
// is tested against.
#pragma once

#include <cstdint>

#include "format/ggml_types.h"

namespace inferd {

// IQ4_NL / IQ4_XS code values (ggml-common.h kvalues_iq4nl).
inline constexpr int8_t kIq4Values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

struct IntQuantInfo {
  int unit = 0;          // elements per GGML block: 32, 128 (I4Z128) or 256
  int code_bits = 0;     // bits of u: 2, 3, 4, 5, 6
  int z = 0;             // zero subtracted from v(u)
  bool lut = false;      // v(u) = kIq4Values[u] (else v(u) = u)
  bool has_sc = false;   // integer sub-block scales (K-quants, IQ4_XS); else sc = 1
  int sc_sub = 32;       // elements per scale: 16 (Q2_K, Q3_K, Q6_K) or 32
  bool int_min = false;  // integer mins m_j with Dmin (Q2_K, Q4_K, Q5_K, I4Z128)
  bool fp_min = false;   // an fp16 min per 32-block (Q5_1): w = d * u + m
};

// The types with an integer form: Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS,
// I4Z128.
// (Q4_0, Q4_1, Q8_0 are multiplied directly from their simple layout.) False otherwise.
bool IntQuantInfoOf(GgmlType type, IntQuantInfo* info);

// One GGML block decoded. For 32-element types only u[0..32), sc[0..2), m[0..2) are used
// (I4Z128: u[0..128), sc[0..8), m[0..8));
// sc is 1 and m 0 where the type has none; dmin holds Q5_1's fp16 min.
struct IntBlock {
  uint8_t u[256];
  int8_t sc[16];
  uint8_t m[16];
  uint16_t d = 0, dmin = 0;  // fp16 bits
};

// Decodes the block at src (GgmlTypeSize(type) bytes). Precondition: IntQuantInfoOf(type).
void DecodeIntBlock(GgmlType type, const uint8_t* src, IntBlock* out);

// Byte offsets of the fp16 fields (d, dmin or m) in one block of a type with an integer
// form; count is 1 or 2. (Tests and benchmarks fill the other bytes at random.)
int IntBlockHalfFields(GgmlType type, int offsets[2]);

// The value of element e of a decoded block, in double (for tests and references).
double IntBlockValue(const IntQuantInfo& info, const IntBlock& b, int e);

}  // namespace inferd
