// attention_impl.h over 1-byte KV cache codes (int8, fp8 e4m3 / e5m2) for AVX-512; the fp32 /
// fp16 caches are in vec_kernels_avx512.cc, which dispatches here.
#include "backend/cpu/avx512_intrin.h"
#include "backend/cpu/attention_impl.h"

namespace inferd::cpu {

void Avx512CodeTile(const AttnTile& t) { TileCodesImpl<VecAvx512>(t); }

}  // namespace inferd::cpu
