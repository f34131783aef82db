// Read-only memory mapping of a whole file.
// Ownership: MappedFile owns the mapping; views into data() live as long as the object.
// Thread-safety: immutable after Open(), safe to read from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "inferd/status.h"

namespace inferd {

class MappedFile {
 public:
  static StatusOr<std::unique_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

// Tells the kernel the whole pages inside [p, p + n) are not needed for now (MADV_PAGEOUT):
// clean file-backed pages are dropped, anonymous ones swapped out where there is swap. Only
// a hint: the contents stay, and a later read faults them back in. For originals that a
// repacked copy replaces (the CPU backend's PrepareCpuWeights). Returns whether the kernel
// took it (Linux 5.4+).
bool ReleasePages(const void* p, size_t n);

// Advises the whole 2 MiB pages inside [p, p + n) as transparent huge pages (MADV_HUGEPAGE):
// for memory that kernels stream through, where 4 KiB pages cost a TLB miss every 4 KiB
// (2 GiB read by 2 threads on the 2-core EPYC VM, alternated: 37-39 GB/s with 4 KiB pages,
// 41-45 with huge pages). Only a hint, taken where THP is "madvise" or "always". Returns
// whether the kernel took it.
bool AdviseHugePages(void* p, size_t n);

}  // namespace inferd
