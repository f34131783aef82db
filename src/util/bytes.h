// Byte sizes: parsing and printing them, and checking a size that came from a file or a
// flag against the memory of this machine before allocating it.
#pragma once

#include <cstdint>
#include <string>

#include "inferd/status.h"

namespace inferd {

// "512MiB", "2GiB", "1G", "1.5GiB", "1073741824" -> bytes (binary units; at most 2^62).
StatusOr<int64_t> ParseByteSize(const std::string& text);
// "1.50 GiB", "340.2 MiB", "12.0 KiB", "512 B"; past 1 TiB, "3.00 TiB".
std::string FormatBytes(int64_t bytes);

// Memory this process may use: physical RAM, or the cgroup's limit (a container's
// memory.max) when that is lower. 0 when unknown.
int64_t UsableMemoryBytes();

// ResourceExhausted "<what> needs <bytes>, more than the <usable> of memory this machine
// has" when bytes (which may be a saturated product: pass INT64_MAX for "overflowed")
// exceed the usable memory. `what` names the field or flag the size came from.
Status CheckFitsInMemory(int64_t bytes, const std::string& what);

// a * b, saturating at INT64_MAX (sizes from files multiply into overflow easily).
int64_t SaturatingMul(int64_t a, int64_t b);

}  // namespace inferd
