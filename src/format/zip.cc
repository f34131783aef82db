#include "format/zip.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace inferd {
namespace {

constexpr uint32_t kEocdSig = 0x06054b50, kZip64EocdSig = 0x06064b50, kZip64LocatorSig = 0x07064b50;
constexpr uint32_t kCentralSig = 0x02014b50, kLocalSig = 0x04034b50;
constexpr size_t kEocdSize = 22, kZip64LocatorSize = 20, kCentralSize = 46, kLocalSize = 30;
constexpr uint64_t kMaxEntries = 1 << 20;  // torch checkpoints hold one entry per storage

uint64_t Le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

StatusOr<ZipArchive> ZipArchive::Parse(const uint8_t* data, size_t size, const std::string& label) {
  auto corrupt = [&](const std::string& what) { return DataLoss(fmt::format("zip '{}': {}", label, what)); };
  if (size < kEocdSize) return corrupt("too short to be a zip archive");
  // The end-of-central-directory record is in the last 22 + 65535 bytes (comment).
  size_t eocd = size;
  for (size_t back = kEocdSize; back <= std::min(size, kEocdSize + 65535); ++back) {
    if (Le(data + size - back, 4) == kEocdSig) {
      eocd = size - back;
      break;
    }
  }
  if (eocd == size) return corrupt("no end-of-central-directory record");
  const uint8_t* e = data + eocd;
  uint64_t entries = Le(e + 10, 2), cd_size = Le(e + 12, 4), cd_offset = Le(e + 16, 4);
  if (Le(e + 4, 2) != 0 || Le(e + 6, 2) != 0) return corrupt("multi-disk archives are not supported");
  if (entries == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {  // ZIP64
    if (eocd < kZip64LocatorSize || Le(data + eocd - kZip64LocatorSize, 4) != kZip64LocatorSig) {
      return corrupt("ZIP64 sizes without a ZIP64 locator");
    }
    const uint64_t at = Le(data + eocd - kZip64LocatorSize + 8, 8);
    if (at > size || size - at < 56 || Le(data + at, 4) != kZip64EocdSig) return corrupt("bad ZIP64 record");
    entries = Le(data + at + 32, 8);
    cd_size = Le(data + at + 40, 8);
    cd_offset = Le(data + at + 48, 8);
  }
  if (entries > kMaxEntries) return corrupt(fmt::format("{} entries (at most {})", entries, kMaxEntries));
  if (cd_offset > size || cd_size > size - cd_offset) return corrupt("central directory out of the file");
  ZipArchive z;
  const uint8_t* p = data + cd_offset;
  const uint8_t* end = p + cd_size;
  for (uint64_t i = 0; i < entries; ++i) {
    if (static_cast<size_t>(end - p) < kCentralSize || Le(p, 4) != kCentralSig) {
      return corrupt(fmt::format("central directory entry {} is corrupt", i));
    }
    const uint64_t flags = Le(p + 8, 2), method = Le(p + 10, 2);
    uint64_t csize = Le(p + 20, 4), usize = Le(p + 24, 4), local = Le(p + 42, 4);
    const size_t name_len = Le(p + 28, 2), extra_len = Le(p + 30, 2), comment_len = Le(p + 32, 2);
    if (static_cast<size_t>(end - p) < kCentralSize + name_len + extra_len + comment_len) {
      return corrupt(fmt::format("central directory entry {} overruns the directory", i));
    }
    std::string name(reinterpret_cast<const char*>(p + kCentralSize), name_len);
    // ZIP64 extended information: the 8-byte values of the fields that are 0xFFFFFFFF, in order.
    const uint8_t* x = p + kCentralSize + name_len;
    const uint8_t* xend = x + extra_len;
    while (xend - x >= 4) {
      const uint64_t id = Le(x, 2), len = Le(x + 2, 2);
      if (static_cast<uint64_t>(xend - x - 4) < len) return corrupt("extra field of '" + name + "' is corrupt");
      if (id == 0x0001) {
        const uint8_t* v = x + 4;
        uint64_t left = len;
        for (uint64_t* field : {&usize, &csize, &local}) {
          if (*field != 0xFFFFFFFF) continue;
          if (left < 8) return corrupt("ZIP64 field of '" + name + "' is short");
          *field = Le(v, 8);
          v += 8;
          left -= 8;
        }
      }
      x += 4 + len;
    }
    p += kCentralSize + name_len + extra_len + comment_len;
    if (flags & 1) return Unimplemented(fmt::format("zip '{}': entry '{}' is encrypted", label, name));
    if (method != 0 || csize != usize) {
      return Unimplemented(fmt::format("zip '{}': entry '{}' is compressed (method {}); only stored entries are "
                                       "read (torch.save stores every entry uncompressed)",
                                       label, name, method));
    }
    if (local > size || size - local < kLocalSize || Le(data + local, 4) != kLocalSig) {
      return corrupt("local header of '" + name + "' is corrupt");
    }
    const uint64_t start = local + kLocalSize + Le(data + local + 26, 2) + Le(data + local + 28, 2);
    if (start > size || usize > size - start) return corrupt("data of '" + name + "' is out of the file");
    if (!z.entries_.emplace(name, ZipEntry{name, data + start, static_cast<size_t>(usize)}).second) {
      return corrupt("entry '" + name + "' appears twice");
    }
  }
  return z;
}

const ZipEntry* ZipArchive::Find(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

}  // namespace inferd
