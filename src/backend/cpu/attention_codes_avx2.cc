// attention_impl.h over 1-byte KV cache codes (int8, fp8 e4m3 / e5m2) for AVX2; the fp32 /
// fp16 caches are in vec_kernels_avx2.cc, which dispatches here.
#include "backend/cpu/attention_impl.h"

namespace inferd::cpu {

void Avx2CodeTile(const AttnTile& t) { TileCodesImpl<VecAvx2>(t); }

}  // namespace inferd::cpu
