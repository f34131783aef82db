// Reference dequantization of GGML's codebook and ternary types (IQ2_XXS, IQ2_XS, IQ2_S,
// IQ3_XXS, IQ3_S, IQ1_S, IQ1_M, TQ1_0, TQ2_0) and MXFP4: one block to fp32, the same float
// operations in the same order as gguf-py's gguf.quants (bit for bit; tests/reference/
// test_dequant.py). Internal to src/format: DequantizeRow (format/ggml_types.h) is the API.
#pragma once

#include <cstdint>

namespace inferd::ggml_iq {

// Each reads one block (GgmlTypeSize bytes) at b and writes its GgmlBlockSize values to y.
void DequantIQ2_XXS(const uint8_t* b, float* y);
void DequantIQ2_XS(const uint8_t* b, float* y);
void DequantIQ2_S(const uint8_t* b, float* y);
void DequantIQ3_XXS(const uint8_t* b, float* y);
void DequantIQ3_S(const uint8_t* b, float* y);
void DequantIQ1_S(const uint8_t* b, float* y);
void DequantIQ1_M(const uint8_t* b, float* y);
void DequantTQ1_0(const uint8_t* b, float* y);
void DequantTQ2_0(const uint8_t* b, float* y);
void DequantMXFP4(const uint8_t* b, float* y);

}  // namespace inferd::ggml_iq
