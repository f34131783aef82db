#include "util/mmap.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace inferd {

StatusOr<std::unique_ptr<MappedFile>> MappedFile::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Status(errno == ENOENT ? StatusCode::kNotFound : StatusCode::kInvalidArgument,
                  "cannot open '" + path + "': " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgument("'" + path + "' is not a regular file");
  }
  std::unique_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = static_cast<size_t>(st.st_size);
  if (f->size_ > 0) {
    void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      return Internal("mmap of '" + path + "' failed: " + std::strerror(err));
    }
    f->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return f;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

namespace {
// madvise(advice) over the whole pages of size `page` inside [p, p + n); false when there
// are none or the kernel refuses.
bool AdviseWholePages(const void* p, size_t n, uintptr_t page, int advice) {
  const auto begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const auto end = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
  if (n == 0 || end <= begin) return false;
  return ::madvise(reinterpret_cast<void*>(begin), end - begin, advice) == 0;
}
}  // namespace

bool AdviseHugePages(void* p, size_t n) { return AdviseWholePages(p, n, uintptr_t{2} << 20, MADV_HUGEPAGE); }

bool ReleasePages(const void* p, size_t n) {
#ifndef MADV_PAGEOUT
  constexpr int MADV_PAGEOUT = 21;  // Linux 5.4; older headers lack the name
#endif
  return AdviseWholePages(p, n, static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE)), MADV_PAGEOUT);
}

}  // namespace inferd
