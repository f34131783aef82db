// GGML tensor element types as stored in GGUF files: block layouts, sizes and reference
// dequantization to fp32. These are the plain reference implementations; fast kernels
// (repacked layouts, SIMD dot products) live in src/backend/cpu and are tested against these.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "inferd/status.h"

namespace inferd {

// Values are GGML's type ids, as written in GGUF tensor infos (ggml.h `enum ggml_type` of the
// pinned llama.cpp, scripts/llamacpp.sh; the gaps are ids GGML retired).
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIQ2_XXS = 16,
  kIQ2_XS = 17,
  kIQ3_XXS = 18,
  kIQ1_S = 19,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ2_S = 22,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIQ1_M = 29,
  kBF16 = 30,
  kTQ1_0 = 34,
  kTQ2_0 = 35,
  kMXFP4 = 39,
  kNVFP4 = 40,
  kQ1_0 = 41,
  kQ2_0 = 42,
  // inferd-internal block types: ids above GGML's range, never read from or written to a
  // GGUF file (GgmlTypeIsKnown is false for them; GgufWriter refuses them).
  // I4Z128: AWQ / GPTQ int4 rows (format/awq_gptq.h). A 67-byte block of 128 elements:
  // fp16 s (bytes 0-1), uint8 z (byte 2), qs[64] (bytes 3-66); element e is nibble
  // e % 32 < 16 ? low : high of qs[16 (e / 32) + e % 16] (Q4_0's order per 32), u_e, and
  // w_e = s * (u_e - z).
  kI4Z128 = 0x10001,
};

// Name as llama.cpp prints it ("q4_K", "f16", ...), or "type(N)" for unknown ids.
std::string GgmlTypeName(uint32_t type);
// True for every type id that GGML defines (whether or not inferd computes with it); false
// for inferd's internal types (I4Z128).
bool GgmlTypeIsKnown(uint32_t type);
// True for the types inferd can dequantize: F32 F16 BF16, the legacy, K- and I-quants, TQ1_0,
// TQ2_0 and MXFP4 (not Q8_1 and Q8_K, GGML's activation types; I8..I64, F64, NVFP4, Q1_0, Q2_0), and the internal I4Z128.
bool GgmlTypeIsSupported(GgmlType type);
// True for the supported types that only the scalar reference below dequantizes, with no
// backend kernel: IQ2_XXS IQ2_XS IQ2_S IQ3_XXS IQ3_S IQ1_S IQ1_M (codebooks), TQ1_0 TQ2_0 and
// MXFP4. The CPU backend dequantizes their rows on every matmul (slow); loaders warn.
bool GgmlTypeIsReferenceOnly(GgmlType type);
// Comma-separated list of the supported GGML type names (GGUF tensor types; the internal
// types are not listed), for error messages.
std::string SupportedGgmlTypeNames();

// Elements per block (1 for plain types, 32 for Q4_0..Q8_1, IQ4_NL and MXFP4, 128 for
// I4Z128, 256 for K-quants and the other I-quants).
int64_t GgmlBlockSize(GgmlType type);
// Bytes per block.
size_t GgmlTypeSize(GgmlType type);
// Bytes for a row of n elements. Requires n % GgmlBlockSize(type) == 0.
size_t GgmlRowSize(GgmlType type, int64_t n);

// Reference dequantization of n contiguous elements (n a multiple of the block size).
// Precondition: type supported; src holds GgmlRowSize(type, n) bytes.
void DequantizeRow(GgmlType type, const void* src, float* dst, int64_t n);

// Reference quantization of n floats (for tests, dummy weights and export round trips).
// Supported for F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q6_K (ggml_quantize.h); others
// return Unimplemented.
Status QuantizeRow(GgmlType type, const float* src, void* dst, int64_t n);

// IEEE half / bfloat16 conversions (round-to-nearest-even on the way down).
float Fp16ToFp32(uint16_t h);
uint16_t Fp32ToFp16(float f);
float Bf16ToFp32(uint16_t b);
uint16_t Fp32ToBf16(float f);

}  // namespace inferd
