// attention_impl.h over 1-byte KV cache codes (int8, fp8 e4m3 / e5m2) for any CPU; the fp32 /
// fp16 caches are in vec_kernels_generic.cc, which dispatches here.
#include "backend/cpu/attention_impl.h"

namespace inferd::cpu {

void GenericCodeTile(const AttnTile& t) { TileCodesImpl<VecGeneric>(t); }

}  // namespace inferd::cpu
