// MappedFile, ReleasePages and AdviseHugePages: the released pages of a file mapping and of heap memory keep
// their contents (a later read faults them back in), and the kernel drops the file's pages.
#include "util/mmap.h"

#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace inferd {
namespace {

// Pages of [p, p + n) resident now (mincore).
size_t ResidentPages(const uint8_t* p, size_t n) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> v((n + page - 1) / page);
  if (mincore(const_cast<uint8_t*>(p), n, v.data()) != 0) return 0;
  size_t r = 0;
  for (unsigned char c : v) r += c & 1;
  return r;
}

TEST(MmapTest, ReleasedPagesKeepTheirContents) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE)), n = 16 << 20;
  std::string path = testing::TempDir() + "/inferd_mmap_XXXXXX";
  const int fd = mkstemp(path.data());
  ASSERT_GE(fd, 0);
  std::vector<uint8_t> bytes(n);
  for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<uint8_t>(i * 131 + i / page);
  ASSERT_EQ(write(fd, bytes.data(), n), static_cast<ssize_t>(n));
  ASSERT_EQ(fsync(fd), 0);  // clean pages: dirty ones would wait for writeback
  close(fd);
  auto f = MappedFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  const uint8_t* d = (*f)->data();
  ASSERT_EQ((*f)->size(), n);
  unsigned sum = 0;
  for (size_t i = 0; i < n; ++i) sum += d[i];  // fault every page in
  EXPECT_GT(sum, 0u);
  ASSERT_EQ(ResidentPages(d, n), n / page);
  // An unaligned range: only the whole pages inside it are released.
  ASSERT_TRUE(ReleasePages(d + 100, n - 200));  // Linux 5.4+ (Debian 12: 6.1)
  // The file's pages were dropped but for the edges (the page cache may hold the file in
  // large folios, which go only whole); on tmpfs they are memory, kept without swap.
  struct statfs fs {};
  ASSERT_EQ(statfs(path.c_str(), &fs), 0);
  if (fs.f_type != TMPFS_MAGIC) {
    EXPECT_LT(ResidentPages(d, n), n / page / 2);
  }
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(d[i], bytes[i]) << i;
  std::remove(path.c_str());
  // Heap memory: a hint only, the contents stay.
  std::vector<uint8_t> heap(bytes);
  ReleasePages(heap.data(), heap.size());
  EXPECT_EQ(heap, bytes);
  EXPECT_FALSE(ReleasePages(d, 0));
}

// AdviseHugePages takes only the whole 2 MiB pages inside the range, and keeps the contents.
TEST(MmapTest, HugePageAdviceCoversWholeHugePagesOnly) {
  constexpr size_t kHuge = size_t{2} << 20;
  if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) != 0) GTEST_SKIP() << "kernel without THP";
  void* mem = std::aligned_alloc(kHuge, 3 * kHuge);
  ASSERT_NE(mem, nullptr);
  auto* p = static_cast<uint8_t*>(mem);
  for (size_t i = 0; i < 3 * kHuge; i += 4096) p[i] = static_cast<uint8_t>(i >> 12);
  EXPECT_FALSE(AdviseHugePages(p, kHuge - 1));          // no whole huge page
  EXPECT_FALSE(AdviseHugePages(p + 1, 2 * kHuge - 2));  // straddles two, holds none
  EXPECT_FALSE(AdviseHugePages(p, 0));
  EXPECT_TRUE(AdviseHugePages(p + 1, 3 * kHuge - 1));   // the second and third
  for (size_t i = 0; i < 3 * kHuge; i += 4096) ASSERT_EQ(p[i], static_cast<uint8_t>(i >> 12)) << i;
  std::free(mem);
}

}  // namespace
}  // namespace inferd
